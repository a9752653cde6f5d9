//! The run config: one TOML file holding the model, data, optimizer, trainer, evaluation
//! settings and the seed. Every field has a default, unknown fields are rejected (with the
//! field's name), and [`RunConfig::validate`] checks values once, before any training, with a
//! typed [`Error::Config`] naming the field. The resolved config (defaults filled in) is
//! written into the run directory.
//!
//! ```
//! use gm_core::config::RunConfig;
//! let cfg = RunConfig::from_toml_str(r#"
//!     seed = 7
//!     [model]
//!     name = "vae"
//!     latent = 20
//!     [data]
//!     dataset = "bars-and-stripes"
//!     batch_size = 32
//!     [train]
//!     epochs = 3
//! "#)?;
//! assert_eq!(cfg.data.batch_size, 32);
//! assert_eq!(cfg.model.params["latent"].as_integer(), Some(20));
//! cfg.validate()?;
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::data::DataOptions;
use crate::device::DeviceSpec;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole run: what is trained, on what, how, and with which seed.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// One seed for libtorch (CPU and CUDA) and the Rust RNG used for shuffling.
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceSpec,
    /// The model: its registry name and its own parameters.
    pub model: ModelConfig,
    /// The dataset and how it is batched.
    pub data: DataConfig,
    /// The optimizer.
    pub optim: OptimConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// Evaluation settings used by `gm eval`.
    pub eval: EvalConfig,
}

/// `[model]`: `name` plus the model's own fields, which its builder checks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelConfig {
    /// Registry name, e.g. `vae`.
    pub name: String,
    /// Every other key of `[model]`, handed to the model's builder.
    pub params: toml::Table,
}

impl Serialize for ModelConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut t = toml::Table::new();
        t.insert("name".into(), toml::Value::String(self.name.clone()));
        for (k, v) in &self.params {
            t.insert(k.clone(), v.clone());
        }
        t.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut params = toml::Table::deserialize(d)?;
        let name = match params.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(serde::de::Error::custom(format!(
                    "model.name must be a string, found {other}"
                )))
            }
            None => String::new(),
        };
        Ok(ModelConfig { name, params })
    }
}

/// `[data]`: the dataset, its options (binarization, splits, cache) and batching.
#[derive(Clone, Debug, Serialize)]
pub struct DataConfig {
    /// Registry name of the dataset.
    pub dataset: String,
    /// Training batch size.
    pub batch_size: i64,
    /// Batch size for validation, evaluation and sampling (no gradients).
    pub eval_batch_size: i64,
    /// Drop the last, smaller batch of each epoch.
    pub drop_last: bool,
    /// How the dataset is loaded.
    #[serde(flatten)]
    pub options: DataOptions,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: String::new(),
            batch_size: 100,
            eval_batch_size: 1000,
            drop_last: false,
            options: DataOptions::default(),
        }
    }
}

impl<'de> Deserialize<'de> for DataConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut t = toml::Table::deserialize(d)?;
        let mut cfg = DataConfig::default();
        if let Some(v) = t.remove("dataset") {
            cfg.dataset = v
                .try_into()
                .map_err(|e| D::Error::custom(format!("data.dataset: {e}")))?;
        }
        for (key, slot) in [
            ("batch_size", &mut cfg.batch_size),
            ("eval_batch_size", &mut cfg.eval_batch_size),
        ] {
            if let Some(v) = t.remove(key) {
                *slot = v
                    .try_into()
                    .map_err(|e| D::Error::custom(format!("data.{key}: {e}")))?;
            }
        }
        if let Some(v) = t.remove("drop_last") {
            cfg.drop_last = v
                .try_into()
                .map_err(|e| D::Error::custom(format!("data.drop_last: {e}")))?;
        }
        cfg.options = toml::Value::Table(t)
            .try_into()
            .map_err(|e| D::Error::custom(format!("in [data]: {e}")))?;
        Ok(cfg)
    }
}

/// Which optimizer.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimKind {
    /// Adam (Kingma & Ba 2015).
    #[default]
    Adam,
    /// Stochastic gradient descent with optional momentum.
    Sgd,
}

/// `[optim]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// `adam` or `sgd`.
    pub kind: OptimKind,
    /// Base learning rate (the schedule scales it).
    pub lr: f64,
    /// Adam's β₁.
    pub beta1: f64,
    /// Adam's β₂.
    pub beta2: f64,
    /// Adam's ε.
    pub eps: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimKind::Adam,
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

/// Learning-rate schedule over training steps.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Cosine decay from the base rate to `lr_min` over the run.
    Cosine,
    /// Multiply by `lr_gamma` every `lr_step_epochs` epochs.
    Step,
    /// Exponential decay to `lr_min` at the last step.
    Exponential,
}

/// Which way a validation metric improves.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BestMode {
    /// Lower is better (a loss, an error rate).
    #[default]
    Min,
    /// Higher is better (a bound on log p(x)).
    Max,
}

/// `[train]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Stop after this many steps in all (optional).
    pub max_steps: Option<u64>,
    /// Stop at the end of the first epoch that ends after this many minutes of this
    /// session (optional; a budget for long runs). The run stays resumable, and a resumed
    /// session gets the budget afresh.
    pub max_minutes: Option<f64>,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Final learning rate of the cosine / exponential schedules.
    pub lr_min: f64,
    /// Factor of the step schedule.
    pub lr_gamma: f64,
    /// Epochs between steps of the step schedule.
    pub lr_step_epochs: usize,
    /// Linear warm-up over this many steps.
    pub warmup_steps: u64,
    /// Clip the global gradient norm to this value (optional).
    pub clip_grad_norm: Option<f64>,
    /// Write a checkpoint every N epochs (the last epoch always gets one).
    pub checkpoint_every: usize,
    /// Also write a checkpoint every N steps (optional).
    pub checkpoint_every_steps: Option<u64>,
    /// Write a sample grid every N epochs (0: only at the end).
    pub sample_every: usize,
    /// Number of samples in each grid.
    pub n_samples: i64,
    /// Steps between progress updates and NaN checks.
    pub log_every: u64,
    /// Evaluate on the validation split every epoch.
    pub validate: bool,
    /// Use at most this many validation examples, evenly spaced through the split (optional).
    pub valid_limit: Option<i64>,
    /// Keep the checkpoint of the epoch with the best value of this validation metric in
    /// `checkpoints/best` (optional); `gm eval` and `gm sample` then use it.
    pub best_metric: Option<String>,
    /// Whether `best_metric` improves downwards (`min`) or upwards (`max`).
    pub best_mode: BestMode,
    /// Stop early after this many epochs without a new best `best_metric` (optional).
    pub patience: Option<usize>,
}

impl TrainConfig {
    /// `best_metric` needs validation, `patience` needs `best_metric`.
    fn validate_best(&self) -> Result<()> {
        match (&self.best_metric, self.patience) {
            (Some(m), _) if m.is_empty() => Err(Error::config(
                "train.best_metric",
                "\"\"",
                "the name of a validation metric (e.g. \"loss\")",
            )),
            (Some(m), _) if !self.validate => Err(Error::config(
                "train.best_metric",
                m,
                "validation (train.validate = true) to measure it",
            )),
            (None, Some(p)) => Err(Error::config(
                "train.patience",
                p,
                "a train.best_metric to wait for",
            )),
            (_, Some(0)) => Err(Error::config("train.patience", 0, "at least 1 (epochs)")),
            _ => Ok(()),
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            max_steps: None,
            max_minutes: None,
            lr_schedule: LrSchedule::Constant,
            lr_min: 0.0,
            lr_gamma: 0.5,
            lr_step_epochs: 10,
            warmup_steps: 0,
            clip_grad_norm: None,
            checkpoint_every: 1,
            checkpoint_every_steps: None,
            sample_every: 1,
            n_samples: 64,
            log_every: 20,
            validate: true,
            valid_limit: None,
            best_metric: None,
            best_mode: BestMode::Min,
            patience: None,
        }
    }
}

/// `[eval]`: what `gm eval` computes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Importance samples per example for importance-sampled likelihoods (k).
    pub is_samples: i64,
    /// Examples per chunk when estimating (memory: chunk × k × D floats).
    pub chunk: i64,
    /// Evaluate on at most this many test examples, evenly spaced through the split (optional; recorded with the result).
    pub limit: Option<i64>,
    /// Seed of the estimators' randomness.
    pub seed: u64,
    /// AIS chains (M) for partition-function estimates.
    pub ais_chains: i64,
    /// AIS intermediate distributions: absent = the 14,500-temperature schedule of
    /// Salakhutdinov & Murray (2008); a number = that many, linearly spaced.
    pub ais_steps: Option<usize>,
    /// Also estimate log Z by reverse AIS started from the model's persistent chains
    /// (`dbm`; `rbm` with PCD or PT), reported as a record of its own: the chains are not
    /// exact samples, so it is a check of the forward estimate, not a bound.
    pub ais_reverse: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            is_samples: 5000,
            chunk: 4,
            limit: None,
            seed: 1234,
            ais_chains: 100,
            ais_steps: None,
            ais_reverse: false,
        }
    }
}

impl RunConfig {
    /// Parses a TOML string; unknown fields and wrong types are errors naming the field.
    pub fn from_toml_str(s: &str) -> Result<Self> {
        Self::parse(s, Path::new("<inline>"))
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let s = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&s, path)
    }

    fn parse(s: &str, path: &Path) -> Result<Self> {
        toml::from_str(s).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|sp| {
                    format!(
                        "line {}: ",
                        s[..sp.start.min(s.len())].matches('\n').count() + 1
                    )
                })
                .unwrap_or_default();
            Error::ConfigParse {
                path: PathBuf::from(path),
                msg: format!("{line}{}", e.message().trim().replace('\n', " ")),
            }
        })
    }

    /// The config as TOML, every default filled in.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serializes")
    }

    /// Checks every value that does not depend on the model (the model's builder checks its
    /// own fields and whether it can take the dataset's shape).
    pub fn validate(&self) -> Result<()> {
        if self.model.name.is_empty() {
            return Err(Error::config(
                "model.name",
                "\"\"",
                "a model name (see `gm list`)",
            ));
        }
        if self.data.dataset.is_empty() {
            return Err(Error::config(
                "data.dataset",
                "\"\"",
                "a dataset name (see `gm list`)",
            ));
        }
        crate::data::validate(&self.data.dataset, &self.data.options)?;
        positive_i64("data.batch_size", self.data.batch_size)?;
        positive_i64("data.eval_batch_size", self.data.eval_batch_size)?;
        let o = &self.optim;
        positive_f64("optim.lr", o.lr)?;
        unit_interval("optim.beta1", o.beta1)?;
        unit_interval("optim.beta2", o.beta2)?;
        positive_f64("optim.eps", o.eps)?;
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(Error::config(
                "optim.momentum",
                o.momentum,
                "a number in [0, 1)",
            ));
        }
        if !(o.weight_decay >= 0.0 && o.weight_decay.is_finite()) {
            return Err(Error::config(
                "optim.weight_decay",
                o.weight_decay,
                "a number ≥ 0",
            ));
        }
        let t = &self.train;
        if t.epochs == 0 && t.max_steps.is_none() {
            return Err(Error::config(
                "train.epochs",
                0,
                "at least 1 (or set train.max_steps)",
            ));
        }
        if let Some(m) = t.max_minutes {
            positive_f64("train.max_minutes", m)?;
        }
        if t.max_steps == Some(0) {
            return Err(Error::config("train.max_steps", 0, "at least 1"));
        }
        if !(t.lr_min >= 0.0 && t.lr_min <= o.lr) {
            return Err(Error::config(
                "train.lr_min",
                t.lr_min,
                "a number in [0, optim.lr]",
            ));
        }
        if !(t.lr_gamma > 0.0 && t.lr_gamma <= 1.0) {
            return Err(Error::config(
                "train.lr_gamma",
                t.lr_gamma,
                "a number in (0, 1]",
            ));
        }
        if t.lr_step_epochs == 0 {
            return Err(Error::config("train.lr_step_epochs", 0, "at least 1"));
        }
        if let Some(c) = t.clip_grad_norm {
            positive_f64("train.clip_grad_norm", c)?;
        }
        if t.checkpoint_every == 0 {
            return Err(Error::config(
                "train.checkpoint_every",
                0,
                "at least 1 (epochs)",
            ));
        }
        if t.checkpoint_every_steps == Some(0) {
            return Err(Error::config(
                "train.checkpoint_every_steps",
                0,
                "at least 1",
            ));
        }
        positive_i64("train.n_samples", t.n_samples)?;
        if t.log_every == 0 {
            return Err(Error::config("train.log_every", 0, "at least 1"));
        }
        if let Some(v) = t.valid_limit {
            positive_i64("train.valid_limit", v)?;
        }
        t.validate_best()?;
        positive_i64("eval.is_samples", self.eval.is_samples)?;
        positive_i64("eval.chunk", self.eval.chunk)?;
        if let Some(v) = self.eval.limit {
            positive_i64("eval.limit", v)?;
        }
        positive_i64("eval.ais_chains", self.eval.ais_chains)?;
        if self.eval.ais_steps == Some(0) {
            return Err(Error::config("eval.ais_steps", 0, "at least 1"));
        }
        Ok(())
    }

    /// The learning rate at global step `step` of `total_steps`, with `steps_per_epoch`.
    pub fn lr_at(&self, step: u64, total_steps: u64, steps_per_epoch: u64) -> f64 {
        let t = &self.train;
        let base = self.optim.lr;
        let progress = if total_steps <= 1 {
            0.0
        } else {
            (step as f64 / (total_steps - 1) as f64).min(1.0)
        };
        let lr = match t.lr_schedule {
            LrSchedule::Constant => base,
            LrSchedule::Cosine => {
                t.lr_min + 0.5 * (base - t.lr_min) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            LrSchedule::Exponential => {
                let end = t.lr_min.max(base * 1e-6);
                base * (end / base).powf(progress)
            }
            LrSchedule::Step => {
                let epoch = step / steps_per_epoch.max(1);
                base * t.lr_gamma.powi((epoch / t.lr_step_epochs as u64) as i32)
            }
        };
        if t.warmup_steps > 0 && step < t.warmup_steps {
            lr * (step + 1) as f64 / t.warmup_steps as f64
        } else {
            lr
        }
    }
}

fn positive_i64(field: &str, v: i64) -> Result<()> {
    if v > 0 {
        Ok(())
    } else {
        Err(Error::config(field, v, "a positive integer"))
    }
}

fn positive_f64(field: &str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(Error::config(field, v, "a positive finite number"))
    }
}

fn unit_interval(field: &str, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::config(field, v, "a number in [0, 1)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(s: &str) -> Result<RunConfig> {
        RunConfig::from_toml_str(s)
    }

    const BASE: &str = "[model]\nname = \"vae\"\n[data]\ndataset = \"bars-and-stripes\"\n";

    #[test]
    fn defaults_fill_everything_and_round_trip() {
        let c = cfg(BASE).unwrap();
        c.validate().unwrap();
        assert_eq!(c.optim.lr, 1e-3);
        assert_eq!(c.train.epochs, 10);
        let again = RunConfig::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(again.to_toml(), c.to_toml());
        assert_eq!(again.model, c.model);
    }

    #[test]
    fn labelled_is_read_and_written_back() {
        let c = cfg(&format!("{BASE}labelled = 100\n")).unwrap();
        assert_eq!(c.data.options.labelled, Some(100));
        assert!(c.to_toml().contains("labelled = 100"), "{}", c.to_toml());
        let again = RunConfig::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(again.data.options.labelled, Some(100));
        assert_eq!(cfg(BASE).unwrap().data.options.labelled, None);
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_name() {
        for (bad, name) in [
            ("seeed = 1\n", "seeed"),
            ("[optim]\nlearning_rate = 0.1\n", "learning_rate"),
            ("[train]\nepochz = 2\n", "epochz"),
            ("[data]\nbatchsize = 2\n", "batchsize"),
            ("[eval]\nk = 2\n", "`k`"),
        ] {
            let err = cfg(bad).unwrap_err().to_string();
            assert!(err.contains(name), "{bad:?} gave {err}");
        }
    }

    #[test]
    fn wrong_types_are_rejected() {
        let err = cfg("[data]\nbatch_size = \"ten\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_size"), "{err}");
        let err = cfg("device = \"tpu\"\n").unwrap_err().to_string();
        assert!(err.contains("tpu"), "{err}");
    }

    #[test]
    fn each_invalid_value_is_a_typed_error_naming_the_field() {
        for (extra, field) in [
            ("[optim]\nlr = -0.1\n", "optim.lr"),
            ("[optim]\nlr = 0.0\n", "optim.lr"),
            ("[optim]\nbeta1 = 1.0\n", "optim.beta1"),
            ("[optim]\nmomentum = 1.5\n", "optim.momentum"),
            ("[train]\nepochs = 0\n", "train.epochs"),
            ("[train]\nclip_grad_norm = -1.0\n", "train.clip_grad_norm"),
            ("[train]\ncheckpoint_every = 0\n", "train.checkpoint_every"),
            ("[eval]\nis_samples = 0\n", "eval.is_samples"),
            ("[eval]\nais_chains = 0\n", "eval.ais_chains"),
            ("[eval]\nais_steps = 0\n", "eval.ais_steps"),
            ("[train]\npatience = 3\n", "train.patience"),
            (
                "[train]\nbest_metric = \"loss\"\npatience = 0\n",
                "train.patience",
            ),
            ("[train]\nbest_metric = \"\"\n", "train.best_metric"),
            (
                "[train]\nbest_metric = \"loss\"\nvalidate = false\n",
                "train.best_metric",
            ),
        ] {
            let c = cfg(&format!("{BASE}{}", extra.replace("[data]\n", ""))).unwrap();
            match c.validate() {
                Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "{extra}"),
                other => panic!("{extra}: expected a config error, got {other:?}"),
            }
        }
        let c = cfg(
            "[model]\nname = \"vae\"\n[data]\ndataset = \"bars-and-stripes\"\nbatch_size = 0\n",
        )
        .unwrap();
        assert!(
            matches!(c.validate(), Err(Error::Config { field, .. }) if field == "data.batch_size")
        );
        let c = cfg("[model]\nname = \"vae\"\n[data]\ndataset = \"no-such-set\"\n").unwrap();
        assert!(matches!(
            c.validate(),
            Err(Error::Unknown {
                what: "dataset",
                ..
            })
        ));
        let c = cfg("[data]\ndataset = \"bars-and-stripes\"\n").unwrap();
        assert!(matches!(c.validate(), Err(Error::Config { field, .. }) if field == "model.name"));
    }

    #[test]
    fn schedules() {
        let mut c = cfg(BASE).unwrap();
        c.optim.lr = 1.0;
        assert_eq!(c.lr_at(50, 100, 10), 1.0);
        c.train.lr_schedule = LrSchedule::Cosine;
        c.train.lr_min = 0.1;
        approx::assert_abs_diff_eq!(c.lr_at(0, 101, 10), 1.0, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(c.lr_at(50, 101, 10), 0.55, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(c.lr_at(100, 101, 10), 0.1, epsilon = 1e-12);
        c.train.lr_schedule = LrSchedule::Step;
        c.train.lr_step_epochs = 2;
        assert_eq!(c.lr_at(39, 100, 10), 0.5);
        assert_eq!(c.lr_at(40, 100, 10), 0.25);
        c.train.warmup_steps = 4;
        assert_eq!(c.lr_at(0, 100, 10), 0.25);
    }
}
