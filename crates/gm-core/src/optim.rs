//! Optimizers whose whole state can be saved and restored.
//!
//! tch's optimizers keep their state (Adam's moments, the step count) inside libtorch where
//! it cannot be read back, so a run resumed from a checkpoint would restart Adam from zero.
//! [`Optimizer`] keeps that state in tensors it owns. It also gathers every trainable
//! parameter of a [`VarStore`] into one flat buffer (the parameters become views of it), so
//! the state is three flat tensors; the update itself runs parameter by parameter on views of
//! them with a persistent scratch buffer (seven in-place passes, no allocation), which keeps
//! each parameter's working set in cache. In data-parallel training every update first
//! averages the gradients over the processes ([`crate::dist::average_gradients`]).
//!
//! ```no_run
//! use gm_core::{config::OptimConfig, optim::Optimizer};
//! use tch::{nn, nn::Module, Device, Kind, Tensor};
//! let vs = nn::VarStore::new(Device::Cpu);
//! let lin = nn::linear(vs.root() / "fc", 3, 1, Default::default());
//! let mut opt = Optimizer::new(&vs, &OptimConfig::default())?;
//! let x = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
//! let loss = lin.forward(&x).pow_tensor_scalar(2).mean(Kind::Float);
//! opt.backward_step(&loss)?;
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::config::{OptimConfig, OptimKind};
use crate::{Error, Result};
use std::collections::HashMap;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// Adam or SGD over all trainable variables of one [`VarStore`].
pub struct Optimizer {
    cfg: OptimConfig,
    lr: f64,
    clip: Option<f64>,
    params: Vec<Tensor>,
    flat: Tensor,
    m: Tensor,
    v: Option<Tensor>,
    // Per-parameter views of m, v and a persistent scratch buffer: the update runs parameter
    // by parameter (each one's buffers stay in cache) without allocating.
    m_views: Vec<Tensor>,
    v_views: Vec<Tensor>,
    scratch: Vec<Tensor>,
    step: Tensor,
    steps: u64,
}

impl std::fmt::Debug for Optimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Optimizer")
            .field("kind", &self.cfg.kind)
            .field("lr", &self.lr)
            .field("params", &self.params.len())
            .field("numel", &self.flat.numel())
            .finish()
    }
}

impl Optimizer {
    /// Takes over the trainable variables of `vs` (sorted by name) into one flat buffer.
    pub fn new(vs: &VarStore, cfg: &OptimConfig) -> Result<Self> {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        if named.is_empty() {
            return Err(Error::Msg(
                "optimizer: the var store has no trainable variable".into(),
            ));
        }
        let kind = named[0].1.kind();
        let device = vs.device();
        let total: i64 = named.iter().map(|(_, t)| t.numel() as i64).sum();
        let flat = Tensor::zeros([total], (kind, device));
        let mut params = Vec::with_capacity(named.len());
        let mut offset = 0;
        tch::no_grad(|| -> Result<()> {
            for (name, mut t) in named {
                if t.kind() != kind {
                    return Err(Error::Msg(format!(
                        "optimizer: variable {name} is {:?}, others are {kind:?}",
                        t.kind()
                    )));
                }
                let n = t.numel() as i64;
                let view = flat.narrow(0, offset, n).view(t.size().as_slice());
                view.shallow_clone().copy_(&t);
                t.set_data(&view);
                params.push(t);
                offset += n;
            }
            Ok(())
        })?;
        let m = flat.zeros_like();
        let v = (cfg.kind == OptimKind::Adam).then(|| flat.zeros_like());
        let views = |buf: &Tensor| -> Vec<Tensor> {
            let mut off = 0;
            params
                .iter()
                .map(|p| {
                    let n = p.numel() as i64;
                    let view = buf.narrow(0, off, n).view(p.size().as_slice());
                    off += n;
                    view
                })
                .collect()
        };
        let m_views = views(&m);
        let v_views = v.as_ref().map(views).unwrap_or_default();
        let scratch = views(&flat.zeros_like());
        Ok(Optimizer {
            cfg: cfg.clone(),
            lr: cfg.lr,
            clip: None,
            m_views,
            v_views,
            scratch,
            params,
            m,
            v,
            step: Tensor::zeros([], (Kind::Int64, Device::Cpu)),
            steps: 0,
            flat,
        })
    }

    /// Sets the learning rate used by the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The learning rate in use.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Clips the global gradient norm to `max_norm` from now on (`None`: no clipping).
    pub fn set_clip_grad_norm(&mut self, max_norm: Option<f64>) {
        self.clip = max_norm;
    }

    /// Number of updates made so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The parameters, in the order of the flat buffer.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// Back-propagates `loss` to the parameters and applies one update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = Tensor::f_run_backward(&[loss], &self.params, false, false)?;
        self.apply_gradients(&grads)
    }

    /// Applies one update from gradients given by hand (same order and shapes as
    /// [`Optimizer::params`]); the update *descends* along them.
    pub fn apply_gradients(&mut self, grads: &[Tensor]) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::Msg(format!(
                "optimizer: {} gradients for {} parameters",
                grads.len(),
                self.params.len()
            )));
        }
        tch::no_grad(|| self.update(grads))
    }

    fn update(&mut self, grads: &[Tensor]) -> Result<()> {
        // On several processes: the global batch's gradient, before clipping sees it.
        let mut grads = crate::dist::average_gradients(grads)?;
        if let Some(max_norm) = self.clip {
            let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
            let norm = Tensor::f_stack(&norms, 0)?.norm();
            let scale = (max_norm / (norm + 1e-6)).clamp_max(1.0);
            grads = grads.iter().map(|g| g * &scale).collect();
        }
        if self.cfg.weight_decay > 0.0 {
            let wd = self.cfg.weight_decay;
            grads = grads
                .iter()
                .zip(&self.params)
                .map(|(g, p)| g + p * wd)
                .collect();
        }
        self.steps += 1;
        let _ = self.step.fill_(self.steps as i64);
        match self.cfg.kind {
            OptimKind::Adam => {
                let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
                let t = self.steps as i32;
                let bc1 = 1.0 - b1.powi(t);
                let sqrt_bc2 = (1.0 - b2.powi(t)).sqrt();
                // p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps), as p += m / d with
                // d = (sqrt(v) + eps·sqrt(bc2)) · (−bc1 / (lr·sqrt(bc2))).
                let shift = self.cfg.eps * sqrt_bc2;
                let scale = -bc1 / (self.lr * sqrt_bc2);
                let per_param = grads
                    .iter()
                    .zip(self.scratch.iter_mut())
                    .zip(self.m_views.iter_mut().zip(self.v_views.iter_mut()))
                    .zip(self.params.iter_mut());
                for (((g, s), (m, v)), p) in per_param {
                    let _ = g.f_mul_out(s, g)?;
                    let _ = m.f_lerp_(g, 1.0 - b1)?;
                    let _ = v.f_lerp_(s, 1.0 - b2)?;
                    let _ = v.f_sqrt_out(s)?;
                    let _ = s.f_add_scalar_(shift)?;
                    let _ = s.f_mul_scalar_(scale)?;
                    let _ = p.f_addcdiv_(m, s)?;
                }
            }
            OptimKind::Sgd => {
                let per_param = grads
                    .iter()
                    .zip(self.m_views.iter_mut())
                    .zip(self.params.iter_mut());
                for ((g, m), p) in per_param {
                    if self.cfg.momentum > 0.0 {
                        let _ = m.f_mul_scalar_(self.cfg.momentum)?;
                        let _ = m.f_add_(g)?;
                        let _ = p.f_add_(&(&*m * -self.lr))?;
                    } else {
                        let _ = p.f_add_(&(g * -self.lr))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The optimizer's state as named tensors (saved beside the weights).
    pub fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut s = vec![
            (format!("{prefix}.m"), self.m.shallow_clone()),
            (format!("{prefix}.step"), self.step.shallow_clone()),
        ];
        if let Some(v) = &self.v {
            s.push((format!("{prefix}.v"), v.shallow_clone()));
        }
        s
    }

    /// Restores the state written by [`Optimizer::state`].
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, prefix: &str) -> Result<()> {
        let get = |name: &str| {
            tensors
                .get(&format!("{prefix}.{name}"))
                .ok_or_else(|| Error::Msg(format!("optimizer state has no tensor {prefix}.{name}")))
        };
        tch::no_grad(|| -> Result<()> {
            let m = get("m")?;
            if m.size() != self.m.size() {
                return Err(Error::Msg(format!(
                    "optimizer state {prefix}.m has shape {:?}, the model needs {:?}",
                    m.size(),
                    self.m.size()
                )));
            }
            self.m.f_copy_(m)?;
            if let Some(v) = self.v.as_mut() {
                v.f_copy_(get("v")?)?;
            }
            let step = get("step")?;
            self.steps = step.f_int64_value(&[])? as u64;
            let _ = self.step.fill_(self.steps as i64);
            Ok(())
        })
    }
}

use tch::Device;

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::{self, Module, OptimizerConfig};

    fn setup(kind: OptimKind) -> (VarStore, nn::Linear, Optimizer) {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "fc", 4, 2, Default::default());
        let cfg = OptimConfig {
            kind,
            lr: 0.05,
            momentum: 0.5,
            ..Default::default()
        };
        let opt = Optimizer::new(&vs, &cfg).unwrap();
        (vs, lin, opt)
    }

    fn loss(lin: &nn::Linear) -> Tensor {
        let x = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0, 0.0, 1.0, -1.0, 2.0]).view([2, 4]);
        (lin.forward(&x) - 1.0)
            .pow_tensor_scalar(2)
            .sum(Kind::Float)
    }

    #[test]
    fn adam_matches_tch_adam() {
        let _rng = crate::rng_guard::lock();
        let (_vs, lin, mut opt) = setup(OptimKind::Adam);
        tch::manual_seed(0);
        let vs2 = VarStore::new(Device::Cpu);
        let lin2 = nn::linear(vs2.root() / "fc", 4, 2, Default::default());
        let mut opt2 = nn::Adam::default().build(&vs2, 0.05).unwrap();
        for _ in 0..20 {
            opt.backward_step(&loss(&lin)).unwrap();
            opt2.backward_step(&loss(&lin2));
        }
        let d = (&lin.ws - &lin2.ws).abs().max().double_value(&[]);
        assert!(d < 1e-5, "weights differ by {d}");
        assert!(loss(&lin).double_value(&[]) < 0.5 * loss(&lin2).double_value(&[]) + 1.0);
    }

    #[test]
    fn sgd_momentum_matches_formula() {
        let _rng = crate::rng_guard::lock();
        let (_vs, lin, mut opt) = setup(OptimKind::Sgd);
        let w0 = lin.ws.detach().copy();
        let g1 = Tensor::run_backward(&[loss(&lin)], &[&lin.ws], false, false)
            .pop()
            .unwrap();
        opt.backward_step(&loss(&lin)).unwrap();
        let expect1 = &w0 - &g1 * 0.05;
        assert!((&lin.ws - &expect1).abs().max().double_value(&[]) < 1e-6);
        let g2 = Tensor::run_backward(&[loss(&lin)], &[&lin.ws], false, false)
            .pop()
            .unwrap();
        opt.backward_step(&loss(&lin)).unwrap();
        let expect2 = &expect1 - (&g1 * 0.5 + &g2) * 0.05;
        assert!((&lin.ws - &expect2).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn state_round_trip_continues_identically() {
        let _rng = crate::rng_guard::lock();
        let (vs, lin, mut opt) = setup(OptimKind::Adam);
        for _ in 0..5 {
            opt.backward_step(&loss(&lin)).unwrap();
        }
        let saved: HashMap<String, Tensor> = opt
            .state("opt")
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        let weights: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.copy()))
            .collect();
        for _ in 0..5 {
            opt.backward_step(&loss(&lin)).unwrap();
        }
        let after = lin.ws.copy();
        // Fresh model and optimizer, restored to step 5.
        let (vs2, lin2, mut opt2) = setup(OptimKind::Adam);
        tch::no_grad(|| {
            for (k, t) in &weights {
                vs2.variables()[k].shallow_clone().copy_(t);
            }
        });
        opt2.load_state(&saved, "opt").unwrap();
        assert_eq!(opt2.steps(), 5);
        for _ in 0..5 {
            opt2.backward_step(&loss(&lin2)).unwrap();
        }
        assert_eq!((&lin2.ws - &after).abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn weight_decay_adds_to_the_gradient() {
        let _rng = crate::rng_guard::lock();
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root() / "fc", 4, 2, Default::default());
        let cfg = OptimConfig {
            kind: OptimKind::Sgd,
            lr: 0.1,
            weight_decay: 0.5,
            ..Default::default()
        };
        let mut opt = Optimizer::new(&vs, &cfg).unwrap();
        let w0 = lin.ws.detach().copy();
        let g = Tensor::run_backward(&[loss(&lin)], &[&lin.ws], false, false)
            .pop()
            .unwrap();
        opt.backward_step(&loss(&lin)).unwrap();
        let expect = &w0 - (&g + &w0 * 0.5) * 0.1;
        assert!((&lin.ws - &expect).abs().max().double_value(&[]) < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_step() {
        let _rng = crate::rng_guard::lock();
        let (_vs, lin, mut opt) = setup(OptimKind::Sgd);
        opt.set_clip_grad_norm(Some(1e-3));
        let w0 = lin.ws.detach().copy();
        let b0 = lin.bs.as_ref().unwrap().detach().copy();
        opt.backward_step(&loss(&lin)).unwrap();
        let dw = (&lin.ws - &w0).pow_tensor_scalar(2).sum(Kind::Float);
        let db = (lin.bs.as_ref().unwrap() - &b0)
            .pow_tensor_scalar(2)
            .sum(Kind::Float);
        let step_norm = (dw + db).sqrt().double_value(&[]);
        approx::assert_abs_diff_eq!(step_norm, 0.05 * 1e-3, epsilon = 1e-7);
    }
}
