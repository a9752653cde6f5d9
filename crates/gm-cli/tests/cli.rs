//! The `gm` binary end to end on synthetic data: train, kill -9, resume to identical
//! weights; eval and sample; and one clear error (non-zero exit, nothing written) per kind
//! of bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tch::Tensor;

fn gm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gm"));
    c.env("RUST_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("gm runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const CONFIG: &str = r#"
seed = 5
[model]
name = "vae"
hidden = [32]
latent = 4
[data]
dataset = "bars-and-stripes"
batch_size = 20
[train]
epochs = 60
checkpoint_every = 1
sample_every = 30
[eval]
is_samples = 50
"#;

fn write_config(dir: &Path) -> PathBuf {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, CONFIG).unwrap();
    p
}

fn weights(run_dir: &Path) -> Vec<(String, Tensor)> {
    let latest = std::fs::read_to_string(run_dir.join("checkpoints/latest")).unwrap();
    let mut v = Tensor::read_safetensors(
        run_dir
            .join("checkpoints")
            .join(latest.trim())
            .join("model.safetensors"),
    )
    .unwrap();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn kill_9_then_resume_ends_with_the_same_weights_and_eval_works() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path());
    let out = tmp.path().join("runs");

    let o = run(gm()
        .args(["train", "vae", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--name", "full"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let full = weights(&out.join("full"));

    let mut child = gm()
        .args(["train", "vae", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--name", "killed"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let latest = out.join("killed/checkpoints/latest");
    let start = Instant::now();
    // Wait for a checkpoint a few epochs in, then kill without warning.
    loop {
        if let Ok(s) = std::fs::read_to_string(&latest) {
            if s.trim() >= "step-000000150" {
                break;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = std::fs::read_to_string(&latest).unwrap();
    assert!(
        before.trim() < "step-000003000",
        "the run had already finished: {before}"
    );

    let o = run(gm().args(["train", "--resume"]).arg(out.join("killed")));
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed = weights(&out.join("killed"));
    assert_eq!(full.len(), resumed.len());
    for ((na, a), (nb, b)) in full.iter().zip(&resumed) {
        assert_eq!(na, nb);
        assert_eq!(
            (a - b).abs().max().double_value(&[]),
            0.0,
            "{na} differs after kill -9 + resume"
        );
    }
    let epochs: Vec<u64> = std::fs::read_to_string(out.join("killed/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, (1..=60).collect::<Vec<_>>());

    let o = run(gm().arg("eval").arg(out.join("full")));
    assert!(o.status.success(), "{}", stderr(&o));
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("full/results.json")).unwrap()).unwrap();
    let records = results.as_array().unwrap();
    let lls: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["metric"].get("log_likelihood").is_some())
        .collect();
    let kinds: Vec<&str> = lls
        .iter()
        .map(|r| r["metric"]["log_likelihood"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["lower_bound", "stochastic_estimate"]);
    for r in lls {
        let nll = -r["value"].as_f64().unwrap();
        // Between the optimum (ln 30 per pattern) and a uniform model (16 ln 2).
        assert!(nll > 30f64.ln() - 0.1 && nll < 16.0 * 2f64.ln(), "{r}");
        assert_eq!(r["binarization"].as_str().unwrap(), "none");
        assert_eq!(r["split"].as_str().unwrap(), "test");
    }
    // The VAE's active units: a count among its 4 latent dimensions.
    let au = records
        .iter()
        .find(|r| r["metric"] == "active_units")
        .expect("an active-units record");
    let v = au["value"].as_f64().unwrap();
    assert!(v.fract() == 0.0 && (0.0..=4.0).contains(&v), "{au}");
    // Bars and stripes has no feature network: the pixel-space copy check only, with the
    // test split's floor.
    let metrics: Vec<String> = records
        .iter()
        .filter(|r| r["metric"].get("log_likelihood").is_none())
        .map(|r| format!("{} {}", r["model"].as_str().unwrap(), r["metric"]))
        .collect();
    assert_eq!(
        metrics,
        [
            "vae \"active_units\"",
            "vae \"nn_distance\"",
            "vae \"near_copies\"",
            "test split \"nn_distance\""
        ]
    );
    assert!(out.join("full/figures/nn-grid.png").exists());
    assert!(out.join("full/figures/reconstructions.png").exists());

    let png = tmp.path().join("s.png");
    let o = run(gm()
        .arg("sample")
        .arg(out.join("full"))
        .args(["-n", "9", "-o"])
        .arg(&png));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
}

fn assert_clean_failure(o: &Output, needle: &str, out: &Path) {
    assert!(!o.status.success(), "should fail");
    let e = stderr(o);
    assert!(e.contains(needle), "error should mention {needle:?}: {e}");
    assert_eq!(
        e.trim().lines().count(),
        1,
        "one line of error expected: {e}"
    );
    assert!(
        !out.exists(),
        "a failed start must not create the run directory"
    );
}

#[test]
fn bad_input_gives_one_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");

    // A mistyped config field.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[train]\nepocs = 3\n").unwrap();
    let o = run(gm()
        .args(["train", "vae", "--dataset", "bars-and-stripes", "--config"])
        .arg(&bad)
        .arg("--out")
        .arg(&out));
    assert_clean_failure(&o, "epocs", &out);

    // An invalid value.
    std::fs::write(&bad, "[optim]\nlr = -1.0\n").unwrap();
    let o = run(gm()
        .args(["train", "vae", "--dataset", "bars-and-stripes", "--config"])
        .arg(&bad)
        .arg("--out")
        .arg(&out));
    assert_clean_failure(&o, "optim.lr", &out);

    // Unknown model and dataset.
    let o = run(gm().args(["train", "vea"]).arg("--out").arg(&out));
    assert_clean_failure(&o, "known: vae", &out);
    let o = run(gm()
        .args(["train", "vae", "--dataset", "cifar"])
        .arg("--out")
        .arg(&out));
    assert_clean_failure(&o, "unknown dataset", &out);

    // CUDA asked for on a machine without it.
    if !tch::Cuda::is_available() {
        let o = run(gm()
            .args([
                "train",
                "vae",
                "--dataset",
                "bars-and-stripes",
                "--device",
                "cuda",
            ])
            .arg("--out")
            .arg(&out));
        assert_clean_failure(&o, "no CUDA device", &out);
    }

    // A dataset that is not downloaded, then a corrupt file.
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("fashion-mnist")).unwrap();
    let o = run(gm()
        .env("GM_DATA_DIR", &cache)
        .args(["train", "vae", "--dataset", "fashion-mnist", "--out"])
        .arg(&out));
    assert_clean_failure(&o, "cargo xtask data fashion-mnist", &out);
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(cache.join("fashion-mnist").join(f), b"not an idx file").unwrap();
    }
    let o = run(gm()
        .env("GM_DATA_DIR", &cache)
        .args(["train", "vae", "--dataset", "fashion-mnist", "--out"])
        .arg(&out));
    assert_clean_failure(&o, "fashion-mnist", &out);
    assert!(
        stderr(&o).contains("train-images-idx3-ubyte") || stderr(&o).contains("t10k"),
        "{}",
        stderr(&o)
    );

    // No model named, on the command line or in a config.
    let o = run(gm().arg("train").arg("--out").arg(&out));
    assert_clean_failure(&o, "name a model to train", &out);
    let o = run(gm()
        .args(["train", "rbm", "--config"])
        .arg(write_config(tmp.path()))
        .arg("--out")
        .arg(&out));
    assert_clean_failure(&o, "the config names model `vae`", &out);

    // Resuming something that is not a run.
    let o = run(gm()
        .args(["train", "--resume"])
        .arg(tmp.path().join("nope")));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a run directory"), "{}", stderr(&o));
}

#[test]
fn a_config_that_names_its_model_needs_no_model_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(gm()
        .args(["train", "--max-steps", "2", "--name", "r", "--config"])
        .arg(write_config(tmp.path()))
        .arg("--out")
        .arg(tmp.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg = std::fs::read_to_string(tmp.path().join("r/config.toml")).unwrap();
    assert!(cfg.contains("name = \"vae\""), "{cfg}");
}

#[test]
fn eval_uses_the_best_checkpoint_unless_told_latest_and_records_which() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("best.toml");
    let text = CONFIG.replace("epochs = 60", "epochs = 3\nbest_metric = \"loss\"");
    std::fs::write(&cfg, text).unwrap();
    let o = run(gm()
        .args(["train", "--name", "r", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(tmp.path()));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("best valid loss"), "{out}");
    let run_dir = tmp.path().join("r");
    let used = |latest: bool| {
        let mut c = gm();
        c.args(["eval", "--no-quality", "--k", "5"]).arg(&run_dir);
        if latest {
            c.arg("--latest");
        }
        let o = run(&mut c);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
        let records: serde_json::Value = serde_json::from_str(&text).unwrap();
        records[0]["checkpoint"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let best = std::fs::read_to_string(run_dir.join("checkpoints/best")).unwrap();
    assert!(best.starts_with("best-step-"), "{best}");
    assert_eq!(used(false), best.trim());
    assert_eq!(used(true), "step-000000150");
}

/// The checkpoint folders of a run, oldest first.
fn checkpoint_names(run_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(run_dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("step-"))
        .collect();
    v.sort();
    v
}

/// A Python with `safetensors` and `numpy` to read the raw samples with (the project's
/// torch venv, or $GM_PYTHON), if there is one.
fn python_with_safetensors() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("GM_PYTHON").map(PathBuf::from),
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/gm/torch-2.13.0/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import safetensors, numpy"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn a_corrupt_checkpoint_is_named_and_from_resumes_the_good_one_and_raw_samples_load() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("short.toml");
    std::fs::write(&cfg, CONFIG.replace("epochs = 60", "epochs = 4")).unwrap();
    let out = tmp.path().join("runs");
    let o = run(gm()
        .args(["train", "vae", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--name", "r"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let run_dir = out.join("r");
    let intact = weights(&run_dir);
    let names = checkpoint_names(&run_dir);
    assert_eq!(names.len(), 2, "{names:?}");
    let good_step: u64 = names[0].trim_start_matches("step-").parse().unwrap();

    // Flip a byte inside the tensor data of the newest model.safetensors.
    let file = run_dir
        .join("checkpoints")
        .join(&names[1])
        .join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[8 + header + 5] ^= 0x10;
    std::fs::write(&file, bytes).unwrap();

    let from = format!("--from {good_step}");
    for args in [vec!["sample"], vec!["eval"], vec!["train", "--resume"]] {
        let o = run(gm().args(&args).arg(&run_dir));
        let e = stderr(&o);
        assert!(
            !o.status.success(),
            "{args:?} succeeded on a corrupt checkpoint"
        );
        assert!(e.contains(&file.display().to_string()), "{args:?}: {e}");
        assert!(
            e.contains("sha256") && e.contains(&names[0]) && e.contains(&from),
            "{args:?}: {e}"
        );
        assert_eq!(
            e.matches("sha256 is").count(),
            1,
            "said more than once: {e}"
        );
    }
    let o = run(gm()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .args(["--from", &good_step.to_string()]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        weights(&run_dir)
            .iter()
            .map(|(k, t)| (k.clone(), Vec::<f32>::try_from(t.reshape([-1])).unwrap()))
            .collect::<Vec<_>>(),
        intact
            .iter()
            .map(|(k, t)| (k.clone(), Vec::<f32>::try_from(t.reshape([-1])).unwrap()))
            .collect::<Vec<_>>(),
        "resumed from the good checkpoint, the run should end where the intact one did"
    );

    // Raw samples: safetensors with metadata and a PNG beside it; npy with a JSON sidecar.
    let sample_to = |path: &std::path::Path| {
        let o = run(gm()
            .arg("sample")
            .arg(&run_dir)
            .args(["-n", "12", "--seed", "4", "-o"])
            .arg(path));
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let st = tmp.path().join("s.safetensors");
    sample_to(&st);
    assert!(tmp.path().join("s.png").exists());
    let t = Tensor::read_safetensors(&st).unwrap();
    assert_eq!(t[0].0, "samples");
    assert_eq!(t[0].1.size(), [12, 1, 4, 4]);
    let meta = gm_core::export::read_safetensors_metadata(&st).unwrap();
    assert_eq!(meta["model"], "vae");
    assert_eq!(meta["seed"], "4");
    assert_eq!(meta["dataset"], "bars-and-stripes");
    assert!(
        meta.contains_key("binarization") && meta.contains_key("samples"),
        "{meta:?}"
    );
    let npy = tmp.path().join("s2.npy");
    sample_to(&npy);
    assert!(
        Tensor::read_npy(&npy).unwrap().equal(&t[0].1),
        "same seed, same samples"
    );
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("s2.json")).unwrap()).unwrap();
    assert_eq!(side["model"], "vae");

    let Some(py) = python_with_safetensors() else {
        eprintln!("skipped the Python check: no Python with safetensors and numpy (set GM_PYTHON)");
        return;
    };
    let script = "import sys, numpy as np\nfrom safetensors import safe_open\n\
        with safe_open(sys.argv[1], 'np') as f:\n    x = f.get_tensor('samples'); m = f.metadata()\n\
        y = np.load(sys.argv[2])\n\
        print(x.dtype, list(x.shape), m['model'], m['seed'], float(abs(x - y).max()))";
    let o = run(Command::new(&py).args(["-c", script]).arg(&st).arg(&npy));
    let said = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(said.trim(), "float32 [12, 1, 4, 4] vae 4 0.0", "{said}");
}

/// A model without a likelihood (a GAN) gets none from `gm eval`, and, with `--parzen`, one
/// Parzen-window record (labelled `parzen`, with its bandwidth and sample count).
#[test]
fn eval_parzen_gives_a_labelled_parzen_record_for_a_gan() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("gan.toml");
    std::fs::write(
        &cfg,
        "seed = 1\n[model]\nname = \"gan\"\nlatent = 2\ngenerator_hidden = [16]\n\
         discriminator_hidden = [16]\n[data]\ndataset = \"two-moons\"\nsynthetic_size = 400\n\
         batch_size = 50\n[train]\nepochs = 3\n[eval]\nlimit = 60\n",
    )
    .unwrap();
    let out = tmp.path().join("runs");
    let o = run(gm()
        .args(["train", "gan", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--name", "g"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let lls = |args: &[&str]| -> Vec<serde_json::Value> {
        let o = run(gm().arg("eval").arg(out.join("g")).args(args));
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("g/results.json")).unwrap()).unwrap();
        r.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["metric"].get("log_likelihood").is_some())
            .cloned()
            .collect()
    };
    assert!(lls(&[]).is_empty());
    let p = lls(&["--parzen", "--parzen-samples", "300"]);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0]["metric"]["log_likelihood"], "parzen");
    assert_eq!(p[0]["n"], 60);
    assert_eq!(p[0]["settings"]["n_samples"], 300);
    let sigma = p[0]["settings"]["bandwidth"].as_f64().unwrap();
    assert!((0.01..=1.0).contains(&sigma), "{sigma}");
    assert!(p[0]["value"].as_f64().unwrap().is_finite());
}

/// `--ais-chains` / `--ais-steps` override the run config's AIS for one evaluation and are
/// recorded with it; a zero is refused naming the config field.
#[test]
fn eval_ais_overrides_are_used_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("rbm.toml");
    std::fs::write(
        &cfg,
        "seed = 1\n[model]\nname = \"rbm\"\nhidden = 6\n[data]\ndataset = \"bars-and-stripes\"\n\
         batch_size = 10\n[train]\nepochs = 2\n",
    )
    .unwrap();
    let out = tmp.path().join("runs");
    let o = run(gm()
        .args(["train", "rbm", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out)
        .args(["--name", "r"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(gm().arg("eval").arg(out.join("r")).args([
        "--no-quality",
        "--ais-chains",
        "7",
        "--ais-steps",
        "123",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("r/results.json")).unwrap()).unwrap();
    let ais: Vec<&serde_json::Value> = r
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["settings"]["method"] == "ais")
        .collect();
    assert_eq!(ais.len(), 1, "{r}");
    assert_eq!(ais[0]["settings"]["chains"], 7, "{}", ais[0]);
    assert_eq!(ais[0]["settings"]["steps"], 123, "{}", ais[0]);
    let o = run(gm()
        .arg("eval")
        .arg(out.join("r"))
        .args(["--ais-steps", "0"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("eval.ais_steps"), "{}", stderr(&o));
    // An RBM keeps no chains to start reverse AIS from: said, not silently skipped.
    let o = run(gm().arg("eval").arg(out.join("r")).args([
        "--no-quality",
        "--ais-steps",
        "10",
        "--ais-reverse",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rbm has no reverse AIS"),
        "{}",
        stderr(&o)
    );
}
