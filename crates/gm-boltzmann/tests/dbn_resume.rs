//! A three-layer DBN trained greedily with PCD and centering, stopped after two epochs (in
//! the middle of layer 2's share) and resumed from its checkpoint, ends with every tensor
//! of every layer (weights, persistent chains, centering offsets, optimizer state) and the
//! DBN's own state equal to an uninterrupted run's; likewise a run stopped in its
//! fine-tuning epochs (its own test binary: libtorch's RNG is global, so no other test may
//! draw from it meanwhile).

mod common;

use gm_boltzmann::dbn::Dbn;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;

const PCD_STACK: &str = "hidden = [8, 6, 5]\nlayer_epochs = [1, 2, 1]\nrule = \"pcd\"\n\
                         chains = 7\nk = 2\ncentering = true";

fn build(c: &RunConfig, d: &Dataset) -> Dbn {
    common::build(c, d, Dbn::new)
}

/// [`common::resume_matches`] of the DBN `model` trained `epochs` in one go and `first`
/// then resumed.
fn resume_matches(
    model: &str,
    epochs: usize,
    first: usize,
    files: &[&str],
) -> (common::Snapshot, common::Snapshot) {
    let (whole, part) = (
        common::cfg("dbn", model, epochs),
        common::cfg("dbn", model, first),
    );
    common::resume_matches(&whole, &part, build, files)
}

#[test]
fn greedy_pcd_run_resumes_exactly_from_a_mid_stack_checkpoint() {
    let _rng = gm_core::rng_guard::lock();
    let files = ["dbn", "layer1", "layer1-state", "layer3-state"];
    let (fresh, a) = resume_matches(PCD_STACK, 4, 2, &files);
    // Every layer trained: each one's weights moved from their initial values.
    for l in 1..=3 {
        let w = format!("layer{l}/rbm.w");
        assert!(!fresh[&w].equal(&a[&w]), "{w} never trained");
    }
}

#[test]
fn fine_tuning_resumes_exactly_from_a_checkpoint_after_it_started() {
    let _rng = gm_core::rng_guard::lock();
    let model = "hidden = [6, 4]\nlayer_epochs = [1, 1]\nfinetune = true";
    let (fresh, a) = resume_matches(model, 4, 3, &["dbn", "classifier"]);
    assert!(!fresh["classifier/classifier.w1"].equal(&a["classifier/classifier.w1"]));
    assert_eq!(a["dbn/dbn.step"].int64_value(&[]), 16);
}
