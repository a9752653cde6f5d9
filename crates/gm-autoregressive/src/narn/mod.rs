//! The neural autoregressive network of Bengio & Bengio (2000) (*Deep Learning* §20.10.9):
//! hidden groups whose features are reused by every later conditional.
//!
//! For an ordering o of the D binary variables, hidden group j (j = 0 … D−2, G units each)
//! reads the inputs at positions ≤ j, and the conditional of position i reads every group
//! j < i (so it depends on x_{o_<i} only) plus, with `direct = true`, the earlier inputs
//! themselves:
//!
//! h_j = act(W_j x_{o_≤j} + c_j),
//! p(x_{o_i} = 1 | x_{o_<i}) = σ(b_i + Σ_{j<i} V_{i,j} · h_j + Σ_{k<i} A_{i,k} x_{o_k}).
//!
//! Unlike NADE (§20.10.10) the weights into each group are not shared, so the model has
//! O(D²G) parameters and costs O(D²G) per example; the features h_j computed for x_{o_j+1} are
//! reused by every later output (figure 20.9). All D conditionals come from one forward pass
//! of masked matrices: W `[(D−1)G, D]` is block-lower-triangular including the diagonal, V
//! `[D, (D−1)G]` and A `[D, D]` strictly so (the parameters live in ordering coordinates; the
//! masked entries are zero and get zero gradient). log p(x) is exact; sampling draws the
//! positions in turn, batched over samples, updating the groups' pre-activations by one outer
//! product per step.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"narn\"\ngroup_size = 4\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m = gm_autoregressive::narn::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let metrics = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?;
//! println!("NLL {} nats", metrics[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod model;

pub use config::{Activation, NarnConfig};
pub use model::{build, Narn};

use gm_core::model::{ModelEntry, ModelRegistry};

/// Adds this module's models to `registry`.
pub(crate) fn register(registry: &mut ModelRegistry) {
    registry.add(ModelEntry {
        name: "narn",
        family: "gm-autoregressive",
        description: "neural autoregressive net (Bengio & Bengio 2000): masked hidden groups reused by later outputs, any ordering, exact NLL",
        default_dataset: "binarized-mnist",
        needs_labels: false,
        build,
    });
}

#[cfg(test)]
mod tests;
