//! What every diffusion's bound shares: the sum over t = 2 … T of per-timestep terms,
//! estimated from a random subset of timesteps per example.

use tch::{Device, Kind, Tensor};

/// An estimate of Σ_{t=2}^T term(t) per example `[B]` and its variance `[B]`: `k` distinct
/// timesteps per example, uniformly without replacement, the sum scaled by (T − 1) / k
/// (unbiased; exact, variance 0, when k ≥ T − 1). `term(t)` gives the `[B]` terms at
/// each example's t `[B]`.
pub fn sum_over_timesteps(
    b: i64,
    steps: i64,
    k: i64,
    dev: Device,
    term: &dyn Fn(&Tensor) -> Tensor,
) -> (Tensor, Tensor) {
    let inner = steps - 1;
    if inner == 0 {
        let zero = Tensor::zeros([b], (Kind::Float, dev));
        return (zero.shallow_clone(), zero);
    }
    let k = k.clamp(1, inner);
    let picks = Tensor::rand([b, inner], (Kind::Float, dev))
        .argsort(-1, false)
        .narrow(1, 0, k)
        + 2;
    let terms: Vec<Tensor> = (0..k)
        .map(|j| term(&picks.select(1, j).contiguous()))
        .collect();
    let terms = Tensor::stack(&terms, 1);
    let scale = inner as f64 / k as f64;
    let sum = terms.sum_dim_intlist(1, false, terms.kind()) * scale;
    // Sampling without replacement: Var = scale² k s² (1 − k / N), s² the terms' variance.
    let var = if k < inner && k > 1 {
        terms.var_dim(1, true, false) * (scale * scale * k as f64 * (1.0 - k as f64 / inner as f64))
    } else {
        sum.zeros_like()
    };
    (sum, var)
}

/// Mean and standard error over the examples of `x` of `per_example(chunk)` `[B]`, in
/// chunks of `chunk` examples.
pub fn mean_over(
    x: &Tensor,
    chunk: i64,
    per_example: &dyn Fn(&Tensor) -> Tensor,
) -> gm_core::Result<(f64, f64)> {
    let n = x.size()[0];
    let chunk = chunk.max(1);
    let parts: Vec<Tensor> = (0..n)
        .step_by(chunk as usize)
        .map(|s| per_example(&x.narrow(0, s, chunk.min(n - s))).to_kind(Kind::Double))
        .collect();
    gm_eval::importance::mean_and_std_err(&Tensor::cat(&parts, 0))
}

/// The settings of a bound estimated with `k` of the T − 1 timesteps t ≥ 2 per example.
pub fn settings(steps: i64, k: i64) -> serde_json::Value {
    let all = k >= steps - 1;
    serde_json::json!({
        "steps": steps,
        "timesteps_per_example": k.min(steps - 1),
        "terms": if all {
            "prior KL, decoder and every t >= 2 term, one draw of x_t each"
        } else {
            "prior KL and decoder exact; the sum over t >= 2 estimated from k distinct uniform timesteps per example (unbiased; its variance is in std_err)"
        },
    })
}
