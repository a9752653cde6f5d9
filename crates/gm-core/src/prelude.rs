//! What a program that uses gm models imports: `use gm_core::prelude::*;`.
//!
//! The run config, datasets and batches, the [`Model`] trait and what it returns, devices
//! and seeding, image grids, the error type, and `tch`'s `Tensor` / `Device` / `Kind` (from
//! the `tch` gm is built against, re-exported as [`crate::tch`], so a program needs no `tch`
//! dependency of its own and cannot pick a mismatched version). A family crate adds its
//! models (`gm_boltzmann::rbm::Rbm`, `gm_vae::vae::Vae`, …).
//!
//! ```no_run
//! use gm_core::prelude::*;
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"rbm\"\n[data]\ndataset = \"bars-and-stripes\"")?;
//! let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let device = DeviceSpec::parse("auto")?.resolve()?;
//! seed_all(cfg.seed);
//! let ctx = BuildContext { cfg: &cfg, data: &data, device };
//! # let _ = ctx;
//! # Ok::<(), gm_core::Error>(())
//! ```

pub use crate::config::RunConfig;
pub use crate::data::{self, Batch, Batches, DataOptions, Dataset};
pub use crate::device::{seed_all, DeviceSpec};
pub use crate::image::{save_grid, GridOptions};
pub use crate::model::{
    parse_params, BuildContext, LikelihoodKind, LogLikelihood, Model, ModelRegistry,
};
pub use crate::{Error, Result};
pub use tch::{Device, Kind, Tensor};
