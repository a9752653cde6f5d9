//! Self-normalised importance sampling (`001_*.txt` §1.3.1): E_p[f] for a target known up to
//! its normaliser, from samples of a proposal q with their log q.
//!
//! With w_i ∝ p̃(x_i)/q(x_i) normalised to sum to one, the estimate is Σ w_i f(x_i); its
//! standard error is the delta-method one, sqrt(Σ w_i² (f(x_i) − estimate)²), and the
//! effective sample size is 1 / Σ w_i². The mean of the unnormalised ratios also estimates
//! log Z of p̃ (q normalised).
//!
//! ```no_run
//! use gm_core::sampling::importance::{gaussian_proposal, self_normalized};
//! use tch::{Device, Kind, Tensor};
//! let mean = Tensor::zeros([1], (Kind::Double, Device::Cpu));
//! let (x, log_q) = gaussian_proposal(10_000, &mean, 2.0);
//! let log_p = |x: &Tensor| -(x - 1.0).square().sum_dim_intlist(1, false, Kind::Double) * 2.0;
//! let est = self_normalized(log_p, |x| x.shallow_clone(), &x, &log_q)?;
//! println!("E[x] = {} ± {} (ESS {:.0})", est.estimate, est.std_err, est.ess);
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::{Error, Result};
use tch::{Kind, Tensor};

const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// A self-normalised importance-sampling estimate.
#[derive(Debug)]
pub struct SnisEstimate {
    /// Σ w_i f(x_i), `[K]` (f's per-sample values are `[N]` or `[N, K]`; `[1]` for `[N]`).
    pub estimate: Tensor,
    /// Delta-method standard error of each component, `[K]`.
    pub std_err: Tensor,
    /// The normalised weights `[N]`.
    pub weights: Tensor,
    /// Effective sample size 1 / Σ w_i².
    pub ess: f64,
    /// log of the mean unnormalised weight: an estimate of log Z of the target.
    pub log_normalizer: f64,
}

/// `n` draws from N(mean, std² I) (`mean` `[D]`) and their log-densities `[n]`.
pub fn gaussian_proposal(n: i64, mean: &Tensor, std: f64) -> (Tensor, Tensor) {
    let d = mean.size()[0];
    let eps = Tensor::randn([n, d], (mean.kind(), mean.device()));
    let x = &eps * std + mean.unsqueeze(0);
    let log_q = (eps.square().sum_dim_intlist(1, false, mean.kind())
        + d as f64 * (LOG_2PI + 2.0 * std.ln()))
        * -0.5;
    (x, log_q)
}

/// Estimates E_p[f] from proposal samples `x` `[N, …]` with log-densities `log_q` `[N]`, for
/// the unnormalised target `log_p` (`[N]`).
pub fn self_normalized<P, F>(log_p: P, f: F, x: &Tensor, log_q: &Tensor) -> Result<SnisEstimate>
where
    P: Fn(&Tensor) -> Tensor,
    F: Fn(&Tensor) -> Tensor,
{
    let n = x.size().first().copied().unwrap_or(0);
    if n == 0 || log_q.size() != [n] {
        return Err(Error::config(
            "importance.log_q",
            format!("shape {:?} for {n} samples", log_q.size()),
            "one log-density per sample, [N] with N ≥ 1",
        ));
    }
    tch::no_grad(|| {
        let log_w = (log_p(x) - log_q).to_kind(Kind::Double);
        let log_sum = log_w.logsumexp([0], false);
        let w = (&log_w - &log_sum).exp();
        let fx = f(x).to_kind(Kind::Double);
        let fx = if fx.dim() == 1 { fx.unsqueeze(1) } else { fx };
        if fx.size()[0] != n || fx.dim() != 2 {
            return Err(Error::config(
                "importance.f",
                format!("output of shape {:?}", fx.size()),
                format!("[{n}] or [{n}, K]"),
            ));
        }
        let wc = w.unsqueeze(1);
        let estimate = (&wc * &fx).sum_dim_intlist(0, false, Kind::Double);
        let dev = &fx - estimate.unsqueeze(0);
        let std_err = (wc.square() * dev.square())
            .sum_dim_intlist(0, false, Kind::Double)
            .sqrt();
        let ess = 1.0 / w.square().sum(Kind::Double).double_value(&[]);
        let log_normalizer = log_sum.double_value(&[]) - (n as f64).ln();
        Ok(SnisEstimate {
            estimate,
            std_err,
            weights: w,
            ess,
            log_normalizer,
        })
    })
}
