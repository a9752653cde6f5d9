//! The model contract (DESIGN.md §3a), checked for every entry of the CLI's registry.
//!
//! Each entry is built on the first tiny dataset it accepts (bars-and-stripes, two-moons,
//! eight-gaussians), with the small `[model]` sizes of [`TINY`] when it is listed there and
//! its defaults otherwise, so a model registered tomorrow is checked without a new line.
//! For each entry the test checks that
//! - two epochs uninterrupted and one epoch + checkpoint + resume + one epoch end with every
//!   tensor of every var store and every optimizer state exactly equal (and different from
//!   the freshly built model: training moved something);
//! - `sample(n)` is `[n, ..data shape]`, finite, and in [0, 1] on binary data;
//! - `log_likelihoods` (the path of `gm eval`) gives finite values with a method, on the
//!   examples asked, and at most 0 nats when exact or a bound on binary data; an empty list
//!   (the model has none) is allowed, as `gm eval` allows it;
//! - an unknown `[model]` field, and -1 in each integer field of its resolved parameters,
//!   are typed config errors naming the field (unless [`ACCEPTS_NEGATIVE`] lists it).
//!
//! [`VARIANTS`] runs the resume, sample and likelihood checks again for options that add
//! state or change the update (centering, a DBM's fine-tuning, a second stochastic layer,
//! M1+M2's two phases, WGAN-GP, a learned reverse variance).
//!
//! Failures of all entries are collected and reported together. One test function: the
//! entries run one after another, since every run seeds libtorch's global generator (and
//! holds its lock against the other test here).

#[allow(dead_code)]
#[path = "../src/run.rs"]
mod run;

use gm_core::checkpoint;
use gm_core::config::{LrSchedule, RunConfig};
use gm_core::data::{self, Dataset};
use gm_core::device::seed_all;
use gm_core::model::{BuildContext, LikelihoodKind, Model, ModelEntry, ModelRegistry};
use gm_core::train::fit;
use gm_core::Error;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;
use tch::{Device, Tensor};

/// The tiny datasets, in the order they are tried.
const DATASETS: [&str; 3] = ["bars-and-stripes", "two-moons", "eight-gaussians"];

/// Small `[model]` sizes (TOML lines) keyed by registry name; entries not listed run with
/// their defaults.
const TINY: &[(&str, &str)] = &[
    ("vae", "hidden = [8]\nlatent = 2"),
    ("iwae", "hidden = [8]\nlatent = 2\niw_samples = 3"),
    ("m2", "hidden = [8]\nclassifier_hidden = [8]\nlatent = 2"),
    ("glow", "steps = 2\nhidden = [8]\nchannels = [4]"),
    ("nade", "hidden = 8"),
    ("made", "hidden = [8]"),
    ("rnade", "hidden = 8\ncomponents = 2"),
    (
        "pixelcnn",
        "channels = 4\nresidual_blocks = 1\noutput_channels = 4",
    ),
    ("deep-nade", "hidden = [8]"),
    ("nade-k", "hidden = 8"),
    ("rbm", "hidden = 4"),
    ("grbm", "hidden = 4"),
    ("bm", "hidden = 2"),
    ("dbn", "hidden = [4, 3]\nlayer_epochs = [1, 1]\nsample_steps = 10"),
    ("dbm", "hidden = [4, 3]\nchains = 8\ngibbs_steps = 2\nsample_steps = 10"),
    ("mp-dbm", "hidden = [4, 3]\nmf_steps = 3\nsample_steps = 10"),
    ("gmmn", "noise = 2\nhidden = [8]\nsamples = 16"),
    (
        "gmmn-ae",
        "ae_hidden = [8]\ncode = 2\nae_steps = 3\n[model.gmmn]\nhidden = [8]\nsamples = 16",
    ),
    (
        "gan",
        "latent = 2\ngenerator_hidden = [8]\ndiscriminator_hidden = [8]\nd_steps = 2\ndropout = 0.2",
    ),
    (
        "cgan",
        "latent = 2\ngenerator_hidden = [8]\ndiscriminator_hidden = [8]",
    ),
    ("dcgan", "latent = 4\ng_channels = 4\nd_channels = 4"),
    (
        "lapgan",
        "coarse_latent = 4\ncoarse_hidden = [8]\nchannels = [4]\nkernel = 3",
    ),
    ("realnvp", "layers = 2\nhidden = [8]\nchannels = [4]"),
    ("maf", "layers = 2\nhidden = [8]"),
    (
        "ddpm",
        "steps = 20\nhidden = [8]\nbound_timesteps = 5\nsample_steps = 5",
    ),
    (
        "binary-diffusion",
        "steps = 10\nnet = \"mlp\"\nhidden = [8]\nbound_timesteps = 3",
    ),
];

/// Options that change what a model keeps or how it trains (extra state, other update
/// rules), each run through the resume, sample and likelihood checks as its own entry.
const VARIANTS: &[(&str, &str)] = &[
    (
        "rbm",
        "hidden = 4\nrule = \"pcd\"\nchains = 8\ncentering = true",
    ),
    (
        "dbm",
        "hidden = [4, 3]\nchains = 8\ngibbs_steps = 2\nsample_steps = 10\ncentering = true",
    ),
    (
        "dbm",
        "hidden = [4, 3]\nchains = 8\ngibbs_steps = 2\nsample_steps = 10\nfinetune_after = 1",
    ),
    (
        "iwae",
        "hidden = [8]\nlatent = 2\niw_samples = 3\ntop_latent = 2\ntop_hidden = [4]",
    ),
    (
        "vae",
        "hidden = [8]\nlatent = 2\ntop_latent = 2\ntop_hidden = [4]",
    ),
    (
        "m2",
        "hidden = [8]\nclassifier_hidden = [8]\nlatent = 2\nm1_latent = 2\nm1_hidden = [8]\nm1_steps = 3",
    ),
    (
        "gan",
        "latent = 2\ngenerator_hidden = [8]\ndiscriminator_hidden = [8]\nloss = \"wgan-gp\"",
    ),
    (
        "ddpm",
        "steps = 20\nhidden = [8]\nbound_timesteps = 5\nsample_steps = 5\nvariance = \"learned\"",
    ),
];

/// `(model, field)` whose value -1 is legitimately accepted, with the reason.
const ACCEPTS_NEGATIVE: &[(&str, &str, &str)] = &[];

const SEED: u64 = 3;

fn tiny_params(name: &str) -> &'static str {
    TINY.iter().find(|(n, _)| *n == name).map_or("", |(_, p)| p)
}

/// The run config of `model` on `dataset` for `epochs`, with `params` as `[model]` lines.
fn config(model: &str, params: &str, dataset: &str, epochs: usize) -> RunConfig {
    let text = format!(
        "seed = {SEED}\n[model]\nname = \"{model}\"\n{params}\n\
         [data]\ndataset = \"{dataset}\"\nbatch_size = 32\nsynthetic_size = 64\n\
         [optim]\nlr = 0.01\n\
         [eval]\nis_samples = 4\nchunk = 8\nlimit = 8\nais_chains = 4\nais_steps = 10\n"
    );
    let mut c = RunConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{model}: {e}"));
    c.train.epochs = epochs;
    c.train.lr_schedule = LrSchedule::Constant;
    c.train.sample_every = 0;
    c.train.n_samples = 4;
    c.train.log_every = 1;
    c
}

fn load(cfg: &RunConfig) -> Dataset {
    data::load(&cfg.data.dataset, &cfg.data.options).expect("tiny datasets need no download")
}

/// Seeds as `gm train` does, then builds on the data's device.
fn build(reg: &ModelRegistry, cfg: &RunConfig, data: &Dataset) -> gm_core::Result<Box<dyn Model>> {
    seed_all(cfg.seed);
    reg.build(&BuildContext {
        cfg,
        data,
        device: data.train.x.device(),
    })
}

/// Every tensor the model would checkpoint: var stores and optimizer states, by name.
fn snapshot(model: &dyn Model) -> BTreeMap<String, Tensor> {
    let mut all = BTreeMap::new();
    for (store, vs) in model.var_stores() {
        for (name, t) in vs.variables() {
            all.insert(format!("{store}/{name}"), t.detach().copy());
        }
    }
    for (opt_name, opt) in model.optimizers_ref() {
        for (name, t) in opt.state(opt_name) {
            all.insert(format!("optimizer/{name}"), t.detach().copy());
        }
    }
    all
}

/// The names of tensors that differ between two snapshots (missing ones included).
fn differing(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> Vec<String> {
    let mut names: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| match (a.get(n), b.get(n)) {
            (Some(x), Some(y)) => x.size() != y.size() || !x.equal(y),
            _ => true,
        })
        .collect()
}

/// The first dataset `name` with `params` builds on, with its config; the build errors
/// otherwise.
fn pick_dataset(
    reg: &ModelRegistry,
    name: &str,
    params: &str,
    device: Device,
) -> Result<(RunConfig, Dataset), String> {
    let mut errors = Vec::new();
    for ds in DATASETS {
        let cfg = config(name, params, ds, 2);
        let data = load(&cfg).to_device(device);
        match build(reg, &cfg, &data) {
            Ok(_) => return Ok((cfg, data)),
            Err(e) => errors.push(format!("{ds}: {e}")),
        }
    }
    Err(format!(
        "accepts none of the tiny datasets ({})",
        errors.join("; ")
    ))
}

/// Returns the uninterrupted model, trained two epochs.
fn check_resume(
    reg: &ModelRegistry,
    cfg: &RunConfig,
    data: &Dataset,
) -> Result<Box<dyn Model>, String> {
    let err = |what: &str, e: Error| format!("{what}: {e}");
    let fresh = snapshot(build(reg, cfg, data).map_err(|e| err("build", e))?.as_ref());
    let mut full = build(reg, cfg, data).map_err(|e| err("build", e))?;
    let dir = tempfile::tempdir().unwrap();
    fit(full.as_mut(), data, cfg, dir.path(), None).map_err(|e| err("2 epochs", e))?;

    let mut half = cfg.clone();
    half.train.epochs = 1;
    let mut part = build(reg, &half, data).map_err(|e| err("build", e))?;
    let dir2 = tempfile::tempdir().unwrap();
    fit(part.as_mut(), data, &half, dir2.path(), None).map_err(|e| err("1 epoch", e))?;
    // Built under another seed: everything must come from the checkpoint.
    let mut other = cfg.clone();
    other.seed = SEED + 100;
    seed_all(other.seed);
    let mut resumed = reg
        .build(&BuildContext {
            cfg: &other,
            data,
            device: data.train.x.device(),
        })
        .map_err(|e| err("build", e))?;
    let ckpt = checkpoint::latest(dir2.path())
        .map_err(|e| err("latest", e))?
        .ok_or("no checkpoint after one epoch")?;
    let p = checkpoint::restore(&ckpt, resumed.as_mut()).map_err(|e| err("restore", e))?;
    fit(resumed.as_mut(), data, cfg, dir2.path(), Some(p)).map_err(|e| err("resume", e))?;

    let (a, b) = (snapshot(full.as_ref()), snapshot(resumed.as_ref()));
    let diff = differing(&a, &b);
    if !diff.is_empty() {
        return Err(format!(
            "resumed run differs from the uninterrupted one in {diff:?}"
        ));
    }
    if differing(&fresh, &a).is_empty() {
        return Err("two epochs of training changed no saved tensor".into());
    }
    Ok(full)
}

fn check_samples(model: &dyn Model, data: &Dataset) -> Result<(), String> {
    let n = 5;
    let s = model.sample(n).map_err(|e| format!("sample: {e}"))?;
    let mut want = vec![n];
    want.extend(&data.shape);
    if s.size() != want {
        return Err(format!(
            "samples have shape {:?}, expected {want:?}",
            s.size()
        ));
    }
    if !bool::try_from(s.isfinite().all()).unwrap() {
        return Err("samples are not all finite".into());
    }
    let (lo, hi) = (s.min().double_value(&[]), s.max().double_value(&[]));
    if data.binary && (lo < 0.0 || hi > 1.0) {
        return Err(format!("binary data, but samples span [{lo}, {hi}]"));
    }
    Ok(())
}

/// The likelihoods' methods and means.
fn check_likelihoods(
    model: &dyn Model,
    cfg: &RunConfig,
    data: &Dataset,
) -> Result<Vec<(String, f64)>, String> {
    let x = data.test.x_evenly_spaced(cfg.eval.limit);
    let n = x.size()[0];
    seed_all(cfg.eval.seed);
    let lls = model
        .log_likelihoods(&x, cfg)
        .map_err(|e| format!("log_likelihoods: {e}"))?;
    for ll in &lls {
        let what = format!("{} ({})", ll.method, ll.kind);
        if ll.method.is_empty() {
            return Err(format!("a {} likelihood has no method", ll.kind));
        }
        if !ll.mean.is_finite() || !ll.std_err.is_finite() || ll.std_err < 0.0 {
            return Err(format!("{what}: mean {} ± {}", ll.mean, ll.std_err));
        }
        if ll.n != n {
            return Err(format!("{what}: n = {} on {n} examples", ll.n));
        }
        let bound = matches!(ll.kind, LikelihoodKind::Exact | LikelihoodKind::LowerBound);
        if data.binary && bound && ll.mean > 1e-6 {
            return Err(format!("{what}: log p(x) = {} > 0 on binary data", ll.mean));
        }
    }
    Ok(lls.iter().map(|l| (l.method.clone(), l.mean)).collect())
}

/// The error names `field`: a typed config error, not a panic or another kind.
fn names_field(result: gm_core::Result<Box<dyn Model>>, field: &str) -> Result<bool, String> {
    match result {
        Ok(_) => Ok(false),
        Err(Error::Config { field: f, .. }) if f.split('.').any(|p| p == field) => Ok(true),
        Err(Error::ConfigParse { msg, .. }) if msg.contains(field) => Ok(true),
        Err(e) => Err(format!("error does not name `{field}`: {e}")),
    }
}

fn build_caught(
    reg: &ModelRegistry,
    cfg: &RunConfig,
    data: &Dataset,
) -> Result<gm_core::Result<Box<dyn Model>>, String> {
    catch_unwind(AssertUnwindSafe(|| build(reg, cfg, data))).map_err(|p| panic_text(&*p))
}

fn check_invalid_configs(
    reg: &ModelRegistry,
    cfg: &RunConfig,
    data: &Dataset,
    resolved: &toml::Table,
) -> Result<usize, String> {
    let mut bad = cfg.clone();
    bad.model.params = resolved.clone();
    bad.model
        .params
        .insert("no_such_field".into(), toml::Value::Integer(1));
    if !names_field(build_caught(reg, &bad, data)?, "no_such_field")? {
        return Err("an unknown [model] field was accepted".into());
    }
    let mut checked = 1;
    for (field, value) in resolved {
        let negative = match value {
            toml::Value::Integer(_) => toml::Value::Integer(-1),
            toml::Value::Array(a) if a.iter().any(|v| v.is_integer()) => {
                toml::Value::Array(vec![toml::Value::Integer(-1); a.len()])
            }
            _ => continue,
        };
        let mut bad = cfg.clone();
        bad.model.params = resolved.clone();
        bad.model.params.insert(field.clone(), negative);
        let allowed = ACCEPTS_NEGATIVE
            .iter()
            .any(|(m, f, _)| *m == cfg.model.name && *f == field.as_str());
        let rejected = names_field(build_caught(reg, &bad, data)?, field)
            .map_err(|e| format!("{field} = -1: {e}"))?;
        if rejected == allowed {
            return Err(if allowed {
                format!("{field} = -1 is rejected but ACCEPTS_NEGATIVE lists it")
            } else {
                format!("{field} = -1 was accepted")
            });
        }
        checked += 1;
    }
    Ok(checked)
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let msg = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    format!("panicked: {msg}")
}

/// Runs every check of one entry on `device`; returns a line of what it did.
fn check_entry(reg: &ModelRegistry, entry: &ModelEntry, device: Device) -> Result<String, String> {
    let (cfg, data) = pick_dataset(reg, entry.name, tiny_params(entry.name), device)?;
    let model = check_resume(reg, &cfg, &data)?;
    check_samples(model.as_ref(), &data)?;
    let lls = check_likelihoods(model.as_ref(), &cfg, &data)?;
    let n_bad = check_invalid_configs(reg, &cfg, &data, &model.resolved_params())?;
    report(entry.name, &cfg.data.dataset, device, &lls);
    Ok(format!(
        "on {}: resume exact, samples ok, {} likelihood(s), {n_bad} invalid config(s) refused",
        cfg.data.dataset,
        lls.len()
    ))
}

/// The resume, sample and likelihood checks of a [`VARIANTS`] entry.
fn check_variant(
    reg: &ModelRegistry,
    name: &str,
    params: &str,
    device: Device,
) -> Result<String, String> {
    let (cfg, data) = pick_dataset(reg, name, params, device)?;
    let model = check_resume(reg, &cfg, &data)?;
    check_samples(model.as_ref(), &data)?;
    let lls = check_likelihoods(model.as_ref(), &cfg, &data)?;
    Ok(format!(
        "on {}: resume exact, samples ok, {} likelihood(s)",
        cfg.data.dataset,
        lls.len()
    ))
}

/// With `GM_CONTRACT_REPORT=<file>`, appends the entry's likelihoods on `device` as a JSON
/// line (`cargo xtask gpu-check` sets it to put CUDA's figures beside the CPU's).
fn report(model: &str, dataset: &str, device: Device, lls: &[(String, f64)]) {
    let Some(path) = std::env::var_os("GM_CONTRACT_REPORT") else {
        return;
    };
    let line = serde_json::json!({
        "model": model,
        "dataset": dataset,
        "device": format!("{device:?}"),
        "likelihoods": lls,
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("GM_CONTRACT_REPORT is writable");
    std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
}

// On the CPU, and on the first CUDA device when the machine has one.
gm_core::test_device!(
    contract_on,
    every_registered_model_keeps_the_contract,
    every_registered_model_keeps_the_contract_on_cuda
);

fn contract_on(device: Device) {
    let _rng = gm_core::rng_guard::lock();
    let reg = run::registry();
    assert!(!reg.entries().is_empty());
    let mut failures = Vec::new();
    for entry in reg.entries() {
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| check_entry(&reg, entry, device)))
            .unwrap_or_else(|p| Err(panic_text(&*p)));
        let secs = start.elapsed().as_secs_f64();
        match outcome {
            Ok(line) => eprintln!("{:<10} {line} ({secs:.1} s)", entry.name),
            Err(e) => {
                eprintln!("{:<10} FAILED: {e} ({secs:.1} s)", entry.name);
                failures.push(format!("{}: {e}", entry.name));
            }
        }
    }
    for (name, params) in VARIANTS {
        let start = Instant::now();
        let what = format!("{name} with {}", params.replace('\n', ", "));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            check_variant(&reg, name, params, device)
        }))
        .unwrap_or_else(|p| Err(panic_text(&*p)));
        let secs = start.elapsed().as_secs_f64();
        match outcome {
            Ok(line) => eprintln!("{what}: {line} ({secs:.1} s)"),
            Err(e) => {
                eprintln!("{what}: FAILED: {e} ({secs:.1} s)");
                failures.push(format!("{what}: {e}"));
            }
        }
    }
    for (m, f, _) in ACCEPTS_NEGATIVE {
        assert!(
            reg.get(m).is_some(),
            "ACCEPTS_NEGATIVE names {m}.{f}, not registered"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} models break the contract on {device:?}:\n{}",
        failures.len(),
        reg.entries().len(),
        failures.join("\n")
    );
}

/// Every shipped `configs/*.toml` parses, validates and builds its model on its dataset (on
/// the datasets in the data cache; the others are named as skipped).
#[test]
fn every_shipped_config_builds_its_model() {
    // Building draws initial weights from the generator the contract test seeds.
    let _rng = gm_core::rng_guard::lock();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() > 10, "configs found: {paths:?}");
    let reg = run::registry();
    let mut failed = Vec::new();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy();
        let text = std::fs::read_to_string(path).unwrap();
        let outcome = RunConfig::from_toml_str(&text)
            .and_then(|c| c.validate().map(|_| c))
            .and_then(|c| match data::load(&c.data.dataset, &c.data.options) {
                Err(Error::NotDownloaded { .. }) => Ok(Some(c.data.dataset)),
                d => build(&reg, &c, &d?).map(|_| None),
            });
        match outcome {
            Ok(Some(ds)) => println!("{name}: {ds} not downloaded, not built"),
            Ok(None) => println!("{name}: built"),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{failed:#?}");
}
