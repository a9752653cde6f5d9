//! The mode-collapse watch: at the end of every training epoch a GAN classifies a batch of
//! fresh samples with gm-eval's feature network ([`gm_eval::features`]), records how many
//! classes they cover, and logs a warning when the coverage is low or falls.
//!
//! It runs when the run's dataset is 28×28 grey images (`mnist` or `fashion-mnist`, no
//! binarization) **and** the feature network of that dataset is already in the cache (it
//! is made by `gm eval` or [`FeatureNet::load_or_train`]; the watch never trains it). Then
//! the epoch's line of `metrics.jsonl` gets, under `checks`:
//!
//! - `classes_covered`: classes that get at least [`MIN_SHARE`] (1 %) of
//!   [`COVERAGE_SAMPLES`] (1,000) fresh samples, by the classifier's most probable label;
//! - `max_class_fraction`: the largest share of the samples any one class gets.
//!
//! The warning ([`collapse_warning`]) is logged when fewer than [`MIN_CLASSES`] (8 of 10)
//! classes are covered, when one class takes more than [`MAX_CLASS_FRACTION`] (50 %) of
//! the samples, or when coverage fell by [`DROP_CLASSES`] (2) or more since the previous
//! epoch of this session (the previous value is not kept across a resume). Without the
//! classifier, or on other data, nothing is computed or logged. Its cost is one pass of
//! 1,000 samples through G and the classifier per epoch.
//!
//! ```
//! use gm_gan::coverage::{collapse_warning, Coverage};
//! let one_digit = Coverage::of_histogram(&[0, 0, 0, 990, 0, 0, 10, 0, 0, 0]);
//! assert_eq!(one_digit.classes_covered, 2);
//! assert!(collapse_warning(&one_digit, None).is_some());
//! ```

use gm_core::data::{Binarization, Dataset};
use gm_core::Result;
use gm_eval::features::{feature_dataset, FeatureNet, FeatureOptions};
use gm_eval::quality::label_stats;
use tch::{Device, Tensor};

/// Fresh samples classified at each epoch's end.
pub const COVERAGE_SAMPLES: i64 = 1000;
/// Share of the samples a class needs to count as covered.
pub const MIN_SHARE: f64 = 0.01;
/// Fewer covered classes than this draws the warning.
pub const MIN_CLASSES: i64 = 8;
/// One class taking more than this share of the samples draws the warning.
pub const MAX_CLASS_FRACTION: f64 = 0.5;
/// A fall of this many covered classes since the previous epoch draws the warning.
pub const DROP_CLASSES: i64 = 2;

/// The class coverage of a batch of samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    /// Classes that get at least [`MIN_SHARE`] of the samples.
    pub classes_covered: i64,
    /// Number of classes of the classifier.
    pub classes: i64,
    /// The largest share of the samples one class gets.
    pub max_class_fraction: f64,
}

impl Coverage {
    /// The coverage of predicted-label counts `histogram` (one count per class).
    pub fn of_histogram(histogram: &[i64]) -> Coverage {
        let n: i64 = histogram.iter().sum();
        let n = n.max(1) as f64;
        let covered = histogram
            .iter()
            .filter(|&&h| h > 0 && h as f64 >= MIN_SHARE * n)
            .count() as i64;
        let max = histogram.iter().copied().max().unwrap_or(0) as f64 / n;
        Coverage {
            classes_covered: covered,
            classes: histogram.len() as i64,
            max_class_fraction: max,
        }
    }
}

/// The warning for `now` (given the previous epoch's coverage), or `None` when coverage is
/// healthy: fewer than [`MIN_CLASSES`] classes (or all of them when there are fewer), one
/// class over [`MAX_CLASS_FRACTION`], or a fall of at least [`DROP_CLASSES`].
pub fn collapse_warning(now: &Coverage, previous: Option<&Coverage>) -> Option<String> {
    let mut why = Vec::new();
    let min = MIN_CLASSES.min(now.classes);
    if now.classes_covered < min {
        why.push(format!(
            "{} of {} classes covered (fewer than {min})",
            now.classes_covered, now.classes
        ));
    }
    if now.max_class_fraction > MAX_CLASS_FRACTION {
        why.push(format!(
            "one class takes {:.0} % of the samples",
            100.0 * now.max_class_fraction
        ));
    }
    if let Some(p) = previous {
        if p.classes_covered - now.classes_covered >= DROP_CLASSES {
            why.push(format!(
                "coverage fell from {} to {} classes since the previous epoch",
                p.classes_covered, now.classes_covered
            ));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Classifies samples at each epoch's end and warns on mode collapse (see the module docs).
#[derive(Debug)]
pub struct CoverageWatch {
    model: &'static str,
    net: Option<FeatureNet>,
    previous: Option<Coverage>,
    warning: Option<String>,
}

impl CoverageWatch {
    /// A watch that does nothing.
    pub fn off(model: &'static str) -> Self {
        CoverageWatch {
            model,
            net: None,
            previous: None,
            warning: None,
        }
    }

    /// A watch with classifier `net` (28×28 images of its dataset).
    pub fn with_net(model: &'static str, net: FeatureNet) -> Self {
        CoverageWatch {
            net: Some(net),
            ..Self::off(model)
        }
    }

    /// The watch for a run on `data`: on with the cached grey feature network when `data`
    /// is 28×28 grey `mnist` or `fashion-mnist` and that network is cached, off otherwise
    /// (a damaged cache is logged as a warning and leaves it off).
    pub fn for_data(model: &'static str, data: &Dataset, device: Device) -> Self {
        let grey_28 = data.shape == [1, 28, 28] && data.binarization == Binarization::None;
        let Some(name) = feature_dataset(&data.name).filter(|_| grey_28) else {
            return Self::off(model);
        };
        match FeatureNet::cached(name, device, &FeatureOptions::default()) {
            Ok(Some(net)) => Self::with_net(model, net),
            Ok(None) => {
                tracing::debug!("{model}: no cached {name} feature network: no class coverage");
                Self::off(model)
            }
            Err(e) => {
                tracing::warn!("{model}: class coverage is off: {e}");
                Self::off(model)
            }
        }
    }

    /// Whether it classifies samples.
    pub fn is_on(&self) -> bool {
        self.net.is_some()
    }

    /// The coverage of `samples` `[N, 1, 28, 28]` as `classes_covered` and
    /// `max_class_fraction`, a warning logged when [`collapse_warning`] gives one; nothing
    /// when the watch is off.
    pub fn check(&mut self, samples: &Tensor) -> Result<Vec<(&'static str, f64)>> {
        let Some(net) = &self.net else {
            return Ok(Vec::new());
        };
        let stats = label_stats(&net.probs(samples)?, MIN_SHARE)?;
        let now = Coverage::of_histogram(&stats.histogram);
        self.warning = collapse_warning(&now, self.previous.as_ref());
        if let Some(why) = &self.warning {
            tracing::warn!(
                "{}: possible mode collapse: {why} (classifier {} on {} fresh samples)",
                self.model,
                net.id(),
                samples.size()[0]
            );
        }
        let out = vec![
            ("classes_covered", now.classes_covered as f64),
            ("max_class_fraction", now.max_class_fraction),
        ];
        self.previous = Some(now);
        Ok(out)
    }

    /// The coverage of the last check (`None` before the first).
    pub fn last(&self) -> Option<&Coverage> {
        self.previous.as_ref()
    }

    /// The warning of the last check, if it gave one.
    pub fn last_warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }
}

#[cfg(test)]
mod tests;
