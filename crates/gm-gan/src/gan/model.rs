use super::config::{Activation, GanConfig, Output};
use crate::adversarial::{Adversarial, Discriminator, Generator, Players, Spec};
use gm_core::model::{params_table, parse_params, BuildContext, Model};
use gm_core::nets::Mlp;
use gm_core::{Error, Result};
use tch::nn::{self, Module, VarStore};
use tch::Tensor;

/// `[t, y]` along the last dimension (`t` alone when unconditional).
fn with_label(t: Tensor, y: Option<&Tensor>) -> Tensor {
    match y {
        None => t,
        Some(y) => {
            let y = y.to_kind(t.kind());
            Tensor::cat(&[t, y], -1)
        }
    }
}

/// The MLP generator: `[z, y]` → hidden layers → a linear head → sigmoid or identity.
#[derive(Debug)]
pub struct MlpGenerator {
    /// The hidden layers (`generator.fc1 …`).
    pub hidden: Mlp,
    /// The output layer (`generator.head`).
    pub head: nn::Linear,
    act: Activation,
    sigmoid: bool,
    dim: i64,
}

impl MlpGenerator {
    /// Layers under `path` from `latent + classes` inputs to `dim` outputs.
    pub fn new(path: &nn::Path, cfg: &GanConfig, classes: i64, dim: i64, sigmoid: bool) -> Self {
        let hidden = Mlp::new(path, "fc", cfg.latent + classes, &cfg.generator_hidden);
        let head = nn::linear(path / "head", hidden.out_dim(), dim, Default::default());
        MlpGenerator {
            hidden,
            head,
            act: cfg.generator_activation,
            sigmoid,
            dim,
        }
    }
}

impl Generator for MlpGenerator {
    /// Flat samples `[B, D]` (the core reshapes them to the data's shape).
    fn forward(&self, z: &Tensor, y: Option<&Tensor>, _train: bool) -> Tensor {
        let h = self
            .hidden
            .forward(&with_label(z.shallow_clone(), y), self.act);
        let out = self.head.forward(&h);
        debug_assert_eq!(out.size()[1], self.dim);
        if self.sigmoid {
            out.sigmoid()
        } else {
            out
        }
    }
}

/// The MLP discriminator: `[x, y]` → hidden layers, each followed by dropout → one logit.
#[derive(Debug)]
pub struct MlpDiscriminator {
    /// The hidden layers (`discriminator.fc1 …`).
    pub hidden: Mlp,
    /// The output layer (`discriminator.head`).
    pub head: nn::Linear,
    act: Activation,
    dropout: f64,
    dim: i64,
}

impl MlpDiscriminator {
    /// Layers under `path` from `dim + classes` inputs to one logit.
    pub fn new(path: &nn::Path, cfg: &GanConfig, classes: i64, dim: i64) -> Self {
        let hidden = Mlp::new(path, "fc", dim + classes, &cfg.discriminator_hidden);
        let head = nn::linear(path / "head", hidden.out_dim(), 1, Default::default());
        MlpDiscriminator {
            hidden,
            head,
            act: cfg.discriminator_activation,
            dropout: cfg.dropout,
            dim,
        }
    }
}

impl Discriminator for MlpDiscriminator {
    fn forward(&self, x: &Tensor, y: Option<&Tensor>, train: bool) -> Tensor {
        let x = with_label(x.reshape([-1, self.dim]), y);
        let h = self.hidden.layers.iter().fold(x, |h, l| {
            let a = self.act.apply(&l.forward(&h));
            if self.dropout > 0.0 {
                a.dropout(self.dropout, train)
            } else {
                a
            }
        });
        self.head.forward(&h).squeeze_dim(-1)
    }
}

/// Builds an MLP GAN (the `gan` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: GanConfig = parse_params("gan", &ctx.cfg.model.params)?;
    Ok(Box::new(new_mlp_gan("gan", cfg, 0, ctx)?))
}

/// Builds a conditional MLP GAN (the `cgan` registry entry: Mirza & Osindero 2014).
pub fn build_conditional(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: GanConfig = parse_params("cgan", &ctx.cfg.model.params)?;
    let data = ctx.data;
    let classes = match (data.num_classes, &data.train.y) {
        (Some(c), Some(_)) if c > 0 => c,
        _ => {
            return Err(Error::config(
                "data.dataset",
                &data.name,
                format!(
                    "a dataset with labels: cgan conditions on labels and {} has none",
                    data.name
                ),
            ))
        }
    };
    Ok(Box::new(new_mlp_gan("cgan", cfg, classes, ctx)?))
}

/// An MLP GAN on the data of `ctx`, conditional when `classes > 0`.
pub fn new_mlp_gan(
    name: &'static str,
    mut cfg: GanConfig,
    classes: i64,
    ctx: &BuildContext<'_>,
) -> Result<Adversarial> {
    cfg.validate()?;
    let data = ctx.data;
    let dim: i64 = data.shape.iter().product();
    cfg.output = cfg.output.resolve(Output::unit_data(data));
    let sigmoid = cfg.output == Output::Sigmoid;
    if data.binary && !sigmoid {
        return Err(Error::config(
            "model.output",
            "\"linear\"",
            format!(
                "\"sigmoid\" or \"auto\": {} is binary (values in [0, 1])",
                data.name
            ),
        ));
    }
    let (vs_g, vs_d) = (VarStore::new(ctx.device), VarStore::new(ctx.device));
    let g = MlpGenerator::new(&(vs_g.root() / "generator"), &cfg, classes, dim, sigmoid);
    let d = MlpDiscriminator::new(&(vs_d.root() / "discriminator"), &cfg, classes, dim);
    let spec = Spec {
        name,
        params: params_table(&cfg),
        game: cfg.game()?,
        latent: cfg.latent,
        classes,
    };
    let players = Players {
        vs_g,
        g: Box::new(g),
        vs_d,
        d: Box::new(d),
    };
    Ok(Adversarial::new(spec, players, ctx)?.watching_coverage(ctx))
}
