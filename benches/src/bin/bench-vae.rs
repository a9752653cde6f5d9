//! `bench-vae`: times VAE training steps on binarized MNIST and computes the test ELBO, for
//! `cargo xtask bench vae` and `cargo xtask bench iwae` (which run
//! `benches/reference/vae.py`, the same model in PyTorch, with the same arguments and record
//! both).
//!
//! The model is the one of `configs/vae-binarized-mnist.toml` (784-200-200-50, tanh,
//! Bernoulli decoder, Adam lr 1e-3, eps 1e-4), built through `gm_vae::vae::build`; with
//! `--iw-samples K` > 1 the IWAE of `configs/iwae-binarized-mnist.toml` with that k
//! (`gm_vae::vae::build_iwae`: one encoder pass, K draws of z, the decoder on all K·B codes,
//! the loss −mean L_K). After [`gm_benches::WARMUP_STEPS`] untimed steps, `--steps` steps
//! over seeded, shuffled batches are timed, each doing the trainer's per-step work
//! ([`gm_benches::StepLoop`]); then the test metrics are averaged over the test split in
//! batches of 1000: the ELBO (one z sample per example, analytic KL) or, for the IWAE, the
//! K-sample ELBO estimate and the bound L_K.
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-vae -- --steps 2000 --threads 2 --json out.json
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gm_benches::{
    busy_machine_warning, iwae_run_config, load_average, matmul_gflops, peak_rss_mb, threading_env,
    StepLoop, MATMUL_N, WARMUP_STEPS,
};

/// Flops of one example's training step with `k` draws of z: the encoder's forward
/// multiply-adds (784-200, 200-200, 200-100) once and the decoder's (50-200, 200-200,
/// 200-784) k times, ×2 for flops, ×3 for forward + backward (`flops_per_example` of the
/// reference).
fn flops_per_example(k: i64) -> f64 {
    let macs = |layers: &[(i64, i64)]| layers.iter().map(|(i, o)| (i * o) as f64).sum::<f64>();
    let encoder = macs(&[(784, 200), (200, 200), (200, 100)]);
    let decoder = macs(&[(50, 200), (200, 200), (200, 784)]);
    3.0 * 2.0 * (encoder + k as f64 * decoder)
}
use gm_core::data::{self, Batches};
use gm_core::model::BuildContext;
use serde_json::json;
use tch::Device;

/// Times VAE training steps and the test ELBO; writes one JSON object.
#[derive(Parser, Debug)]
struct Args {
    /// Timed training steps (after the warm-up).
    #[arg(long)]
    steps: u64,
    /// libtorch intra-op threads.
    #[arg(long)]
    threads: usize,
    /// Where to write the JSON result.
    #[arg(long)]
    json: PathBuf,
    /// Training batch size.
    #[arg(long, default_value_t = 100)]
    batch_size: i64,
    /// Dataset (binary; its test split gives the ELBO).
    #[arg(long, default_value = "binarized-mnist")]
    dataset: String,
    /// Draws of z per example: 1 is the VAE, K > 1 the IWAE trained on L_K.
    #[arg(long, default_value_t = 1)]
    iw_samples: i64,
    /// Seed of the model's initialisation, the shuffles and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Tune glibc's allocator as the `gm` command does at start
    /// (`gm_core::device::tune_allocator`); off by default, like the Python reference.
    #[arg(long)]
    tune_allocator: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.threads == 0 || args.batch_size <= 0 || args.iw_samples <= 0 {
        bail!("--steps, --threads, --batch-size and --iw-samples must be positive");
    }
    let k = args.iw_samples;
    if args.tune_allocator {
        gm_core::device::tune_allocator();
    }
    tch::set_num_threads(args.threads as i32);
    let matmul = matmul_gflops(MATMUL_N);
    let mut cfg = iwae_run_config(&args.dataset, args.batch_size, k)?;
    cfg.seed = args.seed;

    let t_load = Instant::now();
    let ds = data::load(&cfg.data.dataset, &cfg.data.options).with_context(|| {
        format!(
            "loading {} (fetch it with `cargo xtask data {}`)",
            args.dataset, args.dataset
        )
    })?;
    let load_seconds = t_load.elapsed().as_secs_f64();
    if !ds.binary {
        bail!(
            "dataset {} is not binary here; the bench's VAE is Bernoulli",
            ds.name
        );
    }
    tch::manual_seed(args.seed as i64);
    let ctx = BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    };
    let mut model = if k > 1 {
        gm_vae::vae::build_iwae(&ctx)?
    } else {
        gm_vae::vae::build(&ctx)?
    };

    // Batches over as many epochs as it takes; the trainer's order for (seed, epoch).
    let bs = cfg.data.batch_size;
    let mut epoch = 0usize;
    let mut batches = Batches::new(
        &ds.train_inputs(epoch),
        None,
        bs,
        true,
        false,
        cfg.seed,
        epoch,
    );
    let mut next_batch = || loop {
        if let Some(b) = batches.next() {
            return b.x;
        }
        epoch += 1;
        batches = Batches::new(
            &ds.train_inputs(epoch),
            None,
            bs,
            true,
            false,
            cfg.seed,
            epoch,
        );
    };

    let mut lp = StepLoop::new(cfg.optim.lr);
    for _ in 0..WARMUP_STEPS {
        let x = next_batch();
        lp.step(model.as_mut(), &x)?;
    }
    lp.flush()?;

    if let Some(w) = busy_machine_warning() {
        eprintln!("{w}");
    }
    let load_before = load_average();
    let start = Instant::now();
    let mut examples = 0i64;
    for _ in 0..args.steps {
        let x = next_batch();
        examples += x.size()[0];
        lp.step(model.as_mut(), &x)?;
    }
    lp.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    let load_after = load_average();
    let train_loss = lp.last_means().first().map(|(_, v)| *v);

    let t_eval = Instant::now();
    tch::manual_seed(args.seed as i64 + 1);
    let test = gm_core::train::evaluate(model.as_ref(), &ds.test, cfg.data.eval_batch_size)?;
    let eval_seconds = t_eval.elapsed().as_secs_f64();
    let metric = |name: &str| {
        test.iter()
            .find(|(key, _)| key == name)
            .map(|(_, v)| *v)
            .with_context(|| format!("the model reports no {name} metric"))
    };
    let test_elbo = metric("elbo")?;
    let test_iwae = if k > 1 { Some(metric("iwae")?) } else { None };
    let model_name = if k > 1 {
        format!("iwae k={k} 784-200-200-50 tanh, Bernoulli decoder")
    } else {
        "vae 784-200-200-50 tanh, Bernoulli decoder, analytic KL".to_string()
    };

    let peak = peak_rss_mb().context("reading VmHWM from /proc/self/status")?;
    let examples_per_sec = examples as f64 / seconds;
    let mut result = json!({
        "impl": "gm",
        "steps": args.steps,
        "warmup_steps": WARMUP_STEPS,
        "batch_size": bs,
        "threads": args.threads,
        "seconds": seconds,
        "ms_per_step": 1000.0 * seconds / args.steps as f64,
        "examples_per_sec": examples_per_sec,
        "gflops": examples_per_sec * flops_per_example(k) / 1e9,
        "matmul_gflops": matmul,
        "test_elbo": test_elbo,
        "test_examples": ds.test.len(),
        "eval_seconds": eval_seconds,
        "train_loss_last_window": train_loss,
        "epochs_touched": epoch + 1,
        "load_seconds": load_seconds,
        "peak_rss_mb": peak,
        "dataset": ds.name,
        "binarization": ds.binarization.to_string(),
        "iw_samples": k,
        "model": model_name,
        "optimizer": {"kind": "adam", "lr": cfg.optim.lr, "beta1": cfg.optim.beta1,
                      "beta2": cfg.optim.beta2, "eps": cfg.optim.eps,
                      "implementation": "gm_core::optim::Optimizer (flat buffer)"},
        "device": "cpu",
        "torch_threads": tch::get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "env": threading_env(),
        "allocator": if args.tune_allocator { "gm_core::device::tune_allocator" } else { "glibc default" },
    });
    if let Some(b) = test_iwae {
        result["test_iwae"] = json!(b);
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!(
        "gm {}: {} steps x {bs} in {seconds:.2}s ({examples_per_sec:.0} examples/s, {:.2} ms/step), \
         test ELBO {test_elbo:.2}{} nats, peak RSS {peak:.0} MB, {} threads",
        if k > 1 { "iwae" } else { "vae" },
        args.steps,
        1000.0 * seconds / args.steps as f64,
        test_iwae.map_or(String::new(), |b| format!(", L_{k} {b:.2}")),
        args.threads
    );
    Ok(())
}
