//! The second stochastic layer of a two-layer VAE / IWAE (Burda et al. 2015):
//! q(z₂ | z) and p(z | z₂), diagonal Gaussians whose means and log-variances come from MLPs.

use super::config::{Activation, VaeConfig};
use super::model::LOG_2PI;
use gm_core::nets::Mlp;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// q(z₂ | z) upward and p(z | z₂) downward.
pub(crate) struct TopLayer {
    up: Mlp,
    up_head: nn::Linear,
    down: Mlp,
    down_head: nn::Linear,
    /// Dimension of z₂.
    pub(crate) latent: i64,
}

/// One diagonal Gaussian draw: the sample and its log-density under the Gaussian it came from.
pub(crate) struct Draw {
    pub(crate) z: Tensor,
    pub(crate) log_q: Tensor,
}

impl TopLayer {
    /// The layers under `root / "top"`, between z (`below` dims) and z₂.
    pub(crate) fn new(root: &nn::Path, cfg: &VaeConfig, below: i64) -> TopLayer {
        let path = root / "top";
        let init = cfg.init;
        let up = Mlp::with_init(&(&path / "up"), "fc", below, &cfg.top_hidden, init);
        let up_head = init.linear(&path / "up" / "head", up.out_dim(), 2 * cfg.top_latent);
        let rev: Vec<i64> = cfg.top_hidden.iter().rev().copied().collect();
        let down = Mlp::with_init(&(&path / "down"), "fc", cfg.top_latent, &rev, init);
        let down_head = init.linear(&path / "down" / "head", down.out_dim(), 2 * below);
        TopLayer {
            up,
            up_head,
            down,
            down_head,
            latent: cfg.top_latent,
        }
    }

    /// Mean and log-variance of q(z₂ | z).
    pub(crate) fn posterior(&self, z: &Tensor, act: Activation) -> (Tensor, Tensor) {
        halves(&self.up_head.forward(&self.up.forward(z, act)))
    }

    /// Mean and log-variance of p(z | z₂).
    pub(crate) fn prior_below(&self, z2: &Tensor, act: Activation) -> (Tensor, Tensor) {
        halves(&self.down_head.forward(&self.down.forward(z2, act)))
    }

    /// log p(z, z₂) − log q(z₂ | z) for one draw z₂ ~ q(z₂ | z) per row of `z` `[…, L]`: the
    /// part of a log importance weight above z, where a one-layer model has log N(z; 0, I).
    pub(crate) fn log_prior_ratio(&self, z: &Tensor, act: Activation) -> Tensor {
        let (mu, log_var) = self.posterior(z, act);
        let up = draw(&mu, &log_var);
        let (pm, plv) = self.prior_below(&up.z, act);
        log_normal(z, &pm, &plv) + log_standard_normal(&up.z) - up.log_q
    }

    /// z ~ p(z | z₂) for `z2` `[…, latent]`.
    pub(crate) fn sample_below(&self, z2: &Tensor, act: Activation) -> Tensor {
        let (mu, log_var) = self.prior_below(z2, act);
        draw(&mu, &log_var).z
    }
}

/// `[…, 2L]` → its two halves `[…, L]` (mean, log-variance).
pub(crate) fn halves(t: &Tensor) -> (Tensor, Tensor) {
    let mut parts = t.chunk(2, -1);
    let log_var = parts.pop().expect("two halves");
    let mu = parts.pop().expect("two halves");
    (mu, log_var)
}

/// z = μ + σ ⊙ ε (reparameterized) with log N(z; μ, σ²) = −½ Σ (ε² + log σ² + ln 2π).
/// `mu` is `[B, L]` or `[k, B, L]`; each example's noise is its rows of the whole batch's
/// under data-parallel training.
pub(crate) fn draw(mu: &Tensor, log_var: &Tensor) -> Draw {
    match mu.size().as_slice() {
        &[k, b, l] => with_noise(mu, log_var, &k_rows(k, b, l, mu)),
        _ => with_noise(mu, log_var, &gm_core::dist::randn_rows_like(mu)),
    }
}

/// `k` draws per example from μ, log σ² `[B, L]`: z `[k, B, L]`, log q `[k, B]`; the same
/// values as [`draw`] of the two expanded to `[k, B, L]`, without computing σ k times.
pub(crate) fn draw_k(mu: &Tensor, log_var: &Tensor, k: i64) -> Draw {
    let (b, l) = (mu.size()[0], mu.size()[1]);
    with_noise(mu, log_var, &k_rows(k, b, l, mu))
}

/// ε `[k, B, L]`, drawn per example (row) as `[B, k, L]`.
fn k_rows(k: i64, b: i64, l: i64, like: &Tensor) -> Tensor {
    gm_core::dist::randn_rows(&[b, k, l], (like.kind(), like.device())).transpose(0, 1)
}

fn with_noise(mu: &Tensor, log_var: &Tensor, eps: &Tensor) -> Draw {
    let z = mu + (log_var * 0.5).exp() * eps;
    let log_q = ((eps.square() + log_var + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float);
    Draw { z, log_q }
}

/// log N(z; μ, diag e^{log_var}), summed over the last dimension.
pub(crate) fn log_normal(z: &Tensor, mu: &Tensor, log_var: &Tensor) -> Tensor {
    (((z - mu).square() * (-log_var).exp() + log_var + LOG_2PI) * -0.5).sum_dim_intlist(
        -1,
        false,
        Kind::Float,
    )
}

/// log N(z; 0, I), summed over the last dimension.
pub(crate) fn log_standard_normal(z: &Tensor) -> Tensor {
    ((z.square() + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float)
}
