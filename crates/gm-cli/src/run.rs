//! Run directories: what `gm train` writes and `gm sample` / `gm eval` read.

use anyhow::{bail, Result};
use gm_core::checkpoint;
use gm_core::config::RunConfig;
use gm_core::data::{self, Dataset};
use gm_core::model::{BuildContext, Model, ModelRegistry};
use gm_eval::results::CheckpointRef;
use std::path::{Path, PathBuf};
use tch::Device;

/// Every model the CLI knows.
pub fn registry() -> ModelRegistry {
    let mut r = ModelRegistry::new();
    gm_vae::register(&mut r);
    gm_autoregressive::register(&mut r);
    gm_boltzmann::register(&mut r);
    gm_gan::register(&mut r);
    gm_flow::register(&mut r);
    gm_diffusion::register(&mut r);
    r
}

pub const CONFIG_FILE: &str = "config.toml";

/// Reads a run's resolved config.
pub fn read_config(run_dir: &Path) -> Result<RunConfig> {
    if !run_dir.is_dir() {
        bail!(
            "{} is not a run directory (it does not exist)",
            run_dir.display()
        );
    }
    let path = run_dir.join(CONFIG_FILE);
    if !path.exists() {
        bail!(
            "{} is not a run directory: {CONFIG_FILE} is missing",
            run_dir.display()
        );
    }
    Ok(RunConfig::from_file(&path)?)
}

/// Loads the dataset a config names and moves it to `device`.
pub fn load_data(cfg: &RunConfig, device: Device) -> Result<Dataset> {
    let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
    Ok(if device == Device::Cpu {
        ds
    } else {
        ds.to_device(device)
    })
}

/// Builds the model of `cfg` for `data` on `device`.
pub fn build_model(cfg: &RunConfig, data: &Dataset, device: Device) -> Result<Box<dyn Model>> {
    let reg = registry();
    Ok(reg.build(&BuildContext { cfg, data, device })?)
}

/// Builds the model of a run and loads the weights of its best checkpoint when it keeps one
/// (`train.best_metric`) and `latest` is not asked for, else of its newest; returns the model
/// and which checkpoint that was.
pub fn load_trained(
    run_dir: &Path,
    cfg: &RunConfig,
    data: &Dataset,
    device: Device,
    latest: bool,
) -> Result<(Box<dyn Model>, CheckpointRef)> {
    let mut model = build_model(cfg, data, device)?;
    if checkpoint::latest(run_dir)?.is_none() {
        bail!(
            "{} has no checkpoint yet (train it first)",
            run_dir.display()
        );
    }
    let best = cfg.train.best_metric.is_some() && !latest;
    let dir = match best
        .then(|| checkpoint::best(run_dir))
        .transpose()?
        .flatten()
    {
        Some(dir) => {
            checkpoint::load_weights(&dir, model.as_mut())?;
            dir
        }
        None => {
            if best {
                tracing::warn!(
                    "{} has no best checkpoint: using the newest",
                    run_dir.display()
                );
            }
            checkpoint::load_run_weights(run_dir, model.as_mut())?
        }
    };
    let p = checkpoint::read_progress(&dir)?;
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let used = CheckpointRef {
        name: name.unwrap_or_default(),
        epoch: p.epoch,
        step: p.step,
    };
    if let Some(b) = p.best.as_ref().filter(|_| used.name.starts_with("best-")) {
        tracing::info!(
            "using the best checkpoint {} (valid {} {:.4} after epoch {}; --latest for the newest)",
            used.name,
            b.metric,
            b.value,
            b.epoch
        );
    }
    Ok((model, used))
}

/// `runs/<name>` for a new run.
pub fn new_run_dir(out: &Path, name: Option<&str>, cfg: &RunConfig) -> PathBuf {
    let name = name.map(String::from).unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{}-{}-{}", cfg.model.name, cfg.data.dataset, secs)
    });
    out.join(name)
}

#[cfg(test)]
mod tests {
    /// A published figure is only shown beside a run whose model has its name.
    #[test]
    fn published_figures_name_registered_models() {
        let r = super::registry();
        // Models of the catalog that are not built yet.
        let planned = ["dbm"];
        for p in gm_eval::published::TABLE {
            assert!(
                r.get(p.model).is_some() || planned.contains(&p.model),
                "published figure of {:?} ({}) names no registered model",
                p.model,
                p.variant
            );
        }
    }
}
