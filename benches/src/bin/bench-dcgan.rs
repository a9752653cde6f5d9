//! `bench-dcgan`: times DCGAN training steps (one discriminator and one generator update
//! each) on 28×28 MNIST, for `cargo xtask bench dcgan` (which runs
//! `benches/reference/dcgan.py`, the same model trained as in pytorch/examples, with the
//! same arguments and records both).
//!
//! The model is `configs/dcgan-mnist.toml`'s (noise 100, 64 / 64 feature maps, transposed
//! convolutions, batch norm, two Adam(2e-4, β₁ 0.5)), built through `gm_gan::dcgan::build`.
//! After [`gm_benches::WARMUP_STEPS`] untimed steps, `--steps` steps over seeded, shuffled
//! batches of 64 are timed, each doing the trainer's per-step work
//! ([`gm_benches::StepLoop`]).
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-dcgan -- --steps 300 --threads 2 --json out.json
//! ```

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gm_benches::{
    busy_machine_warning, load_average, matmul_gflops, peak_rss_mb, threading_env, StepLoop,
    MATMUL_N, WARMUP_STEPS,
};
use gm_core::config::RunConfig;
use gm_core::data::{self, Batches};
use gm_core::model::BuildContext;
use serde_json::json;
use tch::Device;

/// Times DCGAN training steps; writes one JSON object.
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
    #[arg(long, default_value_t = 64)]
    batch_size: i64,
    /// Seed of the initialisation, the shuffles and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `[model]`, `[data]` and `[optim]` of `configs/dcgan-mnist.toml` (the test below checks
/// that the file says the same).
fn run_config(batch_size: i64, seed: u64) -> Result<RunConfig> {
    let cfg = RunConfig::from_toml_str(&format!(
        "seed = {seed}\n[model]\nname = \"dcgan\"\nlatent = 100\ng_channels = 64\n\
         d_channels = 64\nupsample = \"transposed\"\nloss = \"non-saturating\"\n[data]\ndataset = \"mnist\"\n\
         batch_size = {batch_size}\ndrop_last = true\n[optim]\nkind = \"adam\"\nlr = 2e-4\n\
         beta1 = 0.5\nbeta2 = 0.999\n"
    ))?;
    cfg.validate()?;
    Ok(cfg)
}

/// Forward multiply-adds of one 28×28 example through G and through D (transposed
/// convolutions counted per input position: positions × c_in × c_out × k²), as the
/// reference's `macs_per_example`.
fn macs_per_example(latent: i64, gc: i64, dc: i64) -> (f64, f64) {
    let g = latent * 2 * gc * 49 + 49 * 2 * gc * gc * 16 + 196 * gc * 16;
    let d = 196 * dc * 16 + 49 * 2 * dc * dc * 16 + 2 * dc * 49;
    (g as f64, d as f64)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.threads == 0 || args.batch_size <= 0 {
        bail!("--steps, --threads and --batch-size must be positive");
    }
    tch::set_num_threads(args.threads as i32);
    let matmul = matmul_gflops(MATMUL_N);
    let cfg = run_config(args.batch_size, args.seed)?;
    let t_load = Instant::now();
    let ds = data::load(&cfg.data.dataset, &cfg.data.options)
        .context("loading mnist (fetch it with `cargo xtask data mnist`)")?;
    let load_seconds = t_load.elapsed().as_secs_f64();
    tch::manual_seed(args.seed as i64);
    let mut model = gm_gan::dcgan::build(&BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    })?;

    let bs = cfg.data.batch_size;
    let mut epoch = 0usize;
    let batches = |e| Batches::new(&ds.train.x, None, bs, true, true, cfg.seed, e);
    let mut current = batches(epoch);
    let mut next_batch = || loop {
        if let Some(b) = current.next() {
            return b.x;
        }
        epoch += 1;
        current = batches(epoch);
    };
    let mut lp = StepLoop::new(cfg.optim.lr);
    for _ in 0..WARMUP_STEPS {
        lp.step(model.as_mut(), &next_batch())?;
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
    let last = lp.last_means();
    let metric = |k: &str| last.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);

    let (g_macs, d_macs) = macs_per_example(100, 64, 64);
    let flops_per_example = 2.0 * (3.0 * g_macs + 9.0 * d_macs);
    let peak = peak_rss_mb().context("reading VmHWM from /proc/self/status")?;
    let examples_per_sec = examples as f64 / seconds;
    let result = json!({
        "impl": "gm",
        "steps": args.steps,
        "warmup_steps": WARMUP_STEPS,
        "batch_size": bs,
        "threads": args.threads,
        "seconds": seconds,
        "ms_per_step": 1000.0 * seconds / args.steps as f64,
        "examples_per_sec": examples_per_sec,
        "gflops": examples_per_sec * flops_per_example / 1e9,
        "matmul_gflops": matmul,
        "g_forward_macs_per_example": g_macs,
        "d_forward_macs_per_example": d_macs,
        "last_window": last.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "d_real_last_window": metric("d_real"),
        "d_fake_last_window": metric("d_fake"),
        "epochs_touched": epoch + 1,
        "load_seconds": load_seconds,
        "peak_rss_mb": peak,
        "dataset": ds.name,
        "model": "dcgan 28x28: G 100-[128,7,7]-convT-[64,14,14]-convT-[1,28,28], D conv-conv-linear, batch norm",
        "optimizer": {"kind": "adam", "lr": cfg.optim.lr, "beta1": cfg.optim.beta1,
                      "beta2": cfg.optim.beta2, "eps": cfg.optim.eps,
                      "implementation": "gm_core::optim::Optimizer (flat buffer), one per player"},
        "device": "cpu",
        "torch_threads": tch::get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "env": threading_env(),
    });
    std::fs::write(&args.json, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!(
        "gm dcgan: {} steps x {bs} in {seconds:.2}s ({examples_per_sec:.0} examples/s, {:.2} ms/step), \
         last window {last:?}, peak RSS {peak:.0} MB, {} threads",
        args.steps,
        1000.0 * seconds / args.steps as f64,
        args.threads
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_agrees_with_the_repository_config() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/dcgan-mnist.toml");
        let file = gm_core::config::RunConfig::from_file(std::path::Path::new(path)).unwrap();
        let ours = super::run_config(64, 0).unwrap();
        assert_eq!(ours.model, file.model);
        assert_eq!(ours.data.dataset, file.data.dataset);
        assert_eq!(ours.data.batch_size, file.data.batch_size);
        assert_eq!(ours.data.drop_last, file.data.drop_last);
        let (a, b) = (&ours.optim, &file.optim);
        assert_eq!(
            (a.kind, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
            (b.kind, b.lr, b.beta1, b.beta2, b.eps, b.weight_decay)
        );
    }
}
