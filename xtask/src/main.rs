//! `cargo xtask`: gm's task runner.
//!
//! A small binary outside the main workspace (own `[workspace]`, own `xtask/target`, no
//! libtorch), run through the alias in `.cargo/config.toml`:
//!
//! ```text
//! cargo xtask setup                      # make libtorch 2.13 available, link .libtorch
//! cargo xtask setup --print-libtorch     # the same, then print the LIBTORCH value only
//! cargo xtask data mnist | --all         # fetch + verify datasets into the cache
//! cargo xtask test [-- <cargo test args>]
//! cargo xtask demo                       # train, evaluate, report a small VAE on Fashion-MNIST
//! cargo xtask bench vae|ais|rbm-cd1|rbm-pcd|dbm|nade-train|nade-sample|dcgan|ddpm [--steps N] [--threads T]
//! cargo xtask bench --all [--quick]
//! cargo xtask zoo rbm|autoregressive|<entry>... [--minutes M]   # reproduce the tables
//! ```
//!
//! Environment: `LIBTORCH` (a libtorch of your own; overrides setup's search),
//! `GM_DATA_DIR` (dataset cache, default `${XDG_CACHE_HOME:-~/.cache}/gm/datasets`),
//! `GM_DATA_MIRROR` (a folder or URL mirroring the dataset files), `XDG_CACHE_HOME`.
//! Every command that runs cargo gives it `LIBTORCH` and puts libtorch's `lib/` first on
//! `LD_LIBRARY_PATH`.

mod bench;
mod data;
mod demo;
mod gpu;
mod manifest;
mod rnglint;
mod scale;
mod setup;
mod util;
mod zoo;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{builder::PossibleValuesParser, Parser, Subcommand};

/// gm's task runner: set up libtorch, fetch datasets, test, demo, benchmark.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true,
    after_help = "Environment: LIBTORCH (your own libtorch; wins over setup's search), \
GM_DATA_DIR (dataset cache; default ${XDG_CACHE_HOME:-~/.cache}/gm/datasets), \
GM_DATA_MIRROR (folder or URL mirroring the dataset files), XDG_CACHE_HOME."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Make libtorch 2.13 available and point the git-ignored `.libtorch` link at it.
    ///
    /// Uses, in order: LIBTORCH from your environment; the existing `.libtorch` if it
    /// already holds torch 2.13 (fast path); the torch of `python3`/`python` on PATH if it
    /// is 2.13.x; else the private venv ${XDG_CACHE_HOME:-~/.cache}/gm/torch-2.13.0,
    /// created with `python3 -m venv` and `pip install torch==2.13.0` (about 4.7 GB) when
    /// absent and repaired when its torch does not import. Afterwards plain
    /// `cargo build/test/run` work. The report goes to stderr.
    Setup {
        /// Print only the LIBTORCH value gm's own builds use, for a project of your own:
        /// `export LIBTORCH="$(cargo xtask setup --print-libtorch)"`. It is
        /// `<repo>/.libtorch` (the link to the install; `readlink -f` gives the install
        /// itself), or your own LIBTORCH when you set one.
        #[arg(long)]
        print_libtorch: bool,
    },

    /// Download, decompress and sha256-verify datasets into the cache.
    ///
    /// Datasets are described by `datasets/<name>.toml`. The cache is $GM_DATA_DIR, else
    /// ${XDG_CACHE_HOME:-~/.cache}/gm/datasets, holding `<dataset>/<file>` decompressed.
    /// Present files that verify are left alone; others are fetched from the mirror
    /// (if any), then the manifest's URLs, then its Debian package (if any). Synthetic
    /// datasets (bars-and-stripes, eight-gaussians, two-moons, swiss-roll) need no download.
    Data {
        /// Datasets to fetch (e.g. mnist binarized-mnist fashion-mnist).
        #[arg(value_name = "NAME", required_unless_present = "all")]
        names: Vec<String>,
        /// Fetch every dataset that has a manifest.
        #[arg(long)]
        all: bool,
        /// A folder or http(s) URL laid out as <base>/<dataset>/<file>.gz; tried first.
        #[arg(long, value_name = "DIR|URL", env = "GM_DATA_MIRROR")]
        mirror: Option<String>,
    },

    /// Run setup, then `cargo test --workspace --features gm-cli/dist` with libtorch in the
    /// environment.
    ///
    /// Arguments after `--` go to `cargo test` (e.g. `cargo xtask test -- --release`, or
    /// `-- -- --nocapture`); `-- -p gm-core` tests that package instead of the workspace.
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
        args: Vec<String>,
    },

    /// Run the end-to-end demo: train a small VAE on Fashion-MNIST and evaluate it.
    ///
    /// Steps: setup; data fashion-mnist; `cargo build --release -p gm-cli`;
    /// `gm train vae --config configs/demo-vae.toml --out runs --name demo --force`;
    /// `gm eval runs/demo`; `gm report runs/demo --out runs/demo/report.html` (with
    /// `--screenshot` when a headless Chromium is found); then a summary read from
    /// runs/demo/results.json. Outputs land in runs/demo/.
    Demo {
        /// Data mirror for fetching Fashion-MNIST (as for `data`).
        #[arg(long, value_name = "DIR|URL", env = "GM_DATA_MIRROR")]
        mirror: Option<String>,
    },

    /// Time a gm program against its PyTorch references and record the result.
    ///
    /// Runs `cargo run --release -p gm-benches --bin bench-<name>` and
    /// `<python> benches/reference/<name>.py` (once per reference form: the code a PyTorch
    /// user writes, and gm's algorithm in PyTorch where it differs) with the same
    /// --steps/--threads, prints a table with examples/s, achieved GFLOP/s beside the plain
    /// matmul rate of the same process, and peak RSS, and the time ratio gm / fastest
    /// PyTorch (<= 1: gm is faster), and writes benches/results/<name>-<UTC date>-<hostname>.json
    /// with every result and a description of the machine. `--all --quick` runs every bench
    /// at a small size (a few minutes), records nothing and prints one table of ratios.
    /// `scale` instead times data-parallel `gm train` (VAE, RBM) on 1 process and on 2
    /// (c10d Gloo) and writes benches/results/scale-<UTC date>-<hostname>.json.
    Bench {
        /// Which bench (or --all).
        #[arg(value_parser = PossibleValuesParser::new(
                  bench::BENCHES.iter().map(|b| b.name).chain([SCALE])),
              required_unless_present = "all")]
        name: Option<String>,
        /// Every bench, in turn.
        #[arg(long, conflicts_with = "name")]
        all: bool,
        /// Small sizes (each bench's quick steps); nothing is written to benches/results.
        #[arg(long)]
        quick: bool,
        /// Steps for both implementations [default: the bench's own; vae 2000 training
        /// steps, ais 0 = the 14,500-temperature schedule].
        #[arg(long)]
        steps: Option<u64>,
        /// Threads for both implementations [default: number of cores].
        #[arg(long)]
        threads: Option<usize>,
        /// Data mirror for the bench's datasets (as for `data`).
        #[arg(long, value_name = "DIR|URL", env = "GM_DATA_MIRROR")]
        mirror: Option<String>,
    },

    /// On a machine with an NVIDIA GPU: the workspace's tests in release on the CPU and on
    /// cuda:0 (every registered model's contract among them), then each model's
    /// likelihoods on CUDA beside the CPU's. Without a GPU it says so and exits 0.
    GpuCheck,

    /// Reproduce published tables within a time budget.
    ///
    /// Trains each selected entry (a config under configs/) into runs/zoo/<entry> with the
    /// release `gm` for at most --minutes (an existing run is resumed, so calls add up),
    /// evaluates it with `gm eval`, and prints and writes runs/zoo/<selection>.md/.json:
    /// epochs reached, wall time, test NLL with its kind, the published figure, and what
    /// the full configured run needs at the measured pace.
    Zoo {
        /// Families (rbm, autoregressive) or entry names.
        #[arg(required = true)]
        select: Vec<String>,
        /// Training minutes per entry for this call.
        #[arg(long, default_value_t = 20.0)]
        minutes: f64,
        /// libtorch threads of `gm` [default: gm's].
        #[arg(long)]
        threads: Option<usize>,
        /// Only evaluate and tabulate existing runs.
        #[arg(long)]
        eval_only: bool,
        /// Only tabulate the existing runs' recorded results (no training, no evaluation).
        #[arg(long, conflicts_with = "eval_only")]
        table_only: bool,
        /// Data mirror (as for `data`).
        #[arg(long, value_name = "DIR|URL", env = "GM_DATA_MIRROR")]
        mirror: Option<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// `cargo xtask bench scale`: data-parallel training on 1 and 2 processes ([`scale`]).
const SCALE: &str = "scale";

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Setup { print_libtorch } => {
            let lt = setup::ensure(!print_libtorch)?;
            if print_libtorch {
                println!("{}", lt.cargo_value.display());
            }
        }
        Cmd::Data { names, all, mirror } => data::run(&data::Options { names, all, mirror })?,
        Cmd::Test { args } => {
            let lt = setup::ensure(false)?;
            let mut cmd = util::cargo(&lt);
            cmd.arg("test");
            if !selects_packages(&args) {
                // The whole workspace, with data-parallel training built in (its tests
                // run `gm train` on 2 processes).
                cmd.args(["--workspace", "--features", "gm-cli/dist"]);
            }
            cmd.args(&args);
            util::run(&mut cmd, "cargo test")?;
        }
        Cmd::Demo { mirror } => demo(mirror)?,
        Cmd::GpuCheck => gpu::run(&setup::ensure(false)?)?,
        Cmd::Zoo {
            select,
            minutes,
            threads,
            eval_only,
            table_only,
            mirror,
        } => {
            if minutes.is_nan() || minutes <= 0.0 {
                bail!("--minutes must be positive");
            }
            zoo::run(&zoo::Options {
                select,
                minutes,
                threads,
                eval_only,
                table_only,
                mirror,
            })?;
        }
        Cmd::Bench {
            name,
            all,
            quick,
            steps,
            threads,
            mirror,
        } => {
            let threads = threads.unwrap_or_else(bench::default_threads);
            if threads == 0 {
                bail!("--threads must be positive");
            }
            let lt = setup::ensure(false)?;
            if name.as_deref() == Some(SCALE) && !all {
                return scale::run(&lt, steps, quick, mirror);
            }
            bench::run(
                &lt,
                &bench::Options {
                    names: match name {
                        Some(n) if !all => vec![n],
                        _ => bench::BENCHES.iter().map(|b| b.name.to_owned()).collect(),
                    },
                    steps,
                    threads,
                    quick,
                    mirror,
                },
            )?;
        }
    }
    Ok(())
}

/// `cargo xtask demo`.
fn demo(mirror: Option<String>) -> Result<()> {
    let repo = util::repo_root();
    let config = repo.join("configs/demo-vae.toml");
    if !config.exists() {
        bail!("{} is missing", config.display());
    }
    println!("==> demo 1/6: setup");
    let lt = setup::ensure(false)?;

    println!("==> demo 2/6: data fashion-mnist");
    data::run(&data::Options {
        names: vec!["fashion-mnist".into()],
        all: false,
        mirror,
    })?;

    println!("==> demo 3/6: build gm (release)");
    util::run(
        util::cargo(&lt).args(["build", "--release", "-p", "gm-cli"]),
        "cargo build --release -p gm-cli",
    )?;
    let gm = target_dir(&repo).join("release/gm");
    if !gm.exists() {
        bail!("the build finished but {} does not exist", gm.display());
    }

    println!("==> demo 4/6: train");
    let mut train = std::process::Command::new(&gm);
    train.current_dir(&repo).args([
        "train",
        "vae",
        "--config",
        "configs/demo-vae.toml",
        "--out",
        "runs",
        "--name",
        "demo",
        "--force",
    ]);
    util::apply_libtorch_env(&mut train, &lt);
    util::run(&mut train, "gm train").context("demo training failed")?;

    println!("==> demo 5/6: evaluate");
    let mut eval = std::process::Command::new(&gm);
    eval.current_dir(&repo).args(["eval", "runs/demo"]);
    util::apply_libtorch_env(&mut eval, &lt);
    util::run(&mut eval, "gm eval").context("demo evaluation failed")?;

    println!("==> demo 6/6: report");
    let run_dir = repo.join("runs/demo");
    let mut report = std::process::Command::new(&gm);
    report
        .current_dir(&repo)
        .args(["report", "runs/demo", "--out", "runs/demo/report.html"]);
    if demo::have_chromium() {
        report.arg("--screenshot");
    } else {
        println!("(no headless Chromium on PATH: no report.png; set GM_CHROMIUM to make one)");
    }
    util::apply_libtorch_env(&mut report, &lt);
    util::run(&mut report, "gm report").context("demo report failed")?;

    let results = run_dir.join("results.json");
    let text = std::fs::read_to_string(&results)
        .with_context(|| format!("reading {}", results.display()))?;
    println!();
    println!("demo summary (from {}):", util::show(&results));
    let outputs: Vec<PathBuf> = demo::outputs(&run_dir)
        .iter()
        .map(|p| PathBuf::from(util::show(p)))
        .collect();
    print!("{}", demo::summary(&text, &outputs)?);
    Ok(())
}

/// Whether `cargo test` arguments (before any `--`) already choose packages, in which case
/// `--workspace` would override the choice.
fn selects_packages(args: &[String]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| {
        a == "-p"
            || a == "--workspace"
            || a == "--all"
            || a == "--exclude"
            || a.starts_with("--package")
            || a.starts_with("--exclude=")
            || (a.starts_with("-p") && a.len() > 2)
    })
}

/// Cargo's target folder for the main workspace: `CARGO_TARGET_DIR` /
/// `CARGO_BUILD_TARGET_DIR` when set, else `<repo>/target`.
pub(crate) fn target_dir(repo: &std::path::Path) -> PathBuf {
    for var in ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"] {
        if let Some(d) = util::env_nonempty(var) {
            let d = PathBuf::from(d);
            return if d.is_absolute() { d } else { repo.join(d) };
        }
    }
    repo.join("target")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cli_parses_the_documented_forms() {
        let c = Cli::try_parse_from(["cargo xtask", "setup"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Setup {
                print_libtorch: false
            }
        ));
        let c = Cli::try_parse_from(["cargo xtask", "setup", "--print-libtorch"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Setup {
                print_libtorch: true
            }
        ));
        assert!(Cli::try_parse_from(["cargo xtask", "setup", "--print"]).is_err());
        assert!(Cli::try_parse_from(["cargo xtask", "setup", "extra"]).is_err());
        let c = Cli::try_parse_from(["cargo xtask", "data", "--all", "--mirror", "/m"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::Data { all: true, ref mirror, .. } if mirror.as_deref() == Some("/m"))
        );
        let c = Cli::try_parse_from(["cargo xtask", "test", "--", "-p", "gm-core"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Test { ref args } if args == &["-p", "gm-core"]));
        let c = Cli::try_parse_from(["cargo xtask", "bench", "vae", "--steps", "10"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Bench {
                steps: Some(10),
                threads: None,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["cargo xtask", "bench", "nope"]).is_err());
        assert!(Cli::try_parse_from(["cargo xtask", "bench"]).is_err());
        let c = Cli::try_parse_from(["cargo xtask", "bench", "--all", "--quick"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Bench {
                all: true,
                quick: true,
                name: None,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["cargo xtask", "data"]).is_err());
    }

    #[test]
    fn package_selection_is_detected() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selects_packages(&v(&["-p", "gm-core"])));
        assert!(selects_packages(&v(&["-pgm-core"])));
        assert!(selects_packages(&v(&["--package=gm-core"])));
        assert!(selects_packages(&v(&["--exclude", "gm-cli"])));
        assert!(!selects_packages(&v(&["--release"])));
        assert!(
            !selects_packages(&v(&["--", "-p"])),
            "after -- the args belong to the test binary"
        );
        assert!(!selects_packages(&[]));
    }
}
