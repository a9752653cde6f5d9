use super::*;
use crate::common::{all_binary_vectors, empirical_distribution, total_variation, Autoregressive};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn narn(c: &RunConfig, d: &Dataset) -> gm_core::Result<Narn> {
    let p: NarnConfig = parse_params("narn", &c.model.params)?;
    Narn::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// Every trainable parameter random, masked entries included (the masks must still hold).
fn randomize(m: &Narn, scale: f64) {
    gm_core::kit::randomize(m.var_stores()[0].1, scale, |_, _| true);
}

const RANDOM_ORDER: &str = "ordering = \"random\"\nordering_seed = 4";

#[test]
fn probabilities_sum_to_one_for_every_ordering_and_option() {
    let _rng = crate::test_rng_lock();
    for extra in [
        "group_size = 2".to_string(),
        format!("group_size = 3\n{RANDOM_ORDER}"),
        format!("group_size = 1\ndirect = false\nactivation = \"relu\"\n{RANDOM_ORDER}"),
        "group_size = 2\nactivation = \"sigmoid\"\nordering = \"random\"\nordering_seed = 9"
            .to_string(),
    ] {
        let c = cfg("narn", &extra, "bars-and-stripes", "", "");
        tch::manual_seed(1);
        let m = narn(&c, &binary_rows(10)).unwrap();
        randomize(&m, 1.5);
        assert_sums_to_one(&m);
    }
}

#[test]
fn outputs_are_autoregressive() {
    let _rng = crate::test_rng_lock();
    for extra in [
        "group_size = 3".to_string(),
        format!("group_size = 2\n{RANDOM_ORDER}"),
        format!("group_size = 2\ndirect = false\n{RANDOM_ORDER}"),
    ] {
        let c = cfg("narn", &extra, "bars-and-stripes", "", "");
        tch::manual_seed(2);
        let m = narn(&c, &binary_rows(8)).unwrap();
        randomize(&m, 1.0);
        assert_autoregressive(|x| m.conditionals(x).1, m.ordering());
    }
}

#[test]
fn masked_forward_equals_the_per_group_definition() {
    let _rng = crate::test_rng_lock();
    // h_j = tanh(Σ_{k≤j} W[jG.., k] x_{o_k} + c_j); logit_i = b_i + Σ_{j<i} V_{i,j}·h_j
    // + Σ_{k<i} A_{i,k} x_{o_k}, written as explicit loops.
    let c = cfg(
        "narn",
        &format!("group_size = 2\n{RANDOM_ORDER}"),
        "bars-and-stripes",
        "",
        "",
    );
    tch::manual_seed(3);
    let d = 7;
    let m = narn(&c, &binary_rows(d)).unwrap();
    randomize(&m, 1.0);
    let x = Tensor::randint(2, [4, d], (Kind::Float, Device::Cpu));
    let (x_o, fast) = m.conditionals(&x);
    let vars = m.var_stores()[0].1.variables();
    let get = |n: &str| vars[&format!("narn.{n}")].to_kind(Kind::Double);
    let (w, cc, v, a, b) = (get("w"), get("c"), get("v"), get("a"), get("b"));
    let xo = x_o.to_kind(Kind::Double);
    for (i, &oi) in m.ordering().iter().enumerate() {
        assert_eq!(
            xo.select(1, i as i64),
            x.select(1, oi).to_kind(Kind::Double)
        );
        let mut logit = b.get(i as i64).expand([4], false).copy();
        for j in 0..i as i64 {
            let rows = w.narrow(0, 2 * j, 2).narrow(1, 0, j + 1); // [2, j+1]
            let h = (xo.narrow(1, 0, j + 1).matmul(&rows.tr()) + cc.narrow(0, 2 * j, 2)).tanh();
            logit += h.mv(&v.get(i as i64).narrow(0, 2 * j, 2));
            logit += xo.select(1, j) * a.get(i as i64).get(j);
        }
        let diff = (&logit - fast.select(1, i as i64).to_kind(Kind::Double))
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff < 1e-5,
            "conditional {i}: loops and masked forward differ by {diff}"
        );
    }
}

#[test]
fn fits_a_random_distribution_on_64_states_and_samples_match() {
    let _rng = crate::test_rng_lock();
    // A fixed random target on 2^6 states (Dirichlet-like weights), 4,000 rows drawn from it.
    tch::manual_seed(20);
    let target = Tensor::rand([64], (Kind::Double, Device::Cpu)).pow_tensor_scalar(3);
    let target = &target / target.sum(Kind::Double);
    let idx = target.multinomial(4000, true);
    let states = all_binary_vectors(6, Device::Cpu);
    let x = states.index_select(0, &idx);
    let emp = empirical_distribution(&x);
    let c = cfg(
        "narn",
        &format!("group_size = 8\n{RANDOM_ORDER}"),
        "bars-and-stripes",
        "",
        "lr = 0.02",
    );
    tch::manual_seed(5);
    let mut m = narn(&c, &dataset_of(&x, true)).unwrap();
    let before = total_variation(&exact_distribution(&m), &emp);
    let nll0 = -tch::no_grad(|| m.log_prob(&x))
        .mean(Kind::Float)
        .double_value(&[]);
    let nll = train(&mut m, &x, 500);
    // The best achievable NLL on these rows is the empirical entropy.
    let h_emp = -(&emp * emp.clamp_min(1e-300).log())
        .sum(Kind::Double)
        .double_value(&[]);
    let after = total_variation(&exact_distribution(&m), &emp);
    assert!(
        after < 0.04 && nll < h_emp + 0.03 && nll0 > nll + 0.3,
        "TV {before:.4} → {after:.4}; NLL {nll0:.4} → {nll:.4} (entropy {h_emp:.4})"
    );
    assert_sums_to_one(&m);
    let tv = assert_samples_match(&m, 40_000, 0.03);
    let lls = m.log_likelihoods(&x, &c).unwrap();
    assert_eq!(lls[0].kind, LikelihoodKind::Exact);
    approx::assert_abs_diff_eq!(lls[0].nll(), nll, epsilon = 0.01);
    eprintln!("narn: TV {before:.4} → {after:.4}, NLL {nll0:.4} → {nll:.4} (entropy {h_emp:.4}), samples TV {tv:.4}");
}

#[test]
fn sample_shapes_and_values() {
    let _rng = crate::test_rng_lock();
    let c = cfg("narn", "group_size = 2", "bars-and-stripes", "", "");
    let d = load(&c);
    let m = narn(&c, &d).unwrap();
    let s = m.sample(6).unwrap();
    assert_eq!(s.size(), vec![6, 1, 4, 4]);
    assert_eq!(s.eq(1.0).logical_or(&s.eq(0.0)).all().int64_value(&[]), 1);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("narn", "groupsize = 3", "bars-and-stripes", "", "");
    let err = parse_params::<NarnConfig>("narn", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("groupsize"), "{err}");
    let c = cfg("narn", "activation = \"swish\"", "bars-and-stripes", "", "");
    let err = parse_params::<NarnConfig>("narn", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("swish"), "{err}");
    let data = binary_rows(3);
    for (extra, field) in [
        ("group_size = 0", "model.group_size"),
        ("init_scale = -1.0", "model.init_scale"),
    ] {
        assert_config_error(
            narn(&cfg("narn", extra, "bars-and-stripes", "", ""), &data),
            field,
        );
    }
    assert_config_error(
        narn(
            &cfg("narn", "", "bars-and-stripes", "", ""),
            &binary_rows(1),
        ),
        "data",
    );
    let real = dataset_of(&Tensor::rand([10, 3], (Kind::Float, Device::Cpu)), false);
    assert_config_error(
        narn(&cfg("narn", "", "two-moons", "", ""), &real),
        "data.binarize",
    );
}
