//! Result records and the rules for comparing them (*Deep Learning* §20.14).
//!
//! Every number gm reports is a [`ResultRecord`]: which model (and the hash of its whole run
//! config), on which dataset, split and **binarization scheme**, which metric — for a
//! likelihood, whether it is exact, a bound, a stochastic estimate or a Parzen estimate —
//! by which method with which settings, its value ± standard error, how many examples, how
//! long it took and on which device. [`compare`] refuses to put two records side by side
//! when the comparison would be meaningless: different binarizations (different data, so
//! different tasks), different metric kinds (an exact value against a bound or an estimate),
//! different datasets or splits, or Fréchet distances on different feature networks — unless
//! the caller forces it, in which case the overridden objections travel with the result.
//!
//! ```
//! use gm_core::data::Binarization;
//! use gm_core::model::{LikelihoodKind, LogLikelihood};
//! use gm_eval::results::{compare, RecordContext};
//! let ctx = |model: &str, binarization| RecordContext {
//!     model: model.into(),
//!     config_hash: "0123456789abcdef".into(),
//!     dataset: "binarized-mnist".into(),
//!     split: "test".into(),
//!     binarization,
//!     labelled: None,
//!     device: "cpu".into(),
//!     checkpoint: None,
//! };
//! let ll = |mean| LogLikelihood {
//!     kind: LikelihoodKind::Exact,
//!     method: "exact".into(),
//!     settings: serde_json::json!({}),
//!     mean,
//!     std_err: 0.1,
//!     n: 10_000,
//! };
//! let nade = ctx("nade", Binarization::StaticFile).log_likelihood(&ll(-88.3), 12.0);
//! let made = ctx("made", Binarization::StaticFile).log_likelihood(&ll(-86.6), 9.0);
//! let c = compare(&made, &nade, false)?;
//! assert!((c.difference - 1.7).abs() < 1e-9);   // made − nade, nats: made is better
//!
//! let dynamic = ctx("vae", Binarization::Dynamic { seed: 1 }).log_likelihood(&ll(-85.0), 3.0);
//! let err = compare(&dynamic, &nade, false).unwrap_err();
//! assert!(err.to_string().contains("binarization"));
//! assert!(compare(&dynamic, &nade, true)?.overridden.len() == 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::Path;
use std::time::Instant;

use gm_core::config::RunConfig;
use gm_core::data::Binarization;
use gm_core::model::{LikelihoodKind, LogLikelihood, Statistic, StatisticKind};
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::ais::AisResult;
use crate::frechet::FrechetResult;
use crate::mmd::MmdResult;

/// What a recorded number measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean log p(x) in nats per example, of the given kind. Higher is better.
    LogLikelihood(LikelihoodKind),
    /// log Z of an energy-based model (e.g. by AIS). Not a quality measure.
    LogPartition,
    /// Unbiased MMD² between model samples and data. Lower is better.
    Mmd2,
    /// Squared Fréchet distance between feature statistics of samples and data. Lower is
    /// better; only comparable on the same feature network.
    FrechetDistance,
    /// Fraction of samples inside the data's k-NN feature manifold (Kynkäänniemi et al.).
    /// Higher is better.
    Precision,
    /// Fraction of data inside the samples' k-NN feature manifold. Higher is better.
    Recall,
    /// Mean entropy of the feature classifier's p(y | x) on samples, nats. Lower is better
    /// (recognisable samples).
    LabelEntropy,
    /// Entropy of the classifier's marginal label distribution on samples, nats. Higher is
    /// better (every class produced).
    MarginalLabelEntropy,
    /// Number of classes given at least 1% of the samples. Higher is better.
    ClassCoverage,
    /// Median distance from a sample to its nearest training example, pixel space. Not a
    /// quality measure by itself: compare it with the test split's (the floor).
    NnDistance,
    /// Fraction of samples closer to a training example than 99% of test examples are.
    /// Lower is better.
    NearCopies,
    /// Fraction of test examples a model's own classifier labels wrongly. Lower is better.
    ClassificationError,
    /// Number of active latent units (Burda et al. 2015). Not a quality measure.
    ActiveUnits,
}

impl Metric {
    /// Whether a larger value is better; `None` when the value is not a quality measure.
    pub fn higher_is_better(self) -> Option<bool> {
        match self {
            Metric::LogLikelihood(_) => Some(true),
            Metric::LogPartition => None,
            Metric::Mmd2
            | Metric::FrechetDistance
            | Metric::LabelEntropy
            | Metric::NearCopies
            | Metric::ClassificationError => Some(false),
            Metric::Precision
            | Metric::Recall
            | Metric::MarginalLabelEntropy
            | Metric::ClassCoverage => Some(true),
            Metric::NnDistance | Metric::ActiveUnits => None,
        }
    }
}

impl Metric {
    /// Whether the value is computed on a feature network's outputs (then only values on the
    /// same network, named by the `features` setting, are comparable).
    pub fn uses_features(self) -> bool {
        matches!(
            self,
            Metric::FrechetDistance
                | Metric::Precision
                | Metric::Recall
                | Metric::LabelEntropy
                | Metric::MarginalLabelEntropy
                | Metric::ClassCoverage
        )
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::LogLikelihood(k) => write!(f, "log-likelihood ({k})"),
            Metric::LogPartition => write!(f, "log partition function"),
            Metric::Mmd2 => write!(f, "MMD²"),
            Metric::FrechetDistance => write!(f, "Fréchet distance"),
            Metric::Precision => write!(f, "precision"),
            Metric::Recall => write!(f, "recall"),
            Metric::LabelEntropy => write!(f, "label entropy"),
            Metric::MarginalLabelEntropy => write!(f, "marginal label entropy"),
            Metric::ClassCoverage => write!(f, "class coverage"),
            Metric::NnDistance => write!(f, "NN distance to train"),
            Metric::NearCopies => write!(f, "near-copies"),
            Metric::ClassificationError => write!(f, "classification error"),
            Metric::ActiveUnits => write!(f, "active units"),
        }
    }
}

/// One reported number with everything needed to judge it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Model name (registry name or a run's name).
    pub model: String,
    /// Hash of the whole run config ([`config_hash`]).
    pub config_hash: String,
    /// Dataset name.
    pub dataset: String,
    /// `train`, `valid` or `test`.
    pub split: String,
    /// How the data was binarized.
    pub binarization: Binarization,
    /// Training labels kept under `[data] labelled = N` (`None`: every label, or the data
    /// has none).
    #[serde(default)]
    pub labelled: Option<i64>,
    /// What the value measures.
    pub metric: Metric,
    /// The method, e.g. `ais`, `elbo`, `parzen-gaussian`.
    pub method: String,
    /// The method's settings (chains, temperatures, bandwidths, k, feature network …).
    pub settings: serde_json::Value,
    /// The value (log-likelihoods: mean log p(x), nats per example).
    pub value: f64,
    /// Its standard error, when the method gives one.
    pub std_err: Option<f64>,
    /// Number of examples (or samples) it is computed from.
    pub n: i64,
    /// Wall-clock seconds it took.
    pub seconds: f64,
    /// Device, e.g. `cpu` or `cuda:0`.
    pub device: String,
    /// The checkpoint evaluated (absent in records of older gm versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<CheckpointRef>,
}

/// The checkpoint a record was computed from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckpointRef {
    /// Its folder's name, e.g. `step-000010000` or `best-step-000004000`.
    pub name: String,
    /// Epochs completed when it was written.
    pub epoch: usize,
    /// Updates made when it was written.
    pub step: u64,
}

/// The fields shared by every record of one evaluation.
#[derive(Clone, Debug)]
pub struct RecordContext {
    /// Model name.
    pub model: String,
    /// Hash of the run config.
    pub config_hash: String,
    /// Dataset name.
    pub dataset: String,
    /// Split evaluated.
    pub split: String,
    /// The dataset's binarization.
    pub binarization: Binarization,
    /// `[data] labelled` of the run (`None`: every training label).
    pub labelled: Option<i64>,
    /// Device name.
    pub device: String,
    /// The checkpoint evaluated.
    pub checkpoint: Option<CheckpointRef>,
}

impl RecordContext {
    /// The value part of a record.
    fn record(
        &self,
        metric: Metric,
        method: &str,
        settings: serde_json::Value,
        v: Value,
    ) -> ResultRecord {
        ResultRecord {
            model: self.model.clone(),
            config_hash: self.config_hash.clone(),
            dataset: self.dataset.clone(),
            split: self.split.clone(),
            binarization: self.binarization,
            labelled: self.labelled,
            metric,
            method: method.into(),
            settings,
            value: v.value,
            std_err: v.std_err,
            n: v.n,
            seconds: v.seconds,
            device: self.device.clone(),
            checkpoint: self.checkpoint.clone(),
        }
    }

    /// A log-likelihood result, with its kind.
    pub fn log_likelihood(&self, ll: &LogLikelihood, seconds: f64) -> ResultRecord {
        let v = Value {
            value: ll.mean,
            std_err: Some(ll.std_err),
            n: ll.n,
            seconds,
        };
        self.record(
            Metric::LogLikelihood(ll.kind),
            &ll.method,
            ll.settings.clone(),
            v,
        )
    }

    /// A model statistic that is not a likelihood.
    pub fn statistic(&self, s: &Statistic, seconds: f64) -> ResultRecord {
        let metric = match s.kind {
            StatisticKind::ClassificationError => Metric::ClassificationError,
            StatisticKind::ActiveUnits => Metric::ActiveUnits,
        };
        let v = Value {
            value: s.value,
            std_err: s.std_err,
            n: s.n,
            seconds,
        };
        self.record(metric, &s.method, s.settings.clone(), v)
    }

    /// An AIS estimate of log Z (its settings say forward or reverse, chains, schedule).
    pub fn log_partition(&self, ais: &AisResult) -> ResultRecord {
        let v = Value {
            value: ais.log_z,
            std_err: Some(ais.std_err),
            n: ais.chains,
            seconds: ais.seconds,
        };
        self.record(Metric::LogPartition, "ais", ais.settings(), v)
    }

    /// An MMD² between model samples and data.
    pub fn mmd(&self, r: &MmdResult, seconds: f64) -> ResultRecord {
        let v = Value {
            value: r.mmd2,
            std_err: Some(r.std_err),
            n: r.n_x.min(r.n_y),
            seconds,
        };
        self.record(Metric::Mmd2, "mmd2-unbiased", r.settings(), v)
    }

    /// A Fréchet distance computed on the features of the network named `features` (e.g. a
    /// checkpoint path and layer): distances on different features are never compared.
    pub fn frechet(&self, r: &FrechetResult, features: &str, seconds: f64) -> ResultRecord {
        let settings =
            serde_json::json!({ "features": features, "dim": r.dim, "n_x": r.n_x, "n_y": r.n_y });
        let v = Value {
            value: r.value,
            std_err: None,
            n: r.n_x.min(r.n_y),
            seconds,
        };
        self.record(Metric::FrechetDistance, "frechet", settings, v)
    }

    /// Any other metric without a standard error (precision, recall, label statistics,
    /// nearest-neighbour distances), with its settings. Sample-quality settings name the
    /// feature network under `features`, so records on different features are refused by
    /// [`compare`].
    pub fn value(
        &self,
        metric: Metric,
        method: &str,
        settings: serde_json::Value,
        value: f64,
        n: i64,
        seconds: f64,
    ) -> ResultRecord {
        let v = Value {
            value,
            std_err: None,
            n,
            seconds,
        };
        self.record(metric, method, settings, v)
    }
}

/// The numeric part of a record.
struct Value {
    value: f64,
    std_err: Option<f64>,
    n: i64,
    seconds: f64,
}

/// Runs `f` and returns its value with the seconds it took.
pub fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed().as_secs_f64()))
}

/// A stable hash of a run config: FNV-1a (64 bits) of its resolved TOML, as 16 hex digits.
/// Equal configs give equal hashes on every platform and build.
pub fn config_hash(cfg: &RunConfig) -> String {
    fnv1a64_hex(cfg.to_toml().as_bytes())
}

fn fnv1a64_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Why two records are not comparable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mismatch {
    /// Different binarization schemes: different data, hence different tasks.
    Binarization(Binarization, Binarization),
    /// Different metrics or likelihood kinds (e.g. exact vs lower bound).
    Metric(Metric, Metric),
    /// Different datasets.
    Dataset(String, String),
    /// Different splits.
    Split(String, String),
    /// Feature-based metrics (Fréchet distance, precision, recall, label statistics) on
    /// different feature networks.
    Features(String, String),
    /// Trained with different numbers of observed labels (`[data] labelled`).
    Labelled(Option<i64>, Option<i64>),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Binarization(a, b) => write!(
                f,
                "binarization {a} vs {b}: differently binarized data is a different distribution, \
                 likelihoods on it are not comparable (Deep Learning 20.14)"
            ),
            Mismatch::Metric(a, b) => write!(
                f,
                "metric {a} vs {b}: an exact value, a bound, a stochastic estimate and a Parzen \
                 estimate measure different things (Deep Learning 20.14)"
            ),
            Mismatch::Dataset(a, b) => write!(f, "dataset {a} vs {b}"),
            Mismatch::Split(a, b) => write!(f, "split {a} vs {b}"),
            Mismatch::Features(a, b) => write!(
                f,
                "feature-based metrics on different features ({a} vs {b}) are on different scales"
            ),
            Mismatch::Labelled(a, b) => {
                let say = |n: &Option<i64>| match n {
                    Some(n) => format!("{n} training labels"),
                    None => "every training label".to_string(),
                };
                write!(f, "trained with {} vs {}", say(a), say(b))
            }
        }
    }
}

/// The refusal of [`compare`]: every reason, and how to override it.
#[derive(Clone, Debug, PartialEq)]
pub struct Incomparable {
    /// The reasons.
    pub mismatches: Vec<Mismatch>,
}

impl fmt::Display for Incomparable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "results are not comparable: ")?;
        for (i, m) in self.mismatches.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{m}")?;
        }
        write!(
            f,
            ". Compare them anyway only with force (`--force`), and say so where they are shown"
        )
    }
}

impl std::error::Error for Incomparable {}

/// Which of two compared records is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The first is better by more than two standard errors of the difference (or at all,
    /// when neither has a standard error).
    First,
    /// The second is better, likewise.
    Second,
    /// Within two standard errors of each other.
    Indistinguishable,
    /// The metric is not a quality measure (log Z): no verdict.
    NotApplicable,
}

/// The outcome of [`compare`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// The metric (the first record's, when forced across metrics).
    pub metric: Metric,
    /// first.value − second.value.
    pub difference: f64,
    /// √(se₁² + se₂²) when both records have one.
    pub std_err: Option<f64>,
    /// Which is better.
    pub verdict: Verdict,
    /// Objections that `force` overrode (empty for a clean comparison).
    pub overridden: Vec<Mismatch>,
}

/// The reasons why `a` and `b` may not be compared (empty when they may).
pub fn mismatches(a: &ResultRecord, b: &ResultRecord) -> Vec<Mismatch> {
    let mut out = Vec::new();
    if a.binarization != b.binarization {
        out.push(Mismatch::Binarization(a.binarization, b.binarization));
    }
    if a.metric != b.metric {
        out.push(Mismatch::Metric(a.metric, b.metric));
    }
    if a.dataset != b.dataset {
        out.push(Mismatch::Dataset(a.dataset.clone(), b.dataset.clone()));
    }
    if a.split != b.split {
        out.push(Mismatch::Split(a.split.clone(), b.split.clone()));
    }
    if a.labelled != b.labelled {
        out.push(Mismatch::Labelled(a.labelled, b.labelled));
    }
    if a.metric.uses_features() && a.metric == b.metric {
        let feat = |r: &ResultRecord| {
            r.settings
                .get("features")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        let (fa, fb) = (feat(a), feat(b));
        if fa != fb || fa == "unknown" {
            out.push(Mismatch::Features(fa, fb));
        }
    }
    out
}

/// Compares `a` with `b`, refusing (with every reason) when they are not comparable unless
/// `force` is set; a forced comparison lists what it overrode.
pub fn compare(
    a: &ResultRecord,
    b: &ResultRecord,
    force: bool,
) -> Result<Comparison, Incomparable> {
    let mismatches = mismatches(a, b);
    if !mismatches.is_empty() && !force {
        return Err(Incomparable { mismatches });
    }
    let difference = a.value - b.value;
    let std_err = match (a.std_err, b.std_err) {
        (Some(x), Some(y)) => Some((x * x + y * y).sqrt()),
        _ => None,
    };
    let verdict = match a.metric.higher_is_better() {
        None => Verdict::NotApplicable,
        Some(higher) => {
            let margin = 2.0 * std_err.unwrap_or(0.0);
            let better = if higher { difference } else { -difference };
            if better > margin {
                Verdict::First
            } else if -better > margin {
                Verdict::Second
            } else {
                Verdict::Indistinguishable
            }
        }
    };
    Ok(Comparison {
        metric: a.metric,
        difference,
        std_err,
        verdict,
        overridden: mismatches,
    })
}

/// Writes records as a pretty JSON array (atomically: a temporary file, then a rename).
pub fn save(path: &Path, records: &[ResultRecord]) -> Result<()> {
    let text =
        serde_json::to_string_pretty(records).map_err(|e| Error::format(path, e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads records written by [`save`].
pub fn load(path: &Path) -> Result<Vec<ResultRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::format(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(model: &str) -> RecordContext {
        RecordContext {
            model: model.into(),
            config_hash: "h".into(),
            dataset: "binarized-mnist".into(),
            split: "test".into(),
            binarization: Binarization::StaticFile,
            labelled: None,
            device: "cpu".into(),
            checkpoint: None,
        }
    }

    fn ll(kind: LikelihoodKind, mean: f64, se: f64) -> LogLikelihood {
        LogLikelihood {
            kind,
            method: "m".into(),
            settings: serde_json::json!({"k": 1}),
            mean,
            std_err: se,
            n: 100,
        }
    }

    #[test]
    fn comparable_records_give_difference_and_verdict() {
        let a = ctx("a").log_likelihood(&ll(LikelihoodKind::Exact, -86.0, 0.3), 1.0);
        let b = ctx("b").log_likelihood(&ll(LikelihoodKind::Exact, -88.0, 0.4), 1.0);
        let c = compare(&a, &b, false).unwrap();
        approx::assert_abs_diff_eq!(c.difference, 2.0, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(c.std_err.unwrap(), 0.5, epsilon = 1e-12);
        assert_eq!(c.verdict, Verdict::First);
        assert!(c.overridden.is_empty());
        assert_eq!(compare(&b, &a, false).unwrap().verdict, Verdict::Second);
        // Within two standard errors.
        let close = ctx("c").log_likelihood(&ll(LikelihoodKind::Exact, -86.5, 0.3), 1.0);
        assert_eq!(
            compare(&a, &close, false).unwrap().verdict,
            Verdict::Indistinguishable
        );
        // Lower is better for distances.
        let f = |v| {
            ctx("g").frechet(
                &FrechetResult {
                    value: v,
                    dim: 8,
                    n_x: 10,
                    n_y: 10,
                },
                "lenet@v1",
                0.5,
            )
        };
        assert_eq!(
            compare(&f(1.0), &f(3.0), false).unwrap().verdict,
            Verdict::First
        );
    }

    #[test]
    fn different_binarizations_are_refused_unless_forced() {
        let a = ctx("a").log_likelihood(&ll(LikelihoodKind::Exact, -86.0, 0.3), 1.0);
        let mut bctx = ctx("b");
        bctx.binarization = Binarization::Dynamic { seed: 1 };
        let b = bctx.log_likelihood(&ll(LikelihoodKind::Exact, -84.0, 0.3), 1.0);
        let err = compare(&a, &b, false).unwrap_err();
        assert_eq!(
            err.mismatches,
            vec![Mismatch::Binarization(
                Binarization::StaticFile,
                Binarization::Dynamic { seed: 1 }
            )]
        );
        let msg = err.to_string();
        assert!(
            msg.contains("binarization static-file vs dynamic(seed=1)"),
            "{msg}"
        );
        assert!(msg.contains("force"), "{msg}");
        let forced = compare(&a, &b, true).unwrap();
        assert_eq!(forced.overridden, err.mismatches);
        approx::assert_abs_diff_eq!(forced.difference, -2.0, epsilon = 1e-12);
    }

    #[test]
    fn different_metric_kinds_are_refused_unless_forced() {
        let exact = ctx("a").log_likelihood(&ll(LikelihoodKind::Exact, -86.0, 0.3), 1.0);
        let bound = ctx("b").log_likelihood(&ll(LikelihoodKind::LowerBound, -87.0, 0.3), 1.0);
        let parzen = ctx("c").log_likelihood(&ll(LikelihoodKind::Parzen, 200.0, 2.0), 1.0);
        for other in [&bound, &parzen] {
            let err = compare(&exact, other, false).unwrap_err();
            assert!(
                matches!(err.mismatches.as_slice(), [Mismatch::Metric(..)]),
                "{err}"
            );
            assert!(
                err.to_string()
                    .contains("log-likelihood (exact) vs log-likelihood"),
                "{err}"
            );
            assert_eq!(compare(&exact, other, true).unwrap().overridden.len(), 1);
        }
        let mmd = ctx("d").mmd(
            &MmdResult {
                mmd2: 0.01,
                std_err: 0.001,
                bandwidths: vec![1.0],
                n_x: 10,
                n_y: 10,
            },
            1.0,
        );
        let err = compare(&exact, &mmd, false).unwrap_err().to_string();
        assert!(err.contains("vs MMD²"), "{err}");
    }

    #[test]
    fn other_mismatches_are_refused_and_all_reasons_listed() {
        let a = ctx("a").log_likelihood(&ll(LikelihoodKind::Exact, -86.0, 0.3), 1.0);
        let mut other = ctx("b");
        other.dataset = "mnist".into();
        other.split = "valid".into();
        other.binarization = Binarization::Threshold(0.5);
        let b = other.log_likelihood(&ll(LikelihoodKind::LowerBound, -90.0, 0.3), 1.0);
        let err = compare(&a, &b, false).unwrap_err();
        assert_eq!(err.mismatches.len(), 4, "{err}");
        // Fréchet distances on different (or unnamed) features.
        let r = FrechetResult {
            value: 1.0,
            dim: 8,
            n_x: 10,
            n_y: 10,
        };
        let f1 = ctx("g").frechet(&r, "lenet@v1", 0.5);
        let f2 = ctx("h").frechet(&r, "lenet@v2", 0.5);
        let err = compare(&f1, &f2, false).unwrap_err();
        assert!(
            matches!(err.mismatches.as_slice(), [Mismatch::Features(..)]),
            "{err}"
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let dir = std::env::temp_dir().join(format!("gm-eval-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        let mut c = ctx("a");
        c.binarization = Binarization::Stochastic { seed: 3 };
        let recs = vec![
            c.log_likelihood(&ll(LikelihoodKind::StochasticEstimate, -86.0, 0.3), 1.5),
            ctx("b").mmd(
                &MmdResult {
                    mmd2: 0.01,
                    std_err: 0.001,
                    bandwidths: vec![1.0],
                    n_x: 10,
                    n_y: 12,
                },
                0.2,
            ),
        ];
        save(&path, &recs).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].binarization, Binarization::Stochastic { seed: 3 });
        assert_eq!(
            back[0].metric,
            Metric::LogLikelihood(LikelihoodKind::StochasticEstimate)
        );
        assert_eq!(back[1].metric, Metric::Mmd2);
        assert_eq!(back[1].n, 10);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"log_likelihood\": \"stochastic_estimate\""),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_hash_is_stable_and_sensitive() {
        // FNV-1a 64 reference values (from the algorithm's published test vectors).
        assert_eq!(fnv1a64_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv1a64_hex(b"a"), "af63dc4c8601ec8c");
        let a = RunConfig::from_toml_str("seed = 1\n[model]\nname = \"vae\"").unwrap();
        let b = RunConfig::from_toml_str("seed = 2\n[model]\nname = \"vae\"").unwrap();
        assert_eq!(config_hash(&a), config_hash(&a.clone()));
        assert_ne!(config_hash(&a), config_hash(&b));
    }
}
