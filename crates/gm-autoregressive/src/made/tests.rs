use super::*;
use crate::common::{all_binary_vectors, total_variation};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::{bars_and_stripes_patterns, Dataset};
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn made(c: &RunConfig, d: &Dataset) -> gm_core::Result<Made> {
    let p: MadeConfig = parse_params("made", &c.model.params)?;
    Made::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

fn randomize(m: &Made, scale: f64) {
    gm_core::kit::randomize(m.var_stores()[0].1, scale, |_, _| true);
}

const AGNOSTIC: &str = "hidden = [12, 12]\nnum_masks = 5\norder_agnostic = true\nmask_seed = 3";

#[test]
fn every_mask_and_the_ensemble_sum_to_one() {
    let _rng = crate::test_rng_lock();
    for extra in ["hidden = [9]", AGNOSTIC, "hidden = [9, 7]\nnum_masks = 3"] {
        let c = cfg("made", extra, "bars-and-stripes", "", "");
        tch::manual_seed(1);
        let m = made(&c, &binary_rows(10)).unwrap();
        randomize(&m, 1.0);
        let x = all_binary_vectors(10, Device::Cpu);
        for k in 0..m.num_masks() {
            let total = tch::no_grad(|| m.log_prob_mask(&x, k))
                .to_kind(Kind::Double)
                .exp()
                .sum(Kind::Double)
                .double_value(&[]);
            assert!(
                (total - 1.0).abs() < 1e-5,
                "{extra}: mask {k} sums to {total}"
            );
        }
        assert_sums_to_one(&m);
    }
}

#[test]
fn every_mask_is_autoregressive_in_its_ordering() {
    let _rng = crate::test_rng_lock();
    for extra in [
        "hidden = [9]",
        AGNOSTIC,
        "hidden = [9, 7]\nnum_masks = 3\nordering = \"random\"",
    ] {
        let c = cfg("made", extra, "bars-and-stripes", "", "");
        tch::manual_seed(2);
        let m = made(&c, &binary_rows(8)).unwrap();
        randomize(&m, 1.0);
        for k in 0..m.num_masks() {
            let order = m.mask_ordering(k).to_vec();
            let o = Tensor::from_slice(&order);
            assert_autoregressive(|x| m.logits_with_mask(x, k).index_select(1, &o), &order);
        }
    }
}

#[test]
fn masks_differ_and_the_ensemble_is_the_log_mean_of_the_masks() {
    let _rng = crate::test_rng_lock();
    let c = cfg("made", AGNOSTIC, "bars-and-stripes", "", "");
    tch::manual_seed(3);
    let m = made(&c, &binary_rows(6)).unwrap();
    randomize(&m, 1.0);
    let orders: Vec<Vec<i64>> = (0..m.num_masks())
        .map(|k| m.mask_ordering(k).to_vec())
        .collect();
    assert!(
        orders.windows(2).any(|w| w[0] != w[1]),
        "order-agnostic masks share one ordering"
    );
    let x = all_binary_vectors(6, Device::Cpu);
    // Mixture probabilities in f64 from each mask's probabilities, averaged in linear space.
    let mean_p = (0..m.num_masks())
        .map(|k| m.log_prob_mask(&x, k).to_kind(Kind::Double).exp())
        .fold(Tensor::zeros([64], (Kind::Double, Device::Cpu)), |a, p| {
            a + p
        })
        / m.num_masks() as f64;
    let ens = m.log_prob_ensemble(&x).to_kind(Kind::Double);
    let diff = (ens - mean_p.log()).abs().max().double_value(&[]);
    assert!(
        diff < 1e-5,
        "ensemble differs from log mean_m p_m by {diff}"
    );
    // Not order-agnostic: every mask keeps the base ordering, connectivity still differs.
    let c = cfg(
        "made",
        "hidden = [12]\nnum_masks = 3",
        "bars-and-stripes",
        "",
        "",
    );
    let m = made(&c, &binary_rows(6)).unwrap();
    assert!((0..3).all(|k| m.mask_ordering(k) == [0, 1, 2, 3, 4, 5]));
    let x = Tensor::randn([4, 6], (Kind::Float, Device::Cpu));
    assert!(
        (m.logits_with_mask(&x, 0) - m.logits_with_mask(&x, 1))
            .abs()
            .max()
            .double_value(&[])
            > 0.0
    );
}

#[test]
fn connectivity_agnostic_training_fits_bars_and_stripes_and_samples_match() {
    let _rng = crate::test_rng_lock();
    let patterns = bars_and_stripes_patterns(3).reshape([-1, 9]);
    let target = crate::common::empirical_distribution(&patterns);
    let x = patterns.repeat([8, 1]);
    let c = cfg(
        "made",
        "hidden = [64, 64]\nnum_masks = 4\norder_agnostic = true",
        "bars-and-stripes",
        "",
        "lr = 0.02",
    );
    tch::manual_seed(5);
    let mut m = made(&c, &dataset_of(&x, true)).unwrap();
    let before = total_variation(&exact_distribution(&m), &target);
    train(&mut m, &x, 600);
    let after = total_variation(&exact_distribution(&m), &target);
    eprintln!("MADE on bars and stripes: TV to the target {before:.3} -> {after:.3}");
    assert!(
        after < 0.08,
        "MADE ensemble vs uniform bars and stripes: TV {after} (start {before})"
    );
    assert_sums_to_one(&m);
    assert_samples_match(&m, 20_000, 0.03);
    let lls = m.log_likelihoods(&patterns, &c).unwrap();
    assert_eq!(lls.len(), 2);
    assert!(lls.iter().all(|l| l.kind == LikelihoodKind::Exact));
    assert!(
        lls[0].nll() > 14f64.ln() - 1e-3 && lls[0].nll() < 14f64.ln() + 0.3,
        "{:?}",
        lls[0]
    );
}

#[test]
fn sample_shapes_and_values() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "made",
        "hidden = [8]\nnum_masks = 2",
        "bars-and-stripes",
        "",
        "",
    );
    let d = load(&c);
    let m = made(&c, &d).unwrap();
    let s = m.sample(7).unwrap();
    assert_eq!(s.size(), vec![7, 1, 4, 4]);
    assert_eq!(s.eq(1.0).logical_or(&s.eq(0.0)).all().int64_value(&[]), 1);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("made", "num_mask = 3", "bars-and-stripes", "", "");
    let err = parse_params::<MadeConfig>("made", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("num_mask"), "{err}");
    let data = binary_rows(3);
    for (extra, field) in [
        ("hidden = []", "model.hidden"),
        ("hidden = [4, 0]", "model.hidden"),
        ("num_masks = 0", "model.num_masks"),
    ] {
        assert_config_error(
            made(&cfg("made", extra, "bars-and-stripes", "", ""), &data),
            field,
        );
    }
    let real = dataset_of(&Tensor::rand([10, 3], (Kind::Float, Device::Cpu)), false);
    assert_config_error(
        made(&cfg("made", "", "two-moons", "", ""), &real),
        "data.binarize",
    );
    assert_config_error(
        made(
            &cfg("made", "", "bars-and-stripes", "", ""),
            &binary_rows(1),
        ),
        "data",
    );
}
