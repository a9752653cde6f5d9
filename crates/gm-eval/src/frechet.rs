//! Fréchet distance between two sets of features (the FID of Heusel et al. 2017 when the
//! features come from an Inception network; here, from whatever feature network the project
//! trains itself — numbers are comparable only for the same features).
//!
//! Each set is summarised by a Gaussian with its mean μ and covariance Σ, and the squared
//! 2-Wasserstein (Fréchet) distance between the two Gaussians is
//!
//! d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½.
//!
//! The trace term is computed in `f64` from the eigenvalues of the *symmetric* matrix
//! Σ₁^½ Σ₂ Σ₁^½ (its square root's trace is the sum of their square roots), with tiny
//! negative eigenvalues from rounding clamped to zero, so rank-deficient covariances (fewer
//! samples than features) are handled without the complex square roots of `sqrtm(Σ₁Σ₂)`.
//! The estimate from finite samples is biased upwards (by about tr-terms / n): compare only
//! values computed with the same numbers of samples.
//!
//! ```
//! use gm_eval::frechet::frechet_distance;
//! use tch::{Device, Kind, Tensor};
//! tch::manual_seed(0);
//! let x = Tensor::randn([2000, 3], (Kind::Float, Device::Cpu));
//! let fd_same = frechet_distance(&x, &x)?;
//! assert!(fd_same.value.abs() < 1e-6);
//! let fd_shift = frechet_distance(&x, &(&x + 1.0))?;  // ‖μ₁ − μ₂‖² = 3, same covariance
//! assert!((fd_shift.value - 3.0).abs() < 1e-6);
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Mean and covariance of a feature set, in `f64`.
#[derive(Debug)]
pub struct GaussianStats {
    /// Mean, `[D]`.
    pub mean: Tensor,
    /// Covariance with the n − 1 denominator, `[D, D]`.
    pub cov: Tensor,
    /// Number of feature vectors.
    pub n: i64,
}

impl GaussianStats {
    /// The statistics of the rows of `x` `[N, ...]` (flattened), N ≥ 2.
    pub fn from_features(x: &Tensor) -> Result<Self> {
        if x.dim() < 2 || x.size()[0] < 2 {
            return Err(Error::Msg(format!(
                "Fréchet distance: features must be [N, D] with N ≥ 2, got shape {:?}",
                x.size()
            )));
        }
        let n = x.size()[0];
        let x = tch::no_grad(|| x.reshape([n, -1]).to_kind(Kind::Double));
        let bad = n - x
            .isfinite()
            .all_dim(1, false)
            .sum(Kind::Int64)
            .int64_value(&[]);
        if bad > 0 {
            return Err(Error::Msg(format!(
                "Fréchet distance: {bad} of {n} feature vectors are not finite (NaN or inf in the samples?)"
            )));
        }
        let mean = x.mean_dim(0, false, Kind::Double);
        let c = &x - mean.unsqueeze(0);
        let cov = c.tr().matmul(&c) / (n - 1) as f64;
        Ok(GaussianStats { mean, cov, n })
    }
}

/// A Fréchet distance with what it was computed from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FrechetResult {
    /// d², the squared Fréchet distance (what "FID" reports).
    pub value: f64,
    /// Feature dimension.
    pub dim: i64,
    /// Number of feature vectors of the first set.
    pub n_x: i64,
    /// Number of feature vectors of the second set.
    pub n_y: i64,
}

/// The symmetric square root of a symmetric positive semi-definite matrix, with negative
/// eigenvalues (rounding) clamped to zero.
fn sqrt_psd(a: &Tensor) -> Result<Tensor> {
    let sym = (a + a.tr()) * 0.5;
    let (vals, vecs) = sym.f_linalg_eigh("L").map_err(|e| {
        Error::Msg(format!(
            "Fréchet distance: no eigendecomposition of a covariance: {e}"
        ))
    })?;
    let root = vals.clamp_min(0.0).sqrt();
    Ok((&vecs * root.unsqueeze(0)).matmul(&vecs.tr()))
}

/// d² between two Gaussians given by their statistics.
pub fn frechet_distance_stats(a: &GaussianStats, b: &GaussianStats) -> Result<f64> {
    let d = a.mean.size()[0];
    if b.mean.size()[0] != d || a.cov.size() != [d, d] || b.cov.size() != [d, d] {
        return Err(Error::Msg(format!(
            "Fréchet distance: feature dimensions differ ({d} vs {}) or covariances are not square",
            b.mean.size()[0]
        )));
    }
    let _guard = tch::no_grad_guard();
    let (m1, m2) = (a.mean.to_kind(Kind::Double), b.mean.to_kind(Kind::Double));
    let (s1, s2) = (a.cov.to_kind(Kind::Double), b.cov.to_kind(Kind::Double));
    let s1h = sqrt_psd(&s1)?;
    let m = s1h.matmul(&s2).matmul(&s1h);
    let m = (&m + m.tr()) * 0.5;
    let eig = m.linalg_eigvalsh("L");
    let tr_sqrt = eig
        .clamp_min(0.0)
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[]);
    let mean_term = (&m1 - &m2).square().sum(Kind::Double).double_value(&[]);
    let tr1 = s1.trace().double_value(&[]);
    let tr2 = s2.trace().double_value(&[]);
    let value = mean_term + tr1 + tr2 - 2.0 * tr_sqrt;
    if !value.is_finite() {
        return Err(Error::Msg(format!(
            "Fréchet distance is not finite ({value}): NaN or inf in the features?"
        )));
    }
    // Rounding can leave −1e−12 for identical sets; the distance is non-negative.
    Ok(value.max(0.0))
}

/// d² between the feature sets `x` `[N, D]` and `y` `[M, D]`.
pub fn frechet_distance(x: &Tensor, y: &Tensor) -> Result<FrechetResult> {
    let a = GaussianStats::from_features(x)?;
    let b = GaussianStats::from_features(y)?;
    Ok(FrechetResult {
        value: frechet_distance_stats(&a, &b)?,
        dim: a.mean.size()[0],
        n_x: a.n,
        n_y: b.n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

    /// Non-finite feature vectors are an error that counts them, not a panic in the
    /// eigendecomposition.
    #[test]
    fn non_finite_features_are_a_counted_error() {
        let x = Tensor::from_slice(&[0.0, 1.0, f64::NAN, 2.0, 3.0, f64::INFINITY, 1.0, 1.0])
            .view([4, 2]);
        let y = Tensor::from_slice(&[0.0, 1.0, 2.0, 2.0, 3.0, 1.0]).view([3, 2]);
        let e = frechet_distance(&x, &y).expect_err("NaN and inf rows");
        assert!(
            e.to_string()
                .contains("2 of 4 feature vectors are not finite"),
            "{e}"
        );
        assert!(frechet_distance(&y, &y).is_ok());
    }

    fn stats(mean: &[f64], cov: &[f64]) -> GaussianStats {
        let d = mean.len() as i64;
        GaussianStats {
            mean: Tensor::from_slice(mean),
            cov: Tensor::from_slice(cov).view([d, d]),
            n: 0,
        }
    }

    /// For 2 × 2 SPD matrices, tr (Σ₁^½ Σ₂ Σ₁^½)^½ = √(tr Σ₁Σ₂ + 2 √(det Σ₁ det Σ₂))
    /// (the eigenvalues of Σ₁Σ₂ are those of the symmetric product).
    fn closed_form_2d(m1: [f64; 2], a: [f64; 4], m2: [f64; 2], b: [f64; 4]) -> f64 {
        let tr_ab = a[0] * b[0] + a[1] * b[2] + a[2] * b[1] + a[3] * b[3];
        let det = |m: [f64; 4]| m[0] * m[3] - m[1] * m[2];
        let tr_sqrt = (tr_ab + 2.0 * (det(a) * det(b)).sqrt()).sqrt();
        (m1[0] - m2[0]).powi(2) + (m1[1] - m2[1]).powi(2) + a[0] + a[3] + b[0] + b[3]
            - 2.0 * tr_sqrt
    }

    #[test]
    fn a_set_with_itself_is_zero() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(31);
        let x = Tensor::randn([500, 8], F64).matmul(&Tensor::randn([8, 8], F64));
        let fd = frechet_distance(&x, &x).unwrap();
        assert!(fd.value < 1e-9, "FD(x, x) = {}", fd.value);
        assert_eq!((fd.dim, fd.n_x, fd.n_y), (8, 500, 500));
        // Fewer samples than features: singular covariance, still ≈ 0 and not NaN.
        let few = Tensor::randn([5, 10], F64);
        let fd = frechet_distance(&few, &few).unwrap().value;
        assert!(fd < 1e-8, "rank-deficient FD(x, x) = {fd}");
    }

    #[test]
    fn two_gaussians_match_the_closed_form() {
        let _rng = gm_core::rng_guard::lock();
        // Non-commuting covariances.
        let (m1, a) = ([0.5, -1.0], [2.0, 0.8, 0.8, 1.0]);
        let (m2, b) = ([1.5, 0.0], [1.0, -0.3, -0.3, 0.5]);
        let exact = closed_form_2d(m1, a, m2, b);
        let got = frechet_distance_stats(&stats(&m1, &a), &stats(&m2, &b)).unwrap();
        approx::assert_abs_diff_eq!(got, exact, epsilon = 1e-10);
        // Symmetric in its arguments.
        let back = frechet_distance_stats(&stats(&m2, &b), &stats(&m1, &a)).unwrap();
        approx::assert_abs_diff_eq!(back, exact, epsilon = 1e-10);

        // Diagonal covariances in 5-D: d² = ‖Δμ‖² + Σ (√aᵢ − √bᵢ)².
        let va = [1.0, 4.0, 0.25, 9.0, 2.0];
        let vb = [4.0, 1.0, 0.25, 1.0, 0.5];
        let diag = |v: &[f64]| Tensor::from_slice(v).diag(0);
        let sa = GaussianStats {
            mean: Tensor::zeros([5], F64),
            cov: diag(&va),
            n: 0,
        };
        let sb = GaussianStats {
            mean: Tensor::ones([5], F64),
            cov: diag(&vb),
            n: 0,
        };
        let exact: f64 = 5.0
            + va.iter()
                .zip(vb)
                .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
                .sum::<f64>();
        approx::assert_abs_diff_eq!(
            frechet_distance_stats(&sa, &sb).unwrap(),
            exact,
            epsilon = 1e-10
        );
    }

    /// Samples of two known Gaussians: the sample-based distance approaches the closed form.
    #[test]
    fn samples_of_two_gaussians_approach_the_closed_form() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(32);
        let (m1, a) = ([0.5, -1.0], [2.0, 0.8, 0.8, 1.0]);
        let (m2, b) = ([1.5, 0.0], [1.0, -0.3, -0.3, 0.5]);
        let draw = |m: [f64; 2], c: [f64; 4], n: i64| {
            let l11 = c[0].sqrt();
            let l21 = c[2] / l11;
            let l = Tensor::from_slice(&[l11, 0.0, l21, (c[3] - l21 * l21).sqrt()]).view([2, 2]);
            Tensor::randn([n, 2], F64).matmul(&l.tr()) + Tensor::from_slice(&m)
        };
        let exact = closed_form_2d(m1, a, m2, b);
        let fd = frechet_distance(&draw(m1, a, 50_000), &draw(m2, b, 50_000))
            .unwrap()
            .value;
        assert!(
            (fd - exact).abs() < 0.05,
            "sample FD {fd} vs closed form {exact}"
        );
    }

    #[test]
    fn mismatched_inputs_are_errors() {
        let _rng = gm_core::rng_guard::lock();
        let x = Tensor::zeros([4, 3], F64);
        let err = frechet_distance(&x, &Tensor::zeros([4, 2], F64))
            .unwrap_err()
            .to_string();
        assert!(err.contains("dimensions differ"), "{err}");
        assert!(frechet_distance(&x, &Tensor::zeros([1, 3], F64)).is_err());
    }
}
