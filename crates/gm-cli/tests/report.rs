//! `gm eval` + `gm report` on a tiny trained run: the page exists, has the table rows,
//! references only files that exist (pictures are data URIs), refuses mixed binarizations
//! without --force, and renders in headless Chromium when one is installed.

use std::path::Path;
use std::process::{Command, Output};

fn gm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gm"));
    c.env("RUST_LOG", "warn");
    c
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "gm failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const CONFIG: &str = r#"
seed = 3
[model]
name = "vae"
hidden = [16]
latent = 2
[data]
dataset = "bars-and-stripes"
batch_size = 50
[train]
epochs = 4
sample_every = 2
[eval]
is_samples = 10
"#;

/// Every `src="…"` / `href="…"` of `html` is a data URI, an anchor or an existing file.
fn assert_references_exist(html: &str, dir: &Path) {
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = &part[..part.find('"').unwrap()];
            if target.starts_with("data:") || target.starts_with('#') {
                continue;
            }
            assert!(
                dir.join(target).exists(),
                "the page references {target}, which does not exist"
            );
        }
    }
}

#[test]
fn report_of_a_tiny_run_has_its_rows_and_only_existing_references() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let runs = tmp.path().join("runs");
    ok(gm()
        .args(["train", "vae", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&runs)
        .args(["--name", "tiny"])
        .output()
        .unwrap());
    let run = runs.join("tiny");
    let out = ok(gm()
        .arg("eval")
        .arg(&run)
        .args(["--samples", "100"])
        .output()
        .unwrap());
    assert!(out.contains("NLL"), "{out}");

    let html_path = tmp.path().join("report.html");
    ok(gm()
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(&html_path)
        .output()
        .unwrap());
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in [
        "<td>vae</td><td>tiny</td><td>none</td><td>elbo</td>",
        "<td>vae</td><td>tiny</td><td>none</td><td>importance-sampling</td>",
        "<td>test split</td><td>tiny</td><td>none</td><td>nn-median</td>",
        "NN distance to train",
        "near-copies",
        "<polyline",
        "alt=\"nn-grid: sample | NN in pixels",
        "alt=\"samples\"",
    ] {
        assert!(html.contains(needle), "the page lacks {needle}");
    }
    assert_references_exist(&html, tmp.path());

    // A second run whose records say another binarization cannot share a table ...
    let other = runs.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(run.join("config.toml"), other.join("config.toml")).unwrap();
    let results = std::fs::read_to_string(run.join("results.json")).unwrap();
    std::fs::write(
        other.join("results.json"),
        results.replace(
            "\"binarization\": \"none\"",
            "\"binarization\": \"static-file\"",
        ),
    )
    .unwrap();
    let o = gm()
        .arg("report")
        .arg(&run)
        .arg(&other)
        .arg("--out")
        .arg(tmp.path().join("mixed.html"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("binarization none vs static-file"), "{err}");
    assert!(!tmp.path().join("mixed.html").exists());
    // ... unless forced, and then the page says so.
    ok(gm()
        .arg("report")
        .arg(&run)
        .arg(&other)
        .arg("--force")
        .arg("--out")
        .arg(tmp.path().join("mixed.html"))
        .output()
        .unwrap());
    let mixed = std::fs::read_to_string(tmp.path().join("mixed.html")).unwrap();
    assert!(mixed.contains("Forced comparison"));

    // Rendering check in headless Chromium, when there is one.
    let browser = [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .find(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if browser.is_none() && std::env::var_os("GM_CHROMIUM").is_none() {
        println!(
            "skipped the screenshot check: no chromium / chromium-browser / google-chrome on PATH"
        );
        return;
    }
    ok(gm()
        .arg("report")
        .arg(&run)
        .arg("--out")
        .arg(&html_path)
        .arg("--screenshot")
        .output()
        .unwrap());
    let png = std::fs::read(tmp.path().join("report.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "a blank page? {} bytes", png.len());
}

#[test]
fn report_of_a_missing_run_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = gm()
        .arg("report")
        .arg(tmp.path().join("nope"))
        .arg("--out")
        .arg(tmp.path().join("r.html"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a run directory"));
    let o = gm().args(["report", "--screenshot"]).output().unwrap();
    assert!(!o.status.success(), "a run directory is required");
}
