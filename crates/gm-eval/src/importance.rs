//! Importance-sampling estimates of log p(x).
//!
//! With a proposal q(z | x) and k samples z₁…z_k from it,
//! p̂(x) = (1/k) Σ p(x, zᵢ) / q(zᵢ | x) is unbiased for p(x); its logarithm, computed stably
//! as log-mean-exp of the log-weights, is what is reported. By Jensen's inequality
//! E[log p̂(x)] ≤ log p(x) (it is the IWAE-k bound), and the gap closes as k grows, so the
//! result is labelled a stochastic estimate together with k.
//!
//! ```
//! use gm_eval::importance::importance_log_likelihood;
//! use tch::{Device, Kind, Tensor};
//! // A "model" whose weights are exact: log w = log p(x) for every sample.
//! let x = Tensor::zeros([10, 3], (Kind::Float, Device::Cpu));
//! let ll = importance_log_likelihood(&x, 100, 4, |chunk, k| {
//!     Ok(Tensor::full([k, chunk.size()[0]], -2.5, (Kind::Double, Device::Cpu)))
//! })?;
//! assert!((ll.mean + 2.5).abs() < 1e-12);
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::model::{LikelihoodKind, LogLikelihood};
use gm_core::Result;
use tch::{Kind, Tensor};

/// log((1/k) Σ exp(aᵢ)) along `dim`, without overflow.
pub fn log_mean_exp(a: &Tensor, dim: i64) -> Tensor {
    let k = a.size()[dim as usize] as f64;
    a.logsumexp([dim], false) - k.ln()
}

/// Estimates the mean log p(x) over the rows of `x` by importance sampling with `k`
/// samples per example, `chunk` examples at a time. `log_weights(x_chunk, k)` returns the
/// log-weights log p(x, z) − log q(z | x) as a `[k, chunk]` tensor.
pub fn importance_log_likelihood(
    x: &Tensor,
    k: i64,
    chunk: i64,
    mut log_weights: impl FnMut(&Tensor, i64) -> Result<Tensor>,
) -> Result<LogLikelihood> {
    let n = x.size()[0];
    // The estimates go to host memory allocated once, before the chunks' large buffers:
    // a small tensor kept per chunk would pin the allocator's heap above each chunk's
    // freed buffers, and the process would grow by megabytes per example.
    let mut per_example = Vec::<f64>::with_capacity(n as usize);
    let mut progress =
        gm_core::progress::Progress::new(&format!("importance sampling (k = {k})"), n as u64);
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        let lw = tch::no_grad(|| log_weights(&x.narrow(0, start, len), k))?;
        let est = log_mean_exp(&lw.to_kind(Kind::Double), 0).to_device(tch::Device::Cpu);
        per_example.extend(Vec::<f64>::try_from(&est.reshape([-1]))?);
        start += len;
        progress.inc(len as u64);
    }
    progress.finish();
    let all = Tensor::from_slice(&per_example);
    let (mean, std_err) = mean_and_std_err(&all)?;
    Ok(LogLikelihood {
        kind: LikelihoodKind::StochasticEstimate,
        method: "importance-sampling".into(),
        settings: serde_json::json!({
            "k": k,
            "proposal": "q(z|x)",
            "note": "log of an unbiased estimate of p(x): a stochastic lower bound in expectation (IWAE-k), tight as k grows",
        }),
        mean,
        std_err,
        n,
    })
}

/// Mean and standard error of the mean of a 1-D tensor.
pub fn mean_and_std_err(v: &Tensor) -> Result<(f64, f64)> {
    let v = v.to_kind(Kind::Double);
    let n = v.size()[0];
    let mean = v.f_mean(Kind::Double)?.f_double_value(&[])?;
    let se = if n > 1 {
        v.f_std(true)?.f_double_value(&[])? / (n as f64).sqrt()
    } else {
        0.0
    };
    Ok((mean, se))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn log_mean_exp_is_stable_and_exact() {
        let _rng = gm_core::rng_guard::lock();
        let a = Tensor::from_slice(&[1000.0f64, 1000.0 + 2f64.ln()]).view([2, 1]);
        let v = log_mean_exp(&a, 0).double_value(&[0]);
        approx::assert_abs_diff_eq!(v, 1000.0 + (1.5f64).ln(), epsilon = 1e-9);
    }

    /// z ~ N(0, 1), x | z ~ N(z, 1): p(x) = N(0, 2) in closed form. With the proposal
    /// q(z) = N(0, 1) (the prior), the IS estimate must approach log p(x) as k grows.
    #[test]
    fn linear_gaussian_marginal_is_recovered() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(0);
        let x = Tensor::from_slice(&[-1.5f64, -0.3, 0.0, 0.7, 2.0]).view([5, 1]);
        let truth = {
            let lp = -0.5 * (2.0 * std::f64::consts::PI * 2.0).ln();
            let xs = [-1.5f64, -0.3, 0.0, 0.7, 2.0];
            xs.iter().map(|x| lp - x * x / 4.0).sum::<f64>() / 5.0
        };
        let half_log_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let mut errors = Vec::new();
        for k in [10i64, 100_000] {
            let ll = importance_log_likelihood(&x, k, 2, |xc, k| {
                let c = xc.size()[0];
                let z = Tensor::randn([k, c], (Kind::Double, Device::Cpu));
                let xk = xc.view([1, c]);
                // log p(x|z) + log p(z) − log q(z) = log p(x|z) since q = prior.
                Ok(-(xk - &z).pow_tensor_scalar(2) * 0.5 - half_log_2pi)
            })
            .unwrap();
            assert_eq!(ll.kind, LikelihoodKind::StochasticEstimate);
            errors.push((ll.mean - truth).abs());
        }
        assert!(errors[1] < 5e-3, "k=1e5 error {}", errors[1]);
        assert!(
            errors[1] < errors[0],
            "error does not shrink with k: {errors:?}"
        );
    }
}
