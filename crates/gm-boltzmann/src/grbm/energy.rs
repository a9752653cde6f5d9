//! The Gaussian–Bernoulli RBM's energy, conditionals, free energy, its gradient and the
//! exact partition function, as functions of the parameter tensors (any float kind).
//!
//! Precision form (§20.5.1 with a visible bias): for v ∈ R^D, h ∈ {0, 1}^H,
//!
//! E(v, h) = ½ Σ_i β_i (v_i − b_i)² − Σ_ij β_i v_i W_ij h_j − Σ_j c_j h_j,
//!
//! so p(h_j = 1 | v) = σ(c_j + Σ_i β_i v_i W_ij), p(v | h) = N(b + W h, diag(β)⁻¹),
//! F(v) = −log Σ_h e^{−E(v, h)} = ½ Σ_i β_i (v_i − b_i)² − Σ_j softplus(c_j + Σ_i β_i v_i W_ij),
//! and for each h the integral over v is Gaussian:
//!
//! log Z = (D/2) log 2π − ½ Σ_i log β_i + log Σ_h exp(cᵀh + Σ_i β_i (b_i (Wh)_i + ½ (Wh)_i²)).
//!
//! Shapes: `w` `[D, H]`, `b` `[D]`, `c` `[H]`, `beta` `[D]` (a scalar precision is expanded),
//! `v` `[N, D]`, `h` `[N, H]`.
//!
//! ```
//! use gm_boltzmann::grbm::energy;
//! use tch::{Device, Kind, Tensor};
//! let o = (Kind::Double, Device::Cpu);
//! let (w, b, c, beta) = (Tensor::zeros([2, 3], o), Tensor::zeros([2], o), Tensor::zeros([3], o), Tensor::ones([2], o));
//! // With W = 0, c = 0 and β = 1: a standard normal times 2^3 hidden states.
//! let log_z = energy::log_z_exact(&w, &b, &c, &beta);
//! assert!((log_z - (2f64.ln() * 3.0 + (2.0 * std::f64::consts::PI).ln())).abs() < 1e-12);
//! ```

use tch::{Kind, Tensor};

/// log 2π.
pub const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// E(v, h) per row, `[N]`.
pub fn energy(v: &Tensor, h: &Tensor, w: &Tensor, b: &Tensor, c: &Tensor, beta: &Tensor) -> Tensor {
    let quad = ((v - b).square() * beta).sum_dim_intlist(1, false, v.kind()) * 0.5;
    let inter = ((v * beta).matmul(w) * h).sum_dim_intlist(1, false, v.kind());
    quad - inter - h.matmul(c)
}

/// Hidden pre-activations c + (β ⊙ v) W, `[N, H]`.
pub fn hidden_input(v: &Tensor, w: &Tensor, c: &Tensor, beta: &Tensor) -> Tensor {
    c.addmm(&(v * beta), w)
}

/// p(h = 1 | v), `[N, H]`.
pub fn hidden_probs(v: &Tensor, w: &Tensor, c: &Tensor, beta: &Tensor) -> Tensor {
    hidden_input(v, w, c, beta).sigmoid()
}

/// E[v | h] = b + W h, `[N, D]`.
pub fn visible_mean(h: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    b.addmm(h, &w.tr())
}

/// h ~ p(h | v).
pub fn sample_hidden(v: &Tensor, w: &Tensor, c: &Tensor, beta: &Tensor) -> Tensor {
    bernoulli(&hidden_probs(v, w, c, beta))
}

/// v ~ p(v | h) = N(b + W h, diag(β)⁻¹) (in a sharded step, this rank's rows of the draws
/// one process makes).
pub fn sample_visible(h: &Tensor, w: &Tensor, b: &Tensor, beta: &Tensor) -> Tensor {
    let mean = visible_mean(h, w, b);
    let noise = gm_core::dist::randn_rows_like(&mean) * beta.rsqrt();
    mean + noise
}

/// x ~ Bernoulli(p), elementwise ([`gm_core::sampling::bernoulli`]).
pub use gm_core::sampling::bernoulli::sample as bernoulli;

/// softplus(x) = max(x, 0) + log1p(e^−|x|), without libtorch's linear cut-off at x = 20.
pub fn softplus(x: &Tensor) -> Tensor {
    x.clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// F(v) per row, `[N]`, in the parameters' kind.
pub fn free_energy(v: &Tensor, w: &Tensor, b: &Tensor, c: &Tensor, beta: &Tensor) -> Tensor {
    let quad = ((v - b).square() * beta).sum_dim_intlist(1, false, v.kind()) * 0.5;
    quad - softplus(&hidden_input(v, w, c, beta)).sum_dim_intlist(1, false, v.kind())
}

/// F(v) per row from v and its hidden pre-activations `u` = c + (β ⊙ v) W (no matrix product).
pub fn free_energy_from_input(v: &Tensor, u: &Tensor, b: &Tensor, beta: &Tensor) -> Tensor {
    let quad = ((v - b).square() * beta).sum_dim_intlist(1, false, v.kind()) * 0.5;
    quad - softplus(u).sum_dim_intlist(1, false, v.kind())
}

/// The batch means of ∂F(v)/∂θ for θ = (W, b, c, β): `([D, H], [D], [H], [D])`.
///
/// With q = σ(c + (β ⊙ v) W): ∂F/∂W_ij = −β_i v_i q_j, ∂F/∂b_i = −β_i (v_i − b_i),
/// ∂F/∂c_j = −q_j, ∂F/∂β_i = ½ (v_i − b_i)² − v_i (W q)_i.
pub fn free_energy_grads(
    v: &Tensor,
    w: &Tensor,
    b: &Tensor,
    c: &Tensor,
    beta: &Tensor,
) -> (Tensor, Tensor, Tensor, Tensor) {
    let q = hidden_probs(v, w, c, beta);
    let (gw, gb, gc, gbeta) = free_energy_grads_from_probs(v, &q, w, b, beta, true);
    (gw, gb, gc, gbeta.expect("asked for ∂F/∂β"))
}

/// [`free_energy_grads`] given q = p(h = 1 | v); ∂F/∂β (two more matrix products) only when
/// `with_beta`.
pub fn free_energy_grads_from_probs(
    v: &Tensor,
    q: &Tensor,
    w: &Tensor,
    b: &Tensor,
    beta: &Tensor,
    with_beta: bool,
) -> (Tensor, Tensor, Tensor, Option<Tensor>) {
    let n = v.size()[0] as f64;
    let k = v.kind();
    let bv = v * beta;
    let gw = bv.tr().mm(q) * (-1.0 / n);
    let diff = v - b;
    let gb = -(&diff * beta).mean_dim(0, false, k);
    let gc = -q.mean_dim(0, false, k);
    let gbeta = with_beta.then(|| (diff.square() * 0.5 - v * q.mm(&w.tr())).mean_dim(0, false, k));
    (gw, gb, gc, gbeta)
}

/// Every state of `h` binary units with indices `[start, start + len)`, `[len, h]` (bit j of
/// the index is unit j).
pub fn binary_states(start: i64, len: i64, h: i64, opts: (Kind, tch::Device)) -> Tensor {
    let idx = Tensor::arange_start(start, start + len, (Kind::Int64, opts.1)).unsqueeze(1);
    let pow = Tensor::from_slice(&(0..h).map(|j| 1i64 << j).collect::<Vec<_>>()).to_device(opts.1);
    idx.floor_divide(&pow).remainder(2).to_kind(opts.0)
}

/// log Z by enumerating the 2^H hidden states (each gives a Gaussian integral over v), in
/// `f64`, in chunks of at most ~4M numbers. Meant for H ≤ 24.
pub fn log_z_exact(w: &Tensor, b: &Tensor, c: &Tensor, beta: &Tensor) -> f64 {
    tch::no_grad(|| {
        let (w, b, c, beta) = (
            w.to_kind(Kind::Double),
            b.to_kind(Kind::Double),
            c.to_kind(Kind::Double),
            beta.to_kind(Kind::Double),
        );
        let (d, h) = (w.size()[0], w.size()[1]);
        let total = 1i64 << h;
        let chunk = (4_000_000 / d.max(h)).max(1).min(total);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < total {
            let len = chunk.min(total - start);
            let hs = binary_states(start, len, h, (Kind::Double, w.device()));
            let wh = hs.mm(&w.tr());
            let term = hs.mv(&c) + ((&wh * 0.5 + &b) * &wh).mv(&beta);
            parts.push(term.logsumexp([0], false));
            start += len;
        }
        let lse = Tensor::stack(&parts, 0)
            .logsumexp([0], false)
            .double_value(&[]);
        0.5 * d as f64 * LOG_2PI - 0.5 * beta.log().sum(Kind::Double).double_value(&[]) + lse
    })
}
