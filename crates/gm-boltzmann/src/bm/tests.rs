use super::*;
use gm_core::config::RunConfig;
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use gm_core::sampling::exact::{self, total_variation};
use gm_core::sampling::gibbs::{PairwiseBinary, Units};
use tch::{Device, Kind, Tensor};

const CPU: Device = Device::Cpu;

fn cfg(model: &str, data: &str, optim: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 1\n[model]\nname = \"bm\"\n{model}\n[data]\ndataset = \"bars-and-stripes\"\n{data}\n[optim]\n{optim}\n"
    ))
    .unwrap()
}

/// A binary dataset whose three splits are the rows `x` `[N, D]`.
fn rows(x: &Tensor) -> Dataset {
    gm_core::kit::rows_dataset(x, true)
}

fn bm(c: &RunConfig, d: &Dataset) -> gm_core::Result<Bm> {
    let p: BmConfig = parse_params("bm", &c.model.params)?;
    Bm::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: CPU,
        },
    )
}

/// Random raw parameters (f64, requiring gradients) of a BM with nv visible, nh hidden units.
fn raw_params(seed: i64, nv: i64, nh: i64, scale: f64) -> [Tensor; 5] {
    tch::manual_seed(seed);
    let r = |s: &[i64]| (Tensor::randn(s, (Kind::Double, CPU)) * scale).set_requires_grad(true);
    [r(&[nv]), r(&[nh]), r(&[nv, nv]), r(&[nh, nh]), r(&[nv, nh])]
}

fn params_of(raw: &[Tensor; 5]) -> BmParams {
    let [b, c, r, s, w] = raw;
    BmParams::from_raw(r, w, s, b, c)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

#[test]
fn parameterisation_is_symmetric_with_zero_diagonal_and_energies_agree() {
    let _rng = crate::test_rng_lock();
    let p = params_of(&raw_params(1, 4, 3, 1.0));
    for m in [&p.r, &p.s] {
        assert_eq!(max_abs(&(m - m.tr())), 0.0);
        assert_eq!(max_abs(&m.diagonal(0, 0, 1)), 0.0);
    }
    // −E through the joint coupling matrix equals the energy written term by term.
    let x = exact::all_states(7, Units::Bernoulli, Kind::Double, CPU).unwrap();
    let (v, h) = (x.narrow(1, 0, 4), x.narrow(1, 4, 3));
    let direct = (v.mm(&p.r) * &v).sum_dim_intlist(1, false, Kind::Double)
        + (v.mm(&p.w) * &h).sum_dim_intlist(1, false, Kind::Double)
        + (h.mm(&p.s) * &h).sum_dim_intlist(1, false, Kind::Double)
        + v.mv(&p.b)
        + h.mv(&p.c);
    assert!(max_abs(&(p.neg_energy(&x) - &direct)) < 1e-12);
    let grid = p.neg_energy_grid(&v.narrow(0, 0, 5), &h);
    assert!(max_abs(&(grid.diagonal(0, 0, 1) - direct.narrow(0, 0, 5))) < 1e-12);
}

#[test]
fn sequential_gibbs_on_a_4_plus_3_bm_matches_the_boltzmann_distribution() {
    let _rng = crate::test_rng_lock();
    let p = params_of(&raw_params(2, 4, 3, 0.7));
    let (j, a) = tch::no_grad(|| p.joint());
    let x = exact::all_states(7, Units::Bernoulli, Kind::Double, CPU).unwrap();
    let exact_p = tch::no_grad(|| exact::distribution(&x, |s| p.neg_energy(s)).unwrap());
    let model = PairwiseBinary::new(&j, &a, Units::Bernoulli, 1.0).unwrap();
    tch::manual_seed(3);
    let mut chains = model.random_states(4000);
    model
        .sweeps(&mut chains, &[0, 1, 2, 3, 4, 5, 6], 50)
        .unwrap();
    let traj = model.trajectory(&mut chains, 20).unwrap();
    let emp = exact::empirical(&traj.reshape([-1, 7]), Units::Bernoulli);
    let tv = total_variation(&emp, &exact_p);
    // 80,000 correlated draws over 128 states: sampling noise alone gives TV ≈ 0.015.
    assert!(tv < 0.03, "TV(Gibbs, exact) = {tv}");
    let uniform = Tensor::full([128], 1.0 / 128.0, (Kind::Double, CPU));
    assert!(
        total_variation(&uniform, &exact_p) > 0.2,
        "the target is far from uniform"
    );
}

#[test]
fn hand_written_gradient_equals_autograd_of_the_exact_log_likelihood() {
    let _rng = crate::test_rng_lock();
    let raw = raw_params(4, 4, 3, 0.8);
    let p = params_of(&raw);
    tch::manual_seed(5);
    let v = Tensor::rand([12, 4], (Kind::Double, CPU))
        .lt(0.5)
        .to_kind(Kind::Double);
    let ll = p.log_marginal(&v).unwrap().mean(Kind::Double);
    let auto = Tensor::run_backward(&[ll], &raw.iter().collect::<Vec<_>>(), false, false);
    let (data, model) = tch::no_grad(|| {
        (
            p.exact_data_moments(&v).unwrap(),
            p.exact_model_moments().unwrap(),
        )
    });
    let hand = log_likelihood_gradient(&data, &model, 4);
    for (k, (a, h)) in auto.iter().zip(hand.iter()).enumerate() {
        // Raw lower triangles get no gradient from either side.
        let diff = max_abs(&(a - h));
        assert!(
            diff < 1e-10,
            "parameter {k}: autograd vs hand-written differ by {diff}"
        );
    }
    assert!(max_abs(&hand[4]) > 1e-3, "a non-trivial gradient");
}

/// A tiny BM model (4 visible, 3 hidden) with random parameters, for the estimator tests.
fn tiny_model(extra: &str, v: &Tensor) -> (Bm, BmParams) {
    let c = cfg(&format!("hidden = 3\n{extra}"), "", "");
    let mut m = bm(&c, &rows(v)).unwrap();
    let raw = raw_params(6, 4, 3, 0.7);
    tch::no_grad(|| {
        let vars = m.var_stores_mut()[0].1.variables();
        for (name, t) in ["bm.b", "bm.c", "bm.r", "bm.s", "bm.w"]
            .iter()
            .zip(raw.iter())
        {
            vars[*name].shallow_clone().copy_(t);
        }
    });
    let p = m.params();
    let p64 = BmParams {
        r: p.r.to_kind(Kind::Double),
        w: p.w.to_kind(Kind::Double),
        s: p.s.to_kind(Kind::Double),
        b: p.b.to_kind(Kind::Double),
        c: p.c.to_kind(Kind::Double),
    };
    (m, p64)
}

fn tiny_data() -> Tensor {
    Tensor::from_slice(&[
        1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0,
    ])
    .view([3, 4])
}

#[test]
fn two_phase_estimate_with_long_chains_matches_the_exact_gradient() {
    let _rng = crate::test_rng_lock();
    let v = tiny_data();
    let (mut m, p) = tiny_model(
        "positive_steps = 30\nnegative_sweeps = 60\nchains = 30000",
        &v,
    );
    let exact_grad = tch::no_grad(|| {
        log_likelihood_gradient(
            &p.exact_data_moments(&v.to_kind(Kind::Double)).unwrap(),
            &p.exact_model_moments().unwrap(),
            4,
        )
    });
    // Each of the 3 rows repeated 5,000 times: positive-phase chains per row.
    tch::manual_seed(7);
    let (est, _) = m.estimate_gradient(&v.repeat([5000, 1])).unwrap();
    let names = ["b", "c", "r", "s", "w"];
    for ((e, x), name) in est.iter().zip(exact_grad.iter()).zip(names) {
        let diff = max_abs(&(e.to_kind(Kind::Double) - x));
        // Monte-Carlo error of a difference of two averages of 15,000–30,000 draws: ~0.01.
        assert!(
            diff < 0.04,
            "{name}: estimate vs exact differ by {diff}\n{e}\n{x}"
        );
    }
    // Short chains started far from equilibrium would not be this close: the comparison has
    // teeth. Zero-sweep chains are the uniform start.
    let uniform =
        Moments::of_states(&exact::all_states(7, Units::Bernoulli, Kind::Double, CPU).unwrap());
    let data = p.exact_data_moments(&v.to_kind(Kind::Double)).unwrap();
    let wrong = log_likelihood_gradient(&data, &uniform, 4);
    let off = max_abs(&(&wrong[4] - &exact_grad[4])).max(max_abs(&(&wrong[0] - &exact_grad[0])));
    assert!(off > 0.1, "uniform negative phase differs by only {off}");
}

#[test]
fn mean_field_positive_phase_is_exact_without_hidden_couplings() {
    let _rng = crate::test_rng_lock();
    let v = tiny_data();
    let (m, p) = tiny_model("positive = \"mean_field\"\npositive_steps = 3", &v);
    // Zero S: p(h | v) factorises and mean field is exact.
    tch::no_grad(|| {
        let _ = m.var_stores()[0].1.variables()["bm.s"]
            .shallow_clone()
            .zero_();
    });
    let p = BmParams {
        s: p.s.zeros_like(),
        ..p
    };
    let pos = m.positive_phase(&v).unwrap();
    let got = Moments::of_states(&pos.to_kind(Kind::Double));
    let want = p.exact_data_moments(&v.to_kind(Kind::Double)).unwrap();
    // Off-diagonal blocks (v vᵀ, v hᵀ) and the means.
    let mask = Tensor::ones([7, 7], (Kind::Double, CPU)) - Tensor::eye(7, (Kind::Double, CPU));
    assert!(max_abs(&((&got.xx - &want.xx) * &mask)) < 1e-6);
    assert!(max_abs(&(&got.x - &want.x)) < 1e-6);
}

#[test]
fn training_on_bars_and_stripes_raises_the_exact_log_likelihood() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "hidden = 4\nchains = 500\npositive_steps = 3\nnegative_sweeps = 1\ninit_scale = 0.1",
        "bars_size = 3\nsynthetic_size = 200",
        "kind = \"sgd\"\nlr = 0.05\nmomentum = 0.5",
    );
    let d = data::load("bars-and-stripes", &c.data.options).unwrap();
    tch::manual_seed(8);
    let mut m = bm(&c, &d).unwrap();
    let x = d.train.x.reshape([-1, 9]);
    let ll = |m: &Bm| {
        m.exact_log_prob(&x)
            .unwrap()
            .mean(Kind::Double)
            .double_value(&[])
    };
    let before = ll(&m);
    for _ in 0..400 {
        m.train_step(&gm_core::data::Batch::inputs(&x)).unwrap();
    }
    let after = ll(&m);
    // 14 patterns: the best model scores −ln 14 = −2.64 nats; the start (the factorial model
    // of the pixel means) about −6.4. Seeds 1–4 measured −6.55…−6.35 → −3.13…−2.92 nats.
    assert!(
        after > before + 2.0 && after > -3.6,
        "exact train log-likelihood {before:.3} → {after:.3}"
    );
    let reported = m.log_likelihoods(&d.test.x, &c).unwrap();
    assert_eq!(reported[0].kind, LikelihoodKind::Exact);
    assert!(reported[0].mean > -3.6, "test {}", reported[0].mean);
    eprintln!(
        "bm 9+4 on 3×3 bars and stripes: train LL {before:.3} → {after:.3} nats, test {:.3}",
        reported[0].mean
    );
}

#[test]
fn exact_log_likelihood_sums_to_one_over_all_visible_states() {
    let _rng = crate::test_rng_lock();
    let v = tiny_data();
    let (m, _) = tiny_model("", &v);
    let all = exact::all_states(4, Units::Bernoulli, Kind::Float, CPU).unwrap();
    let total = m
        .exact_log_prob(&all)
        .unwrap()
        .exp()
        .sum(Kind::Double)
        .double_value(&[]);
    assert!((total - 1.0).abs() < 1e-9, "Σ p(v) = {total}");
}

#[test]
fn samples_checkpoint_stores_and_a_too_large_model_reports_nothing() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "hidden = 3\nchains = 10\nsample_sweeps = 5\nexact_max_units = 10",
        "bars_size = 3",
        "",
    );
    let d = data::load("bars-and-stripes", &c.data.options).unwrap();
    let mut m = bm(&c, &d).unwrap();
    let s = m.sample(6).unwrap();
    assert_eq!(s.size(), [6, 1, 3, 3]);
    let binary = s.eq(0.0).logical_or(&s.eq(1.0)).all().int64_value(&[]);
    assert_eq!(binary, 1);
    let stores: Vec<&str> = m.var_stores().iter().map(|(n, _)| *n).collect();
    assert_eq!(stores, ["model", "chains"]);
    assert_eq!(
        m.var_stores()[1].1.variables()["negative.x"].size(),
        [10, 12]
    );
    m.train_step(&gm_core::data::Batch::inputs(&d.train.x.narrow(0, 0, 20)))
        .unwrap();
    assert!(m.log_likelihoods(&d.test.x, &c).unwrap().is_empty()); // 12 units > 10
    let figs = m.figures(&d.test.x).unwrap();
    assert_eq!(figs[0].images.size(), [10, 1, 3, 3]);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let d = rows(&tiny_data());
    for (extra, field) in [
        ("hidden = 0", "model.hidden"),
        ("chains = 0", "model.chains"),
        ("positive_steps = 0", "model.positive_steps"),
        ("negative_sweeps = 0", "model.negative_sweeps"),
        ("sample_sweeps = 0", "model.sample_sweeps"),
        ("init_scale = -1.0", "model.init_scale"),
        ("exact_max_units = 30", "model.exact_max_units"),
    ] {
        let err = bm(&cfg(extra, "", ""), &d).err().expect(extra).to_string();
        assert!(err.contains(field), "{extra}: {err}");
    }
    let err = bm(&cfg("hiden = 3", "", ""), &d).err().unwrap().to_string();
    assert!(err.contains("hiden"), "{err}");
    let err = bm(&cfg("positive = \"exact\"", "", ""), &d)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("positive") || err.contains("exact"), "{err}");
    let mut real = rows(&tiny_data());
    real.binary = false;
    let err = bm(&cfg("", "", ""), &real).err().unwrap().to_string();
    assert!(err.contains("data.binarize"), "{err}");
}
