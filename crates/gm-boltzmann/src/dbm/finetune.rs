//! Discriminative fine-tuning of a DBM (Salakhutdinov & Hinton 2009): mean-field inference
//! unrolled into an MLP. Its input is the image v beside q(h_2 | v), the mean-field
//! marginals of the second layer under the trained DBM (frozen once fine-tuning starts);
//! the first hidden layer computes σ(b_1 + v W_1 + q_2 W_2ᵀ), the mean-field update of h_1,
//! each layer above σ(b_l + h_{l−1} W_l), and a softmax layer tops them.
//!
//! With `finetune_after = E`, the steps after E epochs of generative training train this
//! MLP instead of the DBM: it starts from copies of the DBM's weights ([W_1; W_2ᵀ] for the
//! first layer), keeps its own store and optimizer (rate × `finetune_lr_scale`), and learns
//! by back-propagation of the cross-entropy on labelled batches. The DBM, its samples and
//! likelihoods stay the generatively trained model. At the first step the MLP's first layer
//! reproduces the DBM's mean-field μ_1 (tested). `gm eval` reports its test error.

use super::config::DbmConfig;
use super::model::Dbm;
use crate::dbn::finetune::{error_statistic, Classifier};
use crate::dbn::steps_per_epoch;
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Split};
use gm_core::model::{BuildContext, Metrics, Statistic};
use gm_core::{Error, Result};
use tch::{Kind, Tensor};

/// The fine-tuning MLP and the optimizer step at which fine-tuning starts, when
/// `finetune_after` is set (an error without labels).
pub(super) fn classifier(
    cfg: &DbmConfig,
    ctx: &BuildContext<'_>,
    sizes: &[i64],
    kind: Kind,
) -> Result<Option<(Classifier, i64)>> {
    let Some(after) = cfg.finetune_after else {
        return Ok(None);
    };
    let data = ctx.data;
    let (Some(classes), Some(_)) = (data.num_classes, &data.train.y) else {
        return Err(Error::config(
            "model.finetune_after",
            after,
            format!(
                "a labelled dataset for fine-tuning; {} has no labels",
                data.name
            ),
        ));
    };
    let epochs = ctx.cfg.train.epochs;
    if after >= epochs as i64 {
        // Not an error: a run may train the DBM first and be resumed with more epochs.
        tracing::warn!(
            "model.finetune_after = {after} leaves none of the {epochs} epochs (train.epochs) \
             to fine-tuning; it starts only if the run is resumed with more"
        );
    }
    let mut mlp = vec![sizes[0] + sizes[2]];
    mlp.extend(&sizes[1..]);
    let clf = Classifier::new(&mlp, classes, kind, ctx.device, ctx.cfg)?;
    Ok(Some((
        clf,
        after * steps_per_epoch(ctx.cfg, data.train.len()),
    )))
}

impl Dbm {
    /// Whether the next step fine-tunes: `finetune_after` is set and the DBM has taken
    /// that many epochs of updates (it takes none afterwards).
    pub fn finetuning(&self) -> bool {
        self.classifier.is_some() && self.opt.steps() as i64 >= self.finetune_from
    }

    /// Whether the MLP has taken its copy of the DBM's weights (fine-tuning has begun).
    pub fn finetune_begun(&self) -> bool {
        self.finetune_started
            .as_ref()
            .is_some_and(|f| f.double_value(&[]) != 0.0)
    }

    /// The MLP's input for examples `x` `[N, …]`: v beside the mean-field q(h_2 | v).
    fn finetune_input(&self, x: &Tensor) -> Tensor {
        let v = self.flat(x);
        let q2 = self.mean_field(&v).means.swap_remove(2);
        Tensor::cat(&[v, q2], 1)
    }

    /// Copies the DBM's weights into the MLP, once (the flag is checkpointed).
    fn start_finetuning(&self, clf: &Classifier) {
        let flag = self
            .finetune_started
            .as_ref()
            .expect("fine-tuning has a flag");
        if flag.double_value(&[]) != 0.0 {
            return;
        }
        let first = Tensor::cat(&[&self.weights[0], &self.weights[1].tr()], 0);
        clf.load_layer(0, &first, &self.biases[1]);
        for l in 2..=self.depth() {
            clf.load_layer(l - 1, &self.weights[l - 1], &self.biases[l]);
        }
        tch::no_grad(|| {
            let _ = flag.shallow_clone().fill_(1.0);
        });
    }

    /// The MLP's hidden activations h_1 … h_L for examples `x`, once fine-tuning has
    /// started (copying the weights if this is its first use); none without fine-tuning.
    pub fn finetune_activations(&self, x: &Tensor) -> Option<Vec<Tensor>> {
        let clf = self.classifier.as_ref()?;
        self.start_finetuning(clf);
        Some(tch::no_grad(|| clf.activations(&self.finetune_input(x))))
    }

    /// One back-propagation step of the MLP on a labelled batch (rows whose label is
    /// unobserved are left out). Metrics: `finetune_xent`, `finetune_error`.
    pub(super) fn finetune_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let clf = self
            .classifier
            .as_ref()
            .expect("fine-tuning has a classifier");
        self.start_finetuning(clf);
        let input = self.finetune_input(&batch.x);
        let scale = self.cfg.finetune_lr_scale;
        let clf = self
            .classifier
            .as_mut()
            .expect("fine-tuning has a classifier");
        clf.train_on(&input, batch, "dbm", scale)
    }

    /// The same metrics on a held-out batch, without an update.
    pub(super) fn finetune_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let clf = self
            .classifier
            .as_ref()
            .expect("fine-tuning has a classifier");
        clf.metrics_on(&self.finetune_input(&batch.x), batch, "dbm")
    }

    /// The fine-tuned MLP's error on `split`, once fine-tuning has started; none otherwise.
    pub(super) fn finetune_error(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        let (Some(clf), Some(y)) = (&self.classifier, &split.y) else {
            return Ok(Vec::new());
        };
        if !self.finetune_begun() {
            return Ok(Vec::new());
        }
        let wrong = clf.count_errors(&split.x, y, cfg.data.eval_batch_size, |x| {
            self.finetune_input(x)
        });
        Ok(vec![error_statistic(
            wrong,
            split.len(),
            "argmax of the fine-tuned MLP unrolled from mean field (input v and q(h_2 | v))",
            serde_json::json!({ "hidden": self.cfg.hidden, "mf_max_iters": self.cfg.mf_max_iters }),
        )])
    }
}
