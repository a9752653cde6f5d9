//! Mean-field inference in a [`Dbm`] (*Deep Learning* §20.4.2): the factorial
//! Q(h | v) = Π_l Π_j μ_{l,j}^{h_{l,j}} (1 − μ_{l,j})^{1 − h_{l,j}} that maximises the
//! variational lower bound, found by the fixed-point equations μ_l = σ(b_l + μ_{l−1} W_l +
//! μ_{l+1} W_{l+1}ᵀ) (μ_0 = v), updated on the schedule of block Gibbs: all odd layers at
//! once, then all even hidden layers.
//!
//! The means start from one bottom-up pass (top-down input left out). Each iteration updates
//! the odd layers, then the even ones, so the even equations hold exactly after it; the
//! iteration stops when the odd layers' residual max |σ(input) − μ| (which is also how far
//! the next update would move them) is below `mf_tolerance`, or after `mf_max_iters`
//! iterations. The iterations taken and the final residual are returned.

use super::model::Dbm;
use gm_core::model::Metrics;
use tch::{Kind, Tensor};

/// The result of mean-field inference for a batch.
pub struct MeanField {
    /// μ_0 = v, μ_1 … μ_L, each `[N, n_l]`.
    pub means: Vec<Tensor>,
    /// Iterations (odd then even updates) taken.
    pub iters: i64,
    /// max |σ(input) − μ| over every unit of every example and layer at the end.
    pub residual: f64,
}

impl Dbm {
    /// Mean-field inference for the examples `v` `[N, D]` (in the parameters' kind).
    pub fn mean_field(&self, v: &Tensor) -> MeanField {
        tch::no_grad(|| {
            // b_1 + v W_1 does not change over the iterations: computed once.
            let from_v = self.biases[1].unsqueeze(0) + v.matmul(&self.weights[0]);
            let mut mu = vec![v.shallow_clone(), from_v.sigmoid()];
            for l in 2..=self.depth() {
                let up = self.biases[l].unsqueeze(0) + mu[l - 1].matmul(&self.weights[l - 1]);
                mu.push(up.sigmoid());
            }
            let (odd, even) = (self.parity_layers(true), self.parity_layers(false));
            let odd_input = |mu: &[Tensor], l: usize| match l {
                1 => from_v.addmm(&mu[2], &self.weights[1].tr()),
                _ => self.input(mu, l),
            };
            let mut iters = 0;
            loop {
                let new: Vec<Tensor> = odd.iter().map(|&l| odd_input(&mu, l).sigmoid()).collect();
                let residual = odd
                    .iter()
                    .zip(&new)
                    .map(|(&l, m)| (m - &mu[l]).abs().max().double_value(&[]))
                    .fold(0.0, f64::max);
                if residual < self.cfg.mf_tolerance || iters == self.cfg.mf_max_iters {
                    return MeanField {
                        means: mu,
                        iters,
                        residual,
                    };
                }
                for (&l, m) in odd.iter().zip(new) {
                    mu[l] = m;
                }
                for &l in even.iter().skip(1) {
                    mu[l] = self.input(&mu, l).sigmoid();
                }
                iters += 1;
            }
        })
    }

    /// The variational free energy `E_Q[E(v, h)] − H(Q)` = E(v, μ) − Σ_l H(μ_l) per example
    /// `[N]` (E is linear in each layer, so `E_Q[E] = E(μ)`): −(bound + log Z).
    pub fn variational_free_energy(&self, mf: &MeanField) -> Tensor {
        tch::no_grad(|| {
            let mut f = self.energy(&mf.means);
            for mu in &mf.means[1..] {
                f -= bernoulli_entropy(mu);
            }
            f
        })
    }

    /// Metrics of a mean-field result: the variational free energy (mean over the batch),
    /// the reconstruction error Σ_i (v_i − σ(b_0 + μ_1 W_1ᵀ)_i)², the iterations and the
    /// final residual.
    pub(super) fn mean_field_metrics(&self, mf: &MeanField) -> Metrics {
        tch::no_grad(|| {
            let v = &mf.means[0];
            let scalar = |x: f64| Tensor::full([], x, (Kind::Float, v.device()));
            let recon = self.input(&mf.means, 0).sigmoid();
            vec![
                (
                    "mf_free_energy",
                    self.variational_free_energy(mf).mean(Kind::Float),
                ),
                (
                    "recon_err",
                    (v - recon)
                        .square()
                        .sum_dim_intlist(1, false, Kind::Float)
                        .mean(Kind::Float),
                ),
                ("mf_iters", scalar(mf.iters as f64)),
                ("mf_residual", scalar(mf.residual)),
            ]
        })
    }
}

/// H of the factorial Bernoulli with means `mu` `[N, n]`, per row `[N]` (0 log 0 = 0).
pub(super) fn bernoulli_entropy(mu: &Tensor) -> Tensor {
    let one_minus = mu.ones_like() - mu;
    -(mu.xlogy(mu) + one_minus.xlogy(&one_minus)).sum_dim_intlist(1, false, mu.kind())
}
