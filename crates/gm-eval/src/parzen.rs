//! Parzen-window (Gaussian kernel density) log-likelihood of test points under a model's
//! samples — a *weak* estimate, labelled [`LikelihoodKind::Parzen`].
//!
//! Given S samples s₁…s_S of the model, the density at x is estimated by
//! p̂_σ(x) = (1/S) Σᵢ N(x; sᵢ, σ²I), i.e.
//!
//! log p̂_σ(x) = logsumexp_i(−‖x − sᵢ‖² / 2σ²) − log S − (D/2) log(2πσ²),
//!
//! with σ chosen on a validation set from a grid (the σ with the highest mean validation
//! log-density), then evaluated on the test set (Breuleux et al. 2011; Goodfellow et al.
//! 2014). In more than a few dimensions the estimate is badly biased and needs enormous S;
//! it can rank models in the wrong order (Theis, van den Oord & Bethge 2015; *Deep
//! Learning* §20.14). Report it only beside that warning, never in the same column as an
//! exact value, a bound or an AIS estimate.
//!
//! The computation streams over blocks of test points × samples (distances by one matrix
//! product per block, in the inputs' kind; kernel sums in `f64` with a running logsumexp),
//! and evaluates every σ of the grid from the same distance block.
//!
//! ```
//! use gm_eval::parzen::{parzen_log_likelihood, log_grid, ParzenOptions};
//! use tch::{Device, Kind, Tensor};
//! tch::manual_seed(0);
//! let opts = (Kind::Double, Device::Cpu);
//! let samples = Tensor::randn([2000, 2], opts);
//! let (valid, test) = (Tensor::randn([500, 2], opts), Tensor::randn([500, 2], opts));
//! let ll = parzen_log_likelihood(&samples, &valid, &test, &log_grid(0.05, 2.0, 15)?, &ParzenOptions::default())?;
//! // The true mean log-density of N(0, I₂) is −log(2π) − 1 ≈ −2.84.
//! assert!((ll.mean + 2.84).abs() < 0.15, "{}", ll.mean);
//! assert_eq!(ll.kind, gm_core::model::LikelihoodKind::Parzen);
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::model::{LikelihoodKind, LogLikelihood};
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Block sizes of the streamed computation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ParzenOptions {
    /// Test (or validation) points per block.
    pub chunk_points: i64,
    /// Samples per block.
    pub chunk_samples: i64,
}

impl Default for ParzenOptions {
    fn default() -> Self {
        ParzenOptions {
            chunk_points: 500,
            chunk_samples: 10_000,
        }
    }
}

/// `n` bandwidths spaced geometrically from `lo` to `hi` (both included).
pub fn log_grid(lo: f64, hi: f64, n: usize) -> Result<Vec<f64>> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) || n < 2 {
        return Err(Error::config(
            "parzen.grid",
            format!("({lo}, {hi}, {n})"),
            "0 < lo < hi and at least 2 points",
        ));
    }
    let r = (hi / lo).ln() / (n - 1) as f64;
    let mut g: Vec<f64> = (0..n).map(|k| lo * (r * k as f64).exp()).collect();
    g[n - 1] = hi;
    Ok(g)
}

fn flat(x: &Tensor, what: &str) -> Result<Tensor> {
    if x.dim() < 2 || x.size()[0] == 0 {
        return Err(Error::Msg(format!(
            "Parzen: {what} must be a non-empty [N, ...] tensor, got shape {:?}",
            x.size()
        )));
    }
    Ok(x.f_reshape([x.size()[0], -1])?)
}

/// log p̂_σ(x) for every σ in `sigmas` and every row of `x`: a `[G, N]` `f64` tensor
/// (rows of `x` and `samples` are flattened to vectors).
pub fn log_densities(
    x: &Tensor,
    samples: &Tensor,
    sigmas: &[f64],
    opts: &ParzenOptions,
) -> Result<Tensor> {
    let x = flat(x, "the points")?;
    let s = flat(samples, "the samples")?;
    let d = x.size()[1];
    if s.size()[1] != d {
        return Err(Error::Msg(format!(
            "Parzen: points have {d} dimensions, samples {}",
            s.size()[1]
        )));
    }
    if sigmas.is_empty() || sigmas.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
        return Err(Error::config(
            "parzen.bandwidth",
            format!("{sigmas:?}"),
            "positive, finite bandwidths",
        ));
    }
    let s = s.to_kind(x.kind());
    let (n, n_s) = (x.size()[0], s.size()[0]);
    let _guard = tch::no_grad_guard();
    let s_sq = s.square().sum_dim_intlist(1, false, x.kind());
    let scales: Vec<f64> = sigmas.iter().map(|s| -0.5 / (s * s)).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let b = opts.chunk_points.max(1).min(n - i);
        let xb = x.narrow(0, i, b);
        let xb_sq = xb.square().sum_dim_intlist(1, false, x.kind());
        let mut acc = Tensor::full(
            [sigmas.len() as i64, b],
            f64::NEG_INFINITY,
            (Kind::Double, x.device()),
        );
        let mut j = 0;
        while j < n_s {
            let c = opts.chunk_samples.max(1).min(n_s - j);
            let sb = s.narrow(0, j, c);
            // ‖x − s‖² = ‖x‖² + ‖s‖² − 2 x·s, clamped at 0 against rounding.
            let d2 = (xb.matmul(&sb.tr()) * -2.0
                + xb_sq.unsqueeze(1)
                + s_sq.narrow(0, j, c).unsqueeze(0))
            .clamp_min(0.0)
            .to_kind(Kind::Double);
            let lse: Vec<Tensor> = scales
                .iter()
                .map(|a| (&d2 * *a).logsumexp([1], false))
                .collect();
            acc = acc.logaddexp(&Tensor::stack(&lse, 0));
            j += c;
        }
        out.push(acc);
        i += b;
    }
    let norm: Vec<f64> = sigmas
        .iter()
        .map(|s| -(n_s as f64).ln() - 0.5 * d as f64 * (2.0 * std::f64::consts::PI * s * s).ln())
        .collect();
    let norm = Tensor::from_slice(&norm).to_device(x.device()).unsqueeze(1);
    Ok(Tensor::cat(&out, 1) + norm)
}

/// The bandwidth chosen on validation data, with the mean validation log-density of every
/// σ in the grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BandwidthChoice {
    /// The chosen σ.
    pub bandwidth: f64,
    /// (σ, mean validation log p̂_σ) for every σ of the grid.
    pub validation: Vec<(f64, f64)>,
    /// Whether the chosen σ is the smallest or largest of the grid (widen the grid).
    pub at_grid_edge: bool,
}

/// Chooses σ from `grid` by the mean log-density of `valid` under `samples`.
pub fn select_bandwidth(
    samples: &Tensor,
    valid: &Tensor,
    grid: &[f64],
    opts: &ParzenOptions,
) -> Result<BandwidthChoice> {
    let ld = log_densities(valid, samples, grid, opts)?;
    let means = Vec::<f64>::try_from(&ld.mean_dim(1, false, Kind::Double))?;
    let (best, _) = means
        .iter()
        .enumerate()
        .filter(|(_, m)| m.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .ok_or_else(|| {
            Error::Msg(
                "Parzen: no bandwidth of the grid gives a finite validation log-density".into(),
            )
        })?;
    Ok(BandwidthChoice {
        bandwidth: grid[best],
        validation: grid.iter().cloned().zip(means).collect(),
        at_grid_edge: grid.len() > 1 && (best == 0 || best == grid.len() - 1),
    })
}

/// Parzen-window mean log-likelihood of `test` under `samples`, with σ chosen on `valid`
/// from `grid`; labelled [`LikelihoodKind::Parzen`] with the bandwidth, sample count and
/// grid in its settings. The standard error is over test points only (the estimate's bias,
/// usually much larger, is not in it).
pub fn parzen_log_likelihood(
    samples: &Tensor,
    valid: &Tensor,
    test: &Tensor,
    grid: &[f64],
    opts: &ParzenOptions,
) -> Result<LogLikelihood> {
    let choice = select_bandwidth(samples, valid, grid, opts)?;
    let ld = log_densities(test, samples, &[choice.bandwidth], opts)?.get(0);
    let (mean, std_err) = crate::importance::mean_and_std_err(&ld)?;
    Ok(LogLikelihood {
        kind: LikelihoodKind::Parzen,
        method: "parzen-gaussian".into(),
        settings: serde_json::json!({
            "bandwidth": choice.bandwidth,
            "n_samples": samples.size()[0],
            "grid": grid,
            "validation_mean_log_density": choice.validation,
            "n_validation": valid.size()[0],
            "at_grid_edge": choice.at_grid_edge,
            "note": "Parzen-window estimate: weak, biased and high-variance in high dimensions; \
                     not comparable with exact values, bounds or AIS estimates (Theis et al. 2015; \
                     Deep Learning 20.14)",
        }),
        mean,
        std_err,
        n: ld.size()[0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

    #[test]
    fn log_density_matches_direct_sum() {
        let _rng = gm_core::rng_guard::lock();
        let samples: [[f64; 2]; 3] = [[0.0, 0.0], [1.0, 2.0], [-1.0, 0.5]];
        let points: [[f64; 2]; 2] = [[0.5, 0.5], [3.0, -1.0]];
        let sigma = 0.7f64;
        let s = Tensor::from_slice(&samples.concat()).view([3, 2]);
        let x = Tensor::from_slice(&points.concat()).view([2, 2]);
        // Chunks of 1 exercise the streaming logsumexp.
        let opts = ParzenOptions {
            chunk_points: 1,
            chunk_samples: 2,
        };
        let got =
            Vec::<f64>::try_from(&log_densities(&x, &s, &[sigma], &opts).unwrap().get(0)).unwrap();
        for (p, g) in points.iter().zip(got) {
            let dens: f64 = samples
                .iter()
                .map(|q| {
                    let d2 = (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2);
                    (-d2 / (2.0 * sigma * sigma)).exp()
                        / (2.0 * std::f64::consts::PI * sigma * sigma)
                })
                .sum::<f64>()
                / 3.0;
            approx::assert_abs_diff_eq!(g, dens.ln(), epsilon = 1e-12);
        }
    }

    /// Samples of N(μ, Σ) in 2-D: the Parzen estimate approaches the true mean log-density
    /// of test points as the number of samples grows, and the chosen bandwidth shrinks.
    #[test]
    fn approaches_true_gaussian_log_density() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(11);
        let mu = [1.0, -2.0];
        let (s11, s12, s22) = (1.0f64, 0.6, 2.0);
        let l = Tensor::from_slice(&[
            s11.sqrt(),
            0.0,
            s12 / s11.sqrt(),
            (s22 - s12 * s12 / s11).sqrt(),
        ])
        .view([2, 2]);
        let draw = |n: i64| Tensor::randn([n, 2], F64).matmul(&l.tr()) + Tensor::from_slice(&mu);
        let test = draw(1000);
        let valid = draw(500);
        let det = s11 * s22 - s12 * s12;
        let truth = {
            let t = Vec::<f64>::try_from(&test.reshape([-1])).unwrap();
            t.chunks(2)
                .map(|p| {
                    let (a, b) = (p[0] - mu[0], p[1] - mu[1]);
                    let q = (s22 * a * a - 2.0 * s12 * a * b + s11 * b * b) / det;
                    -(2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln() - 0.5 * q
                })
                .sum::<f64>()
                / 1000.0
        };
        let grid = log_grid(0.05, 2.0, 12).unwrap();
        let mut errors = Vec::new();
        let mut bandwidths = Vec::new();
        for n in [100, 1000, 10_000] {
            let ll =
                parzen_log_likelihood(&draw(n), &valid, &test, &grid, &ParzenOptions::default())
                    .unwrap();
            assert_eq!(ll.kind, LikelihoodKind::Parzen);
            assert_eq!(ll.settings["n_samples"], n);
            assert_eq!(ll.settings["at_grid_edge"], false);
            errors.push((ll.mean - truth).abs());
            bandwidths.push(ll.settings["bandwidth"].as_f64().unwrap());
        }
        assert!(
            errors[2] < 0.03,
            "error with 10k samples {} (all: {errors:?})",
            errors[2]
        );
        assert!(
            errors[2] < errors[0],
            "error does not shrink with n: {errors:?}"
        );
        assert!(
            bandwidths[2] < bandwidths[0],
            "bandwidth does not shrink with n: {bandwidths:?}"
        );
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let _rng = gm_core::rng_guard::lock();
        let a = Tensor::zeros([4, 3], F64);
        let b = Tensor::zeros([4, 2], F64);
        let o = ParzenOptions::default();
        assert!(log_densities(&a, &b, &[1.0], &o)
            .unwrap_err()
            .to_string()
            .contains("3 dimensions"));
        assert!(log_densities(&a, &a, &[], &o).is_err());
        assert!(log_densities(&a, &a, &[0.0], &o).is_err());
        assert!(log_densities(&Tensor::zeros([0, 3], F64), &a, &[1.0], &o).is_err());
        assert!(log_grid(1.0, 0.5, 4).is_err());
        assert!(log_grid(0.1, 1.0, 1).is_err());
        let g = log_grid(0.1, 10.0, 3).unwrap();
        approx::assert_relative_eq!(g[1], 1.0, max_relative = 1e-12);
    }
}
