//! The AIS target of a Bernoulli RBM, with its hidden units summed out (Salakhutdinov &
//! Murray 2008, §4).
//!
//! The RBM has energy E(v, h) = −v·b − h·c − vᵀWh, so
//! log Σ_h e^{−E(v, h)} = v·b + Σ_j softplus(c_j + (vW)_j) = −F(v). The base is a product
//! of Bernoullis over the visibles with biases `base_b` (the "base-rate" model fitted to the
//! data's pixel means, see [`BernoulliRbm::base_rate_biases`], or zeros for the uniform
//! distribution), with the same hidden units at zero weights. The intermediate
//! distributions on visibles are
//!
//! log f_β(v) = (1 − β)·v·b_A + β·v·b + Σ_j softplus(β(c_j + (vW)_j)),
//!
//! so log Z₀ = Σ_i softplus(b_A,i) + H log 2, and a transition at β is one block-Gibbs sweep
//! h ~ σ(β(vW + c)), v ~ σ((1 − β) b_A + β(Wh + b)). Each AIS step takes two matrix
//! products: v·W (shared by the weight update and the hidden draw) and h·Wᵀ.
//!
//! The matrix products run in the parameters' kind (`f32` for speed, `f64` for tests). The
//! weight update's hidden term Σ_j softplus(a_j) − softplus(b_j), a = β_k u, b = β_{k−1} u,
//! is taken as −Σ_j log1p(σ(a_j)·expm1(b_j − a_j)), which has no cancellation (so `f32` is
//! accurate) and reuses σ(a), the hidden probabilities the Gibbs sweep needs; the
//! log-weights are accumulated in `f64`. Bernoulli draws are `u < p` with u uniform.
//!
//! For `f32` chains on the CPU a step is two products, two sigmoids and one Rust pass per
//! chain (module `fused`) that sums the hidden term by the Bernoulli cumulant series and draws h
//! in the same loop; elsewhere (`f64`, CUDA) it is the sequence of libtorch operations above.
//!
//! ```
//! use gm_eval::ais::{self, rbm::BernoulliRbm, Schedule};
//! use tch::{Device, Kind, Tensor};
//! let opts = (Kind::Float, Device::Cpu);
//! let data_mean = Tensor::full([4], 0.3, opts);
//! let rbm = BernoulliRbm::new(
//!     Tensor::zeros([4, 2], opts),
//!     BernoulliRbm::base_rate_biases(&data_mean, 1e-3),
//!     Tensor::zeros([2], opts),
//!     BernoulliRbm::base_rate_biases(&data_mean, 1e-3),
//! )?;
//! // With W = 0 the target equals the base, whose log Z is exact.
//! let est = ais::run(&rbm, &Schedule::linear(10)?, 20)?;
//! let exact = 4.0 * (1.0f64 / 0.7).ln() + 2.0 * 2f64.ln();
//! assert!((est.log_z - exact).abs() < 1e-4);
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{host, sampling::bernoulli::Stream, Error, Result};
use tch::{Device, Kind, Tensor};

use super::AisTarget;

mod fused;

/// A Bernoulli–Bernoulli RBM as an AIS target on its visible units.
#[derive(Debug)]
pub struct BernoulliRbm {
    w: Tensor,
    /// Wᵀ, contiguous: the down product h·Wᵀ reads it row by row.
    wt: Tensor,
    c: Tensor,
    base_b: Tensor,
    /// v·(b − b_A) is needed at every step; b − b_A is kept.
    b_diff: Tensor,
    log_z_base: f64,
}

impl BernoulliRbm {
    /// An RBM with weights `w` `[D, H]`, visible biases `b` `[D]`, hidden biases `c` `[H]`,
    /// and base-distribution visible biases `base_b` `[D]`, all of one float kind on one
    /// device (where the chains will run).
    pub fn new(w: Tensor, b: Tensor, c: Tensor, base_b: Tensor) -> Result<Self> {
        let (d, h) = match w.size().as_slice() {
            &[d, h] => (d, h),
            s => {
                return Err(Error::Msg(format!(
                    "RBM AIS target: W must be [D, H], got {s:?}"
                )))
            }
        };
        for (name, t, n) in [("b", &b, d), ("c", &c, h), ("base_b", &base_b, d)] {
            if t.size() != [n] {
                return Err(Error::Msg(format!(
                    "RBM AIS target: {name} must have shape [{n}] to match W {:?}, got {:?}",
                    w.size(),
                    t.size()
                )));
            }
            if t.kind() != w.kind() || t.device() != w.device() {
                return Err(Error::Msg(format!(
                    "RBM AIS target: {name} is {:?} on {:?}, W is {:?} on {:?}",
                    t.kind(),
                    t.device(),
                    w.kind(),
                    w.device()
                )));
            }
        }
        if !matches!(w.kind(), Kind::Float | Kind::Double) {
            return Err(Error::Msg(format!(
                "RBM AIS target: parameters must be f32 or f64, got {:?}",
                w.kind()
            )));
        }
        let (w, b, c, base_b) = (w.detach(), b.detach(), c.detach(), base_b.detach());
        let log_z_base = softplus(&base_b.to_kind(Kind::Double))
            .sum(Kind::Double)
            .double_value(&[])
            + h as f64 * 2f64.ln();
        let b_diff = &b - &base_b;
        Ok(BernoulliRbm {
            wt: w.tr().contiguous(),
            w,
            c,
            base_b,
            b_diff,
            log_z_base,
        })
    }

    /// The biases of the base-rate model: log(p / (1 − p)) of the data's mean visible
    /// activations, with p clamped to [eps, 1 − eps] (Salakhutdinov & Murray 2008 smooth the
    /// pixel means the same way). A base close to the data makes AIS far more accurate than
    /// the uniform base.
    pub fn base_rate_biases(mean: &Tensor, eps: f64) -> Tensor {
        let p = mean.clamp(eps, 1.0 - eps);
        p.logit(None)
    }

    /// Number of visible units D.
    pub fn visible(&self) -> i64 {
        self.w.size()[0]
    }

    /// Number of hidden units H.
    pub fn hidden(&self) -> i64 {
        self.w.size()[1]
    }

    /// −F(v) = log Σ_h e^{−E(v, h)} of the target RBM, `[N]` in `f64`: the unnormalised
    /// log-probability to pass to [`super::AisResult::log_likelihood`].
    pub fn neg_free_energy(&self, v: &Tensor) -> Tensor {
        tch::no_grad(|| self.log_f_at(&v.to_kind(self.w.kind()), &self.pre_hidden(v), 1.0))
    }

    /// v·W + c in the parameters' kind.
    fn pre_hidden(&self, v: &Tensor) -> Tensor {
        self.c.addmm(&v.to_kind(self.w.kind()), &self.w)
    }

    /// log f_β(v) from v and its hidden pre-activations u = vW + c, in `f64`.
    fn log_f_at(&self, v: &Tensor, u: &Tensor, beta: f64) -> Tensor {
        let v64 = v.to_kind(Kind::Double);
        let vis = v64.matmul(
            &(self.b_diff.to_kind(Kind::Double) * beta + self.base_b.to_kind(Kind::Double)),
        );
        let hid =
            softplus(&(u.to_kind(Kind::Double) * beta)).sum_dim_intlist(1, false, Kind::Double);
        vis + hid
    }

    fn sample_visible(&self, h: &Tensor, beta: f64) -> Tensor {
        // (1 − β) b_A + β (hWᵀ + b) = (b_A + β (b − b_A)) + β hWᵀ: one product with β as its
        // scale and the bias vector as its input.
        let bias = (&self.b_diff * beta + &self.base_b).view([1, 1, -1]);
        let mut a = bias.baddbmm(&h.unsqueeze(0), &self.wt.unsqueeze(0), 1.0, beta);
        bernoulli(&a.sigmoid_().squeeze_dim(0))
    }
}

/// x ~ Bernoulli(p), elementwise ([`gm_core::sampling::bernoulli`]).
use gm_core::sampling::bernoulli::sample as bernoulli;

/// softplus(x) = max(x, 0) + log1p(e^−|x|), exactly (libtorch's `softplus` returns x itself
/// above x = 20, an error of up to 2·10⁻⁹ per unit).
fn softplus(x: &Tensor) -> Tensor {
    x.clamp_min(0.0) + x.abs().neg().exp().log1p()
}

/// Steps up to this size take the hidden term of the weight update from the fused formula
/// in the parameters' kind; larger ones from two `f64` softplus values.
const FUSED_MAX_STEP: f64 = 0.05;

impl AisTarget for BernoulliRbm {
    type State = Tensor;

    fn sample_base(&self, m: i64) -> Result<Tensor> {
        let p = self
            .base_b
            .sigmoid()
            .unsqueeze(0)
            .expand([m, self.visible()], false);
        Ok(bernoulli(&p))
    }

    fn log_z_base(&self) -> f64 {
        self.log_z_base
    }

    fn log_f(&self, v: &Tensor, beta: f64) -> Result<Tensor> {
        Ok(self.log_f_at(v, &self.pre_hidden(v), beta))
    }

    fn transition(&self, v: &Tensor, beta: f64) -> Result<Tensor> {
        let mut u = self.pre_hidden(v);
        let _ = u.g_mul_scalar_(beta);
        let h = bernoulli(&u.sigmoid_());
        Ok(self.sample_visible(&h, beta))
    }

    fn log_f_ratio(&self, v: &Tensor, beta_from: f64, beta_to: f64) -> Result<Tensor> {
        let u = self.pre_hidden(v);
        let p_h = (&u * beta_to).sigmoid();
        Ok(self.ratio_at(v, &u, &p_h, beta_from, beta_to))
    }

    fn step(&self, v: &Tensor, beta_from: f64, beta_to: f64) -> Result<(Tensor, Tensor)> {
        if let Some(out) = self.fused_step(v, beta_from, beta_to)? {
            return Ok(out);
        }
        let u = self.pre_hidden(v);
        let mut p_h = &u * beta_to;
        let _ = p_h.sigmoid_();
        let delta = self.ratio_at(v, &u, &p_h, beta_from, beta_to);
        let h = bernoulli(&p_h);
        Ok((delta, self.sample_visible(&h, beta_to)))
    }
}

impl BernoulliRbm {
    /// The step of `f32` chains on the CPU: a = to·(vW + c) in one product, p = σ(a), then
    /// one pass per chain for the log-weight update and the hidden draw ([`fused`]). `None`
    /// where it does not apply (other kinds or devices, to = 0, large steps).
    fn fused_step(&self, v: &Tensor, from: f64, to: f64) -> Result<Option<(Tensor, Tensor)>> {
        let fits = self.w.device() == Device::Cpu && self.w.kind() == Kind::Float;
        if !fits || v.kind() != Kind::Float || to <= 0.0 || (to - from).abs() > FUSED_MAX_STEP {
            return Ok(None);
        }
        let (m, h) = (v.size()[0], self.hidden());
        let c = self.c.view([1, 1, h]);
        let a = c
            .baddbmm(&v.unsqueeze(0), &self.w.unsqueeze(0), to, to)
            .squeeze_dim(0);
        let p = a.sigmoid();
        let r = ((from - to) / to) as f32;
        let mut rng = Stream::seeded_rows(m, h as usize);
        let ([h], delta) =
            host::pass::<f32, 4, 1, _>([v, &self.b_diff, &a, &p], [&[m, h]], |ins, [h]| {
                fused::hidden_pass(ins, h, r, to - from, &mut rng)
            })?;
        let delta = Tensor::from_slice(&delta);
        Ok(Some((delta, self.sample_visible(&h, to))))
    }

    /// log f_to(v) − log f_from(v) = (to − from)·v·(b − b_A) plus the sum over j of
    /// softplus(to·u_j) − softplus(from·u_j), as `f64`, given u = vW + c and p_h = σ(to·u).
    ///
    /// With a = to·u and b = from·u, softplus(a) − softplus(b) = −log1p(σ(a)·expm1(b − a)):
    /// no cancellation, so it is accurate even in `f32` (relative error of the small
    /// difference itself, not of the softplus values), and σ(a) is the hidden probability
    /// the transition needs anyway. It is used for steps |to − from| ≤ [`FUSED_MAX_STEP`]
    /// (an overflow would need |u| in the hundreds, and would show as a non-finite weight,
    /// which the engine reports); larger steps take the difference of `f64` softplus values.
    fn ratio_at(&self, v: &Tensor, u: &Tensor, p_h: &Tensor, from: f64, to: f64) -> Tensor {
        if (to - from).abs() <= FUSED_MAX_STEP {
            // All in the parameters' kind: the visible term is (to − from)·v·(b − b_A), small.
            let mut x = u * (from - to);
            let _ = x.expm1_();
            let _ = x.g_mul_(p_h);
            let _ = x.log1p_();
            let hid = x.sum_dim_intlist(1, false, u.kind());
            let mut vis = v.mv(&self.b_diff);
            let _ = vis.g_mul_scalar_(to - from);
            let _ = vis.g_sub_(&hid);
            vis.to_kind(Kind::Double)
        } else {
            let u64 = u.to_kind(Kind::Double);
            let vis = v
                .to_kind(Kind::Double)
                .mv(&self.b_diff.to_kind(Kind::Double))
                * (to - from);
            let hid = (softplus(&(&u64 * to)) - softplus(&(&u64 * from))).sum_dim_intlist(
                1,
                false,
                Kind::Double,
            );
            vis + hid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// A 30-visible, 40-hidden RBM of `kind` whose hidden pre-activations reach beyond ±20,
    /// `n` binary rows, and their pre-activations vW + c in `f64`.
    fn fixture(kind: Kind, n: i64) -> (BernoulliRbm, Tensor, Tensor) {
        let opts = (kind, Device::Cpu);
        let rbm = BernoulliRbm::new(
            Tensor::randn([30, 40], opts) * 3.0,
            Tensor::randn([30], opts),
            Tensor::randn([40], opts) * 5.0,
            Tensor::randn([30], opts),
        )
        .unwrap();
        let v = Tensor::rand([n, 30], opts).round();
        let u64 = rbm.pre_hidden(&v).to_kind(Kind::Double);
        assert!(u64.abs().max().double_value(&[]) > 20.0);
        (rbm, v, u64)
    }

    /// log f_to(v) − log f_from(v) from two `f64` softplus values, softplus written out
    /// independently: log(1 + e^x) = max(x, 0) + log(1 + e^−|x|).
    fn reference_ratio(rbm: &BernoulliRbm, v: &Tensor, u64: &Tensor, from: f64, to: f64) -> Tensor {
        let sp = |x: &Tensor| x.relu() + (-x.abs()).exp().log1p();
        let vis = v
            .to_kind(Kind::Double)
            .mv(&rbm.b_diff.to_kind(Kind::Double))
            * (to - from);
        vis + (sp(&(u64 * to)) - sp(&(u64 * from))).sum_dim_intlist(1, false, Kind::Double)
    }

    /// max |got − want| and max |want|.
    fn error_and_scale(got: &Tensor, want: &Tensor) -> (f64, f64) {
        let err = (got - want).abs().max().double_value(&[]);
        (err, want.abs().max().double_value(&[]))
    }

    /// The fused hidden term against the difference of two `f64` softplus values, for
    /// pre-activations up to ±60, in both kinds and both directions.
    #[test]
    fn fused_weight_update_matches_softplus_difference() {
        let _rng = gm_core::rng_guard::lock();
        tch::manual_seed(41);
        for kind in [Kind::Float, Kind::Double] {
            let (rbm, v, u64) = fixture(kind, 8);
            let u = rbm.pre_hidden(&v);
            for (from, to) in [(0.3, 0.301), (0.7, 0.65), (0.99999, 1.0), (0.0, 0.05)] {
                let p_h = (&u * to).sigmoid();
                let got = rbm.ratio_at(&v, &u, &p_h, from, to);
                let (err, scale) =
                    error_and_scale(&got, &reference_ratio(&rbm, &v, &u64, from, to));
                let tol = if kind == Kind::Float {
                    1e-5 * scale.max(1e-3)
                } else {
                    1e-12 * scale.max(1.0)
                };
                assert!(
                    err <= tol,
                    "{kind:?} {from}→{to}: error {err:e} (scale {scale:e})"
                );
            }
        }
    }

    /// The fused CPU step's log-weight update against two `f64` softplus values, at small
    /// and large pre-activations; the step falls back where the pass does not apply.
    #[test]
    fn fused_step_matches_softplus_difference() {
        let _rng = gm_core::rng_guard::seeded(43);
        let (rbm, v, u64) = fixture(Kind::Float, 64);
        for (from, to) in [
            (0.3, 0.301),
            (0.7, 0.65),
            (0.99999, 1.0),
            (0.0, 0.001),
            (0.5, 0.54),
        ] {
            let (delta, next) = rbm.fused_step(&v, from, to).unwrap().expect("fused");
            assert_eq!((delta.kind(), next.size()), (Kind::Double, vec![64, 30]));
            let (err, scale) = error_and_scale(&delta, &reference_ratio(&rbm, &v, &u64, from, to));
            assert!(
                err <= 1e-5 * scale.max(1e-3),
                "{from}→{to}: error {err:e} (scale {scale:e})"
            );
        }
        assert!(rbm.fused_step(&v, 0.0, 0.0).unwrap().is_none());
        assert!(rbm.fused_step(&v, 0.0, 0.5).unwrap().is_none());
        assert!(rbm
            .fused_step(&v.to_kind(Kind::Double), 0.3, 0.301)
            .unwrap()
            .is_none());
    }
}
