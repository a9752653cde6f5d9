//! AIS against partition functions known exactly: a product of Bernoullis (closed form) and
//! a 10 × 6 RBM enumerated over all 2¹⁶ joint states.

use super::rbm::BernoulliRbm;
use super::*;
use tch::Device;

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// p_β(x) ∝ exp(x·θ_β), θ_β = (1 − β) a + β b, over D binary units: Z_β = Π (1 + e^{θ_β}).
/// The transition draws a fresh exact sample of p_β (it leaves p_β invariant).
struct Bernoullis {
    a: Tensor,
    b: Tensor,
}

impl Bernoullis {
    fn theta(&self, beta: f64) -> Tensor {
        &self.a * (1.0 - beta) + &self.b * beta
    }
    /// log Z₁ in closed form, computed element by element on the host.
    fn exact_log_z(&self) -> f64 {
        Vec::<f64>::try_from(&self.b)
            .unwrap()
            .iter()
            .map(|t| (1.0 + t.exp()).ln())
            .sum()
    }
    fn exact_samples(&self, m: i64, beta: f64) -> Tensor {
        self.theta(beta)
            .sigmoid()
            .unsqueeze(0)
            .expand([m, self.a.size()[0]], false)
            .bernoulli()
    }
}

impl AisTarget for Bernoullis {
    type State = Tensor;
    fn sample_base(&self, m: i64) -> Result<Tensor> {
        Ok(self.exact_samples(m, 0.0))
    }
    fn log_z_base(&self) -> f64 {
        Vec::<f64>::try_from(&self.a)
            .unwrap()
            .iter()
            .map(|t| (1.0 + t.exp()).ln())
            .sum()
    }
    fn log_f(&self, x: &Tensor, beta: f64) -> Result<Tensor> {
        Ok(x.matmul(&self.theta(beta)))
    }
    fn transition(&self, x: &Tensor, beta: f64) -> Result<Tensor> {
        Ok(self.exact_samples(x.size()[0], beta))
    }
}

fn bernoullis(d: i64) -> Bernoullis {
    Bernoullis {
        a: Tensor::zeros([d], F64),
        b: Tensor::randn([d], F64) * 2.0,
    }
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn schedules_have_the_documented_temperatures() {
    let _rng = gm_core::rng_guard::lock();
    assert_eq!(
        Schedule::linear(4).unwrap().betas(),
        &[0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert!(Schedule::linear(0).is_err());

    let g = Schedule::geometric(5, 1e-4).unwrap();
    let b = g.betas();
    assert_eq!(g.steps(), 5);
    assert_eq!((b[0], b[1], b[5]), (0.0, 1e-4, 1.0));
    for k in 2..5 {
        approx::assert_relative_eq!(b[k] / b[k - 1], 10.0, max_relative = 1e-9);
    }
    assert!(Schedule::geometric(5, 0.0).is_err());
    assert!(Schedule::geometric(1, 0.1).is_err());

    let sm = Schedule::salakhutdinov_murray();
    let b = sm.betas();
    assert_eq!(sm.steps(), 14_500);
    assert_eq!((b[0], b[14_500]), (0.0, 1.0));
    approx::assert_abs_diff_eq!(b[500], 0.5, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(b[4_500], 0.9, epsilon = 1e-12);
    for (k, step) in [
        (1, 1e-3),
        (499, 1e-3),
        (501, 1e-4),
        (4_499, 1e-4),
        (4_501, 1e-5),
        (14_500, 1e-5),
    ] {
        approx::assert_abs_diff_eq!(b[k] - b[k - 1], step, epsilon = 1e-12);
    }
    assert!(b.windows(2).all(|w| w[0] < w[1]));

    assert!(Schedule::from_betas(vec![0.0, 0.5, 1.0]).is_ok());
    for bad in [
        vec![0.0],
        vec![0.1, 1.0],
        vec![0.0, 0.9],
        vec![0.0, 0.5, 0.5, 1.0],
        vec![0.0, f64::NAN, 1.0],
    ] {
        let err = Schedule::from_betas(bad.clone()).unwrap_err().to_string();
        assert!(
            err.contains("strictly increasing from 0 to 1"),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn weight_statistics_match_hand_computation() {
    let _rng = gm_core::rng_guard::lock();
    // w = [1, 3] (relative): mean 2, sd √2, se of the mean 1, relative se 0.5, ESS 16/10.
    let (lme, se, ess) = weight_statistics(&[5.0, 5.0 + 3f64.ln()]).unwrap();
    approx::assert_abs_diff_eq!(lme, 5.0 + 2f64.ln(), epsilon = 1e-12);
    approx::assert_abs_diff_eq!(se, 0.5, epsilon = 1e-12);
    approx::assert_abs_diff_eq!(ess, 1.6, epsilon = 1e-12);
    // Huge log-weights do not overflow.
    let (lme, _, ess) = weight_statistics(&[1e4, 1e4]).unwrap();
    approx::assert_abs_diff_eq!(lme, 1e4, epsilon = 1e-9);
    approx::assert_abs_diff_eq!(ess, 2.0, epsilon = 1e-12);
    assert!(weight_statistics(&[]).is_err());
    assert!(weight_statistics(&[0.0, f64::NAN]).is_err());
}

#[test]
fn product_of_bernoullis_log_z_is_recovered() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(1);
    let t = bernoullis(20);
    let exact = t.exact_log_z();
    let est = run(&t, &Schedule::linear(500).unwrap(), 100).unwrap();
    let err = est.log_z - exact;
    assert!(
        err.abs() < 0.05,
        "AIS {} vs exact {exact}: error {err}",
        est.log_z
    );
    assert!(
        err.abs() < 4.0 * est.std_err + 1e-3,
        "error {err} vs reported se {}",
        est.std_err
    );
    assert_eq!(
        (est.chains, est.steps, est.log_weights.len()),
        (100, 500, 100)
    );
    assert!(est.ess > 50.0 && est.ess <= 100.0, "ESS {}", est.ess);
}

/// The reported standard error must describe the spread of independent runs.
#[test]
fn reported_std_err_matches_spread_of_runs() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(2);
    let t = bernoullis(20);
    let schedule = Schedule::linear(20).unwrap();
    let runs: Vec<AisResult> = (0..60).map(|_| run(&t, &schedule, 200).unwrap()).collect();
    let (_, sd) = mean_sd(&runs.iter().map(|r| r.log_z).collect::<Vec<_>>());
    let (mean_se, _) = mean_sd(&runs.iter().map(|r| r.std_err).collect::<Vec<_>>());
    let ratio = sd / mean_se;
    assert!(
        (0.6..1.6).contains(&ratio),
        "spread of log Z over runs {sd:.4}, mean reported se {mean_se:.4} (ratio {ratio:.2})"
    );
}

/// Bias direction: with few temperatures, forward AIS's log Ẑ is below log Z on average
/// (Jensen: E log Ẑ ≤ log E Ẑ = log Z), reverse AIS from exact target samples above it.
#[test]
fn forward_underestimates_and_reverse_overestimates_log_z() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(3);
    let t = bernoullis(20);
    let exact = t.exact_log_z();
    let schedule = Schedule::linear(3).unwrap();
    let fwd: Vec<f64> = (0..300)
        .map(|_| run(&t, &schedule, 5).unwrap().log_z - exact)
        .collect();
    let rev: Vec<f64> = (0..300)
        .map(|_| {
            run_reverse(&t, &schedule, t.exact_samples(5, 1.0))
                .unwrap()
                .log_z
                - exact
        })
        .collect();
    let (fm, fsd) = mean_sd(&fwd);
    let (rm, rsd) = mean_sd(&rev);
    let (fse, rse) = (fsd / 300f64.sqrt(), rsd / 300f64.sqrt());
    assert!(
        fm < -3.0 * fse,
        "forward AIS bias {fm:.4} ± {fse:.4}: expected an underestimate"
    );
    assert!(
        rm > 3.0 * rse,
        "reverse AIS bias {rm:.4} ± {rse:.4}: expected an overestimate"
    );
}

/// The mean log-weight: below log Ẑ forward and above it reverse for every run (the log of
/// a mean is at least the mean of the logs), and with 2,000 chains on a short schedule the
/// two sit on either side of the exact log Z, further out than the two log Ẑ.
#[test]
fn mean_log_weight_bounds_bracket_log_z() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(4);
    let t = bernoullis(20);
    let exact = t.exact_log_z();
    let schedule = Schedule::linear(3).unwrap();
    let fwd = run(&t, &schedule, 2000).unwrap();
    let rev = run_reverse(&t, &schedule, t.exact_samples(2000, 1.0)).unwrap();
    let ((lo, lo_se), (hi, hi_se)) = (fwd.mean_log_weight_bound(), rev.mean_log_weight_bound());
    eprintln!(
        "{lo:.4} ± {lo_se:.4} ≤ forward {:.4} / exact {exact:.4} / reverse {:.4} ≤ {hi:.4} ± {hi_se:.4}",
        fwd.log_z, rev.log_z
    );
    assert!(lo <= fwd.log_z && rev.log_z <= hi);
    assert!(lo + 3.0 * lo_se < exact && exact < hi - 3.0 * hi_se);
    let s = fwd.settings();
    assert_eq!(s["log_z_mean_log_weight"].as_f64(), Some(lo));
    assert_eq!(s["log_z_mean_log_weight_std_err"].as_f64(), Some(lo_se));
}

/// All 2^(D+H) joint states of an RBM, enumerated with the energy written out directly:
/// returns log Z and log p(v) for the 2^D visible vectors (row i = bits of i, unit 0 first).
fn enumerate_rbm(w: &Tensor, b: &Tensor, c: &Tensor) -> (f64, Tensor, Tensor) {
    let (d, h) = (w.size()[0], w.size()[1]);
    let bits = |n: i64| {
        let i = Tensor::arange(1 << n, (Kind::Int64, Device::Cpu)).unsqueeze(1);
        let p = Tensor::arange(n, (Kind::Int64, Device::Cpu)).unsqueeze(0);
        i.bitwise_right_shift(&p)
            .bitwise_and(1)
            .to_kind(Kind::Double)
    };
    let (vs, hs) = (bits(d), bits(h));
    // −E(v, h) for every (v, h): [2^D, 2^H]
    let neg_e =
        vs.matmul(b).unsqueeze(1) + hs.matmul(c).unsqueeze(0) + vs.matmul(w).matmul(&hs.tr());
    let log_marg = neg_e.logsumexp([1], false);
    let log_z = log_marg.logsumexp([0], false).double_value(&[]);
    (log_z, &log_marg - log_z, vs)
}

fn tiny_rbm(scale: f64) -> (Tensor, Tensor, Tensor) {
    (
        Tensor::randn([10, 6], F64) * scale,
        Tensor::randn([10], F64) * 0.5,
        Tensor::randn([6], F64) * 0.5,
    )
}

#[test]
fn rbm_free_energy_matches_enumeration() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(4);
    let (w, b, c) = tiny_rbm(1.0);
    let (log_z, log_p, vs) = enumerate_rbm(&w, &b, &c);
    let rbm = BernoulliRbm::new(w, b, c, Tensor::zeros([10], F64)).unwrap();
    let diff = (rbm.neg_free_energy(&vs) - log_z - &log_p)
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        diff < 1e-10,
        "−F(v) − log Z differs from enumerated log p(v) by {diff}"
    );
    approx::assert_abs_diff_eq!(rbm.log_z_base(), 16.0 * 2f64.ln(), epsilon = 1e-12);
}

#[test]
fn rbm_log_z_is_recovered_from_both_bases() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(5);
    let (w, b, c) = tiny_rbm(1.0);
    let (exact, log_p, vs) = enumerate_rbm(&w, &b, &c);
    // Uniform base, and the base-rate base fitted to the model's own visible marginals.
    let marginals = log_p.exp().unsqueeze(0).matmul(&vs).squeeze_dim(0);
    for (name, base) in [
        ("uniform", Tensor::zeros([10], F64)),
        (
            "base-rate",
            BernoulliRbm::base_rate_biases(&marginals, 1e-3),
        ),
    ] {
        // f64, and f32 (whose CPU steps take the fused pass of `rbm::fused`).
        for kind in [Kind::Double, Kind::Float] {
            let [w, b, c, base] = [&w, &b, &c, &base].map(|t| t.to_kind(kind));
            let rbm = BernoulliRbm::new(w, b, c, base).unwrap();
            let est = run(&rbm, &Schedule::linear(1000).unwrap(), 100).unwrap();
            let err = est.log_z - exact;
            assert!(
                err.abs() < 0.05,
                "{name} base, {kind:?}: AIS {} vs exact {exact}: error {err}",
                est.log_z
            );
            assert!(
                err.abs() < 4.0 * est.std_err + 5e-3,
                "{name} base, {kind:?}: error {err} vs reported se {}",
                est.std_err
            );
        }
    }
}

/// The same bias directions on the RBM, with reverse AIS started from exact samples of the
/// enumerated p(v); and the likelihood derived from the estimate.
#[test]
fn rbm_bias_directions_and_likelihood() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(6);
    let (w, b, c) = tiny_rbm(1.5);
    let (exact, log_p, vs) = enumerate_rbm(&w, &b, &c);
    let rbm = BernoulliRbm::new(w, b, c, Tensor::zeros([10], F64)).unwrap();
    let schedule = Schedule::linear(5).unwrap();
    let reps = 300;
    let exact_samples = |m: i64| vs.index_select(0, &log_p.exp().multinomial(m, true));
    let fwd: Vec<f64> = (0..reps)
        .map(|_| run(&rbm, &schedule, 4).unwrap().log_z - exact)
        .collect();
    let rev: Vec<f64> = (0..reps)
        .map(|_| {
            run_reverse(&rbm, &schedule, exact_samples(4))
                .unwrap()
                .log_z
                - exact
        })
        .collect();
    let (fm, fsd) = mean_sd(&fwd);
    let (rm, rsd) = mean_sd(&rev);
    let n = (reps as f64).sqrt();
    assert!(
        fm < -3.0 * fsd / n,
        "forward AIS bias {fm:.4} ± {:.4}: expected < 0",
        fsd / n
    );
    assert!(
        rm > 3.0 * rsd / n,
        "reverse AIS bias {rm:.4} ± {:.4}: expected > 0",
        rsd / n
    );

    // Likelihood of a data set from the AIS estimate vs the exact mean log p(v).
    let data = exact_samples(500);
    let exact_ll = log_p
        .index_select(
            0,
            &data
                .matmul(&Tensor::from_slice(&[
                    1.0f64, 2., 4., 8., 16., 32., 64., 128., 256., 512.,
                ]))
                .to_kind(Kind::Int64),
        )
        .mean(Kind::Double)
        .double_value(&[]);
    let est = run(&rbm, &Schedule::linear(2000).unwrap(), 200).unwrap();
    let ll = est.log_likelihood(&rbm.neg_free_energy(&data)).unwrap();
    assert_eq!(ll.kind, LikelihoodKind::StochasticEstimate);
    assert_eq!(ll.n, 500);
    assert!(
        (ll.mean - exact_ll).abs() < 0.05,
        "AIS log-likelihood {} vs exact {exact_ll}",
        ll.mean
    );
    assert!(ll.std_err >= est.std_err);
    assert_eq!(ll.settings["chains"], 200);
}

#[test]
fn returned_states_and_bad_targets() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(7);
    let t = bernoullis(5);
    let (res, x) = run_with_states(&t, &Schedule::linear(5).unwrap(), 7, true).unwrap();
    assert_eq!(x.size(), [7, 5]);
    assert_eq!(res.direction, Direction::Forward);
    assert!(run(&t, &Schedule::linear(5).unwrap(), 0).is_err());

    // A target whose log f is NaN is reported, not averaged.
    struct Broken;
    impl AisTarget for Broken {
        type State = Tensor;
        fn sample_base(&self, m: i64) -> Result<Tensor> {
            Ok(Tensor::zeros([m, 1], F64))
        }
        fn log_z_base(&self) -> f64 {
            0.0
        }
        fn log_f(&self, x: &Tensor, beta: f64) -> Result<Tensor> {
            Ok(x.sum_dim_intlist(1, false, Kind::Double) + if beta > 0.5 { f64::NAN } else { 0.0 })
        }
        fn transition(&self, x: &Tensor, _: f64) -> Result<Tensor> {
            Ok(x.copy())
        }
    }
    let err = run(&Broken, &Schedule::linear(4).unwrap(), 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not finite"), "{err}");
}

#[test]
fn rbm_target_rejects_mismatched_parameters() {
    let _rng = gm_core::rng_guard::lock();
    let ok = || {
        (
            Tensor::zeros([4, 3], F64),
            Tensor::zeros([4], F64),
            Tensor::zeros([3], F64),
        )
    };
    let (w, b, c) = ok();
    let err =
        BernoulliRbm::new(w, b, Tensor::zeros([4], F64), Tensor::zeros([4], F64)).unwrap_err();
    assert!(err.to_string().contains("c must have shape [3]"), "{err}");
    let (w, b, c2) = ok();
    let err =
        BernoulliRbm::new(w, b, c2, Tensor::zeros([4], (Kind::Float, Device::Cpu))).unwrap_err();
    assert!(err.to_string().contains("base_b is Float"), "{err}");
    let err = BernoulliRbm::new(
        Tensor::zeros([4], F64),
        Tensor::zeros([4], F64),
        c,
        Tensor::zeros([4], F64),
    )
    .unwrap_err();
    assert!(err.to_string().contains("W must be [D, H]"), "{err}");
}

/// `reverse_shortfall`'s probability holds when the reverse chains start at exact samples:
/// over 4,000 independent pairs of one-chain runs straight from base to target (plain
/// importance sampling, the heaviest-tailed weights), the fraction whose forward log Ẑ
/// exceeds the reverse one by g stays below (1 + g) e^{−g} (a bound, loose here: 0.019 at
/// g = 0.5); reverse chains started at the base's samples instead fall short by far more
/// than exact starts allow.
#[test]
fn reverse_shortfall_bounds_the_gap_of_exact_starts_and_flags_wrong_ones() {
    let _rng = gm_core::rng_guard::lock();
    tch::manual_seed(5);
    let t = bernoullis(20);
    let schedule = Schedule::linear(1).unwrap();
    let n = 4000;
    let gaps: Vec<f64> = (0..n)
        .map(|_| {
            let fwd = run(&t, &schedule, 1).unwrap();
            let rev = run_reverse(&t, &schedule, t.exact_samples(1, 1.0)).unwrap();
            reverse_shortfall(&fwd, &rev).map_or(0.0, |(g, _)| g)
        })
        .collect();
    for g in [0.5f64, 1.0, 2.0, 3.0, 4.0] {
        let freq = gaps.iter().filter(|&&x| x >= g).count() as f64 / n as f64;
        let p = (1.0 + g) * (-g).exp();
        let tol = 3.0 * (p * (1.0 - p) / n as f64).sqrt();
        eprintln!("gap ≥ {g}: {freq:.4} of the pairs, bound {p:.4}");
        assert!(freq <= p + tol, "gap ≥ {g}: {freq} > {p} + {tol}");
    }
    let fwd = run(&t, &schedule, 100).unwrap();
    let wrong = run_reverse(&t, &schedule, t.exact_samples(100, 0.0)).unwrap();
    let (gap, p) = reverse_shortfall(&fwd, &wrong).expect("the wrong starts fall short");
    eprintln!("base samples as starts: {gap:.2} nats short, p {p:.2e}");
    assert!(p < 1e-3, "gap {gap}, p {p}");
    let mut settings = serde_json::json!({"note": "reverse"});
    note_reverse_shortfall(&mut settings, &fwd, &wrong);
    assert_eq!(settings["reverse_below_forward_log_z"].as_f64(), Some(gap));
    assert!(settings["note"]
        .as_str()
        .unwrap()
        .contains("understates log Z"));
    let right = run_reverse(&t, &schedule, t.exact_samples(100, 1.0)).unwrap();
    assert!(reverse_shortfall(&fwd, &right).is_none_or(|(_, p)| p > 0.01));
}
