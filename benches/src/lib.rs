//! What gm's benchmarks share: the VAE run config they build, a training loop that does the
//! per-step work of [`gm_core::train::fit`] (minus checkpoints and reseeding), random binary
//! data for the criterion benches, and peak-memory readings.
//!
//! Two kinds of benchmark live in this package (see `benches/README.md`):
//! - criterion benches (`cargo bench -p gm-benches`), which time small pieces in isolation;
//! - timed programs such as `bench-vae`, run by `cargo xtask bench vae` beside the PyTorch
//!   reference of the same model (`benches/reference/vae.py`), which write one JSON result.
//!
//! ```no_run
//! use gm_benches::{random_binary_dataset, vae_run_config};
//! use gm_core::model::BuildContext;
//! let cfg = vae_run_config("binarized-mnist", 100)?;
//! let data = random_binary_dataset(200, 0);
//! let mut vae = gm_vae::vae::build(&BuildContext { cfg: &cfg, data: &data, device: tch::Device::Cpu })?;
//! vae.train_step(&gm_core::data::Batch::inputs(&data.train.x.narrow(0, 0, 100)))?;
//! # Ok::<(), anyhow::Error>(())
//! ```

use anyhow::{bail, Context, Result};
use gm_core::config::RunConfig;
use gm_core::data::{Binarization, Dataset, Split};
use gm_core::model::Model;
use tch::{Device, Kind, Tensor};

/// Untimed training steps before the timed ones (both implementations).
pub const WARMUP_STEPS: u64 = 20;

/// Steps between reads of the accumulated metrics, as the trainer's default `log_every`.
pub const LOG_EVERY: u64 = 20;

/// The VAE of `configs/vae-binarized-mnist.toml` (784-200-200-50, tanh, Bernoulli decoder,
/// Adam lr 1e-3, eps 1e-4), with the dataset and batch size given. The learning rate is
/// kept constant (the config's exponential decay is a property of a 300-epoch run, not of a
/// step), as in the PyTorch reference. A test checks that the `[model]` and `[optim]` tables
/// agree with the config file.
pub fn vae_config_toml(dataset: &str, batch_size: i64) -> String {
    iwae_config_toml(dataset, batch_size, 1)
}

/// The same model trained on the k-sample bound (`iwae`, `iw_samples = k`) when `k` > 1,
/// as `configs/iwae-binarized-mnist.toml` with its k; the plain VAE when `k` = 1.
pub fn iwae_config_toml(dataset: &str, batch_size: i64, k: i64) -> String {
    let model = if k > 1 {
        format!("name = \"iwae\"\niw_samples = {k}")
    } else {
        "name = \"vae\"".to_string()
    };
    format!(
        r#"seed = 0

[model]
{model}
hidden = [200, 200]
latent = 50
likelihood = "bernoulli"
activation = "tanh"

[data]
dataset = "{dataset}"
batch_size = {batch_size}
eval_batch_size = 1000

[optim]
kind = "adam"
lr = 1e-3
beta2 = 0.999
eps = 1e-4

[train]
epochs = 1
"#
    )
}

/// [`vae_config_toml`] parsed and validated.
pub fn vae_run_config(dataset: &str, batch_size: i64) -> Result<RunConfig> {
    iwae_run_config(dataset, batch_size, 1)
}

/// [`iwae_config_toml`] parsed and validated.
pub fn iwae_run_config(dataset: &str, batch_size: i64, k: i64) -> Result<RunConfig> {
    let cfg = RunConfig::from_toml_str(&iwae_config_toml(dataset, batch_size, k))?;
    cfg.validate()?;
    Ok(cfg)
}

/// `n` random 0/1 MNIST-shaped examples (`[n, 1, 28, 28]`, every split), seeded, for the
/// criterion benches: speed does not depend on the values, only on their shape.
pub fn random_binary_dataset(n: i64, seed: i64) -> Dataset {
    tch::manual_seed(seed);
    let x = || {
        Tensor::rand([n, 1, 28, 28], (Kind::Float, Device::Cpu))
            .lt(0.5)
            .to_kind(Kind::Float)
    };
    Dataset {
        name: "random-binary".to_owned(),
        train: Split { x: x(), y: None },
        valid: Split { x: x(), y: None },
        test: Split { x: x(), y: None },
        shape: vec![1, 28, 28],
        num_classes: None,
        binarization: Binarization::StaticFile,
        binary: true,
        is_image: true,
    }
}

/// Runs training steps with the per-step work of [`gm_core::train::fit`]: set the learning
/// rate, [`Model::train_step`], add the detached metrics (×batch size, as `f64`) to a window
/// sum, and every [`LOG_EVERY`] steps read the window back to the host and check it is
/// finite. Reseeding libtorch per step, checkpoints, validation and sample grids are left out.
#[derive(Debug)]
pub struct StepLoop {
    lr: f64,
    names: Vec<&'static str>,
    window_sum: Option<Tensor>,
    window_examples: i64,
    window_steps: u64,
    steps: u64,
    last: Vec<f64>,
}

impl StepLoop {
    /// A loop with a constant learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        StepLoop {
            lr,
            names: Vec::new(),
            window_sum: None,
            window_examples: 0,
            window_steps: 0,
            steps: 0,
            last: Vec::new(),
        }
    }

    /// One training step on `x`.
    pub fn step(&mut self, model: &mut dyn Model, x: &Tensor) -> Result<()> {
        for (_, opt) in model.optimizers() {
            opt.set_lr(self.lr);
        }
        let m = model.train_step(&gm_core::data::Batch::inputs(x))?;
        let nb = x.size()[0];
        if self.names.is_empty() {
            self.names = m.iter().map(|(k, _)| *k).collect();
        }
        let v = tch::no_grad(|| {
            Tensor::stack(
                &m.iter()
                    .map(|(_, t)| t.detach().to_kind(Kind::Double))
                    .collect::<Vec<_>>(),
                0,
            ) * nb as f64
        });
        self.window_sum = Some(match self.window_sum.take() {
            None => v,
            Some(s) => s + v,
        });
        self.window_examples += nb;
        self.window_steps += 1;
        self.steps += 1;
        if self.window_steps == LOG_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Reads the window's means back to the host (a synchronisation point) and checks them.
    pub fn flush(&mut self) -> Result<()> {
        let Some(w) = self.window_sum.take() else {
            return Ok(());
        };
        let values = Vec::<f64>::try_from(&w / self.window_examples as f64)?;
        self.window_examples = 0;
        self.window_steps = 0;
        if let Some((name, v)) = self.names.iter().zip(&values).find(|(_, v)| !v.is_finite()) {
            bail!("training metric {name} is {v} after step {}", self.steps);
        }
        self.last = values;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The means of the last flushed window, by name.
    pub fn last_means(&self) -> Vec<(&'static str, f64)> {
        self.names
            .iter()
            .copied()
            .zip(self.last.iter().copied())
            .collect()
    }
}

/// Side of the square product whose rate every bench prints beside its own.
pub const MATMUL_N: i64 = 2048;

/// GFLOP/s of a plain `n`³ f32 matrix product in this process, best of five: the machine's
/// attainable rate, printed beside each bench's achieved one.
pub fn matmul_gflops(n: i64) -> f64 {
    let a = Tensor::rand([n, n], (Kind::Float, Device::Cpu));
    let b = Tensor::rand([n, n], (Kind::Float, Device::Cpu));
    let _ = a.mm(&b);
    let best = (0..5)
        .map(|_| {
            let t = std::time::Instant::now();
            let _ = a.mm(&b);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (n as f64).powi(3) / best / 1e9
}

/// Peak resident set size of this process in MB (`VmHWM` of `/proc/self/status`, which is
/// in KiB; MB here means MiB, as `ru_maxrss / 1024` in the Python references).
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`): recorded with each result,
/// since other work on the machine skews the timings.
pub fn load_average() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Environment variables that change how libtorch's CPU kernels run (OpenMP and MKL
/// threading): recorded with each result. Unset ones are left out.
pub const THREADING_ENV: &[&str] = &[
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "MKL_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
];

/// The set variables of [`THREADING_ENV`], as a JSON object.
pub fn threading_env() -> serde_json::Value {
    THREADING_ENV
        .iter()
        .filter_map(|k| {
            Some((
                k.to_string(),
                serde_json::Value::String(std::env::var(k).ok()?),
            ))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A warning when the 1-minute load average exceeds the cores available: other work then
/// competes for them, and OpenMP's spinning threads make multi-threaded timings erratic.
pub fn busy_machine_warning() -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = load_average()?[0];
    (load > cores as f64).then(|| {
        format!(
            "warning: load average {load:.1} on {cores} cores: other work competes for the CPU \
             and these timings are not reliable (OMP_WAIT_POLICY=passive steadies them)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_agrees_with_the_repository_config() {
        for (file, k) in [
            ("vae-binarized-mnist.toml", 1),
            ("iwae-binarized-mnist.toml", 5),
        ] {
            let path = format!("{}/../configs/{file}", env!("CARGO_MANIFEST_DIR"));
            let Ok(file) = RunConfig::from_file(std::path::Path::new(&path)) else {
                // The config file is not part of every checkout (e.g. a packaged crate).
                return;
            };
            let ours = iwae_run_config("binarized-mnist", 100, k).unwrap();
            assert_eq!(ours.model, file.model);
            assert_eq!(ours.data.dataset, file.data.dataset);
            assert_eq!(ours.data.batch_size, file.data.batch_size);
            let (a, b) = (&ours.optim, &file.optim);
            assert_eq!(a.kind, b.kind);
            assert_eq!(
                (a.lr, a.beta1, a.beta2, a.eps, a.weight_decay),
                (b.lr, b.beta1, b.beta2, b.eps, b.weight_decay)
            );
        }
    }

    #[test]
    fn step_loop_trains_and_reads_metrics() {
        let cfg = vae_run_config("binarized-mnist", 10).unwrap();
        let data = random_binary_dataset(20, 0);
        let ctx = gm_core::model::BuildContext {
            cfg: &cfg,
            data: &data,
            device: Device::Cpu,
        };
        let mut vae = gm_vae::vae::build(&ctx).unwrap();
        let mut lp = StepLoop::new(cfg.optim.lr);
        for _ in 0..LOG_EVERY {
            lp.step(vae.as_mut(), &data.train.x.narrow(0, 0, 10))
                .unwrap();
        }
        assert_eq!(lp.steps(), LOG_EVERY);
        let means = lp.last_means();
        assert_eq!(means[0].0, "loss");
        assert!(means[0].1 > 0.0 && means[0].1 < 784.0 * 2.0, "{means:?}");
        assert!(peak_rss_mb().is_some_and(|m| m > 1.0));
    }
}

/// A timed run of training steps: wall time and what was around it.
#[derive(Clone, Debug)]
pub struct TimedSteps {
    /// Timed steps.
    pub steps: u64,
    /// Seconds they took.
    pub seconds: f64,
    /// [`matmul_gflops`] measured just before them.
    pub matmul_gflops: f64,
    /// Load averages before and after.
    pub load: [Option<[f64; 3]>; 2],
}

impl TimedSteps {
    /// Runs [`WARMUP_STEPS`] untimed calls of `step` on `model`, measures the matmul rate,
    /// warns when the machine is busy, then times `steps` calls and `sync` (which waits for
    /// queued work).
    pub fn run<M>(
        steps: u64,
        model: &mut M,
        mut step: impl FnMut(&mut M) -> Result<()>,
        sync: impl FnOnce(&M) -> Result<()>,
    ) -> Result<Self> {
        for _ in 0..WARMUP_STEPS {
            step(model)?;
        }
        let matmul_gflops = matmul_gflops(MATMUL_N);
        if let Some(w) = busy_machine_warning() {
            eprintln!("{w}");
        }
        let before = load_average();
        let start = std::time::Instant::now();
        for _ in 0..steps {
            step(model)?;
        }
        sync(model)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(TimedSteps {
            steps,
            seconds,
            matmul_gflops,
            load: [before, load_average()],
        })
    }

    /// The fields every bench's JSON shares, for batches of `batch` examples and
    /// `flops_per_step` counted flops: timing, rates, peak RSS, threads and environment.
    pub fn json(&self, batch: i64, flops_per_step: f64) -> Result<serde_json::Value> {
        let peak = peak_rss_mb().context("reading VmHWM from /proc/self/status")?;
        let gflops = flops_per_step * self.steps as f64 / self.seconds / 1e9;
        Ok(serde_json::json!({
            "steps": self.steps,
            "warmup_steps": WARMUP_STEPS,
            "batch_size": batch,
            "seconds": self.seconds,
            "ms_per_step": 1000.0 * self.seconds / self.steps as f64,
            "examples_per_sec": (self.steps as i64 * batch) as f64 / self.seconds,
            "gflops": gflops,
            "matmul_gflops": self.matmul_gflops,
            "matmul_fraction": gflops / self.matmul_gflops,
            "peak_rss_mb": peak,
            "device": "cpu",
            "torch_threads": tch::get_num_threads(),
            "loadavg_before": self.load[0],
            "loadavg_after": self.load[1],
            "env": threading_env(),
        }))
    }
}

/// Adds the fields of `extra` (a JSON object) to `base` (a JSON object).
pub fn merged(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// A bench's run config from TOML (parsed and validated), its dataset, and libtorch's
/// generator seeded with the config's seed.
pub fn load_run(toml: &str) -> Result<(RunConfig, Dataset)> {
    let cfg = RunConfig::from_toml_str(toml)?;
    cfg.validate()?;
    let name = &cfg.data.dataset;
    let ds = gm_core::data::load(name, &cfg.data.options)
        .with_context(|| format!("loading {name} (fetch it with `cargo xtask data {name}`)"))?;
    tch::manual_seed(cfg.seed as i64);
    Ok((cfg, ds))
}

/// Endless training inputs of `batch` rows of `x`: a new seeded shuffle every epoch.
pub fn endless_batches(x: &Tensor, batch: i64, seed: u64) -> impl FnMut() -> Tensor {
    let x = x.shallow_clone();
    let mut epoch = 0usize;
    let mut batches = gm_core::data::Batches::new(&x, None, batch, true, false, seed, epoch);
    move || loop {
        if let Some(b) = batches.next() {
            return b.x;
        }
        epoch += 1;
        batches = gm_core::data::Batches::new(&x, None, batch, true, false, seed, epoch);
    }
}
