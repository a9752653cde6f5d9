//! The small traits every model implements, the labelled likelihood results they report,
//! the optional capabilities some have ([`Conditional`] sampling, [`Complete`] for partly
//! observed inputs, queried through [`Model::as_conditional`] / [`Model::as_completion`]),
//! and the registry that lets the `gm` command build any model by name.
//!
//! A model owns its parameters (one `VarStore` per independently optimised network) and its
//! [`Optimizer`]s; the [`crate::train`] loop drives it through [`Model::train_step`], saves
//! and restores it through [`Model::var_stores`] and [`Model::optimizers`], and asks it for
//! samples. Likelihoods always come with their [`LikelihoodKind`], so an exact value is never
//! put beside a bound or an estimate without saying so (*Deep Learning* §20.14).
//!
//! ```no_run
//! use gm_core::model::{ModelRegistry, BuildContext};
//! let mut registry = ModelRegistry::new();
//! // each family crate adds its entries: gm_vae::register(&mut registry);
//! for entry in registry.entries() {
//!     println!("{:<12} {}", entry.name, entry.description);
//! }
//! ```

use crate::config::RunConfig;
use crate::data::{Batch, Dataset, Split};
use crate::optim::Optimizer;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Tensor};

/// Named scalar metrics of a step or an evaluation (0-dim tensors, left on the device until
/// the trainer reads them). By convention the first one is the loss that is minimised.
pub type Metrics = Vec<(&'static str, Tensor)>;

/// What a reported log-likelihood is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LikelihoodKind {
    /// Computed exactly (autoregressive models, enumerated small models).
    Exact,
    /// A lower bound on log p(x) (ELBO, IWAE-k).
    LowerBound,
    /// A stochastic estimate (importance sampling, AIS), reported with its standard error.
    StochasticEstimate,
    /// A Parzen-window estimate: a weak one (§20.14), with bandwidth and sample count.
    Parzen,
}

impl std::fmt::Display for LikelihoodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LikelihoodKind::Exact => "exact",
            LikelihoodKind::LowerBound => "lower bound",
            LikelihoodKind::StochasticEstimate => "stochastic estimate",
            LikelihoodKind::Parzen => "Parzen estimate",
        })
    }
}

/// A log-likelihood result in nats per example, with its kind, method and settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLikelihood {
    /// Exact, bound, estimate or Parzen.
    pub kind: LikelihoodKind,
    /// The method, e.g. `elbo` or `importance-sampling`.
    pub method: String,
    /// Its settings (k, chains, temperatures, bandwidth …).
    pub settings: serde_json::Value,
    /// Mean log p(x) over the examples, nats.
    pub mean: f64,
    /// Standard error of that mean over examples (and, for estimates, of the estimator).
    pub std_err: f64,
    /// Number of examples.
    pub n: i64,
}

impl LogLikelihood {
    /// Negative log-likelihood in nats per example (what the tables report).
    pub fn nll(&self) -> f64 {
        -self.mean
    }

    /// One record for the union of disjoint example sets, from the records of each (the
    /// same method on each): the mean over all examples, and the standard error that the
    /// per-example values of the union would give (their unbiased standard deviation / √n,
    /// rebuilt from each part's mean, standard error and count). Kind, method and settings
    /// are the first part's, with a `bits_per_dim` setting recomputed for the pooled mean
    /// and `parts` added.
    pub fn pooled(parts: &[LogLikelihood]) -> Result<LogLikelihood> {
        let first = parts
            .first()
            .ok_or_else(|| Error::Msg("pooling log-likelihoods: no part".into()))?;
        if let Some(p) = parts
            .iter()
            .find(|p| p.method != first.method || p.kind != first.kind)
        {
            return Err(Error::Msg(format!(
                "pooling log-likelihoods: parts of {} ({}) and {} ({})",
                first.method, first.kind, p.method, p.kind
            )));
        }
        let n: i64 = parts.iter().map(|p| p.n).sum();
        if n <= 0 {
            return Err(Error::Msg("pooling log-likelihoods: no example".into()));
        }
        let mean = parts.iter().map(|p| p.n as f64 * p.mean).sum::<f64>() / n as f64;
        // Σ (x − mean)² = Σ_parts [(n_p − 1) s_p² + n_p (mean_p − mean)²], s_p² = n_p se_p².
        let squares: f64 = parts
            .iter()
            .map(|p| {
                let m = p.n as f64;
                (m - 1.0).max(0.0) * m * p.std_err * p.std_err + m * (p.mean - mean).powi(2)
            })
            .sum();
        let std_err = if n > 1 {
            (squares / (n - 1) as f64).sqrt() / (n as f64).sqrt()
        } else {
            0.0
        };
        let mut settings = first.settings.clone();
        if let (Some(bpd), true) = (
            settings.get("bits_per_dim").and_then(|b| b.as_f64()),
            first.mean != 0.0,
        ) {
            settings["bits_per_dim"] = (bpd * mean / first.mean).into();
        }
        if settings.is_object() {
            settings["parts"] = parts.len().into();
        }
        Ok(LogLikelihood {
            kind: first.kind,
            method: first.method.clone(),
            settings,
            mean,
            std_err,
            n,
        })
    }
}

/// What a [`Statistic`] measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatisticKind {
    /// Fraction of examples whose label a model's classifier gets wrong. Lower is better.
    ClassificationError,
    /// Latent dimensions whose posterior mean varies over the data (Burda et al. 2015's
    /// "active units"). Not a quality measure by itself.
    ActiveUnits,
}

/// A measured property of a trained model that is not a likelihood (`gm eval` records it
/// beside the likelihoods).
#[derive(Clone, Debug)]
pub struct Statistic {
    /// What it measures.
    pub kind: StatisticKind,
    /// How, e.g. `argmax q(y|x)`.
    pub method: String,
    /// Its settings (thresholds, per-dimension values …).
    pub settings: serde_json::Value,
    /// The value.
    pub value: f64,
    /// Its standard error, when there is one.
    pub std_err: Option<f64>,
    /// Number of examples it is computed from.
    pub n: i64,
}

/// A set of images for a picture (samples, reconstructions, walks), `[N, C, H, W]` in [0, 1].
#[derive(Debug)]
pub struct Figure {
    /// File stem, e.g. `reconstructions`.
    pub name: String,
    /// One line saying what the picture shows.
    pub caption: String,
    /// The images.
    pub images: Tensor,
    /// Images per row of the grid.
    pub per_row: i64,
}

/// A trainable generative model.
pub trait Model {
    /// Registry name.
    fn name(&self) -> &str;

    /// The model's parameters: one named `VarStore` per independently optimised network.
    fn var_stores(&self) -> Vec<(&'static str, &VarStore)>;

    /// Mutable access to the same stores, for loading checkpoints.
    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)>;

    /// The model's optimizers, named, so the trainer can set the learning rate, clip and
    /// save / restore their state.
    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)>;

    /// Read access to the optimizers, for checkpoints.
    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)>;

    /// One training update on a batch (inputs `[B, ...]` already on the model's device,
    /// their labels when the dataset has them, which labels are observed); returns
    /// per-example metrics, the minimised loss first.
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics>;

    /// Per-example metrics on a held-out batch, without gradients (e.g. the ELBO).
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics>;

    /// `n` samples `[n, C, H, W]` (or `[n, D]` for vector data), on the model's device.
    fn sample(&self, n: i64) -> Result<Tensor>;

    /// The `n` samples of the per-epoch progress grid (`samples/epoch-*.png`). By default
    /// fresh draws ([`Model::sample`]); a model with latent noise may draw them from a fixed,
    /// saved noise tensor so that successive grids show the same z.
    fn progress_samples(&self, n: i64) -> Result<Tensor> {
        self.sample(n)
    }

    /// Checks of the model's own samples at the end of every training epoch (a GAN's class
    /// coverage, say): named values that the trainer writes under `checks` in the epoch's
    /// line of `metrics.jsonl` (and logs); the model may log a warning. Called without
    /// gradients and with libtorch seeded from `(seed, epoch)`; none by default.
    fn epoch_checks(&mut self) -> Result<Vec<(&'static str, f64)>> {
        Ok(Vec::new())
    }

    /// Pictures specific to the model (reconstructions, latent walks …) built from a batch of
    /// held-out data.
    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        Ok(Vec::new())
    }

    /// Pictures that need labels (e.g. a 2-D latent space coloured by class), built from
    /// held-out inputs `x` and their class labels `y` `[N]`; none by default.
    fn labelled_figures(&self, _x: &Tensor, _y: &Tensor) -> Result<Vec<Figure>> {
        Ok(Vec::new())
    }

    /// Log-likelihoods of `x` that the model can compute, each labelled with its kind. `x`
    /// is the whole evaluation split; the model chunks it itself.
    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>>;

    /// Whether every record of [`Model::log_likelihoods`] is a mean of independent
    /// per-example values, so that the examples may be split among processes and the
    /// records pooled ([`LogLikelihood::pooled`]); false (the default) where a record
    /// shares an estimate between examples (an AIS log Ẑ) or is not a per-example mean.
    fn likelihoods_per_example(&self) -> bool {
        false
    }

    /// Statistics of the model on `split` (its inputs and, when it has them, labels) that
    /// are not likelihoods; none by default.
    fn statistics(&self, _split: &Split, _cfg: &RunConfig) -> Result<Vec<Statistic>> {
        Ok(Vec::new())
    }

    /// The model's resolved parameters (every default filled in), written into the run's
    /// config.
    fn resolved_params(&self) -> toml::Table;

    /// The device the model lives on.
    fn device(&self) -> Device;

    /// Class-conditional sampling, when the model has it (capability query; `None`: it
    /// has not).
    fn as_conditional(&self) -> Option<&dyn Conditional> {
        None
    }

    /// Completion of partly observed inputs, when the model has it (capability query;
    /// `None`: it has not).
    fn as_completion(&self) -> Option<&dyn Complete> {
        None
    }
}

/// A model that samples given a class label.
pub trait Conditional {
    /// Number of classes; labels are `0..num_classes()`.
    fn num_classes(&self) -> i64;

    /// `n` samples of class `class`, shaped like [`Model::sample`]'s.
    fn sample_class(&self, n: i64, class: i64) -> Result<Tensor>;
}

/// An error unless `class` is one of the `classes` classes of model `model` (for
/// [`Conditional::sample_class`]).
pub fn check_class(model: &str, class: i64, classes: i64) -> Result<()> {
    if (0..classes).contains(&class) {
        return Ok(());
    }
    Err(Error::Msg(format!(
        "{model}: class {class} is out of range: the model has classes 0..={}",
        classes - 1
    )))
}

/// How a completion relates to the model's conditional p(x_hidden | x_observed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    /// Drawn exactly from the model's conditional.
    Exact,
    /// An approximation of it, by the named method.
    Approximate {
        /// What is done, e.g. `50 encode/decode iterations`.
        method: String,
    },
}

impl std::fmt::Display for CompletionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompletionKind::Exact => f.write_str("exact: drawn from p(x_hidden | x_observed)"),
            CompletionKind::Approximate { method } => write!(f, "approximate: {method}"),
        }
    }
}

/// A model that fills in the hidden part of partly observed inputs.
pub trait Complete {
    /// Completions of `x` `[B, …]`: observed entries (`mask` = 1, shaped like `x`) are
    /// copied from `x`, hidden ones (`mask` = 0) are filled in. An error when the model
    /// cannot complete this mask (saying why).
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor>;

    /// Whether [`Complete::complete`] is exact or approximate.
    fn completion_kind(&self) -> CompletionKind;
}

/// Writes the four storage accessors of [`Model`] (`var_stores`, `var_stores_mut`,
/// `optimizers`, `optimizers_ref`) for a model with one network: a `VarStore` field saved as
/// `model.safetensors` and one [`Optimizer`] field whose state is saved under `$name`.
/// With `chains = field` a second `VarStore` (persistent Markov chains) is saved as
/// `chains.safetensors`. Use it inside `impl Model for …`:
///
/// ```text
/// impl Model for MyModel {
///     gm_core::single_network!(vs, opt, "opt");                       // or
///     gm_core::single_network!(vs, opt, "opt", chains = chains_vs);
///     // … the other methods
/// }
/// ```
#[macro_export]
macro_rules! single_network {
    ($vs:ident, $opt:ident, $name:literal, chains = $chains:ident) => {
        fn var_stores(&self) -> Vec<(&'static str, &tch::nn::VarStore)> {
            vec![("model", &self.$vs), ("chains", &self.$chains)]
        }

        fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut tch::nn::VarStore)> {
            vec![("model", &mut self.$vs), ("chains", &mut self.$chains)]
        }

        $crate::single_network!(@optimizers $opt, $name);
    };
    (@optimizers $opt:ident, $name:literal) => {
        fn optimizers(&mut self) -> Vec<(&'static str, &mut $crate::optim::Optimizer)> {
            vec![($name, &mut self.$opt)]
        }

        fn optimizers_ref(&self) -> Vec<(&'static str, &$crate::optim::Optimizer)> {
            vec![($name, &self.$opt)]
        }
    };
    ($vs:ident, $opt:ident, $name:literal) => {
        fn var_stores(&self) -> Vec<(&'static str, &tch::nn::VarStore)> {
            vec![("model", &self.$vs)]
        }

        fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut tch::nn::VarStore)> {
            vec![("model", &mut self.$vs)]
        }

        $crate::single_network!(@optimizers $opt, $name);
    };
}

/// What a builder gets: the run config, the dataset it will see, the device.
pub struct BuildContext<'a> {
    /// The whole run config (`cfg.model.params` are the model's own fields).
    pub cfg: &'a RunConfig,
    /// The dataset (shape, binary or real, labels).
    pub data: &'a Dataset,
    /// Where the parameters live.
    pub device: Device,
}

/// Builds a model from a run config.
pub type BuildFn = fn(&BuildContext<'_>) -> Result<Box<dyn Model>>;

/// One registered model.
#[derive(Clone)]
pub struct ModelEntry {
    /// Registry name (`gm train <name>`).
    pub name: &'static str,
    /// Family crate, e.g. `gm-vae`.
    pub family: &'static str,
    /// One line for `gm list`.
    pub description: &'static str,
    /// The dataset its default config trains on.
    pub default_dataset: &'static str,
    /// Whether it needs labels in its training batches (class-conditional and
    /// semi-supervised models); building it on a dataset without labels is a config error.
    pub needs_labels: bool,
    /// The builder.
    pub build: BuildFn,
}

/// Model names → builders; filled by each family crate's `register` function.
#[derive(Default, Clone)]
pub struct ModelRegistry {
    entries: Vec<ModelEntry>,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a model; a duplicate name is a programming error.
    pub fn add(&mut self, entry: ModelEntry) {
        assert!(
            self.get(entry.name).is_none(),
            "model {} registered twice",
            entry.name
        );
        self.entries.push(entry);
    }

    /// All entries, in registration order.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry named `name`, or an error listing the known names.
    pub fn lookup(&self, name: &str) -> Result<&ModelEntry> {
        self.get(name).ok_or_else(|| Error::Unknown {
            what: "model",
            name: name.to_string(),
            known: self
                .entries
                .iter()
                .map(|e| e.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Builds the model a run config names; a model that needs labels on a dataset without
    /// them is an [`Error::Config`] naming both.
    pub fn build(&self, ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
        let entry = self.lookup(&ctx.cfg.model.name)?;
        if entry.needs_labels && (ctx.data.train.y.is_none() || ctx.data.num_classes.is_none()) {
            return Err(Error::config(
                "data.dataset",
                &ctx.data.name,
                format!(
                    "a dataset with labels: model {} trains on labels and {} has none",
                    entry.name, ctx.data.name
                ),
            ));
        }
        (entry.build)(ctx)
    }
}

/// Deserializes a model's own parameters from `[model]`, rejecting unknown fields (the
/// model's config struct has `#[serde(deny_unknown_fields)]`) and values of the wrong type
/// (e.g. a negative count) with a message naming the field.
pub fn parse_params<T: serde::de::DeserializeOwned>(
    model: &str,
    params: &toml::Table,
) -> Result<T> {
    // Through text, so that the error has a span: the field it points at is named.
    let text = toml::to_string(params).expect("a TOML table serializes");
    toml::from_str(&text).map_err(|e: toml::de::Error| {
        let msg = e.message().trim().replace('\n', " ");
        let key = e.span().and_then(|s| key_at(&text, s.start));
        Error::ConfigParse {
            path: format!("[model] of {model}").into(),
            msg: match key {
                Some(k) if !msg.contains(&format!("`{k}`")) => format!("{k}: {msg}"),
                _ => msg,
            },
        }
    })
}

/// The key of the `key = value` line of `text` holding byte `pos`.
fn key_at(text: &str, pos: usize) -> Option<String> {
    let start = text[..pos.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    Some(key.trim().trim_matches('"').to_string())
}

/// The resolved form of a model's parameters, for [`Model::resolved_params`].
pub fn params_table<T: Serialize>(params: &T) -> toml::Table {
    toml::Table::try_from(params).expect("model parameters serialize to a TOML table")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        hidden: usize,
        scale: f64,
    }

    fn msg(text: &str) -> String {
        let t: toml::Table = toml::from_str(text).unwrap();
        match parse_params::<P>("m", &t) {
            Err(Error::ConfigParse { msg, .. }) => msg,
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    /// The record `mean ± sd/√n` of `v`, as the models compute it.
    fn record(v: &[f64], settings: serde_json::Value) -> LogLikelihood {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        LogLikelihood {
            kind: LikelihoodKind::LowerBound,
            method: "elbo".into(),
            settings,
            mean,
            std_err: if n > 1.0 { (var / n).sqrt() } else { 0.0 },
            n: v.len() as i64,
        }
    }

    #[test]
    fn pooled_records_equal_the_record_of_the_union() {
        let v: Vec<f64> = (0..23)
            .map(|i| -80.0 - ((i * 7919) % 31) as f64 * 0.37)
            .collect();
        let bpd = |m: f64| serde_json::json!({"bits_per_dim": -m / (784.0 * 2f64.ln())});
        let whole = record(&v, bpd(0.0));
        // Uneven parts, one of a single example (its standard error 0).
        let parts: Vec<LogLikelihood> = [&v[..12], &v[12..22], &v[22..]]
            .iter()
            .map(|p| {
                let r = record(p, serde_json::Value::Null);
                record(p, bpd(r.mean))
            })
            .collect();
        let p = LogLikelihood::pooled(&parts).unwrap();
        assert_eq!(p.n, 23);
        approx::assert_abs_diff_eq!(p.mean, whole.mean, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(p.std_err, whole.std_err, epsilon = 1e-12);
        let want = -whole.mean / (784.0 * 2f64.ln());
        approx::assert_abs_diff_eq!(
            p.settings["bits_per_dim"].as_f64().unwrap(),
            want,
            epsilon = 1e-12
        );
        assert_eq!(p.settings["parts"], 3);
        let mut other = parts[1].clone();
        other.method = "importance-sampling".into();
        let e = LogLikelihood::pooled(&[parts[0].clone(), other]).unwrap_err();
        assert!(e.to_string().contains("importance-sampling"), "{e}");
    }

    #[test]
    fn parse_errors_name_the_field() {
        let t: toml::Table = toml::from_str("hidden = 3\nscale = 0.5").unwrap();
        assert_eq!(parse_params::<P>("m", &t).unwrap().hidden, 3);
        let m = msg("hidden = -1\nscale = 0.5");
        assert!(m.starts_with("hidden: ") && m.contains("-1"), "{m}");
        let m = msg("hidden = 2\nscale = \"big\"");
        assert!(m.starts_with("scale: "), "{m}");
        let m = msg("hidden = 2\nscale = 1.0\nhiden = 3");
        assert!(m.contains("`hiden`") && !m.starts_with("hiden:"), "{m}");
    }
}
