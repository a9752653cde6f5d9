//! Moment shaping (§20.13, in the spirit of approximate Bayesian computation): samples of a
//! generator reweighted, or kept, so that chosen statistics match the data's.
//!
//! [`tilt`] finds the weights closest to uniform in relative entropy whose weighted
//! statistics equal the targets exactly: w_i ∝ exp(λ · s(x_i)), λ minimising the convex
//! log Σ_i exp(λ · s_i) − λ · target (Newton's method with backtracking). [`keep`] turns
//! weights into a subset by rejection (keep x_i with probability w_i / max w): the kept
//! samples follow the tilted distribution, so their statistics match in expectation, within
//! their standard errors.
//!
//! ```
//! use gm_diffusion::shaping::{keep, tilt};
//! use tch::{Kind, Tensor};
//! tch::manual_seed(0);
//! let x = Tensor::randn([100_000, 1], (Kind::Double, tch::Device::Cpu)); // N(0, 1)
//! let t = tilt(&x, &[0.5])?;                                              // ask for mean 0.5
//! assert!((t.lambda[0] - 0.5).abs() < 0.05); // N(0, 1) tilted by e^{λx} is N(λ, 1)
//! let kept = x.index_select(0, &keep(&t.weights).nonzero().squeeze_dim(1));
//! assert!((kept.mean(Kind::Double).double_value(&[]) - 0.5).abs() < 0.05);
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{Error, Result};
use tch::{Kind, Tensor};

/// Newton iterations at most.
const MAX_ITERS: usize = 100;

/// The result of [`tilt`].
#[derive(Debug)]
pub struct Tilt {
    /// Weights `[N]`, summing to 1.
    pub weights: Tensor,
    /// λ, one per statistic.
    pub lambda: Vec<f64>,
    /// Effective sample size (Σ w)² / Σ w².
    pub ess: f64,
    /// Newton iterations used.
    pub iterations: usize,
}

/// Maximum-entropy weights of the samples whose statistics `stats` `[N, K]` average to
/// `target` (K values). An error when the target cannot be reached (outside the convex hull
/// of the statistics, or statistics that are linearly dependent).
pub fn tilt(stats: &Tensor, target: &[f64]) -> Result<Tilt> {
    let s = stats.to_kind(Kind::Double).to_device(tch::Device::Cpu);
    let size = s.size();
    if size.len() != 2 || size[1] != target.len() as i64 || size[0] < 2 {
        return Err(Error::Msg(format!(
            "tilt: statistics {size:?} against {} targets: expected [N ≥ 2, K] with K = {}",
            target.len(),
            target.len()
        )));
    }
    let m = Tensor::from_slice(target);
    // Centre on the target: f(λ) = logsumexp(λ · (s − m)), grad E_w[s] − m, Hessian Cov_w[s].
    let c = &s - m.unsqueeze(0);
    let scale = c.abs().max().double_value(&[]).max(1e-12);
    let f = |lam: &Tensor| c.matmul(lam).logsumexp([0], false).double_value(&[]);
    let mut lam = Tensor::zeros([size[1]], (Kind::Double, tch::Device::Cpu));
    for it in 0..MAX_ITERS {
        let w = c.matmul(&lam).softmax(0, Kind::Double);
        let grad = c.tr().matmul(&w);
        if grad.abs().max().double_value(&[]) < 1e-10 * scale {
            return Ok(finish(w, &lam, it));
        }
        let centred = &c - grad.unsqueeze(0);
        let hess = centred.tr().matmul(&(&centred * w.unsqueeze(1)));
        let step = match Tensor::f_linalg_solve(&hess, &grad.unsqueeze(1), true) {
            Ok(v) if v.isfinite().all().int64_value(&[]) == 1 => v.squeeze_dim(1),
            _ => return Err(unreachable_target(target)),
        };
        let (f0, slope) = (f(&lam), -grad.dot(&step).double_value(&[]));
        let mut t = 1.0;
        while f(&(&lam - &step * t)) > f0 + 1e-4 * t * slope && t > 1e-12 {
            t *= 0.5;
        }
        if t <= 1e-12 {
            return Err(unreachable_target(target));
        }
        lam = &lam - step * t;
    }
    Err(unreachable_target(target))
}

fn finish(w: Tensor, lam: &Tensor, iterations: usize) -> Tilt {
    let ess = 1.0 / w.square().sum(Kind::Double).double_value(&[]);
    Tilt {
        lambda: Vec::<f64>::try_from(lam).expect("a vector"),
        weights: w,
        ess,
        iterations,
    }
}

fn unreachable_target(target: &[f64]) -> Error {
    Error::Msg(format!(
        "tilt: the target statistics {target:?} cannot be matched by reweighting these samples (outside the range of their statistics, or statistics that depend linearly on each other)"
    ))
}

/// A keep mask `[N]` (bool) drawn by rejection: x_i kept with probability w_i / max w
/// (libtorch's generator).
pub fn keep(weights: &Tensor) -> Tensor {
    let p = weights / weights.max();
    weights.rand_like().lt_tensor(&p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

    /// Mean and standard error of each column of `v` `[N, K]`.
    fn mean_se(v: &Tensor) -> (Vec<f64>, Vec<f64>) {
        let n = v.size()[0] as f64;
        let m = Vec::<f64>::try_from(v.mean_dim(0, false, Kind::Double)).unwrap();
        let se = Vec::<f64>::try_from((v.var_dim(0, true, false) / n).sqrt()).unwrap();
        (m, se)
    }

    /// N(0, 1) tilted to mean 0.5 by s(x) = x is N(0.5, 1): λ ≈ 0.5, the weighted mean is
    /// exactly the target, and the kept samples have mean 0.5 and variance 1 (a statistic
    /// that was not asked for) within their standard errors.
    #[test]
    fn tilting_a_normal_gives_the_shifted_normal() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let x = Tensor::randn([400_000, 1], F64);
        let t = tilt(&x, &[0.5]).unwrap();
        let weighted = (&x.squeeze_dim(1) * &t.weights)
            .sum(Kind::Double)
            .double_value(&[]);
        assert!((weighted - 0.5).abs() < 1e-9, "weighted mean {weighted}");
        assert!((t.lambda[0] - 0.5).abs() < 0.01, "λ {}", t.lambda[0]);
        let kept = x.index_select(0, &keep(&t.weights).nonzero().squeeze_dim(1));
        let (m, se) = mean_se(&kept);
        let var = kept.var(true).double_value(&[]);
        let var_se = (2.0 / kept.size()[0] as f64).sqrt();
        println!(
            "λ {:.4}, ESS {:.0} of 400,000, {} kept: mean {:.4} ± {:.4}, variance {var:.4} ± {var_se:.4}",
            t.lambda[0],
            t.ess,
            kept.size()[0],
            m[0],
            se[0]
        );
        assert!((m[0] - 0.5).abs() < 3.0 * se[0]);
        assert!((var - 1.0).abs() < 3.0 * var_se);
    }

    /// Five statistics of 2-D samples (means, second moments, the cross moment) matched at
    /// once: weighted exactly, and by the kept samples within 3 standard errors.
    #[test]
    fn several_statistics_match_at_once() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(1);
        let x = Tensor::rand([200_000, 2], F64) * 4.0 - 2.0; // uniform on [−2, 2]²
        let stats = |v: &Tensor| {
            let (a, b) = (v.select(1, 0), v.select(1, 1));
            Tensor::stack(
                &[
                    a.shallow_clone(),
                    b.shallow_clone(),
                    a.square(),
                    b.square(),
                    &a * &b,
                ],
                1,
            )
        };
        let target = [0.3, -0.2, 0.8, 1.0, 0.25];
        let s = stats(&x);
        let t = tilt(&s, &target).unwrap();
        let weighted = Vec::<f64>::try_from(s.tr().matmul(&t.weights)).unwrap();
        for (w, g) in weighted.iter().zip(target) {
            assert!((w - g).abs() < 1e-9, "{weighted:?} vs {target:?}");
        }
        let kept = s.index_select(0, &keep(&t.weights).nonzero().squeeze_dim(1));
        let (m, se) = mean_se(&kept);
        println!(
            "kept {}: {m:.4?} ± {se:.4?} (target {target:?})",
            kept.size()[0]
        );
        for k in 0..5 {
            assert!(
                (m[k] - target[k]).abs() < 3.0 * se[k],
                "statistic {k}: {} vs {}",
                m[k],
                target[k]
            );
        }
    }

    /// A target outside the samples' range, or a statistic repeated, is an error.
    #[test]
    fn unreachable_targets_are_errors() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(2);
        let x = Tensor::rand([1000, 1], F64);
        let err = tilt(&x, &[2.0]).unwrap_err().to_string();
        assert!(err.contains("cannot be matched"), "{err}");
        let twice = Tensor::cat(&[&x, &x], 1);
        assert!(tilt(&twice, &[0.5, 0.4]).is_err());
        assert!(tilt(&x, &[0.5, 0.5]).is_err());
    }
}
