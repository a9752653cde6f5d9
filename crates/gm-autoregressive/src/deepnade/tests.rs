use super::*;
use crate::common::{
    all_binary_vectors, empirical_distribution, state_index, total_variation, Autoregressive,
};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::{bars_and_stripes_patterns, Dataset};
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn deep_nade(c: &RunConfig, d: &Dataset) -> gm_core::Result<DeepNade> {
    let p: DeepNadeConfig = parse_params("deep-nade", &c.model.params)?;
    DeepNade::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

fn randomize(m: &DeepNade, scale: f64) {
    gm_core::kit::randomize(m.var_stores()[0].1, scale, |_, _| true);
}

/// A random model on `d` binary variables.
fn random_model(extra: &str, d: i64, seed: i64) -> DeepNade {
    let c = cfg("deep-nade", extra, "bars-and-stripes", "", "");
    tch::manual_seed(seed);
    let m = deep_nade(&c, &binary_rows(d)).unwrap();
    randomize(&m, 0.7);
    m
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().to_kind(Kind::Double).double_value(&[])
}

const ENSEMBLE: &str = "hidden = [12, 9]\nensemble_orderings = 4\nordering_seed = 5";

#[test]
fn every_ordering_and_the_ensemble_sum_to_one() {
    let _rng = crate::test_rng_lock();
    for extra in [
        "hidden = [9]",
        ENSEMBLE,
        "hidden = [8, 8, 8]\nensemble_orderings = 3\nordering = \"random\"",
    ] {
        let m = random_model(extra, 10, 1);
        let x = all_binary_vectors(10, Device::Cpu);
        for k in 0..m.num_orderings() {
            let total = tch::no_grad(|| m.log_prob_ordering(&x, k))
                .to_kind(Kind::Double)
                .exp()
                .sum(Kind::Double)
                .double_value(&[]);
            assert!(
                (total - 1.0).abs() < 1e-5,
                "{extra}: ordering {k} sums to {total}"
            );
        }
        assert_sums_to_one(&m);
    }
    // The K orderings differ, and ordering 0 is the identity unless asked otherwise.
    let m = random_model(ENSEMBLE, 10, 1);
    assert_eq!(m.ordering(0), (0..10).collect::<Vec<_>>().as_slice());
    assert!((1..4).all(|k| m.ordering(k) != m.ordering(0)));
}

#[test]
fn batched_prefix_logits_equal_one_network_pass_per_prefix() {
    let _rng = crate::test_rng_lock();
    let m = random_model(ENSEMBLE, 7, 2);
    let x = all_binary_vectors(7, Device::Cpu).narrow(0, 40, 20);
    for k in 0..m.num_orderings() {
        let o = m.ordering(k).to_vec();
        let fast = m.step_logits(&x, &Tensor::from_slice(&o));
        // Reference: D passes of the network, prefix i observed, read output o_i.
        let observed = Tensor::zeros([20, 7], (Kind::Float, Device::Cpu));
        for (i, &v) in o.iter().enumerate() {
            let slow = m.logits(&x, &observed).select(1, v);
            let diff = max_abs(&(fast.select(1, i as i64) - slow));
            assert!(
                diff < 1e-5,
                "ordering {k}, step {i}: |fast − slow| = {diff}"
            );
            let _ = observed.select(1, v).fill_(1.0);
        }
    }
    // Per-row orderings give the same as one ordering per call.
    let orders = Tensor::stack(
        &(0..20)
            .map(|r| Tensor::from_slice(m.ordering((r % 4) as usize)))
            .collect::<Vec<_>>(),
        0,
    );
    let per_row = m.step_logits(&x, &orders);
    for r in 0..20 {
        let one = m.step_logits(
            &x.narrow(0, r, 1),
            &Tensor::from_slice(m.ordering((r % 4) as usize)),
        );
        assert!(max_abs(&(per_row.narrow(0, r, 1) - one)) < 1e-6);
    }
}

#[test]
fn conditionals_are_autoregressive_in_every_ordering() {
    let _rng = crate::test_rng_lock();
    for extra in [ENSEMBLE, "hidden = [6]\nensemble_orderings = 2"] {
        let m = random_model(extra, 8, 3);
        for k in 0..m.num_orderings() {
            let order = m.ordering(k).to_vec();
            let o = Tensor::from_slice(&order);
            assert_autoregressive(|x| m.step_logits(x, &o), &order);
        }
    }
    // One pass on [x ⊙ m, m]: no output depends on a missing input.
    let m = random_model(ENSEMBLE, 8, 3);
    let x = Tensor::randn([5, 8], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let observed = Tensor::from_slice(&[1f32, 0., 0., 1., 0., 1., 1., 0.]).unsqueeze(0);
    let y = m.logits(&x, &observed).sum(Kind::Float);
    let g = Tensor::run_backward(&[y], &[&x], false, false)
        .pop()
        .unwrap();
    let g: Vec<f32> = Vec::try_from(g.abs().sum_dim_intlist(0, false, Kind::Float)).unwrap();
    for (i, gi) in g.iter().enumerate() {
        if [1, 2, 4, 7].contains(&i) {
            assert_eq!(*gi, 0.0, "missing input {i} reaches the outputs");
        } else {
            assert!(*gi > 0.0, "observed input {i} is ignored");
        }
    }
}

/// log p(x_missing | x_observed) by enumeration of the joint under ordering `o`: log p(x | o)
/// minus the log of its sum over all states that agree with x on the observed variables.
fn conditional_by_enumeration(m: &DeepNade, o: &[i64], obs: &[i64]) -> Tensor {
    let d = m.dim();
    let all = all_binary_vectors(d, Device::Cpu);
    let joint = tch::no_grad(|| {
        m.step_log_probs(&all, &Tensor::from_slice(o))
            .sum_dim_intlist(-1, false, Kind::Float)
    })
    .to_kind(Kind::Double);
    let key = state_index(&all.index_select(1, &Tensor::from_slice(obs)));
    let groups = 1i64 << obs.len();
    let log_marg = Tensor::zeros([groups], (Kind::Double, Device::Cpu));
    for g in 0..groups {
        let rows = key.eq(g).nonzero().squeeze_dim(1);
        log_marg
            .get(g)
            .copy_(&joint.index_select(0, &rows).logsumexp([0], false));
    }
    &joint - log_marg.index_select(0, &key)
}

#[test]
fn subset_inference_equals_the_ratio_of_enumerated_joints() {
    let _rng = crate::test_rng_lock();
    let m = random_model(ENSEMBLE, 8, 4);
    let all = all_binary_vectors(8, Device::Cpu);
    let base = m.ordering(2).to_vec();
    for obs in [
        vec![1i64, 4, 6],
        vec![],
        vec![0, 1, 2, 3, 4, 5, 7],
        vec![7, 2],
    ] {
        let mut mask = vec![0f32; 8];
        for &i in &obs {
            mask[i as usize] = 1.0;
        }
        let observed = Tensor::from_slice(&mask).unsqueeze(0).repeat([256, 1]);
        // The ordering the model should use: observed first, then missing, each in base order.
        let o: Vec<i64> = base
            .iter()
            .copied()
            .filter(|v| obs.contains(v))
            .chain(base.iter().copied().filter(|v| !obs.contains(v)))
            .collect();
        let orders = m.observed_first_orders(&observed, &base).unwrap();
        assert_eq!(orders.get(0), Tensor::from_slice(&o));
        let expect = conditional_by_enumeration(&m, &o, &obs);
        let got = m
            .log_prob_missing(&all, &observed, &base)
            .unwrap()
            .to_kind(Kind::Double);
        let diff = max_abs(&(got - &expect));
        assert!(
            diff < 1e-5,
            "observed {obs:?}: |model − enumeration| = {diff}"
        );
    }
    // Rows with different observed sets in one batch agree with their own enumerations.
    tch::manual_seed(9);
    let observed = Tensor::rand([256, 8], (Kind::Float, Device::Cpu)).lt(0.4);
    let got = m.log_prob_missing(&all, &observed, &base).unwrap();
    for r in [0i64, 17, 100, 255] {
        let row: Vec<bool> = Vec::try_from(observed.get(r)).unwrap();
        let obs: Vec<i64> = (0..8).filter(|&i| row[i as usize]).collect();
        let o: Vec<i64> = base
            .iter()
            .copied()
            .filter(|v| obs.contains(v))
            .chain(base.iter().copied().filter(|v| !obs.contains(v)))
            .collect();
        let expect = conditional_by_enumeration(&m, &o, &obs).get(r);
        let diff = max_abs(&(got.get(r).to_kind(Kind::Double) - expect));
        assert!(diff < 1e-5, "row {r} (observed {obs:?}): {diff}");
    }
}

#[test]
fn conditional_samples_match_the_conditional_distribution() {
    let _rng = crate::test_rng_lock();
    let m = random_model(ENSEMBLE, 8, 5);
    let base = m.ordering(1).to_vec();
    // Two observed sets with different sizes in one batch.
    let x0 = Tensor::from_slice(&[1f32, 0., 1., 1., 0., 0., 1., 0.]);
    let obs_a = Tensor::from_slice(&[1f32, 0., 1., 0., 0., 0., 0., 1.]);
    let obs_b = Tensor::from_slice(&[0f32, 1., 1., 1., 1., 0., 1., 1.]);
    let n = 20_000;
    let x = x0.unsqueeze(0).repeat([2 * n, 1]);
    let observed = Tensor::cat(
        &[
            obs_a.unsqueeze(0).repeat([n, 1]),
            obs_b.unsqueeze(0).repeat([n, 1]),
        ],
        0,
    );
    tch::manual_seed(12);
    let s = m.sample_missing(&x, &observed, &base).unwrap();
    let kept = (&s - &x) * &observed;
    assert_eq!(max_abs(&kept), 0.0, "observed values changed");
    let all = all_binary_vectors(8, Device::Cpu);
    for (g, obs) in [(0, &obs_a), (1, &obs_b)] {
        // Exact conditional over the states that agree with x0 where observed.
        let agree = ((&all - x0.unsqueeze(0)) * obs.unsqueeze(0))
            .abs()
            .sum_dim_intlist(1, false, Kind::Float)
            .eq(0.0)
            .to_kind(Kind::Double);
        let lp = m
            .log_prob_missing(&all, &obs.unsqueeze(0).repeat([256, 1]), &base)
            .unwrap()
            .to_kind(Kind::Double);
        let exact = lp.exp() * &agree;
        let total = exact.sum(Kind::Double).double_value(&[]);
        assert!((total - 1.0).abs() < 1e-5, "conditional sums to {total}");
        let emp = empirical_distribution(&s.narrow(0, g * n, n));
        let tv = total_variation(&emp, &exact);
        eprintln!("deep-nade conditional samples, observed set {g}: TV {tv:.4}");
        assert!(tv < 0.03, "observed set {g}: TV {tv}");
    }
}

#[test]
fn ensemble_samples_match_the_ensemble_distribution() {
    let _rng = crate::test_rng_lock();
    let m = random_model(ENSEMBLE, 8, 6);
    let tv = assert_samples_match(&m, 20_000, 0.03);
    eprintln!("deep-nade ensemble samples: TV {tv:.4}");
}

#[test]
fn the_training_loss_is_unbiased_for_the_nll_averaged_over_orderings() {
    let _rng = crate::test_rng_lock();
    let m = random_model("hidden = [6, 5]", 4, 7);
    let x = Tensor::from_slice(&[1f32, 0., 1., 1.]).unsqueeze(0);
    // Exact: the mean of −log p(x | o) over all 24 orderings of 4 variables.
    let mut orders = Vec::new();
    for a in 0..4i64 {
        for b in 0..4 {
            for c in 0..4 {
                for d in 0..4 {
                    let o = [a, b, c, d];
                    let mut s = o.to_vec();
                    s.sort();
                    if s == [0, 1, 2, 3] {
                        orders.push(o);
                    }
                }
            }
        }
    }
    assert_eq!(orders.len(), 24);
    let exact: f64 = orders
        .iter()
        .map(|o| {
            -m.step_log_probs(&x, &Tensor::from_slice(o))
                .sum(Kind::Double)
                .double_value(&[])
        })
        .sum::<f64>()
        / 24.0;
    tch::manual_seed(13);
    let n = 200_000;
    let losses = tch::no_grad(|| m.order_agnostic_loss(&x.repeat([n, 1]))).to_kind(Kind::Double);
    let mean = losses.mean(Kind::Double).double_value(&[]);
    let se = losses.std(true).double_value(&[]) / (n as f64).sqrt();
    eprintln!("order-agnostic loss: Monte Carlo {mean:.4} ± {se:.4}, exact {exact:.4}");
    assert!(
        (mean - exact).abs() < 4.0 * se + 1e-4,
        "E[loss] = {mean} ± {se}, mean NLL over orderings {exact}"
    );
}

#[test]
fn order_agnostic_training_fits_bars_and_stripes_and_samples_match() {
    let _rng = crate::test_rng_lock();
    let patterns = bars_and_stripes_patterns(3).reshape([-1, 9]);
    let target = empirical_distribution(&patterns);
    let x = patterns.repeat([8, 1]);
    let c = cfg(
        "deep-nade",
        "hidden = [64, 64]\nensemble_orderings = 4",
        "bars-and-stripes",
        "",
        "lr = 0.01",
    );
    tch::manual_seed(5);
    let mut m = deep_nade(&c, &dataset_of(&x, true)).unwrap();
    let nll = |m: &DeepNade| -> f64 {
        -m.log_prob_ensemble(&patterns)
            .mean(Kind::Double)
            .double_value(&[])
    };
    let (before, nll_before) = (total_variation(&exact_distribution(&m), &target), nll(&m));
    train(&mut m, &x, 1000);
    let (after, nll_after) = (total_variation(&exact_distribution(&m), &target), nll(&m));
    eprintln!(
        "deep-nade on bars and stripes: ensemble NLL {nll_before:.3} -> {nll_after:.3} \
         (optimum ln 14 = {:.3}), TV to the target {before:.3} -> {after:.3}",
        14f64.ln()
    );
    assert!(nll_after < 14f64.ln() + 0.3, "NLL {nll_after}");
    assert!(
        nll_before - nll_after > 2.0,
        "NLL {nll_before} -> {nll_after}"
    );
    assert!(after < 0.1, "TV {after} (start {before})");
    assert_sums_to_one(&m);
    assert_samples_match(&m, 20_000, 0.03);
    let lls = m.log_likelihoods(&patterns, &c).unwrap();
    assert_eq!(lls.len(), 3);
    assert!(lls.iter().all(|l| l.kind == LikelihoodKind::Exact));
    assert!((lls[1].nll() - nll_after).abs() < 1e-4);
}

#[test]
fn log_likelihoods_respect_the_limit_and_the_ensemble_is_the_log_mean() {
    let _rng = crate::test_rng_lock();
    let m = random_model(ENSEMBLE, 6, 8);
    let x = all_binary_vectors(6, Device::Cpu);
    let mut c = cfg("deep-nade", ENSEMBLE, "bars-and-stripes", "", "");
    c.eval.limit = Some(50);
    let lls = m.log_likelihoods(&x, &c).unwrap();
    assert!(lls.iter().all(|l| l.n == 50));
    let xs = x.narrow(0, 0, 50);
    let per: Vec<Tensor> = (0..4)
        .map(|k| m.log_prob_ordering(&xs, k).to_kind(Kind::Double))
        .collect();
    let single = per[0].mean(Kind::Double).double_value(&[]);
    let mean_p = per.iter().map(|t| t.exp()).fold(
        xs.zeros_like().select(1, 0).to_kind(Kind::Double),
        |a, p| a + p,
    ) / 4.0;
    let ens = mean_p.log().mean(Kind::Double).double_value(&[]);
    assert!((lls[0].mean - single).abs() < 1e-6, "{lls:?}");
    assert!((lls[1].mean - ens).abs() < 1e-6, "{lls:?}");
    assert!(lls[1].method.contains("eonade"));
}

#[test]
fn completion_figures_keep_the_observed_pixels() {
    let _rng = crate::test_rng_lock();
    let c = cfg("deep-nade", "hidden = [16]", "bars-and-stripes", "", "");
    let d = load(&c);
    tch::manual_seed(4);
    let m = deep_nade(&c, &d).unwrap();
    let x = d.test.x.narrow(0, 0, 6);
    let figs = m.figures(&x).unwrap();
    let names: Vec<&str> = figs.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["completion-bottom-half", "completion-square"]);
    for (f, hidden) in figs.iter().zip([8.0, 4.0]) {
        // Each row: masked input, 5 completions, the image.
        assert_eq!(f.per_row, 7);
        assert_eq!(f.images.size(), vec![6 * 7, 1, 4, 4]);
        let rows = f.images.view([6, 7, 16]);
        assert_eq!(rows.select(1, 6), x.reshape([6, 16]));
        let truth = rows.select(1, 6);
        // Grey marks the hidden pixels; completions agree with the image elsewhere.
        let observed = rows.select(1, 0).ne(0.5).to_kind(Kind::Float);
        let missing = 16.0 - observed.sum(Kind::Double).double_value(&[]) / 6.0;
        assert_eq!(missing, hidden, "{}: hidden pixels per image", f.name);
        let done = rows.narrow(1, 1, 5);
        let diff = ((&done - truth.unsqueeze(1)) * observed.unsqueeze(1))
            .abs()
            .max();
        assert_eq!(diff.double_value(&[]), 0.0, "{}", f.name);
        assert_eq!(
            done.eq(1.0)
                .logical_or(&done.eq(0.0))
                .all()
                .int64_value(&[]),
            1
        );
    }
    // Bottom half: the bottom two rows are hidden.
    let shown = figs[0].images.view([6, 7, 4, 4]).select(1, 0);
    assert_eq!(shown.narrow(1, 2, 2).eq(0.5).all().int64_value(&[]), 1);
}

#[test]
fn completion_through_the_capability_draws_the_enumerated_conditional() {
    let _rng = crate::test_rng_lock();
    // A random 8-variable model viewed as a 2×4 image; the bottom row is hidden.
    let m = random_model(ENSEMBLE, 8, 6);
    let comp = m.as_completion().expect("deep-nade completes");
    assert_eq!(
        comp.completion_kind(),
        gm_core::model::CompletionKind::Exact
    );
    let mask = gm_core::masks::MaskSpec::BottomHalf
        .build(1, &[1, 2, 4], 0, Device::Cpu)
        .unwrap()
        .reshape([1, 8]);
    let x0 = Tensor::from_slice(&[0f32, 1., 1., 0., 1., 1., 0., 1.]).unsqueeze(0);
    let n = 20_000;
    tch::manual_seed(13);
    let s = comp
        .complete(&x0.repeat([n, 1]), &mask.repeat([n, 1]))
        .unwrap();
    assert_eq!(
        max_abs(&((&s - &x0) * &mask)),
        0.0,
        "observed values changed"
    );
    // The conditional by enumeration of the joint under the ordering that takes the
    // observed variables first (in ordering 0), then the hidden ones.
    let o: Vec<i64> = m
        .ordering(0)
        .iter()
        .copied()
        .filter(|&v| v < 4)
        .chain(m.ordering(0).iter().copied().filter(|&v| v >= 4))
        .collect();
    let all = all_binary_vectors(8, Device::Cpu);
    let agree = all
        .narrow(1, 0, 4)
        .eq_tensor(&x0.narrow(1, 0, 4))
        .all_dim(1, false)
        .to_kind(Kind::Double);
    let exact = conditional_by_enumeration(&m, &o, &[0, 1, 2, 3]).exp() * &agree;
    let tv = total_variation(&empirical_distribution(&s), &exact);
    eprintln!("deep-nade completion of a hidden bottom row (16 states): TV {tv:.4}");
    assert!(tv < 0.025, "TV {tv}");
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("deep-nade", "orderings = 3", "bars-and-stripes", "", "");
    let err = parse_params::<DeepNadeConfig>("deep-nade", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("orderings"), "{err}");
    let data = binary_rows(3);
    for (extra, field) in [
        ("hidden = []", "model.hidden"),
        ("hidden = [4, 0]", "model.hidden"),
        ("hidden = [-3]", "model.hidden"),
        ("ensemble_orderings = 0", "model.ensemble_orderings"),
        ("ensemble_orderings = 5000", "model.ensemble_orderings"),
    ] {
        assert_config_error(
            deep_nade(&cfg("deep-nade", extra, "bars-and-stripes", "", ""), &data),
            field,
        );
    }
    let real = dataset_of(&Tensor::rand([10, 3], (Kind::Float, Device::Cpu)), false);
    assert_config_error(
        deep_nade(&cfg("deep-nade", "", "two-moons", "", ""), &real),
        "data.binarize",
    );
    let m = random_model("hidden = [4]", 3, 1);
    assert!(m
        .log_prob_missing(
            &Tensor::zeros([1, 3], (Kind::Float, Device::Cpu)),
            &Tensor::zeros([1, 3], (Kind::Float, Device::Cpu)),
            &[0, 1, 1]
        )
        .is_err());
}
