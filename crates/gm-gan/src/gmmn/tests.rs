use super::*;
use crate::test_rng_lock;
use gm_core::checkpoint::{self, Progress};
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::model::{BuildContext, Model};
use gm_core::Error;
use gm_eval::mmd::{mmd2_unbiased, Bandwidths};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn cfg(model: &str, params: &str, dataset: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 5\n[model]\nname = \"{model}\"\n{params}\n[data]\ndataset = \"{dataset}\"\n\
         synthetic_size = 4000\n[optim]\nlr = 0.003\n"
    ))
    .unwrap()
}

fn load(c: &RunConfig) -> Dataset {
    data::load(&c.data.dataset, &c.data.options).unwrap()
}

fn build(c: &RunConfig, d: &Dataset) -> gm_core::Result<Box<dyn Model>> {
    let ctx = BuildContext {
        cfg: c,
        data: d,
        device: Device::Cpu,
    };
    match c.model.name.as_str() {
        "gmmn" => super::build(&ctx),
        _ => super::build_ae(&ctx),
    }
}

/// The loss is gm-eval's metric: MMD²_u equals `mmd2_unbiased` on the same rows, and the
/// default √MMD²_b squares to MMD²_b, which exceeds MMD²_u.
#[test]
fn loss_equals_the_metric_on_the_same_inputs() {
    let _rng = test_rng_lock();
    tch::manual_seed(1);
    let x = Tensor::randn([40, 3], F64);
    let y = Tensor::randn([30, 3], F64) * 1.5 + 0.3;
    let sig = [0.5, 1.0, 4.0];
    let metric = mmd2_unbiased(&x, &y, &Bandwidths::Fixed(sig.to_vec()))
        .unwrap()
        .mmd2;
    let loss = |l| mmd_loss(&x, &y, &sig, l).unwrap().double_value(&[]);
    approx::assert_abs_diff_eq!(loss(MmdLoss::Unbiased), metric, epsilon = 1e-12);
    let biased = loss(MmdLoss::Biased);
    approx::assert_abs_diff_eq!(loss(MmdLoss::SqrtBiased).powi(2), biased, epsilon = 1e-12);
    assert!(biased > metric, "MMD²_b {biased} vs MMD²_u {metric}");
}

/// Central differences of `f` at every entry of `x` (f64).
fn finite_differences(x: &Tensor, f: impl Fn(&Tensor) -> f64) -> Tensor {
    let h = 1e-6;
    let flat = x.flatten(0, -1);
    let grads: Vec<f64> = (0..flat.size()[0])
        .map(|i| {
            let bump = |d: f64| {
                let t = flat.copy();
                let _ = t.get(i).fill_(flat.double_value(&[i]) + d);
                f(&t.view(x.size().as_slice()))
            };
            (bump(h) - bump(-h)) / (2.0 * h)
        })
        .collect();
    Tensor::from_slice(&grads).view(x.size().as_slice())
}

/// Autograd through gm-eval's kernel sums equals finite differences, for the generated
/// rows (every loss) and the data rows, on a tiny f64 case.
#[test]
fn loss_gradient_matches_finite_differences() {
    let _rng = test_rng_lock();
    tch::manual_seed(2);
    let x0 = Tensor::randn([4, 2], F64);
    let y0 = Tensor::randn([3, 2], F64) + 0.5;
    let sig = [0.7, 2.0];
    for loss in [MmdLoss::SqrtBiased, MmdLoss::Biased, MmdLoss::Unbiased] {
        let x = x0.copy().set_requires_grad(true);
        let y = y0.copy().set_requires_grad(true);
        let l = mmd_loss(&x, &y, &sig, loss).unwrap();
        let auto = gm_core::kit::gradcheck::autograd(&l, &[&x, &y]);
        let value = |a: &Tensor, b: &Tensor| mmd_loss(a, b, &sig, loss).unwrap().double_value(&[]);
        let fd = [
            finite_differences(&x0, |t| value(t, &y0)),
            finite_differences(&y0, |t| value(&x0, t)),
        ];
        gm_core::kit::gradcheck::assert_gradients_match(
            &format!("{loss:?}"),
            &["x", "y"],
            &fd,
            &auto,
            1e-6,
            1e-3,
        );
    }
}

/// MMD² (unbiased, f64, fresh samples) between the model and the data.
fn mmd_to_data(m: &dyn Model, y: &Tensor, sig: &[f64]) -> f64 {
    let x = m.sample(y.size()[0]).unwrap();
    mmd2_unbiased(&x, y, &Bandwidths::Fixed(sig.to_vec()))
        .unwrap()
        .mmd2
}

#[test]
fn mmd_to_the_data_falls_during_training_on_eight_gaussians() {
    let _rng = test_rng_lock();
    let sig = [0.05, 0.2, 1.0];
    let params = format!("noise = 4\nhidden = [32, 32]\nbandwidths = {sig:?}\nsamples = 128");
    let mut c = cfg("gmmn", &params, "eight-gaussians");
    c.optim.lr = 0.01;
    let d = load(&c);
    tch::manual_seed(3);
    let mut m = build(&c, &d).unwrap();
    let y = d.valid.x.narrow(0, 0, 500);
    let before = mmd_to_data(m.as_ref(), &y, &sig);
    let n = d.train.x.size()[0];
    for _ in 0..150 {
        let idx = Tensor::randint(n, [128], (Kind::Int64, Device::Cpu));
        m.train_step(&Batch::inputs(&d.train.x.index_select(0, &idx)))
            .unwrap();
    }
    let after = mmd_to_data(m.as_ref(), &y, &sig);
    eprintln!("MMD²_u to the data: before {before:.4}, after 150 steps {after:.4}");
    assert!(
        after < before / 3.0,
        "MMD² did not fall clearly: {before} → {after}"
    );
}

/// The phase of each of 5 steps with `ae_steps = 3` (from the `phase` metric), and the
/// optimizer step counts after them.
#[test]
fn gmmn_ae_switches_phase_at_ae_steps_and_resumes_in_it() {
    let _rng = test_rng_lock();
    let params =
        "ae_hidden = [8]\ncode = 3\nae_steps = 3\n[model.gmmn]\nhidden = [8]\nsamples = 16";
    let c = cfg("gmmn-ae", params, "bars-and-stripes");
    let d = load(&c);
    tch::manual_seed(4);
    let mut m = build(&c, &d).unwrap();
    let batch = Batch::inputs(&d.train.x.narrow(0, 0, 16));
    let phase_of = |m: &mut dyn Model, seed: i64| {
        tch::manual_seed(seed);
        let metrics = m.train_step(&batch).unwrap();
        assert_eq!(metrics[3].0, "phase");
        metrics[3].1.double_value(&[])
    };
    let phases: Vec<f64> = (0..3).map(|s| phase_of(m.as_mut(), s)).collect();
    assert_eq!(phases, [1.0, 1.0, 1.0]);

    // Checkpoint at the switch, restore into a model built under another seed.
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint::save(dir.path(), m.as_ref(), &Progress::default()).unwrap();
    tch::manual_seed(99);
    let mut resumed = build(&c, &d).unwrap();
    checkpoint::restore(&ckpt, resumed.as_mut()).unwrap();

    for s in 3..5 {
        assert_eq!(phase_of(m.as_mut(), s), 2.0);
        assert_eq!(phase_of(resumed.as_mut(), s), 2.0);
    }
    let steps = |m: &dyn Model| -> Vec<(&'static str, u64)> {
        m.optimizers_ref()
            .iter()
            .map(|(n, o)| (*n, o.steps()))
            .collect()
    };
    assert_eq!(steps(m.as_ref()), [("autoencoder", 3), ("gmmn", 2)]);
    assert_eq!(steps(resumed.as_ref()), steps(m.as_ref()));
    for ((_, a), (_, b)) in m.var_stores().iter().zip(resumed.var_stores()) {
        for (name, t) in a.variables() {
            assert!(
                t.equal(&b.variables()[&name]),
                "{name} differs after resume"
            );
        }
    }
}

/// `(model, [model] lines, field named by the error)` for each bad config.
const BAD: &[(&str, &str, &str)] = &[
    ("gmmn", "bandwidths = []", "model.bandwidths"),
    ("gmmn", "bandwidths = [1.0, -2.0]", "model.bandwidths"),
    ("gmmn", "samples = 0", "model.samples"),
    ("gmmn", "loss = \"unbiased\"\nsamples = 1", "model.samples"),
    ("gmmn", "hidden = []", "model.hidden"),
    ("gmmn", "noise = 0", "model.noise"),
    ("gmmn-ae", "ae_steps = 0", "model.ae_steps"),
    ("gmmn-ae", "code_dropout = 1.0", "model.code_dropout"),
    (
        "gmmn-ae",
        "[model.gmmn]\nbandwidths = [0.0]",
        "model.gmmn.bandwidths",
    ),
    ("gmmn-ae", "[model.gmmn]\nsamples = 0", "model.gmmn.samples"),
];

#[test]
fn bad_configs_are_one_error_naming_the_field() {
    let _rng = test_rng_lock();
    for (model, params, field) in BAD {
        let c = cfg(model, params, "two-moons");
        match build(&c, &load(&c)) {
            Err(Error::Config { field: f, .. }) => assert_eq!(&f, field, "{params}"),
            Err(e) => panic!("{model} {params}: not a config error: {e}"),
            Ok(_) => panic!("{model} {params}: accepted"),
        }
    }
    let c = cfg("gmmn", "loss = \"wasserstein\"", "two-moons");
    let e = build(&c, &load(&c))
        .err()
        .expect("an unknown loss is refused");
    assert!(e.to_string().contains("loss"), "{e}");
}
