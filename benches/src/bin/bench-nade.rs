//! `bench-nade`: times NADE (`gm_autoregressive::nade`, 784-500, sigmoid hidden units) on
//! static binarized MNIST, for `cargo xtask bench nade-train` and `nade-sample` (which run
//! `benches/reference/nade.py`, the same model in PyTorch, with the same arguments).
//!
//! - `--mode train`: after [`gm_benches::WARMUP_STEPS`] untimed steps, `--steps` Adam steps
//!   (lr 1e-3, batch 100) over seeded shuffled batches through [`gm_benches::StepLoop`]
//!   (the trainer's per-step work); then the exact test NLL of the first 1,000 test images.
//! - `--mode sample`: `--steps` rounds of drawing `--samples` images, each 784 sequential
//!   conditionals batched over the samples (one round untimed first).
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-nade -- --mode sample --steps 5 --threads 2 --json out.json
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use gm_autoregressive::common::Autoregressive;
use gm_autoregressive::nade::{Nade, NadeConfig};
use gm_benches::{
    busy_machine_warning, load_average, matmul_gflops, peak_rss_mb, threading_env, StepLoop,
    MATMUL_N, WARMUP_STEPS,
};
use gm_core::config::RunConfig;
use gm_core::data::{self, Batches};
use gm_core::model::{parse_params, BuildContext};
use serde_json::{json, Value};
use tch::{Device, Kind};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    Train,
    Sample,
}

/// Times NADE training steps or sampling; writes one JSON object.
#[derive(Parser, Debug)]
struct Args {
    /// Timed training steps (train) or sampling rounds (sample).
    #[arg(long)]
    steps: u64,
    /// libtorch intra-op threads.
    #[arg(long)]
    threads: usize,
    /// Where to write the JSON result.
    #[arg(long)]
    json: PathBuf,
    /// What to time.
    #[arg(long, value_enum)]
    mode: Mode,
    /// Hidden units.
    #[arg(long, default_value_t = 500)]
    hidden: i64,
    /// Training batch size.
    #[arg(long, default_value_t = 100)]
    batch_size: i64,
    /// Images per sampling round.
    #[arg(long, default_value_t = 100)]
    samples: i64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Ordering positions per block of the training pass (`[model] block`).
    #[arg(long, default_value_t = gm_autoregressive::nade::DEFAULT_BLOCK)]
    block: i64,
}

/// Flops of one training step as counted on both sides (`step_flops` of the reference):
/// forward running sum and output dot products, backward output, hidden and input gradients,
/// 5 multiply-adds per (ordering position, example, hidden unit).
fn step_flops(batch: i64, hidden: i64, dim: i64) -> f64 {
    10.0 * (dim * batch * hidden) as f64
}

fn run_config(hidden: i64, batch_size: i64, seed: u64, block: i64) -> Result<RunConfig> {
    let cfg = RunConfig::from_toml_str(&format!(
        "seed = {seed}\n[model]\nname = \"nade\"\nhidden = {hidden}\nblock = {block}\n\
         [data]\ndataset = \"binarized-mnist\"\nbatch_size = {batch_size}\n\
         [optim]\nkind = \"adam\"\nlr = 1e-3\n"
    ))?;
    cfg.validate()?;
    Ok(cfg)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.threads == 0 || args.batch_size <= 0 || args.samples <= 0 {
        bail!("--steps, --threads, --batch-size and --samples must be positive");
    }
    tch::set_num_threads(args.threads as i32);
    let cfg = run_config(args.hidden, args.batch_size, args.seed, args.block)?;
    let ds = data::load(&cfg.data.dataset, &cfg.data.options)
        .context("loading binarized-mnist (fetch it with `cargo xtask data binarized-mnist`)")?;
    tch::manual_seed(args.seed as i64);
    let ctx = BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    };
    let params: NadeConfig = parse_params("nade", &cfg.model.params)?;
    let mut nade = Nade::new(params, &ctx)?;
    let matmul = matmul_gflops(MATMUL_N);
    let dim = 784;

    let mut out = json!({
        "impl": "gm",
        "block": args.block,
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "hidden": args.hidden,
        "threads": args.threads,
        "device": "cpu",
        "torch_threads": tch::get_num_threads(),
        "env": threading_env(),
    });
    let (seconds, load_before, load_after);
    match args.mode {
        Mode::Train => {
            let bs = args.batch_size;
            let mut epoch = 0usize;
            let mut batches = Batches::new(&ds.train.x, None, bs, true, false, cfg.seed, epoch);
            let mut next_batch = || loop {
                if let Some(b) = batches.next() {
                    return b.x;
                }
                epoch += 1;
                batches = Batches::new(&ds.train.x, None, bs, true, false, cfg.seed, epoch);
            };
            let mut lp = StepLoop::new(cfg.optim.lr);
            for _ in 0..WARMUP_STEPS {
                lp.step(&mut nade, &next_batch())?;
            }
            lp.flush()?;
            if let Some(w) = busy_machine_warning() {
                eprintln!("{w}");
            }
            load_before = load_average();
            let start = Instant::now();
            for _ in 0..args.steps {
                lp.step(&mut nade, &next_batch())?;
            }
            lp.flush()?;
            seconds = start.elapsed().as_secs_f64();
            load_after = load_average();
            let test = ds.test.x.narrow(0, 0, 1000.min(ds.test.len()));
            let nll = -tch::no_grad(|| f64::try_from(nade.log_prob(&test).mean(Kind::Double)))?;
            let extra = json!({
                "steps": args.steps,
                "warmup_steps": WARMUP_STEPS,
                "batch_size": bs,
                "examples_per_sec": (args.steps as i64 * bs) as f64 / seconds,
                "ms_per_step": 1000.0 * seconds / args.steps as f64,
                "gflops": step_flops(bs, args.hidden, dim) * args.steps as f64 / seconds / 1e9,
                "train_nll_last_window": lp.last_means().first().map(|(_, v)| *v),
                "test_nll_1000": nll,
            });
            merge(&mut out, extra);
        }
        Mode::Sample => {
            let _ = nade.sample_flat(args.samples);
            if let Some(w) = busy_machine_warning() {
                eprintln!("{w}");
            }
            load_before = load_average();
            let start = Instant::now();
            let mut mean = 0.0;
            for _ in 0..args.steps {
                let x = nade.sample_flat(args.samples);
                mean += f64::try_from(x.mean(Kind::Double))?;
            }
            seconds = start.elapsed().as_secs_f64();
            load_after = load_average();
            let extra = json!({
                "steps": args.steps,
                "samples": args.samples,
                "samples_per_sec": (args.steps as i64 * args.samples) as f64 / seconds,
                "examples_per_sec": (args.steps as i64 * args.samples) as f64 / seconds,
                // Per image and step: the matrix-vector product and the rank-one update.
                "gflops": 4.0 * (dim * args.hidden * args.samples) as f64 * args.steps as f64
                    / seconds / 1e9,
                "ms_per_round": 1000.0 * seconds / args.steps as f64,
                "mean_pixel": mean / args.steps as f64,
            });
            merge(&mut out, extra);
        }
    }
    let peak = peak_rss_mb().context("reading VmHWM from /proc/self/status")?;
    let fraction = out["gflops"].as_f64().unwrap_or(f64::NAN) / matmul;
    merge(
        &mut out,
        json!({"seconds": seconds, "peak_rss_mb": peak, "matmul_gflops": matmul,
               "matmul_fraction": fraction,
               "loadavg_before": load_before, "loadavg_after": load_after}),
    );
    std::fs::write(&args.json, serde_json::to_string_pretty(&out)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("gm nade {:?}: {out}", args.mode);
    Ok(())
}

fn merge(a: &mut Value, b: Value) {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
}
