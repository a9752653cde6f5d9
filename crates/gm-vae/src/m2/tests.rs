use super::*;
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::model::{BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn cfg(model: &str, data: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 3\n[model]\nname = \"m2\"\n{model}\n[data]\ndataset = \"bars-and-stripes\"\n{data}\n[optim]\nlr = 0.003\n"
    ))
    .unwrap()
}

fn load(c: &RunConfig) -> Dataset {
    data::load(&c.data.dataset, &c.data.options).unwrap()
}

fn m2(c: &RunConfig, d: &Dataset) -> gm_core::Result<M2> {
    let p: M2Config = gm_core::model::parse_params("m2", &c.model.params)?;
    M2::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// Exact log p(x) = log (1/C) Σ_c ∫ p(x | c, z) p(z) dz of a 1-D-latent M2, by quadrature.
fn exact_log_px(m: &M2, x: &Tensor) -> Tensor {
    let grid = Tensor::linspace(-12.0, 12.0, 24001, (Kind::Float, Device::Cpu)).view([-1, 1]);
    let dz: f64 = 24.0 / 24000.0;
    let xs = x.reshape([-1, m.dim]).to_kind(Kind::Double);
    let log_pz = grid.to_kind(Kind::Double).view([-1, 1]).square() * -0.5
        - 0.5 * (2.0 * std::f64::consts::PI).ln();
    let per_class: Vec<Tensor> = (0..m.classes)
        .map(|c| {
            let code = Tensor::from_slice(&[c])
                .one_hot(m.classes)
                .to_kind(Kind::Float);
            let out = tch::no_grad(|| m.decode_logits(&grid, &code))
                .to_kind(Kind::Double)
                .unsqueeze(1); // [G, 1, D]
            let log_px_z = (&out * &xs - out.softplus()).sum_dim_intlist(-1, false, Kind::Double);
            (log_px_z + &log_pz).logsumexp([0], false) + dz.ln() // [N]
        })
        .collect();
    Tensor::stack(&per_class, 0).logsumexp([0], false) - (m.classes as f64).ln()
}

#[test]
fn summing_out_y_equals_a_brute_force_sum_and_the_estimates_bracket_the_exact_value() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "latent = 1\nhidden = [8]\nclassifier_hidden = [8]",
        "bars_size = 2",
    );
    let d = load(&c);
    tch::manual_seed(0);
    let mut m = m2(&c, &d).unwrap();
    for _ in 0..150 {
        m.train_step(&Batch::labelled(&d.train.x, d.train.y.as_ref().unwrap()))
            .unwrap();
    }
    let x = gm_core::data::bars_and_stripes_patterns(2);
    // U(x) from the enumeration against a loop over the classes written out in f64.
    let b = tch::no_grad(|| m.bounds(&x));
    let u = b.unlabelled().to_kind(Kind::Double);
    let (per, lq) = (
        b.per_class.to_kind(Kind::Double),
        b.log_q_y.to_kind(Kind::Double),
    );
    for i in 0..x.size()[0] {
        let mut want = 0.0;
        for c in 0..m.classes {
            let q = lq.double_value(&[i, c]).exp();
            want += q * per.double_value(&[c, i]) - q * q.ln();
        }
        approx::assert_abs_diff_eq!(u.double_value(&[i]), want, epsilon = 1e-4);
    }
    // The exact likelihood of all 16 binary images sums to one; the pooled importance
    // estimate with k = 5000 per class matches it, and E[U(x)] lies below it.
    let bits = gm_core::kit::all_binary_vectors(4, Device::Cpu);
    let total = exact_log_px(&m, &bits)
        .exp()
        .sum(Kind::Double)
        .double_value(&[]);
    approx::assert_abs_diff_eq!(total, 1.0, epsilon = 1e-4);
    let exact = exact_log_px(&m, &x).mean(Kind::Double).double_value(&[]);
    let mut run = c.clone();
    run.eval.is_samples = 5000;
    run.eval.chunk = 2;
    tch::manual_seed(1);
    let lls = m.log_likelihoods(&x, &run).unwrap();
    assert_eq!(lls[0].kind, LikelihoodKind::LowerBound);
    assert_eq!(lls[1].kind, LikelihoodKind::StochasticEstimate);
    let reps = x.repeat([2000, 1, 1, 1]);
    let u_mean = tch::no_grad(|| m.bounds(&reps).unlabelled())
        .mean(Kind::Double)
        .double_value(&[]);
    eprintln!(
        "exact {exact:.5}, IS {:.5}, E[U] {u_mean:.5}, U record {:.5}",
        lls[1].mean, lls[0].mean
    );
    assert!(
        (lls[1].mean - exact).abs() < 0.01,
        "IS {} vs exact {exact}",
        lls[1].mean
    );
    assert!(u_mean < exact, "E[U(x)] {u_mean} above log p(x) {exact}");
}

/// Classification error of q(y | x) on the 30 bars-and-stripes patterns of side 4.
fn pattern_error(m: &M2) -> f64 {
    let x = gm_core::data::bars_and_stripes_patterns(4);
    let y = Tensor::arange(30, (Kind::Int64, Device::Cpu))
        .ge(16)
        .to_kind(Kind::Int64);
    let pred = tch::no_grad(|| m.log_q_y(&x)).argmax(1, false);
    pred.ne_tensor(&y)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[])
}

/// M2 with 4 of the labels (2 per class) and every image, against the same model given only
/// the 4 labelled images, whose classifier is then trained on their cross-entropy alone.
fn semi_supervised_and_labelled_only(model: &str, seed: i64, steps: usize) -> (f64, f64) {
    let c = cfg(model, "");
    let d = load(&c);
    let (x, y) = (&d.train.x, d.train.y.as_ref().unwrap());
    let observed = &d.observed_labels(Some(4), 3).unwrap().unwrap();
    let keep = observed.nonzero().squeeze_dim(1);
    let labelled = Batch::labelled(&x.index_select(0, &keep), &y.index_select(0, &keep));
    tch::manual_seed(seed);
    let mut semi = m2(&c, &d).unwrap();
    tch::manual_seed(seed);
    let mut alone = m2(&c, &d).unwrap();
    let n = x.size()[0];
    for step in 0..steps {
        let i = (step as i64 * 64) % (n - 64);
        let batch = Batch {
            x: x.narrow(0, i, 64),
            y: Some(y.narrow(0, i, 64)),
            observed: Some(observed.narrow(0, i, 64)),
        };
        // Every step also shows the labelled examples, as Kingma et al.'s labelled stream.
        semi.train_step(&batch).unwrap();
        semi.train_step(&labelled).unwrap();
        alone.train_step(&labelled).unwrap();
    }
    (pattern_error(&semi), pattern_error(&alone))
}

#[test]
#[ignore = "fails today: on bars-and-stripes with 4 labels M2's pattern error is 0.37-0.43 against 0.30-0.33 for the labelled examples alone (latent 1-2, alpha 0.1-1, seeds 0-1, 800 steps): cause not yet established"]
fn with_few_labels_m2_classifies_better_than_its_classifier_on_the_labels_alone() {
    let _rng = crate::test_rng_lock();
    let model = "latent = 2\nhidden = [32]\nclassifier_hidden = [32]\nalpha = 1.0";
    let (semi, alone) = semi_supervised_and_labelled_only(model, 0, 800);
    eprintln!("pattern error: M2 {semi:.3}, labelled only {alone:.3}");
    assert!(semi + 0.1 < alone, "M2 {semi} vs labelled only {alone}");
}

#[test]
fn m2_refuses_real_valued_data_and_bad_fields() {
    let _rng = crate::test_rng_lock();
    for (model, field) in [
        ("latent = 0", "model.latent"),
        ("alpha = -1.0", "model.alpha"),
        ("hidden = [0]", "model.hidden"),
        ("classifier_hidden = [-3]", "model.classifier_hidden"),
    ] {
        let c = cfg(model, "");
        match m2(&c, &load(&c)) {
            Err(e) => assert!(e.to_string().contains(field), "{model}: {e}"),
            Ok(_) => panic!("{model}: accepted"),
        }
    }
    let c = RunConfig::from_toml_str("[model]\nname = \"m2\"\n[data]\ndataset = \"two-moons\"\n")
        .unwrap();
    let e = m2(&c, &load(&c)).err().expect("two-moons is real-valued");
    assert!(e.to_string().contains("data.binarize"), "{e}");
}

#[test]
fn the_classification_error_statistic_counts_wrong_argmax_labels() {
    let _rng = crate::test_rng_lock();
    let c = cfg("latent = 2\nhidden = [8]\nclassifier_hidden = [8]", "");
    let d = load(&c);
    tch::manual_seed(0);
    let m = m2(&c, &d).unwrap();
    let stats = m.statistics(&d.test, &c).unwrap();
    let (x, y) = (&d.test.x, d.test.y.as_ref().unwrap());
    let lq = tch::no_grad(|| m.log_q_y(x));
    let mut wrong = 0;
    for i in 0..x.size()[0] {
        let (q0, q1) = (lq.double_value(&[i, 0]), lq.double_value(&[i, 1]));
        let pred = i64::from(q1 > q0);
        wrong += i64::from(pred != y.int64_value(&[i]));
    }
    let want = wrong as f64 / x.size()[0] as f64;
    assert_eq!(
        stats[0].kind,
        gm_core::model::StatisticKind::ClassificationError
    );
    approx::assert_abs_diff_eq!(stats[0].value, want, epsilon = 1e-12);
    assert!(
        want > 0.0 && want < 1.0,
        "{want}: pick a case with both outcomes"
    );
}

/// With `[data] labelled = 4`, every training step's cross-entropy term sees
/// `labelled_batch` draws of exactly the 4 observed examples, with their labels;
/// `labelled_batch = 0` draws none.
#[test]
fn training_steps_draw_from_the_observed_labels() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    let c = cfg("labelled_batch = 50", "labelled = 4");
    let d = load(&c);
    let m = m2(&c, &d).unwrap();
    let observed = d.observed_labels(Some(4), 3).unwrap().unwrap();
    let keep = observed.nonzero().squeeze_dim(1);
    let (px, py) = (
        d.train.x.index_select(0, &keep).flatten(1, -1),
        d.train.y.as_ref().unwrap().index_select(0, &keep),
    );
    let (x, y) = m.labelled_draw().expect("a draw");
    assert_eq!(x.size()[0], 50);
    // Each drawn image is one of the pool's, and carries that example's label.
    let dist = (x.flatten(1, -1).unsqueeze(1) - px.unsqueeze(0))
        .abs()
        .sum_dim_intlist(-1, false, Kind::Float);
    let (best, which) = dist.min_dim(1, false);
    assert_eq!(best.max().double_value(&[]), 0.0);
    assert!(y.equal(&py.index_select(0, &which).to_kind(Kind::Int64)));
    let none = cfg("labelled_batch = 0", "labelled = 4");
    assert!(m2(&none, &d).unwrap().labelled_draw().is_none());
    assert!(m2(&cfg("", ""), &d).unwrap().labelled_draw().is_none());
}
