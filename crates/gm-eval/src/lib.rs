//! gm-eval: model-agnostic measurement of generative models (*Deep Learning* §20.14).
//!
//! Every number it produces says what it is — exact, a bound, a stochastic estimate with
//! its standard error, or a Parzen estimate — through
//! [`gm_core::model::LikelihoodKind`], and is recorded with the data it was measured on
//! (dataset, split, binarization scheme) in a [`results::ResultRecord`], so that
//! incomparable numbers are never put side by side by accident.
//!
//! - [`importance`]: importance-sampling log-likelihood with a proposal (the VAE's encoder);
//! - [`ais`]: annealed importance sampling for log Z of energy-based models, generic over
//!   the target, with the RBM target in [`ais::rbm`];
//! - [`parzen`]: Parzen-window log-likelihood from samples (a weak estimate, labelled so);
//! - [`probe`]: a linear probe (softmax regression) on a model's features, its test error;
//! - [`mmd`]: unbiased MMD² between sample sets;
//! - [`modes`]: mode coverage and high-quality samples on a known mixture (VEEGAN protocol);
//! - [`frechet`]: Fréchet distance between feature sets (FID-style);
//! - [`features`]: the feature network gm trains itself (MNIST, Fashion-MNIST), cached;
//! - [`quality`]: precision / recall, label entropy and class coverage, the
//!   nearest-neighbour copy check;
//! - [`assess`]: all of them for one sample set, with the test split's floors;
//! - [`published`]: published numbers to hold results against;
//! - [`report`]: the HTML report of run directories;
//! - [`results`]: result records, their JSON files, and comparisons that refuse to compare
//!   different binarizations or metric kinds.
//!
//! ```
//! use gm_eval::importance::log_mean_exp;
//! let log_w = tch::Tensor::from_slice(&[0.0f64, 0.0, 0.0]).view([3, 1]);
//! let est = log_mean_exp(&log_w, 0);
//! assert!(est.double_value(&[0]).abs() < 1e-12);
//! ```

pub mod ais;
pub mod assess;
pub mod features;
pub mod frechet;
pub mod importance;
pub mod mmd;
pub mod modes;
pub mod parzen;
pub mod probe;
pub mod published;
pub mod quality;
pub mod report;
pub mod results;
