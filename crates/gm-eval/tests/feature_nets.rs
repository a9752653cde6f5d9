//! The feature networks on the real datasets (needs `cargo xtask data mnist fashion-mnist`;
//! trains and caches them when absent, a few minutes): `cargo test -p gm-eval --test
//! feature_nets -- --ignored --nocapture`.

use gm_eval::features::{FeatureNet, FeatureOptions};

fn check(dataset: &str, min_accuracy: f64) {
    tch::set_num_threads(1);
    let net = FeatureNet::load_or_train(dataset, tch::Device::Cpu, &FeatureOptions::default())
        .expect("feature network");
    let info = net.info();
    println!(
        "{}: test accuracy {:.4} ({} test examples), trained {:.1}s on {} with {} thread(s), {:?}",
        info.id,
        info.test_accuracy,
        info.test_examples,
        info.seconds,
        info.device,
        info.threads,
        info.options
    );
    assert!(
        net.test_accuracy() >= min_accuracy,
        "{dataset}: {}",
        net.test_accuracy()
    );
}

#[test]
#[ignore = "needs MNIST in the data cache; trains for minutes when the network is not cached"]
fn mnist_feature_net_is_accurate() {
    let _rng = gm_core::rng_guard::lock();
    check("mnist", 0.985);
}

#[test]
#[ignore = "needs Fashion-MNIST in the data cache; trains for minutes when the network is not cached"]
fn fashion_mnist_feature_net_is_accurate() {
    let _rng = gm_core::rng_guard::lock();
    check("fashion-mnist", 0.89);
}
