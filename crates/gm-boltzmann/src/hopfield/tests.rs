use super::*;
use crate::bm::Moments;
use gm_core::config::RunConfig;
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use gm_core::sampling::exact::{self, total_variation};
use gm_core::sampling::gibbs::Units;
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

fn random_spins(p: i64, n: i64) -> Tensor {
    Tensor::rand([p, n], (Kind::Float, CPU))
        .lt(0.5)
        .to_kind(Kind::Float)
        * 2.0
        - 1.0
}

fn cfg(model: &str, data: &str, optim: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 1\n[model]\nname = \"hopfield\"\n{model}\n[data]\ndataset = \"bars-and-stripes\"\n{data}\n[optim]\n{optim}\n"
    ))
    .unwrap()
}

/// A binary dataset whose three splits are the rows `x` `[N, D]`.
fn rows(x: &Tensor) -> Dataset {
    gm_core::kit::rows_dataset(x, true)
}

fn hopfield(c: &RunConfig, d: &Dataset) -> gm_core::Result<Hopfield> {
    let p: HopfieldConfig = parse_params("hopfield", &c.model.params)?;
    Hopfield::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: CPU,
        },
    )
}

#[test]
fn hebbian_patterns_are_fixed_points_and_are_recalled_from_noise() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    let xi = random_spins(3, 64);
    let w = hebbian(&xi);
    assert_eq!(w.diagonal(0, 0, 1).abs().max().double_value(&[]), 0.0);
    assert!(w.equal(&w.tr()));
    for update in [Update::Async, Update::Sync] {
        let r = recall(&w, None, &xi, update, 5, false).unwrap();
        assert!(
            r.converged && r.sweeps == 1 && r.states.equal(&xi),
            "{update:?}: stored patterns move"
        );
        let noisy = corrupt(&xi, 0.1);
        assert_eq!(
            noisy.ne_tensor(&xi).sum(Kind::Int64).int64_value(&[]),
            3 * 6
        );
        let r = recall(&w, None, &noisy, update, 20, false).unwrap();
        assert!(
            r.states.equal(&xi),
            "{update:?}: not recalled from 10% noise"
        );
    }
}

#[test]
fn asynchronous_recall_never_increases_the_energy() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    // Arbitrary symmetric zero-diagonal weights and biases (not Hebbian): a rugged landscape.
    let a = Tensor::randn([30, 30], (Kind::Double, CPU));
    let w = symmetric_weights(&a);
    let b = Tensor::randn([30], (Kind::Double, CPU)) * 0.5;
    let x0 = random_spins(50, 30).to_kind(Kind::Double);
    let r = recall(&w, Some(&b), &x0, Update::Async, 100, true).unwrap();
    let e = r.energies.unwrap();
    assert_eq!(e.size()[0], 30 * r.sweeps as i64 + 1);
    let rises = (e.narrow(0, 1, e.size()[0] - 1) - e.narrow(0, 0, e.size()[0] - 1))
        .max()
        .double_value(&[]);
    assert!(rises <= 1e-9, "energy rose by {rises}");
    let drop = (e.select(0, 0) - e.select(0, -1)).min().double_value(&[]);
    assert!(drop >= 0.0);
    assert!(
        (e.select(0, 0) - e.select(0, -1)).max().double_value(&[]) > 1.0,
        "it descended"
    );
    assert!(r.converged);
    // The end states are fixed points: every unit agrees with the sign of its field.
    let field = r.states.mm(&w) + b.unsqueeze(0);
    assert!((field * &r.states).min().double_value(&[]) >= 0.0);
}

#[test]
fn synchronous_recall_can_oscillate() {
    let _rng = crate::test_rng_lock();
    // Two units coupled negatively, both +1: sync flips both every step (a 2-cycle), async
    // settles at once.
    let w = Tensor::from_slice(&[0.0f32, -1.0, -1.0, 0.0]).view([2, 2]);
    let x = Tensor::from_slice(&[1.0f32, 1.0]).view([1, 2]);
    let s = recall(&w, None, &x, Update::Sync, 10, false).unwrap();
    assert!(!s.converged && s.sweeps == 10);
    let a = recall(&w, None, &x, Update::Async, 10, false).unwrap();
    assert!(a.converged);
}

#[test]
fn capacity_recall_is_perfect_well_below_0_138n_and_fails_well_above() {
    let _rng = crate::test_rng_lock();
    let curve = capacity_curve(100, &[4, 40], 5, 0.05, 3, CPU).unwrap();
    eprintln!("{curve:?}");
    let (low, high) = (&curve[0], &curve[1]);
    assert!(
        low.exact_recall >= 0.95 && low.mean_overlap > 0.99,
        "P = 4: {low:?}"
    );
    assert!(
        high.exact_recall <= 0.05 && high.mean_overlap < 0.8,
        "P = 40: {high:?}"
    );
}

#[test]
fn spin_gradient_equals_autograd_of_the_exact_log_likelihood() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(4);
    let n = 5;
    let raw = (Tensor::randn([n, n], (Kind::Double, CPU)) * 0.5).set_requires_grad(true);
    let b = (Tensor::randn([n], (Kind::Double, CPU)) * 0.5).set_requires_grad(true);
    let t = 1.7;
    let x = random_spins(9, n).to_kind(Kind::Double);
    let w = symmetric_weights(&raw);
    let ll = exact_log_prob(&w, &b, t, &x).unwrap().mean(Kind::Double);
    let g = Tensor::run_backward(&[ll], &[&b, &raw], false, false);
    let states = exact::all_states(n, Units::Spin, Kind::Double, CPU).unwrap();
    let (p, data) = tch::no_grad(|| {
        let lp = energy(&w, Some(&b), &states) * (-1.0 / t);
        (
            (&lp - lp.logsumexp([0], false)).exp(),
            Moments::of_states(&x),
        )
    });
    let hand = spin_gradient(&data, &Moments::weighted(&states, &p), 1.0 / t);
    for (a, h) in g.iter().zip(hand.iter()) {
        let d = (a - h).abs().max().double_value(&[]);
        assert!(d < 1e-10, "autograd vs hand-written: {d}");
    }
}

#[test]
fn boltzmann_training_recovers_a_known_stochastic_network() {
    let _rng = crate::test_rng_lock();
    // Teacher: a random 5-unit network at T = 1, sampled exactly from its enumerated law.
    tch::manual_seed(5);
    let n = 5;
    let tw = symmetric_weights(&(Tensor::randn([n, n], (Kind::Double, CPU)) * 0.4));
    let tb = Tensor::randn([n], (Kind::Double, CPU)) * 0.4;
    let states = exact::all_states(n, Units::Spin, Kind::Double, CPU).unwrap();
    let target = exact::distribution(&states, |s| -energy(&tw, Some(&tb), s)).unwrap();
    let x01 = ((states.index_select(0, &target.multinomial(20_000, true)) + 1.0) * 0.5)
        .to_kind(Kind::Float);
    let c = cfg(
        "mode = \"boltzmann\"\nchains = 2000\ngibbs_sweeps = 1",
        "",
        "lr = 0.03",
    );
    let d = rows(&x01);
    let mut m = hopfield(&c, &d).unwrap();
    let law = |m: &Hopfield| {
        let (w, b) = m.weights();
        exact::distribution(&states, |s| {
            -energy(&w.to_kind(Kind::Double), Some(&b.to_kind(Kind::Double)), s)
        })
        .unwrap()
    };
    let before = total_variation(&law(&m), &target);
    for step in 0..400 {
        let batch = x01.narrow(0, (step % 20) * 1000, 1000);
        m.train_step(&gm_core::data::Batch::inputs(&batch)).unwrap();
    }
    let after = total_variation(&law(&m), &target);
    let emp = exact::empirical(&to_spins(&x01).to_kind(Kind::Double), Units::Spin);
    let floor = total_variation(&emp, &target);
    eprintln!("stochastic Hopfield 5 units: TV to teacher {before:.3} → {after:.3} (data vs teacher {floor:.3})");
    assert!(before > 0.15 && after < 0.04, "TV {before} → {after}");
    // The exact likelihood report agrees with the enumerated law.
    let ll = m.log_likelihoods(&x01, &c).unwrap();
    assert_eq!(ll[0].kind, LikelihoodKind::Exact);
    let direct = (law(&m).log() * &emp).sum(Kind::Double).double_value(&[]);
    assert!(
        (ll[0].mean - direct).abs() < 1e-4,
        "{} vs {direct}",
        ll[0].mean
    );
}

#[test]
fn hebbian_model_on_bars_and_stripes() {
    let _rng = crate::test_rng_lock();
    let c = cfg("noise = 0.125", "", "");
    let d = data::load("bars-and-stripes", &c.data.options).unwrap();
    let mut m = hopfield(&c, &d).unwrap();
    let met = m
        .train_step(&gm_core::data::Batch::inputs(&d.train.x.narrow(0, 0, 100)))
        .unwrap();
    assert_eq!(met[0].0, "instability");
    let s = m.sample(5).unwrap();
    assert_eq!(s.size(), [5, 1, 4, 4]);
    let fig = m.figures(&d.test.x).unwrap();
    assert_eq!(fig[0].images.size(), [24, 1, 4, 4]);
    let ev = m
        .eval_metrics(&gm_core::data::Batch::inputs(&d.test.x))
        .unwrap();
    assert_eq!(ev[1].0, "recall_error");
    let err = ev[1].1.double_value(&[]);
    assert!((0.0..=1.0).contains(&err));
    // Exact log p_T over all 2^16 binary images sums to one.
    let all = exact::all_states(16, Units::Bernoulli, Kind::Float, CPU).unwrap();
    let ll = m.log_likelihoods(&all.view([-1, 1, 4, 4]), &c).unwrap();
    assert_eq!(ll[0].kind, LikelihoodKind::Exact);
    assert_eq!(ll[0].n, 1 << 16);
    let (w, b) = m.weights();
    let p = exact_log_prob(
        &w.to_kind(Kind::Double),
        &b.to_kind(Kind::Double),
        1.0,
        &to_spins(&all).to_kind(Kind::Double),
    )
    .unwrap()
    .exp()
    .sum(Kind::Double)
    .double_value(&[]);
    assert!((p - 1.0).abs() < 1e-9, "Σ p = {p}");
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let d = rows(&Tensor::ones([4, 3], (Kind::Float, CPU)));
    for (extra, field) in [
        ("temperature = 0.0", "model.temperature"),
        ("noise = 0.7", "model.noise"),
        ("chains = 0", "model.chains"),
        ("recall_sweeps = 0", "model.recall_sweeps"),
        ("gibbs_sweeps = 0", "model.gibbs_sweeps"),
        ("sample_sweeps = 0", "model.sample_sweeps"),
        ("exact_max_units = 0", "model.exact_max_units"),
    ] {
        let err = hopfield(&cfg(extra, "", ""), &d)
            .err()
            .expect(extra)
            .to_string();
        assert!(err.contains(field), "{extra}: {err}");
    }
    let err = hopfield(&cfg("mode = \"hebb\"", "", ""), &d)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("hebb"), "{err}");
    let mut real = rows(&Tensor::ones([4, 3], (Kind::Float, CPU)));
    real.binary = false;
    let err = hopfield(&cfg("", "", ""), &real).err().unwrap().to_string();
    assert!(err.contains("data.binarize"), "{err}");
}
