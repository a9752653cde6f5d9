//! `cargo xtask bench <name>`: time a gm program against its PyTorch reference script on
//! the same machine, and record both with a description of the machine.
//!
//! Each bench is one entry of [`BENCHES`]: the gm binary (in the `gm-benches` package) and
//! the Python script under `benches/reference/`. Both take
//! `--steps N --threads T [the bench's args] --json <file>` and write one JSON object with at
//! least `impl`, `steps`, `seconds`, `peak_rss_mb` and the bench's own columns.
//! The result goes to `benches/results/<name>-<UTC date>-<hostname>.json`.
//!
//! ```text
//! cargo xtask bench vae --steps 500 --threads 2
//! cargo xtask bench ais
//! ```

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::{
    data,
    setup::{self, Libtorch},
    util,
};

/// One run of a bench's reference script: a label and the arguments that select its form.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// The `impl` the script reports for this form.
    pub label: &'static str,
    /// Arguments added for this form.
    pub args: &'static [&'static str],
}

/// One benchmark: the gm program and the PyTorch programs that do the same work.
#[derive(Debug, Clone, Copy)]
pub struct Bench {
    /// `cargo xtask bench <name>`.
    pub name: &'static str,
    /// What is measured.
    pub about: &'static str,
    /// Cargo package holding the gm binary.
    pub package: &'static str,
    /// The gm binary.
    pub bin: &'static str,
    /// The PyTorch reference script, relative to the repository root.
    pub script: &'static str,
    /// Extra arguments given to both programs (after `--steps/--threads/--json`).
    pub args: &'static [&'static str],
    /// The reference's forms, each run once: the code a PyTorch user writes first, then
    /// gm's own algorithm in PyTorch where it differs. gm is compared with the fastest.
    pub references: &'static [Reference],
    /// `--steps` when none is given (what a step is depends on the bench).
    pub default_steps: u64,
    /// `--steps` of `--all --quick`.
    pub quick_steps: u64,
    /// Datasets both programs read (fetched first with `cargo xtask data`).
    pub datasets: &'static [&'static str],
    /// Numeric keys both programs must write besides [`REQUIRED_KEYS`], shown as table
    /// columns: (key, header, decimals).
    pub columns: &'static [(&'static str, &'static str, usize)],
}

/// The single reference form of most benches.
const PLAIN: &[Reference] = &[Reference {
    label: "pytorch",
    args: &[],
}];

/// Columns of the RBM and DBM benches.
const RBM_COLUMNS: &[(&str, &str, usize)] = &[("test_recon_err_1000", "recon err", 2)];

/// The benches `cargo xtask bench` knows. Adding one is adding an entry here.
pub const BENCHES: &[Bench] = &[
    Bench {
        name: "vae",
        about: "VAE training steps + test ELBO on static binarized MNIST",
        package: "gm-benches",
        bin: "bench-vae",
        script: "benches/reference/vae.py",
        args: &[],
        references: PLAIN,
        default_steps: 2000,
        quick_steps: 100,
        datasets: &["binarized-mnist"],
        columns: &[("batch_size", "batch", 0), ("test_elbo", "test ELBO", 2)],
    },
    Bench {
        name: "iwae",
        about: "IWAE training steps (k = 50 draws of z, batch 100, the VAE's 784-200-200-50 \
                networks) + test ELBO and L_50 on static binarized MNIST",
        package: "gm-benches",
        bin: "bench-vae",
        script: "benches/reference/vae.py",
        args: &["--iw-samples", "50"],
        references: PLAIN,
        default_steps: 300,
        quick_steps: 20,
        datasets: &["binarized-mnist"],
        columns: &[
            ("batch_size", "batch", 0),
            ("test_elbo", "test ELBO", 2),
            ("test_iwae", "test L_50", 2),
        ],
    },
    Bench {
        name: "ais",
        about: "AIS log Z of a fixed 784-500 RBM, 100 chains, 14,500 temperatures \
                (Salakhutdinov & Murray 2008); --steps 0 = that schedule, N = linear(N)",
        package: "gm-benches",
        bin: "bench-ais",
        script: "benches/reference/ais.py",
        args: &[],
        references: &[
            Reference {
                label: "pytorch-eager",
                args: &[],
            },
            Reference {
                label: "pytorch-same-ops",
                args: &["--same-ops"],
            },
        ],
        default_steps: 0,
        quick_steps: 500,
        datasets: &[],
        columns: &[
            ("us_per_step", "us/step", 1),
            ("matmul_only_seconds", "matmul-only s", 2),
            ("log_z", "log Z", 3),
            ("log_z_std_err", "+-", 3),
        ],
    },
    Bench {
        name: "rbm-cd1",
        about: "RBM 784-500 CD-1 updates (batch 100, SGD + momentum) on static binarized MNIST",
        package: "gm-benches",
        bin: "bench-rbm",
        script: "benches/reference/rbm.py",
        args: &["--rule", "cd", "--k", "1"],
        references: PLAIN,
        default_steps: 1000,
        quick_steps: 100,
        datasets: &["binarized-mnist"],
        columns: RBM_COLUMNS,
    },
    Bench {
        name: "rbm-pcd",
        about: "RBM 784-500 PCD-1 updates (100 persistent chains, batch 100) on static binarized \
                MNIST",
        package: "gm-benches",
        bin: "bench-rbm",
        script: "benches/reference/rbm.py",
        args: &["--rule", "pcd", "--k", "1"],
        references: PLAIN,
        default_steps: 1000,
        quick_steps: 100,
        datasets: &["binarized-mnist"],
        columns: RBM_COLUMNS,
    },
    Bench {
        name: "dbm",
        about: "DBM 784-500-1000 Algorithm 20.1 updates (batch 100, 10 mean-field iterations, \
                100 persistent chains x 5 block-Gibbs sweeps, SGD + momentum) on static \
                binarized MNIST",
        package: "gm-benches",
        bin: "bench-dbm",
        script: "benches/reference/dbm.py",
        args: &[],
        references: PLAIN,
        default_steps: 200,
        quick_steps: 20,
        datasets: &["binarized-mnist"],
        columns: RBM_COLUMNS,
    },
    Bench {
        name: "nade-train",
        about: "NADE 784-500 Adam training steps (batch 100) + exact NLL of 1,000 test images, \
                static binarized MNIST; PyTorch in the loop form users write and in gm's \
                blocked algorithm",
        package: "gm-benches",
        bin: "bench-nade",
        script: "benches/reference/nade.py",
        args: &["--mode", "train"],
        references: &[
            Reference {
                label: "pytorch-loop",
                args: &["--form", "loop"],
            },
            Reference {
                label: "pytorch-blocked",
                args: &["--form", "blocked"],
            },
        ],
        default_steps: 100,
        quick_steps: 5,
        datasets: &["binarized-mnist"],
        columns: &[("test_nll_1000", "test NLL", 2)],
    },
    Bench {
        name: "nade-sample",
        about: "NADE 784-500 ancestral sampling: rounds of 100 images, 784 sequential steps each",
        package: "gm-benches",
        bin: "bench-nade",
        script: "benches/reference/nade.py",
        args: &["--mode", "sample"],
        references: PLAIN,
        default_steps: 10,
        quick_steps: 1,
        datasets: &["binarized-mnist"],
        columns: &[("mean_pixel", "mean pixel", 4)],
    },
    Bench {
        name: "dcgan",
        about: "DCGAN training steps on 28x28 MNIST (batch 64, one D + one G Adam update per \
                step, transposed convolutions, batch norm; pytorch/examples' loop)",
        package: "gm-benches",
        bin: "bench-dcgan",
        script: "benches/reference/dcgan.py",
        args: &[],
        references: PLAIN,
        default_steps: 300,
        quick_steps: 20,
        datasets: &["mnist"],
        columns: &[
            ("batch_size", "batch", 0),
            ("d_real_last_window", "D(x)", 3),
            ("d_fake_last_window", "D(G(z))", 3),
        ],
    },
    Bench {
        name: "ddpm",
        about: "DDPM training steps on 28x28 MNIST (batch 128, L_simple, U-Net 32-64-64 with \
                attention at 7x7, Adam with gradients clipped at 1)",
        package: "gm-benches",
        bin: "bench-ddpm",
        script: "benches/reference/ddpm.py",
        args: &[],
        references: PLAIN,
        default_steps: 30,
        quick_steps: 3,
        datasets: &["mnist"],
        columns: &[("batch_size", "batch", 0), ("loss_last_window", "loss", 4)],
    },
];

/// Keys every bench program must write, and whether each is numeric.
pub const REQUIRED_KEYS: &[(&str, bool)] = &[
    ("impl", false),
    ("steps", true),
    ("seconds", true),
    ("examples_per_sec", true),
    ("gflops", true),
    ("matmul_gflops", true),
    ("peak_rss_mb", true),
];

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bench names (entries of [`BENCHES`]).
    pub names: Vec<String>,
    /// Steps (None: the bench's default, or its quick size with `quick`).
    pub steps: Option<u64>,
    /// Threads for both programs.
    pub threads: usize,
    /// Small sizes, nothing recorded: a regression check.
    pub quick: bool,
    /// Data mirror, for fetching the bench's datasets.
    pub mirror: Option<String>,
}

/// What one bench measured.
struct Outcome {
    bench: &'static Bench,
    steps: u64,
    gm: Value,
    references: Vec<Value>,
}

impl Outcome {
    /// The fastest reference and gm's time over its time.
    fn fastest(&self) -> Option<(&Value, f64)> {
        let secs = |v: &Value| v["seconds"].as_f64().filter(|&s| s > 0.0);
        let best = self
            .references
            .iter()
            .filter(|r| secs(r).is_some())
            .min_by(|a, b| secs(a).partial_cmp(&secs(b)).expect("finite"))?;
        Some((best, secs(&self.gm)? / secs(best)?))
    }
}

/// Runs the selected benches, prints each table and, for more than one, a summary of ratios.
pub fn run(lt: &Libtorch, opts: &Options) -> Result<()> {
    let mut outcomes = Vec::new();
    for name in &opts.names {
        let bench = BENCHES
            .iter()
            .find(|b| b.name == name)
            .with_context(|| format!("unknown bench {name:?}"))?;
        let o = run_one(lt, bench, opts)?;
        if !opts.quick {
            record(lt, &o, opts.threads)?;
        }
        outcomes.push(o);
    }
    if outcomes.len() > 1 {
        println!("\n{}", summary(&outcomes));
    }
    Ok(())
}

/// The gm program's command line.
fn gm_command(lt: &Libtorch, bench: &Bench, common: &[String], json: &Path) -> Command {
    let mut cmd = util::cargo(lt);
    cmd.args([
        "run",
        "--release",
        "-p",
        bench.package,
        "--bin",
        bench.bin,
        "--",
    ])
    .args(common)
    .args(bench.args)
    .arg("--json")
    .arg(json);
    cmd
}

/// Runs a program that writes its result to `json` and reads it back.
fn run_program(mut cmd: Command, what: &str, json: &Path, bench: &Bench) -> Result<Value> {
    let _ = fs::remove_file(json);
    util::run(&mut cmd, what)?;
    let v = read_result(json, bench).with_context(|| format!("{what}'s output"))?;
    let _ = fs::remove_file(json);
    Ok(v)
}

fn run_one(lt: &Libtorch, bench: &'static Bench, opts: &Options) -> Result<Outcome> {
    if !bench.datasets.is_empty() {
        data::run(&data::Options {
            names: bench.datasets.iter().map(|s| s.to_string()).collect(),
            all: false,
            mirror: opts.mirror.clone(),
        })?;
    }
    let json = std::env::temp_dir().join(format!(
        "gm-bench-{}-{}.json",
        bench.name,
        std::process::id()
    ));
    let default = if opts.quick {
        bench.quick_steps
    } else {
        bench.default_steps
    };
    let steps = opts.steps.unwrap_or(default);
    let common = [
        "--steps".to_owned(),
        steps.to_string(),
        "--threads".to_owned(),
        opts.threads.to_string(),
    ];
    println!(
        "bench {}: {} ({} steps, {} threads)",
        bench.name, bench.about, steps, opts.threads
    );
    let gm = run_program(
        gm_command(lt, bench, &common, &json),
        &format!("gm bench {}", bench.bin),
        &json,
        bench,
    )?;
    let mut references = Vec::new();
    match lt.python() {
        Some(python) => {
            let script = script_path(bench);
            if !script.exists() {
                bail!("reference script {} is missing", script.display());
            }
            for r in bench.references {
                let mut cmd = Command::new(&python);
                cmd.current_dir(util::repo_root())
                    .arg(bench.script)
                    .args(&common)
                    .args(bench.args)
                    .args(r.args)
                    .arg("--json")
                    .arg(&json);
                let what = format!("PyTorch reference {} ({})", bench.script, r.label);
                references.push(run_program(cmd, &what, &json, bench)?);
            }
        }
        None => println!(
            "bench: the PyTorch reference can't run: LIBTORCH was given by the user and no \
             Python with torch {} is on PATH (put one there to compare)",
            setup::TORCH_VERSION
        ),
    }
    let o = Outcome {
        bench,
        steps,
        gm,
        references,
    };
    println!();
    let rows: Vec<&Value> = std::iter::once(&o.gm).chain(&o.references).collect();
    print!("{}", table(bench, &rows));
    match o.fastest() {
        Some((best, r)) => println!(
            "time ratio gm / fastest PyTorch ({}) = {r:.3} ({})",
            best["impl"].as_str().unwrap_or("?"),
            if r <= 1.0 {
                "gm is faster"
            } else {
                "PyTorch is faster"
            }
        ),
        None => println!("time ratio gm/PyTorch: n/a"),
    }
    Ok(o)
}

/// Writes `benches/results/<name>-<UTC date>-<hostname>.json`.
fn record(lt: &Libtorch, o: &Outcome, threads: usize) -> Result<()> {
    let bench = o.bench;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let host = hostname();
    let date = utc_date(now);
    let out_dir = util::repo_root().join("benches/results");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let stem = format!("{}-{date}-{}", bench.name, file_safe(&host));
    let mut path = out_dir.join(format!("{stem}.json"));
    let mut k = 2;
    while path.exists() {
        path = out_dir.join(format!("{stem}-{k}.json"));
        k += 1;
    }
    let fastest = o.fastest();
    let record = json!({
        "bench": bench.name,
        "about": bench.about,
        "date_utc": date,
        "unix_time": now,
        "args": { "steps": o.steps, "threads": threads, "extra": bench.args },
        "gm": o.gm,
        "references": o.references,
        "fastest_reference": fastest.map(|(b, _)| b["impl"].clone()),
        "ratio_seconds_gm_over_fastest_reference": fastest.map(|(_, r)| r),
        "machine": machine(lt, &host),
    });
    fs::write(&path, serde_json::to_string_pretty(&record)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("bench: wrote {}", util::show(&path));
    Ok(())
}

/// One line per bench: gm's and the fastest reference's throughput, the time ratio, the
/// achieved and plain-matmul GFLOP/s and both peak RSS.
fn summary(outcomes: &[Outcome]) -> String {
    let mut s = format!(
        "{:<12} {:>6} {:>11} {:<17} {:>11} {:>7} {:>8} {:>8} {:>8} {:>8}\n",
        "bench",
        "steps",
        "gm ex/s",
        "fastest PyTorch",
        "its ex/s",
        "ratio",
        "gm GF/s",
        "mm GF/s",
        "gm MB",
        "its MB"
    );
    for o in outcomes {
        let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        let (name, r_eps, ratio, r_mb) = match o.fastest() {
            Some((b, r)) => (
                b["impl"].as_str().unwrap_or("?").to_owned(),
                num(b, "examples_per_sec"),
                r,
                num(b, "peak_rss_mb"),
            ),
            None => ("-".to_owned(), f64::NAN, f64::NAN, f64::NAN),
        };
        s += &format!(
            "{:<12} {:>6} {:>11.1} {:<17} {:>11.1} {:>7.3} {:>8.2} {:>8.1} {:>8.0} {:>8.0}\n",
            o.bench.name,
            o.steps,
            num(&o.gm, "examples_per_sec"),
            name,
            r_eps,
            ratio,
            num(&o.gm, "gflops"),
            num(&o.gm, "matmul_gflops"),
            num(&o.gm, "peak_rss_mb"),
            r_mb
        );
    }
    s + "ratio = gm seconds / fastest PyTorch seconds for the same steps (< 1: gm is faster)\n"
}

/// Reads a bench program's JSON output and checks the required keys.
pub fn read_result(path: &Path, bench: &Bench) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("{} was not written", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    check_result(&v, bench).with_context(|| format!("{}", path.display()))?;
    Ok(v)
}

/// Checks that a result object has every key of [`REQUIRED_KEYS`] and of the bench's
/// columns, with the right type.
pub fn check_result(v: &Value, bench: &Bench) -> Result<()> {
    let obj = v.as_object().context("not a JSON object")?;
    let columns = bench.columns.iter().map(|&(k, _, _)| (k, true));
    for (key, numeric) in REQUIRED_KEYS.iter().copied().chain(columns) {
        let val = obj
            .get(key)
            .with_context(|| format!("missing key {key:?}"))?;
        let ok = if numeric {
            val.is_number()
        } else {
            val.is_string()
        };
        if !ok {
            bail!(
                "key {key:?} should be a {}, got {val}",
                if numeric { "number" } else { "string" }
            );
        }
    }
    Ok(())
}

/// Columns every table shows: (key, header, decimals).
const STANDARD_COLUMNS: &[(&str, &str, usize)] = &[
    ("examples_per_sec", "examples/s", 1),
    ("gflops", "GFLOP/s", 2),
    ("matmul_gflops", "matmul GF/s", 1),
];

/// A small fixed-width table of results, one row per program.
pub fn table(bench: &Bench, rows: &[&Value]) -> String {
    let name = |r: &Value| {
        r.get("impl")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let w = rows.iter().map(|r| name(r).len()).max().unwrap_or(0).max(4);
    let columns: Vec<_> = STANDARD_COLUMNS.iter().chain(bench.columns).collect();
    let mut s = format!("{:<w$}  {:>7} {:>10}", "impl", "steps", "seconds");
    for &&(_, header, _) in &columns {
        s += &format!(" {header:>13}");
    }
    s += &format!(" {:>12}\n", "peak RSS MB");
    for r in rows {
        let num = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        s += &format!(
            "{:<w$}  {:>7} {:>10.2}",
            name(r),
            num("steps"),
            num("seconds")
        );
        for &&(key, _, decimals) in &columns {
            s += &format!(" {:>13.decimals$}", num(key));
        }
        s += &format!(" {:>12.0}\n", num("peak_rss_mb"));
    }
    s
}

/// What the numbers were measured on.
pub(crate) fn machine(lt: &Libtorch, host: &str) -> Value {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo.lines().find_map(|l| {
        l.strip_prefix("model name")
            .and_then(|r| r.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    });
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kb = fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
    });
    let os = fs::read_to_string("/etc/os-release").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_owned());
    let mut m = Map::new();
    m.insert("hostname".into(), json!(host));
    m.insert("cpu_model".into(), json!(cpu_model));
    m.insert(
        "logical_cpus".into(),
        json!(if logical > 0 { Some(logical) } else { None }),
    );
    m.insert("available_parallelism".into(), json!(default_threads()));
    m.insert(
        "memory_gb".into(),
        json!(mem_kb.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0)),
    );
    m.insert("os".into(), json!(os));
    m.insert("kernel".into(), json!(kernel));
    m.insert(
        "gpu".into(),
        json!(command_line(
            "nvidia-smi",
            &["--query-gpu=name", "--format=csv,noheader"]
        )),
    );
    m.insert("torch_version".into(), json!(lt.version));
    m.insert("libtorch_dir".into(), json!(lt.dir.display().to_string()));
    m.insert("rustc".into(), json!(command_line("rustc", &["-V"])));
    m.insert("gm_commit".into(), json!(git_commit()));
    Value::Object(m)
}

/// The gm commit, with `-dirty` when tracked files are modified.
fn git_commit() -> Option<String> {
    let repo = util::repo_root();
    let out = Command::new("git")
        .current_dir(&repo)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut c = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dirty = Command::new("git")
        .current_dir(&repo)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        c.push_str("-dirty");
    }
    Some(c)
}

/// First line of a command's stdout, if it runs.
fn command_line(prog: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(prog).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8_lossy(&out.stdout);
    let line = s.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.to_owned())
}

/// The number of cores available to us (the default `--threads`).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

pub(crate) fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn utc_date(unix_secs: u64) -> String {
    // Howard Hinnant's days → civil algorithm.
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The bench's reference script, as an absolute path.
pub fn script_path(b: &Bench) -> PathBuf {
    util::repo_root().join(b.script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_709_164_800), "2024-02-29");
        assert_eq!(utc_date(1_735_689_599), "2024-12-31");
        assert_eq!(utc_date(1_735_689_600), "2025-01-01");
    }

    #[test]
    fn result_keys_are_checked() {
        let vae = &BENCHES[0];
        let good = json!({"impl": "gm", "steps": 10, "batch_size": 128, "seconds": 1.5,
            "examples_per_sec": 853.3, "gflops": 2.5, "matmul_gflops": 100.0,
            "test_elbo": -101.2, "peak_rss_mb": 300.0, "extra": 1});
        check_result(&good, vae).unwrap();
        let mut missing = good.clone();
        missing.as_object_mut().unwrap().remove("test_elbo");
        assert!(check_result(&missing, vae).is_err());
        let mut wrong = good.clone();
        wrong["seconds"] = json!("1.5");
        assert!(check_result(&wrong, vae).is_err());
        assert!(check_result(&json!([1, 2]), vae).is_err());
        let t = table(vae, &[&good]);
        assert_eq!(t.lines().count(), 2);
        assert!(t.contains("gm") && t.contains("-101.20"));
    }

    #[test]
    fn bench_table_is_consistent() {
        let mut names: Vec<_> = BENCHES.iter().map(|b| b.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), BENCHES.len(), "duplicate bench names");
        for b in BENCHES {
            assert!(b.script.starts_with("benches/reference/") && b.script.ends_with(".py"));
            assert!(script_path(b).exists(), "{} is missing", b.script);
            assert!(script_path(b).starts_with(util::repo_root()));
            assert!(!b.references.is_empty() && b.quick_steps > 0);
        }
    }
}
