//! Sample-quality measures on feature (or pixel) vectors (*Deep Learning* §20.14): precision
//! and recall of generated samples, label entropy and class coverage, and the
//! nearest-neighbour check for copies of training examples.
//!
//! - [`precision_recall`]: Kynkäänniemi et al. (2019). Each set's manifold is the union of
//!   balls around its points with radius the distance to the point's k-th nearest neighbour
//!   in its own set; precision is the fraction of generated points inside the real manifold,
//!   recall the fraction of real points inside the generated one. Mode dropping lowers recall,
//!   bad samples lower precision.
//! - [`label_stats`]: a classifier's predictions on samples: the mean per-sample entropy
//!   (low: confident, recognisable samples), the entropy of the marginal label distribution
//!   (high: all classes produced), the classes that get at least 1% of the samples, and the
//!   histogram: a dropped mode is a missing class.
//! - [`nearest`] and [`copy_check`]: each sample's nearest training example, and the samples
//!   that are closer to the training set than almost all test examples are (near-copies).
//!
//! Distances are computed in chunks of query rows (`‖q‖² + ‖r‖² − 2 q·r` with one matmul per
//! chunk), so memory stays at `chunk × reference` floats.
//!
//! ```
//! use gm_eval::quality::precision_recall;
//! use tch::{Device, Kind, Tensor};
//! tch::manual_seed(0);
//! let real = Tensor::randn([300, 4], (Kind::Float, Device::Cpu));
//! let pr = precision_recall(&real, &real, 3, 128)?;
//! assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

fn flat(x: &Tensor, what: &str) -> Result<Tensor> {
    if x.dim() < 2 || x.size()[0] < 1 {
        return Err(Error::Msg(format!(
            "{what}: expected a non-empty [N, ...] tensor, got shape {:?}",
            x.size()
        )));
    }
    Ok(x.reshape([x.size()[0], -1]).to_kind(Kind::Float))
}

/// Squared distances `[q, r]` between the rows of `q` and of `r` (clamped at 0).
fn sq_dist(q: &Tensor, r: &Tensor, r_sq: &Tensor) -> Tensor {
    let q_sq = q.square().sum_dim_intlist(1, true, Kind::Float);
    (q_sq + r_sq.unsqueeze(0) - q.matmul(&r.tr()) * 2.0).clamp_min(0.0)
}

/// Calls `f(start, squared distances of rows start.. of q to every row of r)` chunk by chunk.
fn for_chunks(q: &Tensor, r: &Tensor, chunk: i64, mut f: impl FnMut(i64, Tensor)) {
    let _g = tch::no_grad_guard();
    let r_sq = r.square().sum_dim_intlist(1, false, Kind::Float);
    let n = q.size()[0];
    let chunk = chunk.max(1);
    let mut s = 0;
    while s < n {
        let len = chunk.min(n - s);
        f(s, sq_dist(&q.narrow(0, s, len), r, &r_sq));
        s += len;
    }
}

/// Distance of every row of `x` to its k-th nearest neighbour among the other rows.
pub fn knn_radii(x: &Tensor, k: i64, chunk: i64) -> Result<Tensor> {
    let x = flat(x, "k-NN radii")?;
    let n = x.size()[0];
    if k < 1 || k >= n {
        return Err(Error::config(
            "k",
            k,
            format!("1 ≤ k < the number of points ({n})"),
        ));
    }
    let mut out = Vec::new();
    // The point itself is at distance 0: the (k+1)-th smallest is the k-th neighbour.
    for_chunks(&x, &x, chunk, |_, d| {
        out.push(d.topk(k + 1, 1, false, true).0.select(1, k))
    });
    Ok(Tensor::cat(&out, 0).sqrt())
}

/// Fraction of the rows of `q` inside at least one ball (centre a row of `centres`, radius
/// the matching entry of `radii`).
fn coverage(q: &Tensor, centres: &Tensor, radii: &Tensor, chunk: i64) -> f64 {
    let r2 = radii.square().unsqueeze(0);
    let mut inside = 0i64;
    for_chunks(q, centres, chunk, |_, d| {
        inside += d
            .le_tensor(&r2)
            .any_dim(1, false)
            .sum(Kind::Int64)
            .int64_value(&[]);
    });
    inside as f64 / q.size()[0] as f64
}

/// Precision and recall of generated samples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PrecisionRecall {
    /// Fraction of generated points inside the real manifold.
    pub precision: f64,
    /// Fraction of real points inside the generated manifold.
    pub recall: f64,
    /// Neighbour rank of the radii.
    pub k: i64,
    /// Real points.
    pub n_real: i64,
    /// Generated points.
    pub n_fake: i64,
}

/// Improved precision and recall (Kynkäänniemi et al. 2019) of `fake` against `real`
/// (`[N, D]` features), with k-th-neighbour radii (k = 3 is the paper's choice).
pub fn precision_recall(
    real: &Tensor,
    fake: &Tensor,
    k: i64,
    chunk: i64,
) -> Result<PrecisionRecall> {
    let real = flat(real, "precision/recall (real)")?;
    let fake = flat(fake, "precision/recall (generated)")?.to_device(real.device());
    if real.size()[1] != fake.size()[1] {
        return Err(Error::Msg(format!(
            "precision/recall: feature dimensions differ ({} vs {})",
            real.size()[1],
            fake.size()[1]
        )));
    }
    let rr = knn_radii(&real, k, chunk)?;
    let rf = knn_radii(&fake, k, chunk)?;
    Ok(PrecisionRecall {
        precision: coverage(&fake, &real, &rr, chunk),
        recall: coverage(&real, &fake, &rf, chunk),
        k,
        n_real: real.size()[0],
        n_fake: fake.size()[0],
    })
}

/// What a classifier says about a set of samples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabelStats {
    /// Mean over samples of the entropy of p(y | x), nats (0: fully confident).
    pub mean_entropy: f64,
    /// Entropy of the marginal p(y) = mean of p(y | x), nats (ln C: every class equally).
    pub marginal_entropy: f64,
    /// exp(marginal entropy − mean entropy): the Inception-score form of the two.
    pub score: f64,
    /// Classes predicted (arg max) for at least `min_share` of the samples.
    pub covered: i64,
    /// The share a class needs to count as covered.
    pub min_share: f64,
    /// Number of samples per predicted class.
    pub histogram: Vec<i64>,
}

/// Label statistics of class probabilities `probs` `[N, C]`; a class is covered when at
/// least `min_share` of the samples are predicted as it (1% is the usual choice).
pub fn label_stats(probs: &Tensor, min_share: f64) -> Result<LabelStats> {
    if probs.dim() != 2 || probs.size()[0] < 1 {
        return Err(Error::Msg(format!(
            "label statistics: expected probabilities [N, C], got {:?}",
            probs.size()
        )));
    }
    let _g = tch::no_grad_guard();
    let (n, c) = (probs.size()[0], probs.size()[1]);
    let p = probs.to_kind(Kind::Double);
    let ent =
        |p: &Tensor| -(p * p.clamp_min(1e-300).log()).sum_dim_intlist(-1, false, Kind::Double);
    let mean_entropy = ent(&p).mean(Kind::Double).double_value(&[]);
    let marginal_entropy = ent(&p.mean_dim(0, false, Kind::Double)).double_value(&[]);
    let hist = p
        .argmax(1, false)
        .bincount::<Tensor>(None, c)
        .to_kind(Kind::Int64);
    let histogram = Vec::<i64>::try_from(&hist)?;
    let covered = histogram
        .iter()
        .filter(|&&h| h as f64 >= min_share * n as f64 && h > 0)
        .count() as i64;
    Ok(LabelStats {
        mean_entropy,
        marginal_entropy,
        score: (marginal_entropy - mean_entropy).exp(),
        covered,
        min_share,
        histogram,
    })
}

/// Every query row's nearest reference row: `(distances [Q], indices [Q])` (Euclidean).
pub fn nearest(query: &Tensor, reference: &Tensor, chunk: i64) -> Result<(Tensor, Tensor)> {
    let q = flat(query, "nearest neighbours (query)")?;
    let r = flat(reference, "nearest neighbours (reference)")?.to_device(q.device());
    if q.size()[1] != r.size()[1] {
        return Err(Error::Msg(format!(
            "nearest neighbours: dimensions differ ({} vs {})",
            q.size()[1],
            r.size()[1]
        )));
    }
    let (mut ds, mut is) = (Vec::new(), Vec::new());
    for_chunks(&q, &r, chunk, |_, d| {
        let (v, i) = d.min_dim(1, false);
        ds.push(v);
        is.push(i);
    });
    Ok((Tensor::cat(&ds, 0).sqrt(), Tensor::cat(&is, 0)))
}

/// Summary of nearest-neighbour distances.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DistanceStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// 1st percentile.
    pub p01: f64,
    /// Smallest.
    pub min: f64,
}

impl DistanceStats {
    /// The statistics of `d` `[N]`.
    pub fn of(d: &Tensor) -> Result<DistanceStats> {
        let d = d.to_kind(Kind::Double).to_device(tch::Device::Cpu);
        let q = |p: f64| {
            d.quantile_scalar(p, None, false, "linear")
                .double_value(&[])
        };
        if d.numel() == 0 {
            return Err(Error::Msg("distance statistics of no distances".into()));
        }
        Ok(DistanceStats {
            mean: d.mean(Kind::Double).double_value(&[]),
            median: q(0.5),
            p01: q(0.01),
            min: d.min().double_value(&[]),
        })
    }
}

/// The nearest-neighbour copy check of a sample set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CopyCheck {
    /// Sample → training NN distances (pixel space).
    pub samples: DistanceStats,
    /// Test → training NN distances (pixel space): the floor.
    pub test: DistanceStats,
    /// samples.median / test.median: well below 1 means samples sit closer to training
    /// examples than unseen data does.
    pub median_ratio: f64,
    /// Distance below which a sample is flagged: the 1st percentile of test → train.
    pub threshold: f64,
    /// Indices of the flagged samples (near-copies).
    pub flagged: Vec<i64>,
    /// Number of samples.
    pub n: i64,
}

impl CopyCheck {
    /// Fraction of samples flagged.
    pub fn flagged_fraction(&self) -> f64 {
        self.flagged.len() as f64 / self.n as f64
    }
}

/// Flags samples whose nearest-training-example distance `sample_nn` is below the 1st
/// percentile of the test examples' distances `test_nn` (both from [`nearest`], pixel space).
pub fn copy_check(sample_nn: &Tensor, test_nn: &Tensor) -> Result<CopyCheck> {
    let samples = DistanceStats::of(sample_nn)?;
    let test = DistanceStats::of(test_nn)?;
    let threshold = test.p01;
    let flagged = Vec::<i64>::try_from(
        &sample_nn
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .lt(threshold)
            .nonzero()
            .view([-1]),
    )?;
    Ok(CopyCheck {
        median_ratio: if test.median > 0.0 {
            samples.median / test.median
        } else {
            f64::NAN
        },
        samples,
        test,
        threshold,
        flagged,
        n: sample_nn.size()[0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const F32: (Kind, Device) = (Kind::Float, Device::Cpu);

    /// `n` points around each of the given centres (std 0.1) in 2-D.
    fn clusters(centres: &[(f64, f64)], n: i64) -> Tensor {
        let parts: Vec<Tensor> = centres
            .iter()
            .map(|&(a, b)| {
                Tensor::randn([n, 2], F32) * 0.1 + Tensor::from_slice(&[a as f32, b as f32])
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    #[test]
    fn radii_match_brute_force() {
        let _rng = gm_core::rng_guard::lock();
        // Points on a line at 0, 1, 3, 6: 1st / 2nd neighbours by hand.
        let x = Tensor::from_slice(&[0.0f32, 1.0, 3.0, 6.0]).view([4, 1]);
        let r1 = Vec::<f32>::try_from(&knn_radii(&x, 1, 3).unwrap()).unwrap();
        assert_eq!(r1, [1.0, 1.0, 2.0, 3.0]);
        let r2 = Vec::<f32>::try_from(&knn_radii(&x, 2, 1).unwrap()).unwrap();
        assert_eq!(r2, [3.0, 2.0, 3.0, 5.0]);
        assert!(knn_radii(&x, 4, 2)
            .unwrap_err()
            .to_string()
            .contains("k = 4"));
    }

    #[test]
    fn a_set_against_itself_is_one_one() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(1);
        let x = Tensor::randn([400, 5], F32);
        let pr = precision_recall(&x, &x, 3, 64).unwrap();
        assert_eq!((pr.precision, pr.recall), (1.0, 1.0));
    }

    #[test]
    fn far_apart_clusters_are_zero_zero() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(2);
        let real = clusters(&[(0.0, 0.0), (0.0, 5.0)], 100);
        let fake = clusters(&[(50.0, 0.0), (50.0, 5.0)], 100);
        let pr = precision_recall(&real, &fake, 3, 37).unwrap();
        assert_eq!((pr.precision, pr.recall), (0.0, 0.0));
    }

    #[test]
    fn mode_dropping_keeps_precision_and_loses_recall() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(3);
        let modes = [(0.0, 0.0), (5.0, 0.0), (0.0, 5.0), (5.0, 5.0)];
        let real = clusters(&modes, 250);
        let fake = clusters(&modes[..2], 500); // two of four modes
        let pr = precision_recall(&real, &fake, 3, 100).unwrap();
        assert!(pr.precision > 0.95, "{pr:?}");
        assert!(pr.recall > 0.4 && pr.recall < 0.55, "{pr:?}");
        // A fresh draw of all four modes: both high.
        let all = clusters(&modes, 250);
        let pr = precision_recall(&real, &all, 3, 100).unwrap();
        assert!(pr.precision > 0.9 && pr.recall > 0.9, "{pr:?}");
    }

    #[test]
    fn label_stats_of_constructed_predictions() {
        let _rng = gm_core::rng_guard::lock();
        // 100 one-hot predictions: 50 class 0, 30 class 1, 20 class 2, none of classes 3, 4.
        let mut p = vec![0.0f64; 100 * 5];
        for i in 0..100 {
            let c = if i < 50 {
                0
            } else if i < 80 {
                1
            } else {
                2
            };
            p[i * 5 + c] = 1.0;
        }
        let probs = Tensor::from_slice(&p).view([100, 5]);
        let s = label_stats(&probs, 0.01).unwrap();
        assert_eq!(s.histogram, [50, 30, 20, 0, 0]);
        assert_eq!(s.covered, 3);
        approx::assert_abs_diff_eq!(s.mean_entropy, 0.0, epsilon = 1e-12);
        let h = -(0.5f64 * 0.5f64.ln() + 0.3 * 0.3f64.ln() + 0.2 * 0.2f64.ln());
        approx::assert_abs_diff_eq!(s.marginal_entropy, h, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(s.score, h.exp(), epsilon = 1e-10);

        // Uniform predictions: entropy ln 5 per sample, ln 5 marginal, score 1; the arg max
        // ties go to class 0, so one class is covered.
        let u = Tensor::full([10, 5], 0.2, (Kind::Double, Device::Cpu));
        let s = label_stats(&u, 0.01).unwrap();
        approx::assert_abs_diff_eq!(s.mean_entropy, 5f64.ln(), epsilon = 1e-12);
        approx::assert_abs_diff_eq!(s.marginal_entropy, 5f64.ln(), epsilon = 1e-12);
        approx::assert_abs_diff_eq!(s.score, 1.0, epsilon = 1e-12);
        // A class with 1 sample in 200 is below a 1% share.
        let mut q = vec![0.0f64; 200 * 2];
        for i in 0..200 {
            q[i * 2 + usize::from(i == 0)] = 1.0;
        }
        let s = label_stats(&Tensor::from_slice(&q).view([200, 2]), 0.01).unwrap();
        assert_eq!((s.histogram.clone(), s.covered), (vec![199, 1], 1));
    }

    #[test]
    fn nearest_matches_brute_force() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(4);
        let q = Tensor::randn([37, 6], F32);
        let r = Tensor::randn([53, 6], F32);
        let (d, i) = nearest(&q, &r, 8).unwrap();
        let full =
            (q.unsqueeze(1) - r.unsqueeze(0))
                .square()
                .sum_dim_intlist(2, false, Kind::Float);
        let (d2, i2) = full.min_dim(1, false);
        assert!((d - d2.sqrt()).abs().max().double_value(&[]) < 1e-4);
        assert!(i.equal(&i2));
    }

    #[test]
    fn copy_check_flags_inserted_copies_and_about_one_percent_of_fresh_samples() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(5);
        // "Images" of 64 pixels: training, test and samples all drawn independently ...
        let train = Tensor::rand([500, 1, 8, 8], F32);
        let test = Tensor::rand([1000, 1, 8, 8], F32);
        let samples = Tensor::rand([1000, 1, 8, 8], F32);
        // ... except ten samples, exact copies of training images.
        let copies: Vec<(i64, i64)> = (0..10).map(|i| (i * 97 + 3, i * 49 + 1)).collect();
        for &(s, t) in &copies {
            samples.get(s).copy_(&train.get(t));
        }
        let (ds, is) = nearest(&samples, &train, 64).unwrap();
        let (dt, _) = nearest(&test, &train, 64).unwrap();
        let c = copy_check(&ds, &dt).unwrap();
        for &(s, t) in &copies {
            assert!(c.flagged.contains(&s), "copy {s} not flagged: {c:?}");
            assert_eq!(is.int64_value(&[s]), t);
        }
        // The threshold is the 1st percentile of fresh data, so fresh samples are flagged
        // about 1% of the time (binomial(990, 0.01): mean 9.9, sd 3.1).
        let fresh = c.flagged.len() - copies.len();
        assert!(fresh <= 22, "{fresh} fresh samples flagged");
        assert!(c.threshold > 0.5, "{c:?}");
        assert!((c.median_ratio - 1.0).abs() < 0.05, "{c:?}");
        assert!(c.samples.min < 1e-2, "{c:?}"); // 0 up to rounding of ‖q‖² + ‖r‖² − 2q·r
        assert_eq!(c.n, 1000);
    }
}
