//! The scaffolding of the resume tests: a small bars-and-stripes run config, building a
//! model from it, a snapshot of every checkpointed tensor, and the run / checkpoint / resume
//! / compare sequence itself.

use gm_core::config::{LrSchedule, RunConfig};
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext, Model};
use gm_core::{checkpoint, train::fit};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use tch::{Device, Tensor};

/// Every checkpointed tensor (variables and optimizer state), by store and name.
pub type Snapshot = BTreeMap<String, Tensor>;

/// A run of model `name` with the `[model]` lines `model` for `epochs` epochs on 200
/// bars-and-stripes examples (batch 50, SGD with momentum, constant rate, no validation).
pub fn cfg(name: &str, model: &str, epochs: usize) -> RunConfig {
    let mut c = RunConfig::from_toml_str(&format!(
        "seed = 4\n[model]\nname = \"{name}\"\n{model}\n\
         [data]\ndataset = \"bars-and-stripes\"\nbatch_size = 50\nsynthetic_size = 200\n\
         [optim]\nkind = \"sgd\"\nlr = 0.05\nmomentum = 0.5\n"
    ))
    .unwrap();
    c.train.epochs = epochs;
    c.train.lr_schedule = LrSchedule::Constant;
    c.train.validate = false;
    c.train.sample_every = 1000;
    c
}

/// The model of `c` on `d`, on the CPU, by its constructor `new`.
pub fn build<P: DeserializeOwned, M>(
    c: &RunConfig,
    d: &Dataset,
    new: impl Fn(P, &BuildContext<'_>) -> gm_core::Result<M>,
) -> M {
    let p: P = parse_params(&c.model.name, &c.model.params).unwrap();
    let ctx = BuildContext {
        cfg: c,
        data: d,
        device: Device::Cpu,
    };
    new(p, &ctx).unwrap()
}

/// Every checkpointed tensor of `m`, copied.
pub fn snapshot(m: &dyn Model) -> Snapshot {
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

/// Trains a model of config `whole` in one go, and one of `part` (the same run, fewer
/// epochs) whose checkpoint (which must hold `files`) is restored into a model built under
/// another seed and trained on to `whole`'s end; asserts that every checkpointed tensor ends
/// equal. Returns the snapshots of the fresh and of the trained model.
pub fn resume_matches<M: Model>(
    whole: &RunConfig,
    part: &RunConfig,
    build: impl Fn(&RunConfig, &Dataset) -> M,
    files: &[&str],
) -> (Snapshot, Snapshot) {
    let d = data::load(&whole.data.dataset, &whole.data.options).unwrap();
    tch::manual_seed(5);
    let mut full = build(whole, &d);
    let fresh = snapshot(&full);
    let dir = tempfile::tempdir().unwrap();
    fit(&mut full, &d, whole, dir.path(), None).unwrap();

    tch::manual_seed(5);
    let mut first = build(part, &d);
    let dir2 = tempfile::tempdir().unwrap();
    fit(&mut first, &d, part, dir2.path(), None).unwrap();
    tch::manual_seed(77);
    let mut resumed = build(whole, &d);
    let ckpt = checkpoint::latest(dir2.path()).unwrap().unwrap();
    for f in files {
        assert!(ckpt.join(format!("{f}.safetensors")).exists(), "{f}");
    }
    let p = checkpoint::restore(&ckpt, &mut resumed).unwrap();
    fit(&mut resumed, &d, whole, dir2.path(), Some(p)).unwrap();

    let (a, b) = (snapshot(&full), snapshot(&resumed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    (fresh, a)
}
