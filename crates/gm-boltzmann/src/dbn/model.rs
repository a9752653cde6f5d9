use super::config::{DbnConfig, MAX_LAYERS};
use super::finetune::Classifier;
use crate::rbm::Rbm;
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::data::Split;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LogLikelihood, Metrics, Model, Statistic,
};
use gm_core::optim::Optimizer;
use gm_core::sampling::bernoulli::sample as bernoulli;
use gm_core::{Error, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Checkpoint names of the layers' parameter stores (and of their optimizers).
const MODEL_STORES: [&str; MAX_LAYERS] = [
    "layer1", "layer2", "layer3", "layer4", "layer5", "layer6", "layer7", "layer8",
];
/// Checkpoint names of the layers' own state (persistent chains, centering offsets).
const STATE_STORES: [&str; MAX_LAYERS] = [
    "layer1-state",
    "layer2-state",
    "layer3-state",
    "layer4-state",
    "layer5-state",
    "layer6-state",
    "layer7-state",
    "layer8-state",
];

/// The running mean activation of an upper layer's input (the hidden units of the layer
/// below, as propagated in training) and the base-rate biases derived from it.
pub(super) struct Marginals {
    /// Mean of the inputs seen so far, `f64 [n]`.
    pub(super) mean: Tensor,
    /// Number of inputs seen, `f64 []`.
    pub(super) seen: Tensor,
    /// logit(clamp(mean)), in the layer's kind: shared with the layer's RBM as its AIS
    /// base-rate model.
    pub(super) base: Tensor,
}

/// A deep belief network: a stack of Bernoulli RBMs, trained greedily bottom up.
pub struct Dbn {
    pub(super) cfg: DbnConfig,
    pub(super) shape: Vec<i64>,
    /// Layer l is the RBM between h_l and h_{l+1} (h_0 = v); the last one is the top,
    /// undirected part of the DBN.
    pub(super) layers: Vec<Rbm>,
    /// The DBN's own checkpointed state: the step counter and the upper layers' marginals.
    pub(super) state: VarStore,
    /// Training steps taken, `i64 []`.
    pub(super) step: Tensor,
    /// For each layer above the first, its input marginals (`None` for layer 0).
    pub(super) marginals: Vec<Option<Marginals>>,
    /// Batches per epoch of the trainer (from the training split and the batch size).
    pub(super) steps_per_epoch: i64,
    /// Cumulative `layer_epochs`: layer l trains in epochs `[ends[l−1], ends[l])`.
    pub(super) layer_ends: Vec<i64>,
    /// The MLP of discriminative fine-tuning (`finetune = true`).
    pub(super) classifier: Option<Classifier>,
    /// 1 once the classifier has copied the layers' weights, `f64 []` (in `state`).
    pub(super) finetune_started: Tensor,
}

/// Builds a DBN from a run config (the `dbn` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: DbnConfig = parse_params("dbn", &ctx.cfg.model.params)?;
    Ok(Box::new(Dbn::new(cfg, ctx)?))
}

impl Dbn {
    /// A new DBN for binary data shaped like `ctx.data`: layer 1 is built as `rbm` builds
    /// it (visible biases from the data's marginals); the layers above start with zero
    /// visible biases, set to the logits of their input's mean activations when their
    /// training starts.
    pub fn new(cfg: DbnConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let device = ctx.device;
        let mut layers = vec![Rbm::new(cfg.layer(0), ctx)?];
        let state = VarStore::new(device);
        let root = state.root() / "dbn";
        let step = root.add("step", Tensor::zeros([], (Kind::Int64, device)), false);
        let finetune_started = root.add(
            "finetune_started",
            Tensor::zeros([], (Kind::Double, device)),
            false,
        );
        let mut marginals = vec![None];
        for l in 1..cfg.hidden.len() {
            let (rbm, m) = upper_layer(&cfg, l, ctx, &root)?;
            layers.push(rbm);
            marginals.push(Some(m));
        }
        let classifier = classifier(&cfg, ctx, layers[0].params().0.kind())?;
        let layer_ends = cfg
            .layer_epochs
            .iter()
            .scan(0, |acc, &e| {
                *acc += e;
                Some(*acc)
            })
            .collect();
        Ok(Dbn {
            shape: ctx.data.shape.clone(),
            steps_per_epoch: steps_per_epoch(ctx.cfg, ctx.data.train.len()),
            cfg,
            layers,
            state,
            step,
            marginals,
            layer_ends,
            classifier,
            finetune_started,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &DbnConfig {
        &self.cfg
    }

    /// The layers' RBMs, bottom up (layer l between h_l and h_{l+1}, h_0 = v).
    pub fn layers(&self) -> &[Rbm] {
        &self.layers
    }

    /// The top, undirected RBM (between h_{L−1} and h_L).
    pub fn top(&self) -> &Rbm {
        self.layers.last().expect("a DBN has at least two layers")
    }

    /// Number of visible units D.
    pub fn visible(&self) -> i64 {
        self.layers[0].visible()
    }

    /// Training steps taken so far.
    pub fn steps_taken(&self) -> i64 {
        self.step.int64_value(&[])
    }

    /// States of h_{L−1} `[n, n_{L−1}]` after `sample_steps` block-Gibbs sweeps of `n`
    /// chains of the top RBM, started from its base-rate model.
    pub fn top_samples(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let top = self.top();
            let p0 = top
                .base_rate_biases()
                .sigmoid()
                .unsqueeze(0)
                .expand([n, top.visible()], false);
            top.gibbs(&bernoulli(&p0), self.cfg.sample_steps)
        })
    }

    /// h1 `[n, n_1]` drawn ancestrally: top-RBM Gibbs, then h_{l} ~ p(h_l | h_{l+1}) down
    /// the directed layers.
    pub fn sample_h1(&self, n: i64) -> Tensor {
        let mut h = self.top_samples(n);
        for layer in self.layers[1..self.layers.len() - 1].iter().rev() {
            h = layer.sample_v(&h);
        }
        h
    }

    /// Binary visible samples v ~ p(v | h1) `[n, D]` of the ancestral sampler.
    pub fn sample_binary(&self, n: i64) -> Tensor {
        self.layers[0].sample_v(&self.sample_h1(n))
    }
}

/// Layer `l ≥ 1`: an RBM on the `hidden[l − 1]` units below, with zero visible biases, and
/// its marginals kept in the DBN's state under `root`, whose base-rate biases the RBM
/// shares.
fn upper_layer(
    cfg: &DbnConfig,
    l: usize,
    ctx: &BuildContext<'_>,
    root: &tch::nn::Path<'_>,
) -> Result<(Rbm, Marginals)> {
    let (n, device) = (cfg.hidden[l - 1], ctx.device);
    let half = Tensor::full([n], 0.5, (Kind::Double, device));
    let mut rbm = Rbm::with_marginals(cfg.layer(l), ctx.cfg, vec![n], &half, device)?;
    let kind = rbm.params().0.kind();
    let name = |what: &str| format!("{what}{}", l + 1);
    let base = root.add(&name("base_b"), Tensor::zeros([n], (kind, device)), false);
    rbm.share_base_rate(base.shallow_clone());
    let seen = Tensor::zeros([], (Kind::Double, device));
    let m = Marginals {
        mean: root.add(&name("mean"), half, false),
        seen: root.add(&name("seen"), seen, false),
        base,
    };
    Ok((rbm, m))
}

/// The fine-tuning MLP when `finetune` is on (an error on a dataset without labels).
fn classifier(cfg: &DbnConfig, ctx: &BuildContext<'_>, kind: Kind) -> Result<Option<Classifier>> {
    if !cfg.finetune {
        return Ok(None);
    }
    let data = ctx.data;
    let classes = match (data.num_classes, &data.train.y) {
        (Some(k), Some(_)) => k,
        _ => {
            return Err(Error::config(
                "model.finetune",
                true,
                format!(
                    "a labelled dataset for discriminative fine-tuning; {} has no labels",
                    data.name
                ),
            ))
        }
    };
    let mut sizes = vec![data.example_numel()];
    sizes.extend(&cfg.hidden);
    Classifier::new(&sizes, classes, kind, ctx.device, ctx.cfg).map(Some)
}

/// Batches per epoch of the trainer on `n_train` examples (as `gm_core::train` counts them).
pub(crate) fn steps_per_epoch(cfg: &RunConfig, n_train: i64) -> i64 {
    let bs = cfg.data.batch_size.max(1);
    let n = if cfg.data.drop_last {
        n_train / bs
    } else {
        (n_train + bs - 1) / bs
    };
    n.max(1)
}

impl Model for Dbn {
    fn name(&self) -> &str {
        "dbn"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        let mut v = vec![("dbn", &self.state)];
        for (l, layer) in self.layers.iter().enumerate() {
            for (name, vs) in layer.var_stores() {
                let store = if name == "model" {
                    MODEL_STORES[l]
                } else {
                    STATE_STORES[l]
                };
                v.push((store, vs));
            }
        }
        if let Some(c) = &self.classifier {
            v.push(("classifier", &c.vs));
        }
        v
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("dbn", &mut self.state)];
        for (l, layer) in self.layers.iter_mut().enumerate() {
            for (name, vs) in layer.var_stores_mut() {
                let store = if name == "model" {
                    MODEL_STORES[l]
                } else {
                    STATE_STORES[l]
                };
                v.push((store, vs));
            }
        }
        if let Some(c) = &mut self.classifier {
            v.push(("classifier", &mut c.vs));
        }
        v
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        let mut v = Vec::new();
        for (l, layer) in self.layers.iter_mut().enumerate() {
            v.extend(
                layer
                    .optimizers()
                    .into_iter()
                    .map(|(_, o)| (MODEL_STORES[l], o)),
            );
        }
        if let Some(c) = &mut self.classifier {
            v.push(("classifier", &mut c.opt));
        }
        v
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        let mut v = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            v.extend(
                layer
                    .optimizers_ref()
                    .into_iter()
                    .map(|(_, o)| (MODEL_STORES[l], o)),
            );
        }
        if let Some(c) = &self.classifier {
            v.push(("classifier", &c.opt));
        }
        v
    }

    /// Greedy layer-wise training (the layer of this epoch trains on the batch passed up to
    /// it), then fine-tuning when asked.
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let m = if self.finetuning_at(self.steps_taken()) {
            self.finetune_step(batch)?
        } else {
            self.greedy_step(&batch.x)?
        };
        self.advance();
        Ok(m)
    }

    /// The metrics of the layer trained last, on the held-out batch passed up to it.
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let last = (self.steps_taken() - 1).max(0);
        if self.finetuning_at(last) {
            return self.finetune_metrics(batch);
        }
        let l = self.layer_at(last);
        let x = self.up_to(l, &batch.x);
        let mut m = self.layers[l].eval_metrics(&Batch::inputs(&x))?;
        m.push(("layer", layer_metric(l, x.device())));
        Ok(m)
    }

    /// p(v = 1 | h1) for h1 drawn ancestrally (top-RBM Gibbs, then the down pass).
    fn sample(&self, n: i64) -> Result<Tensor> {
        tch::no_grad(|| {
            let pv = self.layers[0].p_v(&self.sample_h1(n)).to_kind(Kind::Float);
            let mut shape = vec![n];
            shape.extend_from_slice(&self.shape);
            Ok(pv.reshape(shape.as_slice()))
        })
    }

    /// The first layer's filters and reconstructions.
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        self.layers[0].figures(x)
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let mut out = Vec::new();
        if let Some(ll) = self.exact_log_likelihood(x)? {
            out.push(ll);
        }
        out.push(self.ais_bound(x, cfg)?);
        Ok(out)
    }

    /// The fine-tuned classifier's error, once fine-tuning has run.
    fn statistics(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        self.classification_error(split, cfg)
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.layers[0].device()
    }
}

/// The metric `layer`: the 1-based index of layer `l`, a 0-dim tensor.
pub(super) fn layer_metric(l: usize, device: Device) -> Tensor {
    Tensor::full([], (l + 1) as f64, (Kind::Float, device))
}
