//! Datasets: MNIST, statically binarized MNIST, Fashion-MNIST and synthetic sets, their
//! binarization schemes, and seeded batches on a device.
//!
//! [`load`] returns a [`Dataset`] with `train`, `valid` and `test` [`Split`]s on the CPU
//! (move it once with [`Dataset::to_device`]; every set gm uses fits in memory). Images are
//! `f32 [N, C, H, W]` in `[0, 1]`, vector data `f32 [N, D]`, labels `i64 [N]`. The dataset
//! carries its [`Binarization`], which every result records: likelihoods of different schemes
//! are never compared (chapter 20.14).
//!
//! Downloadable sets are described by the manifests in `datasets/<name>.toml` (embedded, see
//! [`manifest`]); `cargo xtask data <name>` puts their decompressed files in the cache
//! ([`data_dir`]: `$GM_DATA_DIR`, else `${XDG_CACHE_HOME:-$HOME/.cache}/gm/datasets`), at
//! `<cache>/<name>/<file>` (a gzip-wrapped `<file>` or `<file>.gz` is read too). Loading
//! checks every file's sha256 against the manifest unless `verify = false`. Synthetic sets
//! ([`synthetic`]) are generated from `synthetic_seed`.
//!
//! | name | shape | splits (train / valid / test) | values |
//! |---|---|---|---|
//! | `mnist`, `fashion-mnist` | `[1, 28, 28]`, 10 classes | 50,000 / last `valid_size` (10,000) of the training file / 10,000 | intensities `k/255`, or binarized |
//! | `binarized-mnist` | `[1, 28, 28]`, unlabelled | 50,000 / 10,000 / 10,000 (Larochelle's files) | 0/1, [`Binarization::StaticFile`] |
//! | `bars-and-stripes` | `[1, n, n]` (`bars_size`, 4) | `synthetic_size` (1,000) / a quarter / a quarter | 0/1 |
//! | `eight-gaussians`, `two-moons`, `swiss-roll` | `[2]` | `synthetic_size` (10,000) / a quarter / a quarter | real |
//!
//! Randomness never comes from libtorch's global RNG, which the trainer seeds for the models:
//! batch order, Bernoulli draws and synthetic samples come from `ChaCha8` streams keyed by
//! their seeds (and epoch), so they are reproducible and the same on every device.
//!
//! ```no_run
//! use gm_core::data::{self, BinarizeSpec, Batches, DataOptions};
//! let opts = DataOptions { binarize: BinarizeSpec::Dynamic, binarize_seed: 1, ..Default::default() };
//! data::validate("mnist", &opts)?; // cheap: no file is read
//! let ds = data::load("mnist", &opts)?.to_device(tch::Device::cuda_if_available());
//! println!("{} ({}): {} train examples", ds.name, ds.binarization, ds.train.len());
//! for epoch in 0..2 {
//!     let x = ds.train_inputs(epoch); // a fresh Bernoulli draw every epoch
//!     for batch in Batches::new(&x, ds.train.y.as_ref(), 128, true, true, 42, epoch) {
//!         let _ = (batch.x, batch.y); // model.train_step(...)
//!     }
//! }
//! # Ok::<(), gm_core::Error>(())
//! ```

pub mod amat;
mod batches;
mod binarize;
mod files;
pub mod idx;
pub mod manifest;
mod rng;
pub mod synthetic;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

pub use batches::{epoch_order, Batch, Batches};
pub use binarize::{Binarization, BinarizeSpec};
use manifest::{FileFormat, FileRole, Manifest, ManifestFile};
pub use synthetic::bars_and_stripes_patterns;
use synthetic::Toy;

use crate::{Error, Result};
use rng::{Domain, SPLIT_TEST, SPLIT_TRAIN, SPLIT_VALID};

/// Examples of one split.
#[derive(Debug)]
pub struct Split {
    /// Inputs: `f32 [N, C, H, W]` in `[0, 1]` for images, `f32 [N, D]` for vector data.
    pub x: Tensor,
    /// Labels `i64 [N]`, when the dataset has them.
    pub y: Option<Tensor>,
}

impl Split {
    /// Number of examples.
    pub fn len(&self) -> i64 {
        self.x.size().first().copied().unwrap_or(0)
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs of at most `limit` examples evenly spaced through the split (all of them
    /// when `limit` is `None` or not smaller), not its head: a class-ordered file, such as
    /// the static binarized MNIST test set, still gives every class.
    pub fn x_evenly_spaced(&self, limit: Option<i64>) -> Tensor {
        self.evenly_spaced(limit).x
    }

    /// The examples (inputs and labels) that [`Split::x_evenly_spaced`] picks.
    pub fn evenly_spaced(&self, limit: Option<i64>) -> Split {
        let n = self.len();
        match limit {
            Some(l) if l < n => {
                let idx: Vec<i64> = (0..l).map(|i| i * n / l).collect();
                let idx = Tensor::from_slice(&idx).to_device(self.x.device());
                Split {
                    x: self.x.index_select(0, &idx),
                    y: self.y.as_ref().map(|y| y.index_select(0, &idx)),
                }
            }
            _ => Split {
                x: self.x.shallow_clone(),
                y: self.y.as_ref().map(Tensor::shallow_clone),
            },
        }
    }

    /// The split on device `d`.
    pub fn to_device(&self, d: Device) -> Split {
        Split {
            x: self.x.to_device(d),
            y: self.y.as_ref().map(|y| y.to_device(d)),
        }
    }
}

/// A loaded dataset.
#[derive(Debug)]
pub struct Dataset {
    /// Registry name (`mnist`, ...).
    pub name: String,
    /// Training split. Under [`Binarization::Dynamic`] it holds the intensities: train on
    /// [`Dataset::train_inputs`].
    pub train: Split,
    /// Validation split.
    pub valid: Split,
    /// Test split.
    pub test: Split,
    /// Per-example shape: `[C, H, W]` for images, `[D]` for vectors.
    pub shape: Vec<i64>,
    /// Number of classes of the labels, when labelled.
    pub num_classes: Option<i64>,
    /// How the values were made binary.
    pub binarization: Binarization,
    /// Whether the values models see are exactly 0/1 (decides Bernoulli vs Gaussian
    /// likelihoods); true for every binarization scheme but `None`, and for bars and stripes.
    pub binary: bool,
    /// Whether examples are images (`[C, H, W]`).
    pub is_image: bool,
}

impl Dataset {
    /// The whole dataset on device `d`.
    pub fn to_device(&self, d: Device) -> Dataset {
        Dataset {
            name: self.name.clone(),
            train: self.train.to_device(d),
            valid: self.valid.to_device(d),
            test: self.test.to_device(d),
            shape: self.shape.clone(),
            num_classes: self.num_classes,
            binarization: self.binarization,
            binary: self.binary,
            is_image: self.is_image,
        }
    }

    /// The training inputs of `epoch`. Under [`Binarization::Dynamic`] `{ seed }` a fresh
    /// draw `x ~ Bernoulli(train.x)`, a pure function of `(seed, epoch)`: its uniforms come
    /// from a `ChaCha8` stream keyed by both (generated on the CPU, compared with the
    /// intensities on their device), never from libtorch's global RNG, so the draw is the same
    /// on every device and whatever the trainer did with `tch::manual_seed`. Otherwise a
    /// shallow clone of `train.x` (no copy).
    pub fn train_inputs(&self, epoch: usize) -> Tensor {
        match self.binarization {
            Binarization::Dynamic { seed } => binarize::bernoulli_epoch(&self.train.x, seed, epoch),
            _ => self.train.x.shallow_clone(),
        }
    }

    /// Which training labels are observed under `[data] labelled = n`: `None` for `None`
    /// (every label), else a `bool [N_train]` mask with `n / C` examples of each of the `C`
    /// classes (the first `n mod C` classes one more), each class's examples drawn by a
    /// seeded permutation that is a function of `(seed, class)` alone. Errors name
    /// `data.labelled` when the dataset has no labels, `n` is below 1 or above the training
    /// size, or a class has too few examples.
    pub fn observed_labels(&self, labelled: Option<i64>, seed: u64) -> Result<Option<Tensor>> {
        let Some(n) = labelled else {
            return Ok(None);
        };
        let field = "data.labelled";
        let (Some(y), Some(classes)) = (&self.train.y, self.num_classes) else {
            return Err(Error::config(
                field,
                n,
                format!("a dataset with labels ({} has none)", self.name),
            ));
        };
        if n < 1 || n > self.train.len() {
            return Err(Error::config(
                field,
                n,
                format!(
                    "1 ..= {} (the training examples of {})",
                    self.train.len(),
                    self.name
                ),
            ));
        }
        let labels: Vec<i64> = Vec::try_from(&y.to_device(Device::Cpu))?;
        let mut keep = vec![false; labels.len()];
        for c in 0..classes {
            let want = (n / classes + i64::from(c < n % classes)) as usize;
            let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            if members.len() < want {
                return Err(Error::config(
                    field,
                    n,
                    format!(
                        "at most {} labels of class {c} in {}'s training split (asked for {want})",
                        members.len(),
                        self.name
                    ),
                ));
            }
            let mut r = rng::stream(Domain::Labelled, seed, c as u64, 0);
            for &k in &rng::permutation(members.len(), &mut r)[..want] {
                keep[members[k as usize]] = true;
            }
        }
        Ok(Some(Tensor::from_slice(&keep).to_device(y.device())))
    }

    /// Values per example (product of [`Dataset::shape`]).
    pub fn example_numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// The `data` section of a run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataOptions {
    /// `"none"` (default), `"threshold"`, `"stochastic"` or `"dynamic"`.
    pub binarize: BinarizeSpec,
    /// Threshold of `"threshold"`, in `(0, 1)`; default 0.5.
    pub threshold: f32,
    /// Seed of `"stochastic"` and `"dynamic"`; default 0.
    pub binarize_seed: u64,
    /// Examples carved from the end of the training file as the validation split, for sets
    /// without one (`mnist`, `fashion-mnist`: default 10,000). Must be unset for sets that
    /// have their own (`binarized-mnist`, synthetic sets).
    pub valid_size: Option<i64>,
    /// Overrides the cache folder ([`data_dir`]).
    pub data_dir: Option<PathBuf>,
    /// Check every file's sha256 on load; default true.
    pub verify: bool,
    /// Training examples of a synthetic set (bars and stripes: 1,000; 2-D sets: 10,000);
    /// valid and test have a quarter as many each.
    pub synthetic_size: Option<i64>,
    /// Seed of the synthetic sets; default 0.
    pub synthetic_seed: u64,
    /// Side `n` of bars-and-stripes images, `2..=16`; default 4.
    pub bars_size: i64,
    /// Keep the labels of only this many training examples, balanced over the classes and
    /// chosen by a function of the run's `seed` alone ([`Dataset::observed_labels`]); the
    /// others are unlabelled. Default: every label.
    pub labelled: Option<i64>,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            binarize: BinarizeSpec::None,
            threshold: 0.5,
            binarize_seed: 0,
            valid_size: None,
            data_dir: None,
            verify: true,
            synthetic_size: None,
            synthetic_seed: 0,
            bars_size: 4,
            labelled: None,
        }
    }
}

/// A registry entry, for `gm list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Name to pass to [`load`].
    pub name: &'static str,
    /// One line on what it is.
    pub description: String,
    /// Whether `cargo xtask data <name>` must fetch it first.
    pub needs_download: bool,
}

/// Where a dataset comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Files listed by the embedded manifest of the same name.
    Files,
    BarsAndStripes,
    Toy(Toy),
}

/// Every dataset name, in `gm list` order.
const REGISTRY: [(&str, Source); 7] = [
    ("mnist", Source::Files),
    ("binarized-mnist", Source::Files),
    ("fashion-mnist", Source::Files),
    ("bars-and-stripes", Source::BarsAndStripes),
    ("eight-gaussians", Source::Toy(Toy::EightGaussians)),
    ("two-moons", Source::Toy(Toy::TwoMoons)),
    ("swiss-roll", Source::Toy(Toy::SwissRoll)),
];

/// Validation examples carved from the training file when `valid_size` is unset.
pub const DEFAULT_VALID_SIZE: i64 = 10_000;
/// Default training size of bars and stripes.
pub const DEFAULT_BARS_SIZE: i64 = 1_000;
/// Default training size of the 2-D sets.
pub const DEFAULT_TOY_SIZE: i64 = 10_000;
/// Largest `synthetic_size × values per example` accepted (4 GiB of `f32`).
const MAX_SYNTHETIC_VALUES: i64 = 1 << 30;

/// Rows of Larochelle's binarized MNIST files, checked on load.
fn amat_rows(name: &str, role: FileRole) -> Option<usize> {
    match (name, role) {
        ("binarized-mnist", FileRole::Train) => Some(50_000),
        ("binarized-mnist", FileRole::Valid | FileRole::Test) => Some(10_000),
        _ => None,
    }
}

/// All dataset names with a description, for `gm list`.
pub fn registry() -> Vec<DatasetInfo> {
    REGISTRY
        .iter()
        .map(|&(name, source)| {
            let description = match source {
                Source::Files => match manifest::manifest(name) {
                    Ok(Some(m)) => m.description.clone(),
                    Ok(None) => "(no manifest)".to_string(),
                    Err(e) => format!("(manifest does not parse: {e})"),
                },
                Source::BarsAndStripes => {
                    "Bars and stripes: n×n binary images whose rows or whose columns are constant (2^(n+1)-2 patterns), generated".to_string()
                }
                Source::Toy(Toy::EightGaussians) => {
                    "Eight Gaussians (std 0.02) on a circle of radius 2, 2-D, generated".to_string()
                }
                Source::Toy(Toy::TwoMoons) => {
                    "Two interleaved half circles (noise 0.1), 2-D, generated".to_string()
                }
                Source::Toy(Toy::SwissRoll) => {
                    "Swiss roll (2-D spiral, noise 0.5, scaled to about [-1, 1]²), generated".to_string()
                }
            };
            DatasetInfo {
                name,
                description,
                needs_download: source == Source::Files,
            }
        })
        .collect()
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The data cache: `opts.data_dir`, else `$GM_DATA_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/gm/datasets` (a relative `XDG_CACHE_HOME` is ignored, as
/// the XDG spec says; without `HOME`, `.cache/gm/datasets` in the working directory).
pub fn data_dir(opts: &DataOptions) -> PathBuf {
    if let Some(d) = &opts.data_dir {
        return d.clone();
    }
    if let Some(d) = env_path("GM_DATA_DIR") {
        return d;
    }
    let cache = env_path("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env_path("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("gm").join("datasets")
}

fn lookup(name: &str) -> Result<Source> {
    REGISTRY
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, s)| s)
        .ok_or_else(|| Error::Unknown {
            what: "dataset",
            name: name.to_string(),
            known: REGISTRY.map(|(n, _)| n).join(", "),
        })
}

fn files_manifest(name: &str) -> Result<&'static Manifest> {
    manifest::manifest(name)?
        .ok_or_else(|| Error::Msg(format!("dataset {name} has no embedded manifest")))
}

/// Checks `opts` against the manifest-backed set `m`; returns the scheme.
fn check_files(m: &Manifest, opts: &DataOptions) -> Result<Binarization> {
    match m.format {
        FileFormat::Amat => {
            if opts.binarize != BinarizeSpec::None {
                return Err(Error::config(
                    "data.binarize",
                    format!("\"{}\"", opts.binarize),
                    format!(
                        "\"none\": {} is already binary (a fixed binarization); for stochastic, dynamic or threshold binarization use mnist",
                        m.name
                    ),
                ));
            }
            if let Some(v) = opts.valid_size {
                return Err(Error::config(
                    "data.valid_size",
                    v,
                    format!("unset: {} has its own validation file", m.name),
                ));
            }
            Ok(Binarization::StaticFile)
        }
        FileFormat::Idx => {
            if let Some(v) = opts.valid_size {
                let n = idx_train_count(m);
                if !(0..n).contains(&v) {
                    return Err(Error::config(
                        "data.valid_size",
                        v,
                        format!(
                            "0 ≤ valid_size < {n} (the size of {}'s training file)",
                            m.name
                        ),
                    ));
                }
            }
            Ok(match opts.binarize {
                BinarizeSpec::None => Binarization::None,
                BinarizeSpec::Threshold => {
                    let t = opts.threshold;
                    if !(t > 0.0 && t < 1.0) {
                        return Err(Error::config(
                            "data.threshold",
                            t,
                            "a threshold strictly between 0 and 1",
                        ));
                    }
                    Binarization::Threshold(t)
                }
                BinarizeSpec::Stochastic => Binarization::Stochastic {
                    seed: opts.binarize_seed,
                },
                BinarizeSpec::Dynamic => Binarization::Dynamic {
                    seed: opts.binarize_seed,
                },
            })
        }
    }
}

/// Number of training examples the manifest's IDX label file holds (8-byte header + 1 byte
/// per label).
fn idx_train_count(m: &Manifest) -> i64 {
    m.file(FileRole::TrainLabels)
        .map(|f| f.bytes.saturating_sub(8) as i64)
        .unwrap_or(0)
}

fn check_synthetic(name: &str, opts: &DataOptions, numel: i64, why: &str) -> Result<()> {
    if opts.binarize != BinarizeSpec::None {
        return Err(Error::config(
            "data.binarize",
            format!("\"{}\"", opts.binarize),
            format!("\"none\": {name} {why}"),
        ));
    }
    if let Some(v) = opts.valid_size {
        return Err(Error::config(
            "data.valid_size",
            v,
            format!("unset: {name} is generated with valid = test = synthetic_size / 4; set data.synthetic_size"),
        ));
    }
    if let Some(s) = opts.synthetic_size {
        if s < 4 || s.saturating_mul(numel) > MAX_SYNTHETIC_VALUES {
            return Err(Error::config(
                "data.synthetic_size",
                s,
                format!(
                    "4 ≤ synthetic_size ≤ {} for {name}",
                    MAX_SYNTHETIC_VALUES / numel
                ),
            ));
        }
    }
    Ok(())
}

/// Checks everything about `(name, opts)` that needs no file, and returns the scheme.
fn check(name: &str, opts: &DataOptions) -> Result<(Source, Binarization)> {
    let source = lookup(name)?;
    if let Some(n) = opts.labelled {
        if n < 1 {
            return Err(Error::config(
                "data.labelled",
                n,
                "at least 1 labelled example",
            ));
        }
    }
    let scheme = match source {
        Source::Files => check_files(files_manifest(name)?, opts)?,
        Source::BarsAndStripes => {
            let n = opts.bars_size;
            if !(2..=synthetic::MAX_BARS_SIZE).contains(&n) {
                return Err(Error::config(
                    "data.bars_size",
                    n,
                    format!("2 ≤ bars_size ≤ {}", synthetic::MAX_BARS_SIZE),
                ));
            }
            check_synthetic(name, opts, n * n, "is binary by construction")?;
            Binarization::None
        }
        Source::Toy(_) => {
            check_synthetic(name, opts, 2, "is real-valued 2-D data")?;
            Binarization::None
        }
    };
    Ok((source, scheme))
}

/// Cheap checks without loading anything: the name is known, the binarization is allowed for
/// it (`binarized-mnist` only takes `"none"`, its scheme being the static file; synthetic sets
/// only `"none"`; a threshold lies in `(0, 1)`), and the sizes are sane.
pub fn validate(name: &str, opts: &DataOptions) -> Result<()> {
    check(name, opts).map(|_| ())
}

/// The [`Binarization`] that [`load`] would give `name` under `opts`, without loading.
pub fn binarization(name: &str, opts: &DataOptions) -> Result<Binarization> {
    check(name, opts).map(|(_, b)| b)
}

/// Loads dataset `name` on the CPU (see the module docs for the sets and their splits).
///
/// Errors: [`Error::Unknown`] for an unknown name; [`Error::Config`] for options the set does
/// not take; [`Error::NotDownloaded`] when a file is not in the cache;
/// [`Error::Checksum`] when a file's sha256 differs from its manifest's; [`Error::Format`]
/// when a file is malformed.
pub fn load(name: &str, opts: &DataOptions) -> Result<Dataset> {
    let (source, scheme) = check(name, opts)?;
    match source {
        Source::Files => load_files(files_manifest(name)?, &data_dir(opts), opts, scheme),
        Source::BarsAndStripes => Ok(load_bars_and_stripes(opts)),
        Source::Toy(toy) => Ok(load_toy(name, toy, opts)),
    }
}

fn synthetic_sizes(opts: &DataOptions, default: i64) -> [i64; 3] {
    let n = opts.synthetic_size.unwrap_or(default);
    [n, n / 4, n / 4]
}

fn load_bars_and_stripes(opts: &DataOptions) -> Dataset {
    let n = opts.bars_size;
    let sizes = synthetic_sizes(opts, DEFAULT_BARS_SIZE);
    let split = |k: usize, tag: u64| {
        let (x, y) = synthetic::bars_and_stripes_sample(n, sizes[k], opts.synthetic_seed, tag);
        Split { x, y: Some(y) }
    };
    Dataset {
        name: "bars-and-stripes".to_string(),
        train: split(0, SPLIT_TRAIN),
        valid: split(1, SPLIT_VALID),
        test: split(2, SPLIT_TEST),
        shape: vec![1, n, n],
        num_classes: Some(2),
        binarization: Binarization::None,
        binary: true,
        is_image: true,
    }
}

fn load_toy(name: &str, toy: Toy, opts: &DataOptions) -> Dataset {
    let sizes = synthetic_sizes(opts, DEFAULT_TOY_SIZE);
    let split = |k: usize, tag: u64| {
        let (x, y) = toy.sample(sizes[k], opts.synthetic_seed, tag);
        Split { x, y }
    };
    Dataset {
        name: name.to_string(),
        train: split(0, SPLIT_TRAIN),
        valid: split(1, SPLIT_VALID),
        test: split(2, SPLIT_TEST),
        shape: vec![2],
        num_classes: toy.classes(),
        binarization: Binarization::None,
        binary: false,
        is_image: false,
    }
}

/// Loads the manifest-backed set `m` from the cache `dir`.
fn load_files(
    m: &Manifest,
    dir: &Path,
    opts: &DataOptions,
    scheme: Binarization,
) -> Result<Dataset> {
    // Report a missing file before spending time on the others.
    let mut listed = Vec::new();
    for role in m.format.roles() {
        let f = m.file(*role).ok_or_else(|| {
            Error::Msg(format!(
                "manifest {} lists no `{}` file",
                m.name,
                role.as_str()
            ))
        })?;
        files::locate(dir, &m.name, f)?;
        listed.push(f);
    }
    let (train, valid, test) = match m.format {
        FileFormat::Idx => load_idx_splits(m, dir, opts, &listed)?,
        FileFormat::Amat => load_amat_splits(m, dir, opts, &listed)?,
    };
    let (train, valid, test, binary) = match scheme {
        Binarization::None => (train, valid, test, false),
        Binarization::StaticFile => (train, valid, test, true),
        Binarization::Threshold(t) => {
            let th = |s: Split| Split {
                x: binarize::threshold(&s.x, t),
                y: s.y,
            };
            (th(train), th(valid), th(test), true)
        }
        Binarization::Stochastic { seed } => {
            let draw = |s: Split, tag| Split {
                x: binarize::bernoulli_once(&s.x, seed, tag),
                y: s.y,
            };
            (
                draw(train, SPLIT_TRAIN),
                draw(valid, SPLIT_VALID),
                draw(test, SPLIT_TEST),
                true,
            )
        }
        Binarization::Dynamic { seed } => {
            let draw = |s: Split, tag| Split {
                x: binarize::bernoulli_once(&s.x, seed, tag),
                y: s.y,
            };
            (
                train,
                draw(valid, SPLIT_VALID),
                draw(test, SPLIT_TEST),
                true,
            )
        }
    };
    Ok(Dataset {
        name: m.name.clone(),
        train,
        valid,
        test,
        shape: m.shape.clone(),
        num_classes: m.classes,
        binarization: scheme,
        binary,
        is_image: m.shape.len() == 3,
    })
}

/// Reads, verifies and parses `files`, one thread each (hashing, decompressing and parsing
/// dominate the load time); results in the order of `files`.
fn fetch_all<T: Send>(
    m: &Manifest,
    dir: &Path,
    verify: bool,
    files: &[&ManifestFile],
    parse: impl Fn(&Path, Vec<u8>, &ManifestFile) -> Result<T> + Sync,
) -> Result<Vec<(PathBuf, T)>> {
    let parse = &parse;
    std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .map(|f| {
                s.spawn(move || {
                    let (path, bytes) = files::fetch(dir, &m.name, f, verify)?;
                    let parsed = parse(&path, bytes, f)?;
                    Ok((path, parsed))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Msg("a dataset reader thread panicked".into())))
            })
            .collect()
    })
}

fn shape_str(d: &[usize]) -> String {
    format!("{d:?}")
}

/// Train (first `N - valid_size` of the training file), valid (the rest) and test of an IDX set.
fn load_idx_splits(
    m: &Manifest,
    dir: &Path,
    opts: &DataOptions,
    listed: &[&ManifestFile],
) -> Result<(Split, Split, Split)> {
    let arrays = fetch_all(m, dir, opts.verify, listed, |path, bytes, _| {
        idx::parse_idx(bytes, path)
    })?;
    let by_role = |r: FileRole| {
        let k = m.format.roles().iter().position(|x| *x == r).unwrap_or(0);
        &arrays[k]
    };
    let read = |images: FileRole, labels: FileRole| -> Result<(Tensor, Tensor)> {
        let (ip, ia) = by_role(images);
        let (lp, la) = by_role(labels);
        // [N, H, W] for one channel, or [N, C, H, W]
        let per: Vec<i64> = ia.dims.iter().skip(1).map(|&d| d as i64).collect();
        if !(per == m.shape || (m.shape.len() == 3 && m.shape[0] == 1 && per == m.shape[1..])) {
            return Err(Error::format(
                ip,
                format!(
                    "expected images of shape {:?} each (an [N, H, W] array when C = 1), found an array of shape {}",
                    m.shape,
                    shape_str(&ia.dims)
                ),
            ));
        }
        let n = ia.dims[0];
        if la.dims != [n] {
            return Err(Error::format(
                lp,
                format!(
                    "expected {n} labels (one per image of {}), found an array of shape {}",
                    ip.display(),
                    shape_str(&la.dims)
                ),
            ));
        }
        if let Some(c) = m.classes {
            if let Some(i) = la.data.iter().position(|&v| i64::from(v) >= c) {
                return Err(Error::format(
                    lp,
                    format!(
                        "label {} at index {i}: expected a class below {c}",
                        la.data[i]
                    ),
                ));
            }
        }
        let mut shape = vec![n as i64];
        shape.extend_from_slice(&m.shape);
        let mut x = ia.to_tensor().view(shape.as_slice()).to_kind(Kind::Float);
        let _ = x.g_div_scalar_(255.0); // in place: exactly k / 255, one allocation
        let y = la.to_tensor().to_kind(Kind::Int64);
        Ok((x, y))
    };
    let (x, y) = read(FileRole::TrainImages, FileRole::TrainLabels)?;
    let (tx, ty) = read(FileRole::TestImages, FileRole::TestLabels)?;
    let n = x.size()[0];
    let v = opts.valid_size.unwrap_or(DEFAULT_VALID_SIZE);
    if !(0..n).contains(&v) {
        return Err(Error::config(
            "data.valid_size",
            v,
            format!(
                "0 ≤ valid_size < {n} (the size of {}'s training file)",
                m.name
            ),
        ));
    }
    let train = Split {
        x: x.narrow(0, 0, n - v),
        y: Some(y.narrow(0, 0, n - v)),
    };
    let valid = Split {
        x: x.narrow(0, n - v, v),
        y: Some(y.narrow(0, n - v, v)),
    };
    let test = Split { x: tx, y: Some(ty) };
    Ok((train, valid, test))
}

/// The three `.amat` files of a set, unlabelled.
fn load_amat_splits(
    m: &Manifest,
    dir: &Path,
    opts: &DataOptions,
    listed: &[&ManifestFile],
) -> Result<(Split, Split, Split)> {
    let cols = m.example_numel() as usize;
    let parsed = fetch_all(m, dir, opts.verify, listed, |path, bytes, f| {
        amat::parse_amat_tensor(&bytes, path, cols, amat_rows(&m.name, f.role))
    })?;
    let mut splits = Vec::with_capacity(3);
    for (_, values) in parsed {
        let mut shape = vec![values.size()[0]];
        shape.extend_from_slice(&m.shape);
        let x = values.view(shape.as_slice()).to_kind(Kind::Float);
        splits.push(Split { x, y: None });
    }
    let test = splits.pop();
    let valid = splits.pop();
    let train = splits.pop();
    match (train, valid, test) {
        (Some(a), Some(b), Some(c)) => Ok((a, b, c)),
        _ => Err(Error::Msg(format!(
            "manifest {} lists too few files",
            m.name
        ))),
    }
}

#[cfg(test)]
mod tests;
