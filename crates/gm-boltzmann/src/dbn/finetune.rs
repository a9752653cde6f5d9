//! Discriminative fine-tuning of a DBN (§20.3; Hinton & Salakhutdinov 2006): the up-pass
//! h_{l+1} = σ(c_l + h_l W_l) of every layer, read as a sigmoid MLP, topped with a softmax
//! layer over the classes and trained by back-propagation of the cross-entropy on labelled
//! batches (`finetune = true`: the epochs after the greedy ones).
//!
//! The MLP starts from a copy of the RBMs' recognition weights, taken at the first
//! fine-tuning step, and keeps its own store and optimizer: the generative model (and its
//! likelihoods) stays the greedily trained DBN. `gm eval` reports its test classification
//! error as a statistic.

use super::model::Dbn;
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Split};
use gm_core::model::{Metrics, Statistic, StatisticKind};
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// The fine-tuned MLP: copies of the layers' W_l, c_l and a softmax layer.
pub(super) struct Classifier {
    pub(super) vs: VarStore,
    layers: Vec<(Tensor, Tensor)>,
    out_w: Tensor,
    out_b: Tensor,
    pub(super) opt: Optimizer,
}

impl Classifier {
    /// A classifier for layer sizes `sizes` (v, h_1 … h_L) and `classes` classes, in `kind`
    /// on `device` (weights zero until copied from the DBN; softmax weights N(0, 0.01²)).
    pub(super) fn new(
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

    /// Class scores `[N, classes]` of inputs `[N, D]` (recording gradients).
    fn logits(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (w, c) in &self.layers {
            h = c.addmm(&h, w).sigmoid();
        }
        self.out_b.addmm(&h, &self.out_w)
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
        tch::no_grad(|| {
            for (layer, (w, c)) in self.layers.iter().zip(&clf.layers) {
                let (lw, _, lc) = layer.params();
                w.shallow_clone().copy_(lw);
                c.shallow_clone().copy_(lc);
            }
            let _ = self.finetune_started.shallow_clone().fill_(1.0);
        });
    }

    /// One back-propagation step of the classifier on a labelled batch (rows whose label is
    /// unobserved are left out). Metrics: `finetune_xent`, `finetune_error`.
    pub(super) fn finetune_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let clf = self
            .classifier
            .as_ref()
            .expect("fine-tuning has a classifier");
        self.start_finetuning(clf);
        let (nll, wrong, mask) = self.classify(batch)?;
        let count = mask.sum(Kind::Float).clamp_min(1.0);
        let loss = (&nll * &mask).sum(nll.kind()) / &count;
        let error = (wrong * &mask).sum(Kind::Float) / &count;
        let clf = self
            .classifier
            .as_mut()
            .expect("fine-tuning has a classifier");
        // The trainer sets every optimizer's rate before each step: scale it for this one.
        let lr = clf.opt.lr();
        clf.opt.set_lr(lr * self.cfg.finetune_lr_scale);
        let stepped = clf.opt.backward_step(&loss);
        clf.opt.set_lr(lr);
        stepped?;
        Ok(vec![
            ("finetune_xent", loss.detach().to_kind(Kind::Float)),
            ("finetune_error", error),
        ])
    }

    /// The same metrics on a held-out batch, without an update.
    pub(super) fn finetune_metrics(&self, batch: &Batch) -> Result<Metrics> {
        tch::no_grad(|| {
            let (nll, wrong, mask) = self.classify(batch)?;
            let count = mask.sum(Kind::Float).clamp_min(1.0);
            Ok(vec![
                (
                    "finetune_xent",
                    (nll.to_kind(Kind::Float) * &mask).sum(Kind::Float) / &count,
                ),
                ("finetune_error", (wrong * &mask).sum(Kind::Float) / &count),
            ])
        })
    }

    /// Per row: the cross-entropy −log p(y | x), whether argmax is wrong (`f32`), and
    /// whether the label is observed (`f32`).
    fn classify(&self, batch: &Batch) -> Result<(Tensor, Tensor, Tensor)> {
        let clf = self
            .classifier
            .as_ref()
            .expect("fine-tuning has a classifier");
        let y = batch
            .y
            .as_ref()
            .ok_or_else(|| Error::Msg("dbn fine-tuning: a training batch without labels".into()))?;
        let kind = self.layers[0].params().0.kind();
        let x = batch.x.reshape([-1, self.visible()]).to_kind(kind);
        let logits = clf.logits(&x);
        let target = y.clamp_min(0).unsqueeze(1);
        let nll = -logits
            .log_softmax(1, kind)
            .gather(1, &target, false)
            .squeeze_dim(1);
        let wrong = tch::no_grad(|| logits.argmax(1, false).ne_tensor(&target.squeeze_dim(1)));
        let mask = match &batch.observed {
            Some(o) => o.to_kind(Kind::Float),
            None => y.ge(0).to_kind(Kind::Float),
        };
        Ok((nll, wrong.to_kind(Kind::Float), mask))
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
        let n = split.len();
        let kind = self.layers[0].params().0.kind();
        let mut wrong = 0i64;
        let mut start = 0;
        while start < n {
            let len = cfg.data.eval_batch_size.max(1).min(n - start);
            let x = split.x.narrow(0, start, len).reshape([-1, self.visible()]);
            let pred = tch::no_grad(|| clf.logits(&x.to_kind(kind)).argmax(1, false));
            let truth = y.narrow(0, start, len).to_device(pred.device());
            wrong += pred.ne_tensor(&truth).sum(Kind::Int64).int64_value(&[]);
            start += len;
        }
        let e = wrong as f64 / n.max(1) as f64;
        Ok(vec![Statistic {
            kind: StatisticKind::ClassificationError,
            method: "argmax of the fine-tuned up-pass MLP + softmax".into(),
            settings: serde_json::json!({ "layers": self.cfg.hidden }),
            value: e,
            std_err: Some((e * (1.0 - e) / n.max(1) as f64).sqrt()),
            n,
        }])
    }
}
