//! The Gaussian–Bernoulli RBM as an [`AisTarget`] on its visible units, hidden units summed
//! out.
//!
//! The base is the hidden-free Gaussian N(a, diag(β_A)⁻¹) (the data's mean and precision in
//! the model's standardised units), with the H hidden units present but unconnected. The
//! intermediate distributions mix the two energies, E_t = (1 − t) E_A + t E, so
//!
//! log f_t(v) = −(1 − t) ½ Σ β_A,i (v_i − a_i)² − t ½ Σ β_i (v_i − b_i)² + Σ_j softplus(t u_j),
//!
//! u = c + (β ⊙ v) W, log Z₀ = (D/2) log 2π − ½ Σ log β_A,i + H log 2, and f_1 = e^{−F}. A
//! transition at t is one block-Gibbs sweep: h ~ σ(t u), then v ~ N(m_t, diag(λ_t)⁻¹) with
//! λ_t = (1 − t) β_A + t β and m_t = ((1 − t) β_A ⊙ a + t β ⊙ (b + W h)) / λ_t.
//!
//! ```
//! use gm_boltzmann::grbm::ais::GrbmAis;
//! use gm_eval::ais::{self, Schedule};
//! use tch::{Device, Kind, Tensor};
//! let o = (Kind::Double, Device::Cpu);
//! // W = 0 and a base equal to the visible Gaussian: every AIS weight is exact.
//! let t = GrbmAis::new(Tensor::zeros([3, 2], o), Tensor::zeros([3], o), Tensor::zeros([2], o),
//!     Tensor::ones([3], o), Tensor::zeros([3], o), Tensor::ones([3], o))?;
//! let est = ais::run(&t, &Schedule::linear(10)?, 8)?;
//! let exact = 1.5 * (2.0 * std::f64::consts::PI).ln() + 2.0 * 2f64.ln();
//! assert!((est.log_z - exact).abs() < 1e-9);
//! # Ok::<(), gm_core::Error>(())
//! ```

use super::energy::{self, LOG_2PI};
use gm_core::{Error, Result};
use gm_eval::ais::AisTarget;
use tch::{Kind, Tensor};

/// A GRBM (`w` `[D, H]`, `b` `[D]`, `c` `[H]`, `beta` `[D]`) with its Gaussian base
/// (`base_mean` `[D]`, `base_prec` `[D]`), all of one kind on one device.
#[derive(Debug)]
pub struct GrbmAis {
    w: Tensor,
    b: Tensor,
    c: Tensor,
    beta: Tensor,
    base_mean: Tensor,
    base_prec: Tensor,
    log_z_base: f64,
}

impl GrbmAis {
    /// Checks shapes and kinds; the tensors are detached.
    pub fn new(
        w: Tensor,
        b: Tensor,
        c: Tensor,
        beta: Tensor,
        base_mean: Tensor,
        base_prec: Tensor,
    ) -> Result<Self> {
        let (d, h) = match w.size().as_slice() {
            &[d, h] => (d, h),
            s => {
                return Err(Error::Msg(format!(
                    "GRBM AIS target: W must be [D, H], got {s:?}"
                )))
            }
        };
        for (name, t, n) in [
            ("b", &b, d),
            ("c", &c, h),
            ("beta", &beta, d),
            ("base_mean", &base_mean, d),
            ("base_prec", &base_prec, d),
        ] {
            if t.size() != [n] || t.kind() != w.kind() || t.device() != w.device() {
                return Err(Error::Msg(format!(
                    "GRBM AIS target: {name} is {:?} {:?} on {:?}; expected [{n}] {:?} on {:?}",
                    t.size(),
                    t.kind(),
                    t.device(),
                    w.kind(),
                    w.device()
                )));
            }
        }
        let log_z_base = 0.5 * d as f64 * LOG_2PI
            - 0.5
                * base_prec
                    .to_kind(Kind::Double)
                    .log()
                    .sum(Kind::Double)
                    .double_value(&[])
            + h as f64 * 2f64.ln();
        Ok(GrbmAis {
            w: w.detach(),
            b: b.detach(),
            c: c.detach(),
            beta: beta.detach(),
            base_mean: base_mean.detach(),
            base_prec: base_prec.detach(),
            log_z_base,
        })
    }

    /// The quadratic terms ½ Σ β_A (v − a)² and ½ Σ β (v − b)², `f64` `[M]` each.
    fn quads(&self, v: &Tensor) -> (Tensor, Tensor) {
        let v = v.to_kind(Kind::Double);
        let q = |m: &Tensor, p: &Tensor| {
            ((&v - m.to_kind(Kind::Double)).square() * p.to_kind(Kind::Double)).sum_dim_intlist(
                1,
                false,
                Kind::Double,
            ) * 0.5
        };
        (q(&self.base_mean, &self.base_prec), q(&self.b, &self.beta))
    }

    fn ratio(&self, v: &Tensor, u: &Tensor, from: f64, to: f64) -> Tensor {
        let (qa, qb) = self.quads(v);
        let u = u.to_kind(Kind::Double);
        let hid = (energy::softplus(&(&u * to)) - energy::softplus(&(&u * from))).sum_dim_intlist(
            1,
            false,
            Kind::Double,
        );
        (qa - qb) * (to - from) + hid
    }

    fn visible_at(&self, h: &Tensor, t: f64) -> Tensor {
        let pa = &self.base_prec * (1.0 - t);
        let pb = &self.beta * t;
        let lambda = &pa + &pb;
        let mean =
            (energy::visible_mean(h, &self.w, &self.b) * &pb + &pa * &self.base_mean) / &lambda;
        let noise = mean.randn_like() * lambda.rsqrt();
        mean + noise
    }
}

impl AisTarget for GrbmAis {
    type State = Tensor;

    fn sample_base(&self, m: i64) -> Result<Tensor> {
        let d = self.base_mean.size()[0];
        let z = Tensor::randn([m, d], (self.w.kind(), self.w.device()));
        Ok(z * self.base_prec.rsqrt() + &self.base_mean)
    }

    fn log_z_base(&self) -> f64 {
        self.log_z_base
    }

    fn log_f(&self, v: &Tensor, t: f64) -> Result<Tensor> {
        let (qa, qb) = self.quads(v);
        let u = energy::hidden_input(v, &self.w, &self.c, &self.beta).to_kind(Kind::Double);
        let hid = energy::softplus(&(u * t)).sum_dim_intlist(1, false, Kind::Double);
        Ok(qa * (t - 1.0) - qb * t + hid)
    }

    fn transition(&self, v: &Tensor, t: f64) -> Result<Tensor> {
        let u = energy::hidden_input(v, &self.w, &self.c, &self.beta);
        let h = energy::bernoulli(&(u * t).sigmoid());
        Ok(self.visible_at(&h, t))
    }

    fn log_f_ratio(&self, v: &Tensor, from: f64, to: f64) -> Result<Tensor> {
        let u = energy::hidden_input(v, &self.w, &self.c, &self.beta);
        Ok(self.ratio(v, &u, from, to))
    }

    fn step(&self, v: &Tensor, from: f64, to: f64) -> Result<(Tensor, Tensor)> {
        let u = energy::hidden_input(v, &self.w, &self.c, &self.beta);
        let delta = self.ratio(v, &u, from, to);
        let h = energy::bernoulli(&(&u * to).sigmoid());
        Ok((delta, self.visible_at(&h, to)))
    }
}
