//! A PCD run stopped after two epochs and resumed from its checkpoint ends with the same
//! weights and persistent chains as an uninterrupted run (its own test binary: libtorch's
//! RNG is global, so no other test may draw from it meanwhile).

use gm_boltzmann::rbm::{Rbm, RbmConfig};
use gm_core::config::{LrSchedule, RunConfig};
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext};
use gm_core::{checkpoint, train::fit};
use tch::Device;

fn cfg(epochs: usize) -> RunConfig {
    let mut c = RunConfig::from_toml_str(
        "seed = 4\n[model]\nname = \"rbm\"\nhidden = 8\nrule = \"pcd\"\nchains = 7\nk = 2\n\
         centering = true\n\
         [data]\ndataset = \"bars-and-stripes\"\nbatch_size = 50\nsynthetic_size = 200\n\
         [optim]\nkind = \"sgd\"\nlr = 0.05\nmomentum = 0.5\n",
    )
    .unwrap();
    c.train.epochs = epochs;
    c.train.lr_schedule = LrSchedule::Constant;
    c.train.validate = false;
    c.train.sample_every = 1000;
    c
}

fn build(c: &RunConfig, d: &Dataset) -> Rbm {
    let p: RbmConfig = parse_params("rbm", &c.model.params).unwrap();
    Rbm::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
    .unwrap()
}

fn max_diff(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn pcd_run_resumes_exactly_from_a_checkpoint() {
    let _rng = gm_core::rng_guard::lock();
    let (c4, c2) = (cfg(4), cfg(2));
    let d = data::load(&c4.data.dataset, &c4.data.options).unwrap();
    tch::manual_seed(5);
    let mut full = build(&c4, &d);
    let dir = tempfile::tempdir().unwrap();
    fit(&mut full, &d, &c4, dir.path(), None).unwrap();

    tch::manual_seed(5);
    let mut part = build(&c2, &d);
    let dir2 = tempfile::tempdir().unwrap();
    fit(&mut part, &d, &c2, dir2.path(), None).unwrap();
    // A different initial state, overwritten by the checkpoint.
    tch::manual_seed(77);
    let mut resumed = build(&c4, &d);
    let ckpt = checkpoint::latest(dir2.path()).unwrap().unwrap();
    assert!(ckpt.join("state.safetensors").exists());
    let p = checkpoint::restore(&ckpt, &mut resumed).unwrap();
    fit(&mut resumed, &d, &c4, dir2.path(), Some(p)).unwrap();

    let (fw, fb, fc) = full.params();
    let (rw, rb, rc) = resumed.params();
    assert_eq!(max_diff(fw, rw), 0.0, "W differs after resume");
    assert_eq!(max_diff(fb, rb), 0.0, "b differs after resume");
    assert_eq!(max_diff(fc, rc), 0.0, "c differs after resume");
    assert_eq!(
        max_diff(full.chains().unwrap(), resumed.chains().unwrap()),
        0.0,
        "persistent chains differ after resume"
    );
    let (fm, fl) = full.offsets().unwrap();
    let (rm, rl) = resumed.offsets().unwrap();
    assert_eq!(
        max_diff(fm, rm) + max_diff(fl, rl),
        0.0,
        "centering offsets differ"
    );
    // And the run did move the chains and weights (the comparison is not vacuous).
    let fresh = build(&c4, &d);
    assert!(max_diff(fresh.params().0, fw) > 1e-3);
}
