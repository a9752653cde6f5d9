//! Noise schedules of a Gaussian diffusion: β_1 … β_T, with ᾱ_t = Π_{s ≤ t} (1 − β_s).
//!
//! `linear` spaces β evenly from `beta_start` to `beta_end` (Ho et al. 2020: 1e-4 to 0.02
//! over T = 1000); `cosine` sets ᾱ_t = f(t) / f(0), f(t) = cos²((t / T + s) / (1 + s) · π / 2)
//! with s = 0.008, β clipped at 0.999 (Nichol & Dhariwal 2021).
//!
//! ```
//! use gm_diffusion::schedule::Schedule;
//! let s = Schedule::linear(1000, 1e-4, 0.02).unwrap();
//! assert_eq!(s.steps(), 1000);
//! assert!((s.alpha_bar(1) - (1.0 - 1e-4)).abs() < 1e-12);
//! assert!(s.alpha_bar(1000) < 1e-4); // x_T is nearly pure noise
//! ```

use gm_core::{checks, Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The noise schedule's shape.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// β evenly spaced from `beta_start` to `beta_end`.
    #[default]
    Linear,
    /// The cosine schedule of Nichol & Dhariwal (2021).
    Cosine,
}

impl ScheduleKind {
    /// The schedule of this kind with `steps` steps (`start`, `end`: β_1 and β_T of the
    /// linear one), or a config error naming the field.
    pub fn build(self, steps: i64, start: f64, end: f64) -> Result<Schedule> {
        match self {
            ScheduleKind::Linear => {
                if start >= 1.0 || end >= 1.0 {
                    return Err(Error::config(
                        "model.beta_end",
                        start.max(end),
                        "β_1 and β_T in (0, 1)",
                    ));
                }
                Schedule::linear(steps, start, end)
            }
            ScheduleKind::Cosine => Schedule::cosine(steps),
        }
    }
}

/// β_t for t = 1 … T and the products ᾱ_t.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    betas: Vec<f64>,
    alpha_bar: Vec<f64>,
}

impl Schedule {
    /// From β_1 … β_T, each in (0, 1).
    pub fn from_betas(betas: Vec<f64>) -> Result<Self> {
        if betas.is_empty() {
            return Err(Error::config("model.steps", 0, "at least one step"));
        }
        if let Some(b) = betas.iter().find(|b| !(**b > 0.0 && **b < 1.0)) {
            return Err(Error::config("model.schedule", b, "every β_t in (0, 1)"));
        }
        let mut alpha_bar = Vec::with_capacity(betas.len() + 1);
        alpha_bar.push(1.0);
        for b in &betas {
            let last = alpha_bar[alpha_bar.len() - 1];
            alpha_bar.push(last * (1.0 - b));
        }
        Ok(Schedule { betas, alpha_bar })
    }

    /// β evenly spaced from `start` to `end` over `steps` steps.
    pub fn linear(steps: i64, start: f64, end: f64) -> Result<Self> {
        checks::at_least("model.steps", steps, 1, "at least one step")?;
        checks::positive("model.beta_start", start)?;
        checks::positive("model.beta_end", end)?;
        let n = steps as usize;
        let betas = (0..n)
            .map(|i| match n {
                1 => start,
                _ => start + (end - start) * i as f64 / (n - 1) as f64,
            })
            .collect();
        Self::from_betas(betas)
    }

    /// The cosine schedule of Nichol & Dhariwal (2021), offset s = 0.008, β ≤ 0.999.
    pub fn cosine(steps: i64) -> Result<Self> {
        checks::at_least("model.steps", steps, 1, "at least one step")?;
        let s = 0.008;
        let f = |t: f64| {
            ((t / steps as f64 + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2)
                .cos()
                .powi(2)
        };
        let betas = (1..=steps)
            .map(|t| (1.0 - f(t as f64) / f((t - 1) as f64)).min(0.999))
            .collect();
        Self::from_betas(betas)
    }

    /// T.
    pub fn steps(&self) -> i64 {
        self.betas.len() as i64
    }

    /// β_t, t in 1 ..= T.
    pub fn beta(&self, t: i64) -> f64 {
        self.betas[(t - 1) as usize]
    }

    /// ᾱ_t, t in 0 ..= T (ᾱ_0 = 1).
    pub fn alpha_bar(&self, t: i64) -> f64 {
        self.alpha_bar[t as usize]
    }

    /// The variance of q(x_{t−1} | x_t, x_0): β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (0 at t = 1).
    pub fn posterior_variance(&self, t: i64) -> f64 {
        (1.0 - self.alpha_bar(t - 1)) / (1.0 - self.alpha_bar(t)) * self.beta(t)
    }

    /// The coefficients (a, b) of the posterior mean μ̃_t = a x_0 + b x_t.
    pub fn posterior_mean_coefs(&self, t: i64) -> (f64, f64) {
        let (ab, ab_prev, beta) = (self.alpha_bar(t), self.alpha_bar(t - 1), self.beta(t));
        (
            ab_prev.sqrt() * beta / (1.0 - ab),
            (1.0 - beta).sqrt() * (1.0 - ab_prev) / (1.0 - ab),
        )
    }
}

/// Entries of a per-timestep `table` (`[T + 1]`, indexed by t) at each example's `t` `[B]`,
/// shaped `[B, 1, …]` to broadcast against `like`.
pub fn at(table: &Tensor, t: &Tensor, like: &Tensor) -> Tensor {
    let mut shape = vec![like.size()[0]];
    shape.resize(like.dim(), 1);
    table.index_select(0, t).view(shape.as_slice())
}
