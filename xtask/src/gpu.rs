//! `cargo xtask gpu-check`: on a machine with an NVIDIA GPU, the workspace's tests in
//! release (every `test_device!` test runs on `cuda:0` as well as on the CPU, the model
//! contract among them: a few training steps, resume, sampling and likelihoods of every
//! registered model), then a table of each model's likelihoods on CUDA beside the CPU's.
//! Without a GPU it says so and succeeds.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{bail, Result};
use serde_json::Value;

use crate::{setup::Libtorch, util};

/// The GPUs `nvidia-smi -L` lists (none when it is missing or fails).
fn gpus() -> Vec<String> {
    Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("GPU"))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the check (see the module docs).
pub fn run(lt: &Libtorch) -> Result<()> {
    let gpus = gpus();
    if gpus.is_empty() {
        println!(
            "gpu-check: no NVIDIA GPU on this machine (nvidia-smi lists none); nothing to check"
        );
        return Ok(());
    }
    for g in &gpus {
        println!("gpu-check: {g}");
    }
    let report = std::env::temp_dir().join(format!("gm-gpu-check-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let mut cmd = util::cargo(lt);
    cmd.args([
        "test",
        "--release",
        "--workspace",
        "--features",
        "gm-cli/dist",
    ])
    .env("GM_CONTRACT_REPORT", &report);
    let tested = util::run(&mut cmd, "cargo test --release --workspace (CPU and CUDA)");
    let lines = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    println!("\n{}", table(&lines)?);
    tested?;
    if !lines.contains("Cuda") {
        bail!("the contract test ran on no CUDA device: is this libtorch built with CUDA? (`gm doctor`)");
    }
    Ok(())
}

/// Markdown table: per model, each likelihood on the CPU and on CUDA.
fn table(lines: &str) -> Result<String> {
    let mut by: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for line in lines.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        let device = v["device"].as_str().unwrap_or("?").to_owned();
        let model = v["model"].as_str().unwrap_or("?").to_owned();
        for ll in v["likelihoods"].as_array().into_iter().flatten() {
            let method = ll[0].as_str().unwrap_or("?").to_owned();
            let mean = ll[1].as_f64().unwrap_or(f64::NAN);
            by.entry((model.clone(), method))
                .or_default()
                .insert(device.clone(), mean);
        }
    }
    let mut s = String::from("| model | likelihood | CPU | CUDA | |Δ| |\n|---|---|---|---|---|");
    for ((model, method), d) in &by {
        let cpu = d.get("Cpu").copied().unwrap_or(f64::NAN);
        let cuda = d.get("Cuda(0)").copied().unwrap_or(f64::NAN);
        s.push_str(&format!(
            "\n| {model} | {method} | {cpu:.4} | {cuda:.4} | {:.2e} |",
            (cpu - cuda).abs()
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_table_pairs_devices_per_model_and_method() {
        let lines = r#"{"model":"vae","dataset":"b","device":"Cpu","likelihoods":[["is",-3.5]]}
{"model":"vae","dataset":"b","device":"Cuda(0)","likelihoods":[["is",-3.25]]}"#;
        let t = super::table(lines).unwrap();
        assert!(
            t.contains("| vae | is | -3.5000 | -3.2500 | 2.50e-1 |"),
            "{t}"
        );
    }
}
