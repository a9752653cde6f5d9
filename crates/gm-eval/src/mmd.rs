//! Maximum mean discrepancy between two sample sets (Gretton et al. 2012), the statistic
//! GMMNs train on (*Deep Learning* §20.10.5) and a sample-quality measure.
//!
//! With a kernel k, MMD²(p, q) = E k(x, x′) + E k(y, y′) − 2 E k(x, y), which is zero iff
//! p = q for a characteristic kernel. The unbiased estimator from x₁…x_m ~ p, y₁…y_n ~ q is
//!
//! MMD²_u = Σ_{i≠i′} k(xᵢ, x_{i′}) / m(m−1) + Σ_{j≠j′} k(y_j, y_{j′}) / n(n−1)
//!          − 2 Σ_{i,j} k(xᵢ, y_j) / mn,
//!
//! which can be negative when p = q; the biased estimator MMD²_b sums over every pair
//! (diagonal included, divided by m², n²) and is never negative. Here k is a sum of Gaussian
//! kernels Σ_σ exp(−‖a − b‖² / 2σ²) with given bandwidths or multiples of the median pairwise
//! distance of the pooled samples (the median heuristic). The kernel matrices are summed block
//! by block, never held whole.
//!
//! One implementation serves the metric ([`mmd2_unbiased`], summed in `f64`, with a
//! standard error) and the GMMN training loss ([`mmd2`], a tensor through which gradients
//! flow to both sample sets, either estimator).
//!
//! The reported standard error is the first-order (Hoeffding projection) one,
//! √(4 Var g₁ / m + 4 Var g₂ / n). It is accurate when p ≠ q; when p = q the first-order
//! term vanishes and the estimator's spread is of order 1/n, which that formula does not
//! capture — do not use it as a test of p = q (a permutation test is the tool for that).
//!
//! ```
//! use gm_eval::mmd::{mmd2_unbiased, Bandwidths};
//! use tch::{Device, Kind, Tensor};
//! tch::manual_seed(0);
//! let opts = (Kind::Double, Device::Cpu);
//! let x = Tensor::randn([300, 4], opts);
//! let y = Tensor::randn([300, 4], opts) + 1.0;
//! let r = mmd2_unbiased(&x, &y, &Bandwidths::default())?;
//! assert!(r.mmd2 > 5.0 * r.std_err, "{r:?}");
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The Gaussian kernels' bandwidths σ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bandwidths {
    /// These σ.
    Fixed(Vec<f64>),
    /// σ = multiplier × the median pairwise distance of (at most `max_points` of) the pooled
    /// samples.
    Median {
        /// Multiples of the median distance, one kernel each.
        multipliers: Vec<f64>,
        /// Points used for the median (the first ones of x and y, half each).
        max_points: i64,
    },
}

impl Default for Bandwidths {
    /// Three kernels at ½, 1 and 2 times the median distance (of up to 1,000 points).
    fn default() -> Self {
        Bandwidths::Median {
            multipliers: vec![0.5, 1.0, 2.0],
            max_points: 1000,
        }
    }
}

/// An MMD² estimate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MmdResult {
    /// The unbiased estimate MMD²_u.
    pub mmd2: f64,
    /// First-order standard error (meaningful when the distributions differ; see the module
    /// docs).
    pub std_err: f64,
    /// The bandwidths used.
    pub bandwidths: Vec<f64>,
    /// Number of x samples.
    pub n_x: i64,
    /// Number of y samples.
    pub n_y: i64,
}

impl MmdResult {
    /// The settings to record with the result.
    pub fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "estimator": "unbiased (U-statistic)",
            "kernel": "sum of Gaussians",
            "bandwidths": self.bandwidths,
            "n_x": self.n_x,
            "n_y": self.n_y,
        })
    }
}

/// Rows per block of the kernel sums.
const CHUNK: i64 = 1024;

/// Which MMD² estimator: the U-statistic (diagonal kernel terms left out) or the V-statistic
/// (every pair, always ≥ 0; Li et al. 2015 train on its square root).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// MMD²_u, unbiased, can be negative; needs at least 2 rows per set.
    Unbiased,
    /// MMD²_b = Σ_{i,i′} k / m² + Σ_{j,j′} k / n² − 2 Σ_{i,j} k / mn.
    Biased,
}

fn flat(x: &Tensor, what: &str, min_rows: i64) -> Result<Tensor> {
    if x.dim() < 2 || x.size()[0] < min_rows {
        return Err(Error::Msg(format!(
            "MMD: {what} must be a [N, ...] tensor with N ≥ {min_rows}, got shape {:?}",
            x.size()
        )));
    }
    Ok(x.f_reshape([x.size()[0], -1])?)
}

/// Bandwidths `sigmas` are a non-empty list of positive finite numbers, else a config error
/// naming `field`.
pub fn check_bandwidths(field: &str, sigmas: &[f64]) -> Result<()> {
    if sigmas.is_empty() || sigmas.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
        return Err(Error::config(
            field,
            format!("{sigmas:?}"),
            "a non-empty list of positive, finite bandwidths",
        ));
    }
    Ok(())
}

/// The median pairwise Euclidean distance among the first `max_points / 2` rows of `x` and
/// of `y` together.
pub fn median_distance(x: &Tensor, y: &Tensor, max_points: i64) -> Result<f64> {
    let (x, y) = (flat(x, "x", 2)?, flat(y, "y", 2)?);
    let half = (max_points / 2).max(1);
    let pooled = Tensor::cat(
        &[
            x.narrow(0, 0, half.min(x.size()[0])),
            y.narrow(0, 0, half.min(y.size()[0])).to_kind(x.kind()),
        ],
        0,
    )
    .to_kind(Kind::Double);
    let sq = pooled.square().sum_dim_intlist(1, false, Kind::Double);
    let d2 =
        (pooled.matmul(&pooled.tr()) * -2.0 + sq.unsqueeze(1) + sq.unsqueeze(0)).clamp_min(0.0);
    let n = pooled.size()[0];
    let iu = Tensor::triu_indices(n, n, 1, (Kind::Int64, pooled.device()));
    let mut d: Vec<f64> = Vec::try_from(
        &d2.index(&[Some(iu.get(0)), Some(iu.get(1))])
            .to_device(tch::Device::Cpu),
    )?;
    d.sort_by(f64::total_cmp);
    let m = d.len();
    let med = if m % 2 == 1 {
        d[m / 2]
    } else {
        0.5 * (d[m / 2 - 1] + d[m / 2])
    };
    let med = med.sqrt();
    if !(med > 0.0 && med.is_finite()) {
        return Err(Error::Msg(format!(
            "MMD: the median pairwise distance is {med}: give the bandwidths explicitly"
        )));
    }
    Ok(med)
}

/// Row sums and column sums of the kernel matrix K(a, b) in kind `acc`, differentiable in
/// `a` and `b`; with `same`, a and b are the same set and the diagonal is left out (masked
/// to 0, so it carries no gradient either).
fn kernel_sums(
    a: &Tensor,
    b: &Tensor,
    scales: &[f64],
    same: bool,
    chunk: i64,
    acc: Kind,
) -> (Tensor, Tensor) {
    let (na, nb) = (a.size()[0], b.size()[0]);
    let a_sq = a.square().sum_dim_intlist(1, false, a.kind());
    let b_sq = b.square().sum_dim_intlist(1, false, b.kind());
    let (mut rows, mut cols) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < na {
        let bi = chunk.min(na - i);
        let ab = a.narrow(0, i, bi);
        let (mut row, mut col_blocks) = (Vec::new(), Vec::new());
        let mut j = 0;
        while j < nb {
            let bj = chunk.min(nb - j);
            let d2 = (ab.matmul(&b.narrow(0, j, bj).tr()) * -2.0
                + a_sq.narrow(0, i, bi).unsqueeze(1)
                + b_sq.narrow(0, j, bj).unsqueeze(0))
            .clamp_min(0.0)
            .to_kind(acc);
            let mut k = scales
                .iter()
                .map(|s| (&d2 * *s).exp())
                .reduce(|x, y| x + y)
                .expect("at least one bandwidth");
            if same && i == j {
                k *= 1.0 - Tensor::eye(bi, (acc, d2.device()));
            }
            row.push(k.sum_dim_intlist(1, false, acc));
            col_blocks.push(k.sum_dim_intlist(0, false, acc));
            j += bj;
        }
        rows.push(Tensor::stack(&row, 0).sum_dim_intlist(0, false, acc));
        cols.push(Tensor::cat(&col_blocks, 0));
        i += bi;
    }
    (
        Tensor::cat(&rows, 0),
        Tensor::stack(&cols, 0).sum_dim_intlist(0, false, acc),
    )
}

/// The kernel sums of one MMD² between `x` `[m, D]` and `y` `[n, D]`: the off-diagonal row
/// sums of K(x, x) and K(y, y), the row and column sums of K(x, y).
struct Sums {
    xx: Tensor,
    yy: Tensor,
    xy_rows: Tensor,
    xy_cols: Tensor,
    /// Number of kernels (the value of k(a, a)).
    kernels: f64,
}

impl Sums {
    fn new(x: &Tensor, y: &Tensor, sigmas: &[f64], chunk: i64, acc: Kind) -> Sums {
        let scales: Vec<f64> = sigmas.iter().map(|s| -0.5 / (s * s)).collect();
        let (xx, _) = kernel_sums(x, x, &scales, true, chunk, acc);
        let (yy, _) = kernel_sums(y, y, &scales, true, chunk, acc);
        let (xy_rows, xy_cols) = kernel_sums(x, y, &scales, false, chunk, acc);
        Sums {
            xx,
            yy,
            xy_rows,
            xy_cols,
            kernels: sigmas.len() as f64,
        }
    }

    /// The estimate, a 0-dim tensor (with gradients when the inputs have them).
    fn mmd2(&self, estimator: Estimator) -> Tensor {
        let (m, n) = (self.xx.size()[0] as f64, self.yy.size()[0] as f64);
        let kind = self.xx.kind();
        let (sxx, syy) = (self.xx.sum(kind), self.yy.sum(kind));
        let cross = self.xy_rows.sum(kind) * (-2.0 / (m * n));
        match estimator {
            Estimator::Unbiased => sxx / (m * (m - 1.0)) + syy / (n * (n - 1.0)) + cross,
            // The diagonal adds k(a, a) = (number of kernels) per row.
            Estimator::Biased => {
                (sxx + m * self.kernels) / (m * m) + (syy + n * self.kernels) / (n * n) + cross
            }
        }
    }

    /// The first-order standard error of MMD²_u (see the module docs).
    fn std_err(&self) -> f64 {
        let (m, n) = (self.xx.size()[0] as f64, self.yy.size()[0] as f64);
        let g1 = &self.xx / (m - 1.0) - &self.xy_rows / n;
        let g2 = &self.yy / (n - 1.0) - &self.xy_cols / m;
        let var =
            4.0 * g1.var(true).double_value(&[]) / m + 4.0 * g2.var(true).double_value(&[]) / n;
        var.max(0.0).sqrt()
    }
}

/// Both sets flattened to `[N, D]` rows of the same width and kind.
fn rows(x: &Tensor, y: &Tensor, min_rows: i64) -> Result<(Tensor, Tensor)> {
    let (xf, yf) = (flat(x, "x", min_rows)?, flat(y, "y", min_rows)?);
    if xf.size()[1] != yf.size()[1] {
        return Err(Error::Msg(format!(
            "MMD: x has {} dimensions, y {}",
            xf.size()[1],
            yf.size()[1]
        )));
    }
    let yf = yf.to_kind(xf.kind());
    Ok((xf, yf))
}

/// MMD² between the rows of `x` `[m, ...]` and `y` `[n, ...]` with a sum of Gaussian kernels
/// at bandwidths `sigmas`, as a 0-dim tensor of `x`'s kind through which gradients flow to
/// `x` and `y` (the GMMN training loss). The same kernel sums as [`mmd2_unbiased`].
pub fn mmd2(x: &Tensor, y: &Tensor, sigmas: &[f64], estimator: Estimator) -> Result<Tensor> {
    check_bandwidths("mmd.bandwidths", sigmas)?;
    let min_rows = if estimator == Estimator::Unbiased {
        2
    } else {
        1
    };
    let (xf, yf) = rows(x, y, min_rows)?;
    Ok(Sums::new(&xf, &yf, sigmas, CHUNK, xf.kind()).mmd2(estimator))
}

/// The unbiased MMD² between the rows of `x` `[m, ...]` and `y` `[n, ...]` (flattened to
/// vectors), with a sum of Gaussian kernels, summed in `f64`.
pub fn mmd2_unbiased(x: &Tensor, y: &Tensor, bandwidths: &Bandwidths) -> Result<MmdResult> {
    mmd2_chunked(x, y, bandwidths, CHUNK)
}

fn mmd2_chunked(x: &Tensor, y: &Tensor, bandwidths: &Bandwidths, chunk: i64) -> Result<MmdResult> {
    let (xf, yf) = rows(x, y, 2)?;
    let sigmas = match bandwidths {
        Bandwidths::Fixed(s) => s.clone(),
        Bandwidths::Median {
            multipliers,
            max_points,
        } => {
            let med = median_distance(&xf, &yf, *max_points)?;
            multipliers.iter().map(|m| m * med).collect()
        }
    };
    check_bandwidths("mmd.bandwidths", &sigmas)?;
    let _guard = tch::no_grad_guard();
    let sums = Sums::new(&xf, &yf, &sigmas, chunk, Kind::Double);
    Ok(MmdResult {
        mmd2: sums.mmd2(Estimator::Unbiased).double_value(&[]),
        std_err: sums.std_err(),
        bandwidths: sigmas,
        n_x: xf.size()[0],
        n_y: yf.size()[0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        (
            mean,
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
        )
    }

    #[test]
    fn matches_direct_double_sum() {
        let _rng = gm_core::rng_guard::lock();
        let xs: [[f64; 2]; 3] = [[0.0, 0.0], [1.0, 0.5], [-0.5, 2.0]];
        let ys: [[f64; 2]; 4] = [[0.3, 0.1], [2.0, 2.0], [-1.0, -1.0], [0.0, 1.0]];
        let sig = [0.5, 2.0];
        let k = |a: &[f64; 2], b: &[f64; 2]| {
            let d2 = (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2);
            sig.iter().map(|s| (-d2 / (2.0 * s * s)).exp()).sum::<f64>()
        };
        let mut xx = 0.0;
        for (i, a) in xs.iter().enumerate() {
            for (j, b) in xs.iter().enumerate() {
                if i != j {
                    xx += k(a, b);
                }
            }
        }
        let mut yy = 0.0;
        for (i, a) in ys.iter().enumerate() {
            for (j, b) in ys.iter().enumerate() {
                if i != j {
                    yy += k(a, b);
                }
            }
        }
        let xy: f64 = xs
            .iter()
            .flat_map(|a| ys.iter().map(move |b| k(a, b)))
            .sum();
        let expected = xx / 6.0 + yy / 12.0 - 2.0 * xy / 12.0;
        // Biased: every pair, k(a, a) = 2 (two kernels) on the diagonals.
        let biased = (xx + 3.0 * 2.0) / 9.0 + (yy + 4.0 * 2.0) / 16.0 - 2.0 * xy / 12.0;
        let x = Tensor::from_slice(&xs.concat()).view([3, 2]);
        let y = Tensor::from_slice(&ys.concat()).view([4, 2]);
        let r = mmd2_unbiased(&x, &y, &Bandwidths::Fixed(sig.to_vec())).unwrap();
        approx::assert_abs_diff_eq!(r.mmd2, expected, epsilon = 1e-12);
        // Symmetric in its arguments.
        let r2 = mmd2_unbiased(&y, &x, &Bandwidths::Fixed(sig.to_vec())).unwrap();
        approx::assert_abs_diff_eq!(r2.mmd2, expected, epsilon = 1e-12);
        // Blocks of 2 rows (diagonal blocks and ragged edges) give the same sums.
        let r3 = mmd2_chunked(&x, &y, &Bandwidths::Fixed(sig.to_vec()), 2).unwrap();
        approx::assert_abs_diff_eq!(r3.mmd2, expected, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(r3.std_err, r.std_err, epsilon = 1e-12);
        // The tensor form (the GMMN loss) gives the same values, in both estimators.
        let t = |e| mmd2(&x, &y, &sig, e).unwrap().double_value(&[]);
        approx::assert_abs_diff_eq!(t(Estimator::Unbiased), expected, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(t(Estimator::Biased), biased, epsilon = 1e-12);
        // The biased form is defined for a single row; the unbiased one is not.
        let one = x.narrow(0, 0, 1);
        assert!(mmd2(&one, &y, &sig, Estimator::Biased).is_ok());
        assert!(mmd2(&one, &y, &sig, Estimator::Unbiased).is_err());
    }

    #[test]
    fn median_distance_of_known_points() {
        let _rng = gm_core::rng_guard::lock();
        // Points 0, 1, 3 (x) and 6 (y) on a line: distances 1, 2, 3, 5, 6, 3 → median 3.
        let x = Tensor::from_slice(&[0.0f64, 1.0, 3.0]).view([3, 1]);
        let y = Tensor::from_slice(&[6.0f64, 6.0]).view([2, 1]);
        approx::assert_abs_diff_eq!(median_distance(&x, &y, 6).unwrap(), 3.0, epsilon = 1e-12);
        let z = Tensor::zeros([4, 2], F64);
        assert!(median_distance(&z, &z, 8)
            .unwrap_err()
            .to_string()
            .contains("explicitly"));
    }

    /// For p = q the unbiased estimator averages to 0 (within its spread over repeats);
    /// for shifted distributions it is clearly positive, and the reported first-order
    /// standard error matches the spread of repeats.
    #[test]
    fn zero_mean_for_identical_positive_for_shifted() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(21);
        let reps = 80;
        let same: Vec<f64> = (0..reps)
            .map(|_| {
                let x = Tensor::randn([100, 5], F64);
                let y = Tensor::randn([100, 5], F64);
                mmd2_unbiased(&x, &y, &Bandwidths::default()).unwrap().mmd2
            })
            .collect();
        let (m0, sd0) = mean_sd(&same);
        let se0 = sd0 / (reps as f64).sqrt();
        assert!(
            m0.abs() < 3.0 * se0,
            "MMD² for p = q averages {m0:.2e} ± {se0:.2e}, not 0"
        );
        assert!(
            same.iter().any(|v| *v < 0.0),
            "the unbiased estimator must sometimes be negative"
        );

        let shifted: Vec<MmdResult> = (0..reps)
            .map(|_| {
                let x = Tensor::randn([100, 5], F64);
                let y = Tensor::randn([100, 5], F64) + 0.5;
                mmd2_unbiased(&x, &y, &Bandwidths::default()).unwrap()
            })
            .collect();
        let (m1, sd1) = mean_sd(&shifted.iter().map(|r| r.mmd2).collect::<Vec<_>>());
        let (mean_se, _) = mean_sd(&shifted.iter().map(|r| r.std_err).collect::<Vec<_>>());
        assert!(
            m1 > 10.0 * sd0,
            "shifted MMD² {m1:.3e} not well above the null spread {sd0:.3e}"
        );
        let ratio = sd1 / mean_se;
        assert!(
            (0.6..1.6).contains(&ratio),
            "spread {sd1:.3e} vs reported se {mean_se:.3e}"
        );
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let _rng = gm_core::rng_guard::lock();
        let a = Tensor::zeros([4, 3], F64);
        assert!(mmd2_unbiased(
            &a,
            &Tensor::zeros([4, 2], F64),
            &Bandwidths::Fixed(vec![1.0])
        )
        .is_err());
        assert!(mmd2_unbiased(
            &a,
            &Tensor::zeros([1, 3], F64),
            &Bandwidths::Fixed(vec![1.0])
        )
        .is_err());
        assert!(mmd2_unbiased(&a, &a, &Bandwidths::Fixed(vec![])).is_err());
        assert!(mmd2_unbiased(&a, &a, &Bandwidths::Fixed(vec![-1.0])).is_err());
    }
}
