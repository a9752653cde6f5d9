//! What every flow shares: the [`Flow`] trait (an invertible map with its log-determinant),
//! the data space a flow works in ([`DataSpace`]: real vectors as they are, images
//! dequantized and optionally logit-transformed), the learned scaled tanh that bounds
//! log-scales, and [`FlowModel`], the [`Model`] every flow is trained and evaluated through.
//!
//! The density is exact by the change of variables: with z = f(y) and a standard normal
//! base, log p(y) = log N(f(y); 0, I) + log |det ∂f/∂y|.
//!
//! Images are quantized: pixel k ∈ {0, …, L − 1} (L = `levels`, 256 for MNIST, whose
//! values are k / 255). A flow models the dequantized y = (k + u) / L, u ~ U[0, 1)^D, and
//! log P(k) = log ∫ over the cube of side 1 / L at k / L of p(y) dy
//! ≥ E_u[log p((k + u) / L)] − D ln L (Jensen). `log_likelihoods` reports that bound for
//! the discrete pixels, one draw of u per example, in nats per image, with bits per
//! dimension −bound / (D ln 2) in its settings: a lower bound on the discrete likelihood,
//! labelled as one. With `logit_alpha = α > 0` the flow sees
//! s = logit(α + (1 − 2α) y) (RealNVP's transform), its Jacobian counted.

use gm_core::config::RunConfig;
use gm_core::data::{Batch, Dataset};
use gm_core::model::{
    params_table, parse_params, BuildContext, Figure, LikelihoodKind, LogLikelihood, Metrics, Model,
};
use gm_core::optim::Optimizer;
use gm_core::{checks, Error, Result};
use gm_eval::importance::mean_and_std_err;
use tch::nn::{self, VarStore};
use tch::{Device, Kind, Tensor};

/// ln 2π.
const LOG_2PI: f64 = 1.837_877_066_409_345_3;

/// Side of the square [−4, 4]² the density picture of 2-D data covers (as the sample plot).
pub const DENSITY_EXTENT: (f64, f64) = (-4.0, 4.0);

/// Pixels per side of the density picture.
pub const DENSITY_PIXELS: i64 = 128;

/// An invertible map z = f(y) of examples `[B, ..shape]` to flat codes `[B, D]`.
pub trait Flow {
    /// z = f(y) `[B, D]` and log |det ∂f/∂y| `[B]`.
    fn forward(&self, y: &Tensor) -> (Tensor, Tensor);

    /// y = f⁻¹(z), shaped `[B, ..shape]`.
    fn inverse(&self, z: &Tensor) -> Tensor;

    /// Whether [`Flow::data_init`] should run on the first training batch.
    fn wants_data_init(&self) -> bool {
        false
    }

    /// Sets data-dependent initial values (Glow's actnorm) from the first training batch
    /// `y` (model space, this process's rows of the global batch).
    fn data_init(&self, _y: &Tensor) -> Result<()> {
        Ok(())
    }
}

/// log N(z; 0, I) summed over the last dimension of `z` `[B, D]`.
pub fn standard_normal_log_prob(z: &Tensor) -> Tensor {
    let d = z.size()[1] as f64;
    z.square().sum_dim_intlist(-1, false, z.kind()) * -0.5 - 0.5 * LOG_2PI * d
}

/// Log-scales s = c ⊙ tanh(a), c learned (one per unit, from 1): bounded at every step,
/// free to grow with training (the scaled tanh of RealNVP's reference code).
#[derive(Debug)]
pub struct ScaledTanh {
    c: Tensor,
}

impl ScaledTanh {
    /// A scale of shape `shape` (broadcast against the raw outputs), named `scale` under `path`.
    pub fn new(path: &nn::Path, shape: &[i64]) -> Self {
        ScaledTanh {
            c: path.var("scale", shape, nn::Init::Const(1.0)),
        }
    }

    /// c ⊙ tanh(raw).
    pub fn apply(&self, raw: &Tensor) -> Tensor {
        &self.c * raw.tanh()
    }
}

/// Where a flow's inputs live.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DataSpace {
    /// Real-valued vectors, modelled as they are (exact density).
    Real,
    /// Quantized images with `levels` values per pixel (x = k / (levels − 1)), uniformly
    /// dequantized, then logit-transformed when `alpha > 0`.
    Dequantized {
        /// Values per pixel L.
        levels: i64,
        /// The logit transform's α (0: none).
        alpha: f64,
    },
}

impl DataSpace {
    /// The space for `data`: images are dequantized, other real data is modelled as it is;
    /// binary data is refused (a flow is a density on real values).
    pub fn for_data(model: &str, data: &Dataset, levels: i64, alpha: f64) -> Result<Self> {
        checks::at_least("model.levels", levels, 2, "at least 2 values per pixel")?;
        checks::finite("model.logit_alpha", alpha)?;
        if !(0.0..0.5).contains(&alpha) {
            return Err(Error::config(
                "model.logit_alpha",
                alpha,
                "a number in [0, 0.5) (0: no logit transform)",
            ));
        }
        if data.binary {
            return Err(Error::config(
                "data.binarize",
                &data.name,
                format!(
                    "real-valued data: {model} is a density on real values (binarize = \"none\")"
                ),
            ));
        }
        Ok(if data.is_image {
            DataSpace::Dequantized { levels, alpha }
        } else {
            DataSpace::Real
        })
    }

    /// The flow's input y for data `x` and log |det ∂y/∂x̃| `[B]` (x̃ the dequantized
    /// value in [0, 1)); fresh dequantization noise from libtorch's generator.
    pub fn to_model(&self, x: &Tensor) -> (Tensor, Tensor) {
        let b = x.size()[0];
        let zero = Tensor::zeros([b], (x.kind(), x.device()));
        match *self {
            DataSpace::Real => (x.shallow_clone(), zero),
            DataSpace::Dequantized { levels, alpha } => {
                let k = (x * (levels - 1) as f64).round();
                let y = (k + x.rand_like()) / levels as f64;
                if alpha > 0.0 {
                    logit(&y, alpha)
                } else {
                    (y, zero)
                }
            }
        }
    }

    /// Data-space values of flow outputs `y`, clamped to [0, 1] for images.
    pub fn to_data(&self, y: &Tensor) -> Tensor {
        match *self {
            DataSpace::Real => y.shallow_clone(),
            DataSpace::Dequantized { alpha, .. } => {
                let v = if alpha > 0.0 {
                    (y.sigmoid() - alpha) / (1.0 - 2.0 * alpha)
                } else {
                    y.shallow_clone()
                };
                v.clamp(0.0, 1.0)
            }
        }
    }

    /// The constant added to the continuous log-density of `dim` values: −D ln L for
    /// dequantized pixels (the cube's volume), 0 otherwise.
    pub fn offset(&self, dim: i64) -> f64 {
        match *self {
            DataSpace::Real => 0.0,
            DataSpace::Dequantized { levels, .. } => -(dim as f64) * (levels as f64).ln(),
        }
    }
}

/// s = logit(α + (1 − 2α) y) and Σ log |ds/dy| per example `[B]`.
pub fn logit(y: &Tensor, alpha: f64) -> (Tensor, Tensor) {
    let v = y * (1.0 - 2.0 * alpha) + alpha;
    let (lv, l1v) = (v.log(), (-&v).log1p());
    let per = -(&lv + &l1v) + (1.0 - 2.0 * alpha).ln();
    let ld = per.flatten(1, -1).sum_dim_intlist(-1, false, y.kind());
    (lv - l1v, ld)
}

/// The `[model]` fields every flow has, and its own checks.
pub trait FlowConfig: serde::de::DeserializeOwned + serde::Serialize {
    /// Checks the fields that do not depend on the data.
    fn validate(&self) -> Result<()>;
    /// Values per pixel of image data.
    fn levels(&self) -> i64;
    /// α of the logit transform of image data (0: none).
    fn logit_alpha(&self) -> f64;
    /// T of the sampling distribution N(0, T² I) of the code.
    fn temperature(&self) -> f64;
}

/// A flow's constructor: parameters under a path, its config, the example shape.
pub type NewFlow<C, F> = fn(&nn::Path, &C, &[i64]) -> Result<F>;

/// The [`FlowModel`] of registry entry `name` from a run config: its `[model]` fields
/// parsed and checked, the flow built by `new` under the path `name`.
pub fn build_model<C: FlowConfig, F: Flow>(
    name: &'static str,
    ctx: &BuildContext<'_>,
    new: NewFlow<C, F>,
) -> Result<FlowModel<F>> {
    let cfg: C = parse_params(name, &ctx.cfg.model.params)?;
    cfg.validate()?;
    checks::positive("model.temperature", cfg.temperature())?;
    let space = DataSpace::for_data(name, ctx.data, cfg.levels(), cfg.logit_alpha())?;
    let vs = VarStore::new(ctx.device);
    let flow = new(&(vs.root() / name), &cfg, &ctx.data.shape)?;
    let params = params_table(&cfg);
    let model = FlowModel::new(name, flow, space, &ctx.data.shape, params, vs, ctx.cfg)?;
    Ok(model.with_temperature(cfg.temperature()))
}

/// A flow with its data space, parameters and optimizer: the [`Model`] of every flow.
pub struct FlowModel<F> {
    name: &'static str,
    flow: F,
    space: DataSpace,
    shape: Vec<i64>,
    dim: i64,
    params: toml::Table,
    vs: VarStore,
    opt: Optimizer,
    temperature: f64,
}

impl<F: Flow> FlowModel<F> {
    /// Wraps `flow` (its parameters in `vs`) for data shaped `shape`; `params` are the
    /// resolved `[model]` fields.
    pub fn new(
        name: &'static str,
        flow: F,
        space: DataSpace,
        shape: &[i64],
        params: toml::Table,
        vs: VarStore,
        cfg: &RunConfig,
    ) -> Result<Self> {
        let opt = Optimizer::new(&vs, &cfg.optim)?;
        Ok(FlowModel {
            name,
            flow,
            space,
            shape: shape.to_vec(),
            dim: shape.iter().product(),
            params,
            vs,
            opt,
            temperature: 1.0,
        })
    }

    /// Samples at temperature `t`: z ~ N(0, t² I) (1 unless set).
    pub fn with_temperature(mut self, t: f64) -> Self {
        self.temperature = t;
        self
    }

    /// The flow.
    pub fn flow(&self) -> &F {
        &self.flow
    }

    /// The data space.
    pub fn space(&self) -> DataSpace {
        self.space
    }

    /// log p(x) `[B]` in nats: exact for real data; for images the continuous density of
    /// one dequantization of x plus −D ln L (one draw of the lower bound on log P(k)).
    pub fn log_prob(&self, x: &Tensor) -> Tensor {
        let (y, ld_data) = self.space.to_model(x);
        let (z, ld) = self.flow.forward(&y);
        standard_normal_log_prob(&z) + ld + ld_data + self.space.offset(self.dim)
    }

    fn metrics(&self, x: &Tensor) -> Metrics {
        let lp = self.log_prob(x);
        let nll = -lp.mean(Kind::Float);
        let bpd = &nll / (self.dim as f64 * std::f64::consts::LN_2);
        vec![("loss", nll), ("bits_per_dim", bpd)]
    }

    /// The density of a 2-D flow on a [`DENSITY_PIXELS`]² grid over [`DENSITY_EXTENT`]²,
    /// `[1, 1, H, W]` scaled to its maximum (row 0 at the top, as the scatter plot).
    pub fn density_image(&self) -> Tensor {
        let (lo, hi) = DENSITY_EXTENT;
        let n = DENSITY_PIXELS;
        let opts = (Kind::Float, self.device());
        let xs = Tensor::linspace(lo, hi, n, opts);
        let ys = Tensor::linspace(hi, lo, n, opts);
        let grid = Tensor::stack(
            &[
                xs.unsqueeze(0).expand([n, n], false),
                ys.unsqueeze(1).expand([n, n], false),
            ],
            2,
        )
        .reshape([n * n, 2]);
        let p = tch::no_grad(|| self.log_prob(&grid)).exp();
        (&p / p.max()).view([1, 1, n, n])
    }
}

impl<F: Flow> Model for FlowModel<F> {
    fn likelihoods_per_example(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        self.name
    }

    gm_core::single_network!(vs, opt, "adam");

    fn train_step(&mut self, batch: &Batch) -> Result<Metrics> {
        if self.opt.steps() == 0 && self.flow.wants_data_init() {
            let (y, _) = self.space.to_model(&batch.x);
            tch::no_grad(|| self.flow.data_init(&y))?;
        }
        let m = self.metrics(&batch.x);
        self.opt.backward_step(&m[0].1)?;
        Ok(m.into_iter().map(|(k, t)| (k, t.detach())).collect())
    }

    fn eval_metrics(&self, batch: &Batch) -> Result<Metrics> {
        Ok(tch::no_grad(|| self.metrics(&batch.x)))
    }

    /// z ~ N(0, T² I) (T = `temperature`) through the inverse; images back in [0, 1].
    fn sample(&self, n: i64) -> Result<Tensor> {
        let z = Tensor::randn([n, self.dim], (Kind::Float, self.device())) * self.temperature;
        let y = tch::no_grad(|| self.flow.inverse(&z));
        let mut shape = vec![n];
        shape.extend_from_slice(&self.shape);
        Ok(self.space.to_data(&y).reshape(shape.as_slice()))
    }

    /// For 2-D data, the density on [−4, 4]² (`density.png`, brighter = denser).
    fn figures(&self, _x: &Tensor) -> Result<Vec<Figure>> {
        if self.shape != [2] {
            return Ok(Vec::new());
        }
        Ok(vec![Figure {
            name: "density".into(),
            caption: format!(
                "p(x) of the flow on [{0}, {1}]², x right, y up, scaled to its maximum",
                DENSITY_EXTENT.0, DENSITY_EXTENT.1
            ),
            images: self.density_image(),
            per_row: 1,
        }])
    }

    fn log_likelihoods(&self, x: &Tensor, cfg: &RunConfig) -> Result<Vec<LogLikelihood>> {
        let n = x.size()[0];
        let chunk = cfg.data.eval_batch_size.max(1);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let xc = x.narrow(0, start, len);
            parts.push(tch::no_grad(|| self.log_prob(&xc)).to_kind(Kind::Double));
            start += len;
        }
        let (mean, std_err) = mean_and_std_err(&Tensor::cat(&parts, 0))?;
        let bpd = -mean / (self.dim as f64 * std::f64::consts::LN_2);
        let (kind, method, settings) = match self.space {
            DataSpace::Real => (
                LikelihoodKind::Exact,
                "change-of-variables",
                serde_json::json!({"base": "N(0, I)"}),
            ),
            DataSpace::Dequantized { levels, alpha } => (
                LikelihoodKind::LowerBound,
                "dequantized-change-of-variables",
                serde_json::json!({
                    "base": "N(0, I)",
                    "levels": levels,
                    "logit_alpha": alpha,
                    "dequantization": "uniform, one draw of u per example",
                    "bits_per_dim": bpd,
                    "note": "E_u[log p((k + u) / L)] - D ln L <= log P(k): a lower bound on the discrete likelihood; the continuous density itself is exact",
                }),
            ),
        };
        Ok(vec![LogLikelihood {
            kind,
            method: method.into(),
            settings,
            mean,
            std_err,
            n,
        }])
    }

    fn resolved_params(&self) -> toml::Table {
        self.params.clone()
    }

    fn device(&self) -> Device {
        self.vs.device()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The logit transform's log-determinant is the sum of the logs of the diagonal of its
    /// autograd Jacobian (it is element-wise), and its inverse undoes it.
    #[test]
    fn logit_log_det_matches_autograd_and_inverts() {
        let _rng = crate::test_rng_lock();
        let y = Tensor::rand([3, 1, 2, 2], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let (s, ld) = logit(&y, 0.05);
        let g = Tensor::run_backward(&[s.sum(Kind::Double)], &[&y], false, false);
        let want = g[0]
            .log()
            .flatten(1, -1)
            .sum_dim_intlist(-1, false, Kind::Double);
        assert!(ld.allclose(&want, 1e-10, 1e-10, false), "{ld} vs {want}");
        let space = DataSpace::Dequantized {
            levels: 256,
            alpha: 0.05,
        };
        let back = space.to_data(&s.detach());
        assert!(back.allclose(&y.detach(), 1e-10, 1e-10, false));
    }

    /// Dequantized values stay in the pixel's cube [k / L, (k + 1) / L).
    #[test]
    fn dequantization_stays_in_the_pixel_cube() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(0);
        let k = Tensor::randint(256, [4, 1, 3, 3], (Kind::Int64, Device::Cpu)).to_kind(Kind::Float);
        let x = &k / 255.0;
        let space = DataSpace::Dequantized {
            levels: 256,
            alpha: 0.0,
        };
        let (y, ld) = space.to_model(&x);
        let back = (y * 256.0).floor();
        assert!(back.equal(&k));
        assert_eq!(ld.size(), [4]);
        assert_eq!(space.offset(9), -9.0 * 256f64.ln());
    }
}
