//! The CPU pass of one AIS step over the hidden units, per chain: the weight update and the
//! hidden draw in one loop over memory that libtorch has just written (no ATen call per
//! operation, no intermediate tensors).
//!
//! With a = β_to·u the hidden pre-activations at the new temperature, p = σ(a) and
//! x = (β_from − β_to)·u = r·a, the hidden term of the log-weight update is
//! Σ_j softplus(a_j) − softplus(a_j + x_j) = −Σ_j K_j(x_j), where
//! K(x) = log(1 − p + p eˣ) = log1p(p·expm1(x)) is the cumulant generating function of a
//! Bernoulli(p) variable. Its series K(x) = Σ_n κ_n xⁿ / n! has the Bernoulli cumulants
//! κ₁ = p, κ₂ = q = p(1 − p), κ₃ = q(1 − 2p), κ₄ = q(1 − 6q), κ₅ = q(1 − 2p)(1 − 12q)
//! (κ_{n+1} = q dκ_n/dp) and converges for |x| < π. Cut after x⁵ and used for |x| ≤
//! [`SERIES_MAX`], the remainder is at most q·|x|⁶/720 (|κ₆| ≤ q), so its error relative to
//! K ≈ p·x is below |x|⁵/720 ≈ 1.4·10⁻⁸ — under `f32` rounding — with no exp, log or
//! division. Rows with a larger |x| take log1p(p·expm1(x)) in `f64`. Terms are summed in
//! `f64` lanes.

use gm_core::sampling::bernoulli::Stream;

/// Largest |x| the cumulant series is used for.
pub(super) const SERIES_MAX: f32 = 0.1;

/// For each chain (row): `dbeta`·v·b_diff − Σ_j K_j(r·a_j), and h_j ~ Bernoulli(p_j) into
/// `h`. `v` is `[M, D]`, `b_diff` `[D]`, `a`, `p` and `h` are `[M, H]`, all row-major.
pub(super) fn hidden_pass(
    [v, b_diff, a, p]: [&[f32]; 4],
    h: &mut [f32],
    r: f32,
    dbeta: f64,
    rng: &mut Stream,
) -> Vec<f64> {
    let d = b_diff.len();
    let m = v.len() / d;
    let hn = a.len() / m.max(1);
    v.chunks_exact(d)
        .zip(a.chunks_exact(hn).zip(p.chunks_exact(hn)))
        .zip(h.chunks_exact_mut(hn))
        .map(|((v, (a, p)), h)| {
            let hid = hidden_term(a, p, r);
            rng.fill_f32(p, h);
            dbeta * dot(v, b_diff) - hid
        })
        .collect()
}

/// Σ_j K_j(r·a_j) for one row.
fn hidden_term(a: &[f32], p: &[f32], r: f32) -> f64 {
    let lim = SERIES_MAX / r.abs();
    let beyond = a.iter().fold(0u32, |n, &x| n + u32::from(x.abs() > lim));
    if beyond > 0 {
        return exact_term(a, p, r);
    }
    series_term(a, p, r)
}

/// The series, with AVX2 and FMA code where the CPU has them.
fn series_term(a: &[f32], p: &[f32], r: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU supports the features `series_avx2` is compiled for (checked above).
        return unsafe { series_avx2(a, p, r) };
    }
    series_lanes(a, p, r)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn series_avx2(a: &[f32], p: &[f32], r: f32) -> f64 {
    series_lanes(a, p, r)
}

/// Σ K(r·a_j) in 16 `f64` lanes.
#[inline(always)]
fn series_lanes(a: &[f32], p: &[f32], r: f32) -> f64 {
    const L: usize = 16;
    let mut acc = [0f64; L];
    let (ac, pc) = (a.chunks_exact(L), p.chunks_exact(L));
    let tail: f64 = (ac.remainder().iter().zip(pc.remainder()))
        .map(|(&a, &p)| f64::from(cgf(r * a, p)))
        .sum();
    for (a, p) in ac.zip(pc) {
        for k in 0..L {
            acc[k] += f64::from(cgf(r * a[k], p[k]));
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// K(x) = log1p(p·expm1(x)) by its cumulant series to x⁵ (module docs).
#[inline(always)]
fn cgf(x: f32, p: f32) -> f32 {
    let q = p * (1.0 - p);
    let k3 = q * (1.0 - 2.0 * p);
    let k4 = q * (1.0 - 6.0 * q);
    let k5 = k3 * (1.0 - 12.0 * q);
    let c5 = k5 * (1.0 / 120.0);
    let c4 = k4 * (1.0 / 24.0) + x * c5;
    let c3 = k3 * (1.0 / 6.0) + x * c4;
    let c2 = q * 0.5 + x * c3;
    x * (p + x * c2)
}

/// Σ log1p(p·expm1(r·a_j)) in `f64`, for rows where the series does not hold.
fn exact_term(a: &[f32], p: &[f32], r: f32) -> f64 {
    let r = f64::from(r);
    (a.iter().zip(p))
        .map(|(&a, &p)| (f64::from(p) * (r * f64::from(a)).exp_m1()).ln_1p())
        .sum()
}

/// v·b in `f64` lanes.
fn dot(v: &[f32], b: &[f32]) -> f64 {
    const L: usize = 8;
    let mut acc = [0f64; L];
    let (vc, bc) = (v.chunks_exact(L), b.chunks_exact(L));
    let tail: f64 = (vc.remainder().iter().zip(bc.remainder()))
        .map(|(&v, &b)| f64::from(v) * f64::from(b))
        .sum();
    for (v, b) in vc.zip(bc) {
        for k in 0..L {
            acc[k] += f64::from(v[k]) * f64::from(b[k]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The series against log1p(p·expm1(x)) in `f64` over p ∈ [0, 1] and |x| ≤ SERIES_MAX,
    /// relative to |K| (and absolutely near K = 0).
    #[test]
    fn cumulant_series_matches_log1p_expm1() {
        let mut worst = 0f64;
        for i in 0..=200 {
            let p = i as f32 / 200.0;
            for j in -100..=100 {
                let x = SERIES_MAX * j as f32 / 100.0;
                let want = (f64::from(p) * f64::from(x).exp_m1()).ln_1p();
                let got = f64::from(cgf(x, p));
                let err = (got - want).abs() / want.abs().max(1e-30);
                if want != 0.0 {
                    worst = worst.max(err);
                } else {
                    assert_eq!(got, 0.0, "K({x}) at p = {p}");
                }
            }
        }
        // f32 rounding of a few operations; the truncation alone is ≤ 1.4e-8.
        assert!(worst < 1e-6, "worst relative error {worst:e}");
    }

    /// Per row: the log-weight update against the same sum written out in `f64` (series
    /// rows and, with large pre-activations, exact rows), and the hidden draws' column
    /// means against p.
    #[test]
    fn hidden_pass_weights_and_draws() {
        let _rng = gm_core::rng_guard::seeded(5);
        let (m, d, hn) = (4000usize, 3usize, 9usize);
        let b_diff = [0.5f32, -1.25, 2.0];
        let v: Vec<f32> = (0..m * d)
            .map(|i| ((i * 7) % 3 == 0) as u8 as f32)
            .collect();
        // Row i: a_j = s_i (j − 4) with s_i = 0.1 · (1 + i % 50): max |r·a| from 0.011 to 0.57.
        let a: Vec<f32> = (0..m * hn)
            .map(|k| 0.1 * (1 + (k / hn) % 50) as f32 * ((k % hn) as f32 - 4.0))
            .collect();
        let p: Vec<f32> = (0..m * hn).map(|k| (k % hn) as f32 / 8.0).collect();
        let (r, dbeta) = (-0.02f32 / 0.7, 0.02f64);
        let mut h = vec![0f32; m * hn];
        let mut rng = Stream::seeded();
        let got = hidden_pass([&v, &b_diff, &a, &p], &mut h, r, dbeta, &mut rng);
        let mut exact_rows = 0;
        for i in 0..m {
            let vis: f64 = (0..d)
                .map(|k| f64::from(v[i * d + k]) * f64::from(b_diff[k]))
                .sum();
            let hid: f64 = (0..hn)
                .map(|j| {
                    let (aj, pj) = (f64::from(a[i * hn + j]), f64::from(p[i * hn + j]));
                    (1.0 - pj + pj * (f64::from(r) * aj).exp()).ln()
                })
                .sum();
            let want = dbeta * vis - hid;
            let tol = 2e-7 + 1e-6 * want.abs();
            assert!(
                (got[i] - want).abs() <= tol,
                "row {i}: {} vs {want}",
                got[i]
            );
            exact_rows += usize::from(
                a[i * hn..(i + 1) * hn]
                    .iter()
                    .any(|x| (r * x).abs() > SERIES_MAX),
            );
        }
        assert!(
            exact_rows > 0 && exact_rows < m,
            "both paths tested ({exact_rows} exact rows)"
        );
        for j in 0..hn {
            let mean = (0..m).map(|i| f64::from(h[i * hn + j])).sum::<f64>() / m as f64;
            let pj = j as f64 / 8.0;
            // Binomial standard error ≤ 0.5 / √4000 = 0.0079; 5σ.
            assert!(
                (mean - pj).abs() < 0.04,
                "column {j}: mean {mean} vs p {pj}"
            );
        }
        assert!(h.iter().all(|&x| x == 0.0 || x == 1.0));
    }
}
