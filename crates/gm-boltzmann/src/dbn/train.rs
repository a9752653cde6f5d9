//! Greedy layer-wise training of [`Dbn`] (§20.3): the trainer's epochs are dealt out to
//! the layers bottom up (`layer_epochs`); in layer l's epochs each batch is passed up
//! through layers 0 … l−1 (samples or probabilities) and layer l's RBM takes one step of
//! its own rule on it (CD-k, PCD-k …, the code of [`crate::rbm`]).

use super::config::Propagate;
use super::model::{layer_metric, Dbn};
use crate::rbm::MARGINAL_EPS;
use gm_core::data::Batch;
use gm_core::model::{Metrics, Model};
use gm_core::Result;
use gm_eval::ais::rbm::BernoulliRbm;
use tch::{Kind, Tensor};

impl Dbn {
    /// One greedy update on a batch `[B, …]`: the layer of this step's epoch trains on the
    /// batch passed up to it. Metrics: that RBM's, then `layer` (1-based), so each epoch's
    /// record in `metrics.jsonl` is one layer's. The caller counts the step
    /// ([`Dbn::advance`]).
    pub(super) fn greedy_step(&mut self, x: &Tensor) -> Result<Metrics> {
        let l = self.layer_at(self.steps_taken());
        let input = self.up_to(l, x);
        self.track_marginals(l, &input);
        let mut m = self.layers[l].train_step(&Batch::inputs(&input))?;
        m.push(("layer", layer_metric(l, input.device())));
        Ok(m)
    }

    /// Counts a training step (greedy or fine-tuning).
    pub(super) fn advance(&mut self) {
        tch::no_grad(|| {
            let _ = self.step.g_add_scalar_(1);
        });
    }

    /// The layer trained at (0-based) step `step`: the epoch `step / steps_per_epoch` falls
    /// in that layer's share of `layer_epochs`; past their sum, the top layer.
    pub fn layer_at(&self, step: i64) -> usize {
        let epoch = step / self.steps_per_epoch;
        self.layer_ends
            .iter()
            .position(|&end| epoch < end)
            .unwrap_or(self.layers.len() - 1)
    }

    /// The input of layer `l` for data `x` `[N, …]`: `x` passed up through layers
    /// 0 … l−1, as samples or probabilities (`propagate`); `[N, n_l]`.
    pub fn up_to(&self, l: usize, x: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let mut h = x.reshape([-1, self.visible()]);
            for layer in &self.layers[..l] {
                h = match self.cfg.propagate {
                    Propagate::Samples => layer.sample_h(&h),
                    Propagate::Means => layer.p_h(&h),
                };
            }
            h
        })
    }

    /// Folds a batch of layer `l`'s inputs into its running marginals and base-rate
    /// biases; on the layer's first batch, also sets its visible biases to those logits
    /// (Hinton's practical guide, §8, as `rbm` does with the data).
    pub(super) fn track_marginals(&self, l: usize, x: &Tensor) {
        let Some(m) = &self.marginals[l] else {
            return;
        };
        tch::no_grad(|| {
            let n = x.size()[0] as f64;
            let seen = m.seen.double_value(&[]);
            let batch = x.to_kind(Kind::Double).mean_dim(0, false, Kind::Double);
            let mean = &m.mean + (batch - &m.mean) * (n / (seen + n));
            m.mean.shallow_clone().copy_(&mean);
            let _ = m.seen.shallow_clone().fill_(seen + n);
            let base = BernoulliRbm::base_rate_biases(&mean, MARGINAL_EPS).to_kind(m.base.kind());
            m.base.shallow_clone().copy_(&base);
            if seen == 0.0 {
                self.layers[l].params().1.shallow_clone().copy_(&base);
            }
        });
    }
}
