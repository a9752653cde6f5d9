//! The training loop shared by every model.
//!
//! [`fit`] runs epochs of seeded, shuffled batches through [`Model::train_step`], with the
//! learning-rate schedule and gradient clipping of the run config, a progress bar when
//! stderr is a terminal (`tracing` lines otherwise), validation each epoch, per-epoch
//! metrics appended to `metrics.jsonl`, sample grids under `samples/`, and checkpoints
//! (every N epochs, every N steps if asked, at the end, and when Ctrl-C sets
//! [`interrupt_flag`]).
//!
//! Every step reseeds libtorch from `(seed, step)` and every epoch's shuffle is a function
//! of `(seed, epoch)`, so a run resumed from any checkpoint continues exactly as if it had
//! never stopped. A NaN or infinite metric stops the run with [`Error::NonFinite`]; no
//! checkpoint is written after it, so the last good one stays current.
//!
//! ```no_run
//! # fn demo(model: &mut dyn gm_core::model::Model, data: &gm_core::data::Dataset,
//! #         cfg: &gm_core::config::RunConfig) -> gm_core::Result<()> {
//! let summary = gm_core::train::fit(model, data, cfg, std::path::Path::new("runs/x"), None)?;
//! println!("{} steps in {:.1}s", summary.steps, summary.seconds);
//! # Ok(()) }
//! ```

use crate::checkpoint::{self, Progress};
use crate::config::RunConfig;
use crate::data::{Batch, Batches, Dataset, Split};
use crate::device::{derive_seed, seed_all};
use crate::image::{save_grid, scatter, GridOptions};
use crate::model::Model;
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
        let img = scatter(&s, 256, (-4.0, 4.0))?;
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

/// Trains `model` on `data` (already on the model's device) as `cfg` says, writing into
/// `run_dir`. `resume` continues from a restored checkpoint's progress.
pub fn fit(
    model: &mut dyn Model,
    data: &Dataset,
    cfg: &RunConfig,
    run_dir: &Path,
    resume: Option<Progress>,
) -> Result<FitSummary> {
    let t = &cfg.train;
    let seed = cfg.seed;
    std::fs::create_dir_all(run_dir.join("samples")).map_err(|e| Error::io(run_dir, e))?;
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut progress = resume.unwrap_or(Progress {
        seed,
        ..Default::default()
    });
    truncate_metrics(&metrics_path, progress.epoch)?;

    let n_train = data.train.len();
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
    let total_steps = {
        let by_epochs = steps_per_epoch * t.epochs as u64;
        match t.max_steps {
            Some(m) if t.epochs == 0 => m,
            Some(m) => m.min(by_epochs),
            None => by_epochs,
        }
    };
    let epochs = total_steps.div_ceil(steps_per_epoch) as usize;
    for (_, opt) in model.optimizers() {
        opt.set_clip_grad_norm(t.clip_grad_norm);
    }
    let valid = data.valid.evenly_spaced(t.valid_limit);
    let observed = data.observed_labels(cfg.data.options.labelled, seed)?;

    let bar = if std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total_steps);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_position(progress.step);
        Some(b)
    } else {
        None
    };

    let mut last_ckpt = checkpoint::latest(run_dir)?;
    let mut train_means: Vec<(String, f64)> = Vec::new();
    let mut valid_means: Vec<(String, f64)> = Vec::new();
    let session_start = Instant::now();
    let elapsed_before = progress.elapsed_secs;
    let mut lr = cfg.optim.lr;
    let config_text = cfg.to_toml();
    let mut stopped_on_budget = false;

    while progress.epoch < epochs && progress.step < total_steps {
        let epoch = progress.epoch;
        let epoch_start = Instant::now();
        let steps_at_epoch_start = progress.step;
        if let Some(b) = &bar {
            b.set_prefix(format!("{}/{}", epoch + 1, epochs));
        }
        let x_epoch = data.train_inputs(epoch);
        let batches = Batches::of_split(
            &data.train,
            &x_epoch,
            observed.as_ref(),
            bs,
            true,
            cfg.data.drop_last,
            seed,
            epoch,
        )
        .skip(progress.batch_in_epoch);
        let mut names: Vec<&'static str> = Vec::new();
        let mut epoch_sum: Option<Tensor> = None;
        let mut window_sum: Option<Tensor> = None;
        let mut epoch_examples = 0i64;
        let mut window_examples = 0i64;
        for batch in batches {
            if progress.step >= total_steps {
                break;
            }
            seed_all(derive_seed(seed, &[stream::STEP, progress.step]));
            lr = cfg.lr_at(progress.step, total_steps, steps_per_epoch);
            for (_, opt) in model.optimizers() {
                opt.set_lr(lr);
            }
            let m = model.train_step(&batch)?;
            let nb = batch.len();
            if names.is_empty() {
                names = m.iter().map(|(k, _)| *k).collect();
            }
            let v = tch::no_grad(|| {
                Tensor::stack(
                    &m.iter()
                        .map(|(_, t)| t.detach().to_kind(Kind::Double))
                        .collect::<Vec<_>>(),
                    0,
                ) * nb as f64
            });
            window_sum = Some(match window_sum {
                None => v,
                Some(s) => s + v,
            });
            window_examples += nb;
            progress.step += 1;
            progress.batch_in_epoch += 1;

            let interrupted = INTERRUPT.load(Ordering::SeqCst);
            let step_ckpt =
                matches!(t.checkpoint_every_steps, Some(k) if progress.step.is_multiple_of(k));
            if progress.step.is_multiple_of(t.log_every) || interrupted || step_ckpt {
                let w = window_sum.take().expect("window has a step");
                let values = Vec::<f64>::try_from(&w / window_examples as f64)?;
                check_finite(&names, &values, epoch, progress.step, &last_ckpt)?;
                if let Some(b) = &bar {
                    b.set_position(progress.step);
                    b.set_message(format!("{} {:.4} lr {:.2e}", names[0], values[0], lr));
                }
                epoch_sum = Some(match epoch_sum {
                    None => w,
                    Some(s) => s + w,
                });
                epoch_examples += window_examples;
                window_examples = 0;
                if interrupted || step_ckpt {
                    progress.elapsed_secs = elapsed_before + session_start.elapsed().as_secs_f64();
                    let dir = checkpoint::save_with(
                        run_dir,
                        model,
                        &progress,
                        &[("config.toml", config_text.as_bytes())],
                    )?;
                    last_ckpt = Some(dir);
                    if interrupted {
                        if let Some(b) = &bar {
                            b.abandon();
                        }
                        return Err(Error::Interrupted {
                            epoch,
                            step: progress.step,
                            run_dir: run_dir.to_path_buf(),
                        });
                    }
                }
            }
        }
        if let Some(w) = window_sum.take() {
            epoch_sum = Some(match epoch_sum {
                None => w,
                Some(s) => s + w,
            });
            epoch_examples += window_examples;
        }
        let epoch_steps = progress.step - steps_at_epoch_start;
        let values = match &epoch_sum {
            Some(s) => Vec::<f64>::try_from(s / epoch_examples.max(1) as f64)?,
            None => Vec::new(),
        };
        check_finite(&names, &values, epoch, progress.step, &last_ckpt)?;
        train_means = names.iter().map(|s| s.to_string()).zip(values).collect();
        progress.epoch += 1;
        progress.batch_in_epoch = 0;

        if t.validate && !valid.is_empty() {
            seed_all(derive_seed(seed, &[stream::VALID, epoch as u64]));
            valid_means = evaluate(model, &valid, cfg.data.eval_batch_size)?;
            let vn: Vec<&'static str> = vec!["valid metric"; valid_means.len()];
            let vv: Vec<f64> = valid_means.iter().map(|(_, v)| *v).collect();
            check_finite(&vn, &vv, epoch, progress.step, &last_ckpt).map_err(|e| match e {
                Error::NonFinite {
                    value,
                    epoch,
                    step,
                    checkpoint,
                    ..
                } => Error::NonFinite {
                    metric: format!(
                        "validation {}",
                        valid_means
                            .iter()
                            .find(|(_, v)| !v.is_finite())
                            .map(|(k, _)| k.as_str())
                            .unwrap_or("metric")
                    ),
                    value,
                    epoch,
                    step,
                    checkpoint,
                },
                e => e,
            })?;
        }
        let secs = epoch_start.elapsed().as_secs_f64();
        progress.elapsed_secs = elapsed_before + session_start.elapsed().as_secs_f64();
        let record = EpochRecord {
            epoch: progress.epoch,
            step: progress.step,
            lr,
            seconds: progress.elapsed_secs,
            examples_per_sec: (epoch_steps as f64 * bs as f64) / secs.max(1e-9),
            train: to_map(&train_means),
            valid: &to_map(&valid_means),
        };
        append_line(
            &metrics_path,
            &serde_json::to_string(&record).expect("record serializes"),
        )?;
        let fmt = |v: &[(String, f64)]| {
            v.iter()
                .map(|(k, x)| format!("{k} {x:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let line = format!(
            "epoch {}/{epochs}: train [{}] valid [{}] ({secs:.1}s, {:.0} examples/s)",
            progress.epoch,
            fmt(&train_means),
            fmt(&valid_means),
            record.examples_per_sec
        );
        match &bar {
            Some(b) => b.println(line),
            None => tracing::info!("{line}"),
        }

        // The budget counts this session only: a resumed run gets a fresh one.
        let over_budget = t
            .max_minutes
            .is_some_and(|m| session_start.elapsed().as_secs_f64() >= m * 60.0);
        let last = progress.epoch >= epochs || progress.step >= total_steps || over_budget;
        if (t.sample_every > 0 && progress.epoch.is_multiple_of(t.sample_every)) || last {
            seed_all(derive_seed(seed, &[stream::SAMPLE, progress.epoch as u64]));
            let path = run_dir
                .join("samples")
                .join(format!("epoch-{:04}.png", progress.epoch));
            save_samples(model, data, &path, t.n_samples)?;
        }
        if progress.epoch.is_multiple_of(t.checkpoint_every) || last {
            last_ckpt = Some(checkpoint::save_with(
                run_dir,
                model,
                &progress,
                &[("config.toml", config_text.as_bytes())],
            )?);
        }
        if INTERRUPT.load(Ordering::SeqCst) {
            return Err(Error::Interrupted {
                epoch: progress.epoch,
                step: progress.step,
                run_dir: run_dir.to_path_buf(),
            });
        }
        if over_budget && !last_planned(&progress, epochs, total_steps) {
            tracing::info!(
                "time budget of {:.1} minutes reached after epoch {}; resume with --resume to continue",
                t.max_minutes.unwrap_or_default(),
                progress.epoch
            );
            stopped_on_budget = true;
            break;
        }
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let checkpoint = match last_ckpt {
        Some(c) => c,
        None => checkpoint::save_with(
            run_dir,
            model,
            &progress,
            &[("config.toml", config_text.as_bytes())],
        )?,
    };
    Ok(FitSummary {
        epochs: progress.epoch,
        steps: progress.step,
        seconds: progress.elapsed_secs,
        train: train_means,
        valid: valid_means,
        checkpoint,
        stopped_on_budget,
    })
}

fn last_planned(p: &Progress, epochs: usize, total_steps: u64) -> bool {
    p.epoch >= epochs || p.step >= total_steps
}
