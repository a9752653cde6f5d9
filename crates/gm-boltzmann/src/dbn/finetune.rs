//! Discriminative fine-tuning of a DBN (§20.3; Hinton & Salakhutdinov 2006): the up-pass
//! h_{l+1} = σ(c_l + h_l W_l) of every layer, read as a sigmoid MLP, topped with a softmax
//! layer over the classes and trained by back-propagation of the cross-entropy on labelled
//! batches (`finetune = true`: the epochs after the greedy ones).
//!
//! The MLP starts from a copy of the RBMs' recognition weights, taken at the first
//! fine-tuning step, and keeps its own store and optimizer: the generative model (and its
//! likelihoods) stays the greedily trained DBN. `gm eval` reports its test classification
//! error as a statistic.
//!
//! [`Classifier`] and the loss helpers are shared with the DBM's fine-tuning
//! ([`crate::dbm::finetune`]).

use super::model::Dbn;
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Split};
use gm_core::model::{Metrics, Statistic, StatisticKind};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// A sigmoid MLP with a softmax layer: copies of a generative model's W_l, c_l, fine-tuned.
pub(crate) struct Classifier {
    pub(crate) vs: VarStore,
    layers: Vec<(Tensor, Tensor)>,
    out_w: Tensor,
    out_b: Tensor,
    pub(crate) opt: Optimizer,
}

impl Classifier {
    /// A classifier for layer sizes `sizes` (input, h_1 … h_L) and `classes` classes, in
    /// `kind` on `device` (weights zero until copied in; softmax weights N(0, 0.01²)).
    pub(crate) fn new(
        sizes: &[i64],
        classes: i64,
        kind: Kind,
        device: Device,
        run: &RunConfig,
    ) -> Result<Self> {
        let mut vs = VarStore::new(device);
        vs.set_kind(kind);
        let root = vs.root() / "classifier";
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(l, s)| {
                (
                    root.zeros(&format!("w{}", l + 1), &[s[0], s[1]]),
                    root.zeros(&format!("c{}", l + 1), &[s[1]]),
                )
            })
            .collect();
        let top = *sizes.last().expect("at least one layer");
        let out_w = root.var(
            "w_out",
            &[top, classes],
            Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
        );
        let out_b = root.zeros("b_out", &[classes]);
        let opt = Optimizer::new(&vs, &run.optim)?;
        Ok(Classifier {
            vs,
            layers,
            out_w,
            out_b,
            opt,
        })
    }

    /// Copies `w` and `c` into hidden layer `l` (0-based).
    pub(crate) fn load_layer(&self, l: usize, w: &Tensor, c: &Tensor) {
        tch::no_grad(|| {
            self.layers[l].0.shallow_clone().copy_(w);
            self.layers[l].1.shallow_clone().copy_(c);
        });
    }

    /// The hidden layers' activations h_1 … h_L `[N, n_l]` of inputs `[N, D]` (recording
    /// gradients).
    pub(crate) fn activations(&self, x: &Tensor) -> Vec<Tensor> {
        let mut out: Vec<Tensor> = Vec::with_capacity(self.layers.len());
        for (w, c) in &self.layers {
            let below = out.last().unwrap_or(x);
            let h = c.addmm(below, w).sigmoid();
            out.push(h);
        }
        out
    }

    /// Class scores `[N, classes]` of inputs `[N, D]` (recording gradients).
    pub(crate) fn logits(&self, x: &Tensor) -> Tensor {
        let top = self.activations(x).pop().expect("at least one layer");
        self.out_b.addmm(&top, &self.out_w)
    }

    /// One back-propagation step on `loss` with the run's rate times `scale` (the trainer
    /// sets every optimizer's rate before each step).
    pub(crate) fn step(&mut self, loss: &Tensor, scale: f64) -> Result<()> {
        let lr = self.opt.lr();
        self.opt.set_lr(lr * scale);
        let stepped = self.opt.backward_step(loss);
        self.opt.set_lr(lr);
        stepped
    }

    /// One fine-tuning step on the labelled `batch` whose inputs are `input` `[N, D]`
    /// (rows with unobserved labels left out), at the run's rate × `scale`; metrics
    /// `finetune_xent`, `finetune_error`. `model` names the model in errors.
    pub(crate) fn train_on(
        &mut self,
        input: &Tensor,
        batch: &Batch,
        model: &str,
        scale: f64,
    ) -> Result<Metrics> {
        let (nll, wrong, mask) = labelled_xent(&self.logits(input), batch, model)?;
        let (loss, metrics) = xent_metrics(&nll, &wrong, &mask);
        self.step(&loss, scale)?;
        Ok(metrics)
    }

    /// The metrics of [`Classifier::train_on`] without an update.
    pub(crate) fn metrics_on(&self, input: &Tensor, batch: &Batch, model: &str) -> Result<Metrics> {
        tch::no_grad(|| {
            let (nll, wrong, mask) = labelled_xent(&self.logits(input), batch, model)?;
            Ok(xent_metrics(&nll, &wrong, &mask).1)
        })
    }

    /// The examples of `x` `[N, …]` whose argmax class is not `y`, counted over chunks of
    /// `chunk` rows mapped to the classifier's input by `input`.
    pub(crate) fn count_errors(
        &self,
        x: &Tensor,
        y: &Tensor,
        chunk: i64,
        input: impl Fn(&Tensor) -> Tensor,
    ) -> i64 {
        let n = x.size()[0];
        let mut wrong = 0;
        let mut start = 0;
        while start < n {
            let len = chunk.max(1).min(n - start);
            let pred = tch::no_grad(|| {
                self.logits(&input(&x.narrow(0, start, len)))
                    .argmax(1, false)
            });
            let truth = y.narrow(0, start, len).to_device(pred.device());
            wrong += pred.ne_tensor(&truth).sum(Kind::Int64).int64_value(&[]);
            start += len;
        }
        wrong
    }
}

/// Per row of `batch`: the cross-entropy −log p(y | x) under `logits`, whether argmax is
/// wrong (`f32`), and whether the label is observed (`f32`); an error naming `model` when
/// the batch has no labels.
pub(crate) fn labelled_xent(
    logits: &Tensor,
    batch: &Batch,
    model: &str,
) -> Result<(Tensor, Tensor, Tensor)> {
    let y = batch.y.as_ref().ok_or_else(|| {
        Error::Msg(format!(
            "{model} fine-tuning: a training batch without labels"
        ))
    })?;
    let target = y.clamp_min(0).unsqueeze(1).to_device(logits.device());
    let nll = -logits
        .log_softmax(1, logits.kind())
        .gather(1, &target, false)
        .squeeze_dim(1);
    let wrong = tch::no_grad(|| logits.argmax(1, false).ne_tensor(&target.squeeze_dim(1)));
    let mask = match &batch.observed {
        Some(o) => o.to_kind(Kind::Float),
        None => y.ge(0).to_kind(Kind::Float),
    }
    .to_device(logits.device());
    Ok((nll, wrong.to_kind(Kind::Float), mask))
}

/// The mean cross-entropy over the observed labels (recording gradients) and the metrics
/// `finetune_xent`, `finetune_error`.
pub(crate) fn xent_metrics(nll: &Tensor, wrong: &Tensor, mask: &Tensor) -> (Tensor, Metrics) {
    let count = mask.sum(Kind::Float).clamp_min(1.0);
    let loss = (nll * mask).sum(nll.kind()) / &count;
    let error = (wrong * mask).sum(Kind::Float) / &count;
    let metrics = vec![
        ("finetune_xent", loss.detach().to_kind(Kind::Float)),
        ("finetune_error", error),
    ];
    (loss, metrics)
}

/// A classification-error statistic of `wrong` out of `n` examples.
pub(crate) fn error_statistic(
    wrong: i64,
    n: i64,
    method: &str,
    settings: serde_json::Value,
) -> Statistic {
    let e = wrong as f64 / n.max(1) as f64;
    Statistic {
        kind: StatisticKind::ClassificationError,
        method: method.into(),
        settings,
        value: e,
        std_err: Some((e * (1.0 - e) / n.max(1) as f64).sqrt()),
        n,
    }
}

impl Dbn {
    /// Whether step `step` (0-based) is a fine-tuning step: `finetune` is on and its epoch
    /// comes after every layer's greedy epochs.
    pub fn finetuning_at(&self, step: i64) -> bool {
        let greedy = *self.layer_ends.last().expect("at least two layers");
        self.classifier.is_some() && step / self.steps_per_epoch >= greedy
    }

    /// Copies the layers' recognition weights into the classifier, once (the first
    /// fine-tuning step; the flag is checkpointed).
    fn start_finetuning(&self, clf: &Classifier) {
        if self.finetune_started.double_value(&[]) != 0.0 {
            return;
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let (lw, _, lc) = layer.params();
            clf.load_layer(l, lw, lc);
        }
        tch::no_grad(|| {
            let _ = self.finetune_started.shallow_clone().fill_(1.0);
        });
    }

    /// The classifier's input for a batch: its examples as `[N, D]` in the layers' kind.
    fn finetune_input(&self, batch: &Batch) -> Tensor {
        let kind = self.layers[0].params().0.kind();
        batch.x.reshape([-1, self.visible()]).to_kind(kind)
    }

    /// One back-propagation step of the classifier on a labelled batch.
    pub(super) fn finetune_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let input = self.finetune_input(batch);
        let clf = self
            .classifier
            .as_ref()
            .expect("fine-tuning has a classifier");
        self.start_finetuning(clf);
        let scale = self.cfg.finetune_lr_scale;
        let clf = self
            .classifier
            .as_mut()
            .expect("fine-tuning has a classifier");
        clf.train_on(&input, batch, "dbn", scale)
    }

    /// The same metrics on a held-out batch, without an update.
    pub(super) fn finetune_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let clf = self
            .classifier
            .as_ref()
            .expect("fine-tuning has a classifier");
        clf.metrics_on(&self.finetune_input(batch), batch, "dbn")
    }

    /// The fine-tuned classifier's error on `split` (argmax of its softmax), once
    /// fine-tuning has started; none otherwise.
    pub(super) fn classification_error(
        &self,
        split: &Split,
        cfg: &RunConfig,
    ) -> Result<Vec<Statistic>> {
        let (Some(clf), Some(y)) = (&self.classifier, &split.y) else {
            return Ok(Vec::new());
        };
        if self.finetune_started.double_value(&[]) == 0.0 {
            return Ok(Vec::new());
        }
        let kind = self.layers[0].params().0.kind();
        let d = self.visible();
        let wrong = clf.count_errors(&split.x, y, cfg.data.eval_batch_size, |x| {
            x.reshape([-1, d]).to_kind(kind)
        });
        Ok(vec![error_statistic(
            wrong,
            split.len(),
            "argmax of the fine-tuned up-pass MLP + softmax",
            serde_json::json!({ "layers": self.cfg.hidden }),
        )])
    }
}
