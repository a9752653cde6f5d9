use super::config::MadeConfig;
use crate::common::{self, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{params_table, parse_params, BuildContext, LogLikelihood, Metrics, Model};
use gm_core::nets::{made, Mlp};
use gm_core::optim::Optimizer;
use gm_core::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

/// A MADE: masked MLP layers, the degrees of every mask, its optimizer.
pub struct Made {
    cfg: MadeConfig,
    shape: Vec<i64>,
    dim: i64,
    /// Ordering of each mask (`orders[m][i]`: the variable generated at step i).
    orders: Vec<Vec<i64>>,
    /// Input degrees `i64 [M, D]` (1..=D, the position in the mask's ordering plus one).
    deg_in: Tensor,
    /// Hidden degrees, one `i64 [M, H_l]` per hidden layer.
    deg_hidden: Vec<Tensor>,
    vs: VarStore,
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    opt: Optimizer,
}

/// Builds a MADE from a run config (the `made` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: MadeConfig = parse_params("made", &ctx.cfg.model.params)?;
    Ok(Box::new(Made::new(cfg, ctx)?))
}

impl Made {
    /// A new MADE for binary data shaped like `ctx.data`, its masks drawn from `mask_seed`,
    /// the output biases the logits of the training means.
    pub fn new(cfg: MadeConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let data = ctx.data;
        common::require_binary("made", "data.binarize", "\"none\"", data)?;
        let dim: i64 = data.shape.iter().product();
        common::require_dim("made", dim, 2, &data.shape)?;
        let device = ctx.device;
        let m = cfg.num_masks;
        let base = common::ordering(cfg.ordering, cfg.ordering_seed, dim);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.mask_seed);
        let mut orders = Vec::with_capacity(m);
        let mut deg_in = Vec::with_capacity(m * dim as usize);
        let mut deg_hidden: Vec<Vec<i64>> = vec![Vec::new(); cfg.hidden.len()];
        for _ in 0..m {
            let mut order = base.clone();
            if cfg.order_agnostic {
                order.shuffle(&mut rng);
            }
            deg_in.extend_from_slice(&made::input_degrees(&order));
            let layers = made::hidden_degrees(&mut rng, dim, &cfg.hidden);
            for (l, layer) in layers.iter().enumerate() {
                deg_hidden[l].extend_from_slice(layer);
            }
            orders.push(order);
        }
        let deg_in = Tensor::from_slice(&deg_in)
            .view([m as i64, dim])
            .to_device(device);
        let deg_hidden = deg_hidden
            .into_iter()
            .zip(&cfg.hidden)
            .map(|(d, &h)| Tensor::from_slice(&d).view([m as i64, h]).to_device(device))
            .collect();
        let vs = VarStore::new(device);
        let root = vs.root() / "made";
        let layers = Mlp::new(&root, "fc", dim, &cfg.hidden);
        let out = nn::linear(&root / "out", layers.out_dim(), dim, Default::default());
        tch::no_grad(|| {
            if let Some(bs) = &out.bs {
                bs.shallow_clone()
                    .copy_(&common::logit_marginals(data, dim).to_device(device));
            }
        });
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Made {
            cfg,
            shape: data.shape.clone(),
            dim,
            orders,
            deg_in,
            deg_hidden,
            vs,
            layers: layers.layers,
            out,
            opt,
        })
    }

    /// Number of masks M.
    pub fn num_masks(&self) -> usize {
        self.cfg.num_masks
    }

    /// The ordering of mask `m`.
    pub fn mask_ordering(&self, m: usize) -> &[i64] {
        &self.orders[m]
    }

    /// The binary masks `[out, in]` of every layer for the mask selected by `idx` (`i64 [1]`
    /// on the model's device; no host round-trip).
    fn masks(&self, idx: &Tensor) -> Vec<Tensor> {
        let pick = |d: &Tensor| d.index_select(0, idx).squeeze_dim(0);
        let hidden: Vec<Tensor> = self.deg_hidden.iter().map(pick).collect();
        made::masks(&pick(&self.deg_in), &hidden)
    }

    fn mask_index(&self, m: usize) -> Tensor {
        Tensor::from_slice(&[m as i64]).to_device(self.device())
    }

    /// Masked weights of every layer for the mask selected by `idx`.
    fn masked_weights(&self, idx: &Tensor) -> Vec<Tensor> {
        let masks = self.masks(idx);
        self.layers
            .iter()
            .chain(std::iter::once(&self.out))
            .zip(masks)
            .map(|(l, mk)| &l.ws * mk)
            .collect()
    }

    fn forward(&self, x: &Tensor, weights: &[Tensor]) -> Tensor {
        let mut h = x.reshape([-1, self.dim]);
        for (l, w) in self.layers.iter().zip(weights) {
            h = h.linear(w, l.bs.as_ref()).relu();
        }
        h.linear(
            weights.last().expect("an output layer"),
            self.out.bs.as_ref(),
        )
    }

    /// The logits of the D conditionals `[B, D]` (in the variables' own coordinates) under
    /// mask `m`.
    pub fn logits_with_mask(&self, x: &Tensor, m: usize) -> Tensor {
        self.forward(x, &self.masked_weights(&self.mask_index(m)))
    }

    fn log_prob_with(&self, x: &Tensor, weights: &[Tensor]) -> Tensor {
        let x = x.reshape([-1, self.dim]);
        let logits = self.forward(&x, weights);
        (&x * &logits - logits.softplus()).sum_dim_intlist(-1, false, Kind::Float)
    }

    /// log p_m(x) under the single mask `m`, `[B]`.
    pub fn log_prob_mask(&self, x: &Tensor, m: usize) -> Tensor {
        self.log_prob_with(x, &self.masked_weights(&self.mask_index(m)))
    }

    /// The ensemble's log p(x) = logsumexp_m log p_m(x) − log M, `[B]`.
    pub fn log_prob_ensemble(&self, x: &Tensor) -> Tensor {
        let m = self.cfg.num_masks;
        if m == 1 {
            return self.log_prob_mask(x, 0);
        }
        let per_mask: Vec<Tensor> = (0..m).map(|k| self.log_prob_mask(x, k)).collect();
        Tensor::stack(&per_mask, 0).logsumexp([0], false) - (m as f64).ln()
    }

    /// `n` samples drawn with mask `m`, `[n, D]`.
    fn sample_mask(&self, n: i64, m: usize) -> Tensor {
        let weights = self.masked_weights(&self.mask_index(m));
        let (hidden_w, out_w) = weights.split_at(weights.len() - 1);
        let out_w = &out_w[0];
        let out_b = self
            .out
            .bs
            .as_ref()
            .map(|b| b.shallow_clone())
            .unwrap_or_else(|| Tensor::zeros([self.dim], (Kind::Float, self.device())));
        let x = Tensor::zeros([n, self.dim], (Kind::Float, self.device()));
        let noise = common::logistic_noise(&[n, self.dim], self.device());
        for &d in &self.orders[m] {
            let mut h = x.shallow_clone();
            for (l, w) in self.layers.iter().zip(hidden_w) {
                h = h.linear(w, l.bs.as_ref()).relu();
            }
            // Only output d is needed at this step.
            let logit = h.mv(&out_w.get(d)) + out_b.get(d);
            x.select(1, d)
                .copy_(&logit.gt_tensor(&noise.select(1, d)).to_kind(Kind::Float));
        }
        x
    }
}

impl Autoregressive for Made {
    fn dim(&self) -> i64 {
        self.dim
    }

    fn log_prob(&self, x: &Tensor) -> Tensor {
        self.log_prob_ensemble(x)
    }

    fn sample_flat(&self, n: i64) -> Tensor {
        tch::no_grad(|| {
            let m = self.cfg.num_masks;
            if m == 1 {
                return self.sample_mask(n, 0);
            }
            // A mask per sample (the ensemble is the uniform mixture of the M models).
            let assign = Tensor::randint(m as i64, [n], (Kind::Int64, self.device()));
            let counts: Vec<i64> = Vec::try_from(
                assign
                    .bincount::<Tensor>(None, m as i64)
                    .to_device(Device::Cpu),
            )
            .expect("i64 counts");
            let mut out = Tensor::zeros([n, self.dim], (Kind::Float, self.device()));
            for (k, &c) in counts.iter().enumerate() {
                if c > 0 {
                    let rows = assign.eq(k as i64).nonzero().squeeze_dim(1);
                    let _ = out.index_copy_(0, &rows, &self.sample_mask(c, k));
                }
            }
            out
        })
    }
}

impl Model for Made {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "made"
    }

    gm_core::single_network!(vs, opt, "opt");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let device = self.device();
        let idx = if self.cfg.num_masks == 1 {
            Tensor::zeros([1], (Kind::Int64, device))
        } else {
            Tensor::randint(self.cfg.num_masks as i64, [1], (Kind::Int64, device))
        };
        let lp = self.log_prob_with(x, &self.masked_weights(&idx));
        common::nll_step(&mut self.opt, &lp, self.dim)
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let lp = tch::no_grad(|| self.log_prob_ensemble(x));
        Ok(common::nll_metrics(&lp, self.dim))
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        Ok(common::unflatten(self.sample_flat(n), &self.shape))
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let settings = |masks: usize| {
            serde_json::json!({
                "hidden": self.cfg.hidden,
                "num_masks": self.cfg.num_masks,
                "masks_averaged": masks,
                "order_agnostic": self.cfg.order_agnostic,
                "mask_seed": self.cfg.mask_seed,
            })
        };
        let lp = common::chunked(x, cfg.data.eval_batch_size, |c| self.log_prob_ensemble(c));
        let mut out = vec![common::exact_report(
            "made-ensemble",
            settings(self.cfg.num_masks),
            &lp,
        )?];
        if self.cfg.num_masks > 1 {
            let lp0 = common::chunked(x, cfg.data.eval_batch_size, |c| self.log_prob_mask(c, 0));
            out.push(common::exact_report("made-single-mask", settings(1), &lp0)?);
        }
        Ok(out)
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
