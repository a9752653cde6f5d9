//! The Gaussian diffusion and its learned reverse process (Sohl-Dickstein et al. 2015; the
//! ε-prediction form of Ho et al. 2020).
//!
//! Forward: q(x_t | x_{t−1}) = N(√(1 − β_t) x_{t−1}, β_t I), so q(x_t | x_0) =
//! N(√ᾱ_t x_0, (1 − ᾱ_t) I) in closed form. Reverse: p(x_{t−1} | x_t) = N(μ_θ(x_t, t), σ_t² I)
//! with μ_θ = (x_t − β_t / √(1 − ᾱ_t) · ε_θ(x_t, t)) / √α_t, σ_t² fixed or learned (`Variance`).
//!
//! The variational bound on log p(x_0), in nats: log p(x_0) ≥ −KL(q(x_T | x_0) ‖ N(0, I))
//! − Σ_{t=2}^T E_q KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t)) plus E_q log p(x_0 | x_1),
//! every KL between Gaussians in closed form; [`GaussianDiffusion::bound`] sums the prior
//! and decoder terms exactly and estimates the sum over t ≥ 2 from a random subset of
//! timesteps without replacement (unbiased; all of them when asked for T − 1).

use crate::schedule::{at, Schedule};
use tch::{Device, Kind, Tensor};

/// ln 2π.
const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// A network told the timestep: `x` `[B, …]`, `t` Int64 `[B]` in 1 ..= T, an output shaped
/// like `x` (the noise ε_θ(x_t, t) for the Gaussian diffusion, logits of x_0 for the binary one).
pub trait Denoiser {
    /// The prediction at (x_t, t), shaped like `x`.
    fn predict(&self, x: &Tensor, t: &Tensor, train: bool) -> Tensor;
}

/// The reverse process' fixed variance σ_t² for t ≥ 2 (the decoder p(x_0 | x_1) always
/// uses β_1, since β̃_1 = 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Variance {
    /// σ_t² = β_t (the upper of Ho et al.'s two choices).
    #[default]
    Beta,
    /// σ_t² = β̃_t, the variance of q(x_{t−1} | x_t, x_0) (the lower one).
    Posterior,
    /// Learned per entry (Sohl-Dickstein et al. 2015 learn the reverse covariance; here in
    /// the form of Nichol & Dhariwal 2021): the network also outputs v, and
    /// log σ_t² = f log β_t + (1 − f) log β̃_t with f = (v + 1) / 2 (β̃_1 read as β̃_2).
    Learned,
}

/// How samples are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// The reverse chain, T steps, x_0 = μ_θ(x_1, 1) without the last noise.
    Ancestral,
    /// DDIM with η = 0 (Song et al. 2021) on this many evenly spaced timesteps.
    Ddim(i64),
}

/// A reverse step p(x_{t−1} | x_t) = N(mean, var): its mean, variance and log-variance,
/// each shaped like x_t (fixed variances broadcast from `[B, 1, …]`).
#[derive(Debug)]
pub struct ReverseStep {
    /// μ_θ(x_t, t).
    pub mean: Tensor,
    /// σ_t².
    pub var: Tensor,
    /// log σ_t².
    pub log_var: Tensor,
}

/// Per-timestep coefficients, each a `[T + 1]` tensor indexed by t (entry 0 unused).
#[derive(Debug)]
struct Tables {
    sqrt_ab: Tensor,
    sqrt_1m_ab: Tensor,
    post_a: Tensor,
    post_b: Tensor,
    log_post_var: Tensor,
    post_var: Tensor,
    var: Tensor,
    log_var: Tensor,
    log_beta: Tensor,
    log_post_clipped: Tensor,
}

/// A schedule with its coefficient tables on a device, in a float kind.
#[derive(Debug)]
pub struct GaussianDiffusion {
    schedule: Schedule,
    variance: Variance,
    tables: Tables,
}

impl GaussianDiffusion {
    /// The diffusion of `schedule`, its tables in `kind` on `device`.
    pub fn new(schedule: Schedule, variance: Variance, kind: Kind, device: Device) -> Self {
        let s = &schedule;
        let table = |f: &dyn Fn(i64) -> f64| {
            let v: Vec<f64> = (0..=s.steps())
                .map(|t| if t == 0 { 0.0 } else { f(t) })
                .collect();
            Tensor::from_slice(&v).to_kind(kind).to_device(device)
        };
        let var_t = |t: i64| match (variance, t) {
            (Variance::Posterior, t) if t >= 2 => s.posterior_variance(t),
            _ => s.beta(t),
        };
        // β̃_1 = 0: its log is never used with fixed variances (t = 1 is the decoder), 0
        // keeps it finite; the learned variance reads β̃_2 there (β_1 when T = 1).
        let clipped = |t: i64| match (t, s.steps()) {
            (1, 1) => s.beta(1).ln(),
            (1, _) => s.posterior_variance(2).ln(),
            _ => s.posterior_variance(t).ln(),
        };
        let log_post = |t: i64| {
            if t >= 2 {
                s.posterior_variance(t).ln()
            } else {
                0.0
            }
        };
        let tables = Tables {
            sqrt_ab: table(&|t| s.alpha_bar(t).sqrt()),
            sqrt_1m_ab: table(&|t| (1.0 - s.alpha_bar(t)).sqrt()),
            post_a: table(&|t| s.posterior_mean_coefs(t).0),
            post_b: table(&|t| s.posterior_mean_coefs(t).1),
            post_var: table(&|t| s.posterior_variance(t)),
            log_post_var: table(&log_post),
            var: table(&var_t),
            log_var: table(&|t| var_t(t).ln()),
            log_beta: table(&|t| s.beta(t).ln()),
            log_post_clipped: table(&clipped),
        };
        GaussianDiffusion {
            schedule,
            variance,
            tables,
        }
    }

    /// The schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The variance choice.
    pub fn variance(&self) -> Variance {
        self.variance
    }

    /// T.
    pub fn steps(&self) -> i64 {
        self.schedule.steps()
    }

    /// x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, a draw of q(x_t | x_0) for noise ε.
    pub fn q_sample(&self, x0: &Tensor, t: &Tensor, noise: &Tensor) -> Tensor {
        at(&self.tables.sqrt_ab, t, x0) * x0 + at(&self.tables.sqrt_1m_ab, t, x0) * noise
    }

    /// The x_0 that noise `eps` and x_t imply: (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t.
    pub fn predict_x0(&self, xt: &Tensor, t: &Tensor, eps: &Tensor) -> Tensor {
        (xt - at(&self.tables.sqrt_1m_ab, t, xt) * eps) / at(&self.tables.sqrt_ab, t, xt)
    }

    /// μ̃_t(x_t, x_0), the mean of q(x_{t−1} | x_t, x_0).
    pub fn posterior_mean(&self, x0: &Tensor, xt: &Tensor, t: &Tensor) -> Tensor {
        at(&self.tables.post_a, t, xt) * x0 + at(&self.tables.post_b, t, xt) * xt
    }

    /// μ_θ(x_t, t) from the predicted noise: the posterior mean at the implied x_0, which
    /// is clamped to `clip` first when given (sampling images; the bound never clips).
    pub fn model_mean(
        &self,
        xt: &Tensor,
        t: &Tensor,
        eps: &Tensor,
        clip: Option<(f64, f64)>,
    ) -> Tensor {
        let mut x0 = self.predict_x0(xt, t, eps);
        if let Some((lo, hi)) = clip {
            x0 = x0.clamp(lo, hi);
        }
        self.posterior_mean(&x0, xt, t)
    }

    /// The network's output split into ε and, with a learned variance, v.
    pub fn split(&self, out: &Tensor) -> (Tensor, Option<Tensor>) {
        match self.variance {
            Variance::Learned => {
                let parts = out.chunk(2, 1);
                (parts[0].shallow_clone(), Some(parts[1].shallow_clone()))
            }
            _ => (out.shallow_clone(), None),
        }
    }

    /// The reverse step at (x_t, t) from the network's output `out`; the mean from a
    /// detached ε when `detach_mean` (the hybrid loss trains the variance alone on the bound).
    pub fn reverse_step(
        &self,
        out: &Tensor,
        xt: &Tensor,
        t: &Tensor,
        clip: Option<(f64, f64)>,
        detach_mean: bool,
    ) -> ReverseStep {
        let (eps, v) = self.split(out);
        let eps = if detach_mean { eps.detach() } else { eps };
        let mean = self.model_mean(xt, t, &eps, clip);
        let (var, log_var) = match v {
            None => (at(&self.tables.var, t, xt), at(&self.tables.log_var, t, xt)),
            Some(v) => {
                let f = (v + 1.0) * 0.5;
                let one_minus: Tensor = -&f + 1.0;
                let log_var = &f * at(&self.tables.log_beta, t, xt)
                    + one_minus * at(&self.tables.log_post_clipped, t, xt);
                (log_var.exp(), log_var)
            }
        };
        ReverseStep { mean, var, log_var }
    }

    /// The bound's term at each example's t `[B]` for a reverse step at x_t.
    fn term_of(&self, x0: &Tensor, xt: &Tensor, t: &Tensor, step: &ReverseStep) -> Tensor {
        let post_var = at(&self.tables.post_var, t, x0);
        let log_post_var = at(&self.tables.log_post_var, t, x0);
        let sq = (self.posterior_mean(x0, xt, t) - &step.mean).square();
        let kl =
            (&step.log_var - log_post_var + post_var / &step.var - 1.0 + &sq / &step.var) * 0.5;
        let nll = ((x0 - &step.mean).square() / &step.var + &step.log_var + LOG_2PI) * 0.5;
        let sum = |v: Tensor| v.flatten(1, -1).sum_dim_intlist(-1, false, x0.kind());
        sum(kl).where_self(&t.gt(1), &sum(nll))
    }

    /// KL(q(x_T | x_0) ‖ N(0, I)) per example `[B]`.
    pub fn prior_kl(&self, x0: &Tensor) -> Tensor {
        let ab = self.schedule.alpha_bar(self.steps());
        let per = x0.square() * ab + ((1.0 - ab) - 1.0 - (1.0 - ab).ln());
        per.flatten(1, -1).sum_dim_intlist(-1, false, x0.kind()) * 0.5
    }

    /// The bound's term at each example's t `[B]`, in nats `[B]`: −log p(x_0 | x_1) where
    /// t = 1, else KL(q(x_{t−1} | x_t, x_0) ‖ p(x_{t−1} | x_t)), at x_t = q_sample(x_0, t, noise).
    pub fn term(
        &self,
        net: &dyn Denoiser,
        x0: &Tensor,
        t: &Tensor,
        noise: &Tensor,
        train: bool,
    ) -> Tensor {
        let xt = self.q_sample(x0, t, noise);
        let step = self.reverse_step(&net.predict(&xt, t, train), &xt, t, None, false);
        self.term_of(x0, &xt, t, &step)
    }

    /// An estimate of the bound on log p(x_0) per example `[B]` and its per-example
    /// variance from the timestep subset `[B]`: prior and decoder terms exact, the sum over
    /// t = 2 … T from `k` distinct timesteps per example (all of them when k ≥ T − 1).
    pub fn bound(&self, net: &dyn Denoiser, x0: &Tensor, k: i64) -> (Tensor, Tensor) {
        let (b, steps) = (x0.size()[0], self.steps());
        let dev = x0.device();
        let one = Tensor::ones([b], (Kind::Int64, dev));
        let mut total = -self.prior_kl(x0) - self.term(net, x0, &one, &x0.randn_like(), false);
        let term = |t: &Tensor| self.term(net, x0, t, &x0.randn_like(), false);
        let (sum, var) = crate::bound::sum_over_timesteps(b, steps, k, dev, &term);
        total -= sum;
        (total, var)
    }

    /// Ho et al.'s L_simple at uniform timesteps: mean over examples of ‖ε − ε_θ(x_t, t)‖²
    /// per dimension (the network in training mode when `train`). With a learned variance,
    /// Nichol & Dhariwal's hybrid: plus 0.001 × T × the bound's term at the same (x_t, t) in
    /// bits per dimension, its mean from a detached ε (so the bound trains the variance alone).
    pub fn simple_loss(&self, net: &dyn Denoiser, x0: &Tensor, train: bool) -> Tensor {
        let b = x0.size()[0];
        let t = Tensor::randint_low(1, self.steps() + 1, [b], (Kind::Int64, x0.device()));
        let noise = x0.randn_like();
        let xt = self.q_sample(x0, &t, &noise);
        let out = net.predict(&xt, &t, train);
        let (eps, v) = self.split(&out);
        let mse = (eps - noise).square().mean(x0.kind());
        if v.is_none() {
            return mse;
        }
        let step = self.reverse_step(&out, &xt, &t, None, true);
        let dim = x0.numel() as f64 / b as f64;
        let vlb = self.term_of(x0, &xt, &t, &step).mean(x0.kind()) / (dim * std::f64::consts::LN_2);
        mse + vlb * (1e-3 * self.steps() as f64)
    }

    /// A stochastic estimate of the negative bound for training: T − 1 times one random
    /// t ≥ 2 term per example, plus the prior and decoder terms, mean over examples.
    pub fn bound_loss(&self, net: &dyn Denoiser, x0: &Tensor) -> Tensor {
        let (b, steps) = (x0.size()[0], self.steps());
        let dev = x0.device();
        let one = Tensor::ones([b], (Kind::Int64, dev));
        let mut loss = self.prior_kl(x0) + self.term(net, x0, &one, &x0.randn_like(), true);
        if steps > 1 {
            let t = Tensor::randint_low(2, steps + 1, [b], (Kind::Int64, dev));
            loss += self.term(net, x0, &t, &x0.randn_like(), true) * (steps - 1) as f64;
        }
        loss.mean(x0.kind())
    }

    /// The timesteps a sampler visits, from T down.
    pub fn timesteps(&self, sampler: Sampler) -> Vec<i64> {
        let steps = self.steps();
        match sampler {
            Sampler::Ancestral => (1..=steps).rev().collect(),
            Sampler::Ddim(n) => {
                let n = n.clamp(1, steps);
                let mut ts: Vec<i64> = (0..n)
                    .map(|i| {
                        1 + ((steps - 1) as f64 * i as f64 / (n - 1).max(1) as f64).round() as i64
                    })
                    .collect();
                ts.dedup();
                ts.reverse();
                ts
            }
        }
    }

    /// Samples from x_T = `start` (noise) down to x_0. After each step, `hook(t_next, x)`
    /// may replace x (completion) or look at it (the reverse-process strip); t_next is the
    /// timestep x now stands at (0 at the end).
    pub fn sample_from(
        &self,
        net: &dyn Denoiser,
        start: Tensor,
        sampler: Sampler,
        clip: Option<(f64, f64)>,
        hook: &mut dyn FnMut(i64, Tensor) -> Tensor,
    ) -> Tensor {
        let ts = self.timesteps(sampler);
        let b = start.size()[0];
        let dev = start.device();
        let mut x = start;
        for (i, &t) in ts.iter().enumerate() {
            let tt = Tensor::full([b], t, (Kind::Int64, dev));
            let out = net.predict(&x, &tt, false);
            let next = ts.get(i + 1).copied().unwrap_or(0);
            x = match sampler {
                Sampler::Ancestral => {
                    let step = self.reverse_step(&out, &x, &tt, clip, false);
                    if t > 1 {
                        step.mean + (step.log_var * 0.5).exp() * x.randn_like()
                    } else {
                        step.mean
                    }
                }
                Sampler::Ddim(_) => self.ddim_step(&x, &tt, &self.split(&out).0, next, clip),
            };
            x = hook(next, x);
        }
        x
    }

    /// One DDIM (η = 0) step from x_t to x_next: x_next = √ᾱ_next x̂_0 + √(1 − ᾱ_next) ε̂,
    /// ε̂ recomputed from the clamped x̂_0.
    fn ddim_step(
        &self,
        xt: &Tensor,
        t: &Tensor,
        eps: &Tensor,
        next: i64,
        clip: Option<(f64, f64)>,
    ) -> Tensor {
        let mut x0 = self.predict_x0(xt, t, eps);
        let mut eps = eps.shallow_clone();
        if let Some((lo, hi)) = clip {
            x0 = x0.clamp(lo, hi);
            eps = (xt - at(&self.tables.sqrt_ab, t, xt) * &x0) / at(&self.tables.sqrt_1m_ab, t, xt);
        }
        let ab = self.schedule.alpha_bar(next);
        x0 * ab.sqrt() + eps * (1.0 - ab).sqrt()
    }
}
