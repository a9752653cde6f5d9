//! The closing summary of `cargo xtask demo`, read from the run's `results.json` (a JSON
//! array of gm-eval records: `model`, `metric` — `{"log_likelihood": kind}` or a name such
//! as `"frechet_distance"` —, `method`, `value`, `std_err`, `n`, `settings` with `source` =
//! `"samples"` or `"test split"` for sample-quality records), so it says what the file says.

use anyhow::{Context, Result};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Browser names the report's `--screenshot` looks up on `PATH` (`$GM_CHROMIUM` wins).
const BROWSERS: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// Whether `gm report --screenshot` can find a headless Chromium.
pub fn have_chromium() -> bool {
    if std::env::var_os("GM_CHROMIUM").is_some_and(|p| !p.is_empty()) {
        return true;
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| BROWSERS.iter().any(|b| d.join(b).is_file()))
    })
}

/// The headline sample-quality metrics, in display order, with their names in results.json.
const QUALITY: [(&str, &str); 4] = [
    ("frechet_distance", "Fréchet distance"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("class_coverage", "class coverage"),
];

fn kind_text(kind: &str) -> String {
    match kind {
        "stochastic_estimate" => "stochastic estimate".into(),
        "lower_bound" => "lower bound".into(),
        "parzen" => "Parzen estimate".into(),
        k => k.replace('_', " "),
    }
}

fn source(r: &Value) -> Option<&str> {
    r["settings"]["source"].as_str()
}

/// The summary text of `results` (the contents of results.json), naming `pictures`.
pub fn summary(results: &str, pictures: &[PathBuf]) -> Result<String> {
    let records: Vec<Value> =
        serde_json::from_str(results).context("results.json is not a JSON array of records")?;
    let mut s = String::from("test likelihoods (nats per example):\n");
    for r in &records {
        let Some(kind) = r["metric"]["log_likelihood"].as_str() else {
            continue;
        };
        let k = r["settings"]["k"]
            .as_i64()
            .map(|k| format!(", k = {k}"))
            .unwrap_or_default();
        let value = r["value"]
            .as_f64()
            .context("a likelihood record without a value")?;
        let se = r["std_err"]
            .as_f64()
            .map(|e| format!(" ± {e:.3}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:<20} NLL {:>9.3}{se}  [{}{k}; {} test examples]",
            r["method"].as_str().unwrap_or("?"),
            -value,
            kind_text(kind),
            r["n"]
        );
    }
    s.push_str(
        "sample quality against the training split (floor: the test split in place of samples):\n",
    );
    for (key, name) in QUALITY {
        let pick = |src: &str| {
            records
                .iter()
                .find(|r| r["metric"].as_str() == Some(key) && source(r) == Some(src))
                .and_then(|r| r["value"].as_f64())
        };
        let (Some(v), floor) = (pick("samples"), pick("test split")) else {
            continue;
        };
        let f = floor
            .map(|f| format!("{f:.4}"))
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(s, "  {name:<20} {v:>10.4}   floor {f:>10}");
    }
    if let Some(r) = records
        .iter()
        .find(|r| r["metric"].as_str() == Some("frechet_distance"))
    {
        let st = &r["settings"];
        let _ = writeln!(
            s,
            "  (features {}, data {}, samples: {})",
            st["features"].as_str().unwrap_or("?"),
            st["data"].as_str().unwrap_or("?"),
            records
                .iter()
                .find_map(|r| r["settings"]["samples_are"].as_str())
                .unwrap_or("?")
        );
    }
    for p in pictures {
        let _ = writeln!(s, "{}", p.display());
    }
    Ok(s)
}

/// The report, screenshot and pictures of `run_dir` that exist, as summary lines.
pub fn outputs(run_dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["report.html", "report.png", "samples.png"]
        .iter()
        .map(|f| run_dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    let mut figs: Vec<PathBuf> = std::fs::read_dir(run_dir.join("figures"))
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    figs.sort();
    out.extend(figs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by hand from the record format of gm-eval's results.rs.
    const FIXTURE: &str = r#"[
      {"model": "vae", "config_hash": "abc", "dataset": "fashion-mnist", "split": "test",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": {"log_likelihood": "lower_bound"}, "method": "elbo", "settings": {},
       "value": -250.5, "std_err": 0.75, "n": 10000, "seconds": 2.0, "device": "cpu"},
      {"model": "vae", "config_hash": "abc", "dataset": "fashion-mnist", "split": "test",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": {"log_likelihood": "stochastic_estimate"}, "method": "importance-sampling",
       "settings": {"k": 1000}, "value": -240.25, "std_err": 0.5, "n": 10000,
       "seconds": 60.0, "device": "cpu"},
      {"model": "vae", "config_hash": "abc", "dataset": "fashion-mnist", "split": "train",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": "frechet_distance", "method": "frechet",
       "settings": {"source": "samples", "features": "fashion-mnist-bernoulli-convnet-v1",
                    "data": "0/1", "samples_are": "Bernoulli draws of the model's means"},
       "value": 31.5, "std_err": null, "n": 10000, "seconds": 1.0, "device": "cpu"},
      {"model": "test split", "config_hash": "abc", "dataset": "fashion-mnist", "split": "train",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": "frechet_distance", "method": "frechet",
       "settings": {"source": "test split", "features": "fashion-mnist-bernoulli-convnet-v1", "data": "0/1"},
       "value": 0.75, "std_err": null, "n": 10000, "seconds": 1.0, "device": "cpu"},
      {"model": "vae", "config_hash": "abc", "dataset": "fashion-mnist", "split": "train",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": "precision", "method": "knn-manifold", "settings": {"source": "samples", "k": 3},
       "value": 0.5, "std_err": null, "n": 10000, "seconds": 1.0, "device": "cpu"},
      {"model": "test split", "config_hash": "abc", "dataset": "fashion-mnist", "split": "train",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": "precision", "method": "knn-manifold", "settings": {"source": "test split", "k": 3},
       "value": 0.875, "std_err": null, "n": 10000, "seconds": 1.0, "device": "cpu"},
      {"model": "vae", "config_hash": "abc", "dataset": "fashion-mnist", "split": "train",
       "binarization": {"dynamic": {"seed": 0}}, "labelled": null,
       "metric": "class_coverage", "method": "classifier", "settings": {"source": "samples"},
       "value": 9.0, "std_err": null, "n": 10000, "seconds": 1.0, "device": "cpu"}
    ]"#;

    #[test]
    fn summary_says_what_results_json_says() {
        let s = summary(FIXTURE, &[PathBuf::from("runs/demo/report.html")]).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains("elbo")
                && l.contains("NLL   250.500 ± 0.750")
                && l.contains("[lower bound; 10000 test examples]")),
            "{s}"
        );
        assert!(
            lines.iter().any(|l| l.contains("importance-sampling")
                && l.contains("NLL   240.250 ± 0.500")
                && l.contains("[stochastic estimate, k = 1000;")),
            "{s}"
        );
        let line = |name: &str| {
            *lines
                .iter()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} line in\n{s}"))
        };
        let fd = line("Fréchet distance");
        assert!(
            fd.contains("31.5000") && fd.contains("floor     0.7500"),
            "{fd}"
        );
        assert!(line("precision").contains("0.5000   floor     0.8750"));
        // No floor record: a dash, not a made-up number; no recall records: no line.
        assert!(line("class coverage").contains("9.0000   floor          —"));
        assert!(!s.contains("recall "), "{s}");
        assert!(
            s.contains("fashion-mnist-bernoulli-convnet-v1, data 0/1, samples: Bernoulli draws")
        );
        assert!(s.ends_with("runs/demo/report.html\n"));
        assert!(summary("{\"not\": \"records\"}", &[]).is_err());
    }
}
