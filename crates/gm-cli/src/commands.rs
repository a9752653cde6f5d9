//! The subcommands.

use crate::run::{self, CONFIG_FILE};
use anyhow::{bail, Context, Result};
use clap::Args;
use gm_core::checkpoint::{self, atomic_write};
use gm_core::config::RunConfig;
use gm_core::device::{derive_seed, device_name, seed_all, DeviceSpec};
use gm_core::dist;
use gm_core::image::{save_grid, GridOptions};
use gm_core::masks::{completion_grid, MaskSpec};
use gm_core::model::{LogLikelihood, Model};
use gm_core::train::{self, stream};
use gm_eval::assess::{assess, Inputs};
use gm_eval::features::{FeatureNet, FeatureOptions, Representation};
use gm_eval::results::{self, Metric, RecordContext, ResultRecord};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Model to train (see `gm list`); may be omitted with --resume, or with a --config that names it.
    pub model: Option<String>,
    /// Run config (TOML); command-line options override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Dataset (see `gm list`).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Number of epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many steps.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Time budget of this call: stop (resumable) after the first epoch that ends past this many minutes.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Seed of every random number of the run.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Folder the run directory is created in.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Name of the run directory (default: <model>-<dataset>-<unix time>).
    #[arg(long)]
    pub name: Option<String>,
    /// Replace an existing run directory of the same name.
    #[arg(long)]
    pub force: bool,
    /// Continue the run in this directory from its newest checkpoint.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "dataset", "seed", "name", "force"])]
    pub resume: Option<PathBuf>,
    /// With --resume: continue from the checkpoint at this step instead of the newest (e.g.
    /// the newest good one when the newest is corrupt).
    #[arg(long, value_name = "STEP", requires = "resume")]
    pub from: Option<u64>,
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// A run directory written by `gm train`.
    pub run_dir: PathBuf,
    /// Number of samples.
    #[arg(short, default_value_t = 64)]
    pub n: i64,
    /// Output: a PNG grid, or raw samples `[N, ...]` f32 in a .safetensors (metadata in its
    /// header) or .npy (metadata in a .json beside it) file, with the grid in <stem>.png
    /// (default: <run-dir>/samples.png).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Seed of the samples.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Samples of this class only (class-conditional models, e.g. cvae; default output
    /// <run-dir>/samples-class-<C>.png).
    #[arg(long, value_name = "C", conflicts_with = "complete")]
    pub class: Option<i64>,
    /// Complete N evenly spaced test examples with this part hidden: bottom-half,
    /// right-half, square or random:P; writes masked input | completion | truth (default
    /// output <run-dir>/completion-<MASK>.png) and says whether it is exact.
    #[arg(long, value_name = "MASK")]
    pub complete: Option<String>,
    /// Use the newest checkpoint even when the run keeps a best one (train.best_metric).
    #[arg(long)]
    pub latest: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// A run directory written by `gm train`.
    pub run_dir: PathBuf,
    /// Importance samples per example (default: the run config's eval.is_samples).
    #[arg(long)]
    pub k: Option<i64>,
    /// AIS chains (default: the run config's eval.ais_chains).
    #[arg(long)]
    pub ais_chains: Option<i64>,
    /// AIS with this many evenly spaced temperatures instead of the run config's schedule
    /// (eval.ais_steps; Salakhutdinov & Murray's 14,500 when unset): run it longer to see
    /// whether log Ẑ has converged.
    #[arg(long)]
    pub ais_steps: Option<usize>,
    /// Also run reverse AIS from the model's persistent chains (eval.ais_reverse; dbm, rbm
    /// with pcd / pt): a log Ẑ far above the forward one says the forward estimate has not
    /// converged.
    #[arg(long)]
    pub ais_reverse: bool,
    /// Evaluate likelihoods on N test examples evenly spaced through the split (recorded
    /// with the results).
    #[arg(long)]
    pub limit: Option<i64>,
    /// Samples for the sample-quality metrics (capped at the test split's size).
    #[arg(long, default_value_t = 10_000)]
    pub samples: i64,
    /// Neighbour rank k of precision / recall.
    #[arg(long, default_value_t = 3)]
    pub pr_k: i64,
    /// Skip the sample-quality metrics (keeps earlier quality records of results.json).
    #[arg(long)]
    pub no_quality: bool,
    /// Skip the likelihoods (keeps earlier likelihood records of results.json).
    #[arg(long)]
    pub no_likelihood: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Also the Parzen-window log-likelihood from samples (Goodfellow et al. 2014's
    /// protocol; a weak estimate, labelled so), e.g. for models without a likelihood.
    #[arg(long)]
    pub parzen: bool,
    /// Model samples of the Parzen estimate.
    #[arg(long, default_value_t = 10_000)]
    pub parzen_samples: i64,
    /// Use the newest checkpoint even when the run keeps a best one (train.best_metric).
    #[arg(long)]
    pub latest: bool,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directories evaluated by `gm eval`.
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// The HTML file (self-contained: pictures are embedded as data URIs).
    #[arg(long, short, default_value = "report.html")]
    pub out: PathBuf,
    /// Page title.
    #[arg(long, default_value = "gm report")]
    pub title: String,
    /// Put incomparable results (binarizations, metric kinds, feature networks) in one
    /// table anyway; the objections are shown above it.
    #[arg(long)]
    pub force: bool,
    /// Also render the page with headless Chromium into <out>.png (a rendering check).
    #[arg(long)]
    pub screenshot: bool,
}

fn install_ctrlc() {
    let _ = ctrlc::set_handler(|| {
        let flag = train::interrupt_flag();
        if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("\ngm: second interrupt, exiting now (the last checkpoint is intact)");
            std::process::exit(130);
        }
        eprintln!(
            "\ngm: interrupt: writing a checkpoint after this step (Ctrl-C again to quit now)"
        );
    });
}

#[derive(Serialize)]
struct RunInfo {
    gm_version: &'static str,
    command: Vec<String>,
    device: String,
    started_unix: u64,
    threads: i32,
}

/// `gm train`: resolve the config, load and check everything, open (or reopen) the run
/// directory, fit, draw the pictures, print the summary.
pub fn train(a: TrainArgs) -> Result<()> {
    let (cfg, run_dir, resume) = match &a.resume {
        Some(dir) => (resumed_config(dir, &a)?, dir.clone(), true),
        None => {
            let cfg = new_config(&a)?;
            let dir = run::new_run_dir(&a.out, a.name.as_deref(), &cfg);
            // On several processes every rank works in the folder rank 0 chose.
            let dir = PathBuf::from(dist::broadcast_text(&dir.to_string_lossy())?);
            (cfg, dir, false)
        }
    };
    cfg.validate()?;
    let device = cfg.device.resolve()?;
    // Everything that can fail on bad input happens before the run directory is touched.
    let data = run::load_data(&cfg, device)?;
    data.observed_labels(cfg.data.options.labelled, cfg.seed)?;
    seed_all(cfg.seed);
    let mut model = run::build_model(&cfg, &data, device)?;
    let mut resolved = cfg.clone();
    resolved.model.params = model.resolved_params();
    let progress = if resume {
        let (ckpt, p) = checkpoint::restore_run(&run_dir, a.from, model.as_mut())?;
        let (dir, c) = (run_dir.display(), ckpt.display());
        tracing::info!(
            "resuming {dir} from {c} (epoch {}, step {})",
            p.epoch,
            p.step
        );
        Some(p)
    } else {
        if dist::is_main() {
            create_run_dir(&run_dir, &resolved, device, a.force)?;
        }
        None
    };
    log_start(&cfg, &data, device, &run_dir);
    install_ctrlc();
    let summary = train::fit(model.as_mut(), &data, &resolved, &run_dir, progress)?;
    if !dist::is_main() {
        return Ok(());
    }
    let n = cfg.train.n_samples;
    write_pictures(model.as_ref(), &data, &run_dir, cfg.seed, n)?;
    print_summary(&cfg, &summary, &run_dir);
    Ok(())
}

/// The config of the run in `dir`, with the command line's budget and device overrides.
fn resumed_config(dir: &Path, a: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = run::read_config(dir)?;
    if let Some(m) = &a.model {
        if *m != cfg.model.name {
            let d = dir.display();
            bail!("{d} is a run of `{}`, not `{m}`", cfg.model.name);
        }
    }
    apply_overrides(&mut cfg, a)?;
    Ok(cfg)
}

/// The config of a new run: `--config` (or the defaults), the model named on the command
/// line, its default dataset unless one is given, and the command line's overrides.
fn new_config(a: &TrainArgs) -> Result<RunConfig> {
    let mut cfg = match &a.config {
        Some(p) => RunConfig::from_file(p)?,
        None => RunConfig::default(),
    };
    let model = match &a.model {
        Some(m) => m.clone(),
        None if !cfg.model.name.is_empty() => cfg.model.name.clone(),
        None => bail!(
            "name a model to train (see `gm list`), give a --config whose [model] names one, or give --resume <run-dir>"
        ),
    };
    let reg = run::registry();
    let entry = reg.lookup(&model)?;
    if !cfg.model.name.is_empty() && cfg.model.name != model {
        let named = &cfg.model.name;
        bail!("the config names model `{named}` but the command line says `{model}`");
    }
    cfg.model.name = model;
    if let Some(d) = &a.dataset {
        cfg.data.dataset = d.clone();
    }
    if cfg.data.dataset.is_empty() {
        cfg.data.dataset = entry.default_dataset.to_string();
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    apply_overrides(&mut cfg, a)?;
    Ok(cfg)
}

/// `--epochs`, `--max-steps`, `--max-minutes` and `--device`, when given.
fn apply_overrides(cfg: &mut RunConfig, a: &TrainArgs) -> Result<()> {
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(s) = a.max_steps {
        cfg.train.max_steps = Some(s);
    }
    if a.max_minutes.is_some() {
        cfg.train.max_minutes = a.max_minutes;
    }
    if let Some(d) = &a.device {
        cfg.device = DeviceSpec::parse(d)?;
    }
    Ok(())
}

/// A fresh run directory (replacing an old one only with `force`) holding the resolved
/// config and `run.json`.
fn create_run_dir(dir: &Path, resolved: &RunConfig, device: Device, force: bool) -> Result<()> {
    if dir.exists() {
        if !force {
            bail!(
                "{} already exists: continue it with `gm train --resume {0}`, or replace it with --force",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    atomic_write(&dir.join(CONFIG_FILE), resolved.to_toml().as_bytes())?;
    let info = RunInfo {
        gm_version: env!("CARGO_PKG_VERSION"),
        command: std::env::args().collect(),
        device: device_name(device),
        started_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        threads: tch::get_num_threads(),
    };
    atomic_write(&dir.join("run.json"), &serde_json::to_vec_pretty(&info)?)?;
    Ok(())
}

fn log_start(cfg: &RunConfig, data: &gm_core::data::Dataset, device: Device, run_dir: &Path) {
    let labels = match (cfg.data.options.labelled, data.num_classes) {
        (Some(n), _) => format!("{n} kept"),
        (None, Some(_)) => "all".to_string(),
        (None, None) => "none".to_string(),
    };
    tracing::info!(
        "training {} on {} ({} train / {} valid examples, labels: {labels}, binarization {}) on {}, run dir {}",
        cfg.model.name,
        cfg.data.dataset,
        data.train.len(),
        data.valid.len(),
        data.binarization,
        device_name(device),
        run_dir.display()
    );
}

fn print_summary(cfg: &RunConfig, summary: &train::FitSummary, run_dir: &Path) {
    println!(
        "trained {} for {} epochs / {} steps in {:.1}s{}; run dir {}",
        cfg.model.name,
        summary.epochs,
        summary.steps,
        summary.seconds,
        if summary.stopped_on_budget {
            " (stopped on the time budget; --resume continues)"
        } else if summary.stopped_early {
            " (stopped early: train.patience epochs without a new best)"
        } else {
            ""
        },
        run_dir.display()
    );
    if let Some(b) = &summary.best {
        let (m, v, e) = (&b.metric, b.value, b.epoch);
        println!("  best valid {m}: {v:.4} after epoch {e} (checkpoints/best; gm eval and gm sample use it)");
    }
    for (k, v) in &summary.valid {
        println!("  valid {k}: {v:.4}");
    }
}

/// Final sample grid and the model's own figures (reconstructions, walks).
fn write_pictures(
    model: &dyn gm_core::model::Model,
    data: &gm_core::data::Dataset,
    run_dir: &Path,
    seed: u64,
    n: i64,
) -> Result<()> {
    seed_all(derive_seed(seed, &[stream::SAMPLE, u64::MAX]));
    train::save_samples(model, data, &run_dir.join("samples.png"), n)?;
    // Evenly spaced test examples: test files may be sorted by class (binarized MNIST's is).
    let n_test = data.test.len();
    let m = n_test.min(32);
    let idx = tch::Tensor::arange(m, (tch::Kind::Int64, data.test.x.device())) * (n_test / m);
    let x = data.test.x.index_select(0, &idx);
    let figs = if data.is_image {
        let mut figs = model.figures(&x)?;
        figs.extend(class_grid(model)?);
        if let Some(y) = &data.test.y {
            // Up to 5,000 evenly spaced labelled test examples.
            let m = n_test.min(5000);
            let idx =
                tch::Tensor::arange(m, (tch::Kind::Int64, data.test.x.device())) * (n_test / m);
            figs.extend(model.labelled_figures(
                &data.test.x.index_select(0, &idx),
                &y.index_select(0, &idx.to_device(y.device())),
            )?);
        }
        figs
    } else if data.shape == [2] {
        // Pictures of 2-D data that are images (a flow's density); other figures are skipped.
        match model.figures(&x) {
            Ok(f) => f.into_iter().filter(|f| f.images.dim() == 4).collect(),
            Err(e) => {
                tracing::warn!("no figures for 2-D data: {e}");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    if !figs.is_empty() {
        std::fs::create_dir_all(run_dir.join("figures"))?;
    }
    for f in figs {
        let path = run_dir.join("figures").join(format!("{}.png", f.name));
        save_grid(
            &f.images,
            &path,
            &GridOptions {
                per_row: f.per_row,
                ..Default::default()
            },
        )?;
        tracing::info!("{}: {}", path.display(), f.caption);
    }
    Ok(())
}

/// A row of samples per class, for a model that samples by class.
fn class_grid(model: &dyn gm_core::model::Model) -> Result<Option<gm_core::model::Figure>> {
    let Some(cond) = model.as_conditional() else {
        return Ok(None);
    };
    let per_row = 10;
    let rows = (0..cond.num_classes())
        .map(|c| tch::no_grad(|| cond.sample_class(per_row, c)))
        .collect::<gm_core::Result<Vec<_>>>()?;
    Ok(Some(gm_core::model::Figure {
        name: "samples-per-class".into(),
        caption: format!("row c: {per_row} samples of class c"),
        images: tch::Tensor::cat(&rows, 0),
        per_row,
    }))
}

pub fn sample(a: SampleArgs) -> Result<()> {
    if a.n <= 0 {
        bail!("-n must be a positive number of samples, got {}", a.n);
    }
    let cfg = run::read_config(&a.run_dir)?;
    let device = DeviceSpec::parse(&a.device)?.resolve()?;
    let data = run::load_data(&cfg, device)?;
    let mask = a.complete.as_deref().map(MaskSpec::parse).transpose()?;
    let (model, _) = run::load_trained(&a.run_dir, &cfg, &data, device, a.latest)?;
    seed_all(a.seed);
    if let Some(class) = a.class {
        return sample_class(model.as_ref(), &data, &a, class);
    }
    if let Some(mask) = mask {
        return sample_completion(model.as_ref(), &data, &a, &mask);
    }
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.run_dir.join("samples.png"));
    if let Some(format) = crate::raw::RawFormat::of(&out) {
        return sample_raw(model.as_ref(), &data, &cfg, &a.run_dir, &out, format, &a);
    }
    train::save_samples(model.as_ref(), &data, &out, a.n)?;
    println!(
        "{} samples of {} written to {}",
        a.n,
        cfg.model.name,
        out.display()
    );
    Ok(())
}

/// `gm sample -o x.safetensors|x.npy`: the raw samples with their metadata, and the PNG
/// grid beside them (same stem).
fn sample_raw(
    model: &dyn gm_core::model::Model,
    data: &gm_core::data::Dataset,
    cfg: &RunConfig,
    run_dir: &Path,
    out: &Path,
    format: crate::raw::RawFormat,
    a: &SampleArgs,
) -> Result<()> {
    let mut shape = vec![a.n];
    shape.extend_from_slice(&data.shape);
    let s = tch::no_grad(|| model.sample(a.n))?.reshape(shape.as_slice());
    let meta = crate::raw::metadata(&s, data, &cfg.model.name, run_dir, a.seed);
    crate::raw::write(out, format, &s, &meta)?;
    let png = out.with_extension("png");
    train::save_picture(&s, data, &png)?;
    println!(
        "{} samples of {} ({}) written to {} (picture: {})",
        a.n,
        cfg.model.name,
        meta["samples"],
        out.display(),
        png.display()
    );
    Ok(())
}

/// `gm sample --class C`: a grid of class-conditional samples.
fn sample_class(
    model: &dyn Model,
    data: &gm_core::data::Dataset,
    a: &SampleArgs,
    class: i64,
) -> Result<()> {
    let name = model.name();
    let Some(cond) = model.as_conditional() else {
        bail!("model {name} cannot sample by class: it is not class-conditional (cvae is)");
    };
    let classes = cond.num_classes();
    if !(0..classes).contains(&class) {
        bail!(
            "--class {class} is out of range: model {name} has classes 0..={} (dataset {})",
            classes - 1,
            data.name
        );
    }
    if !data.is_image {
        bail!(
            "--class writes an image grid; {} is not an image dataset",
            data.name
        );
    }
    let s = tch::no_grad(|| cond.sample_class(a.n, class))?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.run_dir.join(format!("samples-class-{class}.png")));
    let per_row = (a.n as f64).sqrt().ceil() as i64;
    save_grid(
        &s,
        &out,
        &GridOptions {
            per_row,
            ..Default::default()
        },
    )?;
    println!(
        "{} samples of class {class} of {name} written to {}",
        a.n,
        out.display()
    );
    Ok(())
}

/// `gm sample --complete MASK`: completes evenly spaced test examples, writes masked input
/// | completion | truth, and says whether the completion is exact.
fn sample_completion(
    model: &dyn Model,
    data: &gm_core::data::Dataset,
    a: &SampleArgs,
    mask: &MaskSpec,
) -> Result<()> {
    let name = model.name();
    let Some(comp) = model.as_completion() else {
        bail!("model {name} cannot complete partly observed inputs (--complete): it has no completion");
    };
    if !data.is_image {
        bail!(
            "--complete hides parts of images; {} is not an image dataset",
            data.name
        );
    }
    let n = a.n.min(data.test.len());
    let x = data.test.x_evenly_spaced(Some(n));
    let m = mask.build(n, &data.shape, a.seed, x.device())?;
    let done = tch::no_grad(|| comp.complete(&x, &m))
        .with_context(|| format!("model {name} with --complete {}", mask.stem()))?;
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.run_dir.join(format!("completion-{}.png", mask.stem())));
    let grid = completion_grid(&x, &m, &done.unsqueeze(1));
    save_grid(
        &grid,
        &out,
        &GridOptions {
            per_row: 3,
            ..Default::default()
        },
    )?;
    println!(
        "{n} test examples of {} completed by {name}, {} hidden; completion {}; \
         masked input | completion | truth written to {}",
        data.name,
        mask.stem(),
        comp.completion_kind(),
        out.display()
    );
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<()> {
    if a.no_quality && a.no_likelihood {
        bail!("--no-quality and --no-likelihood together leave nothing to evaluate");
    }
    if a.samples < 2 {
        bail!("--samples must be at least 2, got {}", a.samples);
    }
    if a.parzen && a.parzen_samples < 1 {
        bail!(
            "--parzen-samples must be at least 1, got {}",
            a.parzen_samples
        );
    }
    let mut cfg = run::read_config(&a.run_dir)?;
    let hash = gm_eval::results::config_hash(&cfg);
    if let Some(k) = a.k {
        cfg.eval.is_samples = k;
    }
    if let Some(c) = a.ais_chains {
        cfg.eval.ais_chains = c;
    }
    if a.ais_steps.is_some() {
        cfg.eval.ais_steps = a.ais_steps;
    }
    cfg.eval.ais_reverse |= a.ais_reverse;
    if let Some(l) = a.limit {
        cfg.eval.limit = Some(l);
    }
    cfg.validate()?;
    let device = DeviceSpec::parse(&a.device)?.resolve()?;
    let data = run::load_data(&cfg, device)?;
    let (model, ckpt) = run::load_trained(&a.run_dir, &cfg, &data, device, a.latest)?;
    let ctx = RecordContext {
        model: cfg.model.name.clone(),
        config_hash: hash,
        dataset: cfg.data.dataset.clone(),
        split: "test".into(),
        binarization: data.binarization,
        labelled: cfg.data.options.labelled,
        device: device_name(device),
        checkpoint: Some(ckpt),
    };
    let path = a.run_dir.join("results.json");
    // Records of the parts that are skipped this time are kept from an earlier evaluation.
    let old = if path.exists() {
        results::load(&path).unwrap_or_else(|e| {
            tracing::warn!("{e}: not gm-eval records (an older gm?), replaced");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    // Likelihoods and the model's own statistics are one part, sample quality the other.
    let is_ll = |r: &ResultRecord| {
        matches!(
            r.metric,
            Metric::LogLikelihood(_) | Metric::ClassificationError | Metric::ActiveUnits
        )
    };
    let mut records: Vec<ResultRecord> = Vec::new();
    if a.no_likelihood {
        records.extend(old.iter().filter(|r| is_ll(r)).cloned());
    } else {
        // On several processes the ranks split the test examples (models whose records
        // are per-example means) or share the AIS chains here.
        records.extend(eval_likelihoods(model.as_ref(), &data, &cfg, &ctx)?);
    }
    // The ranks draw their shares of the sample-quality samples; the rest is rank 0's.
    let samples = if !a.no_quality && data.is_image {
        Some(draw_quality_samples(model.as_ref(), &data, &cfg, &a)?)
    } else {
        None
    };
    if !dist::is_main() {
        return Ok(());
    }
    // What follows is rank 0's alone.
    if !a.no_likelihood && a.parzen {
        let n = a.parzen_samples;
        let parzen = dist::alone(|| eval_parzen(model.as_ref(), &data, &cfg, &ctx, n))?;
        records.push(parzen);
    }
    if a.no_quality {
        records.extend(old.iter().filter(|r| !is_ll(r)).cloned());
    } else if let Some((samples, note)) = samples {
        records.extend(dist::alone(|| {
            eval_quality(model.as_ref(), &data, &cfg, &ctx, &a, samples, note)
        })?);
    } else {
        tracing::info!(
            "{} is not an image dataset: no sample-quality metrics",
            cfg.data.dataset
        );
    }
    results::save(&path, &records)?;
    let n = cfg.train.n_samples;
    dist::alone(|| write_pictures(model.as_ref(), &data, &a.run_dir, cfg.seed, n))?;
    println!(
        "{} on {} (binarization {}), on {}:",
        cfg.model.name,
        cfg.data.dataset,
        data.binarization,
        device_name(device)
    );
    for r in &records {
        match r.metric {
            Metric::LogLikelihood(kind) => {
                let k = r
                    .settings
                    .get("k")
                    .map(|k| format!(", k = {k}"))
                    .unwrap_or_default();
                println!(
                    "  {:<20} NLL {:>9.3} ± {:.3} nats  [{kind}{k}; {} test examples]",
                    r.method,
                    -r.value,
                    r.std_err.unwrap_or(f64::NAN),
                    r.n
                );
            }
            m => println!(
                "  {:<20} {:<24} {:>9.4}  [n = {}]",
                r.model,
                m.to_string(),
                r.value,
                r.n
            ),
        }
    }
    println!("results: {}", path.display());
    Ok(())
}

fn eval_likelihoods(
    model: &dyn gm_core::model::Model,
    data: &gm_core::data::Dataset,
    cfg: &RunConfig,
    ctx: &RecordContext,
) -> Result<Vec<ResultRecord>> {
    let x = data.test.x_evenly_spaced(cfg.eval.limit);
    let n = x.size()[0];
    let (rank, world) = (dist::rank(), dist::world());
    let split = world > 1 && model.likelihoods_per_example() && n >= world as i64;
    tracing::info!(
        "evaluating {} on {n} test examples of {}{} (eval.is_samples = {} for importance-sampled estimates)",
        cfg.model.name,
        cfg.data.dataset,
        if split { format!(", split among {world} processes") } else { String::new() },
        cfg.eval.is_samples
    );
    let start = Instant::now();
    let lls = if split {
        seed_all(derive_seed(cfg.eval.seed, &[stream::EVAL, rank as u64]));
        let shard = dist::Shard::of(n, rank, world);
        pool_across_ranks(model.log_likelihoods(&x.narrow(0, shard.offset, shard.len), cfg)?)?
    } else {
        seed_all(derive_seed(cfg.eval.seed, &[stream::EVAL]));
        model.log_likelihoods(&x, cfg)?
    };
    let seconds = start.elapsed().as_secs_f64();
    if cfg.eval.ais_reverse && !lls.iter().any(|ll| ll.method.contains("reverse-ais")) {
        tracing::warn!(
            "eval.ais_reverse: {} has no reverse AIS (no persistent chains); ignored",
            cfg.model.name
        );
    }
    let mut records: Vec<ResultRecord> = lls
        .iter()
        .map(|ll| ctx.log_likelihood(ll, seconds))
        .collect();
    let start = Instant::now();
    let stats = model.statistics(&data.test.evenly_spaced(cfg.eval.limit), cfg)?;
    let seconds = start.elapsed().as_secs_f64();
    records.extend(stats.iter().map(|s| ctx.statistic(s, seconds)));
    Ok(records)
}

/// Each rank's records of its shard of the test examples, pooled into the records of all
/// of them ([`LogLikelihood::pooled`]); every rank gets the same.
fn pool_across_ranks(local: Vec<LogLikelihood>) -> Result<Vec<LogLikelihood>> {
    let counts = dist::gather_all(&tch::Tensor::from_slice(&[local.len() as i64]))?;
    let counts = Vec::<i64>::try_from(&counts.reshape([-1]))?;
    if counts.iter().any(|&c| c != local.len() as i64) {
        bail!("the processes computed different numbers of log-likelihood records: {counts:?}");
    }
    let triples: Vec<f64> = local
        .iter()
        .flat_map(|l| [l.n as f64, l.mean, l.std_err])
        .collect();
    let all = dist::gather_all(&tch::Tensor::from_slice(&triples).view([-1, 3]))?;
    let all = Vec::<f64>::try_from(&all.reshape([-1]))?;
    let per_rank = 3 * local.len();
    local
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let parts: Vec<LogLikelihood> = all
                .chunks(per_rank)
                .map(|r| LogLikelihood {
                    n: r[3 * i] as i64,
                    mean: r[3 * i + 1],
                    std_err: r[3 * i + 2],
                    ..l.clone()
                })
                .collect();
            Ok(LogLikelihood::pooled(&parts)?)
        })
        .collect()
}

/// Validation examples the Parzen bandwidth is chosen on (Goodfellow et al. 2014).
const PARZEN_VALIDATION: i64 = 1000;

/// The Parzen-window log-likelihood of the test split under `n` model samples, with the
/// protocol of Goodfellow et al. 2014's code: σ chosen on 1,000 validation examples from the
/// grid 10^-1 … 10^0 (10 points; 10^-2 … 10^0 in 21 points for non-image data), mean ±
/// standard error over the test examples; real-valued data only.
fn eval_parzen(
    model: &dyn gm_core::model::Model,
    data: &gm_core::data::Dataset,
    cfg: &RunConfig,
    ctx: &RecordContext,
    n: i64,
) -> Result<ResultRecord> {
    if data.binary {
        bail!(
            "--parzen: the Parzen protocol is for real-valued data, and {} is binary here \
             (binarization {}); train on real-valued data (no data.binarize)",
            data.name,
            data.binarization
        );
    }
    let grid = if data.is_image {
        gm_eval::parzen::log_grid(0.1, 1.0, 10)?
    } else {
        gm_eval::parzen::log_grid(0.01, 1.0, 21)?
    };
    seed_all(derive_seed(cfg.eval.seed, &[stream::EVAL, stream::VALID]));
    let start = Instant::now();
    let samples = draw_samples(model, n)?;
    let valid = data.valid.x_evenly_spaced(Some(PARZEN_VALIDATION));
    let test = data.test.x_evenly_spaced(cfg.eval.limit);
    tracing::info!(
        "Parzen window: {n} samples, σ chosen on {} validation examples, {} test examples",
        valid.size()[0],
        test.size()[0]
    );
    let ll = gm_eval::parzen::parzen_log_likelihood(
        &samples,
        &valid,
        &test,
        &grid,
        &Default::default(),
    )?;
    Ok(ctx.log_likelihood(&ll, start.elapsed().as_secs_f64()))
}

/// `n` samples of `model`, `[n, ...]`, drawn 1,000 at a time.
fn draw_samples(model: &dyn gm_core::model::Model, n: i64) -> Result<tch::Tensor> {
    let mut parts = Vec::new();
    let mut done = 0;
    while done < n {
        let m = (n - done).min(1000);
        parts.push(tch::no_grad(|| model.sample(m))?);
        done += m;
    }
    Ok(tch::Tensor::cat(&parts, 0))
}

/// The samples of the sample-quality metrics, `[n, ...]` with `n` = `--samples` (at most the
/// test split's size), and a note of how they were drawn. On several processes each rank
/// draws its shard (its own seed) and every rank gets them all.
fn draw_quality_samples(
    model: &dyn gm_core::model::Model,
    data: &gm_core::data::Dataset,
    cfg: &RunConfig,
    a: &EvalArgs,
) -> Result<(tch::Tensor, String)> {
    let n = a.samples.min(data.test.len());
    let (rank, world) = (dist::rank(), dist::world());
    let start = Instant::now();
    let mut shape = vec![n];
    shape.extend_from_slice(&data.shape);
    let (samples, how) = if world > 1 && n >= world as i64 {
        seed_all(derive_seed(
            cfg.eval.seed,
            &[stream::EVAL, stream::SAMPLE, rank as u64],
        ));
        let shard = dist::Shard::of(n, rank, world);
        let mine = draw_samples(model, shard.len)?;
        (
            dist::gather_tensor_rows(&mine, n)?,
            format!(", {world} processes"),
        )
    } else {
        seed_all(derive_seed(cfg.eval.seed, &[stream::EVAL, stream::SAMPLE]));
        (draw_samples(model, n)?, String::new())
    };
    let note = format!("Model::sample, {:.1}s{how}", start.elapsed().as_secs_f64());
    Ok((samples.reshape(shape.as_slice()), note))
}

/// The samples whose values are all finite, and `note` saying how many were left out (a
/// sampler that overflowed; the metrics then describe the finite ones only).
fn finite_samples(model: &str, samples: tch::Tensor, note: String) -> (tch::Tensor, String) {
    let n = samples.size()[0];
    let ok = samples.reshape([n, -1]).isfinite().all_dim(1, false);
    let bad = n - ok.sum(tch::Kind::Int64).int64_value(&[]);
    if bad == 0 {
        return (samples, note);
    }
    tracing::warn!(
        "{model}: {bad} of {n} samples are not finite (NaN or ±inf) and are left out of the sample-quality metrics"
    );
    let keep = ok.nonzero().squeeze_dim(1);
    let note = format!("{note}; {bad} of {n} samples not finite, left out");
    (samples.index_select(0, &keep), note)
}

/// Sample-quality metrics and their test-split floors; writes `figures/nn-grid.png`. Like
/// is compared with like: on binary data the training reference is binarized as the model
/// saw it, the samples are 0/1 draws and the feature network is the one trained on the
/// data's representation.
fn eval_quality(
    model: &dyn gm_core::model::Model,
    data: &gm_core::data::Dataset,
    cfg: &RunConfig,
    ctx: &RecordContext,
    a: &EvalArgs,
    samples: tch::Tensor,
    note: String,
) -> Result<Vec<ResultRecord>> {
    let device = model.device();
    let net = match gm_eval::features::feature_dataset(&cfg.data.dataset) {
        Some(_) => Some(FeatureNet::load_or_train(
            &cfg.data.dataset,
            device,
            &FeatureOptions {
                representation: Representation::of(data.binarization),
                data: gm_core::data::DataOptions {
                    data_dir: cfg.data.options.data_dir.clone(),
                    verify: cfg.data.options.verify,
                    ..Default::default()
                },
                ..Default::default()
            },
        )?),
        None => {
            tracing::info!(
                "no feature network for {}: only the pixel-space copy check",
                cfg.data.dataset
            );
            None
        }
    };
    let (mut samples, note) = finite_samples(model.name(), samples, note);
    let n = samples.size()[0];
    let samples_are = if !data.binary {
        "the model's samples (grey values)"
    } else if gm_eval::assess::is_binary(&samples) {
        "the model's own 0/1 draws"
    } else {
        // The model's distribution over binary data: a Bernoulli draw of its means.
        samples = samples.clamp(0.0, 1.0).bernoulli();
        "Bernoulli draws of the model's means"
    };
    // The training reference as the model saw it (one Bernoulli draw under dynamic binarization).
    let train_x = data.train_inputs(0);
    tracing::info!(
        "sample quality of {n} samples ({samples_are}; {note}) against {} training / test images ({})",
        cfg.data.dataset,
        data.binarization
    );
    let out = assess(
        ctx,
        &Inputs {
            samples: &samples,
            train: &train_x,
            test: &data.test.x,
            test_labels: data.test.y.as_ref(),
            net: net.as_ref(),
            k: a.pr_k,
            chunk: 512,
            samples_note: note,
            samples_are: samples_are.into(),
            seed: cfg.eval.seed,
        },
    )?;
    let grid_path = a.run_dir.join("figures").join("nn-grid.png");
    save_grid(
        &out.grid,
        &grid_path,
        &GridOptions {
            per_row: out.grid_per_row,
            ..Default::default()
        },
    )?;
    tracing::info!(
        "{}: sample | nearest training image in pixels{}; {} of {n} samples flagged as near-copies",
        grid_path.display(),
        if net.is_some() { " | in features" } else { "" },
        out.copy.flagged.len()
    );
    Ok(out.records)
}

pub fn report(a: ReportArgs) -> Result<()> {
    let runs = a
        .run_dirs
        .iter()
        .map(|d| gm_eval::report::load_run(d))
        .collect::<gm_core::Result<Vec<_>>>()?;
    let html = gm_eval::report::render(
        &runs,
        &gm_eval::report::ReportOptions {
            title: a.title.clone(),
            force: a.force,
        },
    )?;
    atomic_write(&a.out, html.as_bytes())?;
    println!("report: {}", a.out.display());
    if a.screenshot {
        let png = a.out.with_extension("png");
        // Headless Chromium shoots the window only: make it as tall as the page is likely to be.
        let records: usize = runs.iter().map(|r| r.results.len()).sum();
        let height = (700 + 80 * records + 1100 * runs.len()).min(16_000) as u32;
        crate::screenshot::screenshot(&a.out, &png, 1280, height)?;
        println!("screenshot: {}", png.display());
    }
    Ok(())
}

pub fn list() -> Result<()> {
    println!("models:");
    for e in run::registry().entries() {
        println!("  {:<20} {:<14} {}", e.name, e.family, e.description);
    }
    println!("datasets:");
    for d in gm_core::data::registry() {
        let how = if d.needs_download {
            "download"
        } else {
            "synthetic"
        };
        println!("  {:<20} {:<14} {}", d.name, how, d.description);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::finite_samples;
    use tch::{Kind, Tensor};

    /// Rows with a NaN or an infinity leave; the note counts them; finite rows stay in order.
    #[test]
    fn non_finite_samples_are_left_out_and_counted() {
        let x = Tensor::arange(16, (Kind::Float, tch::Device::Cpu)).view([4, 1, 2, 2]);
        let _ = x.get(1).get(0).get(0).get(1).fill_(f64::NAN);
        let _ = x.get(3).get(0).get(1).get(0).fill_(f64::NEG_INFINITY);
        let (kept, note) = finite_samples("m", x.copy(), "drawn".into());
        assert_eq!(kept.size(), [2, 1, 2, 2]);
        assert!(kept.equal(&Tensor::cat(
            &[x.get(0).unsqueeze(0), x.get(2).unsqueeze(0)],
            0
        )));
        assert_eq!(note, "drawn; 2 of 4 samples not finite, left out");
        let (all, same) = finite_samples("m", kept.copy(), "drawn".into());
        assert_eq!((all.size()[0], same.as_str()), (2, "drawn"));
    }
}
