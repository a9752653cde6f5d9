//! Classification by the MP-DBM's own inference: argmax Q(y | observed pixels) after
//! `mf_steps` mean-field iterations, with every pixel observed, with averaged inputs (the
//! multi-inference trick), and with a fraction of the pixels hidden at random, as
//! Goodfellow et al. (2013) report it. `gm eval` records each as a statistic.

use super::model::MpDbm;
use gm_core::config::RunConfig;
use gm_core::data::Split;
use gm_core::masks::MaskSpec;
use gm_core::model::{Statistic, StatisticKind};
use gm_core::Result;
use tch::{Kind, Tensor};

impl MpDbm {
    /// The fraction of `split`'s examples whose argmax Q(y) is not their label, with the
    /// pixels of `mask` `[N, …]` observed (all when `None`), inferred in chunks of `chunk`.
    pub fn error(
        &self,
        x: &Tensor,
        y: &Tensor,
        mask: Option<&Tensor>,
        averaged_inputs: bool,
        chunk: i64,
    ) -> f64 {
        let n = x.size()[0];
        let mut wrong = 0.0;
        for s in (0..n).step_by(chunk.max(1) as usize) {
            let len = chunk.min(n - s);
            let v = self.flat(&x.narrow(0, s, len));
            let m = match mask {
                Some(m) => self.flat(&m.narrow(0, s, len)),
                None => v.ones_like(),
            };
            let pred = self.classify(&v, &m, averaged_inputs).argmax(1, false);
            let truth = y.narrow(0, s, len).to_device(pred.device());
            wrong += pred
                .ne_tensor(&truth)
                .to_kind(Kind::Double)
                .sum(Kind::Double)
                .double_value(&[]);
        }
        wrong / n.max(1) as f64
    }

    /// The statistics of `gm eval`: the errors described in the module docs; none when
    /// `split` has no labels.
    pub(super) fn classification_errors(
        &self,
        split: &Split,
        cfg: &RunConfig,
    ) -> Result<Vec<Statistic>> {
        let Some(y) = &split.y else {
            return Ok(Vec::new());
        };
        let x = &split.x;
        let n = x.size()[0];
        let chunk = cfg.data.eval_batch_size;
        let steps = self.cfg.mf_steps;
        let stat = |value: f64, method: String, settings: serde_json::Value| Statistic {
            kind: StatisticKind::ClassificationError,
            method,
            settings,
            value,
            std_err: Some((value * (1.0 - value) / n.max(1) as f64).sqrt()),
            n,
        };
        let mut out = vec![
            stat(
                self.error(x, y, None, false, chunk),
                format!(
                    "argmax Q(y | x) after {steps} mean-field iterations, every pixel observed"
                ),
                serde_json::json!({ "mf_steps": steps }),
            ),
            stat(
                self.error(x, y, None, true, chunk),
                format!(
                    "argmax Q(y | x) after {steps} mean-field iterations, observed pixels \
                     averaged with their predictions (multi-inference trick)"
                ),
                serde_json::json!({ "mf_steps": steps, "averaged_inputs": true }),
            ),
        ];
        for &f in &self.cfg.missing {
            let mask = MaskSpec::Random(f).build(n, &x.size()[1..], cfg.eval.seed, x.device())?;
            out.push(stat(
                self.error(x, y, Some(&mask), false, chunk),
                format!(
                    "argmax Q(y | observed pixels) after {steps} mean-field iterations, {:.0} % \
                     of the pixels hidden at random",
                    100.0 * f
                ),
                serde_json::json!({ "mf_steps": steps, "missing": f, "mask_seed": cfg.eval.seed }),
            ));
        }
        Ok(out)
    }
}
