//! Classification from mean-field features: the mean-field posteriors (q(h_1), …, q(h_L))
//! of a trained DBM read as a representation of v (Salakhutdinov & Hinton 2009 feed them
//! to a fine-tuned MLP; here the plainer measure, a linear probe). `gm eval` trains
//! [`gm_eval::probe::linear_probe`] on the training split's features and reports its
//! error on the evaluated split as a statistic, when both splits have labels.

use super::model::Dbm;
use gm_core::config::RunConfig;
use gm_core::data::Split;
use gm_core::model::{Statistic, StatisticKind};
use gm_core::Result;
use gm_eval::probe::{linear_probe, ProbeOptions};
use tch::Tensor;

impl Dbm {
    /// The mean-field means of every hidden layer side by side, `[N, n_1 + … + n_L]`, for
    /// examples `x` `[N, …]`, inferred `chunk` rows at a time.
    pub fn mean_field_features(&self, x: &Tensor, chunk: i64) -> Tensor {
        let n = x.size()[0];
        let parts: Vec<Tensor> = (0..n)
            .step_by(chunk.max(1) as usize)
            .map(|s| {
                let v = self.flat(&x.narrow(0, s, chunk.min(n - s)));
                let mf = self.mean_field(&v);
                Tensor::cat(&mf.means[1..], 1)
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// The linear probe's error on `split`, trained on the training split's features; none
    /// when either split lacks labels.
    pub(super) fn probe_error(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        let (Some(train_y), Some(y), Some(classes)) = (&self.train_y, &split.y, self.classes)
        else {
            return Ok(Vec::new());
        };
        let chunk = cfg.data.eval_batch_size;
        let train = self.mean_field_features(&self.train_x, chunk);
        let test = self.mean_field_features(&split.x, chunk);
        let opts = ProbeOptions {
            seed: cfg.eval.seed,
            ..Default::default()
        };
        let r = linear_probe((&train, train_y), (&test, y), classes, &opts)?;
        Ok(vec![Statistic {
            kind: StatisticKind::ClassificationError,
            method: "linear probe on the mean-field posteriors q(h_1 … h_L)".into(),
            settings: serde_json::json!({
                "features": train.size()[1],
                "train_examples": train.size()[0],
                "train_error": r.train_error,
                "epochs": opts.epochs,
                "batch_size": opts.batch_size,
                "lr": opts.lr,
                "weight_decay": opts.weight_decay,
            }),
            value: r.error,
            std_err: Some(r.std_err),
            n: r.n,
        }])
    }
}
