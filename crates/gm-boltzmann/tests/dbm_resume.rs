//! A three-hidden-layer DBM trained by Algorithm 20.1 (persistent chains, momentum) for two
//! epochs ends with every tensor (parameters, persistent chains, optimizer state) equal to a
//! run stopped after one epoch, restored from its checkpoint into a model built under
//! another seed, and trained one more epoch; likewise with greedy pre-training on, whose
//! flag is checkpointed so that the resumed run does not repeat it (its own test binary:
//! libtorch's RNG is global).

mod common;

use gm_boltzmann::dbm::Dbm;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;

const DBM: &str = "hidden = [8, 6, 5]\nchains = 7\ngibbs_steps = 2\nmf_tolerance = 1e-4\n\
                   weight_decay = 1e-3";

fn build(c: &RunConfig, d: &Dataset) -> Dbm {
    common::build(c, d, Dbm::new)
}

#[test]
fn two_epochs_equal_one_epoch_checkpoint_resume_one_epoch() {
    let _rng = gm_core::rng_guard::lock();
    let (whole, part) = (common::cfg("dbm", DBM, 2), common::cfg("dbm", DBM, 1));
    let (fresh, a) = common::resume_matches(&whole, &part, build, &["state"]);
    for name in ["model/dbm.w3", "state/dbm.chain0", "state/dbm.chain3"] {
        assert!(!fresh[name].equal(&a[name]), "{name} never changed");
    }
}

#[test]
fn a_pretrained_run_resumes_without_pretraining_again() {
    let _rng = gm_core::rng_guard::lock();
    let model = format!("{DBM}\npretrain = {{ epochs = 2 }}");
    let (whole, part) = (common::cfg("dbm", &model, 2), common::cfg("dbm", &model, 1));
    let (fresh, a) = common::resume_matches(&whole, &part, build, &["state"]);
    assert_eq!(fresh["state/dbm.pretrained"].double_value(&[0]), 0.0);
    assert_eq!(a["state/dbm.pretrained"].double_value(&[0]), 1.0);
}
