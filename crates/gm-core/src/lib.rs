//! gm-core: what every gm model shares.
//!
//! - [`device`]: `--device auto|cpu|cuda|cuda:N` and seeding of libtorch and Rust RNGs from one seed;
//! - [`data`]: datasets (MNIST, static binarized MNIST, Fashion-MNIST, synthetic ones), their
//!   binarization schemes, and seeded batches on a device;
//! - [`config`]: the TOML run config (model + data + optimizer + trainer + seed), validated once;
//! - [`checks`]: one-line config value checks (positive, finite, in range) naming the field;
//! - [`optim`]: optimizers whose state can be saved, so that resumed runs continue exactly;
//! - [`dist`]: data-parallel training across processes (the collective a backend provides,
//!   the shard of each batch a rank works on);
//! - [`checkpoint`]: atomic writes of weights (`.safetensors`), optimizer state and progress;
//! - [`train`]: the trainer (epochs, schedules, clipping, metrics, samples, checkpoints, Ctrl-C);
//! - [`image`]: tensors to PNG grids;
//! - [`kit`]: kits for the models' tests (enumeration of small binary spaces, TV of samples);
//! - [`masks`]: observation masks for completion (`bottom-half`, `right-half`, `square`,
//!   `random:P`) and the masked input | completion | truth grid;
//! - [`export`]: raw tensors as `.safetensors` (with metadata) and `.npy` for other tools;
//! - [`host`]: fused Rust passes over CPU tensors' memory where libtorch has no fused kernel;
//!   [`vecmath`]: the vector σ and dot product such passes use;
//! - [`model`]: the small traits every model implements and the registry the CLI uses;
//! - [`nets`]: activations and MLP / conv stacks with named parameter scopes;
//! - [`rng_guard`]: the one lock around libtorch's global generator that seeded tests hold;
//! - [`prelude`]: what a program using gm models imports (config, data, the `Model` trait,
//!   devices, `tch` types).
//!
//! ```no_run
//! use gm_core::{data, device::DeviceSpec};
//! let device = DeviceSpec::parse("auto")?.resolve()?;
//! let ds = data::load("bars-and-stripes", &data::DataOptions::default())?;
//! println!("{} train examples of shape {:?} on {device:?}", ds.train.len(), ds.shape);
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod checkpoint;
pub mod checks;
pub mod config;
pub mod data;
pub mod device;
pub mod dist;
pub mod error;
pub mod export;
pub mod host;
pub mod image;
pub mod kit;
pub mod masks;
pub mod model;
pub mod nets;
pub mod optim;
pub mod prelude;
pub mod progress;
pub mod rng_guard;
pub mod sampling;
pub mod train;
pub mod vecmath;

pub use error::{Error, Result};
/// The `tch` gm is built against, for programs that use gm crates (see [`prelude`]).
pub use tch;
