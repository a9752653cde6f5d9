//! Checkpoints and atomic files.
//!
//! A checkpoint is a folder `checkpoints/step-<N>/` in the run directory holding
//! `<store>.safetensors` for each of the model's `VarStore`s (readable from Python),
//! `optimizer.safetensors` with every optimizer's state, `progress.json` (epochs done,
//! global step, batches done in the current epoch, seed, elapsed time: with the seed, the
//! whole random state, since every random stream is derived from them) and, from the
//! trainer, the run's `config.toml`. It is written into a
//! temporary folder that is renamed into place, and only then does `checkpoints/latest`
//! (replaced atomically) name it; a crash at any moment leaves the previous checkpoint
//! complete and current, and a failed write removes the temporary folder. The two newest
//! checkpoints are kept. A run with `train.best_metric` also keeps the checkpoint of its best
//! validation epoch, `checkpoints/best-step-<N>/`, named by `checkpoints/best` ([`save_best`]).
//!
//! `progress.json` also records the sha256 of every other file of the checkpoint, checked
//! on every load (safetensors has no checksum: a flipped byte would load silently). When
//! the chosen checkpoint is unreadable or fails the check, the error names the file and the
//! newest good checkpoint, which [`restore_run`] can be told to use instead (`gm train
//! --resume <run> --from <step>`). Checkpoints written before hashes were recorded still
//! load, with a warning that they are unverified.
//!
//! ```no_run
//! # fn demo(model: &mut dyn gm_core::model::Model) -> gm_core::Result<()> {
//! use gm_core::checkpoint::{self, Progress};
//! let run = std::path::Path::new("runs/demo");
//! checkpoint::save(run, model, &Progress::default())?;
//! if let Some(dir) = checkpoint::latest(run)? {
//!     let progress = checkpoint::restore(&dir, model)?;
//!     println!("resuming after {} steps", progress.step);
//! }
//! # Ok(()) }
//! ```

use crate::model::Model;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Where a run is: saved with every checkpoint.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// Epochs completed.
    pub epoch: usize,
    /// Global step (updates made).
    pub step: u64,
    /// Batches of epoch `epoch` already done (non-zero for a mid-epoch checkpoint).
    pub batch_in_epoch: usize,
    /// The run's seed.
    pub seed: u64,
    /// Training time so far, seconds.
    pub elapsed_secs: f64,
    /// The best validation value so far of `train.best_metric`, when the run tracks one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<Best>,
}

/// The best epoch so far of a tracked validation metric.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Best {
    /// The metric's name.
    pub metric: String,
    /// Its value after `epoch`.
    pub value: f64,
    /// Epochs completed when it was measured.
    pub epoch: usize,
}

/// What `progress.json` holds: the progress and the sha256 of each other file.
#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    progress: Progress,
    /// File name → lowercase hex sha256; empty in checkpoints of older gm versions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sha256: BTreeMap<String, String>,
}

/// The lowercase hex sha256 of a file's bytes (checkpoint files, feature-network weights).
pub fn sha256_file(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed and
/// synced, then renamed over `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(tmp, e))?;
        f.sync_all().map_err(|e| Error::io(tmp, e))
    })
}

/// Like [`atomic_write`], for writers that need a path (e.g. safetensors).
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result =
        write(&tmp).and_then(|_| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    atomic_write_with(path, |tmp| {
        // safetensors wants a .safetensors name only for VarStore; Tensor's writer does not.
        Tensor::write_safetensors(tensors, tmp).map_err(Error::from)
    })
}

fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    if !path.exists() {
        return Err(Error::Run {
            path: path.into(),
            msg: "missing checkpoint file".into(),
        });
    }
    Ok(Tensor::read_safetensors(path)
        .map_err(|e| Error::Run {
            path: path.into(),
            msg: format!("unreadable checkpoint: {e}"),
        })?
        .into_iter()
        .collect())
}

fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// Saves the model, its optimizers and `progress`; returns the checkpoint folder.
pub fn save(run_dir: &Path, model: &dyn Model, progress: &Progress) -> Result<PathBuf> {
    save_with(run_dir, model, progress, &[])
}

fn step_name(step: u64) -> String {
    format!("step-{step:09}")
}

/// The folder the checkpoint of step `step` of the run in `run_dir` has (or will have).
pub fn path_for(run_dir: &Path, step: u64) -> PathBuf {
    checkpoints_dir(run_dir).join(step_name(step))
}

/// Like [`save`], with extra files (e.g. the run config) written into the checkpoint.
pub fn save_with(
    run_dir: &Path,
    model: &dyn Model,
    progress: &Progress,
    extra: &[(&str, &[u8])],
) -> Result<PathBuf> {
    let name = step_name(progress.step);
    let (root, final_dir) = into_place(run_dir, &name, model, progress, extra)?;
    atomic_write(&root.join("latest"), name.as_bytes())?;
    prune(&root, &name, 2);
    Ok(final_dir)
}

/// Like [`save_with`], as the run's best checkpoint: the folder `best-step-<N>`, named by
/// `checkpoints/best` (replaced atomically), the previous best removed once it is not named.
/// It is not one of the step checkpoints training resumes from.
pub fn save_best(
    run_dir: &Path,
    model: &dyn Model,
    progress: &Progress,
    extra: &[(&str, &[u8])],
) -> Result<PathBuf> {
    let name = format!("best-{}", step_name(progress.step));
    let (root, final_dir) = into_place(run_dir, &name, model, progress, extra)?;
    atomic_write(&root.join("best"), name.as_bytes())?;
    if let Ok(rd) = std::fs::read_dir(&root) {
        for e in rd.filter_map(|e| e.ok()) {
            let n = e.file_name().into_string().unwrap_or_default();
            if n.starts_with("best-") && n != name {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(final_dir)
}

/// Removes the run's best checkpoint and the pointer naming it.
pub fn remove_best(run_dir: &Path) -> Result<()> {
    let root = checkpoints_dir(run_dir);
    let pointer = root.join("best");
    if let Some(dir) = best(run_dir)? {
        std::fs::remove_file(&pointer).map_err(|e| Error::io(&pointer, e))?;
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// Writes a checkpoint folder `checkpoints/<name>` through a temporary folder renamed into
/// place; returns the checkpoints folder and the new one.
fn into_place(
    run_dir: &Path,
    name: &str,
    model: &dyn Model,
    progress: &Progress,
    extra: &[(&str, &[u8])],
) -> Result<(PathBuf, PathBuf)> {
    let root = checkpoints_dir(run_dir);
    std::fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
    let final_dir = root.join(name);
    let tmp = root.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let written = write_folder(&tmp, model, progress, extra).and_then(|_| {
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))
    });
    if let Err(e) = written {
        // Nothing half-written stays behind; `latest` still names the previous checkpoint.
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok((root, final_dir))
}

/// Writes every file of a checkpoint into `dir`, `progress.json` (with the others' sha256)
/// last.
fn write_folder(
    dir: &Path,
    model: &dyn Model,
    progress: &Progress,
    extra: &[(&str, &[u8])],
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = Vec::new();
    for (store, vs) in model.var_stores() {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let file = format!("{store}.safetensors");
        write_tensors(&dir.join(&file), &named)?;
        files.push(file);
    }
    let mut opt_state = Vec::new();
    for (name, opt) in model.optimizers_ref() {
        opt_state.extend(opt.state(name));
    }
    if !opt_state.is_empty() {
        write_tensors(&dir.join("optimizer.safetensors"), &opt_state)?;
        files.push("optimizer.safetensors".into());
    }
    for (name, bytes) in extra {
        atomic_write(&dir.join(name), bytes)?;
        files.push(name.to_string());
    }
    let mut sha256 = BTreeMap::new();
    for f in files {
        let h = sha256_file(&dir.join(&f))?;
        sha256.insert(f, h);
    }
    let record = Record {
        progress: progress.clone(),
        sha256,
    };
    let json = serde_json::to_vec_pretty(&record).expect("progress serializes");
    atomic_write(&dir.join("progress.json"), &json)
}

fn prune(root: &Path, current: &str, keep: usize) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    // Checkpoints after `current` belong to a continuation abandoned by `--from`.
    names.retain(|n| {
        let newer = n.as_str() > current;
        if newer {
            let _ = std::fs::remove_dir_all(root.join(n));
        }
        !newer
    });
    let n = names.len();
    for old in names.into_iter().take(n.saturating_sub(keep)) {
        if old != current {
            let _ = std::fs::remove_dir_all(root.join(old));
        }
    }
}

/// The newest complete checkpoint of a run, if any.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>> {
    named_by(run_dir, "latest")
}

/// The run's best checkpoint ([`save_best`]), if it has one.
pub fn best(run_dir: &Path) -> Result<Option<PathBuf>> {
    named_by(run_dir, "best")
}

/// The checkpoint the pointer file `checkpoints/<pointer>` names, if the file exists.
fn named_by(run_dir: &Path, pointer: &str) -> Result<Option<PathBuf>> {
    let pointer = checkpoints_dir(run_dir).join(pointer);
    match std::fs::read_to_string(&pointer) {
        Ok(name) => {
            let dir = checkpoints_dir(run_dir).join(name.trim());
            if dir.join("progress.json").exists() {
                Ok(Some(dir))
            } else {
                Err(Error::Run {
                    path: pointer,
                    msg: format!(
                        "names checkpoint {} which is incomplete or gone",
                        name.trim()
                    ),
                })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(pointer, e)),
    }
}

fn read_record(ckpt_dir: &Path) -> Result<Record> {
    let path = ckpt_dir.join("progress.json");
    let s = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&s).map_err(|e| Error::format(&path, e.to_string()))
}

/// Reads the progress record of a checkpoint.
pub fn read_progress(ckpt_dir: &Path) -> Result<Progress> {
    Ok(read_record(ckpt_dir)?.progress)
}

/// Checks every file of `ckpt_dir` against the sha256 its `progress.json` records. Returns
/// false (and warns) for a checkpoint of an older gm that recorded none.
pub fn verify(ckpt_dir: &Path) -> Result<bool> {
    let record = read_record(ckpt_dir)?;
    if record.sha256.is_empty() {
        tracing::warn!(
            "{}: no sha256 recorded (written by an older gm): loaded unverified",
            ckpt_dir.display()
        );
        return Ok(false);
    }
    for (file, expected) in &record.sha256 {
        let path = ckpt_dir.join(file);
        if !path.exists() {
            return Err(Error::Run {
                path,
                msg: "missing checkpoint file".into(),
            });
        }
        let found = sha256_file(&path)?;
        if found != *expected {
            return Err(Error::Run {
                path,
                msg: format!(
                    "corrupt checkpoint file: sha256 is {found}, progress.json records {expected}"
                ),
            });
        }
    }
    Ok(true)
}

/// The checkpoint folders of a run with their steps, newest first.
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let root = checkpoints_dir(run_dir);
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(root, e)),
    };
    let mut found: Vec<(u64, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found)
}

/// Whether a checkpoint passes its sha256 check and every tensor file of it reads.
fn is_good(ckpt_dir: &Path) -> bool {
    let files_read = || -> Result<()> {
        for e in std::fs::read_dir(ckpt_dir).map_err(|e| Error::io(ckpt_dir, e))? {
            let p = e.map_err(|e| Error::io(ckpt_dir, e))?.path();
            if p.extension().is_some_and(|x| x == "safetensors") {
                read_tensors(&p)?;
            }
        }
        Ok(())
    };
    verify(ckpt_dir).is_ok() && files_read().is_ok()
}

/// The error of loading `bad`, with the newest good checkpoint older than it named.
fn name_good_one(run_dir: &Path, bad: &Path, e: Error) -> Error {
    let bad_step = read_progress(bad).map(|p| p.step).ok();
    let good = list(run_dir).ok().and_then(|all| {
        all.into_iter()
            .filter(|(s, d)| d != bad && bad_step.is_none_or(|b| *s < b))
            .find(|(_, d)| is_good(d))
    });
    let hint = match good {
        Some((step, dir)) => format!(
            "; the newest good checkpoint is {} (continue from it with `gm train --resume {} --from {step}`)",
            dir.display(),
            run_dir.display()
        ),
        None => "; no older good checkpoint exists".into(),
    };
    Error::Run {
        path: bad.to_path_buf(),
        msg: format!("checkpoint unusable: {e}{hint}"),
    }
}

/// The checkpoint of a run at `step`, or its newest one.
pub fn find(run_dir: &Path, step: Option<u64>) -> Result<PathBuf> {
    match step {
        None => latest(run_dir)?.ok_or_else(|| Error::Run {
            path: run_dir.into(),
            msg: "has no checkpoint yet".into(),
        }),
        Some(s) => {
            let dir = checkpoints_dir(run_dir).join(format!("step-{s:09}"));
            if dir.join("progress.json").exists() {
                return Ok(dir);
            }
            let have: Vec<String> = list(run_dir)?.iter().map(|(s, _)| s.to_string()).collect();
            Err(Error::Run {
                path: dir,
                msg: format!(
                    "no checkpoint at step {s}; the run has checkpoints at steps [{}]",
                    have.join(", ")
                ),
            })
        }
    }
}

/// [`restore`] of the run's checkpoint at `step` (the newest when `None`); returns the
/// folder and its progress. A failure names the newest good checkpoint.
pub fn restore_run(
    run_dir: &Path,
    step: Option<u64>,
    model: &mut dyn Model,
) -> Result<(PathBuf, Progress)> {
    let dir = find(run_dir, step)?;
    match restore(&dir, model) {
        Ok(p) => Ok((dir, p)),
        Err(e) => Err(name_good_one(run_dir, &dir, e)),
    }
}

/// [`load_weights`] of the run's newest checkpoint; a failure names the newest good one.
pub fn load_run_weights(run_dir: &Path, model: &mut dyn Model) -> Result<PathBuf> {
    let dir = find(run_dir, None)?;
    match load_weights(&dir, model) {
        Ok(()) => Ok(dir),
        Err(e) => Err(name_good_one(run_dir, &dir, e)),
    }
}

/// Loads weights and optimizer state of `ckpt_dir` into `model` (after checking the files'
/// sha256); returns its progress.
pub fn restore(ckpt_dir: &Path, model: &mut dyn Model) -> Result<Progress> {
    load_weights(ckpt_dir, model)?;
    let opt_path = ckpt_dir.join("optimizer.safetensors");
    let mut opts = model.optimizers();
    if !opts.is_empty() {
        let state = read_tensors(&opt_path)?;
        for (name, opt) in opts.iter_mut() {
            opt.load_state(&state, name).map_err(|e| Error::Run {
                path: opt_path.clone(),
                msg: e.to_string(),
            })?;
        }
    }
    read_progress(ckpt_dir)
}

/// Loads only the weights of `ckpt_dir` into `model` (for sampling and evaluation), after
/// checking the files' sha256.
pub fn load_weights(ckpt_dir: &Path, model: &mut dyn Model) -> Result<()> {
    verify(ckpt_dir)?;
    for (store, vs) in model.var_stores_mut() {
        let path = ckpt_dir.join(format!("{store}.safetensors"));
        let saved = read_tensors(&path)?;
        let vars = vs.variables();
        for (name, var) in &vars {
            let src = saved.get(name).ok_or_else(|| Error::Run {
                path: path.clone(),
                msg: format!("no tensor {name} (is this checkpoint from another model config?)"),
            })?;
            if src.size() != var.size() {
                return Err(Error::Run {
                    path: path.clone(),
                    msg: format!(
                        "tensor {name} has shape {:?}, the model needs {:?}",
                        src.size(),
                        var.size()
                    ),
                });
            }
            tch::no_grad(|| var.shallow_clone().f_copy_(src))?;
        }
        if let Some(extra) = saved.keys().find(|k| !vars.contains_key(*k)) {
            return Err(Error::Run {
                path,
                msg: format!(
                    "unexpected tensor {extra} (is this checkpoint from another model config?)"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        atomic_write(&p, b"good").unwrap();
        let r = atomic_write_with(&p, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::Msg("disk full".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn latest_is_none_without_checkpoints_and_error_when_dangling() {
        let dir = tempfile::tempdir().unwrap();
        assert!(latest(dir.path()).unwrap().is_none());
        atomic_write(&dir.path().join("checkpoints/latest"), b"step-000000007").unwrap();
        let err = latest(dir.path()).unwrap_err().to_string();
        assert!(err.contains("step-000000007"), "{err}");
    }
}
