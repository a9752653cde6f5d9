//! A three-layer DBN trained greedily with PCD and centering, stopped after two epochs (in
//! the middle of layer 2's share) and resumed from its checkpoint, ends with every tensor
//! of every layer (weights, persistent chains, centering offsets, optimizer state) and the
//! DBN's own state equal to an uninterrupted run's (its own test binary: libtorch's RNG is
//! global, so no other test may draw from it meanwhile).

use gm_boltzmann::dbn::{Dbn, DbnConfig};
use gm_core::config::{LrSchedule, RunConfig};
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext, Model};
use gm_core::{checkpoint, train::fit};
use std::collections::BTreeMap;
use tch::{Device, Tensor};

fn cfg(epochs: usize) -> RunConfig {
    let mut c = RunConfig::from_toml_str(
        "seed = 4\n[model]\nname = \"dbn\"\nhidden = [8, 6, 5]\nlayer_epochs = [1, 2, 1]\n\
         rule = \"pcd\"\nchains = 7\nk = 2\ncentering = true\n\
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

fn build(c: &RunConfig, d: &Dataset) -> Dbn {
    let p: DbnConfig = parse_params("dbn", &c.model.params).unwrap();
    Dbn::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
    .unwrap()
}

/// Every checkpointed tensor, by store and name.
fn snapshot(m: &Dbn) -> BTreeMap<String, Tensor> {
    let mut all = BTreeMap::new();
    for (store, vs) in m.var_stores() {
        for (name, t) in vs.variables() {
            all.insert(format!("{store}/{name}"), t.detach().copy());
        }
    }
    for (name, opt) in m.optimizers_ref() {
        for (k, t) in opt.state(name) {
            all.insert(format!("optimizer/{k}"), t.detach().copy());
        }
    }
    all
}

#[test]
fn greedy_pcd_run_resumes_exactly_from_a_mid_stack_checkpoint() {
    let _rng = gm_core::rng_guard::lock();
    let (c4, c2) = (cfg(4), cfg(2));
    let d = data::load(&c4.data.dataset, &c4.data.options).unwrap();
    tch::manual_seed(5);
    let mut full = build(&c4, &d);
    let fresh = snapshot(&full);
    let dir = tempfile::tempdir().unwrap();
    fit(&mut full, &d, &c4, dir.path(), None).unwrap();

    tch::manual_seed(5);
    let mut part = build(&c2, &d);
    let dir2 = tempfile::tempdir().unwrap();
    fit(&mut part, &d, &c2, dir2.path(), None).unwrap();
    tch::manual_seed(77);
    let mut resumed = build(&c4, &d);
    let ckpt = checkpoint::latest(dir2.path()).unwrap().unwrap();
    for f in ["dbn", "layer1", "layer1-state", "layer3-state"] {
        assert!(ckpt.join(format!("{f}.safetensors")).exists(), "{f}");
    }
    let p = checkpoint::restore(&ckpt, &mut resumed).unwrap();
    fit(&mut resumed, &d, &c4, dir2.path(), Some(p)).unwrap();

    let (a, b) = (snapshot(&full), snapshot(&resumed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    // Every layer trained: each one's weights moved from their initial values.
    for l in 1..=3 {
        let w = format!("layer{l}/rbm.w");
        assert!(!fresh[&w].equal(&a[&w]), "{w} never trained");
    }
    assert_eq!(full.steps_taken(), 16);
}
