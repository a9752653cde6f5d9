//! The [`MpDbm`] itself: parameters, the multi-prediction loss, Gibbs sampling and its
//! [`Model`] implementation.

use super::config::MpDbmConfig;
use super::inference::Observed;
use crate::dbm::{base_rate_biases, layer_input};
use crate::rbm::{as_images, scaled_filters, Dtype};
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Split};
use gm_core::masks::{completion_figure, MaskSpec};
use gm_core::model::{
    params_table, parse_params, BuildContext, Complete, CompletionKind, Conditional, Figure,
    LogLikelihood, Metrics, Model, Statistic,
};
use gm_core::optim::Optimizer;
use gm_core::sampling::bernoulli::sample as bernoulli;
use gm_core::{Error, Result};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// A multi-prediction DBM with its optimizer.
///
/// W_l `[n_{l−1}, n_l]` joins layers l − 1 and l (layer 0 the pixels), b_l `[n_l]` is layer
/// l's bias, U `[n_L, K]` and c `[K]` join the label to the top layer.
pub struct MpDbm {
    pub(super) cfg: MpDbmConfig,
    pub(super) shape: Vec<i64>,
    /// Layer sizes n_0 = D, n_1 … n_L.
    pub(super) sizes: Vec<i64>,
    pub(super) classes: i64,
    pub(super) kind: Kind,
    pub(super) vs: VarStore,
    pub(super) weights: Vec<Tensor>,
    pub(super) biases: Vec<Tensor>,
    pub(super) label_w: Tensor,
    pub(super) label_b: Tensor,
    pub(super) opt: Optimizer,
}

/// Builds an MP-DBM from a run config (the `mp-dbm` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: MpDbmConfig = parse_params("mp-dbm", &ctx.cfg.model.params)?;
    Ok(Box::new(MpDbm::new(cfg, ctx)?))
}

impl MpDbm {
    /// A new MP-DBM for binary, labelled data shaped like `ctx.data`: weights ~ N(0,
    /// init_std²), b_0 the logits of the training marginals, the other biases 0.
    pub fn new(cfg: MpDbmConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        let Some(classes) = data.num_classes else {
            return Err(Error::config(
                "data.dataset",
                &data.name,
                "a labelled dataset for mp-dbm (its label units are predicted and classify)",
            ));
        };
        let kind = match cfg.dtype {
            Dtype::Float32 => Kind::Float,
            Dtype::Float64 => Kind::Double,
        };
        let base_b = base_rate_biases(data)?.to_kind(kind).to_device(ctx.device);
        let mut sizes = vec![data.example_numel()];
        sizes.extend(&cfg.hidden);
        let mut vs = VarStore::new(ctx.device);
        vs.set_kind(kind);
        let root = vs.root() / "mpdbm";
        let init = Init::Randn {
            mean: 0.0,
            stdev: cfg.init_std,
        };
        let weights = (1..sizes.len())
            .map(|l| root.var(&format!("w{l}"), &[sizes[l - 1], sizes[l]], init))
            .collect();
        let mut biases = vec![root.var_copy("b0", &base_b)];
        for (l, &n) in sizes.iter().enumerate().skip(1) {
            biases.push(root.zeros(&format!("b{l}"), &[n]));
        }
        let top = *sizes.last().expect("at least one hidden layer");
        let label_w = root.var("u", &[top, classes], init);
        let label_b = root.zeros("c", &[classes]);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(MpDbm {
            shape: data.shape.clone(),
            cfg,
            sizes,
            classes,
            kind,
            vs,
            weights,
            biases,
            label_w,
            label_b,
            opt,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &MpDbmConfig {
        &self.cfg
    }

    /// Number of hidden layers L.
    pub fn depth(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Layer sizes n_0 = D, n_1 … n_L.
    pub fn sizes(&self) -> &[i64] {
        &self.sizes
    }

    /// The weights W_1 … W_L, biases b_0 … b_L, label weights U and label biases c (the
    /// variables themselves).
    pub fn params(&self) -> (&[Tensor], &[Tensor], &Tensor, &Tensor) {
        (&self.weights, &self.biases, &self.label_w, &self.label_b)
    }

    /// Examples `[N, …]` as `[N, D]` in the parameters' kind.
    pub fn flat(&self, v: &Tensor) -> Tensor {
        v.reshape([-1, self.sizes[0]]).to_kind(self.kind)
    }

    /// The multi-prediction loss per example `[N]` for pixels `v` `[N, D]` and one-hot
    /// labels `y` `[N, K]` (zero rows where unknown), under the masks `v_mask` `[N, D]`
    /// and `y_mask` `[N, 1]` (1 = input): Σ over target pixels of their cross-entropy under
    /// the final Q, plus `label_weight` × the label's when it is a target. A label is a
    /// target only where it is known (`y` has a one in its row) and not an input; an
    /// unknown label is never an input either: it is inferred.
    pub fn loss(&self, v: &Tensor, y: &Tensor, v_mask: &Tensor, y_mask: &Tensor) -> Tensor {
        let y_mask = &(y_mask * y.sum_dim_intlist(1, true, self.kind));
        let obs = Observed {
            v,
            v_mask,
            y,
            y_mask,
        };
        let q = self.infer(&obs, self.cfg.mf_steps, false);
        let pixels = q.v_logits.binary_cross_entropy_with_logits::<Tensor>(
            v,
            None,
            None,
            tch::Reduction::None,
        ) * v_mask.ones_like().g_sub(v_mask);
        let label_target = y_mask.ones_like().g_sub(y_mask) * y;
        let label = -(q.y_logits.log_softmax(1, self.kind) * label_target);
        pixels.sum_dim_intlist(1, false, self.kind)
            + label.sum_dim_intlist(1, false, self.kind) * self.cfg.label_weight
    }

    /// Random masks of one training batch: each pixel an input with probability
    /// 1 − `target_prob`, the label likewise (drawn from libtorch's generator).
    pub(super) fn training_masks(&self, n: i64, device: Device) -> (Tensor, Tensor) {
        let keep = 1.0 - self.cfg.target_prob;
        let draw = |cols: i64| {
            Tensor::rand([n, cols], (self.kind, device))
                .lt(keep)
                .to_kind(self.kind)
        };
        (draw(self.sizes[0]), draw(1))
    }

    /// The loss of `batch` under fresh masks, with its metrics.
    fn batch_loss(&self, batch: &Batch) -> Result<(Tensor, Metrics)> {
        let v = self.flat(&batch.x);
        let y = match &batch.y {
            Some(y) => self.one_hot(&y.to_device(v.device())),
            None => return Err(Error::Msg("mp-dbm needs labelled batches".into())),
        };
        let (v_mask, y_mask) = self.training_masks(v.size()[0], v.device());
        let per_example = self.loss(&v, &y, &v_mask, &y_mask);
        let loss = per_example.mean(self.kind);
        let targets = tch::no_grad(|| {
            let labels = y_mask.ones_like().g_sub(&y_mask) * y.sum_dim_intlist(1, true, self.kind);
            let pixels = v_mask.ones_like().g_sub(&v_mask).sum(self.kind);
            (pixels + labels.sum(self.kind)).clamp_min(1.0)
        });
        let per_target = per_example.detach().sum(self.kind) / targets;
        Ok((
            loss.shallow_clone(),
            vec![
                ("loss", loss.detach().to_kind(Kind::Float)),
                ("loss_per_target", per_target.to_kind(Kind::Float)),
            ],
        ))
    }

    /// ½ λ Σ ‖W‖² over W_1 … W_L and U.
    fn weight_penalty(&self) -> Option<Tensor> {
        (self.cfg.weight_decay > 0.0).then(|| {
            let sq: Tensor = self
                .weights
                .iter()
                .chain(std::iter::once(&self.label_w))
                .map(|w| w.square().sum(self.kind))
                .sum();
            sq * (0.5 * self.cfg.weight_decay)
        })
    }

    /// `steps` block-Gibbs sweeps of the model read as a DBM with the label as a softmax
    /// unit, from fresh chains (pixels from the base-rate model, hidden units fair coins,
    /// labels uniform) or with the label clamped to `class`; p(v = 1 | h_1) at the end.
    pub fn gibbs_sample(&self, n: i64, class: Option<i64>, steps: i64) -> Tensor {
        tch::no_grad(|| {
            let device = self.vs.device();
            let opts = (self.kind, device);
            let mut x = vec![bernoulli(
                &self.biases[0].sigmoid().unsqueeze(0).expand([n, -1], false),
            )];
            for &s in &self.sizes[1..] {
                x.push(bernoulli(&Tensor::full([n, s], 0.5, opts)));
            }
            let uniform = Tensor::full([n, self.classes], 1.0 / self.classes as f64, opts);
            let draw_label = |p: &Tensor| match class {
                Some(c) => Tensor::full([n], c, (Kind::Int64, device))
                    .one_hot(self.classes)
                    .to_kind(self.kind),
                None => p
                    .multinomial(1, true)
                    .squeeze_dim(1)
                    .one_hot(self.classes)
                    .to_kind(self.kind),
            };
            let mut y = draw_label(&uniform);
            let depth = self.depth();
            for _ in 0..steps {
                for odd in [false, true] {
                    for l in (0..=depth + 1).filter(|l| (l % 2 == 1) == odd) {
                        if l == depth + 1 {
                            y = draw_label(&self.label_logits(&x[depth]).softmax(1, self.kind));
                        } else if l == 0 {
                            x[0] = bernoulli(&self.visible_logits(&x[1]).sigmoid());
                        } else {
                            x[l] = bernoulli(&self.hidden_input(&x, &y, l).sigmoid());
                        }
                    }
                }
            }
            layer_input(&self.weights, &self.biases, 0, None, Some(&x[1])).sigmoid()
        })
    }

    /// Flat probabilities `[n, D]` as images `[n, …shape]` in f32.
    fn as_shaped(&self, p: Tensor) -> Tensor {
        let mut shape = vec![p.size()[0]];
        shape.extend_from_slice(&self.shape);
        p.to_kind(Kind::Float).reshape(shape.as_slice())
    }
}

impl Model for MpDbm {
    gm_core::single_network!(vs, opt, "opt");

    fn name(&self) -> &str {
        "mp-dbm"
    }

    /// One step of back-propagation through the unrolled mean field, on fresh masks.
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (loss, metrics) = self.batch_loss(batch)?;
        let total = match self.weight_penalty() {
            Some(p) => loss + p,
            None => loss,
        };
        self.opt.backward_step(&total)?;
        Ok(metrics)
    }

    /// The loss of a held-out batch under fresh masks, and the error of Q(y | all pixels).
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let (_, mut metrics) = tch::no_grad(|| self.batch_loss(batch))?;
        if let Some(y) = &batch.y {
            let v = self.flat(&batch.x);
            let q = self.classify(&v, &v.ones_like(), false);
            let wrong = q.argmax(1, false).ne_tensor(&y.to_device(v.device()));
            metrics.push(("error", wrong.to_kind(Kind::Float).mean(Kind::Float)));
        }
        Ok(metrics)
    }

    /// p(v = 1 | h_1) after `sample_steps` block-Gibbs sweeps from fresh chains.
    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(self.as_shaped(self.gibbs_sample(n, None, self.cfg.sample_steps)))
    }

    /// The first layer's filters and completions of held-out images with half their pixels
    /// hidden at random.
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        let m = self.sizes[1].min(100);
        let filters = Figure {
            name: "filters".into(),
            caption: format!(
                "the first {m} filters of layer 1 (columns of W_1), each scaled to its own range"
            ),
            images: as_images(&scaled_filters(&self.weights[0], m), &self.shape),
            per_row: 10,
        };
        let n = x.size()[0].min(10);
        let mut figures = vec![filters];
        if self.shape.len() == 3 {
            let x = x.narrow(0, 0, n).to_kind(Kind::Float);
            figures.push(completion_figure(self, &x, &MaskSpec::Random(0.5), 1, 0)?);
        }
        Ok(figures)
    }

    /// None: multi-prediction training does not fit the likelihood (§20.4.5), and the
    /// model reports none.
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }

    /// Classification errors of Q(y | x) on `split`: every pixel observed, with the
    /// averaged inputs, and with each fraction of `missing` pixels hidden at random.
    fn statistics(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        self.classification_errors(split, cfg)
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    fn as_conditional(&self) -> Option<&dyn Conditional> {
        Some(self)
    }

    fn as_completion(&self) -> Option<&dyn Complete> {
        Some(self)
    }
}

impl Conditional for MpDbm {
    fn num_classes(&self) -> i64 {
        self.classes
    }

    /// p(v = 1 | h_1) after `sample_steps` block-Gibbs sweeps with the label clamped.
    fn sample_class(&self, n: i64, class: i64) -> Result<Tensor> {
        gm_core::model::check_class("mp-dbm", class, self.classes)?;
        Ok(self.as_shaped(self.gibbs_sample(n, Some(class), self.cfg.sample_steps)))
    }
}

impl Complete for MpDbm {
    /// Observed pixels copied, hidden ones filled with Q(v_j = 1) after `mf_steps`
    /// mean-field iterations (label unobserved).
    fn complete(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let v = self.flat(x);
        let m = self.flat(mask);
        let n = v.size()[0];
        let opts = (self.kind, v.device());
        let (y, y_mask) = (
            Tensor::zeros([n, self.classes], opts),
            Tensor::zeros([n, 1], opts),
        );
        let obs = Observed {
            v: &v,
            v_mask: &m,
            y: &y,
            y_mask: &y_mask,
        };
        let q = tch::no_grad(|| self.infer(&obs, self.cfg.mf_steps, false));
        Ok(q.means[0].to_kind(x.kind()).reshape(x.size().as_slice()))
    }

    fn completion_kind(&self) -> CompletionKind {
        CompletionKind::Approximate {
            method: format!(
                "Q(v_j = 1) after {} mean-field iterations with the observed pixels clamped",
                self.cfg.mf_steps
            ),
        }
    }
}
