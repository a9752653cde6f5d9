//! RNADE, the real-valued neural autoregressive density estimator (Uria et al. 2013;
//! *Deep Learning* §20.10.10): NADE's shared-weight hidden layer feeding a mixture of K
//! Gaussians for each conditional.
//!
//! For an ordering o of the D real variables, with the NADE running sum
//!
//! a_1 = c,  a_{i+1} = a_i + W[:, o_i] x_{o_i},  h_i = σ(ρ_{o_i} a_i),
//!
//! the conditional of step i is p(x_{o_i} | x_{o_<i}) = Σ_k α_k N(x_{o_i}; μ_k, σ_k²) with
//! α = softmax(V^α_{o_i} h_i + b^α_{o_i}), μ = V^μ_{o_i} h_i + b^μ_{o_i} and
//! log σ = V^σ_{o_i} h_i + b^σ_{o_i} (ρ is the paper's per-variable activation rescaling).
//! The forward pass is one exclusive `cumsum` (O(DH) per example, like [`crate::nade`]);
//! log p(x) is exact; sampling draws a component then a Gaussian value per step, batched
//! over samples.
//!
//! `mean_pseudo_gradient = true` implements the paper's fix for the poorly scaled mean
//! gradients (chapter §20.10.10): the gradient reaching each μ_k is multiplied by σ_k (the
//! forward values are untouched). `dequantize = "uniform"` fits intensities k/255 as
//! y = (k + u)/256 with fresh u ~ U(0, 1) per batch; evaluation then reports the lower bound
//! log p(y) − D ln 256 on the log-probability of the 256-level pixels (labelled
//! `LowerBound`, the offset in its settings). No logit transform is applied.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"rnade\"\nhidden = 32\ncomponents = 5\n[data]\ndataset = \"two-moons\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::rnade::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("NLL {} nats", metrics[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{Dequantize, RnadeConfig};
pub use model::{build, Heads, Rnade};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "rnade",
        family: "gm-autoregressive",
        description: "RNADE (Uria et al. 2013): NADE with mixture-of-Gaussians conditionals for real data, mean pseudo-gradient, exact log-density",
        default_dataset: "two-moons",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
