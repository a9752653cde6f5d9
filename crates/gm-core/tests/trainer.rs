//! The trainer end to end on a tiny noisy autoencoder: exact resume after an interruption
//! (mid-epoch and at an epoch boundary), NaN handling, metrics and files written, the best
//! checkpoint and early stopping.
//!
//! These tests use the process-wide interrupt flag, so they run one after another inside a
//! single test function.

use gm_core::checkpoint::{self, Best};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::data::{self, Dataset};
use gm_core::model::{LogLikelihood, Metrics, Model};
use gm_core::optim::Optimizer;
use gm_core::train::{fit, interrupt_flag};
use gm_core::{Error, Result};
use std::sync::atomic::Ordering;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

struct Tiny {
    vs: VarStore,
    enc: nn::Linear,
    dec: nn::Linear,
    opt: Optimizer,
    steps: u64,
    interrupt_at: Option<u64>,
    nan_at: Option<u64>,
    /// A validation metric `score` scripted by epoch (1-based: `score[e - 1]`), when set,
    /// with the steps of an epoch.
    score: Vec<f64>,
    steps_per_epoch: u64,
}

impl Tiny {
    fn new(cfg: &RunConfig) -> Tiny {
        tch::manual_seed(cfg.seed as i64);
        let vs = VarStore::new(Device::Cpu);
        let enc = nn::linear(vs.root() / "enc", 16, 6, Default::default());
        let dec = nn::linear(vs.root() / "dec", 6, 16, Default::default());
        let opt = Optimizer::new(&vs, &cfg.optim).unwrap();
        Tiny {
            vs,
            enc,
            dec,
            opt,
            steps: 0,
            interrupt_at: None,
            nan_at: None,
            score: Vec::new(),
            steps_per_epoch: 1,
        }
    }
    fn loss(&self, x: &Tensor) -> Tensor {
        let x = x.reshape([-1, 16]);
        // Input noise makes each step depend on the libtorch RNG.
        let h = self.enc.forward(&(&x + x.randn_like() * 0.3)).tanh();
        self.dec
            .forward(&h)
            .binary_cross_entropy_with_logits::<Tensor>(&x, None, None, Reduction::Sum)
            / x.size()[0] as f64
    }
    fn weights(&self) -> Tensor {
        Tensor::cat(&[self.enc.ws.reshape([-1]), self.dec.ws.reshape([-1])], 0)
            .detach()
            .copy()
    }
}

impl Model for Tiny {
    fn name(&self) -> &str {
        "tiny"
    }
    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        vec![("model", &self.vs)]
    }
    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        vec![("model", &mut self.vs)]
    }
    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![("opt", &mut self.opt)]
    }
    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        vec![("opt", &self.opt)]
    }
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        self.steps += 1;
        let mut loss = self.loss(x);
        if self.nan_at.is_some_and(|s| self.steps >= s) {
            loss *= f64::NAN;
        }
        self.opt.backward_step(&loss)?;
        if self.interrupt_at == Some(self.steps) {
            interrupt_flag().store(true, Ordering::SeqCst);
        }
        Ok(vec![("loss", loss.detach())])
    }
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let mut m = vec![("loss", self.loss(x))];
        if !self.score.is_empty() {
            let epoch = (self.steps / self.steps_per_epoch) as usize;
            m.push(("score", Tensor::from(self.score[epoch - 1])));
        }
        Ok(m)
    }
    fn sample(&self, n: i64) -> Result<Tensor> {
        let h = Tensor::randn([n, 6], (Kind::Float, Device::Cpu)).tanh();
        Ok(self.dec.forward(&h).sigmoid().view([n, 1, 4, 4]))
    }
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }
    fn resolved_params(&self) -> toml::Table {
        toml::Table::new()
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
}

fn setup(epochs: usize) -> (RunConfig, Dataset) {
    let cfg = RunConfig::from_toml_str(&format!(
        "seed = 11\n[model]\nname = \"tiny\"\n[data]\ndataset = \"bars-and-stripes\"\nbatch_size = 50\n\
         [optim]\nlr = 0.01\n[train]\nepochs = {epochs}\nlr_schedule = \"cosine\"\nlog_every = 3\nsample_every = 2\n"
    ))
    .unwrap();
    cfg.validate().unwrap();
    let data = data::load(&cfg.data.dataset, &cfg.data.options).unwrap();
    (cfg, data)
}

fn read_metrics(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn trainer_resume_and_nan() {
    let _rng = gm_core::rng_guard::lock();
    // 1. Uninterrupted reference run.
    let (cfg, data) = setup(4);
    let ref_dir = tempfile::tempdir().unwrap();
    let mut reference = Tiny::new(&cfg);
    let summary = fit(&mut reference, &data, &cfg, ref_dir.path(), None).unwrap();
    let steps_per_epoch = (data.train.len() as u64).div_ceil(50);
    assert_eq!(summary.steps, 4 * steps_per_epoch);
    let records = read_metrics(ref_dir.path());
    assert_eq!(records.len(), 4);
    let first = records[0]["train"]["loss"].as_f64().unwrap();
    let last = records[3]["train"]["loss"].as_f64().unwrap();
    assert!(
        last < first,
        "training loss did not fall: {first} -> {last}"
    );
    assert!(ref_dir.path().join("samples/epoch-0002.png").exists());
    assert!(ref_dir.path().join("samples/epoch-0004.png").exists());
    assert!(!ref_dir.path().join("samples/epoch-0001.png").exists());

    // 2. Interrupted mid-epoch (Ctrl-C), then resumed: identical final weights.
    let dir = tempfile::tempdir().unwrap();
    let mut a = Tiny::new(&cfg);
    a.interrupt_at = Some(steps_per_epoch + 2);
    match fit(&mut a, &data, &cfg, dir.path(), None) {
        Err(Error::Interrupted { step, .. }) => assert_eq!(step, steps_per_epoch + 2),
        other => panic!("expected an interruption, got {:?}", other.map(|s| s.steps)),
    }
    interrupt_flag().store(false, Ordering::SeqCst);
    let mut b = Tiny::new(&cfg);
    let ckpt = checkpoint::latest(dir.path()).unwrap().unwrap();
    let progress = checkpoint::restore(&ckpt, &mut b).unwrap();
    assert_eq!((progress.epoch, progress.batch_in_epoch), (1, 2));
    fit(&mut b, &data, &cfg, dir.path(), Some(progress)).unwrap();
    assert_eq!(
        (b.weights() - reference.weights())
            .abs()
            .max()
            .double_value(&[]),
        0.0,
        "resumed run differs from the uninterrupted one"
    );
    // metrics.jsonl has each epoch once.
    let epochs: Vec<u64> = read_metrics(dir.path())
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert_eq!(epochs, vec![1, 2, 3, 4]);

    // 3. Stopped at an epoch boundary (as after kill -9 following an epoch's checkpoint),
    //    then continued with more epochs: equal to a run that had that many from the start
    //    (constant rate, so that the schedule does not depend on the planned length).
    let (mut cfg_c, _) = setup(4);
    cfg_c.train.lr_schedule = gm_core::config::LrSchedule::Constant;
    let mut cfg_c2 = cfg_c.clone();
    cfg_c2.train.epochs = 2;
    let ref2 = tempfile::tempdir().unwrap();
    let mut e = Tiny::new(&cfg_c);
    fit(&mut e, &data, &cfg_c, ref2.path(), None).unwrap();
    let part = tempfile::tempdir().unwrap();
    let mut f = Tiny::new(&cfg_c2);
    fit(&mut f, &data, &cfg_c2, part.path(), None).unwrap();
    let mut g = Tiny::new(&cfg_c);
    let p =
        checkpoint::restore(&checkpoint::latest(part.path()).unwrap().unwrap(), &mut g).unwrap();
    fit(&mut g, &data, &cfg_c, part.path(), Some(p)).unwrap();
    assert_eq!(
        (g.weights() - e.weights()).abs().max().double_value(&[]),
        0.0
    );

    // 4. A NaN stops the run with a clear error; the last good checkpoint stays current.
    let dir = tempfile::tempdir().unwrap();
    let mut h = Tiny::new(&cfg);
    h.nan_at = Some(steps_per_epoch + 1);
    let err = fit(&mut h, &data, &cfg, dir.path(), None).unwrap_err();
    match &err {
        Error::NonFinite {
            metric,
            epoch,
            checkpoint: Some(c),
            ..
        } => {
            assert_eq!(metric, "loss");
            assert_eq!(*epoch, 1);
            assert!(c.ends_with(format!("step-{:09}", steps_per_epoch)), "{c:?}");
        }
        other => panic!("expected NonFinite with a checkpoint, got {other}"),
    }
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    let latest = checkpoint::latest(dir.path()).unwrap().unwrap();
    let mut i = Tiny::new(&cfg);
    checkpoint::restore(&latest, &mut i).unwrap();
    assert!(bool::try_from(i.weights().isfinite().all()).unwrap());
}

/// `tiny` scoring its epochs by `script`, resumed from `progress` when given.
fn scored(cfg: &RunConfig, script: &[f64], progress: Option<&checkpoint::Progress>) -> Tiny {
    let mut t = Tiny::new(cfg);
    t.score = script.to_vec();
    t.steps_per_epoch = 20; // 1,000 bars-and-stripes training examples, batches of 50
    t.steps = progress.map_or(0, |p| p.step);
    t
}

#[test]
fn the_best_epoch_is_kept_and_patience_stops_the_run() {
    let _rng = gm_core::rng_guard::lock();
    let (mut cfg, data) = setup(7);
    assert_eq!(data.train.len(), 1000);
    cfg.train.lr_schedule = gm_core::config::LrSchedule::Constant;
    cfg.train.best_metric = Some("score".into());
    cfg.train.patience = Some(2);
    let script = [5.0, 3.0, 4.0, 2.0, 6.0, 7.0, 1.0];
    let best4 = |value| Best {
        metric: "score".into(),
        value,
        epoch: 4,
    };

    // 1. Epoch 4's 2.0 is not beaten in the two epochs after it: the run stops after epoch 6.
    let dir = tempfile::tempdir().unwrap();
    let mut a = scored(&cfg, &script, None);
    let s = fit(&mut a, &data, &cfg, dir.path(), None).unwrap();
    assert!(s.stopped_early && !s.stopped_on_budget);
    assert_eq!((s.epochs, s.best), (6, Some(best4(2.0))));
    assert_eq!(read_metrics(dir.path()).len(), 6);
    // Its best checkpoint holds the weights of epoch 4: those of a run of 4 epochs.
    let best = checkpoint::best(dir.path()).unwrap().unwrap();
    assert_eq!(checkpoint::read_progress(&best).unwrap().epoch, 4);
    let mut plain = cfg.clone();
    (
        plain.train.epochs,
        plain.train.best_metric,
        plain.train.patience,
    ) = (4, None, None);
    let mut four = Tiny::new(&plain);
    fit(
        &mut four,
        &data,
        &plain,
        tempfile::tempdir().unwrap().path(),
        None,
    )
    .unwrap();
    let mut loaded = Tiny::new(&cfg);
    checkpoint::load_weights(&best, &mut loaded).unwrap();
    let diff = (loaded.weights() - four.weights()).abs().max();
    assert_eq!(diff.double_value(&[]), 0.0);
    let bests = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("best-")
        })
        .count();
    assert_eq!(bests, 1, "earlier bests are removed");

    // 2. Resuming a run that stopped early trains nothing more.
    let latest = checkpoint::latest(dir.path()).unwrap().unwrap();
    let p = checkpoint::read_progress(&latest).unwrap();
    let mut b = scored(&cfg, &script, Some(&p));
    let p = checkpoint::restore(&latest, &mut b).unwrap();
    let s = fit(&mut b, &data, &cfg, dir.path(), Some(p)).unwrap();
    assert!(s.stopped_early);
    assert_eq!((s.epochs, read_metrics(dir.path()).len()), (6, 6));

    // 3. The best so far travels in the checkpoint: 5 planned epochs (no early stop), then
    //    continued to 7, stops after epoch 6 as before.
    let mut five = cfg.clone();
    five.train.epochs = 5;
    let dir = tempfile::tempdir().unwrap();
    let mut c = scored(&five, &script, None);
    let s = fit(&mut c, &data, &five, dir.path(), None).unwrap();
    assert_eq!((s.epochs, s.stopped_early), (5, false));
    let latest = checkpoint::latest(dir.path()).unwrap().unwrap();
    let p = checkpoint::read_progress(&latest).unwrap();
    let mut d = scored(&cfg, &script, Some(&p));
    let p = checkpoint::restore(&latest, &mut d).unwrap();
    let s = fit(&mut d, &data, &cfg, dir.path(), Some(p)).unwrap();
    assert!(s.stopped_early);
    assert_eq!((s.epochs, s.best), (6, Some(best4(2.0))));

    // 4. `max`: the same script negated gives the same epochs.
    let mut up = cfg.clone();
    up.train.best_mode = gm_core::config::BestMode::Max;
    let negated: Vec<f64> = script.iter().map(|v| -v).collect();
    let mut e = scored(&up, &negated, None);
    let s = fit(
        &mut e,
        &data,
        &up,
        tempfile::tempdir().unwrap().path(),
        None,
    )
    .unwrap();
    assert_eq!((s.epochs, s.best), (6, Some(best4(-2.0))));

    // 5. Resumed from a checkpoint older than the best one (`--from`): that best belongs to
    //    the abandoned continuation and goes; the best before it stands until beaten.
    let mut no_patience = cfg.clone();
    (
        no_patience.train.patience,
        no_patience.train.checkpoint_every,
    ) = (None, 3);
    let dir = tempfile::tempdir().unwrap();
    let mut g = scored(&no_patience, &script, None);
    fit(&mut g, &data, &no_patience, dir.path(), None).unwrap();
    let best = checkpoint::best(dir.path()).unwrap().unwrap();
    assert_eq!(checkpoint::read_progress(&best).unwrap().epoch, 7);
    let older = checkpoint::find(dir.path(), Some(120)).unwrap();
    let p = checkpoint::read_progress(&older).unwrap();
    let worse_last = [5.0, 3.0, 4.0, 2.0, 6.0, 7.0, 9.0];
    let mut h = scored(&no_patience, &worse_last, Some(&p));
    let p = checkpoint::restore(&older, &mut h).unwrap();
    let s = fit(&mut h, &data, &no_patience, dir.path(), Some(p)).unwrap();
    assert_eq!(s.best, Some(best4(2.0)));
    assert!(checkpoint::best(dir.path()).unwrap().is_none());

    // 6. A metric the model does not report: the error names the ones it does.
    let mut typo = cfg.clone();
    typo.train.best_metric = Some("scroe".into());
    let mut f = scored(&typo, &script, None);
    let err = fit(
        &mut f,
        &data,
        &typo,
        tempfile::tempdir().unwrap().path(),
        None,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("train.best_metric") && msg.contains("[loss, score]"),
        "{msg}"
    );
}
