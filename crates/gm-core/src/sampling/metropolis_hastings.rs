//! Batched Metropolis–Hastings (`001_*.txt` §1.3.2): from x, propose x' ~ q(·|x) and accept
//! with probability min(1, p(x') q(x|x') / (p(x) q(x'|x))), every chain at once.
//!
//! The target is an unnormalised log-density over `[chains, D]` states returning `[chains]`;
//! a proposal maps the current states to `(x', log q(x|x') − log q(x'|x))` (zero for a
//! symmetric proposal such as [`gaussian_random_walk`]).
//!
//! ```no_run
//! use gm_core::sampling::metropolis_hastings::{gaussian_random_walk, run, McmcConfig};
//! use tch::{Device, Kind, Tensor};
//! let log_p = |x: &Tensor| -(x.square().sum_dim_intlist(1, false, Kind::Float)) * 0.5;
//! let init = Tensor::zeros([64, 3], (Kind::Float, Device::Cpu));
//! let cfg = McmcConfig { burn_in: 100, steps: 500, thin: 5 };
//! let r = run(log_p, gaussian_random_walk(0.7), &init, &cfg)?;
//! assert_eq!(r.samples.size(), [100, 64, 3]);
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::{Error, Result};
use tch::{Kind, Tensor};

/// How long a chain runs and what it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McmcConfig {
    /// Steps run and discarded first.
    pub burn_in: usize,
    /// Steps run after the burn-in.
    pub steps: usize,
    /// Keep every `thin`-th state of those (≥ 1).
    pub thin: usize,
}

impl Default for McmcConfig {
    fn default() -> Self {
        McmcConfig {
            burn_in: 500,
            steps: 1000,
            thin: 1,
        }
    }
}

impl McmcConfig {
    pub(crate) fn validate(&self, prefix: &str) -> Result<()> {
        if self.thin == 0 {
            return Err(Error::config(format!("{prefix}.thin"), 0, "at least 1"));
        }
        Ok(())
    }
}

/// What a chain run returns.
#[derive(Debug)]
pub struct McmcRun {
    /// The kept states `[steps / thin, chains, D]`.
    pub samples: Tensor,
    /// The final states `[chains, D]`.
    pub last: Tensor,
    /// Fraction of accepted proposals after the burn-in, over all chains.
    pub acceptance: f64,
}

/// A symmetric Gaussian random-walk proposal x' = x + scale·ε (log q ratio 0).
pub fn gaussian_random_walk(scale: f64) -> impl FnMut(&Tensor) -> (Tensor, Tensor) {
    move |x: &Tensor| {
        let xp = x + x.randn_like() * scale;
        let zero = Tensor::zeros([x.size()[0]], (x.kind(), x.device()));
        (xp, zero)
    }
}

/// One accept / reject of proposals `xp` for states `x` (in place); returns the accepted mask.
pub(crate) fn accept(
    x: &mut Tensor,
    lp: &mut Tensor,
    xp: &Tensor,
    lp_new: &Tensor,
    log_ratio: &Tensor,
) -> Tensor {
    let log_u = lp.rand_like().log();
    let ok = log_u.lt_tensor(&(lp_new - &*lp + log_ratio));
    x.copy_(&xp.where_self(&ok.unsqueeze(1), &*x));
    lp.copy_(&lp_new.where_self(&ok, &*lp));
    ok
}

/// Runs Metropolis–Hastings chains from `init` `[chains, D]` on the unnormalised `log_p`.
pub fn run<L, P>(log_p: L, mut proposal: P, init: &Tensor, cfg: &McmcConfig) -> Result<McmcRun>
where
    L: Fn(&Tensor) -> Tensor,
    P: FnMut(&Tensor) -> (Tensor, Tensor),
{
    cfg.validate("mh")?;
    let (c, _) = super::check_states("mh.init", init)?;
    tch::no_grad(|| {
        let mut x = init.copy();
        let mut lp = log_p(&x).detach().copy();
        if lp.size() != [c] {
            return Err(Error::config(
                "mh.log_p",
                format!("output of shape {:?}", lp.size()),
                format!("one log-density per chain, [{c}]"),
            ));
        }
        let mut accepted = Tensor::zeros([], (Kind::Int64, x.device()));
        let mut kept = Vec::with_capacity(cfg.steps / cfg.thin);
        for t in 0..cfg.burn_in + cfg.steps {
            let (xp, log_ratio) = proposal(&x);
            let lp_new = log_p(&xp);
            let ok = accept(&mut x, &mut lp, &xp, &lp_new, &log_ratio);
            if t >= cfg.burn_in {
                let _ = accepted.g_add_(&ok.sum(Kind::Int64));
                if (t - cfg.burn_in + 1).is_multiple_of(cfg.thin) {
                    kept.push(x.copy());
                }
            }
        }
        let acceptance = if cfg.steps == 0 {
            0.0
        } else {
            accepted.double_value(&[]) / (cfg.steps as f64 * c as f64)
        };
        let samples = if kept.is_empty() {
            x.unsqueeze(0).narrow(0, 0, 0)
        } else {
            Tensor::f_stack(&kept, 0)?
        };
        Ok(McmcRun {
            samples,
            last: x,
            acceptance,
        })
    })
}
