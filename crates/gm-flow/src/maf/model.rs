use super::config::MafConfig;
use crate::flow::{self, Flow, FlowConfig, FlowModel, ScaledTanh};
use gm_core::model::{BuildContext, Model};
use gm_core::nets::{made, Mlp};
use gm_core::{Error, Result};
use rand::SeedableRng;
use tch::nn;
use tch::Tensor;

/// One MADE-conditioned affine autoregressive transform (Papamakarios et al. 2017):
/// u_i = (x_i − μ_i(x_<i)) exp(−α_i(x_<i)), log |det ∂u/∂x| = −Σ α_i.
#[derive(Debug)]
pub struct MadeLayer {
    layers: Vec<nn::Linear>,
    out: nn::Linear,
    /// Masks `[out, in]` of the hidden layers, then of the output layer (μ and α rows).
    masks: Vec<Tensor>,
    scale: ScaledTanh,
    dim: i64,
}

impl MadeLayer {
    /// A MADE over `dim` inputs in `order` (`order[i]`: the variable of step i), hidden
    /// degrees from `rng`; the output layer starts at zero (the identity transform).
    fn new(
        path: &nn::Path,
        dim: i64,
        hidden: &[i64],
        order: &[i64],
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> Self {
        let t = |d: &[i64]| Tensor::from_slice(d).to_device(path.device());
        let deg_hidden: Vec<Tensor> = made::hidden_degrees(rng, dim, hidden)
            .iter()
            .map(|d| t(d))
            .collect();
        let mut masks = made::masks(&t(&made::input_degrees(order)), &deg_hidden);
        let out_mask = masks.pop().expect("an output mask");
        masks.push(Tensor::cat(&[&out_mask, &out_mask], 0));
        let mlp = Mlp::new(path, "fc", dim, hidden);
        let zero = nn::LinearConfig {
            ws_init: nn::Init::Const(0.0),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        };
        let out = nn::linear(path / "out", mlp.out_dim(), 2 * dim, zero);
        MadeLayer {
            layers: mlp.layers,
            out,
            masks,
            scale: ScaledTanh::new(path, &[dim]),
            dim,
        }
    }

    /// μ(x) and α(x) `[B, D]`: output i depends on the inputs before i in the ordering.
    pub fn shift_and_log_scale(&self, x: &Tensor) -> (Tensor, Tensor) {
        let masked = |l: &nn::Linear, m: &Tensor| &l.ws * m.to_kind(x.kind());
        let mut h = x.shallow_clone();
        for (l, m) in self.layers.iter().zip(&self.masks) {
            h = h.linear(&masked(l, m), l.bs.as_ref()).relu();
        }
        let last = self.masks.last().expect("an output mask");
        let out = h.linear(&masked(&self.out, last), self.out.bs.as_ref());
        let mu = out.narrow(1, 0, self.dim);
        let alpha = self.scale.apply(&out.narrow(1, self.dim, self.dim));
        (mu, alpha)
    }
}

/// MAF: a stack of MADE transforms, each in the reverse ordering of the one before.
#[derive(Debug)]
pub struct Maf {
    layers: Vec<MadeLayer>,
    shape: Vec<i64>,
}

impl Maf {
    /// The flow for examples shaped `shape` (flattened to D ≥ 2 values), parameters under
    /// `path`.
    pub fn new(path: &nn::Path, cfg: &MafConfig, shape: &[i64]) -> Result<Self> {
        cfg.validate()?;
        let dim: i64 = shape.iter().product();
        if dim < 2 {
            return Err(Error::config(
                "data.dataset",
                format!("examples shaped {shape:?}"),
                "at least 2 values per example (an autoregressive ordering of one value conditions on nothing)",
            ));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.mask_seed);
        let natural: Vec<i64> = (0..dim).collect();
        let reversed: Vec<i64> = natural.iter().rev().copied().collect();
        let layers = (0..cfg.layers)
            .map(|l| {
                let order = if l % 2 == 0 { &natural } else { &reversed };
                MadeLayer::new(
                    &(path / format!("made{l}")),
                    dim,
                    &cfg.hidden,
                    order,
                    &mut rng,
                )
            })
            .collect();
        Ok(Maf {
            layers,
            shape: shape.to_vec(),
        })
    }

    /// The layers, input side first.
    pub fn layers(&self) -> &[MadeLayer] {
        &self.layers
    }
}

/// u = f(x) in one pass; x = f⁻¹(u) in D passes, the i-th fixing the i-th variable of the
/// ordering.
impl Flow for MadeLayer {
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let (mu, alpha) = self.shift_and_log_scale(x);
        let u = (x - mu) * (-&alpha).exp();
        (u, -alpha.sum_dim_intlist(-1, false, x.kind()))
    }

    fn inverse(&self, u: &Tensor) -> Tensor {
        let mut x = u.zeros_like();
        for _ in 0..self.dim {
            let (mu, alpha) = self.shift_and_log_scale(&x);
            x = u * alpha.exp() + mu;
        }
        x
    }
}

impl Flow for Maf {
    fn forward(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let mut h = x.reshape([b, -1]);
        let mut ld = Tensor::zeros([b], (x.kind(), x.device()));
        for l in &self.layers {
            let (u, d) = l.forward(&h);
            ld += d;
            h = u;
        }
        (h, ld)
    }

    fn inverse(&self, z: &Tensor) -> Tensor {
        let x = self
            .layers
            .iter()
            .rev()
            .fold(z.shallow_clone(), |u, l| l.inverse(&u));
        let mut shape = vec![z.size()[0]];
        shape.extend_from_slice(&self.shape);
        x.reshape(shape.as_slice())
    }
}

/// Builds a MAF from a run config (the `maf` registry entry).
pub fn build(ctx: &BuildContext<'_>) -> Result<Box<dyn Model>> {
    Ok(Box::new(flow_model(ctx)?))
}

/// The same as its concrete type.
pub fn flow_model(ctx: &BuildContext<'_>) -> Result<FlowModel<Maf>> {
    flow::build_model("maf", ctx, Maf::new)
}
