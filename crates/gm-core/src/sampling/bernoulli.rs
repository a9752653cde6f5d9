//! Independent Bernoulli draws x ~ Bernoulli(p), elementwise: the innermost step of every
//! Gibbs sweep, CD / PCD update and AIS transition.
//!
//! On the GPU (or for other kinds) this is libtorch's `rand_like(p) < p`. On the CPU,
//! libtorch's uniform generator is a serial Mersenne twister that costs about as much as the
//! matrix products of an RBM step, so `f32` / `f64` draws are made here instead, in one pass
//! over `p`: eight xoshiro256++ streams (Blackman & Vigna) advanced in lockstep (vector
//! code), seeded from libtorch's global generator (so `tch::manual_seed` still fixes every
//! draw), a uniform u with 24 (`f32`) or 53 (`f64`) random bits, and x = 1[u < p] — the same
//! rule and resolution as `rand_like(p) < p`. The pass reads `p`'s memory and writes the
//! result's directly (no host copies), on the calling thread (a second thread competes with
//! libtorch's OpenMP worker, which spins on the other core between parallel regions).
//! [`Stream`] lends the generator to fused passes that draw inside their own loops.
//!
//! ```
//! use tch::{Device, Kind, Tensor};
//! let p = Tensor::full([100_000], 0.3, (Kind::Float, Device::Cpu));
//! let x = gm_core::sampling::bernoulli::sample(&p);
//! let mean = x.mean(Kind::Double).double_value(&[]);
//! assert!((mean - 0.3).abs() < 0.01);
//! ```

use tch::{Device, Kind, Tensor};

/// 0/1 draws of `p`'s kind and shape with P(1) = p elementwise. In a sharded step of
/// data-parallel training ([`crate::dist`]) with one row of `p` per example, the draws are
/// this rank's rows of those a single process makes for the whole batch.
pub fn sample(p: &Tensor) -> Tensor {
    let shard = crate::dist::shard_for(&p.size());
    let cpu_kind = matches!(p.kind(), Kind::Float | Kind::Double);
    match shard {
        _ if p.device() == Device::Cpu && cpu_kind => {
            let row = p.numel() as i64 / p.size()[0].max(1);
            cpu(p, shard.map_or(0, |s| (s.offset * row) as usize))
        }
        Some(s) => {
            let mut global = p.size();
            global[0] = s.global;
            let u = Tensor::rand(global.as_slice(), (p.kind(), p.device()));
            u.narrow(0, s.offset, s.len).lt_tensor(p).to_kind(p.kind())
        }
        None => p.rand_like().lt_tensor(p).to_kind(p.kind()),
    }
}

/// A stream of Bernoulli draws for fused passes ([`crate::host`]) that draw inside their
/// own loops: the generator and resolution of [`sample`], seeded from libtorch's global CPU
/// generator (so `tch::manual_seed` fixes it too).
pub struct Stream(Lanes);

impl Stream {
    /// A new stream, seeded from libtorch's generator.
    pub fn seeded() -> Self {
        let (a, b) = seed_words();
        Stream(Lanes::new(a, b))
    }

    /// A stream for a pass over `rows` rows of `row_len` draws each, one [`Stream::fill_f32`]
    /// per row: in a sharded step ([`crate::dist`]) with one row per example, it starts where
    /// this rank's first row starts in the stream of the whole batch.
    pub fn seeded_rows(rows: i64, row_len: usize) -> Self {
        let mut s = Self::seeded();
        if let Some(shard) = crate::dist::shard_for(&[rows]) {
            for _ in 0..shard.offset as usize * row_len.div_ceil(BLOCK) {
                s.0.next();
            }
        }
        s
    }

    /// x_i = 1 with probability p_i, else 0; `x` and `p` have the same length.
    pub fn fill_f32(&mut self, p: &[f32], x: &mut [f32]) {
        assert_eq!(
            p.len(),
            x.len(),
            "Bernoulli draws: p and x differ in length"
        );
        fill_f32(p, x, &mut self.0);
    }
}

/// A xoshiro256++ state from two seed words through splitmix64 (never all zero).
fn seed_state(a: u64, b: u64) -> [u64; 4] {
    let mut z = a ^ b.rotate_left(32);
    let mut next = || {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^ (x >> 31)
    };
    [next(), next(), next() ^ b, next()]
}

/// Eight xoshiro256++ generators advanced together, lane k seeded apart from the others:
/// the state is laid out lane-minor so that the compiler keeps it in vector registers and
/// makes eight draws for the cost of about one.
struct Lanes([[u64; LANES]; 4]);

const LANES: usize = 8;

impl Lanes {
    fn new(a: u64, b: u64) -> Self {
        let lanes: [[u64; 4]; LANES] = std::array::from_fn(|k| {
            seed_state(a ^ (k as u64).wrapping_mul(0xd1b5_4a32_d192_ed03), b)
        });
        Lanes(std::array::from_fn(|i| lanes.map(|lane| lane[i])))
    }

    #[inline(always)]
    fn next(&mut self) -> [u64; LANES] {
        let [s0, s1, s2, s3] = &mut self.0;
        let mut out = [0u64; LANES];
        for k in 0..LANES {
            out[k] = s0[k]
                .wrapping_add(s3[k])
                .rotate_left(23)
                .wrapping_add(s0[k]);
            let t = s1[k] << 17;
            s2[k] ^= s0[k];
            s3[k] ^= s1[k];
            s1[k] ^= s2[k];
            s0[k] ^= s3[k];
            s2[k] ^= t;
            s3[k] = s3[k].rotate_left(45);
        }
        out
    }
}

/// Two seed words drawn from libtorch's global CPU generator.
fn seed_words() -> (u64, u64) {
    let seed = Tensor::randint_low(0, i64::MAX, [2], (Kind::Int64, Device::Cpu));
    let s = Vec::<i64>::try_from(&seed).expect("two int64 seeds");
    (s[0] as u64, s[1] as u64)
}

/// One pass over `p`'s memory into a new tensor's memory ([`crate::host::pass`]): host
/// copies in and out cost more than the draws at the sizes of an AIS step.
/// The draws are elements `skip..` of those for a longer `p` (a shard's rows of a batch).
fn cpu(p: &Tensor, skip: usize) -> Tensor {
    let (a, b) = seed_words();
    let mut rng = Lanes::new(a, b);
    let per_step = if p.kind() == Kind::Float {
        BLOCK
    } else {
        LANES
    };
    for _ in 0..skip / per_step {
        rng.next();
    }
    // A misaligned start: draw for `pad` leading zeros too, then drop them.
    let pad = (skip % per_step) as i64;
    let padded = match pad {
        0 => p.shallow_clone(),
        _ => Tensor::cat(
            &[p.new_zeros([pad], (p.kind(), Device::Cpu)), p.reshape([-1])],
            0,
        ),
    };
    let shape = padded.size();
    let drawn = match p.kind() {
        Kind::Float => crate::host::pass::<f32, 1, 1, _>([&padded], [&shape], |[p], [x]| {
            fill_f32(p, x, &mut rng)
        }),
        _ => crate::host::pass::<f64, 1, 1, _>([&padded], [&shape], |[p], [x]| {
            fill_f64(p, x, &mut rng)
        }),
    };
    let ([x], ()) = drawn.expect("a CPU tensor of the pass's kind");
    match pad {
        0 => x,
        _ => x.narrow(0, pad, p.numel() as i64).view(p.size().as_slice()),
    }
}

const F32_UNIT: f32 = 1.0 / (1u32 << 24) as f32;
const F64_UNIT: f64 = 1.0 / (1u64 << 53) as f64;

/// Sixteen 24-bit uniforms per step of the lanes: with r_l lane l's draw, element j < 8 of
/// a block of 16 takes bits 40–63 of r_{lane(j)} and element 8 + j bits 16–39, where
/// lane(j) = 4·(j mod 2) + ⌊j/2⌋ (the order in which two AVX2 registers of four lanes
/// interleave). Explicit AVX2 code where the CPU has it, the same draws elsewhere.
fn fill_f32(p: &[f32], x: &mut [f32], rng: &mut Lanes) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[allow(unsafe_code)]
        // SAFETY: the CPU supports AVX2, the one feature `avx2::fill_f32` is compiled for.
        return unsafe { avx2::fill_f32(p, x, rng) };
    }
    fill_f32_portable(p, x, rng)
}

/// [`fill_f32`] without vector intrinsics (the same draws).
fn fill_f32_portable(p: &[f32], x: &mut [f32], rng: &mut Lanes) {
    for (p, x) in p.chunks(BLOCK).zip(x.chunks_mut(BLOCK)) {
        let u = uniforms(rng.next());
        for ((xi, pi), ui) in x.iter_mut().zip(p).zip(u) {
            *xi = f32::from(u8::from(ui < *pi));
        }
    }
}

/// Elements per step of the lanes in `f32`: two 24-bit uniforms per 64-bit draw.
const BLOCK: usize = 2 * LANES;

/// The [`BLOCK`] uniforms of one step of the lanes, in the order of [`fill_f32`].
fn uniforms(r: [u64; LANES]) -> [f32; BLOCK] {
    let mut u = [0f32; BLOCK];
    for j in 0..LANES {
        let lane = 4 * (j % 2) + j / 2;
        // 24-bit integers fit an i32 exactly (a native conversion, unlike u64 → f32).
        u[j] = (r[lane] >> 40) as i32 as f32 * F32_UNIT;
        u[LANES + j] = ((r[lane] >> 16) & 0xff_ffff) as i32 as f32 * F32_UNIT;
    }
    u
}

/// The lanes as two AVX2 registers per state word (lanes 0–3, 4–7).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Lanes, BLOCK, F32_UNIT};
    use std::arch::x86_64::*;

    type State = [[__m256i; 2]; 4];

    #[target_feature(enable = "avx2")]
    pub(super) fn fill_f32(p: &[f32], x: &mut [f32], rng: &mut Lanes) {
        let mut s = load(rng);
        let (pc, xc) = (p.chunks_exact(BLOCK), x.chunks_exact_mut(BLOCK));
        let (pr, n) = (pc.remainder(), p.len() / BLOCK * BLOCK);
        for (p, x) in pc.zip(xc) {
            let u = uniforms(next(&mut s));
            for (h, u) in u.into_iter().enumerate() {
                #[allow(unsafe_code)]
                // SAFETY: `p` and `x` are blocks of 16; each access covers 8 at offset 8h.
                unsafe {
                    let pv = _mm256_loadu_ps(p.as_ptr().add(8 * h));
                    let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(u, pv);
                    let xv = _mm256_and_ps(lt, _mm256_set1_ps(1.0));
                    _mm256_storeu_ps(x.as_mut_ptr().add(8 * h), xv);
                }
            }
        }
        if !pr.is_empty() {
            let r = next(&mut s);
            let mut u = [0f32; BLOCK];
            for (h, v) in uniforms(r).into_iter().enumerate() {
                #[allow(unsafe_code)]
                // SAFETY: `u` holds 16 floats; the store covers 8 at offset 8h.
                unsafe {
                    _mm256_storeu_ps(u.as_mut_ptr().add(8 * h), v)
                };
            }
            for ((xi, pi), ui) in x[n..].iter_mut().zip(pr).zip(u) {
                *xi = f32::from(u8::from(ui < *pi));
            }
        }
        store(&s, rng);
    }

    #[target_feature(enable = "avx2")]
    fn load(rng: &Lanes) -> State {
        let mut s = [[_mm256_setzero_si256(); 2]; 4];
        for (v, w) in s.iter_mut().zip(&rng.0) {
            let q = w.map(|x| x as i64);
            v[0] = _mm256_set_epi64x(q[3], q[2], q[1], q[0]);
            v[1] = _mm256_set_epi64x(q[7], q[6], q[5], q[4]);
        }
        s
    }

    #[target_feature(enable = "avx2")]
    fn store(s: &State, rng: &mut Lanes) {
        for (w, v) in rng.0.iter_mut().zip(s) {
            for h in 0..2 {
                w[4 * h] = _mm256_extract_epi64::<0>(v[h]) as u64;
                w[4 * h + 1] = _mm256_extract_epi64::<1>(v[h]) as u64;
                w[4 * h + 2] = _mm256_extract_epi64::<2>(v[h]) as u64;
                w[4 * h + 3] = _mm256_extract_epi64::<3>(v[h]) as u64;
            }
        }
    }

    #[target_feature(enable = "avx2")]
    fn rotl<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi64::<L>(x), _mm256_srli_epi64::<R>(x))
    }

    /// One xoshiro256++ step of all eight lanes.
    #[target_feature(enable = "avx2")]
    fn next(s: &mut State) -> [__m256i; 2] {
        let mut out = [_mm256_setzero_si256(); 2];
        for h in 0..2 {
            let [s0, s1, s2, s3] = [s[0][h], s[1][h], s[2][h], s[3][h]];
            out[h] = _mm256_add_epi64(rotl::<23, 41>(_mm256_add_epi64(s0, s3)), s0);
            let t = _mm256_slli_epi64::<17>(s1);
            let s2 = _mm256_xor_si256(s2, s0);
            let s3 = _mm256_xor_si256(s3, s1);
            let s1 = _mm256_xor_si256(s1, s2);
            let s0 = _mm256_xor_si256(s0, s3);
            let s2 = _mm256_xor_si256(s2, t);
            let s3 = rotl::<45, 19>(s3);
            [s[0][h], s[1][h], s[2][h], s[3][h]] = [s0, s1, s2, s3];
        }
        out
    }

    /// Elements 0–7 and 8–15 of a block (`super::uniforms`' order) from the two registers.
    #[target_feature(enable = "avx2")]
    fn uniforms([a, b]: [__m256i; 2]) -> [__m256; 2] {
        let mask = _mm256_set1_epi64x(0xff_ffff);
        let hi = _mm256_or_si256(
            _mm256_srli_epi64::<40>(a),
            _mm256_slli_epi64::<32>(_mm256_srli_epi64::<40>(b)),
        );
        let lo = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi64::<16>(a), mask),
            _mm256_slli_epi64::<32>(_mm256_and_si256(_mm256_srli_epi64::<16>(b), mask)),
        );
        let unit = _mm256_set1_ps(F32_UNIT);
        [
            _mm256_mul_ps(_mm256_cvtepi32_ps(hi), unit),
            _mm256_mul_ps(_mm256_cvtepi32_ps(lo), unit),
        ]
    }
}

/// Eight 53-bit uniforms per step of the lanes.
fn fill_f64(p: &[f64], x: &mut [f64], rng: &mut Lanes) {
    for (p, x) in p.chunks(LANES).zip(x.chunks_mut(LANES)) {
        let r = rng.next();
        for ((xi, pi), ri) in x.iter_mut().zip(p).zip(r) {
            *xi = f64::from(u8::from(((ri >> 11) as f64 * F64_UNIT) < *pi));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_draws_its_rows_of_the_whole_batch() {
        let _rng = crate::rng_guard::seeded(4);
        for kind in [Kind::Float, Kind::Double] {
            // 3 columns: shard offsets 15 and 30 elements, neither a multiple of 8 or 16.
            let p = Tensor::rand([20, 3], (kind, Device::Cpu));
            tch::manual_seed(9);
            let whole = sample(&p);
            for (rank, world) in [(0, 2), (1, 2), (1, 4), (3, 4)] {
                let s = crate::dist::Shard::of(20, rank, world);
                tch::manual_seed(9);
                let part = crate::dist::with_shard(s, || sample(&p.narrow(0, s.offset, s.len)));
                assert!(
                    part.equal(&whole.narrow(0, s.offset, s.len)),
                    "{kind:?} rank {rank} of {world}"
                );
            }
        }
    }

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
            // Neighbouring elements come from neighbouring lanes: their correlation must be 0.
            let a = x.narrow(1, 400, 100).to_kind(Kind::Double);
            let b = x.narrow(1, 401, 100).to_kind(Kind::Double);
            let cov =
                ((&a - a.mean(Kind::Double)) * (&b - b.mean(Kind::Double))).mean(Kind::Double);
            let corr = f64::try_from(&cov).unwrap() / 0.25;
            assert!(corr.abs() < 0.01, "{kind:?}: neighbour correlation {corr}");
        }
    }

    /// The AVX2 code makes the portable code's draws, over full blocks and a tail, and
    /// leaves the lanes in the same state.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_and_portable_draws_agree() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let p: Vec<f32> = (0..37).map(|i| i as f32 / 36.0).collect();
        let (mut lv, mut ls) = (Lanes::new(7, 9), Lanes::new(7, 9));
        for _ in 0..50 {
            let (mut xv, mut xs) = (vec![2f32; 37], vec![3f32; 37]);
            #[allow(unsafe_code)]
            // SAFETY: AVX2 is present (checked above).
            unsafe {
                avx2::fill_f32(&p, &mut xv, &mut lv)
            };
            fill_f32_portable(&p, &mut xs, &mut ls);
            assert_eq!(xv, xs);
            assert_eq!(lv.0, ls.0);
        }
        // The uniforms themselves: distinct values in [0, 1) from distinct bits.
        let u = uniforms(Lanes::new(1, 2).next());
        assert!(u.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(u.windows(2).all(|w| w[0] != w[1]));
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
