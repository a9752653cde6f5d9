//! Synthetic datasets, generated from a seed: no download, exact answers for tests.
//!
//! - **bars and stripes** `n×n` (MacKay 2003; the usual toy of Boltzmann-machine papers):
//!   an image whose rows are all constant (a *stripe* pattern, one bit per row) or whose
//!   columns are all constant (a *bar* pattern, one bit per column). The all-0 and all-1
//!   images are both, so there are `2^(n+1) - 2` distinct patterns (30 for `n = 4`), listed by
//!   [`bars_and_stripes_patterns`]; every split samples them uniformly. Shape `[1, n, n]`,
//!   values 0/1. Labels: 0 for a stripe pattern (the all-0 and all-1 images included), 1 for
//!   a bar pattern.
//! - **eight-gaussians**: a mixture of 8 equally weighted isotropic Gaussians with means on
//!   the circle of radius 2 at angles `kπ/4` and standard deviation 0.02 — the ring of
//!   Metz et al. (2017, *Unrolled GANs*), the standard mode-collapse test. Labels: `k`.
//! - **two-moons**: scikit-learn's `make_moons` with noise 0.1 (outer moon `(cos t, sin t)`,
//!   inner moon `(1 - cos t, 0.5 - sin t)`, `t ~ U[0, π]`), shifted by `(-0.5, -0.25)` so it
//!   is centred near the origin; about `[-1.7, 1.7] × [-1, 1]`. Labels: which moon.
//! - **swiss-roll**: the `(x, z)` plane of scikit-learn's `make_swiss_roll` with noise 0.5
//!   (`t ~ U[1.5π, 4.5π]`, point `(t cos t, t sin t)` plus noise) divided by `4.5π`, so that
//!   it fits about `[-1, 1]²`. Unlabelled.
//!
//! The 2-D sets are real-valued vectors of shape `[2]`. All samples come from the seeded Rust
//! streams of the data module, one per (dataset, seed, split), never from libtorch's RNG.

use std::f64::consts::PI;

use tch::{Kind, Tensor};

use super::rng::{self, Domain};

/// The largest bars-and-stripes side gm generates (`2^17 - 2` patterns of 256 pixels).
pub const MAX_BARS_SIZE: i64 = 16;

/// The `2^(n+1) - 2` distinct bars-and-stripes patterns of side `n`, as `f32` 0/1 of shape
/// `[2^(n+1) - 2, 1, n, n]`: first the `2^n` stripe patterns (row `r` is bit `r` of the
/// pattern's index), then the `2^n - 2` bar patterns that are not also stripes (column `c`
/// is bit `c`).
///
/// # Panics
/// When `n` is outside `1..=16` ([`crate::data::validate`] rejects such a `bars_size`).
pub fn bars_and_stripes_patterns(n: i64) -> Tensor {
    assert!(
        (1..=MAX_BARS_SIZE).contains(&n),
        "bars-and-stripes size {n} outside 1..={MAX_BARS_SIZE}"
    );
    let n = n as usize;
    let side = 1usize << n;
    let count = 2 * side - 2;
    let mut v = Vec::with_capacity(count * n * n);
    for mask in 0..side {
        for r in 0..n {
            let bit = ((mask >> r) & 1) as f32;
            v.resize(v.len() + n, bit);
        }
    }
    for mask in 1..side - 1 {
        for _r in 0..n {
            v.extend((0..n).map(|c| ((mask >> c) & 1) as f32));
        }
    }
    Tensor::from_slice(&v).view([count as i64, 1, n as i64, n as i64])
}

/// `count` examples drawn uniformly from the patterns of side `n`, from stream `(seed, split)`,
/// with their labels (`i64`: 0 stripes, 1 bars).
pub(crate) fn bars_and_stripes_sample(
    n: i64,
    count: i64,
    seed: u64,
    split: u64,
) -> (Tensor, Tensor) {
    let patterns = bars_and_stripes_patterns(n);
    let p = patterns.size()[0] as u64;
    let mut r = rng::stream(Domain::Synthetic, TAG_BARS, seed, split);
    let idx: Vec<i64> = (0..count).map(|_| rng::below(&mut r, p) as i64).collect();
    let labels: Vec<i64> = idx.iter().map(|&i| i64::from(i >= 1 << n)).collect();
    (
        patterns.index_select(0, &Tensor::from_slice(&idx)),
        Tensor::from_slice(&labels),
    )
}

const TAG_BARS: u64 = 1;

/// The 2-D toy distributions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Toy {
    EightGaussians,
    TwoMoons,
    SwissRoll,
}

/// Radius of the eight-gaussians ring.
pub const EIGHT_GAUSSIANS_RADIUS: f64 = 2.0;
/// Standard deviation of each of the eight Gaussians.
pub const EIGHT_GAUSSIANS_STD: f64 = 0.02;
/// Noise standard deviation of two-moons.
pub const TWO_MOONS_NOISE: f64 = 0.1;
/// Noise standard deviation of swiss-roll, before the division by `4.5π`.
pub const SWISS_ROLL_NOISE: f64 = 0.5;

impl Toy {
    fn tag(self) -> u64 {
        match self {
            Toy::EightGaussians => 2,
            Toy::TwoMoons => 3,
            Toy::SwissRoll => 4,
        }
    }

    /// Number of classes of the labels, if labelled.
    pub(crate) fn classes(self) -> Option<i64> {
        match self {
            Toy::EightGaussians => Some(8),
            Toy::TwoMoons => Some(2),
            Toy::SwissRoll => None,
        }
    }

    /// `count` points (`f32 [count, 2]`) and their labels (`i64 [count]`, when labelled),
    /// from stream `(seed, split)`.
    pub(crate) fn sample(self, count: i64, seed: u64, split: u64) -> (Tensor, Option<Tensor>) {
        let mut r = rng::stream(Domain::Synthetic, self.tag(), seed, split);
        let count = count.max(0) as usize;
        let mut xy = Vec::with_capacity(2 * count);
        let mut labels = Vec::with_capacity(count);
        for _ in 0..count {
            let (x, y, label) = match self {
                Toy::EightGaussians => {
                    let k = rng::below(&mut r, 8);
                    let a = k as f64 * PI / 4.0;
                    let x = EIGHT_GAUSSIANS_RADIUS * a.cos()
                        + EIGHT_GAUSSIANS_STD * rng::normal(&mut r);
                    let y = EIGHT_GAUSSIANS_RADIUS * a.sin()
                        + EIGHT_GAUSSIANS_STD * rng::normal(&mut r);
                    (x, y, k as i64)
                }
                Toy::TwoMoons => {
                    let k = rng::below(&mut r, 2);
                    let t = PI * rng::uniform(&mut r);
                    let (x, y) = if k == 0 {
                        (t.cos(), t.sin())
                    } else {
                        (1.0 - t.cos(), 0.5 - t.sin())
                    };
                    let x = x - 0.5 + TWO_MOONS_NOISE * rng::normal(&mut r);
                    let y = y - 0.25 + TWO_MOONS_NOISE * rng::normal(&mut r);
                    (x, y, k as i64)
                }
                Toy::SwissRoll => {
                    let t = 1.5 * PI * (1.0 + 2.0 * rng::uniform(&mut r));
                    let s = 1.0 / (4.5 * PI);
                    let x = (t * t.cos() + SWISS_ROLL_NOISE * rng::normal(&mut r)) * s;
                    let y = (t * t.sin() + SWISS_ROLL_NOISE * rng::normal(&mut r)) * s;
                    (x, y, 0)
                }
            };
            xy.push(x as f32);
            xy.push(y as f32);
            labels.push(label);
        }
        let x = Tensor::from_slice(&xy).view([count as i64, 2]);
        let y = self
            .classes()
            .map(|_| Tensor::from_slice(&labels).to_kind(Kind::Int64));
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        let n = t.size()[0];
        (0..n)
            .map(|i| Vec::<f32>::try_from(&t.get(i).flatten(0, -1)).unwrap())
            .collect()
    }

    #[test]
    fn bars_and_stripes_has_30_distinct_patterns_for_n4() {
        let p = bars_and_stripes_patterns(4);
        assert_eq!(p.size(), [30, 1, 4, 4]);
        let rs = rows(&p);
        let mut sorted = rs.clone();
        sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
        sorted.dedup();
        assert_eq!(sorted.len(), 30, "patterns are not distinct");
        for r in &rs {
            assert!(r.iter().all(|&v| v == 0.0 || v == 1.0));
            let rows_const = (0..4).all(|i| (0..4).all(|j| r[i * 4 + j] == r[i * 4]));
            let cols_const = (0..4).all(|j| (0..4).all(|i| r[i * 4 + j] == r[j]));
            assert!(rows_const || cols_const, "{r:?}");
        }
        for n in 1..=6 {
            assert_eq!(bars_and_stripes_patterns(n).size()[0], (1 << (n + 1)) - 2);
        }
    }

    #[test]
    fn bars_and_stripes_samples_cover_the_patterns_uniformly() {
        let (s, y) = bars_and_stripes_sample(3, 14_000, 0, 0);
        assert_eq!(s.size(), [14_000, 1, 3, 3]);
        let patterns = rows(&bars_and_stripes_patterns(3));
        let labels: Vec<i64> = Vec::try_from(&y).unwrap();
        let mut counts = vec![0usize; patterns.len()];
        for (r, label) in rows(&s).into_iter().zip(labels) {
            let k = patterns
                .iter()
                .position(|p| *p == r)
                .expect("not a pattern");
            counts[k] += 1;
            // label 0: every row constant (a stripe pattern); 1: columns constant, rows not
            let rows_constant = (0..3).all(|i| (0..3).all(|j| r[3 * i + j] == r[3 * i]));
            assert_eq!(label, i64::from(!rows_constant), "label of {r:?}");
        }
        for c in &counts {
            assert!((850..1150).contains(c), "{counts:?}"); // 1000 expected each
        }
        assert!(s.equal(&bars_and_stripes_sample(3, 14_000, 0, 0).0));
        assert!(!s.equal(&bars_and_stripes_sample(3, 14_000, 0, 1).0));
    }

    #[test]
    fn toys_have_their_documented_geometry() {
        let (x, y) = Toy::EightGaussians.sample(4000, 0, 0);
        assert_eq!(x.size(), [4000, 2]);
        let radius = x.square().sum_dim_intlist(1, false, Kind::Float).sqrt();
        assert!((radius.mean(Kind::Float).double_value(&[]) - 2.0).abs() < 0.01);
        assert!(radius.std(true).double_value(&[]) < 0.03);
        let y = y.unwrap();
        assert_eq!(y.kind(), Kind::Int64);
        assert_eq!(y.min().int64_value(&[]), 0);
        assert_eq!(y.max().int64_value(&[]), 7);
        // every point is next to its label's mean
        let a = y.to_kind(Kind::Double) * (PI / 4.0);
        let mean = Tensor::stack(&[a.cos() * 2.0, a.sin() * 2.0], 1).to_kind(Kind::Float);
        assert!((x - mean).abs().max().double_value(&[]) < 0.15);

        let (x, y) = Toy::TwoMoons.sample(4000, 0, 0);
        assert_eq!(y.unwrap().size(), [4000]);
        let m = x.mean_dim(0, false, Kind::Float);
        assert!(m.abs().max().double_value(&[]) < 0.1, "{m}");

        let (x, y) = Toy::SwissRoll.sample(4000, 0, 0);
        assert!(y.is_none());
        assert!(x.abs().max().double_value(&[]) < 1.2);
        assert!(x.abs().max().double_value(&[]) > 0.8);

        let (a, _) = Toy::SwissRoll.sample(10, 1, 0);
        let (b, _) = Toy::SwissRoll.sample(10, 1, 0);
        let (c, _) = Toy::SwissRoll.sample(10, 2, 0);
        assert!(a.equal(&b) && !a.equal(&c));
    }
}
