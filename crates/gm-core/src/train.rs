//! The training loop shared by every model.
//!
//! [`fit`] runs epochs of seeded, shuffled batches through [`Model::train_step`], with the
//! learning-rate schedule and gradient clipping of the run config, a progress bar when
//! stderr is a terminal (`tracing` lines otherwise), validation each epoch, per-epoch
//! metrics appended to `metrics.jsonl` (with the model's [`Model::epoch_checks`] of its
//! samples, when it has any), sample grids under `samples/` (drawn by
//! [`Model::progress_samples`]), and checkpoints
//! (every N epochs, every N steps if asked, at the end, and when Ctrl-C sets
//! [`interrupt_flag`]).
//!
//! Every step reseeds libtorch from `(seed, step)` and every epoch's shuffle is a function
//! of `(seed, epoch)`, so a run resumed from any checkpoint continues exactly as if it had
//! never stopped. A NaN or infinite metric stops the run with [`Error::NonFinite`]; no
//! checkpoint is written after it, so the last good one stays current.
//!
//! With `train.best_metric` the epoch with the best value of that validation metric is kept
//! as `checkpoints/best` (and recorded in the progress, so a resumed run knows it); with
//! `train.patience` the run stops once that many epochs pass without a new best.
//!
//! On several processes ([`crate::dist`]) every rank runs this loop on its shard of each
//! global batch (the config's batch size stays the global one, so results do not depend on
//! the process count): parameters are copied from rank 0 at the start, gradients averaged
//! in every update, the metrics summed over the ranks, stopping (Ctrl-C, budget, patience) agreed on,
//! and rank 0 alone validates and writes metrics, samples and checkpoints (which therefore
//! do not depend on the number of processes). After each epoch the ranks check that their
//! parameters are still identical.
//!
//! ```no_run
//! # fn demo(model: &mut dyn gm_core::model::Model, data: &gm_core::data::Dataset,
//! #         cfg: &gm_core::config::RunConfig) -> gm_core::Result<()> {
//! let summary = gm_core::train::fit(model, data, cfg, std::path::Path::new("runs/x"), None)?;
//! println!("{} steps in {:.1}s", summary.steps, summary.seconds);
//! # Ok(()) }
//! ```

use crate::checkpoint::{self, Best, Progress};
use crate::config::{BestMode, RunConfig};
use crate::data::{Batch, Batches, Dataset, Split};
use crate::device::{derive_seed, seed_all};
use crate::dist::{self, Shard};
use crate::image::{save_grid, scatter, GridOptions};
use crate::model::{Metrics, Model};
use crate::{Error, Result};
use serde::Serialize;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use tch::{Kind, Tensor};

/// Purposes mixed into derived seeds, so that streams never collide.
pub mod stream {
    /// Per-step training randomness.
    pub const STEP: u64 = 1;
    /// Validation.
    pub const VALID: u64 = 2;
    /// Sample grids.
    pub const SAMPLE: u64 = 3;
    /// Evaluation (`gm eval`).
    pub const EVAL: u64 = 4;
    /// The model's end-of-epoch checks ([`crate::model::Model::epoch_checks`]).
    pub const CHECKS: u64 = 5;
}

static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// Set it (e.g. from a Ctrl-C handler) to make [`fit`] checkpoint and stop after the
/// current step.
pub fn interrupt_flag() -> &'static AtomicBool {
    &INTERRUPT
}

/// What a finished (or stopped) run reached.
#[derive(Clone, Debug, Serialize)]
pub struct FitSummary {
    /// Epochs completed.
    pub epochs: usize,
    /// Updates made.
    pub steps: u64,
    /// Training time, seconds (including earlier sessions of a resumed run).
    pub seconds: f64,
    /// Mean training metrics of the last epoch.
    pub train: Vec<(String, f64)>,
    /// Validation metrics after the last epoch.
    pub valid: Vec<(String, f64)>,
    /// The final checkpoint.
    pub checkpoint: PathBuf,
    /// Whether the run stopped early on `train.max_minutes`.
    pub stopped_on_budget: bool,
    /// The best epoch of `train.best_metric` (its checkpoint is `checkpoints/best`).
    pub best: Option<Best>,
    /// Whether the run stopped on `train.patience` (no new best for that many epochs).
    pub stopped_early: bool,
}

#[derive(Serialize)]
struct EpochRecord<'a> {
    epoch: usize,
    step: u64,
    lr: f64,
    seconds: f64,
    examples_per_sec: f64,
    train: serde_json::Map<String, serde_json::Value>,
    valid: &'a serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    checks: serde_json::Map<String, serde_json::Value>,
}

fn to_map(v: &[(String, f64)]) -> serde_json::Map<String, serde_json::Value> {
    v.iter()
        .map(|(k, x)| (k.clone(), serde_json::json!(x)))
        .collect()
}

/// Per-example means of `model.eval_metrics` over a split (inputs and labels) in batches of
/// `batch`.
pub fn evaluate(model: &dyn Model, split: &Split, batch: i64) -> Result<Vec<(String, f64)>> {
    let whole = Batch::new(&split.x, split.y.as_ref());
    let n = whole.len();
    let mut names: Vec<&'static str> = Vec::new();
    let mut sum: Option<Tensor> = None;
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let m = tch::no_grad(|| model.eval_metrics(&whole.narrow(start, len)))?;
        if names.is_empty() {
            names = m.iter().map(|(k, _)| *k).collect();
        }
        let v = Tensor::stack(
            &m.iter()
                .map(|(_, t)| t.to_kind(Kind::Double))
                .collect::<Vec<_>>(),
            0,
        ) * len as f64;
        sum = Some(match sum {
            None => v,
            Some(s) => s + v,
        });
        start += len;
    }
    let Some(sum) = sum else {
        return Ok(Vec::new());
    };
    let values = Vec::<f64>::try_from(sum / n as f64)?;
    Ok(names.into_iter().map(String::from).zip(values).collect())
}

/// Draws `n` samples and saves them as a picture: an image grid for image data, a scatter
/// plot for 2-D data.
pub fn save_samples(model: &dyn Model, data: &Dataset, path: &Path, n: i64) -> Result<()> {
    let s = tch::no_grad(|| model.sample(n))?;
    save_picture(&s, data, path)
}

/// Saves samples `s` `[n, ...]` as [`save_samples`] does (nothing for data that is neither
/// images nor 2-D).
pub fn save_picture(s: &Tensor, data: &Dataset, path: &Path) -> Result<()> {
    let n = s.size()[0];
    if data.is_image {
        let mut shape = vec![n];
        shape.extend_from_slice(&data.shape);
        let per_row = (n as f64).sqrt().ceil() as i64;
        save_grid(
            &s.reshape(shape.as_slice()),
            path,
            &GridOptions {
                per_row,
                ..Default::default()
            },
        )
    } else if data.shape == [2] {
        let img = scatter(s, 256, (-4.0, 4.0))?;
        save_grid(
            &img.unsqueeze(0),
            path,
            &GridOptions {
                per_row: 1,
                padding: 0,
                scale: 1,
                ..Default::default()
            },
        )
    } else {
        Ok(())
    }
}

/// Keeps the records of `metrics.jsonl` whose epoch is ≤ `epochs_done` (after a resume, the
/// epochs that will be re-run must not appear twice).
pub fn truncate_metrics(path: &Path, epochs_done: usize) -> Result<()> {
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut kept = Vec::new();
    for line in std::io::BufReader::new(f).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let epoch = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("epoch").and_then(|e| e.as_u64()));
        if matches!(epoch, Some(e) if e as usize <= epochs_done) {
            kept.extend_from_slice(line.as_bytes());
            kept.push(b'\n');
        }
    }
    checkpoint::atomic_write(path, &kept)
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io(path, e))?;
    f.sync_data().map_err(|e| Error::io(path, e))
}

fn check_finite(
    names: &[&'static str],
    values: &[f64],
    epoch: usize,
    step: u64,
    ckpt: &Option<PathBuf>,
) -> Result<()> {
    for (name, v) in names.iter().zip(values) {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                metric: name.to_string(),
                value: *v,
                epoch,
                step,
                checkpoint: ckpt.clone(),
            });
        }
    }
    Ok(())
}

/// How many steps a run makes: per epoch, in all, and the epochs that takes.
struct Plan {
    steps_per_epoch: u64,
    total_steps: u64,
    epochs: usize,
}

fn plan_steps(cfg: &RunConfig, n_train: i64) -> Result<Plan> {
    let t = &cfg.train;
    let bs = cfg.data.batch_size;
    let steps_per_epoch = if cfg.data.drop_last {
        n_train / bs
    } else {
        (n_train + bs - 1) / bs
    } as u64;
    if steps_per_epoch == 0 {
        return Err(Error::config(
            "data.batch_size",
            bs,
            format!("at most the {n_train} training examples when drop_last is set"),
        ));
    }
    let by_epochs = steps_per_epoch * t.epochs as u64;
    let total_steps = match t.max_steps {
        Some(m) if t.epochs == 0 => m,
        Some(m) => m.min(by_epochs),
        None => by_epochs,
    };
    Ok(Plan {
        steps_per_epoch,
        total_steps,
        epochs: total_steps.div_ceil(steps_per_epoch) as usize,
    })
}

/// Per-example metric values summed over some examples (a logging window, an epoch).
#[derive(Default)]
struct Sums {
    sum: Option<Tensor>,
    examples: i64,
}

impl Sums {
    fn add(&mut self, v: Tensor, examples: i64) {
        self.sum = Some(match self.sum.take() {
            None => v,
            Some(s) => s + v,
        });
        self.examples += examples;
    }
    /// Moves the window's sums into `self`; returns the window's means (if it had steps).
    /// On several processes the window holds this rank's sums and the global batches'
    /// example counts: the sums are added over the ranks here (every rank absorbs at the
    /// same steps), not at every step.
    fn absorb(&mut self, window: &mut Sums) -> Result<Option<Vec<f64>>> {
        let Some(w) = window.sum.take() else {
            return Ok(None);
        };
        let w = dist::sum(&w)?;
        let means = Vec::<f64>::try_from(&w / window.examples as f64)?;
        self.add(w, window.examples);
        window.examples = 0;
        Ok(Some(means))
    }
    fn means(&self) -> Result<Vec<f64>> {
        match &self.sum {
            Some(s) => Ok(Vec::<f64>::try_from(s / self.examples.max(1) as f64)?),
            None => Ok(Vec::new()),
        }
    }
}

/// The metric values of a step, each times the batch size.
fn weighted(m: &Metrics, nb: i64) -> Tensor {
    tch::no_grad(|| {
        Tensor::stack(
            &m.iter()
                .map(|(_, t)| t.detach().to_kind(Kind::Double))
                .collect::<Vec<_>>(),
            0,
        ) * nb as f64
    })
}

fn progress_bar(total_steps: u64, at: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(total_steps);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b.set_position(at);
    Some(b)
}

/// Everything [`fit`] carries from step to step.
struct Session<'a> {
    data: &'a Dataset,
    cfg: &'a RunConfig,
    run_dir: &'a Path,
    plan: Plan,
    progress: Progress,
    metrics_path: PathBuf,
    bar: Option<indicatif::ProgressBar>,
    valid: Split,
    observed: Option<Tensor>,
    last_ckpt: Option<PathBuf>,
    train_means: Vec<(String, f64)>,
    valid_means: Vec<(String, f64)>,
    checks: Vec<(String, f64)>,
    started: Instant,
    elapsed_before: f64,
    lr: f64,
    config_text: String,
}

/// What one epoch's record needs from its training part.
struct EpochStats {
    start: Instant,
    steps: u64,
}

impl<'a> Session<'a> {
    fn start(
        model: &mut dyn Model,
        data: &'a Dataset,
        cfg: &'a RunConfig,
        run_dir: &'a Path,
        resume: Option<Progress>,
    ) -> Result<Session<'a>> {
        let metrics_path = run_dir.join("metrics.jsonl");
        let progress = resume.unwrap_or(Progress {
            seed: cfg.seed,
            ..Default::default()
        });
        if dist::is_main() {
            drop_abandoned_best(run_dir, &progress)?;
        }
        if dist::is_main() {
            std::fs::create_dir_all(run_dir.join("samples")).map_err(|e| Error::io(run_dir, e))?;
            truncate_metrics(&metrics_path, progress.epoch)?;
        }
        let plan = plan_steps(cfg, data.train.len())?;
        start_ranks(model, cfg, data.train.len())?;
        for (_, opt) in model.optimizers() {
            opt.set_clip_grad_norm(cfg.train.clip_grad_norm);
        }
        let valid = data.valid.evenly_spaced(cfg.train.valid_limit);
        let observed = data.observed_labels(cfg.data.options.labelled, cfg.seed)?;
        let bar = progress_bar(plan.total_steps, progress.step).filter(|_| dist::is_main());
        Ok(Session {
            data,
            cfg,
            run_dir,
            plan,
            elapsed_before: progress.elapsed_secs,
            progress,
            metrics_path,
            bar,
            valid,
            observed,
            last_ckpt: checkpoint::latest(run_dir)?,
            train_means: Vec::new(),
            valid_means: Vec::new(),
            checks: Vec::new(),
            started: Instant::now(),
            lr: cfg.optim.lr,
            config_text: cfg.to_toml(),
        })
    }

    fn more_to_do(&self) -> bool {
        !last_planned(&self.progress, self.plan.epochs, self.plan.total_steps)
            && !self.out_of_patience()
    }

    /// Whether `train.patience` epochs have passed since the best one.
    fn out_of_patience(&self) -> bool {
        match (self.cfg.train.patience, &self.progress.best) {
            (Some(p), Some(b)) => self.progress.epoch >= b.epoch + p,
            _ => false,
        }
    }

    /// After validation: a new best value of `train.best_metric` is recorded in the
    /// progress and its model saved as the run's best checkpoint.
    fn keep_best(&mut self, model: &dyn Model) -> Result<()> {
        let t = &self.cfg.train;
        let Some(metric) = &t.best_metric else {
            return Ok(());
        };
        if !dist::is_main() {
            return Ok(());
        }
        let value = match self.valid_means.iter().find(|(k, _)| k == metric) {
            Some((_, v)) => *v,
            None if self.valid.is_empty() => {
                let d = &self.cfg.data.dataset;
                let why = format!("a validation split to measure it on ({d} has none)");
                return Err(Error::config("train.best_metric", metric, why));
            }
            None => {
                let names: Vec<&str> = self.valid_means.iter().map(|(k, _)| k.as_str()).collect();
                let why = format!("one of the validation metrics [{}]", names.join(", "));
                return Err(Error::config("train.best_metric", metric, why));
            }
        };
        let better = self
            .progress
            .best
            .as_ref()
            .is_none_or(|b| match t.best_mode {
                BestMode::Min => value < b.value,
                BestMode::Max => value > b.value,
            });
        if better {
            self.progress.best = Some(Best {
                metric: metric.clone(),
                value,
                epoch: self.progress.epoch,
            });
            let extra = [("config.toml", self.config_text.as_bytes())];
            checkpoint::save_best(self.run_dir, model, &self.progress, &extra)?;
        }
        Ok(())
    }

    fn interrupted(&self, epoch: usize) -> Error {
        Error::Interrupted {
            epoch,
            step: self.progress.step,
            run_dir: self.run_dir.to_path_buf(),
        }
    }

    fn checkpoint(&mut self, model: &dyn Model) -> Result<()> {
        if !dist::is_main() {
            self.last_ckpt = Some(checkpoint::path_for(self.run_dir, self.progress.step));
            return Ok(());
        }
        self.last_ckpt = Some(checkpoint::save_with(
            self.run_dir,
            model,
            &self.progress,
            &[("config.toml", self.config_text.as_bytes())],
        )?);
        Ok(())
    }

    /// The training part of an epoch: its batches (those left of it after a mid-epoch
    /// resume), logging, step checkpoints, Ctrl-C.
    fn run_epoch(&mut self, model: &mut dyn Model) -> Result<EpochStats> {
        let epoch = self.progress.epoch;
        let stats = EpochStats {
            start: Instant::now(),
            steps: self.progress.step,
        };
        if let Some(b) = &self.bar {
            b.set_prefix(format!("{}/{}", epoch + 1, self.plan.epochs));
        }
        let x_epoch = self.data.train_inputs(epoch);
        let (cfg, seed) = (self.cfg, self.cfg.seed);
        let batches = Batches::of_split(
            &self.data.train,
            &x_epoch,
            self.observed.as_ref(),
            cfg.data.batch_size,
            true,
            cfg.data.drop_last,
            seed,
            epoch,
        )
        .skip(self.progress.batch_in_epoch);
        let mut names: Vec<&'static str> = Vec::new();
        let (mut epoch_sums, mut window) = (Sums::default(), Sums::default());
        for batch in batches {
            if self.progress.step >= self.plan.total_steps {
                break;
            }
            let shard = Shard::of(batch.len(), dist::rank(), dist::world());
            let local = batch.narrow(shard.offset, shard.len);
            let m = dist::with_shard(shard, || self.train_batch(model, &local))?;
            if names.is_empty() {
                names = m.iter().map(|(k, _)| *k).collect();
            }
            window.add(weighted(&m, shard.len), batch.len());
            self.end_of_step(model, &names, &mut epoch_sums, &mut window)?;
        }
        epoch_sums.absorb(&mut window)?;
        let values = epoch_sums.means()?;
        check_finite(&names, &values, epoch, self.progress.step, &self.last_ckpt)?;
        self.train_means = names.iter().map(|s| s.to_string()).zip(values).collect();
        self.progress.epoch += 1;
        self.progress.batch_in_epoch = 0;
        Ok(EpochStats {
            steps: self.progress.step - stats.steps,
            ..stats
        })
    }

    /// One update, reseeded from `(seed, step)`, at the scheduled learning rate.
    fn train_batch(&mut self, model: &mut dyn Model, batch: &Batch) -> Result<Metrics> {
        let step = self.progress.step;
        seed_all(derive_seed(self.cfg.seed, &[stream::STEP, step]));
        self.lr = self
            .cfg
            .lr_at(step, self.plan.total_steps, self.plan.steps_per_epoch);
        for (_, opt) in model.optimizers() {
            opt.set_lr(self.lr);
        }
        let m = model.train_step(batch)?;
        self.progress.step += 1;
        self.progress.batch_in_epoch += 1;
        Ok(m)
    }

    /// After a step: at a logging point, the window's means (checked finite, shown); a step
    /// checkpoint when due or on Ctrl-C (which then stops the run).
    fn end_of_step(
        &mut self,
        model: &dyn Model,
        names: &[&'static str],
        epoch_sums: &mut Sums,
        window: &mut Sums,
    ) -> Result<()> {
        let t = &self.cfg.train;
        let step = self.progress.step;
        let step_ckpt = matches!(t.checkpoint_every_steps, Some(k) if step.is_multiple_of(k));
        let due = step.is_multiple_of(t.log_every) || step_ckpt;
        // On several processes Ctrl-C is agreed on at logging points only (one small
        // all-reduce there instead of one per step).
        let interrupted = match dist::world() {
            1 => INTERRUPT.load(Ordering::SeqCst),
            _ if due => dist::any(INTERRUPT.load(Ordering::SeqCst))?,
            _ => false,
        };
        if !(due || interrupted) {
            return Ok(());
        }
        let values = epoch_sums.absorb(window)?.expect("window has a step");
        check_finite(names, &values, self.progress.epoch, step, &self.last_ckpt)?;
        if let Some(b) = &self.bar {
            b.set_position(step);
            b.set_message(format!("{} {:.4} lr {:.2e}", names[0], values[0], self.lr));
        }
        if interrupted || step_ckpt {
            self.progress.elapsed_secs = self.elapsed_before + self.started.elapsed().as_secs_f64();
            self.checkpoint(model)?;
            if interrupted {
                if let Some(b) = &self.bar {
                    b.abandon();
                }
                return Err(self.interrupted(self.progress.epoch));
            }
        }
        Ok(())
    }

    /// Validation after epoch `epoch` (when asked and there is a validation split).
    fn validate(&mut self, model: &dyn Model, epoch: usize) -> Result<()> {
        if !self.cfg.train.validate || self.valid.is_empty() || !dist::is_main() {
            return Ok(());
        }
        seed_all(derive_seed(self.cfg.seed, &[stream::VALID, epoch as u64]));
        let batch = self.cfg.data.eval_batch_size;
        self.valid_means = dist::alone(|| evaluate(model, &self.valid, batch))?;
        if let Some((name, value)) = self.valid_means.iter().find(|(_, v)| !v.is_finite()) {
            return Err(Error::NonFinite {
                metric: format!("validation {name}"),
                value: *value,
                epoch,
                step: self.progress.step,
                checkpoint: self.last_ckpt.clone(),
            });
        }
        Ok(())
    }

    /// The model's checks of its samples after epoch `epoch`, reseeded from `(seed, epoch)`.
    fn epoch_checks(&mut self, model: &mut dyn Model, epoch: usize) -> Result<()> {
        if !dist::is_main() {
            return Ok(());
        }
        seed_all(derive_seed(self.cfg.seed, &[stream::CHECKS, epoch as u64]));
        let checks = dist::alone(|| tch::no_grad(|| model.epoch_checks()))?;
        self.checks = checks
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        Ok(())
    }

    /// Appends the epoch's line to `metrics.jsonl` and logs it.
    fn write_epoch_record(&mut self, stats: &EpochStats) -> Result<()> {
        let secs = stats.start.elapsed().as_secs_f64();
        self.progress.elapsed_secs = self.elapsed_before + self.started.elapsed().as_secs_f64();
        if !dist::is_main() {
            return Ok(());
        }
        let bs = self.cfg.data.batch_size;
        let record = EpochRecord {
            epoch: self.progress.epoch,
            step: self.progress.step,
            lr: self.lr,
            seconds: self.progress.elapsed_secs,
            examples_per_sec: (stats.steps as f64 * bs as f64) / secs.max(1e-9),
            train: to_map(&self.train_means),
            valid: &to_map(&self.valid_means),
            checks: to_map(&self.checks),
        };
        append_line(
            &self.metrics_path,
            &serde_json::to_string(&record).expect("record serializes"),
        )?;
        let fmt = |v: &[(String, f64)]| {
            v.iter()
                .map(|(k, x)| format!("{k} {x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let checks = if self.checks.is_empty() {
            String::new()
        } else {
            format!(" checks [{}]", fmt(&self.checks))
        };
        let line = format!(
            "epoch {}/{}: train [{}] valid [{}]{checks} ({secs:.1}s, {:.0} examples/s)",
            self.progress.epoch,
            self.plan.epochs,
            fmt(&self.train_means),
            fmt(&self.valid_means),
            record.examples_per_sec
        );
        match &self.bar {
            Some(b) => b.println(line),
            None => tracing::info!("{line}"),
        }
        Ok(())
    }

    /// The sample grid and the checkpoint of an epoch's end, when due (always after the
    /// last epoch of this session).
    fn end_of_epoch_files(&mut self, model: &dyn Model, last: bool) -> Result<()> {
        let t = &self.cfg.train;
        let epoch = self.progress.epoch;
        let due = (t.sample_every > 0 && epoch.is_multiple_of(t.sample_every)) || last;
        if due && dist::is_main() {
            seed_all(derive_seed(self.cfg.seed, &[stream::SAMPLE, epoch as u64]));
            let path = self
                .run_dir
                .join("samples")
                .join(format!("epoch-{epoch:04}.png"));
            let s = dist::alone(|| tch::no_grad(|| model.progress_samples(t.n_samples)))?;
            save_picture(&s, self.data, &path)?;
        }
        if epoch.is_multiple_of(t.checkpoint_every) || last {
            self.checkpoint(model)?;
        }
        Ok(())
    }

    fn finish(
        mut self,
        model: &dyn Model,
        stopped_on_budget: bool,
        stopped_early: bool,
    ) -> Result<FitSummary> {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        if self.last_ckpt.is_none() {
            self.checkpoint(model)?;
        }
        Ok(FitSummary {
            epochs: self.progress.epoch,
            steps: self.progress.step,
            seconds: self.progress.elapsed_secs,
            train: self.train_means,
            valid: self.valid_means,
            checkpoint: self.last_ckpt.expect("written above"),
            stopped_on_budget,
            best: self.progress.best,
            stopped_early,
        })
    }
}

/// Trains `model` on `data` (already on the model's device) as `cfg` says, writing into
/// `run_dir`. `resume` continues from a restored checkpoint's progress.
pub fn fit(
    model: &mut dyn Model,
    data: &Dataset,
    cfg: &RunConfig,
    run_dir: &Path,
    resume: Option<Progress>,
) -> Result<FitSummary> {
    let mut s = Session::start(model, data, cfg, run_dir, resume)?;
    let (mut stopped_on_budget, mut stopped_early) = (false, s.out_of_patience());
    while s.more_to_do() {
        let epoch = s.progress.epoch;
        let stats = s.run_epoch(model)?;
        s.validate(model, epoch)?;
        s.epoch_checks(model, epoch)?;
        s.write_epoch_record(&stats)?;
        s.keep_best(model)?;
        let early = dist::any(s.out_of_patience())?;
        // The budget counts this session only: a resumed run gets a fresh one.
        let over_budget = dist::any(
            cfg.train
                .max_minutes
                .is_some_and(|m| s.started.elapsed().as_secs_f64() >= m * 60.0),
        )?;
        dist::check_in_step("the trainable parameters", &variables(model, true))?;
        s.end_of_epoch_files(model, !s.more_to_do() || over_budget || early)?;
        if dist::any(INTERRUPT.load(Ordering::SeqCst))? {
            return Err(s.interrupted(s.progress.epoch));
        }
        if early {
            // Rank 0 alone tracks the best epoch; the others stop on its word.
            if let Some(b) = &s.progress.best {
                tracing::info!(
                    "no better validation {} than {:.4} (epoch {}) for {} epochs: stopped early",
                    b.metric,
                    b.value,
                    b.epoch,
                    cfg.train.patience.unwrap_or_default()
                );
            }
            stopped_early = true;
            break;
        }
        if over_budget && s.more_to_do() {
            tracing::info!(
                "time budget of {:.1} minutes reached after epoch {}; resume with --resume to continue",
                cfg.train.max_minutes.unwrap_or_default(),
                s.progress.epoch
            );
            stopped_on_budget = true;
            break;
        }
    }
    s.finish(model, stopped_on_budget, stopped_early)
}

/// The model's variables (only the trainable ones if asked), in a fixed order.
fn variables(model: &dyn Model, trainable_only: bool) -> Vec<Tensor> {
    let mut named: Vec<(String, Tensor)> = Vec::new();
    for (store, vs) in model.var_stores() {
        for (name, t) in vs.variables() {
            if t.requires_grad() || !trainable_only {
                named.push((format!("{store}.{name}"), t));
            }
        }
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named.into_iter().map(|(_, t)| t).collect()
}

/// On several processes: a global batch each rank can take a share of, and every rank
/// starting from rank 0's parameters.
fn start_ranks(model: &dyn Model, cfg: &RunConfig, n_train: i64) -> Result<()> {
    let world = dist::world() as i64;
    if world == 1 {
        return Ok(());
    }
    let bs = cfg.data.batch_size;
    let last = if cfg.data.drop_last { bs } else { n_train % bs };
    if bs.min(if last == 0 { bs } else { last }) < world {
        return Err(Error::config(
            "data.batch_size",
            bs,
            format!(
                "batches (the last of an epoch too, {n_train} examples without drop_last) of                  at least the {world} processes, each taking a share of every batch"
            ),
        ));
    }
    dist::broadcast_from_main(&variables(model, false))
}

/// A best checkpoint written after the step a run resumes from (`--from` an older one, or
/// the last checkpoint before a crash) belongs to a continuation that is being replayed or
/// abandoned: it is removed, and the progress's best so far stands until a better epoch.
fn drop_abandoned_best(run_dir: &Path, progress: &Progress) -> Result<()> {
    let Some(dir) = checkpoint::best(run_dir)? else {
        return Ok(());
    };
    if checkpoint::read_progress(&dir)?.step <= progress.step {
        return Ok(());
    }
    tracing::warn!(
        "{} comes after step {} this run resumes from: removed (a better epoch saves a new one)",
        dir.display(),
        progress.step
    );
    checkpoint::remove_best(run_dir)
}

fn last_planned(p: &Progress, epochs: usize, total_steps: u64) -> bool {
    p.epoch >= epochs || p.step >= total_steps
}
