//! Checks of the MP-DBM: its mean-field fixed point is a stationary point of the
//! variational free energy with the inputs clamped (autograd, f64), its Gibbs sampler
//! reaches the marginals of the energy enumerated over every state, multi-prediction
//! training classifies and completes bars and stripes, and bad configs are refused.

use super::*;
use crate::rbm::exact::bit_rows;
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::kit::rows_dataset;
use gm_core::masks::MaskSpec;
use gm_core::model::{parse_params, BuildContext, Complete, Conditional, Model};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn cfg(model: &str, data: &str, optim: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 1\n[model]\nname = \"mp-dbm\"\n{model}\n[data]\n{data}\n[optim]\n{optim}\n"
    ))
    .unwrap()
}

fn build(c: &RunConfig, d: &Dataset) -> gm_core::Result<MpDbm> {
    let p: MpDbmConfig = parse_params("mp-dbm", &c.model.params)?;
    MpDbm::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// A labelled binary dataset of 40 random rows of `d` pixels and `k` classes.
fn labelled_rows(d: i64, k: i64) -> Dataset {
    let x = Tensor::rand([40, d], F64).lt(0.5).to_kind(Kind::Float);
    let mut ds = rows_dataset(&x, true);
    let y = Tensor::arange(40, (Kind::Int64, Device::Cpu)).remainder(k);
    for s in [&mut ds.train, &mut ds.valid, &mut ds.test] {
        s.y = Some(y.copy());
    }
    ds.num_classes = Some(k);
    ds
}

/// An f64 MP-DBM on `d` pixels, `k` classes, hidden sizes `hidden`, every parameter
/// ~ N(0, `scale`²).
fn random_model(d: i64, k: i64, hidden: &str, scale: f64) -> MpDbm {
    let c = cfg(
        &format!("dtype = \"float64\"\nhidden = {hidden}"),
        "dataset = \"bars-and-stripes\"",
        "kind = \"sgd\"\nlr = 0.1",
    );
    let m = build(&c, &labelled_rows(d, k)).unwrap();
    let (w, b, u, cb) = m.params();
    tch::no_grad(|| {
        for t in w.iter().chain(b).chain([u, cb]) {
            t.shallow_clone()
                .copy_(&(Tensor::randn(t.size().as_slice(), F64) * scale));
        }
    });
    m
}

/// E(v, h, y) of states or means, `[N]`, written out from the energy of the module docs.
fn energy(m: &MpDbm, x: &[Tensor], y: &Tensor) -> Tensor {
    let (w, b, u, c) = m.params();
    let mut e = -x[0].matmul(&b[0]) - y.matmul(c);
    for l in 1..x.len() {
        e = e
            - x[l].matmul(&b[l])
            - (x[l - 1].matmul(&w[l - 1]) * &x[l]).sum_dim_intlist(1, false, Kind::Double);
    }
    e - (x[x.len() - 1].matmul(u) * y).sum_dim_intlist(1, false, Kind::Double)
}

#[test]
fn the_fixed_point_is_stationary_for_the_free_energy_with_inputs_clamped() {
    let _rng = gm_core::rng_guard::seeded(11);
    let m = random_model(6, 3, "[4, 3]", 1.0);
    let n = 8;
    let v = Tensor::rand([n, 6], F64).lt(0.5).to_kind(Kind::Double);
    let v_mask = Tensor::rand([n, 6], F64).lt(0.5).to_kind(Kind::Double);
    let y = Tensor::arange(n, (Kind::Int64, Device::Cpu))
        .remainder(3)
        .one_hot(3)
        .to_kind(Kind::Double);
    let y_mask = Tensor::rand([n, 1], F64).lt(0.5).to_kind(Kind::Double);
    let obs = Observed {
        v: &v,
        v_mask: &v_mask,
        y: &y,
        y_mask: &y_mask,
    };
    let q = tch::no_grad(|| m.infer(&obs, 500, false));
    // F(μ) = E(μ) − H(μ) over the free variables, the inputs held at their values.
    let leaves: Vec<Tensor> = q
        .means
        .iter()
        .map(|t| t.detach().set_requires_grad(true))
        .collect();
    let label = q.label.detach().set_requires_grad(true);
    let bern_h = |mu: &Tensor| {
        let one_minus: Tensor = 1.0 - mu;
        -(mu.xlogy(mu) + one_minus.xlogy(&one_minus))
    };
    let free_v: Tensor = 1.0 - &v_mask;
    let free_y: Tensor = 1.0 - &y_mask;
    let mut f = energy(&m, &leaves, &label).sum(Kind::Double);
    // Entropies of the free entries only (an observed 0 or 1 would give 0 · log 0 a NaN
    // gradient): the clamped entries are replaced by constants.
    f -= bern_h(&(&leaves[0] * &free_v + &v_mask * 0.5)).sum(Kind::Double);
    for mu in &leaves[1..] {
        f -= bern_h(mu).sum(Kind::Double);
    }
    let free_label = &label * &free_y + &y_mask / 3.0;
    f -= (-free_label.xlogy(&free_label) * &free_y).sum(Kind::Double);
    let mut inputs: Vec<Tensor> = leaves.iter().map(Tensor::shallow_clone).collect();
    inputs.push(label.shallow_clone());
    let grads = Tensor::run_backward(&[f], &inputs, false, false);
    let worst = |g: &Tensor, free: &Tensor| (g * free).abs().max().double_value(&[]);
    assert!(
        worst(&grads[0], &free_v) < 1e-8,
        "pixels: {}",
        worst(&grads[0], &free_v)
    );
    for (l, g) in grads[1..grads.len() - 1].iter().enumerate() {
        assert!(
            worst(g, &g.ones_like()) < 1e-8,
            "layer {}: {}",
            l + 1,
            worst(g, &g.ones_like())
        );
    }
    // On the simplex the label's gradient is constant over the classes (a multiplier).
    let g = &grads[grads.len() - 1];
    let centred = g - g.mean_dim(1, true, Kind::Double);
    assert!(
        worst(&centred, &free_y) < 1e-8,
        "label: {}",
        worst(&centred, &free_y)
    );
    // Observed variables stay clamped.
    let kept = (&q.means[0] - &v) * &v_mask;
    assert_eq!(kept.abs().max().double_value(&[]), 0.0);
    assert_eq!(
        ((&q.label - &y) * &y_mask).abs().max().double_value(&[]),
        0.0
    );
}

/// Every state of v, h and y of a tiny model: per-layer tensors, the label one-hot, and
/// the normalised probabilities `[S]`.
fn enumerate(m: &MpDbm) -> (Vec<Tensor>, Tensor, Tensor) {
    let units: i64 = m.sizes().iter().sum();
    let k = m.num_classes();
    let bits = bit_rows(0, 1 << units, units, Device::Cpu);
    let s = bits.size()[0];
    let rows = bits.repeat([k, 1]);
    let y = Tensor::arange(k, (Kind::Int64, Device::Cpu))
        .repeat_interleave_self_int(s, 0, None)
        .one_hot(k)
        .to_kind(Kind::Double);
    let mut x = Vec::new();
    let mut col = 0;
    for &n in m.sizes() {
        x.push(rows.narrow(1, col, n));
        col += n;
    }
    let neg_e = tch::no_grad(|| -energy(m, &x, &y));
    let p = (&neg_e - neg_e.logsumexp([0], false)).exp();
    (x, y, p)
}

#[test]
fn gibbs_sampling_reaches_the_enumerated_marginals_with_and_without_a_clamped_label() {
    let _rng = gm_core::rng_guard::seeded(12);
    let m = random_model(3, 2, "[2]", 2.0);
    let (x, y, p) = enumerate(&m);
    let exact = |w: &Tensor| {
        (&x[0] * w.unsqueeze(1)).sum_dim_intlist(0, false, Kind::Double) / w.sum(Kind::Double)
    };
    let chains = 20_000;
    let free = m
        .gibbs_sample(chains, None, 60)
        .mean_dim(0, false, Kind::Double);
    let want = exact(&p);
    let class1 = m
        .sample_class(chains, 1)
        .unwrap()
        .to_kind(Kind::Double)
        .reshape([chains, 3])
        .mean_dim(0, false, Kind::Double);
    let want1 = exact(&(&p * y.select(1, 1)));
    for (got, want) in [(&free, &want), (&class1, &want1)] {
        let d = (got - want).abs().max().double_value(&[]);
        // p(v = 1 | h_1) averaged over 20,000 chains: s.e. below 0.0036 per pixel.
        assert!(d < 0.015, "marginals {got:?} vs exact {want:?}");
    }
    let d = (&want - &want1).abs().max().double_value(&[]);
    assert!(
        d > 0.03,
        "the label must change the marginals for this test to mean anything: {d}"
    );
}

fn bars(model: &str) -> (RunConfig, Dataset) {
    let c = cfg(
        model,
        "dataset = \"bars-and-stripes\"\nbatch_size = 32",
        "kind = \"adam\"\nlr = 0.01",
    );
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    (c, d)
}

/// Fraction of hidden pixels whose rounded Q(v_j = 1) is wrong.
fn completion_error(m: &MpDbm, x: &Tensor, mask: &Tensor) -> f64 {
    let done = tch::no_grad(|| m.complete(x, mask)).unwrap();
    let hidden: Tensor = 1.0 - mask.to_kind(Kind::Double);
    let wrong = done.round().ne_tensor(x).to_kind(Kind::Double) * &hidden;
    wrong.sum(Kind::Double).double_value(&[]) / hidden.sum(Kind::Double).double_value(&[])
}

#[test]
fn multi_prediction_training_classifies_and_completes_bars_and_stripes() {
    let _rng = gm_core::rng_guard::seeded(13);
    // The one label against 16 pixels: weighted up so that 600 steps learn it.
    let (c, d) = bars("hidden = [32, 16]\nmf_steps = 5\nlabel_weight = 10.0\ninit_std = 0.1");
    let mut m = build(&c, &d).unwrap();
    let (x, y) = (&d.test.x, d.test.y.as_ref().unwrap());
    let mask = MaskSpec::Random(0.5)
        .build(x.size()[0], &x.size()[1..], 3, Device::Cpu)
        .unwrap();
    let before = (
        m.error(x, y, None, false, 100),
        completion_error(&m, x, &mask),
    );
    let n = d.train.x.size()[0];
    for step in 0..600 {
        let idx = Tensor::randint(n, [32], (Kind::Int64, Device::Cpu));
        let batch = Batch::labelled(
            &d.train.x.index_select(0, &idx),
            &d.train.y.as_ref().unwrap().index_select(0, &idx),
        );
        let metrics = m.train_step(&batch).unwrap();
        assert!(metrics[0].1.double_value(&[]).is_finite(), "step {step}");
    }
    let full = m.error(x, y, None, false, 100);
    let averaged = m.error(x, y, None, true, 100);
    let missing = m.error(x, y, Some(&mask), false, 100);
    let completion = completion_error(&m, x, &mask);
    eprintln!("before {before:?}; error {full} (averaged {averaged}, half missing {missing}); completion error {completion}");
    // Two of the 30 patterns (all on, all off) are both bars and stripes: ≈ 7 % of the
    // test set cannot be classified; chance is 50 %.
    assert!(
        before.0 > 0.3 && full < 0.12 && averaged < 0.12,
        "{before:?} → {full}, {averaged}"
    );
    assert!(missing < 0.2, "half the pixels missing: {missing}");
    assert!(
        before.1 > 0.3 && completion < 0.12,
        "completion {} → {completion}",
        before.1
    );
}

#[test]
fn an_unknown_label_is_inferred_never_clamped_nor_a_target() {
    let _rng = gm_core::rng_guard::seeded(14);
    let m = random_model(6, 3, "[4, 3]", 1.0);
    let v = Tensor::rand([5, 6], F64).lt(0.5).to_kind(Kind::Double);
    let v_mask = Tensor::rand([5, 6], F64).lt(0.5).to_kind(Kind::Double);
    let unknown = Tensor::zeros([5, 3], F64);
    let (input, free) = (Tensor::ones([5, 1], F64), Tensor::zeros([5, 1], F64));
    let a = tch::no_grad(|| m.loss(&v, &unknown, &v_mask, &input));
    let b = tch::no_grad(|| m.loss(&v, &unknown, &v_mask, &free));
    assert!(max_abs(&a, &b) < 1e-12, "{a:?} vs {b:?}");
    // A known label as an input changes the pixels' predictions.
    let known = Tensor::arange(5, (Kind::Int64, Device::Cpu))
        .remainder(3)
        .one_hot(3)
        .to_kind(Kind::Double);
    let c = tch::no_grad(|| m.loss(&v, &known, &v_mask, &input));
    assert!(max_abs(&a, &c) > 1e-6);
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn bad_configs_and_data_are_refused_with_the_field_named() {
    let _rng = gm_core::rng_guard::lock();
    let (c, d) = bars("hidden = [8]");
    let m = build(&c, &d).unwrap();
    let e = m.sample_class(1, 2).expect_err("class 2 of 2 accepted");
    assert!(e.to_string().contains("classes 0..=1"), "{e}");
    for (field, line) in [
        ("model.hidden", "hidden = []"),
        ("model.hidden", "hidden = [4, 0]"),
        ("model.target_prob", "target_prob = 0.0"),
        ("model.target_prob", "target_prob = 1.0"),
        ("model.mf_steps", "mf_steps = 0"),
        ("model.missing", "missing = [0.5, 1.0]"),
        ("model.label_weight", "label_weight = -1.0"),
    ] {
        let (c, d) = bars(line);
        let e = build(&c, &d)
            .err()
            .unwrap_or_else(|| panic!("{line} accepted"));
        assert!(e.to_string().contains(field), "{line}: {e}");
    }
    let x = Tensor::rand([20, 4], F64).lt(0.5).to_kind(Kind::Float);
    let e = build(&c, &rows_dataset(&x, true))
        .err()
        .expect("unlabelled data accepted");
    assert!(e.to_string().contains("labelled dataset"), "{e}");
}
