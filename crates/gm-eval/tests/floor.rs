//! The floor of the sample-quality metrics — the test split measured in place of samples,
//! against the training split — is near perfect when both are in the representation the
//! model sees (binarized the same way) and the feature network was trained on it.
//!
//! `floor_is_near_perfect_on_dynamically_binarized_mnist` is CI-sized (3,000 training and
//! 2,000 test images, a 2-epoch classifier; skipped, saying so, when MNIST is not in the data
//! cache). The full check on the real feature networks (trained and cached when absent) is
//! `cargo test -p gm-eval --test floor -- --ignored --nocapture`.

use std::sync::Mutex;

use gm_core::data::{self, BinarizeSpec, DataOptions, Dataset, Split};
use gm_core::Error;
use gm_eval::assess::{assess, Inputs};
use gm_eval::features::{FeatureNet, FeatureOptions, Representation};
use gm_eval::results::{Metric, RecordContext};
use tch::{Device, Kind, Tensor};

/// Tests here seed libtorch's global generator.
static RNG: Mutex<()> = Mutex::new(());

fn load(name: &str, binarize: BinarizeSpec) -> Option<Dataset> {
    let opts = DataOptions {
        binarize,
        binarize_seed: 1,
        ..Default::default()
    };
    match data::load(name, &opts) {
        Err(e @ Error::NotDownloaded { .. }) => {
            println!("skipped: {e}");
            None
        }
        r => Some(r.expect("dataset")),
    }
}

fn head(s: &Split, n: i64) -> Split {
    Split {
        x: s.x.narrow(0, 0, n),
        y: s.y.as_ref().map(|y| y.narrow(0, 0, n)),
    }
}

/// The figures of one floor check.
#[derive(Debug)]
struct Floor {
    fd_test: f64,
    fd_untrained: f64,
    precision: f64,
    recall: f64,
    covered: f64,
    classes: i64,
    accuracy_here: Option<f64>,
}

/// Test split vs training split (as the model sees it), and the samples of an untrained
/// model with sigmoid outputs (pixel means `sigmoid(N(0, 1))`, Bernoulli-drawn on binary
/// data), on `net`, with n = the test split's size.
fn floor(ds: &Dataset, net: &FeatureNet) -> Floor {
    let train = ds.train_inputs(0);
    let means = Tensor::randn(ds.test.x.size(), (Kind::Float, Device::Cpu)).sigmoid();
    let untrained = if ds.binary { means.bernoulli() } else { means };
    let ctx = RecordContext {
        model: "untrained".into(),
        config_hash: "0".into(),
        dataset: ds.name.clone(),
        split: "test".into(),
        binarization: ds.binarization,
        labelled: None,
        device: "cpu".into(),
        checkpoint: None,
    };
    let a = assess(
        &ctx,
        &Inputs {
            samples: &untrained,
            train: &train,
            test: &ds.test.x,
            test_labels: ds.test.y.as_ref(),
            net: Some(net),
            k: 3,
            chunk: 1000,
            samples_note: "independent pixels".into(),
            samples_are: "sigmoid(N(0, 1)) pixel means, Bernoulli-drawn on binary data".into(),
            seed: 0,
        },
    )
    .expect("assess");
    let get = |model: &str, m: Metric| {
        a.records
            .iter()
            .find(|r| r.model == model && r.metric == m)
            .unwrap_or_else(|| panic!("no {m} record of {model}"))
    };
    let f = |m| get("test split", m).value;
    Floor {
        fd_test: f(Metric::FrechetDistance),
        fd_untrained: get("untrained", Metric::FrechetDistance).value,
        precision: f(Metric::Precision),
        recall: f(Metric::Recall),
        covered: f(Metric::ClassCoverage),
        classes: net.info().classes,
        accuracy_here: get("test split", Metric::Precision).settings["feature_accuracy_here"]
            .as_f64(),
    }
}

fn assert_near_perfect(what: &str, f: &Floor) {
    assert!(
        f.fd_test < 0.05 * f.fd_untrained,
        "{what}: floor Fréchet distance {} not far below the untrained model's {}",
        f.fd_test,
        f.fd_untrained
    );
    assert!(
        f.precision >= 0.8 && f.recall >= 0.8,
        "{what}: floor precision {} / recall {}",
        f.precision,
        f.recall
    );
    assert_eq!(f.covered, f.classes as f64, "{what}: classes covered");
}

#[test]
fn floor_is_near_perfect_on_dynamically_binarized_mnist() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let Some(full) = load("mnist", BinarizeSpec::Dynamic) else {
        return;
    };
    tch::manual_seed(0);
    let ds = Dataset {
        train: head(&full.train, 3000),
        valid: head(&full.valid, 10),
        test: head(&full.test, 2000),
        name: full.name.clone(),
        shape: full.shape.clone(),
        ..full
    };
    let opts = FeatureOptions {
        epochs: 2,
        batch_size: 64,
        representation: Representation::Bernoulli,
        ..Default::default()
    };
    let net = FeatureNet::train_on(&ds, Device::Cpu, &opts).expect("feature network");
    assert_eq!(net.id(), "mnist-bernoulli-convnet-v1");
    let f = floor(&ds, &net);
    println!(
        "tiny bernoulli net (test accuracy {:.4}): {f:?}",
        net.test_accuracy()
    );
    assert!(net.test_accuracy() > 0.85, "{}", net.test_accuracy());
    assert_near_perfect("mnist dynamic (CI size)", &f);

    // The comparison of the old bug — grey training images against binarized test images,
    // or a network of the wrong representation — is refused.
    let ctx = RecordContext {
        model: "m".into(),
        config_hash: "0".into(),
        dataset: "mnist".into(),
        split: "test".into(),
        binarization: ds.binarization,
        labelled: None,
        device: "cpu".into(),
        checkpoint: None,
    };
    let inputs = |train: &Tensor, net| {
        assess(
            &ctx,
            &Inputs {
                samples: &ds.test.x,
                train,
                test: &ds.test.x,
                test_labels: None,
                net,
                k: 3,
                chunk: 1000,
                samples_note: String::new(),
                samples_are: String::new(),
                seed: 0,
            },
        )
        .unwrap_err()
        .to_string()
    };
    let err = inputs(&ds.train.x, Some(&net));
    assert!(err.contains("training images are grey"), "{err}");
    let (x, y) = (ds.train.x.narrow(0, 0, 200), ds.train.y.as_ref().unwrap());
    let grey = FeatureNet::train(
        "mnist",
        (&x, &y.narrow(0, 0, 200)),
        (&x, &y.narrow(0, 0, 200)),
        10,
        Device::Cpu,
        &FeatureOptions {
            epochs: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let err = inputs(&ds.train_inputs(0), Some(&grey));
    assert!(err.contains("trained on grey images"), "{err}");
}

#[test]
#[ignore = "needs mnist, binarized-mnist and fashion-mnist in the data cache; trains the feature networks that are not cached (minutes each)"]
fn floors_of_every_image_dataset() {
    let _g = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let mut failed = Vec::new();
    for (name, binarize) in [
        ("mnist", BinarizeSpec::None),
        ("mnist", BinarizeSpec::Dynamic),
        ("binarized-mnist", BinarizeSpec::None),
        ("fashion-mnist", BinarizeSpec::None),
        ("fashion-mnist", BinarizeSpec::Dynamic),
    ] {
        let Some(ds) = load(name, binarize) else {
            failed.push(format!("{name}: not downloaded"));
            continue;
        };
        tch::manual_seed(0);
        let start = std::time::Instant::now();
        let opts = FeatureOptions {
            representation: Representation::of(ds.binarization),
            ..Default::default()
        };
        let net = FeatureNet::load_or_train(name, Device::Cpu, &opts).expect("feature network");
        let f = floor(&ds, &net);
        println!(
            "{name} ({}), {} (test accuracy {:.4}{}): floor FD {:.2} (untrained model {:.1}), precision {:.3}, recall {:.3}, classes covered {} of {}; {:.0}s",
            ds.binarization,
            net.id(),
            net.test_accuracy(),
            f.accuracy_here
                .map(|a| format!(", {a:.4} on these test images"))
                .unwrap_or_default(),
            f.fd_test,
            f.fd_untrained,
            f.precision,
            f.recall,
            f.covered,
            f.classes,
            start.elapsed().as_secs_f64()
        );
        let what = format!("{name} ({})", ds.binarization);
        if std::panic::catch_unwind(|| assert_near_perfect(&what, &f)).is_err() {
            failed.push(what);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
