//! `gm sample --complete` and `gm sample --class` end to end on bars and stripes: tiny runs
//! trained through the binary, completions for the models that can, clear refusals for
//! those that cannot, and a label-needing model on an unlabelled dataset.

use std::path::Path;
use std::process::{Command, Output};

fn gm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gm"));
    c.env("RUST_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("gm runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Trains `model` for a few steps on bars and stripes into `<out>/<model>`.
fn train(out: &Path, model: &str, extra: &str) {
    let cfg = out.join(format!("{model}.toml"));
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(
        &cfg,
        format!("seed = 1\n[model]\nname = \"{model}\"\n{extra}\n[data]\ndataset = \"bars-and-stripes\"\nbatch_size = 50\n"),
    )
    .unwrap();
    let o = run(gm()
        .args(["train", model, "--max-steps", "10", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(out)
        .args(["--name", model]));
    assert!(o.status.success(), "train {model}: {}", text(&o));
}

fn sample(run_dir: &Path, args: &[&str]) -> Output {
    run(gm().arg("sample").arg(run_dir).args(args))
}

fn assert_fails(o: &Output, needles: &[&str]) {
    assert!(!o.status.success(), "should fail: {}", text(o));
    let e = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(e.contains(n), "error should mention {n:?}: {e}");
    }
}

#[test]
fn complete_works_for_models_that_can_and_refuses_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    train(&out, "deep-nade", "hidden = [16]");
    train(
        &out,
        "pixelcnn",
        "channels = 8\nresidual_blocks = 1\nfirst_kernel = 3\noutput_channels = 8",
    );
    train(&out, "vae", "hidden = [16]\nlatent = 2");
    train(&out, "rbm", "");
    for (model, kind) in [
        ("deep-nade", "completion exact"),
        ("pixelcnn", "completion exact"),
        ("vae", "completion approximate"),
    ] {
        let dir = out.join(model);
        let o = sample(&dir, &["--complete", "bottom-half", "-n", "6"]);
        assert!(o.status.success(), "{model}: {}", text(&o));
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(said.contains(kind), "{model} should say {kind:?}: {said}");
        let png = dir.join("completion-bottom-half.png");
        assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG", "{model}");
    }
    // Other masks: deep-nade and the vae complete them, pixelcnn refuses (hidden before observed).
    let o = sample(
        &out.join("deep-nade"),
        &["--complete", "random:0.5", "-n", "4"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = sample(&out.join("vae"), &["--complete", "square", "-n", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sample(&out.join("pixelcnn"), &["--complete", "right-half"]);
    assert_fails(&o, &["pixelcnn", "right-half", "raster order"]);
    let o = sample(&out.join("rbm"), &["--complete", "bottom-half"]);
    assert_fails(&o, &["model rbm cannot complete"]);
    assert!(!out.join("rbm/completion-bottom-half.png").exists());
    let o = sample(&out.join("vae"), &["--complete", "top-half"]);
    assert_fails(&o, &["--complete", "\"top-half\"", "bottom-half"]);
    let o = sample(&out.join("vae"), &["--class", "1"]);
    assert_fails(&o, &["model vae cannot sample by class"]);
}

#[test]
fn class_samples_of_a_cvae_and_labels_required() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    train(&out, "cvae", "hidden = [16]\nlatent = 2");
    let dir = out.join("cvae");
    // Training ends with the per-class grid (a row per class) beside the other figures.
    assert_eq!(
        &std::fs::read(dir.join("figures/samples-per-class.png")).unwrap()[1..4],
        b"PNG"
    );
    let o = sample(&dir, &["--class", "1", "-n", "9"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        &std::fs::read(dir.join("samples-class-1.png")).unwrap()[1..4],
        b"PNG"
    );
    let o = sample(&dir, &["--class", "2"]);
    assert_fails(&o, &["--class 2 is out of range", "cvae", "0..=1"]);
    let o = sample(&dir, &["--complete", "bottom-half"]);
    assert_fails(&o, &["model cvae cannot complete"]);

    // A model that needs labels on an unlabelled dataset: a config error naming both,
    // before anything is written.
    let fresh = tmp.path().join("fresh");
    let o = run(gm()
        .args(["train", "cvae", "--dataset", "swiss-roll", "--out"])
        .arg(&fresh));
    assert_fails(&o, &["cvae", "swiss-roll"]);
    assert!(!fresh.exists(), "a refused run must not create its folder");
}
