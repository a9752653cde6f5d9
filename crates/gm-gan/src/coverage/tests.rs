use super::*;
use crate::adversarial::{self, Adversarial, GanLoss, Players, Spec, GP_WEIGHT};
use gm_core::config::RunConfig;
use gm_core::data::{self, DataOptions, Split};
use gm_core::model::{BuildContext, Model};
use gm_core::Error;
use tch::nn::VarStore;
use tch::{Device, Kind};

#[test]
fn the_decision_follows_the_thresholds() {
    let even = Coverage::of_histogram(&[100; 10]);
    assert_eq!((even.classes_covered, even.max_class_fraction), (10, 0.1));
    assert_eq!(collapse_warning(&even, None), None);
    // One class of 1,000 samples with 9 (< 1 %) is not covered.
    let thin = Coverage::of_histogram(&[9, 111, 110, 110, 110, 110, 110, 110, 110, 110]);
    assert_eq!(thin.classes_covered, 9);
    assert_eq!(collapse_warning(&thin, Some(&even)), None, "a fall of 1");
    let seven = Coverage::of_histogram(&[0, 0, 0, 150, 150, 150, 150, 150, 150, 100]);
    assert_eq!(seven.classes_covered, 7);
    let w = collapse_warning(&seven, None).expect("7 of 10");
    assert!(w.contains("7 of 10 classes"), "{w}");
    let eight = Coverage::of_histogram(&[0, 0, 100, 100, 100, 100, 100, 100, 100, 300]);
    assert_eq!(
        collapse_warning(&eight, None),
        None,
        "8 classes, 30 % at most"
    );
    let w = collapse_warning(&eight, Some(&even)).expect("a fall of 2");
    assert!(w.contains("fell from 10 to 8"), "{w}");
    let dominant = Coverage::of_histogram(&[510, 60, 60, 60, 60, 50, 50, 50, 50, 50]);
    assert_eq!(dominant.classes_covered, 10);
    let w = collapse_warning(&dominant, None).expect("one class over 50 %");
    assert!(w.contains("51 %"), "{w}");
}

fn mnist() -> Option<gm_core::data::Dataset> {
    match data::load("mnist", &DataOptions::default()) {
        Err(e @ Error::NotDownloaded { .. }) => {
            println!("skipped: {e}");
            None
        }
        r => Some(r.expect("mnist")),
    }
}

/// Emits copies of fixed images, cycling through them (no parameters).
struct Copies(Tensor);

impl adversarial::Generator for Copies {
    fn forward(&self, z: &Tensor, _y: Option<&Tensor>, _train: bool) -> Tensor {
        let n = self.0.size()[0];
        let idx = Tensor::arange(z.size()[0], (Kind::Int64, Device::Cpu)).remainder(n);
        self.0.index_select(0, &idx)
    }
}

struct Constant;

impl adversarial::Discriminator for Constant {
    fn forward(&self, x: &Tensor, _y: Option<&Tensor>, _train: bool) -> Tensor {
        x.zeros_like()
            .flatten(1, -1)
            .sum_dim_intlist(1, false, Kind::Float)
    }
}

/// A "GAN" whose generator copies `images`, watched with classifier `net`.
fn copying_gan(images: &Tensor, ds: &gm_core::data::Dataset, net: FeatureNet) -> Adversarial {
    let cfg =
        RunConfig::from_toml_str("[model]\nname = \"gan\"\n[data]\ndataset = \"mnist\"").unwrap();
    let ctx = BuildContext {
        cfg: &cfg,
        data: ds,
        device: Device::Cpu,
    };
    let spec = Spec {
        name: "copies",
        params: toml::Table::new(),
        game: adversarial::Game::checked(GanLoss::NonSaturating, 1, 1.0, GP_WEIGHT).unwrap(),
        latent: 2,
        classes: 0,
    };
    // One unused parameter each: an optimizer needs something to optimise.
    let (vs_g, vs_d) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
    let _ = (
        vs_g.root().zeros("unused", &[1]),
        vs_d.root().zeros("unused", &[1]),
    );
    let players = Players {
        vs_g,
        g: Box::new(Copies(images.shallow_clone())),
        vs_d,
        d: Box::new(Constant),
    };
    let mut m = Adversarial::new(spec, players, &ctx).unwrap();
    m.set_coverage_watch(CoverageWatch::with_net("copies", net));
    m
}

/// The first `n` examples of `s` whose label is `digit`.
fn of_digit(s: &Split, digit: i64, n: i64) -> Tensor {
    let idx = s.y.as_ref().unwrap().eq(digit).nonzero().squeeze_dim(1);
    s.x.index_select(0, &idx.narrow(0, 0, n))
}

/// With a classifier trained here (3,000 MNIST training images, 2 epochs; test accuracy
/// 0.929 on 2,000 test images), a generator
/// that emits only test images of the digit 3 draws the warning at the epoch's check, and
/// one that emits the first 1,000 test images (all digits) does not. A small classifier
/// stands in for the cached one, which tests cannot count on.
#[test]
fn a_one_digit_generator_draws_the_warning_and_real_digits_do_not() {
    let _rng = crate::test_rng_lock();
    let Some(ds) = mnist() else { return };
    tch::manual_seed(0);
    let n = 3000;
    let (x, y) = (
        ds.train.x.narrow(0, 0, n),
        ds.train.y.as_ref().unwrap().narrow(0, 0, n),
    );
    let test = (
        ds.test.x.narrow(0, 0, 2000),
        ds.test.y.as_ref().unwrap().narrow(0, 0, 2000),
    );
    let opts = FeatureOptions {
        epochs: 2,
        batch_size: 64,
        ..Default::default()
    };
    let train_net = || {
        FeatureNet::train(
            "mnist",
            (&x, &y),
            (&test.0, &test.1),
            10,
            Device::Cpu,
            &opts,
        )
        .unwrap()
    };
    let net = train_net();
    println!("classifier test accuracy {:.4}", net.test_accuracy());
    assert!(net.test_accuracy() > 0.85, "{}", net.test_accuracy());

    let threes = of_digit(&ds.test, 3, 500);
    let mut collapsed = copying_gan(&threes, &ds, net);
    let checks = collapsed.epoch_checks().unwrap();
    let w = collapsed.coverage_watch().last_warning().map(String::from);
    println!("copies of 3s: {checks:?}; warning: {w:?}");
    assert_eq!(checks[0].0, "classes_covered");
    // The classifier's errors spread a few percent over other classes.
    assert!(
        checks[0].1 < MIN_CLASSES as f64 && checks[1].1 > 0.9,
        "{checks:?}"
    );
    assert!(w.is_some_and(|w| w.contains("one class takes")));

    let all = ds.test.x.narrow(0, 0, 1000);
    let mut healthy = copying_gan(&all, &ds, train_net());
    let checks = healthy.epoch_checks().unwrap();
    let w = healthy.coverage_watch().last_warning().map(String::from);
    println!("copies of the first 1,000 test images: {checks:?}; warning: {w:?}");
    assert_eq!(checks[0].1, 10.0, "{checks:?}");
    assert!(checks[1].1 < 0.2, "{checks:?}");
    assert_eq!(w, None);
}

/// The watch is off for data it cannot classify, and an MLP GAN's epoch line then has no
/// `checks`; on MNIST-sized grey data with a classifier the trainer writes them.
#[test]
fn the_trainer_writes_the_checks_into_metrics_jsonl() {
    let _rng = crate::test_rng_lock();
    let toy = data::load(
        "two-moons",
        &DataOptions {
            synthetic_size: Some(64),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!CoverageWatch::for_data("gan", &toy, Device::Cpu).is_on());
    let Some(full) = mnist() else { return };
    tch::manual_seed(1);
    let n = 1000;
    let (x, y) = (
        full.train.x.narrow(0, 0, n),
        full.train.y.as_ref().unwrap().narrow(0, 0, n),
    );
    let opts = FeatureOptions {
        epochs: 1,
        batch_size: 64,
        ..Default::default()
    };
    let net = FeatureNet::train("mnist", (&x, &y), (&x, &y), 10, Device::Cpu, &opts).unwrap();
    let ds = gm_core::data::Dataset {
        train: Split {
            x: x.shallow_clone(),
            y: Some(y.shallow_clone()),
        },
        valid: Split {
            x: x.narrow(0, 0, 10),
            y: Some(y.narrow(0, 0, 10)),
        },
        name: full.name.clone(),
        shape: full.shape.clone(),
        test: Split {
            x: x.narrow(0, 0, 10),
            y: None,
        },
        ..full
    };
    let cfg = RunConfig::from_toml_str(
        "seed = 2\n[model]\nname = \"gan\"\nlatent = 4\ngenerator_hidden = [16]\n\
         discriminator_hidden = [16]\n[data]\ndataset = \"mnist\"\nbatch_size = 100\n\
         [train]\nepochs = 1\nsample_every = 0\nn_samples = 4\n",
    )
    .unwrap();
    let p: crate::gan::GanConfig = gm_core::model::parse_params("gan", &cfg.model.params).unwrap();
    let ctx = BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    };
    let mut m = crate::gan::new_mlp_gan("gan", p, 0, &ctx).unwrap();
    m.set_coverage_watch(CoverageWatch::with_net("gan", net));
    let dir = tempfile::tempdir().unwrap();
    gm_core::train::fit(&mut m, &ds, &cfg, dir.path(), None).unwrap();
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    println!("epoch line: {line}");
    let covered = line["checks"]["classes_covered"].as_f64().expect("checks");
    let max = line["checks"]["max_class_fraction"]
        .as_f64()
        .expect("checks");
    let last = m.coverage_watch().last().unwrap();
    assert_eq!(covered, last.classes_covered as f64);
    assert_eq!(max, last.max_class_fraction);
}
