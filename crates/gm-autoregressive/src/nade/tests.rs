use super::*;
use crate::common::{all_binary_vectors, total_variation};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::{bars_and_stripes_patterns, Dataset};
use gm_core::kit::gradcheck::{assert_gradients_match, autograd};
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn nade(c: &RunConfig, d: &Dataset) -> gm_core::Result<Nade> {
    let p: NadeConfig = parse_params("nade", &c.model.params)?;
    Nade::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

fn var(m: &Nade, name: &str) -> Tensor {
    m.var_stores()[0].1.variables()[&format!("nade.{name}")].shallow_clone()
}

/// Every parameter random (c and b too, which start at 0 / the marginals).
fn randomize(m: &Nade, scale: f64) {
    gm_core::kit::randomize(m.var_stores()[0].1, scale, |_, _| true);
}

const RANDOM_ORDER: &str = "ordering = \"random\"\nordering_seed = 4";

#[test]
fn probabilities_sum_to_one_for_every_ordering() {
    let _rng = crate::test_rng_lock();
    for extra in ["hidden = 7", &format!("hidden = 7\n{RANDOM_ORDER}")] {
        let c = cfg("nade", extra, "bars-and-stripes", "", "");
        tch::manual_seed(1);
        let m = nade(&c, &binary_rows(10)).unwrap();
        randomize(&m, 1.5);
        assert_sums_to_one(&m);
    }
}

#[test]
fn outputs_are_autoregressive() {
    let _rng = crate::test_rng_lock();
    for extra in ["hidden = 5", &format!("hidden = 5\n{RANDOM_ORDER}")] {
        let c = cfg("nade", extra, "bars-and-stripes", "", "");
        tch::manual_seed(2);
        let m = nade(&c, &binary_rows(8)).unwrap();
        randomize(&m, 1.0);
        assert_autoregressive(|x| m.conditionals(x).1, m.ordering());
    }
}

#[test]
fn running_sum_forward_equals_the_naive_per_conditional_loop() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "nade",
        &format!("hidden = 6\n{RANDOM_ORDER}"),
        "bars-and-stripes",
        "",
        "",
    );
    tch::manual_seed(3);
    let d = 9;
    let m = nade(&c, &binary_rows(d)).unwrap();
    randomize(&m, 1.0);
    let x = Tensor::randint(2, [5, d], (Kind::Float, Device::Cpu));
    let (_, fast) = m.conditionals(&x);
    // O(D²H): each conditional recomputes its hidden layer from all preceding inputs.
    let (w, v, b, cc) = (var(&m, "w"), var(&m, "v"), var(&m, "b"), var(&m, "c"));
    for (i, &oi) in m.ordering().iter().enumerate() {
        let mut a = cc.unsqueeze(0).repeat([5, 1]);
        for &oj in &m.ordering()[..i] {
            a += x.select(1, oj).unsqueeze(1) * w.select(1, oj).unsqueeze(0);
        }
        let logit = a.sigmoid().mv(&v.get(oi)) + b.get(oi);
        let diff = (&logit - fast.select(1, i as i64))
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            diff < 1e-5,
            "conditional {i} (variable {oi}): naive and running-sum logits differ by {diff}"
        );
    }
}

#[test]
fn fits_bars_and_stripes_and_samples_match_the_exact_distribution() {
    let _rng = crate::test_rng_lock();
    // The known distribution: uniform over the 14 bars-and-stripes patterns of side 3.
    let patterns = bars_and_stripes_patterns(3).reshape([-1, 9]);
    let target = crate::common::empirical_distribution(&patterns);
    let x = patterns.repeat([8, 1]);
    let c = cfg(
        "nade",
        &format!("hidden = 32\n{RANDOM_ORDER}"),
        "bars-and-stripes",
        "",
        "lr = 0.03",
    );
    tch::manual_seed(5);
    let mut m = nade(&c, &dataset_of(&x, true)).unwrap();
    let before = total_variation(&exact_distribution(&m), &target);
    let nll = train(&mut m, &x, 600);
    let after = total_variation(&exact_distribution(&m), &target);
    assert!(after < 0.05, "NADE vs uniform bars and stripes: TV {after} (start {before}), NLL {nll} (optimum ln 14 = {:.3})", 14f64.ln());
    assert_sums_to_one(&m);
    assert_samples_match(&m, 20_000, 0.03);
    let lls = m.log_likelihoods(&patterns, &c).unwrap();
    assert_eq!(lls[0].kind, LikelihoodKind::Exact);
    assert!(
        lls[0].nll() < 14f64.ln() + 0.1 && lls[0].nll() > 14f64.ln() - 1e-3,
        "{:?}",
        lls[0]
    );
}

#[test]
fn chunked_evaluation_equals_the_batched_forward() {
    let _rng = crate::test_rng_lock();
    let c = cfg("nade", "hidden = 8000", "bars-and-stripes", "", "");
    let d = load(&c);
    tch::manual_seed(6);
    let m = nade(&c, &d).unwrap();
    // 16 × 8000 values per row of a block: the evaluation budget splits 250 rows into 8 chunks.
    let x = d.test.x.shallow_clone();
    let full = tch::no_grad(|| m.log_prob_autograd(&x));
    let chunked = m.eval_metrics(&gm_core::data::Batch::inputs(&x)).unwrap()[0]
        .1
        .double_value(&[]);
    approx::assert_abs_diff_eq!(
        chunked,
        -full.mean(Kind::Float).double_value(&[]),
        epsilon = 1e-4
    );
}

#[test]
fn sample_shapes_and_values() {
    let _rng = crate::test_rng_lock();
    let c = cfg("nade", "hidden = 8", "bars-and-stripes", "", "");
    let d = load(&c);
    let m = nade(&c, &d).unwrap();
    let s = m.sample(6).unwrap();
    assert_eq!(s.size(), vec![6, 1, 4, 4]);
    assert_eq!(s.eq(1.0).logical_or(&s.eq(0.0)).all().int64_value(&[]), 1);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("nade", "hiden = 3", "bars-and-stripes", "", "");
    let err = parse_params::<NadeConfig>("nade", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hiden"), "{err}");
    let data = binary_rows(3);
    for (extra, field) in [
        ("hidden = 0", "model.hidden"),
        ("init_scale = 0.0", "model.init_scale"),
        ("block = 0", "model.block"),
    ] {
        assert_config_error(
            nade(&cfg("nade", extra, "bars-and-stripes", "", ""), &data),
            field,
        );
    }
    let real = dataset_of(&Tensor::rand([10, 3], (Kind::Float, Device::Cpu)), false);
    let r = nade(&cfg("nade", "", "two-moons", "", ""), &real);
    let msg = r.as_ref().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("binarize"), "{msg}");
    assert_config_error(r, "data.binarize");
}

#[test]
fn hand_written_gradients_equal_autograd() {
    let _rng = crate::test_rng_lock();
    let orders = ["", RANDOM_ORDER];
    for (order, block) in orders.iter().flat_map(|o| [1, 2, 4, 9, 16].map(|b| (o, b))) {
        let extra = &format!("hidden = 6\nblock = {block}\n{order}");
        let c = cfg("nade", extra, "bars-and-stripes", "", "");
        tch::manual_seed(5);
        let mut m = nade(&c, &binary_rows(9)).unwrap();
        randomize(&m, 0.8);
        m.var_stores_mut()[0].1.double();
        let x = all_binary_vectors(9, Device::Cpu)
            .narrow(0, 0, 40)
            .to_kind(Kind::Double);
        let (lp, hand) = m.nll_gradients(&x);
        let lp_ref = m.log_prob_autograd(&x);
        let lp_err = f64::try_from((&lp - &lp_ref).abs().max()).unwrap();
        assert!(
            lp_err < 1e-10,
            "{extra}: log p differs by {lp_err} ({:?} vs {:?})",
            lp.kind(),
            lp_ref.kind()
        );
        let loss = -lp_ref.mean(Kind::Double);
        let params = [var(&m, "w"), var(&m, "v"), var(&m, "b"), var(&m, "c")];
        let auto = autograd(&loss, &params.each_ref());
        assert_gradients_match(extra, &["w", "v", "b", "c"], &hand, &auto, 1e-10, 1e-6);
    }
}
