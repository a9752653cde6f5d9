//! M1 of the stacked model M1+M2 (Kingma et al. 2014): a VAE trained first on every
//! training image, then frozen; its codes z₁ ~ q(z₁ | x) are the data M2 models.

use super::config::M2Config;
use crate::vae::{Vae, VaeConfig, LOG_2PI};
use gm_core::model::BuildContext;
use gm_core::Result;
use tch::{Kind, Tensor};

/// M1 and the number of updates it trains for.
pub(crate) struct M1 {
    pub(crate) vae: Vae,
    steps: u64,
}

impl M1 {
    /// A VAE with M2's activation and `init`, `m1_hidden` and a code of `m1_latent`
    /// dimensions; its decoder's likelihood follows the data as `vae`'s does, its output
    /// bias starts as `init` draws it.
    pub(crate) fn new(cfg: &M2Config, ctx: &BuildContext<'_>) -> Result<Self> {
        let vae_cfg = VaeConfig {
            hidden: cfg.m1_hidden.clone(),
            latent: cfg.m1_latent,
            activation: cfg.activation,
            init: cfg.init,
            data_bias: false,
            ..VaeConfig::default()
        };
        Ok(M1 {
            vae: Vae::new(vae_cfg, ctx)?,
            steps: cfg.m1_steps as u64,
        })
    }

    /// Whether the next step is M1's (from its optimizer's saved step count, so a resumed
    /// run is in the same phase).
    pub(crate) fn training(&self) -> bool {
        self.vae.opt.steps() < self.steps
    }

    /// Codes of `x` `[B, m1_latent]`, without gradients: a draw z₁ ~ q(z₁ | x), or its mean.
    pub(crate) fn codes(&self, x: &Tensor, draw: bool) -> Tensor {
        tch::no_grad(|| {
            let (mu, log_var) = self.vae.encode(x);
            if draw {
                &mu + (log_var * 0.5).exp() * mu.randn_like()
            } else {
                mu
            }
        })
    }

    /// A draw z₁ ~ q(z₁ | x) `[B, m1_latent]` (M2's data) and the mean over the batch of
    /// M1's one-draw ELBO log p(x | z₁) + log p(z₁) − log q(z₁ | x) at it, without gradients.
    pub(crate) fn codes_and_elbo(&self, x: &Tensor) -> (Tensor, Tensor) {
        tch::no_grad(|| {
            let (terms, z) = self.bound_terms(x);
            let log_prior = ((z.square() + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float);
            (z, (terms + log_prior).mean(Kind::Float))
        })
    }

    /// log p(x | z₁) − log q(z₁ | x) with z₁ ~ q(z₁ | x) `[B]`, and that z₁ `[B, m1_latent]`:
    /// with any lower bound on log p(z₁) added, a lower bound on log p(x).
    pub(crate) fn bound_terms(&self, x: &Tensor) -> (Tensor, Tensor) {
        let x = x.reshape([-1, self.vae.dim]);
        let (mu, log_var) = self.vae.encode(&x);
        let eps = mu.randn_like();
        let z = &mu + (&log_var * 0.5).exp() * &eps;
        let log_q =
            ((eps.square() + &log_var + LOG_2PI) * -0.5).sum_dim_intlist(-1, false, Kind::Float);
        let log_px = self.vae.log_px_given_z(&self.vae.decode_raw(&z), &x);
        (log_px - log_q, z)
    }
}
