//! Annealed importance sampling (Neal 2001) for partition functions.
//!
//! AIS estimates the ratio Z₁ / Z₀ of the normalising constants of a *target* p₁ = f₁ / Z₁
//! and a tractable *base* p₀ = f₀ / Z₀ by moving M chains through a sequence of intermediate
//! distributions p_β ∝ f_β, 0 = β₀ < β₁ < … < β_K = 1. Each chain starts with an exact
//! sample of p₀, and at step k adds log f_{β_k}(x) − log f_{β_{k−1}}(x) to its log-weight
//! before moving x with a Markov transition that leaves p_{β_k} invariant. The mean of the
//! weights is an unbiased estimate of Z₁ / Z₀, so
//!
//! log Ẑ₁ = log Z₀ + log-mean-exp(log w),
//!
//! which by Jensen's inequality *underestimates* log Z₁ in expectation. For an energy-based
//! model that means the resulting log-likelihood is *over*estimated — the trap §20.14 of
//! *Deep Learning* warns about (an AIS run that misses modes makes a model look better).
//! Reverse AIS ([`run_reverse`]), started from exact samples of the target, has the opposite
//! bias, so the two bracket log Z₁ when both are affordable.
//!
//! The engine is generic over an [`AisTarget`]: the model supplies log f_β and a transition;
//! its state is whatever it needs (a visible tensor for an RBM whose hiddens are summed out,
//! as in Salakhutdinov & Murray 2008, §4; several layers for a DBM). All M chains advance
//! together as one batch, the log-weights stay on the target's device in `f64`, and they are
//! read back once, after the last temperature. [`rbm::BernoulliRbm`] is the standard RBM
//! target (weights given as tensors, so any crate can use it without depending on the one
//! that trains RBMs).
//!
//! ```
//! use gm_eval::ais::{self, rbm::BernoulliRbm, Schedule};
//! use tch::{Device, Kind, Tensor};
//! tch::manual_seed(0);
//! let opts = (Kind::Double, Device::Cpu);
//! // A 6-visible, 3-hidden RBM; the base is the uniform distribution (zero biases).
//! let rbm = BernoulliRbm::new(
//!     Tensor::randn([6, 3], opts) * 0.5,
//!     Tensor::zeros([6], opts),
//!     Tensor::zeros([3], opts),
//!     Tensor::zeros([6], opts),
//! )?;
//! let est = ais::run(&rbm, &Schedule::linear(200)?, 50)?;
//! println!("log Z = {:.3} ± {:.3} (ESS {:.0} of 50)", est.log_z, est.std_err, est.ess);
//! assert!(est.log_z.is_finite() && est.std_err >= 0.0);
//! # Ok::<(), gm_core::Error>(())
//! ```

use std::time::Instant;

use gm_core::model::{LikelihoodKind, LogLikelihood};
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

pub mod rbm;

/// A family of distributions p_β ∝ f_β, β ∈ [0, 1], from a tractable base (β = 0) to the
/// target (β = 1), with Markov transitions that leave each p_β invariant.
///
/// Implementations compute log-densities in `f64` where cancellation matters: the engine
/// adds up thousands of small differences log f_β(x) − log f_β′(x), and `f32` rounding in
/// each would add up with them.
pub trait AisTarget {
    /// The state of a batch of chains (a `[M, D]` tensor for an RBM on visibles; a tuple of
    /// tensors for a model that keeps several layers).
    type State;

    /// `m` exact, independent samples of the base distribution p₀.
    fn sample_base(&self, m: i64) -> Result<Self::State>;

    /// log Z₀, the base distribution's normalising constant, exactly.
    fn log_z_base(&self) -> f64;

    /// log f_β(x) per chain, `[M]` (any float kind; the engine accumulates in `f64`).
    fn log_f(&self, x: &Self::State, beta: f64) -> Result<Tensor>;

    /// One step of a Markov chain that leaves p_β invariant, applied to every chain.
    fn transition(&self, x: &Self::State, beta: f64) -> Result<Self::State>;

    /// log f_to(x) − log f_from(x), `[M]`. The default subtracts two [`AisTarget::log_f`]
    /// calls; override it when the difference can be computed with less work or less
    /// cancellation.
    fn log_f_ratio(&self, x: &Self::State, beta_from: f64, beta_to: f64) -> Result<Tensor> {
        Ok(self.log_f(x, beta_to)?.to_kind(Kind::Double)
            - self.log_f(x, beta_from)?.to_kind(Kind::Double))
    }

    /// One AIS step: the weight increment [`AisTarget::log_f_ratio`] at `x`, then
    /// [`AisTarget::transition`] at `beta_to`. Override it to share work between the two
    /// (for an RBM, both need the hidden pre-activations x·W + c).
    fn step(&self, x: &Self::State, beta_from: f64, beta_to: f64) -> Result<(Tensor, Self::State)> {
        let delta = self.log_f_ratio(x, beta_from, beta_to)?;
        let next = self.transition(x, beta_to)?;
        Ok((delta, next))
    }
}

/// An increasing sequence of inverse temperatures 0 = β₀ < … < β_K = 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    name: String,
    betas: Vec<f64>,
}

impl Schedule {
    /// `steps` equal steps from 0 to 1 (`steps + 1` temperatures).
    pub fn linear(steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::config("ais.steps", steps, "at least 1"));
        }
        let betas = (0..=steps).map(|k| k as f64 / steps as f64).collect();
        Ok(Schedule {
            name: format!("linear({steps})"),
            betas,
        })
    }

    /// β₀ = 0 followed by `steps` temperatures spaced geometrically from `beta_min` to 1
    /// (equal steps in log β, finer where β is small).
    pub fn geometric(steps: usize, beta_min: f64) -> Result<Self> {
        if steps < 2 {
            return Err(Error::config(
                "ais.steps",
                steps,
                "at least 2 for a geometric schedule",
            ));
        }
        if !(beta_min > 0.0 && beta_min < 1.0) {
            return Err(Error::config(
                "ais.beta_min",
                beta_min,
                "a number in (0, 1)",
            ));
        }
        let n = steps - 1;
        let mut betas = vec![0.0];
        betas.extend((0..=n).map(|k| beta_min.powf((n - k) as f64 / n as f64)));
        *betas.last_mut().expect("non-empty") = 1.0;
        Ok(Schedule {
            name: format!("geometric({steps}, beta_min={beta_min})"),
            betas,
        })
    }

    /// The schedule of Salakhutdinov & Murray (2008), §4: steps of 10⁻³ from 0 to 0.5,
    /// 10⁻⁴ from 0.5 to 0.9 and 10⁻⁵ from 0.9 to 1 — 500 + 4,000 + 10,000 = 14,500 steps.
    pub fn salakhutdinov_murray() -> Self {
        let mut betas = Vec::with_capacity(14_501);
        betas.extend((0..500).map(|k| k as f64 * 1e-3));
        betas.extend((0..4_000).map(|k| 0.5 + k as f64 * 1e-4));
        betas.extend((0..10_000).map(|k| 0.9 + k as f64 * 1e-5));
        betas.push(1.0);
        Schedule {
            name: "salakhutdinov-murray(14500)".into(),
            betas,
        }
    }

    /// A schedule from explicit temperatures: finite, starting at 0, ending at 1, strictly
    /// increasing.
    pub fn from_betas(betas: Vec<f64>) -> Result<Self> {
        let ok = betas.len() >= 2
            && betas[0] == 0.0
            && betas[betas.len() - 1] == 1.0
            && betas.windows(2).all(|w| w[0] < w[1])
            && betas.iter().all(|b| b.is_finite());
        if !ok {
            let head: Vec<_> = betas.iter().take(4).collect();
            return Err(Error::config(
                "ais.betas",
                format!("{head:?}… ({} values)", betas.len()),
                "at least two finite values, strictly increasing from 0 to 1",
            ));
        }
        Ok(Schedule {
            name: format!("custom({})", betas.len() - 1),
            betas,
        })
    }

    /// The temperatures, β₀ = 0 first.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// Number of steps K (transitions between temperatures); `betas().len() − 1`.
    pub fn steps(&self) -> usize {
        self.betas.len() - 1
    }

    /// A short name, e.g. `linear(1000)`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Which way the chains were annealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Base → target, from exact base samples: log Ẑ is low in expectation.
    Forward,
    /// Target → base, from samples of the target: log Ẑ is high in expectation when those
    /// samples are exact.
    Reverse,
}

/// The outcome of an AIS run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AisResult {
    /// The estimate of log Z₁ (the target's log partition function).
    pub log_z: f64,
    /// Its standard error, by the delta method: sd(w) / (√M · mean(w)).
    pub std_err: f64,
    /// log Z₀ of the base, exact.
    pub log_z_base: f64,
    /// Effective sample size of the weights, (Σw)² / Σw², between 1 and M.
    pub ess: f64,
    /// The chains' final log-weights (forward: log of Z₁/Z₀ estimates; reverse: of Z₀/Z₁).
    pub log_weights: Vec<f64>,
    /// Number of chains M.
    pub chains: i64,
    /// Number of steps K.
    pub steps: usize,
    /// The schedule's name.
    pub schedule: String,
    /// Forward or reverse.
    pub direction: Direction,
    /// Wall-clock seconds of the annealing loop (including the final read-back).
    pub seconds: f64,
}

impl AisResult {
    /// log(Ẑ₁ − n·σ) and log(Ẑ₁ + n·σ), where σ is the standard error of Ẑ₁ (not of its
    /// logarithm), as Salakhutdinov & Murray (2008) report; the lower end is −∞ when the
    /// interval reaches 0.
    pub fn log_z_interval(&self, n_sigma: f64) -> (f64, f64) {
        // Relative standard error of Ẑ is std_err (delta method), so Ẑ ± nσ = Ẑ (1 ± n·se).
        let lo = 1.0 - n_sigma * self.std_err;
        let hi = 1.0 + n_sigma * self.std_err;
        let lo = if lo > 0.0 {
            self.log_z + lo.ln()
        } else {
            f64::NEG_INFINITY
        };
        (lo, self.log_z + hi.ln())
    }

    /// The chains' mean log-weight as a log Z estimate, with its standard error: log Z₀ +
    /// mean(log w) forward, log Z₀ − mean(log w) reverse. One chain's log-weight is a
    /// stochastic bound (Jensen: below log Z₁ in expectation forward, above it reverse from
    /// exact samples; Grosse et al. 2015), so this is further from log Z₁ than
    /// [`AisResult::log_z`], but its gap to the other direction's bounds how far off either
    /// is: the average KL divergence between the forward and reverse chains.
    pub fn mean_log_weight_bound(&self) -> (f64, f64) {
        let m = self.log_weights.len() as f64;
        let mean = self.log_weights.iter().sum::<f64>() / m;
        let var = self
            .log_weights
            .iter()
            .map(|w| (w - mean).powi(2))
            .sum::<f64>()
            / (m - 1.0).max(1.0);
        let se = (var / m).sqrt();
        match self.direction {
            Direction::Forward => (self.log_z_base + mean, se),
            Direction::Reverse => (self.log_z_base - mean, se),
        }
    }

    /// The settings to record with a result that used this estimate.
    pub fn settings(&self) -> serde_json::Value {
        let (bound, bound_se) = self.mean_log_weight_bound();
        serde_json::json!({
            "method": "ais",
            "direction": self.direction,
            "chains": self.chains,
            "steps": self.steps,
            "schedule": self.schedule,
            "log_z": self.log_z,
            "log_z_std_err": self.std_err,
            "log_z_base": self.log_z_base,
            "ess": self.ess,
            "log_z_mean_log_weight": bound,
            "log_z_mean_log_weight_std_err": bound_se,
        })
    }

    /// The mean log-likelihood of examples whose unnormalised log-probabilities
    /// log f₁(x) (e.g. −F(x) for an RBM) are given, `[N]`: mean(log f₁(x)) − log Ẑ₁.
    /// Its standard error combines the spread over examples and the AIS error of log Ẑ₁
    /// (which is shared by all examples). Labelled a stochastic estimate: forward AIS
    /// underestimates log Z₁ in expectation, so the likelihood tends to be *over*estimated.
    pub fn log_likelihood(&self, log_f_data: &Tensor) -> Result<LogLikelihood> {
        let (mean, se) = crate::importance::mean_and_std_err(&log_f_data.reshape([-1]))?;
        let mut settings = self.settings();
        settings["note"] = serde_json::Value::from(match self.direction {
            Direction::Forward => {
                "forward AIS underestimates log Z in expectation, so this log-likelihood \
                 tends to be an overestimate"
            }
            Direction::Reverse => {
                "reverse AIS from exact target samples overestimates log Z in expectation, \
                 so this log-likelihood tends to be an underestimate"
            }
        });
        Ok(LogLikelihood {
            kind: LikelihoodKind::StochasticEstimate,
            method: "ais".into(),
            settings,
            mean: mean - self.log_z,
            std_err: (se * se + self.std_err * self.std_err).sqrt(),
            n: log_f_data.numel() as i64,
        })
    }
}

/// Log-mean-exp of the weights, the delta-method standard error of that logarithm and the
/// effective sample size, computed in `f64` relative to the largest weight.
pub fn weight_statistics(log_w: &[f64]) -> Result<(f64, f64, f64)> {
    let m = log_w.len();
    if m == 0 {
        return Err(Error::Msg("AIS: no chains".into()));
    }
    let max = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() || log_w.iter().any(|w| w.is_nan()) {
        return Err(Error::Msg(format!(
            "AIS: log-weights are not finite (largest {max}); the target's log f or its \
             transition produced NaN or ±inf"
        )));
    }
    let w: Vec<f64> = log_w.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = w.iter().sum();
    let sum_sq: f64 = w.iter().map(|x| x * x).sum();
    let mean = sum / m as f64;
    let log_mean = max + mean.ln();
    let std_err = if m > 1 {
        let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (m - 1) as f64;
        var.sqrt() / (m as f64).sqrt() / mean
    } else {
        f64::INFINITY
    };
    Ok((log_mean, std_err, sum * sum / sum_sq))
}

/// Forward AIS with `chains` chains along `schedule`: the estimate of log Z₁.
pub fn run<T: AisTarget + ?Sized>(
    target: &T,
    schedule: &Schedule,
    chains: i64,
) -> Result<AisResult> {
    Ok(run_with_states(target, schedule, chains, false)?.0)
}

/// Forward AIS that also returns the chains' states. With `final_transition`, one more
/// transition at β = 1 is applied after the last weight update (it does not change the
/// weights), so that the states are draws of the annealing process at the target; weighted
/// by the log-weights they are importance samples of p₁. On several processes
/// ([`gm_core::dist`]) each anneals its share of the chains and the log-weights of all are
/// gathered (the returned states are this process' chains).
pub fn run_with_states<T: AisTarget + ?Sized>(
    target: &T,
    schedule: &Schedule,
    chains: i64,
    final_transition: bool,
) -> Result<(AisResult, T::State)> {
    if chains < 1 {
        return Err(Error::config("ais.chains", chains, "at least 1"));
    }
    let start = Instant::now();
    // On several processes each runs its share of the chains; the weights are gathered.
    let (log_w, x) = gm_core::dist::sharded(chains, |mine| -> Result<_> {
        let x0 = tch::no_grad(|| target.sample_base(mine))?;
        let (log_w, mut x) = anneal(target, schedule.betas(), x0)?;
        if final_transition {
            x = tch::no_grad(|| target.transition(&x, 1.0))?;
        }
        Ok((read_weights(&log_w, mine)?, x))
    })?;
    let log_w = gm_core::dist::gather_rows(&log_w, chains)?;
    let (lme, std_err, ess) = weight_statistics(&log_w)?;
    let log_z_base = target.log_z_base();
    Ok((
        AisResult {
            log_z: log_z_base + lme,
            std_err,
            log_z_base,
            ess,
            log_weights: log_w,
            chains,
            steps: schedule.steps(),
            schedule: schedule.name().to_string(),
            direction: Direction::Forward,
            seconds: start.elapsed().as_secs_f64(),
        },
        x,
    ))
}

/// Reverse AIS: anneals from the target to the base, starting from `start`, which should be
/// exact (or very well mixed) samples of p₁. The weights estimate Z₀ / Z₁, so
/// log Ẑ₁ = log Z₀ − log-mean-exp(log w); with exact starting samples it *over*estimates
/// log Z₁ in expectation, the mirror image of [`run`] (Burda, Grosse & Salakhutdinov 2015).
/// With approximate starting samples that guarantee is lost: say so when reporting it.
pub fn run_reverse<T: AisTarget + ?Sized>(
    target: &T,
    schedule: &Schedule,
    start: T::State,
) -> Result<AisResult> {
    let t0 = Instant::now();
    let betas: Vec<f64> = schedule.betas().iter().rev().cloned().collect();
    let (log_w, _) = anneal(target, &betas, start)?;
    let chains = log_w.numel() as i64;
    let log_w = read_weights(&log_w, chains)?;
    let (lme, std_err, ess) = weight_statistics(&log_w)?;
    let log_z_base = target.log_z_base();
    Ok(AisResult {
        log_z: log_z_base - lme,
        std_err,
        log_z_base,
        ess,
        log_weights: log_w,
        chains,
        steps: schedule.steps(),
        schedule: schedule.name().to_string(),
        direction: Direction::Reverse,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// How far a reverse estimate of log Z₁ lies below a forward one of the same target, and how
/// likely a gap that large would be were the reverse chains started at exact samples:
/// `Some((gap, p))` when the reverse figure is the lower one.
///
/// The forward Ẑ₁ is unbiased, so P(log Ẑ₁ − log Z₁ ≥ t) ≤ e^{−t} (Markov); from exact
/// samples the reverse 1/Ẑ₁ is unbiased, so P(log Z₁ − log Ẑ₁ ≥ t) ≤ e^{−t}. Each excess is
/// dominated by an Exp(1) variable and the runs are independent, so their sum reaches the
/// gap g with probability at most the Gamma(2, 1) tail, p = (1 + g) e^{−g}. A small p says
/// the reverse chains did not start from the model (they miss part of its mass, and the
/// reverse log Ẑ₁ then understates log Z₁); the forward estimate needs no such assumption.
pub fn reverse_shortfall(forward: &AisResult, reverse: &AisResult) -> Option<(f64, f64)> {
    let gap = forward.log_z - reverse.log_z;
    (gap > 0.0).then(|| (gap, (1.0 + gap) * (-gap).exp()))
}

/// Records [`reverse_shortfall`] in the settings of a reverse AIS record: the gap and its
/// probability under exact starts, and, below 1 %, a warning in its note (also logged).
pub fn note_reverse_shortfall(
    settings: &mut serde_json::Value,
    forward: &AisResult,
    reverse: &AisResult,
) {
    let Some((gap, p)) = reverse_shortfall(forward, reverse) else {
        return;
    };
    settings["reverse_below_forward_log_z"] = gap.into();
    settings["probability_if_exact_starts"] = p.into();
    if p < 0.01 {
        let warning = format!(
            "the reverse log Z lies {gap:.2} nats below the forward one, which exact starting \
             samples would give with probability at most {p:.1e}: the reverse chains miss mass \
             of the model, so this figure understates log Z"
        );
        tracing::warn!("reverse AIS: {warning}");
        settings["note"] = match settings["note"].as_str() {
            Some(note) if !note.is_empty() => format!("{note}; {warning}"),
            _ => warning,
        }
        .into();
    }
}

/// The annealing loop along `betas` (forward or reversed): K weight updates and K − 1
/// transitions, everything on the target's device; the `f64` log-weights are returned as a
/// tensor, not read.
fn anneal<T: AisTarget + ?Sized>(
    target: &T,
    betas: &[f64],
    mut x: T::State,
) -> Result<(Tensor, T::State)> {
    let _guard = tch::no_grad_guard();
    let k = betas.len() - 1;
    let mut log_w: Option<Tensor> = None;
    let progress = Progress::new(k);
    for i in 1..=k {
        progress.report(i);
        let (from, to) = (betas[i - 1], betas[i]);
        let delta = if i < k {
            let (d, next) = target.step(&x, from, to)?;
            x = next;
            d
        } else {
            target.log_f_ratio(&x, from, to)?
        };
        match log_w.as_mut() {
            None => log_w = Some(delta.to_kind(Kind::Double)),
            Some(w) => {
                let _ = w.f_add_(&delta)?;
            }
        }
    }
    Ok((log_w.expect("a schedule has at least one step"), x))
}

/// Log lines every tenth of a long annealing run (at least `PROGRESS_MIN_STEPS` steps, once
/// it has taken `PROGRESS_MIN_SECONDS`): temperatures done, seconds taken, seconds left at
/// that pace.
struct Progress {
    steps: usize,
    every: usize,
    start: Instant,
}

const PROGRESS_MIN_STEPS: usize = 1000;
const PROGRESS_MIN_SECONDS: f64 = 5.0;

impl Progress {
    fn new(steps: usize) -> Self {
        Progress {
            steps,
            every: (steps / 10).max(1),
            start: Instant::now(),
        }
    }

    fn report(&self, i: usize) {
        if self.steps < PROGRESS_MIN_STEPS || !i.is_multiple_of(self.every) || i == self.steps {
            return;
        }
        let done = i as f64 / self.steps as f64;
        let secs = self.start.elapsed().as_secs_f64();
        if secs < PROGRESS_MIN_SECONDS {
            return;
        }
        tracing::info!(
            "AIS: {i} / {} temperatures ({:.0} %), {secs:.0} s, about {:.0} s left",
            self.steps,
            done * 100.0,
            secs * (1.0 - done) / done
        );
    }
}

fn read_weights(log_w: &Tensor, chains: i64) -> Result<Vec<f64>> {
    let flat = log_w.f_reshape([-1])?.f_to_device(tch::Device::Cpu)?;
    if flat.size()[0] != chains {
        return Err(Error::Msg(format!(
            "AIS: the target's log f ratios have {} entries, expected one per chain ({chains})",
            flat.size()[0]
        )));
    }
    Ok(Vec::<f64>::try_from(&flat)?)
}

#[cfg(test)]
mod tests;
