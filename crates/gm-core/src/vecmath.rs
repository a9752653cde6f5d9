//! Elementwise `f32` math for fused host passes ([`crate::host`]): the logistic sigmoid and
//! the dot product over slices, in AVX2 + FMA code where the CPU has it.
//!
//! σ(x) = 1 / (1 + e^−x) with e^y from the Cephes single-precision scheme: y = n·ln 2 + r
//! with n = round(y·log₂e) and |r| ≤ ln 2 / 2 (ln 2 split in two parts so that r is exact),
//! e^r by its degree-7 Taylor-like minimax polynomial, 2ⁿ put into the exponent bits. The
//! relative error of σ is a few units in the last place (tested against `f64`); the same
//! operations, fused multiply-adds included, run on CPUs without AVX2, so every machine
//! gives the same values.
//!
//! ```
//! let x = [-3.0f32, 0.0, 2.5];
//! let mut s = [0f32; 3];
//! gm_core::vecmath::sigmoid(&x, &mut s);
//! assert!((s[1] - 0.5).abs() < 1e-7);
//! assert!((gm_core::vecmath::dot(&x, &s) - (-3.0 * s[0] + 2.5 * s[2])).abs() < 1e-6);
//! ```

/// out_i = σ(x_i); `x` and `out` have the same length.
pub fn sigmoid(x: &[f32], out: &mut [f32]) {
    assert_eq!(
        x.len(),
        out.len(),
        "sigmoid: input and output differ in length"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has the two features `avx2::sigmoid` is compiled for.
        return unsafe { avx2::sigmoid(x, out) };
    }
    for (o, &x) in out.iter_mut().zip(x) {
        *o = sigmoid_one(x);
    }
}

/// Σ a_i b_i in eight `f32` partial sums; `a` and `b` have the same length.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot: the two slices differ in length");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU has the two features `avx2::dot` is compiled for.
        return unsafe { avx2::dot(a, b) };
    }
    dot_lanes(a, b)
}

/// [`dot`]'s partial sums: lane k sums the products at positions ≡ k (mod 8).
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = (ac.remainder().iter().zip(bc.remainder()))
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in ac.zip(bc) {
        for k in 0..8 {
            acc[k] = a[k].mul_add(b[k], acc[k]);
        }
    }
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// e^y is taken for y clamped to [EXP_LO, EXP_HI], where 2ⁿ stays a normal float.
const EXP_HI: f32 = 88.0;
const EXP_LO: f32 = -87.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 = LN2_HI + LN2_LO, LN2_HI with few bits so that n·LN2_HI is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// e^r ≈ 1 + r + r²·P(r), P from Cephes' `expf`.
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// σ(x) by the operations of the vector code, one element at a time.
fn sigmoid_one(x: f32) -> f32 {
    let y = (-x).clamp(EXP_LO, EXP_HI);
    let n = (y * LOG2E).round_ties_even();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, y));
    let p = P[1..].iter().fold(P[0], |p, &c| p.mul_add(r, c));
    let e = (p * r).mul_add(r, r) + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    1.0 / e.mul_add(scale, 1.0)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{EXP_HI, EXP_LO, LN2_HI, LN2_LO, LOG2E, P};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn sigmoid(x: &[f32], out: &mut [f32]) {
        let (xc, oc) = (x.chunks_exact(8), out.chunks_exact_mut(8));
        let n = x.len() / 8 * 8;
        let tail = xc.remainder();
        for (x, o) in xc.zip(oc) {
            #[allow(unsafe_code)]
            // SAFETY: `x` and `o` are chunks of exactly 8 floats.
            unsafe {
                _mm256_storeu_ps(o.as_mut_ptr(), sigmoid8(_mm256_loadu_ps(x.as_ptr())))
            };
        }
        if !tail.is_empty() {
            let mut buf = [0f32; 8];
            buf[..tail.len()].copy_from_slice(tail);
            #[allow(unsafe_code)]
            // SAFETY: `buf` holds 8 floats.
            unsafe {
                _mm256_storeu_ps(buf.as_mut_ptr(), sigmoid8(_mm256_loadu_ps(buf.as_ptr())))
            };
            out[n..].copy_from_slice(&buf[..tail.len()]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_lanes(a, b)
    }

    /// σ of eight lanes: the operations of `super::sigmoid_one`.
    #[target_feature(enable = "avx2,fma")]
    fn sigmoid8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let y = _mm256_sub_ps(_mm256_setzero_ps(), x);
        let y = _mm256_min_ps(
            _mm256_max_ps(y, _mm256_set1_ps(EXP_LO)),
            _mm256_set1_ps(EXP_HI),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(y, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), y);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), one);
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        let scale = _mm256_castsi256_ps(bits);
        _mm256_div_ps(one, _mm256_fmadd_ps(e, scale, one))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(x: f32) -> f64 {
        1.0 / (1.0 + (-f64::from(x)).exp())
    }

    /// σ against `f64` over [−80, 80] (relative error), the vector code against the
    /// scalar code (identical values), tails of every length.
    #[test]
    fn sigmoid_matches_f64_and_the_scalar_code() {
        let x: Vec<f32> = (-160_000..=160_000).map(|i| i as f32 * 5e-4).collect();
        let mut s = vec![0f32; x.len()];
        sigmoid(&x, &mut s);
        let mut worst = 0f64;
        for (&x, &s) in x.iter().zip(&s) {
            worst = worst.max((f64::from(s) - exact(x)).abs() / exact(x));
            assert_eq!(s.to_bits(), sigmoid_one(x).to_bits(), "σ({x})");
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        let big = [-1e4f32, -88.7, -87.0, 87.0, 88.7, 1e4, f32::MAX, f32::MIN];
        let mut s = [0f32; 8];
        sigmoid(&big, &mut s);
        assert!(s.iter().all(|s| (0.0..=1.0).contains(s)), "{s:?}");
        assert_eq!((s[5], s[6]), (1.0, 1.0));
        assert!(s[0] < 1e-37 && s[7] < 1e-37, "{s:?}");
        for n in 0..20 {
            let mut s = vec![0f32; n];
            sigmoid(&x[..n], &mut s);
            let want: Vec<f32> = x[..n].iter().map(|&x| sigmoid_one(x)).collect();
            assert_eq!(s, want, "length {n}");
        }
    }

    #[test]
    fn dot_matches_f64() {
        for n in [0usize, 1, 7, 8, 9, 500, 1001] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 * 0.25).collect();
            let want: f64 = a
                .iter()
                .zip(&b)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            // Small integers and quarters: every partial sum is exact in f32.
            assert_eq!(f64::from(dot(&a, &b)), want, "length {n}");
            assert_eq!(dot(&a, &b), dot_lanes(&a, &b));
        }
    }
}
