use super::config::{image_shape, DcganConfig};
use super::nets::{Discriminator, Generator};
use crate::adversarial::{Adversarial, Players, Spec};
use gm_core::model::{params_table, parse_params, BuildContext, Model};
use gm_core::Result;
use tch::nn::VarStore;

/// Builds a DCGAN from a run config (the `dcgan` registry entry); image data whose height
/// and width are multiples of 4 only (a config error naming the dataset otherwise).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    let cfg: DcganConfig = parse_params("dcgan", &ctx.cfg.model.params)?;
    Ok(Box::new(new_dcgan(cfg, ctx)?))
}

/// The DCGAN of `cfg` for the images of `ctx`, playing the shared game.
pub fn new_dcgan(cfg: DcganConfig, ctx: &BuildContext<'_>) -> Result<Adversarial> {
    cfg.validate()?;
    let image = image_shape("dcgan", &ctx.data.shape, &ctx.data.name, 4)?;
    let (vs_g, vs_d) = (VarStore::new(ctx.device), VarStore::new(ctx.device));
    let g = Generator::new(&(vs_g.root() / "net"), &cfg, image);
    let d = Discriminator::new(&(vs_d.root() / "net"), &cfg, image);
    let spec = Spec {
        name: "dcgan",
        params: params_table(&cfg),
        game: cfg.game()?,
        latent: cfg.latent,
        classes: 0,
    };
    let players = Players {
        vs_g,
        g: Box::new(g),
        vs_d,
        d: Box::new(d),
    };
    Ok(Adversarial::new(spec, players, ctx)?.watching_coverage(ctx))
}
