//! Variational stochastic maximum likelihood (*Deep Learning* Algorithm 20.1), generalised
//! to biases and L layers, with hand-written updates.
//!
//! Each step: mean-field inference of μ for the batch V (positive phase); `gibbs_steps`
//! block-Gibbs sweeps of the persistent chains X̃ (negative phase, kept in the checkpoint);
//! then the descent direction
//!
//! g_{W_l} = (1/C) X̃_{l−1}ᵀ X̃_l − (1/N) μ_{l−1}ᵀ μ_l + λ W_l,
//! g_{b_l} = mean X̃_l − mean μ_l,
//!
//! (μ_0 = V, C chains, λ = `weight_decay`) goes to the optimizer. It is the gradient of the
//! surrogate mean_n E(v_n, μ_n) − mean_c E(x̃_c) + ½ λ Σ_l ‖W_l‖² with μ and X̃ held fixed
//! ([`Dbm::surrogate`], checked against autograd in the tests). With `negative_phase =
//! "mean-field"`, X̃ is replaced by the means of one mean-field pass from the chains.
//!
//! With `centering` on (Melchior et al. 2016), the statistics are those of x_l − o_l and
//! the offsets o_l follow running means of the positive phase; the parameters stay stored
//! in the plain form, so inference, sampling, AIS and the exact paths are unchanged.

use super::config::NegativePhase;
use super::inference::MeanField;
use super::model::Dbm;
use gm_core::model::Metrics;
use gm_core::Result;
use tch::Tensor;

impl Dbm {
    /// One update on a batch `[B, …]`; metrics from the positive phase (before the update).
    pub(super) fn step(&mut self, x: &Tensor) -> Result<Metrics> {
        let (mf, grads) = self.prepare(x)?;
        let metrics = self.mean_field_metrics(&mf);
        self.apply(grads)?;
        Ok(metrics)
    }

    /// One update on a batch `[B, …]` without metrics (what `step` does, for benchmarks);
    /// returns the mean-field iterations taken.
    pub fn train_batch(&mut self, x: &Tensor) -> Result<i64> {
        let (mf, grads) = self.prepare(x)?;
        self.apply(grads)?;
        Ok(mf.iters)
    }

    /// Everything of an update but the step: pre-training if due, the positive phase, the
    /// chains advanced, the offsets moved; returns the mean field and the gradients.
    fn prepare(&mut self, x: &Tensor) -> Result<(MeanField, Vec<Tensor>)> {
        self.pretrain_once()?;
        let v = self.flat(x);
        let mf = self.mean_field(&v);
        let chains = self.advance_chains()?;
        let neg = self.negative_states(chains);
        self.update_offsets(&mf.means)?;
        let grads = self.hand_gradients(&mf.means, &neg);
        Ok((mf, grads))
    }

    /// Pre-trains on the training set if it is on and has not run yet (the flag is in the
    /// checkpoint, so a resumed run does not repeat it).
    fn pretrain_once(&mut self) -> Result<()> {
        let Some(flag) = self.pretrained.as_ref().map(Tensor::shallow_clone) else {
            return Ok(());
        };
        if flag.double_value(&[0]) == 0.0 {
            let x = self.train_x.shallow_clone();
            self.pretrain(&x)?;
            let _ = tch::no_grad(|| flag.shallow_clone().fill_(1.0));
        }
        Ok(())
    }

    /// `gibbs_steps` sweeps of the persistent chains, written back in place; returns them
    /// (this rank's rows when the ranks split them: [`gm_core::dist::advance_chains`]).
    fn advance_chains(&mut self) -> Result<Vec<Tensor>> {
        gm_core::dist::advance_chains(&self.chains, |mut x| {
            self.gibbs(&mut x, self.cfg.gibbs_steps);
            x
        })
    }

    /// The negative phase's states: the chains', or with `negative_phase = "mean-field"` the
    /// means of one mean-field pass from them (odd layers given the even states, then the
    /// even layers given those means).
    pub(super) fn negative_states(&self, chains: Vec<Tensor>) -> Vec<Tensor> {
        if self.cfg.negative_phase == NegativePhase::Samples {
            return chains;
        }
        tch::no_grad(|| {
            let mut q = chains;
            for odd in [true, false] {
                for l in self.parity_layers(odd) {
                    q[l] = self.input(&q, l).sigmoid();
                }
            }
            q
        })
    }

    /// Moves the centering offsets toward the batch means of the positive phase (the
    /// data for v, the mean-field means above), when centering is on.
    fn update_offsets(&self, pos: &[Tensor]) -> Result<()> {
        let Some(offsets) = &self.offsets else {
            return Ok(());
        };
        tch::no_grad(|| {
            for (o, m) in offsets.iter().zip(pos) {
                let mean = gm_core::dist::batch_mean(m)?;
                let _ = o.shallow_clone().lerp_(&mean, self.cfg.centering_rate);
            }
            Ok(())
        })
    }

    /// The descent direction of Algorithm 20.1 for positive-phase means `pos` (μ_0 = v
    /// first) and negative-phase states `neg` (one tensor per layer), in the order
    /// W_1 … W_L, b_0 … b_L. With centering on, the statistics are taken of x_l − o_l
    /// (the gradient G′ of the centered energy −Σ (x_l−o_l)·b′_l − Σ (x_{l−1}−o_{l−1})ᵀ
    /// W_l (x_l−o_l)), and the bias directions become those of the stored biases
    /// b_l = b′_l − W_lᵀ o_{l−1} − W_{l+1} o_{l+1}: g_{b_l} = G′_{b_l} − G_{W_l}ᵀ o_{l−1}
    /// − G_{W_{l+1}} o_{l+1}, so a step moves the model as the centered step would.
    pub fn hand_gradients(&self, pos: &[Tensor], neg: &[Tensor]) -> Vec<Tensor> {
        tch::no_grad(|| {
            let (n, c) = (pos[0].size()[0] as f64, neg[0].size()[0] as f64);
            let (pos, neg) = (self.centred(pos), self.centred(neg));
            let mut gw = Vec::new();
            for l in 1..=self.depth() {
                let mut g = neg[l - 1].tr().mm(&neg[l]) * (1.0 / c)
                    - pos[l - 1].tr().mm(&pos[l]) * (1.0 / n);
                if self.cfg.weight_decay > 0.0 {
                    g += &self.weights[l - 1] * self.cfg.weight_decay;
                }
                gw.push(g);
            }
            let mut gb: Vec<Tensor> = (0..=self.depth())
                .map(|l| {
                    neg[l].mean_dim(0, false, self.kind) - pos[l].mean_dim(0, false, self.kind)
                })
                .collect();
            if let Some(o) = &self.offsets {
                for (l, g) in gb.iter_mut().enumerate() {
                    if l >= 1 {
                        *g -= gw[l - 1].tr().mv(&o[l - 1]);
                    }
                    if l < self.depth() {
                        *g -= gw[l].mv(&o[l + 1]);
                    }
                }
            }
            gw.into_iter().chain(gb).collect()
        })
    }

    /// x_l − o_l per layer with centering on, else the states themselves.
    fn centred(&self, x: &[Tensor]) -> Vec<Tensor> {
        match &self.offsets {
            Some(o) => x.iter().zip(o).map(|(t, o)| t - o).collect(),
            None => x.iter().map(Tensor::shallow_clone).collect(),
        }
    }

    /// The surrogate whose gradient (μ and the chains held fixed) is the update:
    /// mean E(v, μ) − mean E(x̃) + ½ λ Σ_l ‖W_l‖², a 0-dim tensor recording gradients.
    pub fn surrogate(&self, pos: &[Tensor], neg: &[Tensor]) -> Tensor {
        let detach = |x: &[Tensor]| -> Vec<Tensor> { x.iter().map(|t| t.detach()).collect() };
        let mut s =
            self.energy(&detach(pos)).mean(self.kind) - self.energy(&detach(neg)).mean(self.kind);
        if self.cfg.weight_decay > 0.0 {
            for w in &self.weights {
                s += w.square().sum(self.kind) * (0.5 * self.cfg.weight_decay);
            }
        }
        s
    }
}
