//! Hamiltonian Monte Carlo (*Deep Learning* §20.5.2 uses it for the mcRBM and mPoT): the state
//! x gets a Gaussian momentum r, the pair follows the leapfrog discretisation of Hamilton's
//! equations for H(x, r) = −log p(x) + ½|r|² for `leapfrog_steps` steps of size ε, and the
//! end point is accepted with probability min(1, exp(H_start − H_end)). Gradients of log p
//! come from autograd; all chains move at once with one shared ε.
//!
//! With `adapt_step_size`, ε is tuned during the burn-in only (the kept samples come from a
//! fixed kernel): after every burn-in step, log ε moves by (a − target)/√(t + 1), a being the
//! mean acceptance probability of the step.
//!
//! ```no_run
//! use gm_core::sampling::hmc::{run, HmcConfig};
//! use tch::{Device, Kind, Tensor};
//! let log_p = |x: &Tensor| -(x.square().sum_dim_intlist(1, false, Kind::Float)) * 0.5;
//! let init = Tensor::zeros([100, 2], (Kind::Float, Device::Cpu));
//! let r = run(log_p, &init, &HmcConfig { samples: 200, ..Default::default() })?;
//! println!("acceptance {:.2}, ε {:.3}", r.acceptance, r.step_size);
//! # Ok::<(), gm_core::Error>(())
//! ```

use super::metropolis_hastings::accept;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// HMC settings.
#[derive(Clone, Debug, PartialEq)]
pub struct HmcConfig {
    /// Leapfrog step size ε (the start value when adapted).
    pub step_size: f64,
    /// Leapfrog steps per proposal (≥ 1).
    pub leapfrog_steps: usize,
    /// Iterations run and discarded first (ε is adapted during them).
    pub burn_in: usize,
    /// Iterations run after the burn-in.
    pub samples: usize,
    /// Keep every `thin`-th state of those (≥ 1).
    pub thin: usize,
    /// Adapt ε during the burn-in towards `target_accept`.
    pub adapt_step_size: bool,
    /// Mean acceptance probability the adaptation aims at, in (0, 1).
    pub target_accept: f64,
}

impl Default for HmcConfig {
    fn default() -> Self {
        HmcConfig {
            step_size: 0.1,
            leapfrog_steps: 10,
            burn_in: 200,
            samples: 1000,
            thin: 1,
            adapt_step_size: true,
            target_accept: 0.8,
        }
    }
}

impl HmcConfig {
    fn validate(&self) -> Result<()> {
        if !(self.step_size > 0.0 && self.step_size.is_finite()) {
            return Err(Error::config(
                "hmc.step_size",
                self.step_size,
                "a finite number > 0",
            ));
        }
        if self.leapfrog_steps == 0 {
            return Err(Error::config("hmc.leapfrog_steps", 0, "at least 1"));
        }
        if self.thin == 0 {
            return Err(Error::config("hmc.thin", 0, "at least 1"));
        }
        if !(self.target_accept > 0.0 && self.target_accept < 1.0) {
            return Err(Error::config(
                "hmc.target_accept",
                self.target_accept,
                "a number in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// What an HMC run returns.
#[derive(Debug)]
pub struct HmcRun {
    /// The kept states `[samples / thin, chains, D]`.
    pub samples: Tensor,
    /// The final states `[chains, D]`.
    pub last: Tensor,
    /// Fraction of accepted proposals after the burn-in.
    pub acceptance: f64,
    /// The step size used after the burn-in.
    pub step_size: f64,
}

/// log p and its gradient at `x` (detached), by autograd even inside `no_grad`.
pub fn log_p_and_grad(log_p: &impl Fn(&Tensor) -> Tensor, x: &Tensor) -> Result<(Tensor, Tensor)> {
    tch::with_grad(|| {
        let x = x.detach().set_requires_grad(true);
        let lp = log_p(&x);
        let mut g = Tensor::f_run_backward(&[lp.sum(lp.kind())], &[&x], false, false)?;
        Ok((lp.detach(), g.pop().expect("one gradient")))
    })
}

/// Leapfrog integration of `steps` steps of size `eps` from (x, r) with ∇log p(x) = `grad`;
/// returns the end state, momentum, log p and gradient there.
pub fn leapfrog(
    log_p: &impl Fn(&Tensor) -> Tensor,
    x: &Tensor,
    r: &Tensor,
    grad: &Tensor,
    eps: f64,
    steps: usize,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let mut r = r + grad * (0.5 * eps);
    let mut x = x.shallow_clone();
    let mut lp_grad = (Tensor::new(), grad.shallow_clone());
    for s in 0..steps {
        x = &x + &r * eps;
        lp_grad = log_p_and_grad(log_p, &x)?;
        let scale = if s + 1 == steps { 0.5 * eps } else { eps };
        r += &lp_grad.1 * scale;
    }
    Ok((x, r, lp_grad.0, lp_grad.1))
}

/// Runs HMC chains from `init` `[chains, D]` on the unnormalised, differentiable `log_p`.
pub fn run<L>(log_p: L, init: &Tensor, cfg: &HmcConfig) -> Result<HmcRun>
where
    L: Fn(&Tensor) -> Tensor,
{
    cfg.validate()?;
    let (c, _) = super::check_states("hmc.init", init)?;
    let mut x = init.detach().copy();
    let (lp0, mut grad) = log_p_and_grad(&log_p, &x)?;
    if lp0.size() != [c] {
        return Err(Error::config(
            "hmc.log_p",
            format!("output of shape {:?}", lp0.size()),
            format!("one log-density per chain, [{c}]"),
        ));
    }
    let mut lp = lp0.copy();
    let mut eps = cfg.step_size;
    let mut accepted = Tensor::zeros([], (Kind::Int64, x.device()));
    let mut kept = Vec::with_capacity(cfg.samples / cfg.thin);
    let kinetic = |r: &Tensor| r.square().sum_dim_intlist(1, false, r.kind()) * 0.5;
    for t in 0..cfg.burn_in + cfg.samples {
        let r0 = x.randn_like();
        let (xp, rp, lp_new, grad_new) = leapfrog(&log_p, &x, &r0, &grad, eps, cfg.leapfrog_steps)?;
        let (ok, accept_prob) = tch::no_grad(|| {
            // A divergent trajectory (non-finite log p or momentum) is rejected.
            let lp_new = lp_new.nan_to_num(f64::NEG_INFINITY, None, None);
            let kinetic_change = (kinetic(&r0) - kinetic(&rp)).nan_to_num(
                f64::NEG_INFINITY,
                None,
                Some(f64::NEG_INFINITY),
            );
            let log_a = (&lp_new - &lp + &kinetic_change).nan_to_num(f64::NEG_INFINITY, None, None);
            let accept_prob = log_a.clamp_max(0.0).exp().mean(Kind::Double);
            let ok = accept(&mut x, &mut lp, &xp, &lp_new, &kinetic_change);
            grad = grad_new.where_self(&ok.unsqueeze(1), &grad);
            (ok, accept_prob)
        });
        if t < cfg.burn_in {
            if cfg.adapt_step_size {
                let a = accept_prob.double_value(&[]);
                let gain = 1.0 / ((t + 1) as f64).sqrt();
                eps *= ((a - cfg.target_accept) * gain).exp();
            }
        } else {
            let _ = accepted.g_add_(&ok.sum(Kind::Int64));
            if (t - cfg.burn_in + 1).is_multiple_of(cfg.thin) {
                kept.push(x.copy());
            }
        }
    }
    let acceptance = if cfg.samples == 0 {
        0.0
    } else {
        accepted.double_value(&[]) / (cfg.samples as f64 * c as f64)
    };
    let samples = if kept.is_empty() {
        x.unsqueeze(0).narrow(0, 0, 0)
    } else {
        Tensor::f_stack(&kept, 0)?
    };
    Ok(HmcRun {
        samples,
        last: x,
        acceptance,
        step_size: eps,
    })
}
