//! What the autoregressive models of this crate share: variable orderings, the check that
//! data are binary, the [`Autoregressive`] trait (exact log-probabilities and ancestral
//! sampling of flattened vectors), the enumeration kit of [`gm_core::kit`] re-exported,
//! empirical distributions and total variation, and the exact log-likelihood report.
//!
//! ```
//! use gm_autoregressive::common::{all_binary_vectors, ordering, OrderingKind};
//! let x = all_binary_vectors(3, tch::Device::Cpu);
//! assert_eq!(x.size(), vec![8, 3]);
//! let o = ordering(OrderingKind::Random, 7, 5);
//! let mut sorted = o.clone();
//! sorted.sort();
//! assert_eq!(sorted, vec![0, 1, 2, 3, 4]);
//! ```

use gm_core::data::Dataset;
use gm_core::model::{LikelihoodKind, LogLikelihood, Metrics};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The order in which a model generates the variables.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrderingKind {
    /// Variable 0 first, then 1, … (raster order for images).
    #[default]
    Identity,
    /// A random permutation drawn once from `ordering_seed`.
    Random,
}

/// The ordering as a permutation: `o[i]` is the variable generated at step `i`.
pub fn ordering(kind: OrderingKind, seed: u64, d: i64) -> Vec<i64> {
    let mut o: Vec<i64> = (0..d).collect();
    if kind == OrderingKind::Random {
        o.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    o
}

/// An error unless the dataset is binary (for the Bernoulli models); `field` is the config
/// field to blame, e.g. `model.likelihood` or `data.binarize`.
pub fn require_binary(model: &str, field: &str, value: &str, data: &Dataset) -> Result<()> {
    if data.binary {
        return Ok(());
    }
    Err(Error::config(
        field,
        value,
        format!(
            "binary data for {model} (Bernoulli conditionals), but dataset {} is real-valued here: set \
             data.binarize to \"dynamic\", \"stochastic\" or \"threshold\"",
            data.name
        ),
    ))
}

/// An error unless the examples have at least `min` values.
pub(crate) fn require_dim(model: &str, dim: i64, min: i64, shape: &[i64]) -> Result<()> {
    if dim >= min {
        Ok(())
    } else {
        Err(Error::config(
            "data",
            format!("shape {shape:?}"),
            format!("examples of at least {min} values for {model}"),
        ))
    }
}

/// Logits of the per-variable means of the training data, clamped away from 0 and 1: the
/// initial output biases, so that an untrained model starts as the best factorial one.
pub(crate) fn logit_marginals(data: &Dataset, dim: i64) -> Tensor {
    let p = data
        .train
        .x
        .reshape([-1, dim])
        .to_kind(Kind::Double)
        .mean_dim(0, false, Kind::Double)
        .clamp(1e-3, 1.0 - 1e-3);
    (p.log() - (-&p).log1p()).to_kind(Kind::Float)
}

/// A model whose log-probability is exact and which samples ancestrally, on flattened
/// vectors `[B, D]`.
pub trait Autoregressive {
    /// Number of variables D.
    fn dim(&self) -> i64;
    /// log p(x) per row of `x` `[B, D]` (or `[B, …]` with D values per example), `[B]`.
    fn log_prob(&self, x: &Tensor) -> Tensor;
    /// `n` samples `[n, D]`, drawn variable by variable, batched over samples.
    fn sample_flat(&self, n: i64) -> Tensor;
}

pub use gm_core::kit::{all_binary_vectors, empirical_distribution, state_index, total_variation};

/// `f(chunk)` (log-probabilities `[b]`) over `x` `[N, …]` in chunks of `chunk` rows, without
/// gradients, concatenated as `f64 [N]`.
pub fn chunked(x: &Tensor, chunk: i64, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let n = x.size()[0];
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.max(1).min(n - start);
        out.push(tch::no_grad(|| f(&x.narrow(0, start, len))).to_kind(Kind::Double));
        start += len;
    }
    if out.is_empty() {
        return Tensor::zeros([0], (Kind::Double, x.device()));
    }
    Tensor::cat(&out, 0)
}

/// An exact log-likelihood report from per-example log-probabilities `[N]`.
pub fn exact_report(
    method: &str,
    settings: serde_json::Value,
    log_p: &Tensor,
) -> Result<LogLikelihood> {
    let v = log_p.to_kind(Kind::Double);
    let n = v.size()[0];
    if n == 0 {
        return Err(Error::Msg(format!("{method}: no example to evaluate")));
    }
    let mean = v.f_mean(Kind::Double)?.f_double_value(&[])?;
    let std_err = if n > 1 {
        v.f_std(true)?.f_double_value(&[])? / (n as f64).sqrt()
    } else {
        0.0
    };
    if !mean.is_finite() {
        return Err(Error::Msg(format!(
            "{method}: mean log-likelihood is {mean}"
        )));
    }
    Ok(LogLikelihood {
        kind: LikelihoodKind::Exact,
        method: method.into(),
        settings,
        mean,
        std_err,
        n,
    })
}

/// Per-example metrics of log-probabilities `[B]`: the NLL (`loss`, nats per example) and
/// the same in bits per dimension.
pub(crate) fn nll_metrics(log_p: &Tensor, dim: i64) -> Metrics {
    let nll = -log_p.mean(Kind::Float);
    let bpd = &nll / (dim as f64 * std::f64::consts::LN_2);
    vec![("loss", nll), ("bits_per_dim", bpd)]
}

/// One optimizer step on the mean negative log-likelihood of `log_p` (autograd), returning
/// [`nll_metrics`] detached.
pub(crate) fn nll_step(opt: &mut Optimizer, log_p: &Tensor, dim: i64) -> Result<Metrics> {
    let m = nll_metrics(log_p, dim);
    opt.backward_step(&m[0].1)?;
    Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
}

/// `[n, D]` → `[n, shape…]`.
pub(crate) fn unflatten(x: Tensor, shape: &[i64]) -> Tensor {
    let mut s = vec![x.size()[0]];
    s.extend_from_slice(shape);
    x.reshape(s.as_slice())
}

/// Samples built position by position, `x_o` `[D, n]` in ordering order, back to `[n, D]` in
/// data order (`order`: the ordering as a tensor, `None` for the identity).
pub(crate) fn from_ordering(x_o: &Tensor, order: Option<&Tensor>) -> Tensor {
    let x_o = x_o.tr();
    match order {
        None => x_o.contiguous(),
        Some(o) => x_o.zeros_like().index_copy(1, o, &x_o),
    }
}

/// Logistic noise `log u − log(1 − u)`, `u ~ U(0, 1)`: `x = 1[logit > noise]` is a
/// Bernoulli(σ(logit)) draw, one comparison per variable in the sampling loops.
pub(crate) fn logistic_noise(shape: &[i64], device: Device) -> Tensor {
    let u = Tensor::rand(shape, (Kind::Float, device)).clamp(1e-12, 1.0 - 1e-7);
    u.log() - (-&u).log1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderings_are_permutations_and_depend_on_the_seed() {
        let _rng = crate::test_rng_lock();
        assert_eq!(ordering(OrderingKind::Identity, 3, 4), vec![0, 1, 2, 3]);
        let a = ordering(OrderingKind::Random, 1, 50);
        let b = ordering(OrderingKind::Random, 2, 50);
        assert_ne!(a, b);
        assert_eq!(a, ordering(OrderingKind::Random, 1, 50));
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn logistic_noise_thresholds_are_bernoulli_draws() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let z = logistic_noise(&[200_000], Device::Cpu);
        let frac = z
            .lt(0.8472978603872037)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]); // σ(0.847) = 0.7
        assert!((frac - 0.7).abs() < 0.005, "{frac}");
    }
}
