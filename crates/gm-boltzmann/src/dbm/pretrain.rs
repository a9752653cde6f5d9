//! Greedy layer-wise pre-training of a [`Dbm`] (*Deep Learning* §20.4.4; Salakhutdinov &
//! Hinton 2009, §3.1), run once before the first joint update when `[model.pretrain]
//! epochs` > 0.
//!
//! RBM l (l = 1 … L) joins layers l − 1 and l, with weights W, visible biases a and hidden
//! biases c. Its conditionals are p(x_l | x_{l−1}) = σ(c + α_up · x_{l−1} W) and
//! p(x_{l−1} | x_l) = σ(a + α_down · x_l Wᵀ), where α_up = 2 for the bottom RBM (the visible
//! layer duplicated with tied weights, its copies kept equal), α_down = 2 for the top one
//! (the top-down input doubled) and both are 1 otherwise. Each RBM is trained by CD-k or
//! PCD-k (`method`, `gibbs_steps`) with SGD (`lr`, `momentum` after `initial_momentum` for
//! the first `momentum_after` epochs, `weight_decay` on W) for `epochs` passes over its
//! data: the training images for RBM 1, samples of σ(c + α_up x W) of the RBM below for
//! the others.
//!
//! **Composition.** In the DBM every hidden layer below the top receives input from both
//! neighbours, where each RBM saw input from one side only, doubled for the end RBMs. So
//! that each DBM conditional is the average of the two RBM conditionals' inputs (the
//! argument of the paper), the composed parameters are W_l = (α_up α_down / 2) W^(l) (the
//! end weights kept, the middle ones halved), b_0 = a^(1), b_l = ½ (c^(l) + a^(l+1)) for
//! 0 < l < L and b_L = c^(L).

use super::config::{PretrainConfig, PretrainMethod};
use super::model::Dbm;
use gm_core::sampling::bernoulli::sample as bernoulli;
use gm_core::Result;
use tch::{Kind, Tensor};

/// The settings of one pre-training update.
struct Step {
    k: i64,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
}

/// One RBM of the greedy stack: W `[n_{l−1}, n_l]`, visible biases a, hidden biases c and
/// the input multipliers of its two conditionals.
pub struct LayerRbm {
    /// Weights W `[n_{l−1}, n_l]`.
    pub w: Tensor,
    /// Visible (layer l − 1) biases a.
    pub a: Tensor,
    /// Hidden (layer l) biases c.
    pub c: Tensor,
    /// Multiplier of the bottom-up input x W (2 for the bottom RBM).
    pub up: f64,
    /// Multiplier of the top-down input h Wᵀ (2 for the top RBM).
    pub down: f64,
}

impl LayerRbm {
    /// p(x_l = 1 | x_{l−1}) = σ(c + up · x_{l−1} W).
    pub fn hidden_probs(&self, v: &Tensor) -> Tensor {
        (v.matmul(&self.w) * self.up + &self.c).sigmoid()
    }

    /// p(x_{l−1} = 1 | x_l) = σ(a + down · x_l Wᵀ).
    pub fn visible_probs(&self, h: &Tensor) -> Tensor {
        (h.matmul(&self.w.tr()) * self.down + &self.a).sigmoid()
    }

    /// `k` Gibbs sweeps from hidden states `h`: the final (v, p(h | v), h).
    fn gibbs(&self, h: &Tensor, k: i64) -> (Tensor, Tensor, Tensor) {
        let mut h = h.shallow_clone();
        let (mut v, mut ph) = (Tensor::new(), Tensor::new());
        for _ in 0..k {
            v = bernoulli(&self.visible_probs(&h));
            ph = self.hidden_probs(&v);
            h = bernoulli(&ph);
        }
        (v, ph, h)
    }

    /// One SGD step of CD-k (or PCD-k from `chains`, advanced in place) on the batch `v`,
    /// moving the velocities `vel` (W, a, c) by `step`.
    fn update(
        &mut self,
        v: &Tensor,
        chains: Option<&mut Tensor>,
        step: &Step,
        vel: &mut [Tensor; 3],
    ) {
        let ph = self.hidden_probs(v);
        let start = match &chains {
            Some(c) => c.shallow_clone(),
            None => bernoulli(&ph),
        };
        let (vn, phn, hn) = self.gibbs(&start, step.k);
        if let Some(c) = chains {
            *c = hn;
        }
        let (n, m) = (v.size()[0] as f64, vn.size()[0] as f64);
        let kind = v.kind();
        let grads = [
            v.tr().mm(&ph) / n - vn.tr().mm(&phn) / m - &self.w * step.weight_decay,
            v.mean_dim(0, false, kind) - vn.mean_dim(0, false, kind),
            ph.mean_dim(0, false, kind) - phn.mean_dim(0, false, kind),
        ];
        for ((p, vel), g) in [&mut self.w, &mut self.a, &mut self.c]
            .into_iter()
            .zip(vel.iter_mut())
            .zip(grads)
        {
            *vel = &*vel * step.momentum + g * step.lr;
            *p += &*vel;
        }
    }
}

impl Dbm {
    /// The multipliers (α_up, α_down) of RBM `l` of this DBM's stack.
    fn multipliers(&self, l: usize) -> (f64, f64) {
        let up = if l == 1 { 2.0 } else { 1.0 };
        let down = if l == self.depth() { 2.0 } else { 1.0 };
        (up, down)
    }

    /// The greedy stack's RBMs, started from the DBM's current parameters (W_l, hidden
    /// biases 0, RBM 1's visible biases b_0) and trained on `x` `[N, …]` as configured; the
    /// layers not listed in `pretrain.layers` are left untrained.
    pub fn pretrain_rbms(&self, x: &Tensor) -> Vec<LayerRbm> {
        tch::no_grad(|| {
            let p = &self.cfg.pretrain;
            let mut data = self.flat(&x.to_device(self.base_b.device()));
            let mut out = Vec::new();
            for l in 1..=self.depth() {
                let (up, down) = self.multipliers(l);
                let mut rbm = LayerRbm {
                    w: self.weights[l - 1].detach().copy(),
                    a: if l == 1 {
                        self.biases[0].detach().copy()
                    } else {
                        Tensor::zeros([self.sizes[l - 1]], (self.kind, self.base_b.device()))
                    },
                    c: Tensor::zeros([self.sizes[l]], (self.kind, self.base_b.device())),
                    up,
                    down,
                };
                if p.trains(l) {
                    let t = std::time::Instant::now();
                    self.train_rbm(&mut rbm, &data, p);
                    tracing::info!(
                        "dbm pre-training: RBM {l} ({}-{}, input ×{up} up, ×{down} down) \
                         trained {} epochs in {:.1} s",
                        self.sizes[l - 1],
                        self.sizes[l],
                        p.epochs,
                        t.elapsed().as_secs_f64()
                    );
                }
                data = bernoulli(&rbm.hidden_probs(&data));
                out.push(rbm);
            }
            out
        })
    }

    /// `p.epochs` passes of CD-k / PCD-k over `data` `[N, n]` in shuffled batches.
    pub(super) fn train_rbm(&self, rbm: &mut LayerRbm, data: &Tensor, p: &PretrainConfig) {
        let n = data.size()[0];
        let b = self.pretrain_batch.min(n);
        let mut chains = match p.method {
            PretrainMethod::Pcd => Some(bernoulli(&Tensor::full(
                [b, rbm.c.size()[0]],
                0.5,
                (self.kind, self.base_b.device()),
            ))),
            PretrainMethod::Cd => None,
        };
        let mut vel = [&rbm.w, &rbm.a, &rbm.c].map(Tensor::zeros_like);
        for epoch in 0..p.epochs {
            let step = Step {
                k: p.gibbs_steps,
                lr: p.lr,
                momentum: p.momentum_at(epoch),
                weight_decay: p.weight_decay,
            };
            let perm = Tensor::randperm(n, (Kind::Int64, data.device()));
            for start in (0..n - b + 1).step_by(b as usize) {
                let v = data.index_select(0, &perm.narrow(0, start, b));
                rbm.update(&v, chains.as_mut(), &step, &mut vel);
            }
        }
    }

    /// Writes the composed parameters of `rbms` (see the module docs) into the DBM.
    pub fn compose(&mut self, rbms: &[LayerRbm]) {
        tch::no_grad(|| {
            let depth = self.depth();
            for (i, r) in rbms.iter().enumerate() {
                let l = i + 1;
                self.weights[i]
                    .shallow_clone()
                    .copy_(&(&r.w * (r.up * r.down / 2.0)));
                let bias = match rbms.get(l) {
                    Some(above) => (&r.c + &above.a) * 0.5,
                    None => r.c.shallow_clone(),
                };
                self.biases[l].shallow_clone().copy_(&bias);
            }
            self.biases[0].shallow_clone().copy_(&rbms[0].a);
            debug_assert_eq!(rbms.len(), depth);
        })
    }

    /// Pre-trains on `x` and composes the result into the DBM.
    pub fn pretrain(&mut self, x: &Tensor) -> Result<()> {
        let rbms = self.pretrain_rbms(x);
        self.compose(&rbms);
        Ok(())
    }
}
