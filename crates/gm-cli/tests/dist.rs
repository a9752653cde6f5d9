//! Data-parallel `gm train` on 2 processes (c10d Gloo, torchrun's environment variables set
//! by hand): the same weights as 1 process with the same global batch and seed, for the VAE
//! (autograd, Adam) and the RBM (CD-1, hand-written statistics, SGD with momentum); rank 0
//! alone writes; a killed rank makes the other stop with an error, and the run resumes on 1.
#![cfg(feature = "dist")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tch::Tensor;

fn gm() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gm"));
    c.env("RUST_LOG", "warn")
        .env_remove("WORLD_SIZE")
        .env_remove("RANK");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const VAE: &str = r#"
seed = 3
[model]
name = "vae"
hidden = [32]
latent = 4
[data]
dataset = "bars-and-stripes"
batch_size = 10
[train]
epochs = 8
"#;

/// An RBM with 16 hidden units on bars-and-stripes, batches of 10, SGD with momentum, two
/// epochs; `$seed` and the rule's `[model]` lines vary.
macro_rules! rbm_toml {
    ($seed:literal, $rule:literal) => {
        concat!(
            "seed = ",
            $seed,
            "\n[model]\nname = \"rbm\"\nhidden = 16\n",
            $rule,
            "[data]\ndataset = \"bars-and-stripes\"\nbatch_size = 10\n",
            "[optim]\nkind = \"sgd\"\nlr = 0.05\nmomentum = 0.5\n[train]\nepochs = 2\n"
        )
    };
}

const RBM: &str = rbm_toml!("4", "rule = \"cd\"\nk = 1\n");

/// PCD-1 with its 10 chains split 5 / 5 like the batch, centering and a sparsity target
/// (offsets and the sparsity mean are the global batch's).
const RBM_PCD: &str = rbm_toml!(
    "6",
    "rule = \"pcd\"\nk = 1\ncentering = true\nsparsity_cost = 0.1\nsparsity_target = 0.2\n"
);

/// Parallel tempering with 10 chains of 3 replicas each, split 5 / 5 (each chain's
/// replicas and swaps on one process).
const RBM_PT: &str = rbm_toml!("5", "rule = \"pt\"\nk = 1\npt_replicas = 3\n");

/// The `[optim]` and `[train]` tables of the GRBM and DBM runs: SGD at 0.05, two epochs.
macro_rules! sgd_two_epochs {
    () => {
        "[optim]\nkind = \"sgd\"\nlr = 0.05\n[train]\nepochs = 2\n"
    };
}

/// A Gaussian–Bernoulli RBM on two-moons by PCD with its 10 chains split 5 / 5.
const GRBM_PCD: &str = concat!(
    "seed = 8\n[model]\nname = \"grbm\"\nhidden = 8\npersistent = true\n",
    "[data]\ndataset = \"two-moons\"\nsynthetic_size = 400\nbatch_size = 10\n",
    sgd_two_epochs!()
);

/// Algorithm 20.1 with its 10 persistent chains split 5 / 5, centering on.
const DBM: &str = concat!(
    "seed = 7\n[model]\nname = \"dbm\"\nhidden = [8, 4]\ngibbs_steps = 2\ncentering = true\n",
    "[data]\ndataset = \"bars-and-stripes\"\nbatch_size = 10\n",
    sgd_two_epochs!()
);

/// `gm train <model> --config <cfg> --out <out> --name <name>` as rank `rank` of `world`
/// (no rank: a plain single process).
fn train(cfg: &Path, out: &Path, name: &str, rank: Option<(usize, u16)>) -> Command {
    let model = ["rbm", "grbm", "nade", "dbm"]
        .into_iter()
        .find(|m| name.starts_with(m))
        .unwrap_or("vae");
    let mut c = gm();
    c.args(["--threads", "1", "train", model, "--config"])
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(["--name", name]);
    if let Some((r, port)) = rank {
        c.env("WORLD_SIZE", "2")
            .env("RANK", r.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("GM_DIST_TIMEOUT", "20");
    }
    c
}

fn two_ranks(cfg: &Path, out: &Path, name: &str) -> [Child; 2] {
    let port = free_port();
    [0, 1].map(|r| {
        train(cfg, out, name, Some((r, port)))
            .env("RUST_LOG", "warn,gm_core::dist=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    })
}

/// The tensors of a run's latest checkpoint: parameters and, when kept, the model's state.
fn weights(run_dir: &Path) -> Vec<(String, Tensor)> {
    let latest = std::fs::read_to_string(run_dir.join("checkpoints/latest")).unwrap();
    let dir = run_dir.join("checkpoints").join(latest.trim());
    let mut v = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    // The persistent chains and centering offsets, where the model keeps them.
    if dir.join("state.safetensors").exists() {
        v.extend(Tensor::read_safetensors(dir.join("state.safetensors")).unwrap());
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn max_abs_diff(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn two_processes_end_with_the_weights_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    // 800 Adam steps of the VAE, 200 CD-1 steps of the RBM (100 per epoch), 200 PCD-1 and
    // 200 parallel-tempering steps with split chains, 200 DBM updates with split chains: the runs differ by the order of
    // summation only, an error that grows with the steps (measured for the CD-1 RBM: 1e-7
    // after 100, 4e-7 after 200, 4e-6 after 400). The checkpoints hold the chains and the
    // centering offsets too.
    for (name, text, epochs) in [
        ("vae", VAE, 8),
        ("rbm", RBM, 2),
        ("rbm-pcd", RBM_PCD, 2),
        ("rbm-pt", RBM_PT, 2),
        ("grbm-pcd", GRBM_PCD, 2),
        ("dbm", DBM, 2),
    ] {
        let cfg = write(tmp.path(), &format!("{name}.toml"), text);
        let one = train(&cfg, &out, &format!("{name}-1"), None)
            .output()
            .unwrap();
        assert!(one.status.success(), "{}", stderr(&one));
        let two = format!("{name}-2");
        for (r, child) in two_ranks(&cfg, &out, &two).into_iter().enumerate() {
            let o = child.wait_with_output().unwrap();
            assert!(o.status.success(), "rank {r}: {}", stderr(&o));
            if ["rbm-pcd", "rbm-pt", "grbm-pcd", "dbm"].contains(&name) {
                let said = format!(
                    "rank {r} advances persistent chains {}..{} of 10",
                    5 * r,
                    5 * r + 5
                );
                assert!(
                    stderr(&o).contains(&said),
                    "{name} rank {r}: {}",
                    stderr(&o)
                );
            }
        }
        let (a, b) = (
            weights(&out.join(format!("{name}-1"))),
            weights(&out.join(&two)),
        );
        let d = max_abs_diff(&a, &b);
        assert!(
            d <= 1e-5,
            "{name}: max |Δw| = {d:e} between 1 and 2 processes"
        );
        // The weights moved on after the first step: the runs agree on a real trajectory.
        let moved = max_abs_diff(&a, &weights_after_one_step(&cfg, &out, name));
        assert!(
            moved > 1e-2,
            "{name}: training changed the weights by only {moved:e}"
        );
        eprintln!("{name}: max |Δw| 1 vs 2 processes {d:e}, moved {moved:.3}");
        // Rank 0 alone wrote: one metrics line per epoch.
        let metrics = std::fs::read_to_string(out.join(&two).join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), epochs, "{metrics}");
    }
}

/// The weights of the same config after its first step.
fn weights_after_one_step(cfg: &Path, out: &Path, name: &str) -> Vec<(String, Tensor)> {
    let run = format!("{name}-0");
    let o = train(cfg, out, &run, None)
        .args(["--max-steps", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    weights(&out.join(run))
}

#[test]
fn a_killed_rank_stops_the_other_and_the_run_resumes_on_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    let long = VAE.replace("epochs = 8", "epochs = 100000\ncheckpoint_every = 1");
    let cfg = write(tmp.path(), "long.toml", &long);
    let [rank0, mut rank1] = two_ranks(&cfg, &out, "vae-killed");
    let latest = out.join("vae-killed/checkpoints/latest");
    let start = Instant::now();
    while !latest.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint in 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    rank1.kill().unwrap();
    let _ = rank1.wait();
    let killed = Instant::now();
    let o = rank0.wait_with_output().unwrap();
    let waited = killed.elapsed();
    assert!(!o.status.success(), "rank 0 went on without rank 1");
    assert!(
        waited < Duration::from_secs(60),
        "rank 0 took {waited:?} to stop"
    );
    let err = stderr(&o);
    assert!(
        err.contains("rank 0 of 2") && err.contains("failed"),
        "{err}"
    );
    // Resume on one process from what rank 0 wrote.
    let o = gm()
        .args(["--threads", "1", "train", "--resume"])
        .arg(out.join("vae-killed"))
        .args(["--max-minutes", "0.02"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The AIS record of `results.json` in `run_dir`: log Z and the weights' effective sample size.
/// The records of `results.json` in a run directory.
fn records(run_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run_dir.join("results.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v.as_array()
        .or_else(|| v["records"].as_array())
        .unwrap()
        .clone()
}

/// The record of `method` (a likelihood's method or a metric's name).
fn record<'a>(records: &'a [serde_json::Value], method: &str) -> &'a serde_json::Value {
    records
        .iter()
        .find(|r| r["method"] == method || r["metric"] == method)
        .unwrap_or_else(|| panic!("no {method} record in {records:?}"))
}

/// `gm eval <run_dir> <args>` as a plain process, or as rank `r` of 2.
fn eval_cmd(run_dir: &Path, args: &[&str], rank: Option<(usize, u16)>) -> Command {
    let mut c = gm();
    c.args(["--threads", "1", "eval"]).args(args).arg(run_dir);
    if let Some((r, port)) = rank {
        c.env("WORLD_SIZE", "2")
            .env("RANK", r.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .env("GM_DIST_TIMEOUT", "20");
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// The records of `gm eval` on 1 process, then on 2.
fn records_on_one_and_two(run_dir: &Path, args: &[&str]) -> [Vec<serde_json::Value>; 2] {
    let o = eval_cmd(run_dir, args, None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let one = records(run_dir);
    std::fs::remove_file(run_dir.join("results.json")).unwrap();
    let port = free_port();
    let children = [0, 1].map(|r| eval_cmd(run_dir, args, Some((r, port))).spawn().unwrap());
    for (r, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "rank {r}: {}", stderr(&o));
    }
    [one, records(run_dir)]
}

fn ais_record(run_dir: &Path) -> (f64, f64) {
    let records = records(run_dir);
    let ais = record(&records, "ais");
    let log_z = ais["settings"]["log_z"].as_f64().unwrap();
    let ess = ais["settings"]["ess"].as_f64().unwrap();
    (log_z, ess)
}

#[test]
fn ais_on_two_processes_gives_the_log_z_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    let text = format!("{RBM}[eval]\nais_chains = 101\nais_steps = 300\n");
    let cfg = write(tmp.path(), "rbm.toml", &text);
    let o = train(&cfg, &out, "rbm-ais", None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let run_dir = out.join("rbm-ais");
    let eval = |rank: Option<(usize, u16)>| {
        let mut c = gm();
        c.args(["--threads", "1", "eval", "--no-quality"])
            .arg(&run_dir);
        if let Some((r, port)) = rank {
            c.env("WORLD_SIZE", "2")
                .env("RANK", r.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("GM_DIST_TIMEOUT", "20");
        }
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c
    };
    let o = eval(None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let (one, ess_one) = ais_record(&run_dir);
    std::fs::remove_file(run_dir.join("results.json")).unwrap();
    let port = free_port();
    let children = [0, 1].map(|r| eval(Some((r, port))).spawn().unwrap());
    for (r, c) in children.into_iter().enumerate() {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "rank {r}: {}", stderr(&o));
    }
    let (two, ess_two) = ais_record(&run_dir);
    // 101 chains split 50 / 51, the same draws per chain: the same estimate to rounding.
    assert!(
        (one - two).abs() < 1e-9,
        "log Z: {one} on 1 process, {two} on 2"
    );
    assert!(
        (ess_one - ess_two).abs() < 1e-6,
        "ESS {ess_one} vs {ess_two}"
    );
}

const NADE: &str = r#"
seed = 5
[model]
name = "nade"
hidden = 16
[data]
dataset = "bars-and-stripes"
batch_size = 10
[train]
epochs = 2
"#;

#[test]
fn split_evaluation_pools_to_the_records_of_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    // An exact likelihood: the 250 test examples split 125 / 125, pooled, give the mean and
    // standard error of one process to the rounding of f32 log-probabilities computed in
    // other batches; the 40 quality samples are drawn 20 / 20.
    let cfg = write(tmp.path(), "nade.toml", NADE);
    let o = train(&cfg, &out, "nade", None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let [one, two] = records_on_one_and_two(&out.join("nade"), &["--samples", "40"]);
    let (a, b) = (record(&one, "nade"), record(&two, "nade"));
    assert_eq!((a["n"].as_i64(), b["n"].as_i64()), (Some(250), Some(250)));
    assert_eq!(b["settings"]["parts"], 2);
    for field in ["value", "std_err"] {
        let (x, y) = (a[field].as_f64().unwrap(), b[field].as_f64().unwrap());
        assert!((x - y).abs() < 1e-6, "{field}: {x} on 1 process, {y} on 2");
    }
    let nn = record(&two, "nn_distance");
    assert_eq!(nn["n"].as_i64(), Some(40), "{nn}");
    // Importance sampling: other draws on 2 processes, the same estimator.
    let cfg = write(tmp.path(), "vae.toml", VAE);
    let o = train(&cfg, &out, "vae-eval", None).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let [one, two] = records_on_one_and_two(&out.join("vae-eval"), &["--no-quality", "--k", "200"]);
    for method in ["elbo", "importance-sampling"] {
        let (a, b) = (record(&one, method), record(&two, method));
        let (x, y) = (a["value"].as_f64().unwrap(), b["value"].as_f64().unwrap());
        let se = a["std_err"]
            .as_f64()
            .unwrap()
            .hypot(b["std_err"].as_f64().unwrap());
        eprintln!("{method}: {x:.4} on 1 process, {y:.4} ± {se:.4} on 2");
        assert_eq!(b["n"], a["n"]);
        assert!((x - y).abs() < 4.0 * se, "{method}: {x} vs {y} (se {se})");
    }
}
