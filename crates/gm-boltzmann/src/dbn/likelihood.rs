//! The DBN's log-likelihoods: exact by enumeration for tiny models, and the variational
//! lower bound with the top RBM's log Z from AIS (Salakhutdinov & Murray 2008, §5).
//!
//! With layers h_0 = v, h_1 … h_L, the DBN is p(v, h_1 … h_L) =
//! p(v | h_1) ⋯ p(h_{L−2} | h_{L−1}) · p_top(h_{L−1}, h_L), each p(h_{l−1} | h_l) the
//! directed conditional σ(b + W h_l) of layer l's RBM, and p_top the top RBM. Its marginal
//! on h_{L−1} is e^{−F_top(h_{L−1})} / Z_top.
//!
//! **Exact.** Enumerating h_{L−1}, then h_{L−2} … h_1:
//! log p(h_{l−1}) = logsumexp_{h_l} [log p(h_{l−1} | h_l) + log p(h_l)], and
//! log p(v) = logsumexp_{h_1} [log p(v | h_1) + log p(h_1)]; Z_top is the sum over the same
//! enumeration of h_{L−1}. The cost is 2^{n_{l−1} + n_l} per directed layer.
//!
//! **Bound.** With the factorial up-pass q(h_l | h_{l−1}) = σ(c + h_{l−1} W) of each RBM,
//!
//! log p(v) ≥ E_q[log p(v | h_1) + Σ_{l=2}^{L−1} log p(h_{l−1} | h_l) − F_top(h_{L−1})] +
//! H(q(h_1 | v)) + E_q[Σ_{l=2}^{L−1} H(q(h_l | h_{l−1}))] − log Z_top,
//!
//! the entropies of the factorial q taken exactly given the layer below (for two hidden
//! layers: E_q[log p(v | h_1)] + E_q[log p*_top(h_1)] + H(q) − log Z_top). The expectation
//! is estimated from `bound_samples` draws of the up-pass per example, and log Z_top by
//! forward AIS from the top RBM's base-rate model, so the reported number is a stochastic
//! estimate of the bound (AIS underestimates log Z in expectation, which errs towards a
//! higher number).

use super::model::Dbn;
use crate::rbm::exact::{bit_rows, softplus};
use crate::rbm::{Rbm, EXACT_MAX_UNITS_LIMIT};
use gm_core::config::RunConfig;
use gm_core::model::{LikelihoodKind, LogLikelihood};
use gm_core::sampling::bernoulli::sample as bernoulli;
use gm_core::{Error, Result};
use gm_eval::ais::Schedule;
use tch::{Kind, Tensor};

/// Values (at most) of one chunk's matrix in the enumerations.
const CHUNK_VALUES: i64 = 1 << 22;

/// W, b, c of an RBM in `f64`.
fn params64(layer: &Rbm) -> (Tensor, Tensor, Tensor) {
    let (w, b, c) = layer.params();
    (
        w.detach().to_kind(Kind::Double),
        b.detach().to_kind(Kind::Double),
        c.detach().to_kind(Kind::Double),
    )
}

/// log p(x | h) of `layer` read as the directed conditional p(visible | hidden) =
/// Π_i σ(a_i)^{x_i} σ(−a_i)^{1−x_i}, a = b + W h, for every pair of rows of `x` `[N, D]`
/// and `h` `[M, H]` (`f64`): `[N, M]`.
pub(super) fn directed_log_prob_pairs(layer: &Rbm, x: &Tensor, h: &Tensor) -> Tensor {
    let (w, b, _) = params64(layer);
    let x = x.to_kind(Kind::Double);
    let (m, d) = (h.size()[0], w.size()[0]);
    let rows = (CHUNK_VALUES / d.max(1)).max(1);
    let mut parts = Vec::new();
    let mut start = 0;
    while start < m {
        let len = rows.min(m - start);
        let a = b.addmm(&h.narrow(0, start, len).to_kind(Kind::Double), &w.tr());
        let norm = softplus(&a).sum_dim_intlist(1, false, Kind::Double);
        parts.push(x.mm(&a.tr()) - norm.unsqueeze(0));
        start += len;
    }
    Tensor::cat(&parts, 1)
}

/// log p(x_n | h_n) of `layer` as in [`directed_log_prob_pairs`], row by row: `[N]`.
pub(super) fn directed_log_prob_rows(layer: &Rbm, x: &Tensor, h: &Tensor) -> Tensor {
    let (w, b, _) = params64(layer);
    let a = b.addmm(&h.to_kind(Kind::Double), &w.tr());
    (x.to_kind(Kind::Double) * &a - softplus(&a)).sum_dim_intlist(1, false, Kind::Double)
}

/// H(q) of the factorial Bernoulli q with logits `u` `[N, H]`: Σ_j softplus(u_j) − σ(u_j) u_j.
fn entropy(u: &Tensor) -> Tensor {
    (softplus(u) - u.sigmoid() * u).sum_dim_intlist(1, false, Kind::Double)
}

impl Dbn {
    /// Units enumerated by the exact log p(x): h_1 … h_{L−1}, in all.
    pub fn enumerated_units(&self) -> i64 {
        let h = &self.cfg.hidden;
        h[..h.len() - 1].iter().sum()
    }

    /// log p(h_1 = s) for every state s of h_1 (row k = bits of k, bit j in column j),
    /// `f64 [2^{n_1}]`, by enumerating h_1 … h_{L−1}. An error beyond 2^25 states per layer
    /// pair.
    pub fn log_prior_h1(&self) -> Result<Tensor> {
        let n_enum = self.enumerated_units();
        if n_enum > EXACT_MAX_UNITS_LIMIT {
            return Err(Error::Msg(format!(
                "dbn exact log p: enumerating h1 … h_(L−1) ({n_enum} units) is beyond the \
                 limit of {EXACT_MAX_UNITS_LIMIT}"
            )));
        }
        tch::no_grad(|| {
            let device = self.device_of();
            let states = |n: i64| bit_rows(0, 1 << n, n, device);
            let top = self.top();
            let neg_f = top.neg_free_energy_f64(&states(top.visible()), CHUNK_VALUES);
            let mut log_p = &neg_f - neg_f.logsumexp([0], false);
            for l in (1..self.layers.len() - 1).rev() {
                let layer = &self.layers[l];
                let below = states(layer.visible());
                let above = states(layer.hidden());
                let cond = directed_log_prob_pairs(layer, &below, &above);
                log_p = (cond + log_p.unsqueeze(0)).logsumexp([1], false);
            }
            Ok(log_p)
        })
    }

    /// The exact log p(x) of every row of `x` `[N, …]`, `f64 [N]`.
    pub fn exact_log_p(&self, x: &Tensor) -> Result<Tensor> {
        let prior = self.log_prior_h1()?;
        tch::no_grad(|| {
            let n1 = self.cfg.hidden[0];
            let h1 = bit_rows(0, 1 << n1, n1, self.device_of());
            let x = x.reshape([-1, self.visible()]);
            let n = x.size()[0];
            let rows = (CHUNK_VALUES >> n1).max(1);
            let mut out = Vec::new();
            let mut start = 0;
            while start < n {
                let len = rows.min(n - start);
                let joint = directed_log_prob_pairs(&self.layers[0], &x.narrow(0, start, len), &h1)
                    + prior.unsqueeze(0);
                out.push(joint.logsumexp([1], false));
                start += len;
            }
            Ok(if out.is_empty() {
                Tensor::zeros([0], (Kind::Double, self.device_of()))
            } else {
                Tensor::cat(&out, 0)
            })
        })
    }

    /// The exact mean log-likelihood of `x`, when h_1 … h_{L−1} have at most
    /// `exact_max_units` units in all.
    pub fn exact_log_likelihood(&self, x: &Tensor) -> Result<Option<LogLikelihood>> {
        let units = self.enumerated_units();
        if units > self.cfg.exact_max_units {
            return Ok(None);
        }
        let lp = self.exact_log_p(x)?;
        let (mean, se) = gm_eval::importance::mean_and_std_err(&lp)?;
        Ok(Some(LogLikelihood {
            kind: LikelihoodKind::Exact,
            method: "enumeration".into(),
            settings: serde_json::json!({
                "enumerated": "h1 … h_(L−1) (2^n states of each, h_L summed in closed form)",
                "units": units,
            }),
            mean,
            std_err: se,
            n: lp.numel() as i64,
        }))
    }

    /// The variational bound on log p(x) before its − log Z_top term, per row of `x`
    /// `[N, …]`, `f64 [N]`: the mean over `samples` draws of the up-pass q of
    /// log p(v | h_1) + Σ log p(h_{l−1} | h_l) − F_top(h_{L−1}) + Σ H(q(h_l | h_{l−1})),
    /// `chunk` examples (× `samples` rows) at a time.
    pub fn bound_before_log_z(&self, x: &Tensor, samples: i64, chunk: i64) -> Tensor {
        tch::no_grad(|| {
            let x = x.reshape([-1, self.visible()]).to_kind(Kind::Double);
            let n = x.size()[0];
            let mut out = Vec::new();
            let mut start = 0;
            while start < n {
                let len = chunk.max(1).min(n - start);
                out.push(self.bound_chunk(&x.narrow(0, start, len), samples));
                start += len;
            }
            if out.is_empty() {
                Tensor::zeros([0], (Kind::Double, self.device_of()))
            } else {
                Tensor::cat(&out, 0)
            }
        })
    }

    fn bound_chunk(&self, v: &Tensor, samples: i64) -> Tensor {
        let n = v.size()[0];
        let mut below = v.repeat([samples, 1]);
        let mut acc = Tensor::zeros([samples * n], (Kind::Double, v.device()));
        for layer in &self.layers[..self.layers.len() - 1] {
            let (w, _, c) = params64(layer);
            let u = c.addmm(&below, &w);
            let h = bernoulli(&u.sigmoid());
            acc += entropy(&u) + directed_log_prob_rows(layer, &below, &h);
            below = h;
        }
        acc += self.top().neg_free_energy_f64(&below, CHUNK_VALUES);
        acc.view([samples, n]).mean_dim(0, false, Kind::Double)
    }

    /// The bound with log Z_top from forward AIS (`eval.ais_chains`, `eval.ais_steps`),
    /// labelled a lower bound; its settings hold the AIS run and, when the top RBM is small
    /// enough, its exact log Z beside it.
    pub fn ais_bound(&self, x: &Tensor, cfg: &RunConfig) -> Result<LogLikelihood> {
        let samples = self.cfg.bound_samples;
        let pre = self.bound_before_log_z(x, samples, cfg.eval.chunk);
        let schedule = match cfg.eval.ais_steps {
            None => Schedule::salakhutdinov_murray(),
            Some(n) => Schedule::linear(n)?,
        };
        let top = self.top();
        let est = top.ais_log_z(cfg.eval.ais_chains, &schedule)?;
        let mut ll = est.log_likelihood(&pre)?;
        ll.kind = LikelihoodKind::LowerBound;
        ll.method = "ais-variational-bound".into();
        let s = &mut ll.settings;
        s["bound_samples"] = serde_json::json!(samples);
        s["q"] = serde_json::json!("factorial up-pass q(h_l | h_(l−1)) of each RBM");
        s["ais_of"] = serde_json::json!(format!(
            "log Z of the top RBM ({} × {}), base: running means of its training inputs",
            top.visible(),
            top.hidden()
        ));
        s["note"] = serde_json::json!(
            "a lower bound on log p(x), estimated: its expectation from bound_samples draws \
             of q per example, log Z_top by forward AIS (which underestimates log Z in \
             expectation, so the estimate errs upward)"
        );
        if let Some((exact, _)) = top.exact_log_z()? {
            s["exact_log_z_top"] = serde_json::json!(exact);
        }
        Ok(ll)
    }

    fn device_of(&self) -> tch::Device {
        self.layers[0].params().0.device()
    }
}
