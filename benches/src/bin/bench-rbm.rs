//! `bench-rbm`: times Bernoulli RBM training (`gm_boltzmann::rbm`, 784-500, batch 100, SGD
//! lr 0.05 with momentum 0.5, weight decay 2e-4: `configs/rbm-cd1-mnist.toml`) with CD-k or
//! PCD-k on static binarized MNIST, for `cargo xtask bench rbm-cd1` / `rbm-pcd` (which run
//! `benches/reference/rbm.py`, the same loop in PyTorch).
//!
//! After [`gm_benches::WARMUP_STEPS`] untimed updates, `--steps` updates over seeded shuffled
//! batches are timed through [`gm_boltzmann::rbm::Rbm::train_batch`] (no metrics). The
//! achieved rate counts the matrix products of an update — (2k + 3) for CD-k, (2k + 4) for
//! PCD-k, each 2·B·784·500 flops — and is put beside a plain 2048³ f32 matrix product timed
//! in the same process. Then the mean squared reconstruction error of 1,000 test images.
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-rbm -- --steps 500 --threads 2 --rule cd --k 1 --json out.json
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gm_benches::{endless_batches, load_run, merged, TimedSteps};
use gm_boltzmann::rbm::{Rbm, RbmConfig};
use gm_core::model::{parse_params, BuildContext};
use serde_json::json;
use tch::{Device, Kind};

/// Times RBM training updates; writes one JSON object.
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
    /// cd or pcd.
    #[arg(long, default_value = "cd")]
    rule: String,
    /// Gibbs steps per update.
    #[arg(long, default_value_t = 1)]
    k: i64,
    /// Hidden units.
    #[arg(long, default_value_t = 500)]
    hidden: i64,
    /// Batch size (and persistent chains for pcd).
    #[arg(long, default_value_t = 100)]
    batch_size: i64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.threads == 0 || args.k <= 0 || args.batch_size <= 0 {
        bail!("--steps, --threads, --k and --batch-size must be positive");
    }
    if args.rule != "cd" && args.rule != "pcd" {
        bail!("--rule must be cd or pcd, got {:?}", args.rule);
    }
    tch::set_num_threads(args.threads as i32);
    let (cfg, ds) = load_run(&format!(
        "seed = {}\n[model]\nname = \"rbm\"\nhidden = {}\nrule = \"{}\"\nk = {}\n\
         weight_decay = 2e-4\n[data]\ndataset = \"binarized-mnist\"\nbatch_size = {}\n\
         [optim]\nkind = \"sgd\"\nlr = 0.05\nmomentum = 0.5\n",
        args.seed, args.hidden, args.rule, args.k, args.batch_size
    ))?;
    let params: RbmConfig = parse_params("rbm", &cfg.model.params)?;
    let mut rbm = Rbm::new(
        params,
        &BuildContext {
            cfg: &cfg,
            data: &ds,
            device: Device::Cpu,
        },
    )?;

    let bs = args.batch_size;
    let mut next_batch = endless_batches(&ds.train.x, bs, cfg.seed);
    let timed = TimedSteps::run(
        args.steps,
        &mut rbm,
        |rbm| Ok(rbm.train_batch(&next_batch())?),
        // Reading one value waits for every queued kernel (none on CPU, but keeps GPU honest).
        |rbm| Ok(f64::try_from(rbm.params().0.sum(Kind::Double)).map(|_| ())?),
    )?;
    let products = if args.rule == "cd" {
        2 * args.k + 3
    } else {
        2 * args.k + 4
    };
    let flops_per_step = products as f64 * 2.0 * (bs * 784 * args.hidden) as f64;
    let test = ds.test.x.narrow(0, 0, 1000).reshape([-1, 784]);
    let recon = rbm.reconstruct(&test);
    let recon_err = f64::try_from(
        (&recon - &test)
            .square()
            .sum_dim_intlist(1, false, Kind::Double)
            .mean(Kind::Double),
    )?;
    let out = merged(
        timed.json(bs, flops_per_step)?,
        json!({
            "impl": "gm",
            "rule": args.rule,
            "k": args.k,
            "hidden": args.hidden,
            "threads": args.threads,
            "test_recon_err_1000": recon_err,
        }),
    );
    std::fs::write(&args.json, serde_json::to_string_pretty(&out)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("gm rbm: {out}");
    Ok(())
}
