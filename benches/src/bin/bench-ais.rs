//! `bench-ais`: times forward AIS (`gm_eval::ais`) on a fixed 784-500 Bernoulli RBM with
//! M = 100 chains along the 14,500-temperature schedule of Salakhutdinov & Murray (2008), for
//! `cargo xtask bench ais` (which runs `benches/reference/ais.py`, the same loop in PyTorch).
//!
//! The RBM is MNIST-shaped and identical in both programs (built from closed-form
//! expressions in f64, no random generator): W_ij = 0.05·√2·sin(12.9898 i + 78.233 j + 0.5),
//! visible base rates p_i = 0.01 + 0.245 (1 + sin(3.7 i + 1.1)), b = logit(p) + 0.2 sin(i),
//! c_j = −1; the AIS base model is the base-rate model (visible biases logit(p)). Both
//! estimates of log Z must then agree within their errors.
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-ais -- --steps 0 --threads 2 --json out.json
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gm_benches::{
    busy_machine_warning, load_average, matmul_gflops, peak_rss_mb, threading_env, MATMUL_N,
};
use gm_eval::ais::{self, rbm::BernoulliRbm, Schedule};
use serde_json::json;
use tch::{Device, Kind, Tensor};

/// Times AIS on a fixed RBM; writes one JSON object.
#[derive(Parser, Debug)]
struct Args {
    /// Intermediate distributions: 0 = the Salakhutdinov–Murray schedule (14,500), N = linear(N).
    #[arg(long)]
    steps: usize,
    /// libtorch intra-op threads.
    #[arg(long)]
    threads: usize,
    /// Where to write the JSON result.
    #[arg(long)]
    json: PathBuf,
    /// AIS chains (M).
    #[arg(long, default_value_t = 100)]
    chains: i64,
    /// Seed of the chains' randomness.
    #[arg(long, default_value_t = 0)]
    seed: i64,
}

/// The bench's RBM (see the module docs): W `[784, 500]`, b, c, base-rate biases.
fn fixed_rbm() -> (Tensor, Tensor, Tensor, Tensor) {
    let (d, h) = (784i64, 500i64);
    let o = (Kind::Double, Device::Cpu);
    let i = Tensor::arange(d, o).unsqueeze(1);
    let j = Tensor::arange(h, o).unsqueeze(0);
    let w = ((&i * 12.9898 + &j * 78.233 + 0.5).sin() * (0.05 * 2f64.sqrt())).to_kind(Kind::Float);
    let i = Tensor::arange(d, o);
    let p = ((&i * 3.7 + 1.1).sin() + 1.0) * 0.245 + 0.01;
    let q: Tensor = 1.0 - &p;
    let base = (&p / q).log();
    let b = (&base + i.sin() * 0.2).to_kind(Kind::Float);
    let c = Tensor::full([h], -1.0, (Kind::Float, Device::Cpu));
    (w, b, c, base.to_kind(Kind::Float))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.threads == 0 || args.chains < 2 {
        bail!("--threads must be positive and --chains at least 2");
    }
    tch::set_num_threads(args.threads as i32);
    let matmul = matmul_gflops(MATMUL_N);
    tch::manual_seed(args.seed);
    let schedule = if args.steps == 0 {
        Schedule::salakhutdinov_murray()
    } else {
        Schedule::linear(args.steps)?
    };
    let (w, b, c, base) = fixed_rbm();
    let rbm = BernoulliRbm::new(w, b, c, base)?;
    // Warm-up: a short run so that first-call costs are not timed.
    ais::run(&rbm, &Schedule::linear(20)?, args.chains)?;

    if let Some(w) = busy_machine_warning() {
        eprintln!("{w}");
    }
    let load_before = load_average();
    let start = Instant::now();
    let est = ais::run(&rbm, &schedule, args.chains)?;
    let seconds = start.elapsed().as_secs_f64();
    let load_after = load_average();
    let steps = schedule.steps();
    let peak = peak_rss_mb().context("reading VmHWM from /proc/self/status")?;
    let flops = 4.0 * (args.chains * rbm.visible() * rbm.hidden()) as f64 * steps as f64;
    let result = json!({
        "impl": "gm",
        "steps": steps,
        "schedule": schedule.name(),
        "chains": args.chains,
        "threads": args.threads,
        "seconds": seconds,
        "us_per_step": seconds / steps as f64 * 1e6,
        // Chain-steps per second; two [M, D] × [D, H] products per temperature.
        "examples_per_sec": (args.chains * steps as i64) as f64 / seconds,
        "gflops": flops / seconds / 1e9,
        "matmul_gflops": matmul,
        "matmul_only_seconds": flops / (matmul * 1e9),
        "log_z": est.log_z,
        "log_z_std_err": est.std_err,
        "ess": est.ess,
        "peak_rss_mb": peak,
        "model": "fixed 784-500 Bernoulli RBM (closed-form weights), base-rate base model",
        "device": "cpu",
        "torch_threads": tch::get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "env": threading_env(),
    });
    std::fs::write(&args.json, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!(
        "gm ais: {steps} steps x {} chains in {seconds:.2}s ({:.1} us/step), log Z = {:.3} ± {:.3}, \
         ESS {:.1}, peak RSS {peak:.0} MB, {} threads",
        args.chains,
        seconds / steps as f64 * 1e6,
        est.log_z,
        est.std_err,
        est.ess,
        args.threads
    );
    Ok(())
}
