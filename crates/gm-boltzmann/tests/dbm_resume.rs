//! A three-hidden-layer DBM trained by Algorithm 20.1 (persistent chains, momentum) for two
//! epochs ends with every tensor (parameters, persistent chains, optimizer state) equal to a
//! run stopped after one epoch, restored from its checkpoint into a model built under
//! another seed, and trained one more epoch (its own test binary: libtorch's RNG is global).

use gm_boltzmann::dbm::{Dbm, DbmConfig};
use gm_core::config::{LrSchedule, RunConfig};
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext, Model};
use gm_core::{checkpoint, train::fit};
use std::collections::BTreeMap;
use tch::{Device, Tensor};

fn cfg(epochs: usize) -> RunConfig {
    let mut c = RunConfig::from_toml_str(
        "seed = 4\n[model]\nname = \"dbm\"\nhidden = [8, 6, 5]\nchains = 7\ngibbs_steps = 2\n\
         mf_tolerance = 1e-4\nweight_decay = 1e-3\n\
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

fn build(c: &RunConfig, d: &Dataset) -> Dbm {
    let p: DbmConfig = parse_params("dbm", &c.model.params).unwrap();
    let ctx = BuildContext {
        cfg: c,
        data: d,
        device: Device::Cpu,
    };
    Dbm::new(p, &ctx).unwrap()
}

/// Every checkpointed tensor, by store and name.
fn snapshot(m: &Dbm) -> BTreeMap<String, Tensor> {
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
fn two_epochs_equal_one_epoch_checkpoint_resume_one_epoch() {
    let _rng = gm_core::rng_guard::lock();
    let (whole, half) = (cfg(2), cfg(1));
    let d = data::load(&whole.data.dataset, &whole.data.options).unwrap();
    tch::manual_seed(5);
    let mut full = build(&whole, &d);
    let fresh = snapshot(&full);
    let dir = tempfile::tempdir().unwrap();
    fit(&mut full, &d, &whole, dir.path(), None).unwrap();

    tch::manual_seed(5);
    let mut part = build(&half, &d);
    let dir2 = tempfile::tempdir().unwrap();
    fit(&mut part, &d, &half, dir2.path(), None).unwrap();
    tch::manual_seed(77);
    let mut resumed = build(&whole, &d);
    let ckpt = checkpoint::latest(dir2.path()).unwrap().unwrap();
    assert!(ckpt.join("state.safetensors").exists(), "no chains saved");
    let p = checkpoint::restore(&ckpt, &mut resumed).unwrap();
    fit(&mut resumed, &d, &whole, dir2.path(), Some(p)).unwrap();

    let (a, b) = (snapshot(&full), snapshot(&resumed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    for name in ["model/dbm.w3", "state/dbm.chain0", "state/dbm.chain3"] {
        assert!(!fresh[name].equal(&a[name]), "{name} never changed");
    }
}
