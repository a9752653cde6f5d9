use super::*;
use crate::common::{
    all_binary_vectors, empirical_distribution, ordering, total_variation, Autoregressive,
    OrderingKind,
};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn nadek(c: &RunConfig, d: &Dataset) -> gm_core::Result<NadeK> {
    let p: NadeKConfig = parse_params("nade-k", &c.model.params)?;
    NadeK::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// Every trainable parameter random.
fn randomize(m: &NadeK, scale: f64) {
    gm_core::kit::randomize(m.var_stores()[0].1, scale, |_, t| t.requires_grad());
}

const VARIANTS: [&str; 4] = [
    "hidden = 6\nk = 1",
    "hidden = 6\nk = 3\nordering = \"random\"\nordering_seed = 4",
    "hidden = 5\nk = 2\nlayers = 2\nordering = \"random\"\nordering_seed = 7",
    "hidden = 5\nk = 4\nlayers = 2\nmask_input = false\nactivation = \"sigmoid\"",
];

#[test]
fn probabilities_sum_to_one_for_every_ordering_and_variant() {
    let _rng = crate::test_rng_lock();
    for extra in VARIANTS {
        let c = cfg("nade-k", extra, "bars-and-stripes", "", "");
        tch::manual_seed(1);
        let m = nadek(&c, &binary_rows(8)).unwrap();
        randomize(&m, 1.5);
        assert_sums_to_one(&m);
    }
}

#[test]
fn conditionals_are_autoregressive_for_every_ordering() {
    let _rng = crate::test_rng_lock();
    for extra in VARIANTS {
        let c = cfg("nade-k", extra, "bars-and-stripes", "", "");
        tch::manual_seed(2);
        let m = nadek(&c, &binary_rows(7)).unwrap();
        randomize(&m, 1.0);
        assert_autoregressive(|x| m.conditionals(x).1, m.ordering());
        // and along another ordering, a few positions per batch
        let o = ordering(OrderingKind::Random, 99, 7);
        assert_autoregressive(|x| m.conditionals_along(x, &o, 3).1, &o);
    }
}

#[test]
fn batched_positions_equal_the_recurrence_written_out() {
    let _rng = crate::test_rng_lock();
    // 2 layers, mask input: the k steps written with explicit tensors for one position at a
    // time, in f64, from the variables.
    let c = cfg("nade-k", VARIANTS[2], "bars-and-stripes", "", "");
    tch::manual_seed(3);
    let d = 6;
    let m = nadek(&c, &binary_rows(d)).unwrap();
    randomize(&m, 1.0);
    let x = Tensor::randint(2, [5, d], (Kind::Float, Device::Cpu));
    let (x_o, fast) = m.conditionals_along(&x, m.ordering(), 4);
    let vars = m.var_stores()[0].1.variables();
    let get = |n: &str| vars[&format!("nadek.{n}")].to_kind(Kind::Double);
    let (w1, u, c1, w2, c2, v, b, v0) = (
        get("w1"),
        get("u"),
        get("c1"),
        get("w2"),
        get("c2"),
        get("v"),
        get("b"),
        get("v0"),
    );
    let xd = x.to_kind(Kind::Double);
    for (i, &oi) in m.ordering().iter().enumerate() {
        assert_eq!(x_o.select(1, i as i64), x.select(1, oi));
        let mut mask = vec![0.0f64; d as usize];
        for &oj in &m.ordering()[..i] {
            mask[oj as usize] = 1.0;
        }
        let mk = Tensor::from_slice(&mask).unsqueeze(0);
        let keep = mk.ones_like() - &mk;
        let mut vv: Tensor = &xd * &mk + &keep * v0.unsqueeze(0);
        let mut logit = Tensor::zeros([5, d], (Kind::Double, Device::Cpu));
        for _ in 0..2 {
            let h1 = (vv.matmul(&w1.tr()) + mk.matmul(&u.tr()) + &c1).tanh();
            let h2 = (h1.matmul(&w2.tr()) + &c2).tanh();
            logit = h2.matmul(&v.tr()) + &b;
            vv = &xd * &mk + &keep * logit.sigmoid();
        }
        let diff = (logit.select(1, oi) - fast.select(1, i as i64).to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff < 1e-5,
            "position {i} (variable {oi}): differs by {diff}"
        );
    }
}

#[test]
fn order_agnostic_loss_is_unbiased_for_the_mean_over_orderings() {
    let _rng = crate::test_rng_lock();
    // D = 3: the mean of −log p(x | o) over the 6 orderings, against the average of the
    // stochastic training loss over many draws.
    let c = cfg("nade-k", "hidden = 5\nk = 2", "bars-and-stripes", "", "");
    tch::manual_seed(4);
    let m = nadek(&c, &binary_rows(3)).unwrap();
    randomize(&m, 1.0);
    let x = Tensor::from_slice(&[1.0f32, 0.0, 1.0]).view([1, 3]);
    let perms: [[i64; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    let exact: f64 = perms
        .iter()
        .map(|o| {
            let (xo, l) = tch::no_grad(|| m.conditionals_along(&x, o, 3));
            -(&xo * &l - l.softplus())
                .sum(Kind::Double)
                .double_value(&[])
        })
        .sum::<f64>()
        / 6.0;
    let n = 200_000;
    let est = tch::no_grad(|| m.order_agnostic_nll(&x.repeat([n, 1]))).to_kind(Kind::Double);
    let mean = est.mean(Kind::Double).double_value(&[]);
    let se = est.std(true).double_value(&[]) / (n as f64).sqrt();
    assert!(
        (mean - exact).abs() < 4.0 * se,
        "estimator mean {mean} ± {se}, exact order average {exact}"
    );
}

#[test]
fn fits_a_random_distribution_on_64_states_and_samples_match() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(20);
    let target = Tensor::rand([64], (Kind::Double, Device::Cpu)).pow_tensor_scalar(3);
    let target = &target / target.sum(Kind::Double);
    let idx = target.multinomial(4000, true);
    let x = all_binary_vectors(6, Device::Cpu).index_select(0, &idx);
    let emp = empirical_distribution(&x);
    let h_emp = -(&emp * emp.clamp_min(1e-300).log())
        .sum(Kind::Double)
        .double_value(&[]);
    let c = cfg(
        "nade-k",
        "hidden = 32\nk = 3\nlayers = 2\nordering = \"random\"\nordering_seed = 2\nensemble = 4",
        "bars-and-stripes",
        "",
        "lr = 0.02",
    );
    tch::manual_seed(5);
    let mut m = nadek(&c, &dataset_of(&x, true)).unwrap();
    let before = total_variation(&exact_distribution(&m), &emp);
    let nll0 = -tch::no_grad(|| m.log_prob(&x))
        .mean(Kind::Float)
        .double_value(&[]);
    train(&mut m, &x, 400);
    let nll = -tch::no_grad(|| m.log_prob(&x))
        .mean(Kind::Float)
        .double_value(&[]);
    let after = total_variation(&exact_distribution(&m), &emp);
    eprintln!(
        "nade-k: TV {before:.4} → {after:.4}; exact NLL {nll0:.4} → {nll:.4} (entropy {h_emp:.4})"
    );
    assert!(
        after < 0.2 && nll < h_emp + 0.12 && nll0 > nll + 0.3,
        "TV {before:.4} → {after:.4}; NLL {nll0:.4} → {nll:.4} (entropy {h_emp:.4})"
    );
    assert_sums_to_one(&m);
    let tv = assert_samples_match(&m, 20_000, 0.04);
    eprintln!("nade-k samples: TV {tv:.4}");
    let lls = m.log_likelihoods(&x, &c).unwrap();
    assert_eq!(lls.len(), 2);
    assert!(lls.iter().all(|l| l.kind == LikelihoodKind::Exact));
    approx::assert_abs_diff_eq!(lls[0].nll(), nll, epsilon = 1e-3);
    // The ensemble of 4 orderings is itself a distribution (a mixture) and close to the data.
    let ens = tch::no_grad(|| {
        let e = m.log_prob_ensemble(&all_binary_vectors(6, Device::Cpu));
        e.to_kind(Kind::Double).exp()
    });
    approx::assert_abs_diff_eq!(ens.sum(Kind::Double).double_value(&[]), 1.0, epsilon = 1e-5);
    eprintln!(
        "nade-k ensemble of 4: NLL {:.4}, TV {:.4}",
        lls[1].nll(),
        total_variation(&ens, &emp)
    );
}

#[test]
fn sample_shapes_and_values() {
    let _rng = crate::test_rng_lock();
    let c = cfg("nade-k", "hidden = 8\nk = 2", "bars-and-stripes", "", "");
    let d = load(&c);
    let m = nadek(&c, &d).unwrap();
    let s = m.sample(6).unwrap();
    assert_eq!(s.size(), vec![6, 1, 4, 4]);
    assert_eq!(s.eq(1.0).logical_or(&s.eq(0.0)).all().int64_value(&[]), 1);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("nade-k", "steps = 3", "bars-and-stripes", "", "");
    let err = parse_params::<NadeKConfig>("nade-k", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("steps"), "{err}");
    let data = binary_rows(3);
    for (extra, field) in [
        ("hidden = 0", "model.hidden"),
        ("layers = 3", "model.layers"),
        ("layers = 0", "model.layers"),
        ("k = 0", "model.k"),
        ("ensemble = 0", "model.ensemble"),
        ("init_scale = 0.0", "model.init_scale"),
    ] {
        assert_config_error(
            nadek(&cfg("nade-k", extra, "bars-and-stripes", "", ""), &data),
            field,
        );
    }
    let real = dataset_of(&Tensor::rand([10, 3], (Kind::Float, Device::Cpu)), false);
    assert_config_error(
        nadek(&cfg("nade-k", "", "two-moons", "", ""), &real),
        "data.binarize",
    );
}
