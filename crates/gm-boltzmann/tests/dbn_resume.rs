//! A three-layer DBN trained greedily with PCD and centering, stopped after two epochs (in
//! the middle of layer 2's share) and resumed from its checkpoint, ends with every tensor
//! of every layer (weights, persistent chains, centering offsets, optimizer state) and the
//! DBN's own state equal to an uninterrupted run's; likewise a run stopped in its
//! fine-tuning epochs (its own test binary: libtorch's RNG is global, so no other test may
//! draw from it meanwhile).

use gm_boltzmann::dbn::{Dbn, DbnConfig};
use gm_core::config::{LrSchedule, RunConfig};
use gm_core::data::{self, Dataset};
use gm_core::model::{parse_params, BuildContext, Model};
use gm_core::{checkpoint, train::fit};
use std::collections::BTreeMap;
use tch::{Device, Tensor};

const PCD_STACK: &str = "hidden = [8, 6, 5]\nlayer_epochs = [1, 2, 1]\nrule = \"pcd\"\n\
                         chains = 7\nk = 2\ncentering = true";

fn cfg(model: &str, epochs: usize) -> RunConfig {
    let mut c = RunConfig::from_toml_str(&format!(
        "seed = 4\n[model]\nname = \"dbn\"\n{model}\n\
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

/// Trains `model` for `epochs` in one go and for `first` epochs + resume; asserts that
/// every checkpointed tensor ends equal; returns the fresh and the trained snapshots.
fn resume_matches(
    model: &str,
    epochs: usize,
    first: usize,
    files: &[&str],
) -> (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) {
    let (whole, part_cfg) = (cfg(model, epochs), cfg(model, first));
    let d = data::load(&whole.data.dataset, &whole.data.options).unwrap();
    tch::manual_seed(5);
    let mut full = build(&whole, &d);
    let fresh = snapshot(&full);
    let dir = tempfile::tempdir().unwrap();
    fit(&mut full, &d, &whole, dir.path(), None).unwrap();

    tch::manual_seed(5);
    let mut part = build(&part_cfg, &d);
    let dir2 = tempfile::tempdir().unwrap();
    fit(&mut part, &d, &part_cfg, dir2.path(), None).unwrap();
    tch::manual_seed(77);
    let mut resumed = build(&whole, &d);
    let ckpt = checkpoint::latest(dir2.path()).unwrap().unwrap();
    for f in files {
        assert!(ckpt.join(format!("{f}.safetensors")).exists(), "{f}");
    }
    let p = checkpoint::restore(&ckpt, &mut resumed).unwrap();
    fit(&mut resumed, &d, &whole, dir2.path(), Some(p)).unwrap();

    let (a, b) = (snapshot(&full), snapshot(&resumed));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, t) in &a {
        assert!(t.equal(&b[name]), "{name} differs after resume");
    }
    (fresh, a)
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
