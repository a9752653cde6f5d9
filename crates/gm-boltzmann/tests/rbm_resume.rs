//! A PCD run stopped after two epochs and resumed from its checkpoint ends with the same
//! weights, persistent chains, centering offsets and optimizer state as an uninterrupted
//! run (its own test binary: libtorch's RNG is global, so no other test may draw from it
//! meanwhile).

mod common;

use gm_boltzmann::rbm::Rbm;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;

fn build(c: &RunConfig, d: &Dataset) -> Rbm {
    common::build(c, d, Rbm::new)
}

#[test]
fn pcd_run_resumes_exactly_from_a_checkpoint() {
    let _rng = gm_core::rng_guard::lock();
    let model = "hidden = 8\nrule = \"pcd\"\nchains = 7\nk = 2\ncentering = true";
    let (whole, part) = (common::cfg("rbm", model, 4), common::cfg("rbm", model, 2));
    let (fresh, a) = common::resume_matches(&whole, &part, build, &["state"]);
    // The run did move the weights, the chains and the offsets (the comparison is not
    // vacuous).
    for name in [
        "model/rbm.w",
        "state/state.pcd_chains",
        "state/state.center_v",
        "state/state.center_h",
    ] {
        assert!(!fresh[name].equal(&a[name]), "{name} never changed");
    }
}
