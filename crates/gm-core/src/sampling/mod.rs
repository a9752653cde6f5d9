//! Samplers shared by every family: sequential Gibbs for binary pairwise models, batched
//! Metropolis–Hastings, self-normalised importance sampling and Hamiltonian Monte Carlo,
//! plus exact enumeration of small binary models to check them against.
//!
//! Every sampler runs a batch of chains at once (`[chains, D]` tensors on any device) and
//! keeps its loops in libtorch kernels; the only host reads are the summary numbers a run
//! returns (and, in HMC's warm-up, one acceptance rate per step to adapt the step size).
//!
//! - [`gibbs`]: site-by-site Gibbs sampling of p(x) ∝ exp(β(½xᵀJx + aᵀx)) with 0/1 or ±1 units
//!   (the Boltzmann machine and the stochastic Hopfield network, *Deep Learning* §20.1);
//! - [`metropolis_hastings`]: user log-density and proposal, batched accept / reject
//!   (`001_*.txt` §1.3.2), with a Gaussian random-walk proposal ready to use;
//! - [`importance`]: self-normalised importance sampling of E_p[f] with its effective sample
//!   size (`001_*.txt` §1.3.1);
//! - [`hmc`]: Hamiltonian Monte Carlo with leapfrog steps, gradients by autograd, optional
//!   step-size adaptation during warm-up (§20.5.2);
//! - [`exact`]: all 2^d binary states, exact distributions and total variation;
//! - [`bernoulli`]: elementwise Bernoulli draws, fast on the CPU.
//!
//! ```no_run
//! use gm_core::sampling::{metropolis_hastings::{self, McmcConfig}, hmc::{self, HmcConfig}};
//! use tch::{Device, Kind, Tensor};
//! // A standard 2-D Gaussian, 100 chains.
//! let log_p = |x: &Tensor| (x.square().sum_dim_intlist(1, false, Kind::Float)) * -0.5;
//! let init = Tensor::zeros([100, 2], (Kind::Float, Device::Cpu));
//! let cfg = McmcConfig { burn_in: 200, steps: 1000, thin: 10 };
//! let run = metropolis_hastings::run(log_p, metropolis_hastings::gaussian_random_walk(0.8), &init, &cfg)?;
//! println!("MH acceptance {:.2}, samples {:?}", run.acceptance, run.samples.size());
//! let run = hmc::run(log_p, &init, &HmcConfig::default())?;
//! println!("HMC acceptance {:.2}, step size {:.3}", run.acceptance, run.step_size);
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod bernoulli;
pub mod exact;
pub mod gibbs;
pub mod hmc;
pub mod importance;
pub mod metropolis_hastings;

use crate::{Error, Result};
use tch::Tensor;

/// Checks that `x` is a floating `[chains, D]` batch of states.
pub(crate) fn check_states(what: &str, x: &Tensor) -> Result<(i64, i64)> {
    let size = x.size();
    if size.len() != 2 || !x.is_floating_point() {
        return Err(Error::config(
            what,
            format!("{:?} tensor of shape {size:?}", x.kind()),
            "a floating-point [chains, D] tensor",
        ));
    }
    Ok((size[0], size[1]))
}

#[cfg(test)]
mod tests;
