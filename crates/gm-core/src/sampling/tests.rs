use super::exact::{self, total_variation};
use super::gibbs::{PairwiseBinary, Units};
use super::hmc::{self, HmcConfig};
use super::importance::{gaussian_proposal, self_normalized};
use super::metropolis_hastings::{self as mh, gaussian_random_walk, McmcConfig};
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

/// The correlated 2-D Gaussian target: mean (1, −1), covariance [[1, 0.8], [0.8, 1]].
fn gaussian_target() -> (Tensor, Tensor, impl Fn(&Tensor) -> Tensor) {
    let mean = Tensor::from_slice(&[1.0f64, -1.0]);
    let cov = Tensor::from_slice(&[1.0f64, 0.8, 0.8, 1.0]).view([2, 2]);
    let prec = cov.inverse();
    let m = mean.shallow_clone();
    let log_p = move |x: &Tensor| {
        let d = x - m.to_kind(x.kind());
        (d.mm(&prec.to_kind(x.kind())) * &d).sum_dim_intlist(1, false, x.kind()) * -0.5
    };
    (mean, cov, log_p)
}

/// Per-chain means `[C, D]` of samples `[S, C, D]`: their spread across independent chains
/// gives an honest Monte-Carlo standard error whatever the autocorrelation within a chain.
fn mean_and_se(samples: &Tensor) -> (Tensor, Tensor) {
    let chain_means = samples.mean_dim(0, false, Kind::Double);
    let c = chain_means.size()[0] as f64;
    let mean = chain_means.mean_dim(0, false, Kind::Double);
    let se = chain_means.std_dim(0, true, false) / c.sqrt();
    (mean, se)
}

fn covariance(samples: &Tensor) -> Tensor {
    let x = samples
        .reshape([-1, samples.size()[2]])
        .to_kind(Kind::Double);
    let xc = &x - x.mean_dim(0, true, Kind::Double);
    xc.tr().mm(&xc) / x.size()[0] as f64
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn check_gaussian_moments(samples: &Tensor, what: &str) {
    let (mean, cov, _) = gaussian_target();
    let (m, se) = mean_and_se(samples);
    let z = max_abs(&((&m - &mean) / &se));
    assert!(max_abs(&se) < 0.05, "{what}: standard error {se}");
    assert!(z < 4.5, "{what}: mean {m} vs {mean}, se {se}");
    let c = covariance(samples);
    assert!(max_abs(&(&c - &cov)) < 0.06, "{what}: covariance {c}");
}

#[test]
fn mh_random_walk_matches_correlated_gaussian_moments() {
    let _rng = crate::rng_guard::lock();
    tch::manual_seed(1);
    let (_, _, log_p) = gaussian_target();
    let init = Tensor::randn([400, 2], (Kind::Double, CPU)) * 3.0;
    let cfg = McmcConfig {
        burn_in: 300,
        steps: 600,
        thin: 3,
    };
    let r = mh::run(log_p, gaussian_random_walk(0.9), &init, &cfg).unwrap();
    assert_eq!(r.samples.size(), [200, 400, 2]);
    assert!(
        r.acceptance > 0.2 && r.acceptance < 0.8,
        "acceptance {}",
        r.acceptance
    );
    check_gaussian_moments(&r.samples, "MH");
}

#[test]
fn mh_independence_proposal_uses_the_q_ratio() {
    let _rng = crate::rng_guard::lock();
    // Proposal N(0, 2² I) independent of x: log q(x) − log q(x') must be used; with the
    // ratio dropped the chain would sample p·q-ish, not p, and the moments would be off.
    tch::manual_seed(2);
    let (_, _, log_p) = gaussian_target();
    let log_q = |x: &Tensor| x.square().sum_dim_intlist(1, false, Kind::Double) * (-0.125);
    let proposal = |x: &Tensor| {
        let xp = x.randn_like() * 2.0;
        let ratio = log_q(x) - log_q(&xp);
        (xp, ratio)
    };
    let init = Tensor::zeros([400, 2], (Kind::Double, CPU));
    let cfg = McmcConfig {
        burn_in: 100,
        steps: 400,
        thin: 2,
    };
    let r = mh::run(&log_p, proposal, &init, &cfg).unwrap();
    check_gaussian_moments(&r.samples, "MH independence");
    // The same chain without the ratio is measurably wrong (the check can fail).
    let wrong = |x: &Tensor| {
        (
            x.randn_like() * 2.0,
            Tensor::zeros([x.size()[0]], (Kind::Double, CPU)),
        )
    };
    let bad = mh::run(&log_p, wrong, &init, &cfg).unwrap();
    let c = covariance(&bad.samples);
    assert!(
        c.double_value(&[0, 0]) < 0.9,
        "without the q ratio: var {c}"
    );
}

/// 0.3 N(−1.5, 0.7²) + 0.7 N(1.5, 0.7²), unnormalised.
fn mixture_log_p(x: &Tensor) -> Tensor {
    let x = x.select(1, 0);
    let a = (&x + 1.5).square() * (-0.5 / 0.49) + 0.3f64.ln();
    let b = (&x - 1.5).square() * (-0.5 / 0.49) + 0.7f64.ln();
    Tensor::stack(&[a, b], 0).logsumexp([0], false)
}
const MIX_MEAN: f64 = 0.6; // 0.3·(−1.5) + 0.7·1.5
const MIX_M2: f64 = 2.74; // 1.5² + 0.7²

fn check_mixture(samples: &Tensor, what: &str) {
    let (m, se) = mean_and_se(samples);
    let (m, se) = (m.double_value(&[0]), se.double_value(&[0]));
    assert!(
        se < 0.05 && (m - MIX_MEAN).abs() < 4.5 * se,
        "{what}: mean {m} ± {se}"
    );
    let (m2, se2) = mean_and_se(&samples.square());
    let (m2, se2) = (m2.double_value(&[0]), se2.double_value(&[0]));
    assert!((m2 - MIX_M2).abs() < 4.5 * se2, "{what}: E x² {m2} ± {se2}");
}

#[test]
fn mh_and_hmc_sample_a_one_dimensional_mixture() {
    let _rng = crate::rng_guard::lock();
    tch::manual_seed(3);
    let init = Tensor::randn([500, 1], (Kind::Double, CPU)) * 2.0;
    let cfg = McmcConfig {
        burn_in: 300,
        steps: 600,
        thin: 3,
    };
    let r = mh::run(mixture_log_p, gaussian_random_walk(1.5), &init, &cfg).unwrap();
    check_mixture(&r.samples, "MH");
    let hcfg = HmcConfig {
        step_size: 0.3,
        leapfrog_steps: 8,
        burn_in: 150,
        samples: 300,
        thin: 3,
        ..Default::default()
    };
    let r = hmc::run(mixture_log_p, &init, &hcfg).unwrap();
    check_mixture(&r.samples, "HMC");
}

#[test]
fn hmc_matches_correlated_gaussian_moments_and_adapts_its_step() {
    let _rng = crate::rng_guard::lock();
    tch::manual_seed(4);
    let (_, _, log_p) = gaussian_target();
    let init = Tensor::randn([300, 2], (Kind::Double, CPU)) * 3.0;
    let cfg = HmcConfig {
        step_size: 1.5,
        leapfrog_steps: 5,
        burn_in: 150,
        samples: 300,
        thin: 2,
        adapt_step_size: true,
        target_accept: 0.8,
    };
    let r = hmc::run(&log_p, &init, &cfg).unwrap();
    assert!(
        r.step_size < 1.0,
        "ε stayed at {} (too large for this target)",
        r.step_size
    );
    assert!(
        (r.acceptance - 0.8).abs() < 0.12,
        "acceptance {}",
        r.acceptance
    );
    check_gaussian_moments(&r.samples, "HMC");
}

#[test]
fn hmc_leapfrog_is_reversible_and_nearly_conserves_energy() {
    let _rng = crate::rng_guard::lock();
    let (_, _, log_p) = gaussian_target();
    tch::manual_seed(5);
    let x = Tensor::randn([10, 2], (Kind::Double, CPU));
    let r = Tensor::randn([10, 2], (Kind::Double, CPU));
    let (lp, g) = hmc::log_p_and_grad(&log_p, &x).unwrap();
    let (x1, r1, lp1, g1) = hmc::leapfrog(&log_p, &x, &r, &g, 0.05, 20).unwrap();
    let (x2, r2, _, _) = hmc::leapfrog(&log_p, &x1, &(-&r1), &g1, 0.05, 20).unwrap();
    assert!(max_abs(&(&x2 - &x)) < 1e-10 && max_abs(&(&r2 + &r)) < 1e-10);
    let h =
        |lp: &Tensor, r: &Tensor| -lp + r.square().sum_dim_intlist(1, false, Kind::Double) * 0.5;
    let err1 = max_abs(&(h(&lp1, &r1) - h(&lp, &r)));
    // Half the step, twice the steps: a second-order integrator's energy error drops ~4×.
    let (_, r3, lp3, _) = hmc::leapfrog(&log_p, &x, &r, &g, 0.025, 40).unwrap();
    let err2 = max_abs(&(h(&lp3, &r3) - h(&lp, &r)));
    assert!(
        err1 < 0.1 && err2 < err1 / 3.0,
        "energy errors {err1}, {err2}"
    );
    assert!(max_abs(&(&x1 - &x)) > 0.1, "the trajectory moved");
}

#[test]
fn mh_and_hmc_leave_the_target_invariant() {
    let _rng = crate::rng_guard::lock();
    // Start exactly at the target (Cholesky samples) and make one step: the moments of the
    // 20,000 chains must stay those of the target.
    tch::manual_seed(6);
    let (mean, cov, log_p) = gaussian_target();
    let l = cov.linalg_cholesky(false);
    let x0 = Tensor::randn([20_000, 2], (Kind::Double, CPU)).mm(&l.tr()) + mean.unsqueeze(0);
    let one = McmcConfig {
        burn_in: 0,
        steps: 1,
        thin: 1,
    };
    let mh1 = mh::run(&log_p, gaussian_random_walk(2.0), &x0, &one).unwrap();
    let hcfg = HmcConfig {
        step_size: 0.9,
        leapfrog_steps: 3,
        burn_in: 0,
        samples: 1,
        adapt_step_size: false,
        ..Default::default()
    };
    let h1 = hmc::run(&log_p, &x0, &hcfg).unwrap();
    for (what, x) in [("MH", mh1.last), ("HMC", h1.last)] {
        let xs = x.unsqueeze(0);
        let m = xs.mean_dim([0, 1].as_slice(), false, Kind::Double);
        // Standard error of a mean of 20,000 unit-variance draws: 0.007.
        assert!(max_abs(&(&m - &mean)) < 0.03, "{what}: mean {m}");
        assert!(max_abs(&(covariance(&xs) - &cov)) < 0.05, "{what}: cov");
    }
}

#[test]
fn snis_estimates_known_expectations_and_log_z() {
    let _rng = crate::rng_guard::lock();
    tch::manual_seed(7);
    // Target N(1, 0.5²) unnormalised: Z = 0.5·sqrt(2π); E x = 1, E x² = 1.25.
    let log_p = |x: &Tensor| (x - 1.0).square().sum_dim_intlist(1, false, Kind::Double) * -2.0;
    let mean = Tensor::zeros([1], (Kind::Double, CPU));
    let (x, log_q) = gaussian_proposal(20_000, &mean, 2.0);
    let f = |x: &Tensor| Tensor::cat(&[x.shallow_clone(), x.square()], 1);
    let est = self_normalized(log_p, f, &x, &log_q).unwrap();
    let expect = [1.0, 1.25];
    for (k, e) in expect.iter().enumerate() {
        let (v, se) = (
            est.estimate.double_value(&[k as i64]),
            est.std_err.double_value(&[k as i64]),
        );
        assert!(
            se < 0.02 && (v - e).abs() < 4.5 * se,
            "E f_{k}: {v} ± {se}, exact {e}"
        );
    }
    let total = est.weights.sum(Kind::Double).double_value(&[]);
    assert!((total - 1.0).abs() < 1e-9);
    assert!(est.ess > 1000.0 && est.ess < 20_000.0, "ESS {}", est.ess);
    let log_z = (0.5 * (2.0 * std::f64::consts::PI).sqrt()).ln();
    assert!(
        (est.log_normalizer - log_z).abs() < 0.03,
        "log Z {}",
        est.log_normalizer
    );
    // A proposal equal to the target (up to Z) gives ESS = N exactly.
    let (x, log_q) = gaussian_proposal(1000, &Tensor::ones([1], (Kind::Double, CPU)), 0.5);
    let est = self_normalized(log_p, |x| x.shallow_clone(), &x, &log_q).unwrap();
    assert!((est.ess - 1000.0).abs() < 1e-6);
}

/// A random 4-unit pairwise model (symmetric J, zero diagonal).
fn random_pairwise(seed: i64, d: i64, scale: f64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let a = Tensor::randn([d, d], (Kind::Double, CPU)) * scale;
    let j = (&a + a.tr()).triu(1);
    let j = &j + j.tr();
    let b = Tensor::randn([d], (Kind::Double, CPU)) * scale;
    (j, b)
}

#[test]
fn sequential_gibbs_matches_the_enumerated_distribution() {
    let _rng = crate::rng_guard::lock();
    for (units, beta) in [(Units::Bernoulli, 1.0), (Units::Spin, 0.7)] {
        let (j, b) = random_pairwise(8, 5, 0.8);
        let model = PairwiseBinary::new(&j, &b, units, beta).unwrap();
        let states = exact::all_states(5, units, Kind::Double, CPU).unwrap();
        let p = exact::distribution(&states, |x| model.log_unnormalized(x)).unwrap();
        let mut x = model.random_states(2000);
        model.sweeps(&mut x, &[0, 1, 2, 3, 4], 30).unwrap();
        let traj = model.trajectory(&mut x, 20).unwrap();
        let emp = exact::empirical(&traj.reshape([-1, 5]), units);
        let tv = total_variation(&emp, &p);
        assert!(tv < 0.02, "{units:?}: TV {tv}");
        // The check can fail: a wrong temperature is far off.
        let hot = PairwiseBinary::new(&j, &b, units, 0.3 * beta).unwrap();
        let q = exact::distribution(&states, |x| hot.log_unnormalized(x)).unwrap();
        assert!(total_variation(&emp, &q) > 0.1);
    }
}

#[test]
fn one_gibbs_sweep_keeps_exact_samples_exact_and_clamped_sites_stay() {
    let _rng = crate::rng_guard::lock();
    let (j, b) = random_pairwise(9, 4, 1.0);
    let model = PairwiseBinary::new(&j, &b, Units::Bernoulli, 1.0).unwrap();
    let states = exact::all_states(4, Units::Bernoulli, Kind::Double, CPU).unwrap();
    let p = exact::distribution(&states, |x| model.log_unnormalized(x)).unwrap();
    tch::manual_seed(10);
    let x0 = states.index_select(0, &p.multinomial(50_000, true));
    let mut x = x0.copy();
    model.sweeps(&mut x, &[3, 1, 0, 2], 1).unwrap();
    let tv = total_variation(&exact::empirical(&x, Units::Bernoulli), &p);
    assert!(tv < 0.02, "TV after one sweep from p: {tv}");
    // Updating sites 2 and 3 only leaves 0 and 1 untouched.
    let mut y = x0.copy();
    model.sweeps(&mut y, &[2, 3], 3).unwrap();
    assert!(max_abs(&(y.narrow(1, 0, 2) - x0.narrow(1, 0, 2))) == 0.0);
    assert!(max_abs(&(y.narrow(1, 2, 2) - x0.narrow(1, 2, 2))) > 0.0);
}

#[test]
fn enumeration_indexes_round_trip() {
    let _rng = crate::rng_guard::lock();
    for units in [Units::Bernoulli, Units::Spin] {
        let s = exact::all_states(6, units, Kind::Float, CPU).unwrap();
        let idx = exact::state_index(&s, units);
        assert_eq!(
            max_abs(&(idx - Tensor::arange(64, (Kind::Int64, CPU))).to_kind(Kind::Double)),
            0.0
        );
    }
    let s = exact::all_states(3, Units::Bernoulli, Kind::Float, CPU).unwrap();
    assert_eq!(
        Vec::<f32>::try_from(s.select(0, 6)).unwrap(),
        vec![1.0, 1.0, 0.0]
    );
}

#[test]
fn invalid_arguments_are_typed_errors_naming_the_field() {
    let _rng = crate::rng_guard::lock();
    let j = Tensor::zeros([3, 3], (Kind::Float, CPU));
    let b = Tensor::zeros([2], (Kind::Float, CPU));
    let err = PairwiseBinary::new(&j, &b, Units::Spin, 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gibbs.coupling"), "{err}");
    let b3 = Tensor::zeros([3], (Kind::Float, CPU));
    let err = PairwiseBinary::new(&j, &b3, Units::Spin, 0.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gibbs.beta"), "{err}");
    let m = PairwiseBinary::new(&j, &b3, Units::Spin, 1.0).unwrap();
    let mut x = m.random_states(2);
    let err = m.sweeps(&mut x, &[0, 3], 1).unwrap_err().to_string();
    assert!(err.contains("gibbs.sites"), "{err}");
    let init = Tensor::zeros([2, 2], (Kind::Float, CPU));
    let lp = |x: &Tensor| x.sum_dim_intlist(1, false, Kind::Float);
    let cfg = HmcConfig {
        leapfrog_steps: 0,
        ..Default::default()
    };
    let err = hmc::run(lp, &init, &cfg).unwrap_err().to_string();
    assert!(err.contains("hmc.leapfrog_steps"), "{err}");
    let cfg = McmcConfig {
        thin: 0,
        ..Default::default()
    };
    let err = mh::run(lp, gaussian_random_walk(1.0), &init, &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mh.thin"), "{err}");
    let bad_lp = |x: &Tensor| x.shallow_clone();
    let err = mh::run(
        bad_lp,
        gaussian_random_walk(1.0),
        &init,
        &McmcConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("mh.log_p"), "{err}");
    assert!(exact::all_states(30, Units::Spin, Kind::Float, CPU).is_err());
}
