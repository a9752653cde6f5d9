use super::config::{GmmnAeConfig, Output};
use super::model::{example_dim, with_shape, Generator};
use gm_core::config::RunConfig;
use gm_core::data::Batch;
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LogLikelihood, Metrics, Model,
};
use gm_core::nets::Mlp;
use gm_core::optim::Optimizer;
use gm_core::Result;
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

/// Which network a training step updates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Phase 1: the autoencoder.
    Autoencoder,
    /// Phase 2: the GMMN, on the (fixed) autoencoder's codes.
    Gmmn,
}

/// A GMMN trained on the codes of an autoencoder trained first (the `gmmn-ae` entry).
pub struct GmmnAe {
    cfg: GmmnAeConfig,
    shape: Vec<i64>,
    dim: i64,
    output: Output,
    ae_vs: VarStore,
    enc: Mlp,
    code: nn::Linear,
    dec: Mlp,
    dec_out: nn::Linear,
    ae_opt: Optimizer,
    gen_vs: VarStore,
    gen: Generator,
    gen_opt: Optimizer,
}

/// Builds a GMMN+AE from a run config.
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: GmmnAeConfig = parse_params("gmmn-ae", &ctx.cfg.model.params)?;
    Ok(Box::new(GmmnAe::new(cfg, ctx)?))
}

impl GmmnAe {
    /// A new GMMN+AE for data shaped like `ctx.data`.
    pub fn new(cfg: GmmnAeConfig, ctx: &BuildContext<'_>) -> Result<Self> {
        cfg.validate()?;
        let dim = example_dim(ctx)?;
        let output = Output::Auto.resolve(Output::unit_data(ctx.data));
        let ae_vs = VarStore::new(ctx.device);
        let (enc_p, dec_p) = (ae_vs.root() / "encoder", ae_vs.root() / "decoder");
        let enc = Mlp::new(&enc_p, "fc", dim, &cfg.ae_hidden);
        let code = nn::linear(&enc_p / "code", enc.out_dim(), cfg.code, Default::default());
        let rev: Vec<i64> = cfg.ae_hidden.iter().rev().copied().collect();
        let dec = Mlp::new(&dec_p, "fc", cfg.code, &rev);
        let dec_out = nn::linear(&dec_p / "out", dec.out_dim(), dim, Default::default());
        let ae_opt = Optimizer::new(&ae_vs, &ctx.cfg.optim)?;
        let gen_vs = VarStore::new(ctx.device);
        // Codes are sigmoid units: `output = "auto"` gives a sigmoid generator.
        let gen = Generator::new(&(gen_vs.root() / "generator"), &cfg.gmmn, cfg.code, true);
        let gen_opt = Optimizer::new(&gen_vs, &ctx.cfg.optim)?;
        Ok(GmmnAe {
            cfg,
            shape: ctx.data.shape.clone(),
            dim,
            output,
            ae_vs,
            enc,
            code,
            dec,
            dec_out,
            ae_opt,
            gen_vs,
            gen,
            gen_opt,
        })
    }

    /// The phase of the next step, from the autoencoder optimizer's saved step count (so a
    /// resumed run is in the same phase).
    pub fn phase(&self) -> Phase {
        if self.ae_opt.steps() < self.cfg.ae_steps as u64 {
            Phase::Autoencoder
        } else {
            Phase::Gmmn
        }
    }

    /// Sigmoid codes `[B, code]` of data rows `x` `[B, dim]`.
    pub fn encode(&self, x: &Tensor) -> Tensor {
        let h = self.enc.forward(x, self.cfg.ae_activation);
        self.code.forward(&h).sigmoid()
    }

    /// The decoder's pre-output activations for codes `c`.
    fn decode_raw(&self, c: &Tensor) -> Tensor {
        self.dec_out
            .forward(&self.dec.forward(c, self.cfg.ae_activation))
    }

    /// Reconstructions (pixel means) of codes `c`, `[B, dim]`.
    pub fn decode(&self, c: &Tensor) -> Tensor {
        self.output.apply(self.decode_raw(c))
    }

    /// Reconstruction loss per example, averaged: cross-entropy for a sigmoid decoder,
    /// squared error for a linear one (both summed over dimensions).
    fn rec_loss(&self, c: &Tensor, x: &Tensor) -> Tensor {
        let a = self.decode_raw(c);
        let n = x.size()[0] as f64;
        let total = match self.output {
            Output::Sigmoid => {
                a.binary_cross_entropy_with_logits::<Tensor>(x, None, None, Reduction::Sum)
            }
            _ => (a - x).square().sum(Kind::Float),
        };
        total / n
    }

    /// `loss` (the current phase's), `rec`, `mmd` (the GMMN loss on the batch's codes) and
    /// `phase` (1 or 2); `train` applies code dropout in phase 1. Only the current phase's
    /// loss carries gradients.
    fn terms(&self, x: &Tensor, train: bool) -> Result<Metrics> {
        let x = x.reshape([-1, self.dim]);
        let phase = self.phase();
        let (rec, mmd) = if phase == Phase::Autoencoder {
            let c = self.encode(&x);
            let dropped = c.dropout(self.cfg.code_dropout, train);
            let rec = self.rec_loss(&dropped, &x);
            let mmd = tch::no_grad(|| self.gen.loss(&c))?;
            (rec, mmd)
        } else {
            let c = tch::no_grad(|| self.encode(&x));
            let rec = tch::no_grad(|| self.rec_loss(&c, &x));
            (rec, self.gen.loss(&c)?)
        };
        let (loss, p) = match phase {
            Phase::Autoencoder => (rec.shallow_clone(), 1.0),
            Phase::Gmmn => (mmd.shallow_clone(), 2.0),
        };
        let p = Tensor::from(p).to_device(x.device());
        Ok(vec![
            ("loss", loss),
            ("rec", rec),
            ("mmd", mmd),
            ("phase", p),
        ])
    }
}

impl Model for GmmnAe {
    fn name(&self) -> &str {
        "gmmn-ae"
    }

    fn var_stores(&self) -> Vec<(&'static str, &VarStore)> {
        vec![("autoencoder", &self.ae_vs), ("gmmn", &self.gen_vs)]
    }

    fn var_stores_mut(&mut self) -> Vec<(&'static str, &mut VarStore)> {
        vec![("autoencoder", &mut self.ae_vs), ("gmmn", &mut self.gen_vs)]
    }

    fn optimizers(&mut self) -> Vec<(&'static str, &mut Optimizer)> {
        vec![
            ("autoencoder", &mut self.ae_opt),
            ("gmmn", &mut self.gen_opt),
        ]
    }

    fn optimizers_ref(&self) -> Vec<(&'static str, &Optimizer)> {
        vec![("autoencoder", &self.ae_opt), ("gmmn", &self.gen_opt)]
    }

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        let m = self.terms(&batch.x, true)?;
        match self.phase() {
            Phase::Autoencoder => self.ae_opt.backward_step(&m[0].1)?,
            Phase::Gmmn => self.gen_opt.backward_step(&m[0].1)?,
        }
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        tch::no_grad(|| self.terms(&batch.x, false))
    }

    /// Decoded GMMN samples: decoder means of G(z).
    fn sample(&self, n: i64) -> Result<Tensor> {
        let x = tch::no_grad(|| self.decode(&self.gen.generate(n, self.device())));
        Ok(with_shape(x, &self.shape))
    }

    /// Reconstructions (images only): rows alternate 8 held-out examples and their decoded
    /// codes.
    fn figures(&self, x: &Tensor) -> Result<Vec<Figure>> {
        if self.shape.len() != 3 {
            return Ok(Vec::new());
        }
        let per_row = 8.min(x.size()[0]);
        let rows = (x.size()[0].min(32) / per_row).max(1);
        let xs = x
            .narrow(0, 0, rows * per_row)
            .reshape([rows, 1, per_row, self.dim]);
        let rec = tch::no_grad(|| self.decode(&self.encode(&xs)));
        let images = with_shape(
            Tensor::cat(&[xs, rec], 1).reshape([-1, self.dim]),
            &self.shape,
        );
        Ok(vec![Figure {
            name: "reconstructions".into(),
            caption: "odd rows: held-out examples; even rows: decoded codes (no dropout)".into(),
            images,
            per_row,
        }])
    }

    /// None: neither the GMMN nor the decoder defines a density.
    fn log_likelihoods(&self, _x: &Tensor, _cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        Ok(Vec::new())
    }

    fn resolved_params(&self) -> toml::Table {
        let mut cfg = self.cfg.clone();
        cfg.gmmn.output = self.gen.output();
        params_table(&cfg)
    }

    fn device(&self) -> Device {
        self.ae_vs.device()
    }
}
