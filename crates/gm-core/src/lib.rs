//! gm-core: what every gm model shares.
//!
//! - [`device`]: `--device auto|cpu|cuda|cuda:N` and seeding of libtorch and Rust RNGs from one seed;
//! - [`data`]: datasets (MNIST, static binarized MNIST, Fashion-MNIST, synthetic ones), their
//!   binarization schemes, and seeded batches on a device;
//! - [`config`]: the TOML run config (model + data + optimizer + trainer + seed), validated once;
//! - [`optim`]: optimizers whose state can be saved, so that resumed runs continue exactly;
//! - [`checkpoint`]: atomic writes of weights (`.safetensors`), optimizer state and progress;
//! - [`train`]: the trainer (epochs, schedules, clipping, metrics, samples, checkpoints, Ctrl-C);
//! - [`image`]: tensors to PNG grids;
//! - [`masks`]: observation masks for completion (`bottom-half`, `right-half`, `square`,
//!   `random:P`) and the masked input | completion | truth grid;
//! - [`model`]: the small traits every model implements and the registry the CLI uses.
//!
//! ```no_run
//! use gm_core::{data, device::DeviceSpec};
//! let device = DeviceSpec::parse("auto")?.resolve()?;
//! let ds = data::load("bars-and-stripes", &data::DataOptions::default())?;
//! println!("{} train examples of shape {:?} on {device:?}", ds.train.len(), ds.shape);
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod device;
pub mod error;
pub mod image;
pub mod masks;
pub mod model;
pub mod optim;
pub mod progress;
pub mod sampling;
pub mod train;

pub use error::{Error, Result};
