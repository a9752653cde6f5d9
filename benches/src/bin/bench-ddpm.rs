//! `bench-ddpm`: times DDPM training steps (L_simple, one U-Net forward and backward, Adam,
//! gradients clipped at norm 1) on 28×28 MNIST, for `cargo xtask bench ddpm` (which runs
//! `benches/reference/ddpm.py`, the same U-Net written as a PyTorch user would, with the
//! same arguments and records both).
//!
//! The model is `configs/ddpm-mnist.toml`'s (T = 1000 linear β, U-Net 32-64-64 channels
//! with self-attention at 7×7, dropout 0.1), built through `gm_diffusion::ddpm::build`.
//! After [`gm_benches::WARMUP_STEPS`] untimed steps, `--steps` steps over seeded, shuffled
//! batches of 128 are timed, each doing the trainer's per-step work ([`gm_benches::StepLoop`]).
//! Then `--sample-images` images are drawn by 1000-step ancestral sampling and by 50-step
//! DDIM (`Model::sample`, x̂_0 clamped to [−1, 1]), each timed once: seconds per image.
//!
//! ```text
//! cargo run --release -p gm-benches --bin bench-ddpm -- --steps 30 --threads 2 --json out.json
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gm_benches::{endless_batches, load_run, merged, StepLoop, TimedSteps};
use gm_core::model::BuildContext;
use serde_json::json;
use tch::Device;

/// Times DDPM training steps; writes one JSON object.
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
    #[arg(long, default_value_t = 128)]
    batch_size: i64,
    /// Seed of the initialisation, the shuffles and the noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images drawn by each sampler (0: no sampling timed).
    #[arg(long, default_value_t = 8)]
    sample_images: i64,
}

/// U-Net channels per level, as the config.
const CHANNELS: [i64; 3] = [32, 64, 64];

/// `[model]`, `[data]` and `[optim]` of `configs/ddpm-mnist.toml` (the test below checks
/// that the file says the same).
fn config_toml(batch_size: i64, seed: u64) -> String {
    config_with_sampler(batch_size, seed, "ddim")
}

/// The same with `sampler` (`"ddim"` or `"ancestral"`).
fn config_with_sampler(batch_size: i64, seed: u64, sampler: &str) -> String {
    format!(
        "seed = {seed}\n[model]\nname = \"ddpm\"\nsteps = 1000\nschedule = \"linear\"\n\
         beta_start = 1e-4\nbeta_end = 0.02\nchannels = [32, 64, 64]\nattention = true\n\
         dropout = 0.1\nsampler = \"{sampler}\"\nsample_steps = 50\nbound_timesteps = 50\n\
         [data]\ndataset = \"mnist\"\nbatch_size = {batch_size}\n[optim]\nkind = \"adam\"\nlr = 2e-4\n"
    )
}

/// Forward multiply-adds of one 28×28 example through the U-Net of `CHANNELS`: every
/// convolution (output positions × c_in × c_out × k²), the attention's products, the
/// linear layers; as the reference's `macs_per_example`.
fn macs_per_example() -> f64 {
    let c = CHANNELS;
    let temb = 4 * c[0];
    let px = [784i64, 196, 49];
    let conv = |p: i64, i: i64, o: i64, k: i64| p * i * o * k * k;
    let res = |p: i64, i: i64, o: i64| {
        conv(p, i, o, 3) + conv(p, o, o, 3) + temb * o + if i != o { conv(p, i, o, 1) } else { 0 }
    };
    let mut m = conv(784, 1, c[0], 3) + 2 * temb * temb;
    let mut prev = c[0];
    for l in 0..3 {
        m += res(px[l], prev, c[l]);
        prev = c[l];
        if l < 2 {
            m += conv(px[l + 1], c[l], c[l], 3);
        }
    }
    let top = c[2];
    m += 2 * res(49, top, top)
        + conv(49, top, 3 * top, 1)
        + 2 * 49 * 49 * top
        + conv(49, top, top, 1);
    for l in (0..3).rev() {
        let from = if l == 2 { top } else { c[l + 1] };
        m += res(px[l], from + c[l], c[l]);
        if l > 0 {
            m += conv(px[l - 1], c[l], c[l], 3);
        }
    }
    (m + conv(784, c[0], 1, 3)) as f64
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.steps == 0 || args.threads == 0 || args.batch_size <= 0 {
        bail!("--steps, --threads and --batch-size must be positive");
    }
    tch::set_num_threads(args.threads as i32);
    let (cfg, ds) = load_run(&config_toml(args.batch_size, args.seed))?;
    let mut model = gm_diffusion::ddpm::build(&BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    })?;
    for (_, opt) in model.optimizers() {
        opt.set_clip_grad_norm(Some(1.0));
    }
    let bs = cfg.data.batch_size;
    let mut next_batch = endless_batches(&ds.train.x, bs, cfg.seed);
    let mut lp = StepLoop::new(cfg.optim.lr);
    let timed = TimedSteps::run(
        args.steps,
        &mut model,
        |m| lp.step(m.as_mut(), &next_batch()),
        |_| Ok(()),
    )?;
    lp.flush()?;
    let loss = lp
        .last_means()
        .iter()
        .find(|(n, _)| *n == "loss")
        .map(|(_, v)| *v);
    let macs = macs_per_example();
    let sampling = time_sampling(model.as_ref(), &args)?;
    let out = merged(
        timed.json(bs, 2.0 * 3.0 * macs * bs as f64)?,
        json!({
            "impl": "gm",
            "threads": args.threads,
            "forward_macs_per_example": macs,
            "loss_last_window": loss,
            "dataset": ds.name,
            "model": "ddpm 28x28: T 1000 linear, U-Net 32-64-64, GroupNorm(8) residual blocks, attention at 7x7, dropout 0.1, L_simple",
            "optimizer": {"kind": "adam", "lr": cfg.optim.lr, "clip_grad_norm": 1.0,
                          "implementation": "gm_core::optim::Optimizer (flat buffer)"},
            "sampling": sampling,
        }),
    );
    std::fs::write(&args.json, serde_json::to_string_pretty(&out)? + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("gm ddpm: {out}");
    Ok(())
}

/// Seconds per image of `Model::sample` with the trained model's DDIM-50 and with a model
/// of the same net drawing by 1000-step ancestral sampling (the weights do not change the
/// work); `null` when `--sample-images` is 0.
fn time_sampling(ddim: &dyn gm_core::model::Model, args: &Args) -> Result<serde_json::Value> {
    let n = args.sample_images;
    if n <= 0 {
        return Ok(serde_json::Value::Null);
    }
    let (cfg, ds) = load_run(&config_with_sampler(
        args.batch_size,
        args.seed,
        "ancestral",
    ))?;
    let ancestral = gm_diffusion::ddpm::build(&BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    })?;
    let per_image = |m: &dyn gm_core::model::Model| -> Result<f64> {
        let start = std::time::Instant::now();
        let x = m.sample(n)?;
        anyhow::ensure!(x.size()[0] == n, "sample gave {:?}", x.size());
        Ok(start.elapsed().as_secs_f64() / n as f64)
    };
    Ok(json!({
        "images": n,
        "ddim_50_s_per_image": per_image(ddim)?,
        "ancestral_1000_s_per_image": per_image(ancestral.as_ref())?,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_agrees_with_the_repository_config() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/ddpm-mnist.toml");
        let file = gm_core::config::RunConfig::from_file(std::path::Path::new(path)).unwrap();
        let ours = gm_core::config::RunConfig::from_toml_str(&super::config_toml(128, 0)).unwrap();
        assert_eq!(ours.model, file.model);
        assert_eq!(ours.data.dataset, file.data.dataset);
        assert_eq!(ours.data.batch_size, file.data.batch_size);
        let (a, b) = (&ours.optim, &file.optim);
        assert_eq!(
            (a.kind, a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
            (b.kind, b.lr, b.beta1, b.beta2, b.eps, b.weight_decay)
        );
        assert_eq!(file.train.clip_grad_norm, Some(1.0));
    }
}
