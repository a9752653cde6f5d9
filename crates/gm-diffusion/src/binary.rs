//! The binomial diffusion of Sohl-Dickstein et al. (2015) for binary data, with a reverse
//! process parametrised through a prediction of x_0 (as D3PM, Austin et al. 2021).
//!
//! Forward, per pixel: q(x_t = 1 | x_{t−1}) = (1 − β_t) x_{t−1} + β_t / 2 (with probability
//! β_t the pixel is redrawn uniformly), so q(x_t = 1 | x_0) = ᾱ_t x_0 + (1 − ᾱ_t) / 2 and
//! x_T is nearly Bernoulli(½). The posterior q(x_{t−1} | x_t, x_0) is Bayes' rule on these
//! two kernels. Reverse: a network gives logits of p̃(x_0 | x_t), and by default
//! ([`Reverse::Joint`], D3PM's eq. 4) p(x_{t−1} | x_t) ∝ Σ_{x̃_0} q(x_{t−1}, x_t | x̃_0)
//! p̃(x̃_0 | x_t): the posterior q(x_{t−1} | x_t, x̃_0) averaged over p̃ reweighted by the
//! evidence q(x_t | x̃_0), which adds (2x_t − 1) ln((1 + ᾱ_t) / (1 − ᾱ_t)) to the logits, so
//! the network need not learn to copy x_t. [`Reverse::Posterior`] averages over p̃ itself.
//! At t = 1 either is the (reweighted) p̃(x_0 | x_1). Every pixel is independent given x_t.
//!
//! The bound on log p(x_0), in nats: −KL(q(x_T | x_0) ‖ Bernoulli(½)) − Σ_{t≥2} E_q
//! KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t)) + E_q log p(x_0 | x_1), each KL between
//! Bernoullis in closed form: a likelihood bound on binary images in the units of NADE,
//! the RBMs and the VAEs.

use crate::bound::sum_over_timesteps;
use crate::gaussian::Denoiser;
use crate::schedule::{at, Schedule};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Probabilities are kept in [EPS, 1 − EPS] before logs.
const EPS: f64 = 1e-6;

/// How the reverse step uses the network's p̃(x̃_0 | x_t).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reverse {
    /// p(x_{t−1} | x_t) ∝ Σ_{x̃_0} q(x_{t−1}, x_t | x̃_0) p̃(x̃_0 | x_t) (D3PM, Austin et al. 2021).
    #[default]
    Joint,
    /// p(x_{t−1} | x_t) = Σ_{x̃_0} q(x_{t−1} | x_t, x̃_0) p̃(x̃_0 | x_t).
    Posterior,
}

/// A binomial diffusion: the schedule, its ᾱ_t tables on a device, the reverse form.
#[derive(Debug)]
pub struct BinaryDiffusion {
    schedule: Schedule,
    alpha_bar: Tensor,
    beta: Tensor,
    /// ln((1 + ᾱ_t) / (1 − ᾱ_t)): the log-likelihood ratio of x_t = 1 under x_0 = 1 vs 0.
    evidence: Tensor,
    reverse: Reverse,
}

/// KL(Bernoulli(p) ‖ Bernoulli(q)) per entry.
pub fn bernoulli_kl(p: &Tensor, q: &Tensor) -> Tensor {
    let (p, q) = (p.clamp(EPS, 1.0 - EPS), q.clamp(EPS, 1.0 - EPS));
    let one_p: Tensor = 1.0 - &p;
    let one_q: Tensor = 1.0 - &q;
    &p * (p.log() - q.log()) + &one_p * (one_p.log() - one_q.log())
}

fn per_example(v: Tensor) -> Tensor {
    let kind = v.kind();
    v.flatten(1, -1).sum_dim_intlist(-1, false, kind)
}

impl BinaryDiffusion {
    /// The diffusion of `schedule`, tables in `kind` on `device`, reverse form `Joint`.
    pub fn new(schedule: Schedule, kind: Kind, device: Device) -> Self {
        let ab: Vec<f64> = (0..=schedule.steps())
            .map(|t| schedule.alpha_bar(t))
            .collect();
        let beta: Vec<f64> = (0..=schedule.steps())
            .map(|t| if t == 0 { 0.0 } else { schedule.beta(t) })
            .collect();
        // t = 0 (x_t = x_0) is never asked for; 0 keeps the table finite.
        let evidence: Vec<f64> = ab
            .iter()
            .enumerate()
            .map(|(t, a)| {
                if t == 0 {
                    0.0
                } else {
                    ((1.0 + a) / (1.0 - a)).ln()
                }
            })
            .collect();
        let table = |v: &[f64]| Tensor::from_slice(v).to_kind(kind).to_device(device);
        BinaryDiffusion {
            alpha_bar: table(&ab),
            beta: table(&beta),
            evidence: table(&evidence),
            reverse: Reverse::Joint,
            schedule,
        }
    }

    /// The same diffusion with reverse form `reverse`.
    pub fn with_reverse(mut self, reverse: Reverse) -> Self {
        self.reverse = reverse;
        self
    }

    /// The logits of the x̃_0 weights the reverse step averages over: the network's `logits`
    /// plus, for `Joint`, the evidence (2x_t − 1) ln((1 + ᾱ_t) / (1 − ᾱ_t)) of q(x_t | x̃_0).
    pub fn weight_logits(&self, logits: &Tensor, xt: &Tensor, t: &Tensor) -> Tensor {
        match self.reverse {
            Reverse::Posterior => logits.shallow_clone(),
            Reverse::Joint => logits + (xt * 2.0 - 1.0) * at(&self.evidence, t, xt),
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// T.
    pub fn steps(&self) -> i64 {
        self.schedule.steps()
    }

    /// q(x_t = 1 | x_0) for t `[B]` (t = 0 gives x_0).
    pub fn marginal(&self, x0: &Tensor, t: &Tensor) -> Tensor {
        let ab = at(&self.alpha_bar, t, x0);
        &ab * x0 + (1.0 - ab) * 0.5
    }

    /// A draw of q(x_t | x_0).
    pub fn q_sample(&self, x0: &Tensor, t: &Tensor) -> Tensor {
        self.marginal(x0, t).bernoulli()
    }

    /// q(x_{t−1} = 1 | x_t, x_0) for t ≥ 1; `x0` may be a probability (then this is the
    /// posterior at that value, linear in it only through the sum of the two cases).
    pub fn posterior(&self, x0: &Tensor, xt: &Tensor, t: &Tensor) -> Tensor {
        let m = self.marginal(x0, &(t - 1));
        let half_beta = at(&self.beta, t, xt) * 0.5;
        // P(x_t | x_{t−1} = 1) and P(x_t | x_{t−1} = 0).
        let keep: Tensor = 1.0 - &half_beta;
        let a1 = xt * &keep + (1.0 - xt) * &half_beta;
        let a0 = xt * &half_beta + (1.0 - xt) * &keep;
        let num = &a1 * &m;
        &num / (&num + a0 * (1.0 - &m))
    }

    /// p(x_{t−1} = 1 | x_t) = Σ_{x̃_0} q(x_{t−1} = 1 | x_t, x̃_0) w(x̃_0), w from the
    /// network's `logits` through [`Self::weight_logits`].
    pub fn reverse(&self, logits: &Tensor, xt: &Tensor, t: &Tensor) -> Tensor {
        let p1 = self.weight_logits(logits, xt, t).sigmoid();
        let one = self.posterior(&xt.ones_like(), xt, t);
        let zero = self.posterior(&xt.zeros_like(), xt, t);
        &p1 * one + (1.0 - &p1) * zero
    }

    /// KL(q(x_T | x_0) ‖ Bernoulli(½)) per example `[B]`.
    pub fn prior_kl(&self, x0: &Tensor) -> Tensor {
        let t = Tensor::full([x0.size()[0]], self.steps(), (Kind::Int64, x0.device()));
        per_example(bernoulli_kl(&self.marginal(x0, &t), &x0.full_like(0.5)))
    }

    /// The bound's term at each example's t `[B]` (nats `[B]`): −log p(x_0 | x_1) where
    /// t = 1, else KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t)), at a draw x_t ~ q(x_t | x_0);
    /// and the network's own logits of p̃(x_0 | x_t) there.
    pub fn term(
        &self,
        net: &dyn Denoiser,
        x0: &Tensor,
        t: &Tensor,
        train: bool,
    ) -> (Tensor, Tensor) {
        let xt = self.q_sample(x0, t);
        let logits = net.predict(&xt, t, train);
        let p = self.reverse(&logits, &xt, t);
        let kl = per_example(bernoulli_kl(&self.posterior(x0, &xt, t), &p));
        let decoder = self.weight_logits(&logits, &xt, t);
        let nll = per_example(decoder.binary_cross_entropy_with_logits::<Tensor>(
            x0,
            None,
            None,
            tch::Reduction::None,
        ));
        (kl.where_self(&t.gt(1), &nll), logits)
    }

    /// An estimate of the bound on log p(x_0) per example `[B]` and its variance from the
    /// timestep subset: prior and decoder exact, `k` timesteps t ≥ 2 per example.
    pub fn bound(&self, net: &dyn Denoiser, x0: &Tensor, k: i64) -> (Tensor, Tensor) {
        let (b, dev) = (x0.size()[0], x0.device());
        let one = Tensor::ones([b], (Kind::Int64, dev));
        let total = -self.prior_kl(x0) - self.term(net, x0, &one, false).0;
        let term = |t: &Tensor| self.term(net, x0, t, false).0;
        let (sum, var) = sum_over_timesteps(b, self.steps(), k, dev, &term);
        (total - sum, var)
    }

    /// The training loss: a one-timestep estimate of the negative bound per example
    /// (prior, decoder, and T − 1 times the KL at a uniform t ≥ 2), plus `aux` times the
    /// cross-entropy of p̃(x_0 | x_t) at that t (D3PM's auxiliary loss); mean over examples.
    pub fn loss(&self, net: &dyn Denoiser, x0: &Tensor, aux: f64) -> Tensor {
        let (b, steps, dev) = (x0.size()[0], self.steps(), x0.device());
        let one = Tensor::ones([b], (Kind::Int64, dev));
        let mut loss = self.prior_kl(x0) + self.term(net, x0, &one, true).0;
        if steps > 1 {
            let t = Tensor::randint_low(2, steps + 1, [b], (Kind::Int64, dev));
            let (kl, logits) = self.term(net, x0, &t, true);
            loss += kl * (steps - 1) as f64;
            if aux > 0.0 {
                let ce = per_example(logits.binary_cross_entropy_with_logits::<Tensor>(
                    x0,
                    None,
                    None,
                    tch::Reduction::None,
                ));
                loss += ce * aux;
            }
        }
        loss.mean(x0.kind())
    }

    /// Ancestral samples from x_T ~ Bernoulli(½): `hook(t_next, x)` after every step may
    /// replace x (completion); x_0 is a draw of p(x_0 | x_1).
    pub fn sample_from(
        &self,
        net: &dyn Denoiser,
        start: Tensor,
        hook: &mut dyn FnMut(i64, Tensor) -> Tensor,
    ) -> Tensor {
        let (b, dev) = (start.size()[0], start.device());
        let mut x = start;
        for t in (1..=self.steps()).rev() {
            let tt = Tensor::full([b], t, (Kind::Int64, dev));
            let p = self.reverse(&net.predict(&x, &tt, false), &x, &tt);
            x = hook(t - 1, p.bernoulli());
        }
        x
    }
}
