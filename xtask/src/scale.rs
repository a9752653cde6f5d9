//! `cargo xtask bench scale`: data-parallel `gm train` on this machine — steps per second of
//! the VAE and the RBM (CD-1) on static binarized MNIST on 1 process (1 thread, and all
//! cores), and on 2 processes of 1 thread each (c10d Gloo), with the speed-up and efficiency
//! and the bytes each step all-reduces.
//!
//! A step's time is the difference of two runs' wall times (`--max-steps` short and long)
//! divided by the difference of their steps, so start-up, data loading and the final
//! validation cancel. The result goes to `benches/results/scale-<UTC date>-<hostname>.json`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::{bench, data, setup::Libtorch, util};

/// The configs measured: (label, model, config file).
const MODELS: &[(&str, &str, &str)] = &[
    (
        "vae 784-200-200-50",
        "vae",
        "configs/vae-binarized-mnist.toml",
    ),
    ("rbm 784-500 cd-1", "rbm", "configs/rbm-cd1-mnist.toml"),
];

/// How the processes are laid out: (label, processes, threads each).
const LAYOUTS: &[(&str, usize, usize)] = &[
    ("1 process x 1 thread", 1, 1),
    ("1 process x 2 threads", 1, 2),
    ("2 processes x 1 thread", 2, 1),
];

/// Runs the measurement (`steps` is the long run's; the short run makes a fifth of them).
pub fn run(lt: &Libtorch, steps: Option<u64>, quick: bool, mirror: Option<String>) -> Result<()> {
    let repo = util::repo_root();
    data::run(&data::Options {
        names: vec!["binarized-mnist".into()],
        all: false,
        mirror,
    })?;
    util::run(
        util::cargo(lt).args(["build", "--release", "-p", "gm-cli", "--features", "dist"]),
        "cargo build --release -p gm-cli --features dist",
    )?;
    let gm = crate::target_dir(&repo).join("release/gm");
    let long = steps.unwrap_or(if quick { 20 } else { 500 }).max(5);
    let short = long / 5;
    let tmp = std::env::temp_dir().join(format!("gm-scale-{}", std::process::id()));
    let mut rows = Vec::new();
    for &(label, model, config) in MODELS {
        let params = parameter_count(&gm, lt, model, &repo.join(config), &tmp)?;
        let mut row = json!({"model": label, "parameters": params,
            "allreduce_bytes_per_step": 4 * params});
        for &(layout, procs, threads) in LAYOUTS {
            let run = Runner {
                gm: &gm,
                lt,
                model,
                config: &repo.join(config),
                out: &tmp,
            };
            let t_short = run.wall(short, procs, threads)?;
            let t_long = run.wall(long, procs, threads)?;
            let per_step = (t_long - t_short) / (long - short) as f64;
            println!("{label:<20} {layout:<24} {:>8.2} ms/step", per_step * 1e3);
            row[layout] = json!({"seconds_per_step": per_step, "steps_per_sec": 1.0 / per_step});
        }
        row["pytorch_gloo_allreduce"] = pytorch_allreduce(lt, &repo, params, &tmp)?;
        let one = row[LAYOUTS[0].0]["seconds_per_step"]
            .as_f64()
            .unwrap_or(f64::NAN);
        let two = row[LAYOUTS[2].0]["seconds_per_step"]
            .as_f64()
            .unwrap_or(f64::NAN);
        row["speedup_2_processes"] = json!(one / two);
        row["efficiency_2_processes"] = json!(one / two / 2.0);
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(&tmp);
    println!("\n{}", table(&rows));
    if !quick {
        record(lt, &repo, &rows, long, short)?;
    }
    Ok(())
}

/// One gm training command line and where it writes.
struct Runner<'a> {
    gm: &'a Path,
    lt: &'a Libtorch,
    model: &'a str,
    config: &'a Path,
    out: &'a Path,
}

impl Runner<'_> {
    fn command(&self, steps: u64, threads: usize, name: &str) -> Command {
        let mut c = Command::new(self.gm);
        util::apply_libtorch_env(&mut c, self.lt);
        c.args([
            "--threads",
            &threads.to_string(),
            "train",
            self.model,
            "--config",
        ])
        .arg(self.config)
        .arg("--out")
        .arg(self.out)
        .args(["--name", name, "--force", "--max-steps", &steps.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        c
    }

    /// Wall seconds of `steps` steps on `procs` processes of `threads` threads.
    fn wall(&self, steps: u64, procs: usize, threads: usize) -> Result<f64> {
        let name = format!("{}-{procs}x{threads}-{steps}", self.model);
        let port = free_port()?;
        let start = Instant::now();
        let children: Vec<Child> = (0..procs)
            .map(|rank| {
                let mut c = self.command(steps, threads, &name);
                if procs > 1 {
                    c.env("WORLD_SIZE", procs.to_string())
                        .env("RANK", rank.to_string())
                        .env("MASTER_ADDR", "127.0.0.1")
                        .env("MASTER_PORT", port.to_string());
                }
                c.spawn().context("starting gm")
            })
            .collect::<Result<_>>()?;
        for (rank, child) in children.into_iter().enumerate() {
            let o = child.wait_with_output()?;
            if !o.status.success() {
                bail!(
                    "gm train ({name}, rank {rank}) failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
        }
        Ok(start.elapsed().as_secs_f64())
    }
}

/// The model's trainable parameter count, from a one-step run's checkpoint.
fn parameter_count(
    gm: &Path,
    lt: &Libtorch,
    model: &str,
    config: &Path,
    out: &Path,
) -> Result<u64> {
    let r = Runner {
        gm,
        lt,
        model,
        config,
        out,
    };
    let name = format!("{model}-count");
    let o = r.command(1, 1, &name).output()?;
    if !o.status.success() {
        bail!("gm train {model}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let run = out.join(&name).join("checkpoints");
    let latest = std::fs::read_to_string(run.join("latest"))?;
    let file = run.join(latest.trim()).join("model.safetensors");
    let bytes = std::fs::read(&file).with_context(|| util::show(&file))?;
    let header_len = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len])?;
    let mut n = 0u64;
    for (k, v) in header.as_object().context("safetensors header")? {
        if k == "__metadata__" {
            continue;
        }
        let shape = v["shape"].as_array().context("tensor shape")?;
        n += shape
            .iter()
            .map(|d| d.as_u64().unwrap_or(0))
            .product::<u64>();
    }
    Ok(n)
}

/// PyTorch's own Gloo all-reduce of the same number of floats on 2 processes (torchrun):
/// the engine's cost on this machine, beside the steps' times. Null without Python.
fn pytorch_allreduce(lt: &Libtorch, repo: &Path, numel: u64, tmp: &Path) -> Result<Value> {
    let Some(python) = &lt.python else {
        return Ok(Value::Null);
    };
    std::fs::create_dir_all(tmp)?;
    let json = tmp.join("allreduce.json");
    let mut c = Command::new(python);
    c.args(["-m", "torch.distributed.run", "--nproc-per-node", "2"])
        .arg(format!("--master-port={}", free_port()?))
        .arg(repo.join("benches/reference/allreduce.py"))
        .args(["--numel", &numel.to_string(), "--json"])
        .arg(&json)
        .env("OMP_NUM_THREADS", "1");
    util::run_to_stderr(&mut c, "torchrun benches/reference/allreduce.py")?;
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    println!(
        "pytorch gloo all-reduce of {numel} floats: {:.2} ms (one int64: {:.2} ms)",
        v["ms_allreduce"].as_f64().unwrap_or(f64::NAN),
        v["ms_allreduce_int64"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(v)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn table(rows: &[Value]) -> String {
    let mut s = String::from("| model | parameters | all-reduce per step |");
    for (l, _, _) in LAYOUTS {
        s.push_str(&format!(" {l} |"));
    }
    s.push_str(" speed-up (2 proc / 1x1) | efficiency | PyTorch Gloo all-reduce, same bytes |");
    s.push_str("\n|---|---|---|");
    s.push_str(&"---|".repeat(LAYOUTS.len() + 3));
    for r in rows {
        s.push_str(&format!(
            "\n| {} | {} | {} |",
            r["model"].as_str().unwrap_or(""),
            r["parameters"],
            util::human_bytes(r["allreduce_bytes_per_step"].as_u64().unwrap_or(0))
        ));
        for (l, _, _) in LAYOUTS {
            let ms = r[*l]["seconds_per_step"].as_f64().unwrap_or(f64::NAN) * 1e3;
            s.push_str(&format!(" {ms:.2} ms/step |"));
        }
        let sp = r["speedup_2_processes"].as_f64().unwrap_or(f64::NAN);
        let eff = r["efficiency_2_processes"].as_f64().unwrap_or(f64::NAN);
        let ar = r["pytorch_gloo_allreduce"]["ms_allreduce"].as_f64();
        let ar = ar.map_or("n/a".to_string(), |ms| format!("{ms:.2} ms"));
        s.push_str(&format!(" {sp:.2} | {:.0} % | {ar} |", eff * 100.0));
    }
    s
}

fn record(lt: &Libtorch, repo: &Path, rows: &[Value], long: u64, short: u64) -> Result<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let host = bench::hostname();
    let dir: PathBuf = repo.join("benches/results");
    std::fs::create_dir_all(&dir)?;
    let date = bench::utc_date(secs);
    let path = dir.join(format!("scale-{date}-{}.json", bench::file_safe(&host)));
    let v = json!({
        "bench": "scale",
        "date_utc": date,
        "unix_time": secs,
        "steps_long": long,
        "steps_short": short,
        "engine": "c10d ProcessGroupGloo (libtorch_cpu), TCP on localhost",
        "rows": rows,
        "machine": bench::machine(lt, &host),
    });
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")?;
    println!("recorded {}", util::show(&path));
    Ok(())
}
