//! The [`Dbm`] itself: parameters, persistent chains, energy, conditionals, block Gibbs
//! sampling and its [`Model`] implementation.

use super::ais::AisOptions;
use super::config::{DbmConfig, SampleStart};
use super::finetune;
use crate::dbn::finetune::Classifier;
use crate::rbm::{as_images, scaled_filters, Dtype, MARGINAL_EPS};
use gm_core::config::RunConfig;
use gm_core::data::{Batch, Dataset, Split};
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LogLikelihood, Metrics, Model, Statistic,
};
use gm_core::optim::Optimizer;
use gm_core::sampling::bernoulli::sample as bernoulli;
use gm_core::{Error, Result};
use gm_eval::ais::{rbm::BernoulliRbm, Schedule};
use tch::nn::{Init, VarStore};
use tch::{Device, Kind, Tensor};

/// A deep Boltzmann machine with its optimizer and persistent chains.
///
/// Layers are indexed 0 … L, layer 0 the visible units; W_l `[n_{l−1}, n_l]` joins layers
/// l − 1 and l, b_l `[n_l]` is layer l's bias.
pub struct Dbm {
    pub(super) cfg: DbmConfig,
    pub(super) shape: Vec<i64>,
    /// Layer sizes n_0 = D, n_1 … n_L.
    pub(super) sizes: Vec<i64>,
    pub(super) kind: Kind,
    pub(super) vs: VarStore,
    /// W_1 … W_L (`weights[l − 1]` is W_l).
    pub(super) weights: Vec<Tensor>,
    /// b_0 … b_L.
    pub(super) biases: Vec<Tensor>,
    pub(super) opt: Optimizer,
    /// Position in [`Optimizer::params`] of each of W_1 … W_L, b_0 … b_L, in that order.
    pub(super) slots: Vec<usize>,
    /// The checkpointed state: the persistent chains.
    pub(super) state: VarStore,
    /// Persistent chains, one `[C, n_l]` tensor per layer 0 … L.
    pub(super) chains: Vec<Tensor>,
    /// Visible biases of the base-rate model (logits of the training marginals).
    pub(super) base_b: Tensor,
    /// The training images, for pre-training and the probe (shares the dataset's memory).
    pub(super) train_x: Tensor,
    /// The training labels and the number of classes, when the dataset has them (for the
    /// mean-field probe of `gm eval`).
    pub(super) train_y: Option<Tensor>,
    pub(super) classes: Option<i64>,
    /// Batch size of pre-training (the run's `data.batch_size`).
    pub(super) pretrain_batch: i64,
    /// 1 once pre-training has run (in the checkpointed state; only when it is on).
    pub(super) pretrained: Option<Tensor>,
    /// Centering offsets o_0 … o_L, `[n_l]` each (in the checkpointed state; only when
    /// centering is on).
    pub(super) offsets: Option<Vec<Tensor>>,
    /// The fine-tuning MLP (`finetune_after` set).
    pub(super) classifier: Option<Classifier>,
    /// 1 once the MLP has copied the DBM's weights (in the checkpointed state; only with
    /// fine-tuning).
    pub(super) finetune_started: Option<Tensor>,
    /// The DBM update count after which every step fine-tunes.
    pub(super) finetune_from: i64,
}

/// Builds a DBM from a run config (the `dbm` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: DbmConfig = parse_params("dbm", &ctx.cfg.model.params)?;
    Ok(Box::new(Dbm::new(cfg, ctx)?))
}

impl Dbm {
    /// A new DBM for binary data shaped like `ctx.data`: W_l ~ N(0, init_std²), hidden
    /// biases 0 and b_0 the logits of the training marginals (as `rbm`); persistent chains
    /// with v from that base-rate model and hidden units fair coins.
    pub fn new(cfg: DbmConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let (data, device) = (ctx.data, ctx.device);
        let kind = match cfg.dtype {
            Dtype::Float32 => Kind::Float,
            Dtype::Float64 => Kind::Double,
        };
        let base_b = base_rate_biases(data)?.to_kind(kind).to_device(device);
        let mut sizes = vec![data.example_numel()];
        sizes.extend(&cfg.hidden);
        let mut vs = VarStore::new(device);
        vs.set_kind(kind);
        let (weights, biases) = parameters(&vs, &sizes, &base_b, cfg.init_std);
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        let slots = weights
            .iter()
            .chain(&biases)
            .map(|t| slot(&opt, t))
            .collect();
        let n_chains = cfg.chains.unwrap_or(ctx.cfg.data.batch_size);
        let state = VarStore::new(device);
        let chains = initial_chains(&state, &sizes, &base_b, n_chains);
        let pretrained = (cfg.pretrain.epochs > 0)
            .then(|| (state.root() / "dbm").zeros_no_train("pretrained", &[1]));
        let offsets = cfg
            .centering
            .then(|| initial_offsets(&state, &sizes, &base_b));
        let (classifier, finetune_from) = match finetune::classifier(&cfg, ctx, &sizes, kind)? {
            Some((c, from)) => (Some(c), from),
            None => (None, i64::MAX),
        };
        let finetune_started = classifier
            .is_some()
            .then(|| (state.root() / "dbm").zeros_no_train("finetune_started", &[1]));
        Ok(Dbm {
            train_x: data.train.x.shallow_clone(),
            train_y: data.train.y.as_ref().map(Tensor::shallow_clone),
            classes: data.num_classes,
            pretrain_batch: ctx.cfg.data.batch_size,
            pretrained,
            shape: data.shape.clone(),
            cfg,
            sizes,
            kind,
            vs,
            weights,
            biases,
            opt,
            slots,
            state,
            chains,
            base_b,
            offsets,
            classifier,
            finetune_started,
            finetune_from,
        })
    }

    /// The resolved configuration.
    pub fn config(&self) -> &DbmConfig {
        &self.cfg
    }

    /// Layer sizes n_0 = D (visible), n_1 … n_L.
    pub fn sizes(&self) -> &[i64] {
        &self.sizes
    }

    /// Number of hidden layers L.
    pub fn depth(&self) -> usize {
        self.sizes.len() - 1
    }

    /// The weights W_1 … W_L and biases b_0 … b_L (the variables themselves: copy into
    /// them under `tch::no_grad` to set them).
    pub fn params(&self) -> (&[Tensor], &[Tensor]) {
        (&self.weights, &self.biases)
    }

    /// The centering offsets o_0 … o_L when centering is on (the variables themselves).
    pub fn offsets(&self) -> Option<&[Tensor]> {
        self.offsets.as_deref()
    }

    /// The persistent chains, one `[C, n_l]` tensor per layer 0 … L.
    pub fn chains(&self) -> &[Tensor] {
        &self.chains
    }

    /// Examples `[N, …]` as `[N, D]` in the parameters' kind.
    pub fn flat(&self, v: &Tensor) -> Tensor {
        v.reshape([-1, self.sizes[0]]).to_kind(self.kind)
    }

    /// The total input of layer `l` given the states (or means) `x` of its neighbours:
    /// b_l + x_{l−1} W_l + x_{l+1} W_{l+1}ᵀ, `[N, n_l]` (records gradients outside
    /// `no_grad`). Entries of `x` other than l ± 1 are not read.
    pub fn input(&self, x: &[Tensor], l: usize) -> Tensor {
        let below = l.checked_sub(1).map(|k| &x[k]);
        layer_input(&self.weights, &self.biases, l, below, x.get(l + 1))
    }

    /// E(x) = −Σ_l x_l·b_l − Σ_l x_{l−1}ᵀ W_l x_l for states (or means) of every layer,
    /// `[N]`; records gradients outside `no_grad`.
    pub fn energy(&self, x: &[Tensor]) -> Tensor {
        let mut e = -x[0].matmul(&self.biases[0]);
        for l in 1..=self.depth() {
            e = e
                - x[l].matmul(&self.biases[l])
                - (x[l - 1].matmul(&self.weights[l - 1]) * &x[l])
                    .sum_dim_intlist(1, false, self.kind);
        }
        e
    }

    /// The layers of one side of the bipartite graph (figure 20.3): the even ones (v, h2,
    /// h4 …) when `odd` is false, else h1, h3 ….
    pub fn parity_layers(&self, odd: bool) -> Vec<usize> {
        (0..=self.depth()).filter(|l| (l % 2 == 1) == odd).collect()
    }

    /// Resamples every layer of one parity given the other (they are conditionally
    /// independent: figure 20.3), in place.
    pub fn gibbs_block(&self, x: &mut [Tensor], odd: bool) {
        tch::no_grad(|| {
            for l in self.parity_layers(odd) {
                x[l] = bernoulli(&self.input(x, l).sigmoid_());
            }
        })
    }

    /// `steps` block-Gibbs sweeps of the chains `x` (one `[C, n_l]` per layer): even layers
    /// given odd, then odd given even.
    pub fn gibbs(&self, x: &mut [Tensor], steps: i64) {
        for _ in 0..steps {
            self.gibbs_block(x, false);
            self.gibbs_block(x, true);
        }
    }

    /// `n` fresh chains: v from the base-rate model, hidden units fair coins.
    pub fn fresh_chains(&self, n: i64) -> Vec<Tensor> {
        tch::no_grad(|| {
            (0..=self.depth())
                .map(|l| bernoulli(&self.chain_marginal(l).unsqueeze(0).expand([n, -1], false)))
                .collect()
        })
    }

    /// The starting marginal of layer `l`'s chains: σ(base-rate biases) for v, ½ above.
    fn chain_marginal(&self, l: usize) -> Tensor {
        chain_marginal(&self.base_b, self.sizes[l], l)
    }

    /// p(v = 1 | h1) `[N, D]` after `sample_steps` sweeps from `sample_start`.
    pub fn sample_visible_probs(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let mut x = match self.cfg.sample_start {
                SampleStart::Fresh => self.fresh_chains(n),
                SampleStart::Chains => self.persistent_start(n),
            };
            self.gibbs(&mut x, self.cfg.sample_steps);
            self.input(&x, 0).sigmoid_()
        })
    }

    /// `n` chains copied from the persistent ones (chain i from chain i mod C).
    pub fn persistent_start(&self, n: i64) -> Vec<Tensor> {
        let c = self.chains[0].size()[0];
        let idx = Tensor::arange(n, (Kind::Int64, self.base_b.device())).remainder(c);
        self.chains
            .iter()
            .map(|t| t.index_select(0, &idx))
            .collect()
    }

    /// Writes `grads` (W_1 … W_L, b_0 … b_L) into the optimizer's order and steps it.
    pub(super) fn apply(&mut self, grads: Vec<Tensor>) -> Result<()> {
        let mut ordered: Vec<(usize, Tensor)> = self.slots.iter().copied().zip(grads).collect();
        ordered.sort_by_key(|(s, _)| *s);
        let grads: Vec<Tensor> = ordered.into_iter().map(|(_, g)| g).collect();
        self.opt.apply_gradients(&grads)
    }
}

/// The logits of the training data's marginals, clamped to [ε, 1 − ε] (ε = `MARGINAL_EPS`),
/// `f64 [D]`; an error on real-valued data.
pub(crate) fn base_rate_biases(data: &Dataset) -> Result<Tensor> {
    if !data.binary {
        return Err(Error::config(
            "data.binarize",
            "\"none\"",
            format!(
                "binary data for a DBM's Bernoulli visible units, but dataset {} is \
                 real-valued here: set data.binarize to \"dynamic\", \"stochastic\" or \
                 \"threshold\"",
                data.name
            ),
        ));
    }
    let x = data.train.x.reshape([-1, data.example_numel()]);
    let mean = x.to_kind(Kind::Double).mean_dim(0, false, Kind::Double);
    Ok(BernoulliRbm::base_rate_biases(&mean, MARGINAL_EPS))
}

/// The position of parameter `t` in [`Optimizer::params`].
fn slot(opt: &Optimizer, t: &Tensor) -> usize {
    opt.params()
        .iter()
        .position(|p| p.data_ptr() == t.data_ptr())
        .expect("every DBM parameter is optimised")
}

/// b_l + `below` W_l + `above` W_{l+1}ᵀ for the `weights` W_1 … W_L and `biases`
/// b_0 … b_L, a neighbour left out where it is `None`; `[N, n_l]`.
pub(crate) fn layer_input(
    weights: &[Tensor],
    biases: &[Tensor],
    l: usize,
    below: Option<&Tensor>,
    above: Option<&Tensor>,
) -> Tensor {
    let mut a = biases[l].unsqueeze(0);
    if let Some(x) = below {
        a = x.matmul(&weights[l - 1]) + a;
    }
    if let Some(x) = above {
        a = x.matmul(&weights[l].tr()) + a;
    }
    a
}

/// The variables W_1 … W_L (N(0, std²)) and b_0 = `base_b`, b_1 … b_L = 0 of `vs`.
fn parameters(
    vs: &VarStore,
    sizes: &[i64],
    base_b: &Tensor,
    std: f64,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let root = vs.root() / "dbm";
    let init = Init::Randn {
        mean: 0.0,
        stdev: std,
    };
    let weights = (1..sizes.len())
        .map(|l| root.var(&format!("w{l}"), &[sizes[l - 1], sizes[l]], init))
        .collect();
    let mut biases = vec![root.var_copy("b0", base_b)];
    for (l, &n) in sizes.iter().enumerate().skip(1) {
        biases.push(root.zeros(&format!("b{l}"), &[n]));
    }
    (weights, biases)
}

/// σ(`base_b`) for layer 0, ½ for the `n` units of a hidden layer.
fn chain_marginal(base_b: &Tensor, n: i64, l: usize) -> Tensor {
    if l == 0 {
        base_b.sigmoid()
    } else {
        Tensor::full([n], 0.5, (base_b.kind(), base_b.device()))
    }
}

/// `c` persistent chains per layer, kept in `state` (`chain0` … `chainL`).
fn initial_chains(state: &VarStore, sizes: &[i64], base_b: &Tensor, c: i64) -> Vec<Tensor> {
    let root = state.root() / "dbm";
    tch::no_grad(|| {
        sizes
            .iter()
            .enumerate()
            .map(|(l, &n)| {
                let p = chain_marginal(base_b, n, l)
                    .unsqueeze(0)
                    .expand([c, n], false);
                root.add(&format!("chain{l}"), bernoulli(&p), false)
            })
            .collect()
    })
}

/// The starting centering offsets: the data mean for v (σ of the base-rate biases), ½ above.
fn initial_offsets(state: &VarStore, sizes: &[i64], base_b: &Tensor) -> Vec<Tensor> {
    let root = state.root() / "dbm";
    tch::no_grad(|| {
        sizes
            .iter()
            .enumerate()
            .map(|(l, &n)| root.add(&format!("center{l}"), chain_marginal(base_b, n, l), false))
            .collect()
    })
}

impl Model for Dbm {
    fn name(&self) -> &str {
        "dbm"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        let mut v = vec![("model", &self.vs), ("state", &self.state)];
        if let Some(c) = &self.classifier {
            v.push(("classifier", &c.vs));
        }
        v
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        let mut v = vec![("model", &mut self.vs), ("state", &mut self.state)];
        if let Some(c) = &mut self.classifier {
            v.push(("classifier", &mut c.vs));
        }
        v
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        let mut v = vec![("opt", &mut self.opt)];
        if let Some(c) = &mut self.classifier {
            v.push(("classifier", &mut c.opt));
        }
        v
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        let mut v = vec![("opt", &self.opt)];
        if let Some(c) = &self.classifier {
            v.push(("classifier", &c.opt));
        }
        v
    }

    /// One update of Algorithm 20.1 (mean-field positive phase, persistent-chain negative
    /// phase), or a fine-tuning step once `finetune_after` epochs have run.
    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        if self.finetuning() {
            return self.finetune_step(batch);
        }
        self.step(&batch.x)
    }

    /// The mean-field metrics of a held-out batch (the fine-tuning metrics once it runs).
    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        if self.finetune_begun() {
            return self.finetune_metrics(batch);
        }
        let v = self.flat(&batch.x);
        Ok(self.mean_field_metrics(&self.mean_field(&v)))
    }

    /// p(v = 1 | h1) after `sample_steps` block-Gibbs sweeps.
    fn sample(&self, n: i64) -> Result<Tensor> {
        let pv = self.sample_visible_probs(n).to_kind(Kind::Float);
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        Ok(pv.reshape(shape.as_slice()))
    }

    /// The first layer's filters, and held-out data beside p(v = 1 | μ_1) from mean field.
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        tch::no_grad(|| {
            let m = self.sizes[1].min(100);
            let n = x.size()[0].min(50);
            let mf = self.mean_field(&self.flat(&x.narrow(0, 0, n)));
            let recon = self.input(&mf.means, 0).sigmoid();
            let pairs = Tensor::stack(&[&mf.means[0], &recon], 1).reshape([2 * n, self.sizes[0]]);
            Ok(vec![
                Figure {
                    name: "filters".into(),
                    caption: format!(
                        "the first {m} filters of layer 1 (columns of W_1), each scaled to its own range"
                    ),
                    images: as_images(&scaled_filters(&self.weights[0], m), &self.shape),
                    per_row: 10,
                },
                Figure {
                    name: "reconstructions".into(),
                    caption: "held-out data (left of each pair) and p(v | μ_1), μ the \
                              mean-field posterior means (right)"
                        .into(),
                    images: as_images(&pairs, &self.shape),
                    per_row: 10,
                },
            ])
        })
    }

    /// The exact log p(x) and the mean-field lower bound with the exact log Z (models small
    /// enough to enumerate), then the mean-field bound with the AIS estimate of log Z
    /// (`eval.ais_chains` chains; `eval.ais_steps` linear steps, or the Salakhutdinov–Murray
    /// schedule).
    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let schedule = match cfg.eval.ais_steps {
            None => Schedule::salakhutdinov_murray(),
            Some(n) => Schedule::linear(n)?,
        };
        let ais = AisOptions {
            chains: cfg.eval.ais_chains,
            schedule,
            reverse: cfg.eval.ais_reverse,
        };
        self.evaluation_log_likelihoods(x, cfg.data.eval_batch_size, &ais)
    }

    /// The linear probe's classification error on the mean-field features, and the
    /// fine-tuned MLP's once fine-tuning has run (labelled data).
    fn statistics(&self, split: &Split, cfg: &RunConfig) -> Result<Vec<Statistic>> {
        let mut stats = self.probe_error(split, cfg)?;
        stats.extend(self.finetune_error(split, cfg)?);
        Ok(stats)
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
