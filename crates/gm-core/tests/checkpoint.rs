//! Checkpoints on failure: a failed write leaves nothing behind, a corrupt file is found by
//! its sha256 and the newest good checkpoint is named and can be resumed from, and
//! checkpoints without hashes (older gm) still load.

use gm_core::checkpoint::{self, Progress};
use gm_core::config::{OptimConfig, RunConfig};
use gm_core::data::Batch;
use gm_core::model::{LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::Result;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

struct Weights {
    vs: VarStore,
    w: Tensor,
    opt: Optimizer,
}

impl Weights {
    fn new() -> Weights {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().randn("w", &[64, 8], 0.0, 1.0);
        let opt = Optimizer::new(&vs, &OptimConfig::default()).unwrap();
        Weights { vs, w, opt }
    }
    fn set(&self, v: f64) {
        let _ = tch::no_grad(|| self.w.shallow_clone().fill_(v));
    }
    fn value(&self) -> f64 {
        self.w.mean(Kind::Double).double_value(&[])
    }
}

impl Model for Weights {
    fn name(&self) -> &str {
        "weights"
    }
    gm_core::single_network!(vs, opt, "opt");
    fn train_step(&mut self, _batch: &Batch) -> Result<Metrics> {
        Ok(Vec::new())
    }
    fn eval_metrics(&self, _batch: &Batch) -> Result<Metrics> {
        Ok(Vec::new())
    }
    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(Tensor::zeros([n, 8], (Kind::Float, Device::Cpu)))
    }
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }
    fn resolved_params(&self) -> toml::Table {
        toml::Table::new()
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}

fn at(step: u64) -> Progress {
    Progress {
        step,
        ..Default::default()
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn a_failed_write_leaves_no_temporary_files_and_latest_untouched() {
    let _rng = gm_core::rng_guard::seeded(1);
    let run = tempfile::tempdir().unwrap();
    let m = Weights::new();
    checkpoint::save(run.path(), &m, &at(1)).unwrap();
    let root = run.path().join("checkpoints");
    let before = entries(&root);
    // The model's files are written, then an extra file cannot be (a NUL in its name).
    let err = checkpoint::save_with(run.path(), &m, &at(2), &[("bad\0name", b"x")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bad"), "{msg}");
    assert_eq!(entries(&root), before, "temporary files left behind");
    assert_eq!(before, ["latest", "step-000000001"]);
    assert_eq!(
        std::fs::read_to_string(root.join("latest")).unwrap(),
        "step-000000001"
    );
}

/// Flips one byte inside the tensor data (after the header) of a safetensors file.
fn flip_data_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let i = 8 + header + 17;
    assert!(i < bytes.len());
    bytes[i] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_flipped_byte_is_found_and_the_good_checkpoint_named_and_usable() {
    let _rng = gm_core::rng_guard::seeded(2);
    let run = tempfile::tempdir().unwrap();
    let m = Weights::new();
    m.set(1.0);
    checkpoint::save(run.path(), &m, &at(3)).unwrap();
    m.set(2.0);
    let newest = checkpoint::save(run.path(), &m, &at(6)).unwrap();
    let file = newest.join("model.safetensors");
    flip_data_byte(&file);
    // The file still parses: only the checksum can tell.
    assert!(Tensor::read_safetensors(&file).is_ok());

    let mut fresh = Weights::new();
    let err = checkpoint::restore_run(run.path(), None, &mut fresh)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert!(err.contains("sha256"), "{err}");
    assert!(err.contains("step-000000003"), "{err}");
    assert!(err.contains("--from 3"), "{err}");
    let err = checkpoint::load_run_weights(run.path(), &mut fresh)
        .unwrap_err()
        .to_string();
    assert!(err.contains("step-000000003"), "{err}");

    let (dir, p) = checkpoint::restore_run(run.path(), Some(3), &mut fresh).unwrap();
    assert_eq!(p.step, 3);
    assert!(dir.ends_with("step-000000003"));
    assert_eq!(fresh.value(), 1.0);
    let err = checkpoint::restore_run(run.path(), Some(4), &mut fresh)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no checkpoint at step 4") && err.contains("[6, 3]"),
        "{err}"
    );
}

#[test]
fn checkpoints_without_hashes_load_unverified() {
    let _rng = gm_core::rng_guard::seeded(3);
    let run = tempfile::tempdir().unwrap();
    let m = Weights::new();
    m.set(0.5);
    let dir = checkpoint::save(run.path(), &m, &at(1)).unwrap();
    let progress = dir.join("progress.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&progress).unwrap()).unwrap();
    assert!(
        record["sha256"]["model.safetensors"].is_string(),
        "{record}"
    );
    assert!(
        record["sha256"]["optimizer.safetensors"].is_string(),
        "{record}"
    );
    assert!(checkpoint::verify(&dir).unwrap());
    record.as_object_mut().unwrap().remove("sha256");
    std::fs::write(&progress, serde_json::to_vec(&record).unwrap()).unwrap();
    assert!(!checkpoint::verify(&dir).unwrap());
    let mut fresh = Weights::new();
    let p = checkpoint::restore(&dir, &mut fresh).unwrap();
    assert_eq!(p, at(1));
    assert_eq!(fresh.value(), 0.5);
}
