//! The seeded Rust random streams of the data module.
//!
//! Everything random in [`crate::data`] (shuffling, stochastic and dynamic binarization,
//! synthetic sets) draws from a `ChaCha8Rng` whose 256-bit key is built from a domain tag
//! and up to three 64-bit words (seed, epoch, split, ...). The streams are therefore pure
//! functions of their inputs, independent of each other, and independent of libtorch's
//! global RNG, which the trainer seeds and uses for its own purposes. The algorithms that
//! turn the stream into values (bounded integers, uniforms, Gaussians, permutations) are
//! written out here so that they cannot change under a `rand` upgrade.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Keeps the streams of different uses apart even when their other inputs coincide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub(crate) enum Domain {
    /// Batch order: `(seed, epoch)`.
    Shuffle = 0x5348_5546_464c_4531,
    /// Binarizing a split once: `(seed, split)`.
    BinarizeOnce = 0x4249_4e4f_4e43_4532,
    /// Dynamic binarization of the training split: `(seed, epoch)`.
    BinarizeEpoch = 0x4249_4e45_504f_4333,
    /// Synthetic datasets: `(dataset tag, seed, split)`.
    Synthetic = 0x5359_4e54_4845_5434,
    /// Which training labels `[data] labelled = N` keeps: `(seed, class)`.
    Labelled = 0x4c41_4245_4c4c_4535,
}

/// Split tags used in stream keys.
pub(crate) const SPLIT_TRAIN: u64 = 0;
pub(crate) const SPLIT_VALID: u64 = 1;
pub(crate) const SPLIT_TEST: u64 = 2;

/// The stream for `(domain, a, b, c)`: the four words are the ChaCha key, little-endian.
pub(crate) fn stream(domain: Domain, a: u64, b: u64, c: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&(domain as u64).to_le_bytes());
    key[8..16].copy_from_slice(&a.to_le_bytes());
    key[16..24].copy_from_slice(&b.to_le_bytes());
    key[24..32].copy_from_slice(&c.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// Uniform integer in `[0, n)` (Lemire's multiply-and-reject method, unbiased); `0` when `n == 0`.
pub(crate) fn below(rng: &mut impl RngCore, n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Uniform `f64` in `[0, 1)` with 53 random bits.
pub(crate) fn uniform(rng: &mut impl RngCore) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal (Box–Muller; one of the pair is used).
pub(crate) fn normal(rng: &mut impl RngCore) -> f64 {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - uniform(rng);
    let u2 = uniform(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A uniformly random permutation of `0..n` (Fisher–Yates, from the last position down).
pub(crate) fn permutation(n: usize, rng: &mut impl RngCore) -> Vec<i64> {
    let mut p: Vec<i64> = (0..n as i64).collect();
    for i in (1..n).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pure_and_distinct() {
        let a: Vec<u64> = {
            let mut r = stream(Domain::Shuffle, 1, 2, 3);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = stream(Domain::Shuffle, 1, 2, 3);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = stream(Domain::BinarizeOnce, 1, 2, 3);
            (0..4).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut r = stream(Domain::Shuffle, 0, 0, 0);
        let mut counts = [0usize; 7];
        for _ in 0..70_000 {
            counts[below(&mut r, 7) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
        assert_eq!(below(&mut r, 0), 0);
        assert_eq!(below(&mut r, 1), 0);
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = stream(Domain::Synthetic, 0, 0, 0);
        let xs: Vec<f64> = (0..100_000).map(|_| normal(&mut r)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut r = stream(Domain::Shuffle, 5, 0, 0);
        let mut p = permutation(1000, &mut r);
        assert_ne!(p, (0..1000).collect::<Vec<i64>>());
        p.sort_unstable();
        assert_eq!(p, (0..1000).collect::<Vec<i64>>());
        assert!(permutation(0, &mut r).is_empty());
    }
}
