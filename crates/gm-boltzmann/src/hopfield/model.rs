use super::config::{HopfieldConfig, HopfieldMode};
use super::network::{corrupt, energy, recall};
use crate::bm::{require_binary, Moments};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::sampling::exact;
use gm_core::sampling::gibbs::{PairwiseBinary, Units};
use gm_core::{Error, Result};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The symmetric, zero-diagonal W = U + Uᵀ of a raw matrix (U its strict upper triangle).
pub fn symmetric_weights(raw: &Tensor) -> Tensor {
    let u = raw.triu(1);
    &u + u.tr()
}

/// Gradient of the mean log-likelihood of p(x) ∝ exp(β(½xᵀWx + bᵀx)) with respect to
/// (b, raw W) (W = U + Uᵀ): β(⟨x⟩_data − ⟨x⟩_model) and β·triu(⟨x xᵀ⟩_data − ⟨x xᵀ⟩_model, 1)
/// — the rule of `001_*.txt` §1.2 (½xᵀWx = Σ_{i<j} U_ij x_i x_j).
pub fn spin_gradient(data: &Moments, model: &Moments, beta: f64) -> [Tensor; 2] {
    [
        (&data.x - &model.x) * beta,
        (&data.xx - &model.xx).triu(1) * beta,
    ]
}

/// Exact log p(x) `[B]` of ±1 states under p ∝ exp(−E/T), by enumerating all 2^N states.
pub fn exact_log_prob(w: &Tensor, b: &Tensor, temperature: f64, x: &Tensor) -> Result<Tensor> {
    let n = w.size()[0];
    let states = exact::all_states(n, Units::Spin, w.kind(), w.device())?;
    let beta = 1.0 / temperature;
    // Differentiable (no `no_grad` inside), in chunks of 2^16 states.
    let total = states.size()[0];
    let chunk = 1i64 << 16;
    let parts: Vec<Tensor> = (0..(total + chunk - 1) / chunk)
        .map(|k| {
            let s = states.narrow(0, k * chunk, chunk.min(total - k * chunk));
            (energy(w, Some(b), &s) * -beta).logsumexp([0], false)
        })
        .collect();
    let log_z = Tensor::f_stack(&parts, 0)?.logsumexp([0], false);
    Ok((energy(w, Some(b), x) * -beta - log_z).to_kind(Kind::Double))
}

/// A Hopfield network on N = pixels units (see the module docs).
pub struct Hopfield {
    cfg: HopfieldConfig,
    shape: Vec<i64>,
    is_image: bool,
    n: i64,
    vs: VarStore,
    chains_vs: VarStore,
    w_raw: Tensor,
    b: Tensor,
    chains: Tensor,
    opt: Optimizer,
}

/// Builds a Hopfield network from a run config (the `hopfield` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: HopfieldConfig = parse_params("hopfield", &ctx.cfg.model.params)?;
    Ok(Box::new(Hopfield::new(cfg, ctx)?))
}

/// 0/1 data to ±1 units.
pub fn to_spins(x: &Tensor) -> Tensor {
    x * 2.0 - 1.0
}

impl Hopfield {
    /// A network with zero weights and biases for binary data shaped like `ctx.data`.
    pub fn new(cfg: HopfieldConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        require_binary("hopfield", ctx.data)?;
        let n: i64 = ctx.data.shape.iter().product();
        if n < 2 {
            return Err(Error::config(
                "data",
                format!("{n} unit(s) per example"),
                "at least 2 units",
            ));
        }
        let device = ctx.device;
        let vs = VarStore::new(device);
        let root = vs.root() / "hopfield";
        let w_raw = root.zeros("w", &[n, n]);
        let b = root.zeros("b", &[n]);
        let chains_vs = VarStore::new(device);
        let chains = (chains_vs.root() / "negative").zeros_no_train("x", &[cfg.chains, n]);
        tch::no_grad(|| {
            let r = Tensor::rand([cfg.chains, n], (Kind::Float, device)).lt(0.5);
            chains
                .shallow_clone()
                .copy_(&to_spins(&r.to_kind(Kind::Float)));
        });
        let opt = Optimizer::new(&vs, &ctx.cfg.optim)?;
        Ok(Hopfield {
            cfg,
            shape: ctx.data.shape.clone(),
            is_image: ctx.data.is_image,
            n,
            vs,
            chains_vs,
            w_raw,
            b,
            chains,
            opt,
        })
    }

    /// The weights W `[N, N]` (symmetric, zero diagonal) and biases `[N]`, detached.
    pub fn weights(&self) -> (Tensor, Tensor) {
        (symmetric_weights(&self.w_raw.detach()), self.b.detach())
    }

    fn beta(&self) -> f64 {
        1.0 / self.cfg.temperature
    }

    fn spins(&self, x: &Tensor) -> Tensor {
        to_spins(&x.reshape([-1, self.n]).to_kind(Kind::Float))
    }

    fn as_data(&self, spins: &Tensor) -> Tensor {
        let mut shape = vec![spins.size()[0]];
        shape.extend_from_slice(&self.shape);
        ((spins + 1.0) * 0.5).reshape(shape.as_slice())
    }

    /// Recall from ±1 states `[B, N]` with the configured rule.
    pub fn recall(&self, x: &Tensor) -> Result<Tensor> {
        let (w, b) = self.weights();
        Ok(recall(
            &w,
            Some(&b),
            x,
            self.cfg.update,
            self.cfg.recall_sweeps,
            false,
        )?
        .states)
    }

    /// Fraction of units that one synchronous update would change, for ±1 rows (0: every
    /// row is a fixed point).
    fn instability(&self, s: &Tensor) -> Tensor {
        let (w, b) = self.weights();
        let field = s.mm(&w) + b.unsqueeze(0);
        (field * s).le(0.0).to_kind(Kind::Float).mean(Kind::Float)
    }

    /// −Σ_i log p(x_i | x_−i) per example at temperature T (pseudo-likelihood; a proxy).
    fn pseudo_nll(&self, s: &Tensor) -> Tensor {
        let (w, b) = self.weights();
        let field = s.mm(&w) + b.unsqueeze(0);
        (field * s * (-2.0 * self.beta()))
            .softplus()
            .sum_dim_intlist(1, false, Kind::Float)
            .mean(Kind::Float)
    }

    fn recall_error(&self, s: &Tensor) -> Result<Tensor> {
        let out = self.recall(&corrupt(s, self.cfg.noise))?;
        Ok(out.ne_tensor(s).to_kind(Kind::Float).mean(Kind::Float))
    }

    fn exact_feasible(&self) -> bool {
        self.n <= self.cfg.exact_max_units
    }
}

impl Model for Hopfield {
    fn name(&self) -> &str {
        "hopfield"
    }

    gm_core::single_network!(vs, opt, "opt", chains = chains_vs);

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let s = self.spins(x);
        match self.cfg.mode {
            HopfieldMode::Hebbian => {
                tch::no_grad(|| {
                    let add = s.tr().mm(&s).triu(1) / self.n as f64;
                    let _ = self.w_raw.shallow_clone().g_add_(&add);
                });
                Ok(vec![("instability", tch::no_grad(|| self.instability(&s)))])
            }
            HopfieldMode::Boltzmann => {
                let (w, b) = self.weights();
                let model = PairwiseBinary::new(&w, &b, Units::Spin, self.beta())?;
                let mut chains = self.chains.shallow_clone();
                model.sweeps(
                    &mut chains,
                    &(0..self.n).collect::<Vec<_>>(),
                    self.cfg.gibbs_sweeps,
                )?;
                let grad = spin_gradient(
                    &Moments::of_states(&s),
                    &Moments::of_states(&self.chains),
                    self.beta(),
                );
                let descent: Vec<Tensor> = grad.iter().map(|g| -g).collect();
                self.opt.apply_gradients(&descent)?;
                Ok(vec![(
                    "pseudo_nll_proxy",
                    tch::no_grad(|| self.pseudo_nll(&s)),
                )])
            }
        }
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        let x = &batch.x;
        let s = self.spins(x);
        tch::no_grad(|| {
            let first = match self.cfg.mode {
                HopfieldMode::Hebbian => ("instability", self.instability(&s)),
                HopfieldMode::Boltzmann => ("pseudo_nll_proxy", self.pseudo_nll(&s)),
            };
            Ok(vec![first, ("recall_error", self.recall_error(&s)?)])
        })
    }

    fn sample(&self, n: i64) -> Result<Tensor> {
        let (w, b) = self.weights();
        let model = PairwiseBinary::new(&w, &b, Units::Spin, self.beta())?;
        let mut x = model.random_states(n);
        match self.cfg.mode {
            // Deterministic recall from uniform noise: the attractor each start falls into.
            HopfieldMode::Hebbian => x = self.recall(&x)?,
            HopfieldMode::Boltzmann => model.sweeps(
                &mut x,
                &(0..self.n).collect::<Vec<_>>(),
                self.cfg.sample_sweeps,
            )?,
        }
        Ok(self.as_data(&x))
    }

    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        if !self.is_image {
            return Ok(Vec::new());
        }
        let s = self.spins(x);
        let k = s.size()[0].min(8);
        let s = s.narrow(0, 0, k);
        let noisy = corrupt(&s, self.cfg.noise);
        let out = self.recall(&noisy)?;
        let grid = Tensor::cat(&[s, noisy, out], 0);
        Ok(vec![Figure {
            name: "recall".into(),
            caption: format!(
                "rows: held-out examples; with {:.0}% of units flipped; recalled ({:?} updates)",
                self.cfg.noise * 100.0,
                self.cfg.update
            ),
            images: self.as_data(&grid),
            per_row: k,
        }])
    }

    fn log_likelihoods(&self, x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        if !self.exact_feasible() {
            tracing::warn!(
                "hopfield: {} units > model.exact_max_units = {}: no exact log-likelihood; no estimate is reported",
                self.n,
                self.cfg.exact_max_units
            );
            return Ok(Vec::new());
        }
        let (w, b) = self.weights();
        let lp = tch::no_grad(|| {
            exact_log_prob(
                &w.to_kind(Kind::Double),
                &b.to_kind(Kind::Double),
                self.cfg.temperature,
                &self.spins(x).to_kind(Kind::Double),
            )
        })?;
        let n = lp.size()[0];
        if n == 0 {
            return Err(Error::Msg("hopfield: no example to evaluate".into()));
        }
        let std_err = if n > 1 {
            lp.std(true).double_value(&[]) / (n as f64).sqrt()
        } else {
            0.0
        };
        Ok(vec![LogLikelihood {
            kind: LikelihoodKind::Exact,
            method: "hopfield-enumeration".into(),
            settings: serde_json::json!({"units": self.n, "mode": self.cfg.mode, "temperature": self.cfg.temperature}),
            mean: lp.mean(Kind::Double).double_value(&[]),
            std_err,
            n,
        }])
    }

    fn resolved_params(&self) -> toml::Table {
        params_table(&self.cfg)
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}
