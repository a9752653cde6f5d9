//! Independent Bernoulli draws x ~ Bernoulli(p), elementwise: the innermost step of every
//! Gibbs sweep, CD / PCD update and AIS transition.
//!
//! On the GPU (or for other kinds) this is libtorch's `rand_like(p) < p`. On the CPU,
//! libtorch's uniform generator is a serial Mersenne twister that costs about as much as the
//! matrix products of an RBM step, so `f32` / `f64` draws are made here instead, in one pass
//! over `p`: a xoshiro256++ stream (Blackman & Vigna) seeded from libtorch's global generator
//! (so `tch::manual_seed` still fixes every draw), a uniform u with 24 (`f32`) or 53 (`f64`)
//! random bits, and x = 1[u < p] — the same rule and resolution as `rand_like(p) < p`. The
//! pass reads `p`'s memory and writes the result's directly (no host copies); from 32,768
//! elements on, the two halves are drawn with two streams.
//!
//! ```
//! use tch::{Device, Kind, Tensor};
//! let p = Tensor::full([100_000], 0.3, (Kind::Float, Device::Cpu));
//! let x = gm_core::sampling::bernoulli::sample(&p);
//! let mean = x.mean(Kind::Double).double_value(&[]);
//! assert!((mean - 0.3).abs() < 0.01);
//! ```

use tch::{Device, Kind, Tensor};

/// 0/1 draws of `p`'s kind and shape with P(1) = p elementwise.
pub fn sample(p: &Tensor) -> Tensor {
    if p.device() == Device::Cpu && matches!(p.kind(), Kind::Float | Kind::Double) {
        cpu(p)
    } else {
        p.rand_like().lt_tensor(p).to_kind(p.kind())
    }
}

/// The xoshiro256++ generator.
struct Xoshiro([u64; 4]);

impl Xoshiro {
    /// State from two seed words through splitmix64 (never all zero).
    fn new(a: u64, b: u64) -> Self {
        let mut z = a ^ b.rotate_left(32);
        let mut next = || {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        };
        Xoshiro([next(), next(), next() ^ b, next()])
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }
}

/// Two seed words drawn from libtorch's global CPU generator.
fn seed_words() -> (u64, u64) {
    let seed = Tensor::randint_low(0, i64::MAX, [2], (Kind::Int64, Device::Cpu));
    let s = Vec::<i64>::try_from(&seed).expect("two int64 seeds");
    (s[0] as u64, s[1] as u64)
}

/// Tensors with at least this many elements are drawn in two halves, each with its own
/// stream. Both halves run on the calling thread: a second thread made an AIS step 50 %
/// slower (1.05 → 1.6 ms on the 2-core VM), competing with libtorch's OpenMP worker, which
/// spins on the other core between parallel regions.
const SPLIT_AT: usize = 1 << 15;

/// One pass over `p`'s memory into a new tensor's memory. The one `unsafe` block of the
/// workspace: host copies in and out cost more than the draws at the sizes of an AIS step.
#[allow(unsafe_code)]
fn cpu(p: &Tensor) -> Tensor {
    let p = p.contiguous();
    let out = Tensor::empty(p.size(), (p.kind(), Device::Cpu));
    let n = p.numel();
    if n == 0 {
        return out;
    }
    let (a, b) = seed_words();
    let halves = n >= SPLIT_AT;
    // SAFETY: `p` is a contiguous CPU tensor of `n` elements of the matched kind, `out` a new
    // tensor of the same size and kind; the two slices do not overlap and outlive the calls.
    unsafe {
        match p.kind() {
            Kind::Float => fill(
                std::slice::from_raw_parts(p.data_ptr() as *const f32, n),
                std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n),
                (a, b),
                halves,
                fill_f32,
            ),
            _ => fill(
                std::slice::from_raw_parts(p.data_ptr() as *const f64, n),
                std::slice::from_raw_parts_mut(out.data_ptr() as *mut f64, n),
                (a, b),
                halves,
                fill_f64,
            ),
        }
    }
    out
}

/// Draws `x` from `p` with one stream, or in two halves with two streams.
fn fill<T: Sync + Send>(
    p: &[T],
    x: &mut [T],
    (a, b): (u64, u64),
    halves: bool,
    f: fn(&[T], &mut [T], &mut Xoshiro),
) {
    if !halves {
        return f(p, x, &mut Xoshiro::new(a, b));
    }
    // An even split point keeps the f32 pairs of one 64-bit draw inside one half.
    let mid = (p.len() / 2) & !1;
    let (p0, p1) = p.split_at(mid);
    let (x0, x1) = x.split_at_mut(mid);
    f(p0, x0, &mut Xoshiro::new(a, b));
    f(p1, x1, &mut Xoshiro::new(a, b ^ 0x5851_f42d_4c95_7f2d));
}

const F32_UNIT: f32 = 1.0 / (1u32 << 24) as f32;
const F64_UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// Two 24-bit uniforms per 64-bit draw (bits 40–63 and 16–39).
fn fill_f32(p: &[f32], x: &mut [f32], rng: &mut Xoshiro) {
    let mut pairs_p = p.chunks_exact(2);
    let mut pairs_x = x.chunks_exact_mut(2);
    for (pp, xx) in (&mut pairs_p).zip(&mut pairs_x) {
        let r = rng.next();
        let u0 = (r >> 40) as f32 * F32_UNIT;
        let u1 = ((r >> 16) & 0xff_ffff) as f32 * F32_UNIT;
        xx[0] = f32::from(u8::from(u0 < pp[0]));
        xx[1] = f32::from(u8::from(u1 < pp[1]));
    }
    if let (Some(&pl), Some(xl)) = (
        pairs_p.remainder().first(),
        pairs_x.into_remainder().first_mut(),
    ) {
        *xl = f32::from(u8::from(((rng.next() >> 40) as f32 * F32_UNIT) < pl));
    }
}

fn fill_f64(p: &[f64], x: &mut [f64], rng: &mut Xoshiro) {
    for (pi, xi) in p.iter().zip(x.iter_mut()) {
        let u = (rng.next() >> 11) as f64 * F64_UNIT;
        *xi = f64::from(u8::from(u < *pi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_have_the_right_means_and_no_correlation() {
        let _rng = crate::rng_guard::seeded(3);
        for kind in [Kind::Float, Kind::Double] {
            // p from 0 to 1 over 1001 columns, 2000 rows of draws.
            let p = Tensor::linspace(0.0, 1.0, 1001, (kind, Device::Cpu))
                .unsqueeze(0)
                .repeat([2000, 1]);
            let x = sample(&p);
            assert_eq!(x.kind(), kind);
            let mean = x.mean_dim(0, false, Kind::Double);
            let p0 = p.get(0).to_kind(Kind::Double);
            // Binomial standard error at most 0.5 / √2000 = 0.0112; 5σ per column.
            let worst = f64::try_from((&mean - &p0).abs().max()).unwrap();
            assert!(worst < 0.056, "{kind:?}: a column mean is off by {worst}");
            assert_eq!(
                f64::try_from(mean.get(0)).unwrap(),
                0.0,
                "p = 0 never fires"
            );
            assert_eq!(
                f64::try_from(mean.get(1000)).unwrap(),
                1.0,
                "p = 1 always fires"
            );
            // Neighbouring elements share a 64-bit draw in f32: their correlation must be 0.
            let a = x.narrow(1, 400, 100).to_kind(Kind::Double);
            let b = x.narrow(1, 401, 100).to_kind(Kind::Double);
            let cov =
                ((&a - a.mean(Kind::Double)) * (&b - b.mean(Kind::Double))).mean(Kind::Double);
            let corr = f64::try_from(&cov).unwrap() / 0.25;
            assert!(corr.abs() < 0.01, "{kind:?}: neighbour correlation {corr}");
        }
    }

    #[test]
    fn manual_seed_fixes_the_draws() {
        let p = Tensor::full([1001], 0.5, (Kind::Float, Device::Cpu));
        let a = {
            let _rng = crate::rng_guard::seeded(11);
            sample(&p)
        };
        let b = {
            let _rng = crate::rng_guard::seeded(11);
            sample(&p)
        };
        let c = {
            let _rng = crate::rng_guard::seeded(12);
            sample(&p)
        };
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
        // A non-contiguous input gives the draws of its contiguous copy.
        let q = Tensor::full([7, 3], 0.5, (Kind::Double, Device::Cpu)).tr();
        assert_eq!(sample(&q).size(), vec![3, 7]);
    }
}
