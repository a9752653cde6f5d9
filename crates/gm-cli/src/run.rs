//! Run directories: what `gm train` writes and `gm sample` / `gm eval` read.

use anyhow::{bail, Result};
use gm_core::config::RunConfig;
use gm_core::data::{self, Dataset};
use gm_core::model::{BuildContext, Model, ModelRegistry};
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

/// Builds the model of a run and loads its newest checkpoint's weights.
pub fn load_trained(
    run_dir: &Path,
    cfg: &RunConfig,
    data: &Dataset,
    device: Device,
) -> Result<Box<dyn Model>> {
    let mut model = build_model(cfg, data, device)?;
    if gm_core::checkpoint::latest(run_dir)?.is_none() {
        bail!(
            "{} has no checkpoint yet (train it first)",
            run_dir.display()
        );
    }
    gm_core::checkpoint::load_run_weights(run_dir, model.as_mut())?;
    Ok(model)
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
