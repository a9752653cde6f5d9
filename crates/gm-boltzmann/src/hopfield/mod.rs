//! Hopfield networks (`001_*.txt` §1.1–1.2; *Deep Learning* §20.1): N units x ∈ {−1, +1}^N,
//! energy E(x) = −½xᵀWx − bᵀx with W symmetric and zero on the diagonal.
//!
//! - [`hebbian`] stores patterns one-shot, W = (1/N) Σ ξξᵀ; [`recall`] descends the energy
//!   asynchronously (one unit at a time: E never increases, recall ends at a fixed point) or
//!   synchronously (all at once: may end in a 2-cycle);
//! - [`capacity_curve`] measures recall against the number of stored random patterns: near
//!   perfect up to P ≈ 0.138 N, collapsing beyond (`cargo run --release -p gm-boltzmann
//!   --example hopfield_capacity` prints the table and writes a CSV);
//! - the probabilistic version p(x) ∝ exp(−E(x)/T) is a fully visible Boltzmann machine with
//!   ±1 units: sampled by sequential Gibbs ([`gm_core::sampling::gibbs`]) and trained by the
//!   rule ⟨x xᵀ⟩_data − ⟨x xᵀ⟩_model ([`spin_gradient`]).
//!
//! As a [`gm_core::model::Model`] (`gm train hopfield`, binary data mapped to ±1 by 2x − 1):
//! `mode = "hebbian"` stores each training batch (one-shot; more epochs only rescale W) and
//! reports `instability` (fraction of units a synchronous update would flip, 0 when every
//! example is a fixed point); `mode = "boltzmann"` trains W and b by the rule above with
//! persistent chains (saved as `chains.safetensors`) and reports `pseudo_nll_proxy`.
//! `eval_metrics` adds `recall_error` (fraction of wrong units after recalling inputs with a
//! fraction `noise` flipped). `sample` recalls from uniform noise (Hebbian) or runs Gibbs
//! chains at temperature T (Boltzmann); the figure `recall` shows inputs, corrupted inputs
//! and recalls. With at most `exact_max_units` units, log p_T(x) is computed exactly by
//! enumeration and reported as `Exact` in either mode (the Hebbian W defines p_T too, though
//! it was not fitted as a density); larger networks report no likelihood.
//!
//! ```no_run
//! use gm_boltzmann::hopfield::{capacity_curve, corrupt, hebbian, recall, Update};
//! use tch::{Device, Kind, Tensor};
//! let xi = Tensor::rand([5, 100], (Kind::Float, Device::Cpu)).lt(0.5).to_kind(Kind::Float) * 2.0 - 1.0;
//! let w = hebbian(&xi);
//! let r = recall(&w, None, &corrupt(&xi, 0.1), Update::Async, 20, false)?;
//! assert!(r.converged);
//! for p in capacity_curve(100, &[5, 10, 15, 20], 10, 0.05, 0, Device::Cpu)? {
//!     println!("P/N = {:.2}: overlap {:.3}", p.load, p.mean_overlap);
//! }
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;
mod network;

pub use config::{HopfieldConfig, HopfieldMode};
pub use model::{build, exact_log_prob, spin_gradient, symmetric_weights, to_spins, Hopfield};
pub use network::{
    capacity_curve, corrupt, energy, hebbian, recall, CapacityPoint, Recall, Update,
};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "hopfield",
        family: "gm-boltzmann",
        description: "Hopfield network: Hebbian storage and recall, or the stochastic ±1 network trained as a Boltzmann machine",
        default_dataset: "bars-and-stripes",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
