//! `bench-dbm`: times deep Boltzmann machine training (`gm_boltzmann::dbm`, 784-500-1000,
//! Algorithm 20.1: batch 100, 100 persistent chains, 5 block-Gibbs sweeps, SGD lr 0.005
//! with momentum 0.9, weight decay 2e-4: `configs/dbm-mnist.toml` without pre-training) on
//! static binarized MNIST, for `cargo xtask bench dbm` (which runs
//! `benches/reference/dbm.py`, the same loop in PyTorch).
//!
//! Mean-field inference runs a fixed `--mf-iters` iterations (the tolerance is set out of
//! reach) so that both sides do the same work. After [`gm_benches::WARMUP_STEPS`] untimed
//! updates, `--steps` updates over seeded shuffled batches are timed through
//! [`gm_boltzmann::dbm::Dbm::train_batch`] (no metrics). The achieved rate counts the matrix
//! products gm performs (b_1 + v W_1 computed once per mean field), each 2·B·m·n flops, and
//! is put beside a plain 2048³ f32 product timed in the same process. Then the mean-field
//! reconstruction error of 1,000 test images.
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-dbm -- --steps 100 --threads 1 --json out.json
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gm_benches::{endless_batches, load_run, merged, TimedSteps};
use gm_boltzmann::dbm::{Dbm, DbmConfig};
use gm_core::model::{parse_params, BuildContext};
use serde_json::json;
use tch::{Device, Kind};

/// Times DBM training updates; writes one JSON object.
#[derive(Parser, Debug)]
struct Args {
    /// Timed training updates (after the warm-up).
    #[arg(long)]
    steps: u64,
    /// libtorch intra-op threads.
    #[arg(long)]
    threads: usize,
    /// Where to write the JSON result.
    #[arg(long)]
    json: PathBuf,
    /// Mean-field iterations per update.
    #[arg(long, default_value_t = 10)]
    mf_iters: i64,
    /// Block-Gibbs sweeps of the chains per update.
    #[arg(long, default_value_t = 5)]
    gibbs_steps: i64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

const SIZES: [i64; 3] = [784, 500, 1000];
const BATCH: i64 = 100;

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.threads == 0 || args.mf_iters <= 0 || args.gibbs_steps <= 0 {
        bail!("--steps, --threads, --mf-iters and --gibbs-steps must be positive");
    }
    tch::set_num_threads(args.threads as i32);
    let (cfg, ds) = load_run(&format!(
        "seed = {}\n[model]\nname = \"dbm\"\nhidden = [{}, {}]\nchains = {BATCH}\n\
         gibbs_steps = {}\nmf_tolerance = 1e-30\nmf_max_iters = {}\nweight_decay = 2e-4\n\
         [data]\ndataset = \"binarized-mnist\"\nbatch_size = {BATCH}\n\
         [optim]\nkind = \"sgd\"\nlr = 0.005\nmomentum = 0.9\n",
        args.seed, SIZES[1], SIZES[2], args.gibbs_steps, args.mf_iters
    ))?;
    let params: DbmConfig = parse_params("dbm", &cfg.model.params)?;
    let mut dbm = Dbm::new(
        params,
        &BuildContext {
            cfg: &cfg,
            data: &ds,
            device: Device::Cpu,
        },
    )?;
    let mut next_batch = endless_batches(&ds.train.x, BATCH, cfg.seed);
    let mut iters = 0;
    let timed = TimedSteps::run(
        args.steps,
        &mut dbm,
        |dbm| {
            iters = iters.max(dbm.train_batch(&next_batch())?);
            Ok(())
        },
        |dbm| Ok(f64::try_from(dbm.params().0[0].sum(Kind::Double)).map(|_| ())?),
    )?;
    if iters != args.mf_iters {
        bail!(
            "mean field stopped after {iters} iterations, not {}",
            args.mf_iters
        );
    }
    let test = ds.test.x.narrow(0, 0, 1000).reshape([-1, 784]);
    let out = merged(
        timed.json(BATCH, flops_per_step(args.mf_iters, args.gibbs_steps))?,
        json!({
            "impl": "gm",
            "sizes": SIZES,
            "mf_iters": args.mf_iters,
            "gibbs_steps": args.gibbs_steps,
            "threads": args.threads,
            "test_recon_err_1000": recon_error(&dbm, &test)?,
        }),
    );
    std::fs::write(&args.json, serde_json::to_string_pretty(&out)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("gm dbm: {out}");
    Ok(())
}

/// Flops of one gm update: the products of mean field (v W_1 once, μ_1 W_2 up; per
/// iteration μ_2 W_2ᵀ and μ_1 W_2; the final check's μ_2 W_2ᵀ), of `gibbs` sweeps (four
/// products each) and of the statistics (two products per phase), 2·B·m·n each.
fn flops_per_step(mf_iters: i64, gibbs: i64) -> f64 {
    let (a, b) = (SIZES[0] * SIZES[1], SIZES[1] * SIZES[2]);
    let products = (a + b) + mf_iters * 2 * b + b + gibbs * 2 * (a + b) + 2 * (a + b);
    2.0 * (BATCH * products) as f64
}

/// Σ_i (v_i − σ(b_0 + μ_1 W_1ᵀ)_i)², mean over the rows of `v`.
fn recon_error(dbm: &Dbm, v: &tch::Tensor) -> Result<f64> {
    let mf = dbm.mean_field(&dbm.flat(v));
    let recon = dbm.input(&mf.means, 0).sigmoid();
    Ok(f64::try_from(
        (recon - v)
            .square()
            .sum_dim_intlist(1, false, Kind::Double)
            .mean(Kind::Double),
    )?)
}
