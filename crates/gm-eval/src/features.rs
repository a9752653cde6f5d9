//! The feature network: a small convolutional classifier that gm trains itself, whose
//! penultimate activations are the features of the sample-quality metrics ([`crate::quality`])
//! and whose predictions give label entropy and class coverage.
//!
//! Architecture `convnet-v1`: conv 3×3 32 → ReLU → max-pool 2 → conv 3×3 64 → ReLU →
//! max-pool 2 → fc 128 → ReLU (**the features**, F = 128) → fc to the classes. It is trained
//! with Adam on the training split of MNIST or Fashion-MNIST **in one [`Representation`]**
//! and tested on the test split in the same representation: grey intensities (`grey`),
//! Bernoulli draws of the intensities (`bernoulli`: a fresh draw every epoch, the test split
//! drawn once; the representation of dynamic, stochastic and static binarization — the
//! static binarized MNIST file is a Bernoulli draw of MNIST), or `x > t` (`threshold-t`).
//! Sample quality on binary data is measured on the network of its representation, never on
//! one trained on grey images ([`Representation::of`]).
//!
//! The trained weights are cached in `<cache>/<id>.safetensors` (cache: `$GM_FEATURES_DIR`,
//! else `${XDG_CACHE_HOME:-$HOME/.cache}/gm/features`; id `<dataset>-convnet-v1` for grey,
//! `<dataset>-bernoulli-convnet-v1`, `<dataset>-threshold0.5-convnet-v1`) next to a JSON file
//! with the test accuracy, the training settings, the seconds it took and the sha256 of the
//! weights. Both are written atomically. A cache whose JSON does not parse, whose architecture
//! or settings differ from the ones asked for, or whose weights do not match the recorded
//! sha256 is an **error naming the file** (delete it to retrain): a silently retrained network
//! would change every Fréchet distance computed before.
//!
//! ```no_run
//! use gm_eval::features::{FeatureNet, FeatureOptions};
//! let net = FeatureNet::load_or_train("mnist", tch::Device::Cpu, &FeatureOptions::default())?;
//! println!("{}: test accuracy {:.4}", net.id(), net.test_accuracy());
//! let x = tch::Tensor::rand([16, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
//! assert_eq!(net.features(&x)?.size(), [16, 128]);
//! # Ok::<(), gm_core::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use gm_core::checkpoint::{atomic_write, atomic_write_with};
use gm_core::config::OptimConfig;
use gm_core::data::{self, epoch_order, Binarization, BinarizeSpec, DataOptions, Dataset};
use gm_core::nets::{Activation, ConvStack};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Name and version of the architecture; part of every cache file name and feature id.
pub const ARCH: &str = "convnet-v1";
/// Dimension of the features.
pub const FEATURE_DIM: i64 = 128;

/// The values a feature network is trained and tested on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Representation {
    /// Grey intensities in [0, 1].
    #[default]
    Grey,
    /// 0/1 Bernoulli draws of the intensities.
    Bernoulli,
    /// `x > t` as 0/1.
    Threshold(f32),
}

impl Representation {
    /// The representation of data binarized by `b`: grey for `None`, `x > t` for a
    /// threshold, Bernoulli draws for static-file, stochastic and dynamic binarization.
    pub fn of(b: Binarization) -> Representation {
        match b {
            Binarization::None => Representation::Grey,
            Binarization::Threshold(t) => Representation::Threshold(t),
            Binarization::StaticFile
            | Binarization::Stochastic { .. }
            | Binarization::Dynamic { .. } => Representation::Bernoulli,
        }
    }

    /// Whether the values are 0/1.
    pub fn is_binary(self) -> bool {
        self != Representation::Grey
    }

    /// The part of the network id naming the representation (`""` for grey).
    fn tag(self) -> String {
        match self {
            Representation::Grey => String::new(),
            Representation::Bernoulli => "bernoulli-".into(),
            Representation::Threshold(t) => format!("threshold{t}-"),
        }
    }

    /// The data options that load a dataset in this representation (Bernoulli: dynamic
    /// binarization seeded with `seed`, so every epoch is a fresh draw).
    fn data_options(self, base: &DataOptions, seed: u64) -> DataOptions {
        let (binarize, threshold) = match self {
            Representation::Grey => (BinarizeSpec::None, base.threshold),
            Representation::Bernoulli => (BinarizeSpec::Dynamic, base.threshold),
            Representation::Threshold(t) => (BinarizeSpec::Threshold, t),
        };
        DataOptions {
            binarize,
            threshold,
            binarize_seed: seed,
            ..base.clone()
        }
    }
}

impl std::fmt::Display for Representation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Representation::Grey => f.write_str("grey"),
            Representation::Bernoulli => f.write_str("bernoulli"),
            Representation::Threshold(t) => write!(f, "threshold({t})"),
        }
    }
}

/// How the feature network is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureOptions {
    /// Epochs over the training split (default 3).
    pub epochs: usize,
    /// Mini-batch size (default 128).
    pub batch_size: i64,
    /// Adam's learning rate (default 1e-3).
    pub lr: f64,
    /// Seed of the initialisation, the batch order and the Bernoulli draws (default 0).
    pub seed: u64,
    /// The values it is trained and tested on (default grey).
    pub representation: Representation,
    /// Cache folder; `None`: `$GM_FEATURES_DIR`, else `${XDG_CACHE_HOME:-~/.cache}/gm/features`.
    #[serde(skip)]
    pub cache_dir: Option<PathBuf>,
    /// Options of the dataset load (only the cache location and verification matter: the
    /// binarization is the one of `representation`).
    #[serde(skip)]
    pub data: DataOptions,
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            epochs: 3,
            batch_size: 128,
            lr: 1e-3,
            seed: 0,
            representation: Representation::Grey,
            cache_dir: None,
            data: DataOptions::default(),
        }
    }
}

impl FeatureOptions {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config(
                "features.epochs",
                self.epochs,
                "at least 1 epoch",
            ));
        }
        if self.batch_size < 1 {
            return Err(Error::config(
                "features.batch_size",
                self.batch_size,
                "a positive batch size",
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::config(
                "features.lr",
                self.lr,
                "a positive, finite learning rate",
            ));
        }
        Ok(())
    }
}

/// What the cache JSON records about a trained feature network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureInfo {
    /// `<dataset>-[<representation>-]convnet-v1`.
    pub id: String,
    /// Dataset it was trained on.
    pub dataset: String,
    /// Architecture ([`ARCH`]).
    pub arch: String,
    /// Image height and width it takes.
    pub image_hw: [i64; 2],
    /// Number of classes.
    pub classes: i64,
    /// Fraction of the test split (in the network's representation) classified correctly.
    pub test_accuracy: f64,
    /// Training settings.
    pub options: FeatureOptions,
    /// Training examples.
    pub train_examples: i64,
    /// Test examples.
    pub test_examples: i64,
    /// Wall-clock training seconds.
    pub seconds: f64,
    /// libtorch intra-op threads during training.
    pub threads: i32,
    /// Device it was trained on.
    pub device: String,
    /// sha256 of the safetensors file.
    pub weights_sha256: String,
}

/// The trained classifier.
#[derive(Debug)]
pub struct FeatureNet {
    vs: nn::VarStore,
    net: Net,
    info: FeatureInfo,
}

#[derive(Debug)]
struct Net {
    convs: ConvStack,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Net {
    fn new(p: &nn::Path, hw: [i64; 2], classes: i64) -> Net {
        let flat = 64 * (hw[0] / 4) * (hw[1] / 4);
        Net {
            convs: ConvStack::new(p, "c", 1, &[32, 64], 3),
            fc1: nn::linear(p / "fc1", flat, FEATURE_DIM, Default::default()),
            fc2: nn::linear(p / "fc2", FEATURE_DIM, classes, Default::default()),
        }
    }

    fn features(&self, x: &Tensor) -> Tensor {
        self.convs
            .forward(x, Activation::Relu, 2)
            .flatten(1, -1)
            .apply(&self.fc1)
            .relu()
    }
}

/// The labelled dataset a run's dataset is measured with: `mnist` for `mnist` and
/// `binarized-mnist`, `fashion-mnist` for itself; `None` for sets without a feature network.
pub fn feature_dataset(dataset: &str) -> Option<&'static str> {
    match dataset {
        "mnist" | "binarized-mnist" => Some("mnist"),
        "fashion-mnist" => Some("fashion-mnist"),
        _ => None,
    }
}

/// The cache folder (see the module docs).
pub fn cache_dir(opts: &FeatureOptions) -> PathBuf {
    if let Some(d) = &opts.cache_dir {
        return d.clone();
    }
    let env = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("GM_FEATURES_DIR") {
        return d;
    }
    env("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("gm")
        .join("features")
}

impl FeatureNet {
    /// The network for `dataset` (`mnist` or `fashion-mnist`; `binarized-mnist` uses
    /// `mnist`'s) in `opts.representation`: loaded from the cache when it is there, else
    /// trained on the dataset's training split in that representation and cached.
    pub fn load_or_train(dataset: &str, device: Device, opts: &FeatureOptions) -> Result<Self> {
        if let Some(net) = Self::cached(dataset, device, opts)? {
            return Ok(net);
        }
        let (name, weights, json) = Self::cache_files(dataset, opts)?;
        let data_opts = opts.representation.data_options(&opts.data, opts.seed);
        let ds = data::load(name, &data_opts)?;
        tracing::info!(
            "training the {ARCH} feature network on {name} ({}, {} examples, {} epochs); cached in {}",
            opts.representation,
            ds.train.len(),
            opts.epochs,
            weights.display()
        );
        let mut net = Self::train_on(&ds, device, opts)?;
        net.save_cache(&weights, &json)?;
        tracing::info!(
            "feature network {}: test accuracy {:.4}, {:.0}s",
            net.info.id,
            net.info.test_accuracy,
            net.info.seconds
        );
        Ok(net)
    }

    /// The network for `dataset` in `opts.representation` when the cache holds it, `None`
    /// when it does not (never trains); a damaged cache is an error naming the file.
    pub fn cached(dataset: &str, device: Device, opts: &FeatureOptions) -> Result<Option<Self>> {
        let (name, weights, json) = Self::cache_files(dataset, opts)?;
        if weights.exists() || json.exists() {
            return Self::load(&weights, &json, name, device, opts).map(Some);
        }
        Ok(None)
    }

    /// The feature dataset of `dataset` and its cache's weights and JSON files.
    fn cache_files(
        dataset: &str,
        opts: &FeatureOptions,
    ) -> Result<(&'static str, PathBuf, PathBuf)> {
        opts.validate()?;
        let name = feature_dataset(dataset).ok_or_else(|| {
            Error::config(
                "dataset",
                dataset,
                "mnist, binarized-mnist or fashion-mnist (the sets a feature network exists for)",
            )
        })?;
        let dir = cache_dir(opts);
        let stem = format!("{name}-{}{ARCH}", opts.representation.tag());
        let weights = dir.join(format!("{stem}.safetensors"));
        let json = dir.join(format!("{stem}.json"));
        Ok((name, weights, json))
    }

    /// Trains on a labelled image dataset loaded in `opts.representation`: epoch `e` on
    /// [`Dataset::train_inputs`]`(e)` (a fresh Bernoulli draw under dynamic binarization),
    /// tested on its test split. An error when the dataset's binarization is not
    /// `opts.representation`'s.
    pub fn train_on(ds: &Dataset, device: Device, opts: &FeatureOptions) -> Result<Self> {
        let rep = Representation::of(ds.binarization);
        let fresh = matches!(ds.binarization, Binarization::Dynamic { .. });
        if rep != opts.representation || (rep == Representation::Bernoulli && !fresh) {
            return Err(Error::Msg(format!(
                "feature network in representation {}: {} is binarized {} (a {} network trains on dynamic binarization)",
                opts.representation, ds.name, ds.binarization, opts.representation
            )));
        }
        let (ytr, yte) = match (&ds.train.y, &ds.test.y) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(Error::Msg(format!("{} has no labels", ds.name))),
        };
        let classes = ds.num_classes.unwrap_or(10);
        Self::train_epochs(
            &ds.name,
            &|e| ds.train_inputs(e),
            ytr,
            (&ds.test.x, yte),
            classes,
            device,
            opts,
        )
    }

    /// Writes the weights (safetensors) and then the JSON record with their sha256.
    fn save_cache(&mut self, weights: &Path, json: &Path) -> Result<()> {
        let named: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.to_device(Device::Cpu)))
            .collect();
        // `Tensor::write_safetensors` writes safetensors whatever the (temporary) file name.
        atomic_write_with(weights, |tmp| Ok(Tensor::write_safetensors(&named, tmp)?))?;
        self.info.weights_sha256 = gm_core::checkpoint::sha256_file(weights)?;
        let text = serde_json::to_vec_pretty(&self.info).map_err(|e| Error::Msg(e.to_string()))?;
        atomic_write(json, &text)
    }

    fn load(
        weights: &Path,
        json: &Path,
        name: &str,
        device: Device,
        opts: &FeatureOptions,
    ) -> Result<Self> {
        let delete = |p: &Path, msg: String| {
            Error::format(
                p,
                format!(
                    "{msg}; delete {} and its .json to retrain",
                    weights.display()
                ),
            )
        };
        let text = std::fs::read_to_string(json).map_err(|e| Error::io(json, e))?;
        let info: FeatureInfo = serde_json::from_str(&text)
            .map_err(|e| delete(json, format!("not a feature-network record ({e})")))?;
        let mut wanted = opts.clone();
        wanted.cache_dir = None;
        wanted.data = DataOptions::default();
        if info.arch != ARCH || info.dataset != name || info.options != wanted {
            return Err(delete(
                json,
                format!(
                    "cached network is {} on {} with {:?}, asked for {ARCH} on {name} with {:?}",
                    info.arch, info.dataset, info.options, wanted
                ),
            ));
        }
        let sha = gm_core::checkpoint::sha256_file(weights)?;
        if sha != info.weights_sha256 {
            return Err(delete(
                weights,
                format!("sha256 is {sha}, the record says {}", info.weights_sha256),
            ));
        }
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), info.image_hw, info.classes);
        let stored: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(weights)
            .map_err(|e| delete(weights, format!("unreadable weights ({e})")))?
            .into_iter()
            .collect();
        let vars = vs.variables();
        if stored.len() != vars.len() {
            return Err(delete(
                weights,
                format!("{} tensors, the network has {}", stored.len(), vars.len()),
            ));
        }
        tch::no_grad(|| -> Result<()> {
            for (k, mut v) in vars {
                let t = stored
                    .get(&k)
                    .filter(|t| t.size() == v.size())
                    .ok_or_else(|| {
                        delete(weights, format!("{k} is missing or has another shape"))
                    })?;
                v.copy_(t);
            }
            Ok(())
        })?;
        Ok(FeatureNet { vs, net, info })
    }

    /// Trains a network on `train = (x [N, 1, H, W] in [0, 1], y [N])` (H, W multiples of 4)
    /// and measures its accuracy on `test`. Public for other labelled image sets and for
    /// tests; the record says `opts.representation`.
    pub fn train(
        dataset: &str,
        train: (&Tensor, &Tensor),
        test: (&Tensor, &Tensor),
        classes: i64,
        device: Device,
        opts: &FeatureOptions,
    ) -> Result<Self> {
        let x = train.0;
        Self::train_epochs(
            dataset,
            &|_| x.shallow_clone(),
            train.1,
            test,
            classes,
            device,
            opts,
        )
    }

    /// Trains with the inputs of epoch `e` given by `inputs(e)` (labels `y`).
    fn train_epochs(
        dataset: &str,
        inputs: &dyn Fn(usize) -> Tensor,
        y: &Tensor,
        test: (&Tensor, &Tensor),
        classes: i64,
        device: Device,
        opts: &FeatureOptions,
    ) -> Result<Self> {
        opts.validate()?;
        let size = inputs(0).size();
        if size.len() != 4 || size[1] != 1 || size[2] % 4 != 0 || size[3] % 4 != 0 {
            return Err(Error::Msg(format!(
                "feature network: images must be [N, 1, H, W] with H and W multiples of 4, got {size:?}"
            )));
        }
        let hw = [size[2], size[3]];
        let start = Instant::now();
        tch::manual_seed(gm_core::device::derive_seed(opts.seed, &[0xfea7]) as i64);
        let vs = nn::VarStore::new(device);
        let net = Net::new(&vs.root(), hw, classes);
        let mut opt = Optimizer::new(
            &vs,
            &OptimConfig {
                lr: opts.lr,
                ..Default::default()
            },
        )?;
        let y = y.to_device(device);
        let n = size[0];
        for epoch in 0..opts.epochs {
            let x = inputs(epoch).to_device(device);
            let order =
                Tensor::from_slice(&epoch_order(n, true, opts.seed, epoch)).to_device(device);
            let mut s = 0;
            while s < n {
                let len = opts.batch_size.min(n - s);
                let idx = order.narrow(0, s, len);
                let logits = net.features(&x.index_select(0, &idx)).apply(&net.fc2);
                let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx));
                opt.backward_step(&loss)?;
                s += len;
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let mut fnet = FeatureNet {
            vs,
            net,
            info: FeatureInfo {
                id: format!("{dataset}-{}{ARCH}", opts.representation.tag()),
                dataset: dataset.into(),
                arch: ARCH.into(),
                image_hw: hw,
                classes,
                test_accuracy: 0.0,
                options: FeatureOptions {
                    cache_dir: None,
                    data: DataOptions::default(),
                    ..opts.clone()
                },
                train_examples: n,
                test_examples: test.0.size()[0],
                seconds,
                threads: tch::get_num_threads(),
                device: gm_core::device::device_name(device),
                weights_sha256: String::new(),
            },
        };
        fnet.info.test_accuracy = fnet.accuracy(test.0, test.1)?;
        Ok(fnet)
    }

    /// Fraction of `x` classified as `y`.
    pub fn accuracy(&self, x: &Tensor, y: &Tensor) -> Result<f64> {
        let pred = self.logits(x)?.argmax(1, false);
        let y = y.to_device(pred.device());
        Ok(pred
            .eq_tensor(&y)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]))
    }

    fn check(&self, x: &Tensor) -> Result<()> {
        let s = x.size();
        let hw = self.info.image_hw;
        if s.len() != 4 || s[1] != 1 || s[2] != hw[0] || s[3] != hw[1] {
            return Err(Error::Msg(format!(
                "feature network {}: expected images [N, 1, {}, {}], got {s:?}",
                self.info.id, hw[0], hw[1]
            )));
        }
        Ok(())
    }

    fn batched(&self, x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
        self.check(x)?;
        let dev = self.vs.device();
        let n = x.size()[0];
        let _g = tch::no_grad_guard();
        let mut out = Vec::new();
        let mut s = 0;
        while s < n {
            let len = 1000.min(n - s);
            let xb = x.narrow(0, s, len).to_device(dev).to_kind(Kind::Float);
            out.push(f(&xb));
            s += len;
        }
        if out.is_empty() {
            return Err(Error::Msg("feature network: no images".into()));
        }
        Ok(Tensor::cat(&out, 0))
    }

    /// Penultimate activations `[N, 128]` of images `[N, 1, H, W]` in [0, 1].
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.batched(x, |b| self.net.features(b))
    }

    /// Class logits `[N, classes]`.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.batched(x, |b| self.net.features(b).apply(&self.net.fc2))
    }

    /// Class probabilities `[N, classes]`.
    pub fn probs(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.logits(x)?.softmax(-1, Kind::Float))
    }

    /// Features and class probabilities in one pass.
    pub fn features_and_probs(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let f = self.features(x)?;
        let p = tch::no_grad(|| self.net.fc2.forward(&f).softmax(-1, Kind::Float));
        Ok((f, p))
    }

    /// Test accuracy measured after training.
    pub fn test_accuracy(&self) -> f64 {
        self.info.test_accuracy
    }

    /// The values it was trained on.
    pub fn representation(&self) -> Representation {
        self.info.options.representation
    }

    /// `<dataset>-[<representation>-]convnet-v1`: the name Fréchet distances are keyed by.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Everything recorded about the network.
    pub fn info(&self) -> &FeatureInfo {
        &self.info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 classes of 12×12 images: a bright 4×4 block in one of four quadrants, on noise.
    fn blocks(n: i64, seed: i64) -> (Tensor, Tensor) {
        tch::manual_seed(seed);
        let y = Tensor::randint(4, [n], (Kind::Int64, Device::Cpu));
        let x = Tensor::rand([n, 1, 12, 12], (Kind::Float, Device::Cpu)) * 0.5;
        let yv = Vec::<i64>::try_from(&y).unwrap();
        for (i, c) in yv.iter().enumerate() {
            let (r, col) = ((c / 2) * 6 + 1, (c % 2) * 6 + 1);
            let _ = x.get(i as i64).narrow(1, r, 4).narrow(2, col, 4).fill_(1.0);
        }
        (x, y)
    }

    #[test]
    fn trains_to_high_accuracy_on_a_separable_image_set() {
        let _rng = gm_core::rng_guard::lock();
        let (x, y) = blocks(800, 1);
        let (xt, yt) = blocks(400, 2);
        let opts = FeatureOptions {
            epochs: 2,
            batch_size: 32,
            ..Default::default()
        };
        let net = FeatureNet::train("blocks", (&x, &y), (&xt, &yt), 4, Device::Cpu, &opts).unwrap();
        assert!(
            net.test_accuracy() > 0.97,
            "accuracy {}",
            net.test_accuracy()
        );
        assert_eq!(net.features(&xt).unwrap().size(), [400, FEATURE_DIM]);
        let p = net.probs(&xt).unwrap();
        let sums = p.sum_dim_intlist(1, false, Kind::Double);
        assert!((sums - 1.0).abs().max().double_value(&[]) < 1e-5);
        assert_eq!(net.id(), "blocks-convnet-v1");
        assert!(net
            .features(&Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu)))
            .is_err());
    }

    #[test]
    fn bad_options_and_unknown_datasets_are_config_errors() {
        let _rng = gm_core::rng_guard::lock();
        let bad = FeatureOptions {
            epochs: 0,
            ..Default::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("features.epochs"), "{err}");
        let bad = FeatureOptions {
            lr: -1.0,
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("features.lr"));
        let err = FeatureNet::load_or_train("two-moons", Device::Cpu, &FeatureOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("two-moons") && err.contains("fashion-mnist"),
            "{err}"
        );
    }

    #[test]
    fn the_cache_round_trips_and_checks_the_weights_hash() {
        let _rng = gm_core::rng_guard::lock();
        let dir = std::env::temp_dir().join(format!("gm-features-rt-{}", std::process::id()));
        let (x, y) = blocks(64, 3);
        let opts = FeatureOptions {
            epochs: 1,
            batch_size: 32,
            ..Default::default()
        };
        let mut net =
            FeatureNet::train("mnist", (&x, &y), (&x, &y), 4, Device::Cpu, &opts).unwrap();
        let (w, j) = (dir.join("m.safetensors"), dir.join("m.json"));
        net.save_cache(&w, &j).unwrap();
        let back = FeatureNet::load(&w, &j, "mnist", Device::Cpu, &opts).unwrap();
        assert_eq!(back.info(), net.info());
        let (a, b) = (net.features(&x).unwrap(), back.features(&x).unwrap());
        assert_eq!((a - b).abs().max().double_value(&[]), 0.0);
        // Other settings than the cached ones: an error naming the record.
        let other = FeatureOptions {
            epochs: 2,
            ..opts.clone()
        };
        let err = FeatureNet::load(&w, &j, "mnist", Device::Cpu, &other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m.json") && err.contains("epochs: 2"), "{err}");
        // Changed weights: the hash no longer matches.
        let mut bytes = std::fs::read(&w).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&w, bytes).unwrap();
        let err = FeatureNet::load(&w, &j, "mnist", Device::Cpu, &opts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m.safetensors") && err.contains("sha256"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_cache_is_an_error_naming_the_file() {
        let _rng = gm_core::rng_guard::lock();
        let dir = std::env::temp_dir().join(format!("gm-features-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = FeatureOptions {
            cache_dir: Some(dir.clone()),
            ..Default::default()
        };
        let json = dir.join(format!("mnist-{ARCH}.json"));
        std::fs::write(&json, b"{ not json").unwrap();
        let err = FeatureNet::load_or_train("binarized-mnist", Device::Cpu, &opts)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mnist-convnet-v1.json"), "{err}");
        assert!(err.contains("delete"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
