//! Mean-field inference in an [`MpDbm`] with some variables observed: the recurrent net of
//! multi-prediction training (*Deep Learning* §20.4.5, figure 20.5).
//!
//! Layers are v = x_0, h_1 … h_L and the label y = x_{L+1}, joined to h_L by U. Observed
//! pixels and labels are clamped; every other variable has a factorial Q: Bernoulli means
//! for v and h, a categorical for y. The means start with the missing pixels at the
//! training marginals, an unobserved label uniform and one bottom-up pass through the
//! hidden layers; each of the `steps` iterations then applies the fixed-point equations to
//! the odd layers, then the even ones (x_{l,j} ← σ(b_l + x_{l−1} W_l + x_{l+1} W_{l+1}ᵀ)_j,
//! with y U ᵀ as h_L's top-down input and y ← softmax(c + h_L U)). Outside `no_grad` the
//! whole unrolled computation records gradients: that is the net back-propagation trains.
//!
//! With `averaged_inputs` (the multi-inference trick as gm applies it) an observed pixel
//! enters its neighbours' equations as the average of its value and the model's current
//! prediction of it, ½ (v_j + σ(b_0 + h_1 W_1ᵀ)_j): an approximate average over the nets in
//! which that pixel is an input or a target.

use super::model::MpDbm;
use crate::dbm::layer_input;
use tch::{Kind, Tensor};

/// What is observed of a batch: values with masks (1 = observed).
pub struct Observed<'a> {
    /// Pixels `[N, D]` (entries not observed are ignored).
    pub v: &'a Tensor,
    /// Which pixels are observed, `[N, D]`.
    pub v_mask: &'a Tensor,
    /// Labels one-hot `[N, K]` (rows not observed are ignored).
    pub y: &'a Tensor,
    /// Which labels are observed, `[N, 1]`.
    pub y_mask: &'a Tensor,
}

/// The state after inference.
pub struct Inferred {
    /// μ_0 (observed pixels, the others filled with Q(v_j = 1)), μ_1 … μ_L, `[N, n_l]`.
    pub means: Vec<Tensor>,
    /// Q(y), or the observed one-hot label, `[N, K]`.
    pub label: Tensor,
    /// The logits of every pixel given the final μ_1, b_0 + μ_1 W_1ᵀ, `[N, D]`.
    pub v_logits: Tensor,
    /// The label's logits given the final μ_L, c + μ_L U, `[N, K]`.
    pub y_logits: Tensor,
}

impl MpDbm {
    /// `steps` mean-field iterations with `obs` clamped (see the module docs).
    pub fn infer(&self, obs: &Observed<'_>, steps: i64, averaged_inputs: bool) -> Inferred {
        let depth = self.depth();
        let free_v: Tensor = 1.0 - obs.v_mask;
        let clamped_v = obs.v * obs.v_mask;
        let free_y: Tensor = 1.0 - obs.y_mask;
        let clamped_y = obs.y * obs.y_mask;
        let mut mu = vec![&clamped_v + &free_v * self.biases[0].sigmoid().unsqueeze(0)];
        for l in 1..=depth {
            mu.push(layer_input(&self.weights, &self.biases, l, Some(&mu[l - 1]), None).sigmoid());
        }
        let mut label = &clamped_y + &free_y / self.classes as f64;
        for _ in 0..steps {
            for odd in [true, false] {
                for l in (0..=depth + 1).filter(|l| (l % 2 == 1) == odd) {
                    if l == depth + 1 {
                        label = &clamped_y
                            + &free_y * self.label_logits(&mu[depth]).softmax(1, self.kind);
                    } else if l == 0 {
                        let p = self.visible_logits(&mu[1]).sigmoid();
                        let shown = if averaged_inputs {
                            (obs.v + &p) * 0.5
                        } else {
                            obs.v.shallow_clone()
                        };
                        mu[0] = shown * obs.v_mask + p * &free_v;
                    } else {
                        mu[l] = self.hidden_input(&mu, &label, l).sigmoid();
                    }
                }
            }
        }
        Inferred {
            v_logits: self.visible_logits(&mu[1]),
            y_logits: self.label_logits(&mu[depth]),
            means: mu,
            label,
        }
    }

    /// b_0 + x_1 W_1ᵀ, `[N, D]`.
    pub(super) fn visible_logits(&self, h1: &Tensor) -> Tensor {
        layer_input(&self.weights, &self.biases, 0, None, Some(h1))
    }

    /// c + h_L U, `[N, K]`.
    pub(super) fn label_logits(&self, top: &Tensor) -> Tensor {
        top.matmul(&self.label_w) + self.label_b.unsqueeze(0)
    }

    /// The total input of hidden layer `l` (1 ≤ l ≤ L) from its neighbours in `x` (x_0 …
    /// x_L) and the label `y` (h_L's top-down input y Uᵀ).
    pub(super) fn hidden_input(&self, x: &[Tensor], y: &Tensor, l: usize) -> Tensor {
        let a = layer_input(
            &self.weights,
            &self.biases,
            l,
            Some(&x[l - 1]),
            x.get(l + 1),
        );
        if l == self.depth() {
            a + y.matmul(&self.label_w.tr())
        } else {
            a
        }
    }

    /// Q(y | the observed pixels) `[N, K]` for pixels `v` `[N, D]` with `v_mask` (1 =
    /// observed), label unobserved, after `mf_steps` iterations.
    pub fn classify(&self, v: &Tensor, v_mask: &Tensor, averaged_inputs: bool) -> Tensor {
        tch::no_grad(|| {
            let n = v.size()[0];
            let opts = (self.kind, v.device());
            let y = Tensor::zeros([n, self.classes], opts);
            let y_mask = Tensor::zeros([n, 1], opts);
            let obs = Observed {
                v,
                v_mask,
                y: &y,
                y_mask: &y_mask,
            };
            self.infer(&obs, self.cfg.mf_steps, averaged_inputs).label
        })
    }

    /// The labels `y` `i64 [N]` as one-hot rows `[N, K]` in the parameters' kind (−1, an
    /// unobserved label, gives a zero row).
    pub(super) fn one_hot(&self, y: &Tensor) -> Tensor {
        let known = y.ge(0);
        let idx = y.clamp_min(0);
        idx.one_hot(self.classes).to_kind(self.kind) * known.unsqueeze(1).to_kind(self.kind)
    }

    /// Kind of the parameters (for masks built by callers).
    pub fn kind(&self) -> Kind {
        self.kind
    }
}
