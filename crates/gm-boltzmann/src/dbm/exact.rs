//! Exact log Z, exact log p(v) and the mean-field lower bound of a small [`Dbm`].
//!
//! Every edge joins an odd and an even layer (figure 20.3), so given every layer of one
//! parity the other parity's units are independent and sum out in closed form:
//!
//! Σ_{x_other} e^{−E(x)} = e^{Σ_{l given} x_l·b_l + Σ_{given pairs} x_{l−1}ᵀ W_l x_l}
//! · Π_{l summed} Π_j (1 + e^{(b_l + x_{l−1} W_l + x_{l+1} W_{l+1}ᵀ)_j}).
//!
//! log Z enumerates the smaller parity (v counted with the even layers); log p̃(v) keeps v
//! fixed and enumerates the smaller of the odd layers and the even hidden layers. The
//! states come in chunks of a running index's bits, each chunk's log-sum-exp stays on the
//! device, all in `f64`. The number of enumerated units is limited by `exact_max_units`
//! (at most 25); beyond it the functions here return an error that says so, and the
//! evaluation uses AIS alone ([`super::ais`]).
//!
//! The lower bound is log p(v) ≥ −E(v, μ) + Σ_l H(μ_l) − log Z for the mean-field means μ
//! ([`super::inference`]), tight when the posterior factorises.

use super::inference::MeanField;
use super::model::{layer_input, Dbm};
use crate::rbm::exact::{bit_rows, softplus};
use gm_core::model::{LikelihoodKind, LogLikelihood};
use gm_core::{Error, Result};
use tch::{Kind, Tensor};

/// Values (at most) of one chunk's matrices.
const CHUNK_VALUES: i64 = 1 << 22;

/// The parameters in `f64`: W_1 … W_L and b_0 … b_L.
struct Params64 {
    w: Vec<Tensor>,
    b: Vec<Tensor>,
}

impl Params64 {
    fn of(dbm: &Dbm) -> Self {
        let f = |t: &Tensor| t.detach().to_kind(Kind::Double);
        let (w, b) = dbm.params();
        Params64 {
            w: w.iter().map(f).collect(),
            b: b.iter().map(f).collect(),
        }
    }

    /// log Σ over the layers that are `None` in `given` of e^{−E}, for the given layers'
    /// states `[M, n_l]` (every neighbour of a summed layer must be given): `[M]`.
    fn log_weight(&self, given: &[Option<Tensor>]) -> Tensor {
        let mut terms = Vec::new();
        let mut add = |t: Tensor| terms.push(t);
        for (l, x) in given.iter().enumerate() {
            match x {
                Some(x) => {
                    add(x.mv(&self.b[l]));
                    if let Some(Some(below)) = l.checked_sub(1).map(|k| &given[k]) {
                        add((below.mm(&self.w[l - 1]) * x).sum_dim_intlist(1, false, Kind::Double));
                    }
                }
                None => {
                    let below = l.checked_sub(1).and_then(|k| given[k].as_ref());
                    let above = given.get(l + 1).and_then(|x| x.as_ref());
                    let u = layer_input(&self.w, &self.b, l, below, above);
                    add(softplus(&u).sum_dim_intlist(1, false, Kind::Double));
                }
            }
        }
        terms
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("a DBM has layers")
    }
}

impl Dbm {
    /// Units of one parity (v counted with the even layers unless `hidden_only`).
    fn parity_units(&self, odd: bool, hidden_only: bool) -> i64 {
        self.parity_layers(odd)
            .into_iter()
            .filter(|&l| !(hidden_only && l == 0))
            .map(|l| self.sizes[l])
            .sum()
    }

    /// Whether both the exact log Z and the exact log p(v) fit `exact_max_units`.
    pub fn enumerable(&self) -> bool {
        let z = self
            .parity_units(true, false)
            .min(self.parity_units(false, false));
        let p = self
            .parity_units(true, true)
            .min(self.parity_units(false, true));
        z.max(p) <= self.cfg.exact_max_units
    }

    /// An error unless `units` may be enumerated (`exact_max_units`).
    fn check_enumerable(&self, units: i64, what: &str) -> Result<()> {
        let limit = self.cfg.exact_max_units;
        if units > limit {
            return Err(Error::Msg(format!(
                "dbm {what}: it needs enumerating {units} units (2^{units} states) of the \
                 {sizes:?} DBM, beyond model.exact_max_units = {limit} (at most 25); use the AIS estimate \
                 (Dbm::ais_log_z) instead",
                sizes = self.sizes
            )));
        }
        Ok(())
    }

    /// log Σ_x e^{−E(x)} over every state of the layers `enumerated` (and, summed in closed
    /// form, of the other parity), for each row of `v` `[N, D]` held fixed, or once when `v`
    /// is `None`: `f64 [N]` (or `[1]`).
    fn sum_states(&self, enumerated: &[usize], v: Option<&Tensor>) -> Tensor {
        tch::no_grad(|| {
            let p = Params64::of(self);
            let units: i64 = enumerated.iter().map(|&l| self.sizes[l]).sum();
            let total = 1i64 << units;
            let width: i64 = self.sizes.iter().sum();
            let len = (CHUNK_VALUES / width).clamp(1, total);
            let n_ex = v.map_or(1, |v| v.size()[0]);
            let ex_chunk = (CHUNK_VALUES / (len * width)).max(1);
            let mut rows = vec![Tensor::zeros([0], (Kind::Double, p.b[0].device()))];
            for e0 in (0..n_ex).step_by(ex_chunk as usize) {
                let e = ex_chunk.min(n_ex - e0);
                let v = v.map(|v| v.narrow(0, e0, e).to_kind(Kind::Double));
                let mut parts = Vec::new();
                for start in (0..total).step_by(len as usize) {
                    let s = len.min(total - start);
                    let bits = bit_rows(start, s, units, p.b[0].device());
                    let given = self.pair_states(enumerated, &bits, v.as_ref());
                    parts.push(p.log_weight(&given).view([e, s]).logsumexp([1], false));
                }
                rows.push(Tensor::stack(&parts, 1).logsumexp([1], false));
            }
            Tensor::cat(&rows, 0)
        })
    }

    /// The layer states of every pair (row of `v` `[E, D]`, row of `bits` `[S, units]`),
    /// `[E·S, n_l]` each, pair (e, s) in row e·S + s: the bits split over the layers
    /// `enumerated` in order, v in layer 0, `None` for the layers summed out (E = 1
    /// without `v`).
    fn pair_states(
        &self,
        enumerated: &[usize],
        bits: &Tensor,
        v: Option<&Tensor>,
    ) -> Vec<Option<Tensor>> {
        let (e, s) = (v.map_or(1, |v| v.size()[0]), bits.size()[0]);
        let mut given: Vec<Option<Tensor>> = (0..self.sizes.len()).map(|_| None).collect();
        let mut col = 0;
        for &l in enumerated {
            let n = self.sizes[l];
            let x = bits.narrow(1, col, n).unsqueeze(0);
            given[l] = Some(x.expand([e, s, n], false).reshape([e * s, n]));
            col += n;
        }
        if let Some(v) = v {
            let d = self.sizes[0];
            given[0] = Some(v.unsqueeze(1).expand([e, s, d], false).reshape([e * s, d]));
        }
        given
    }

    /// log Z by enumerating the odd layers (`odd`) or the even ones (v included), the
    /// other parity summed in closed form; an error beyond `exact_max_units`.
    pub fn log_z_by(&self, odd: bool) -> Result<f64> {
        self.check_enumerable(self.parity_units(odd, false), "exact log Z")?;
        Ok(self
            .sum_states(&self.parity_layers(odd), None)
            .double_value(&[0]))
    }

    /// The exact log Z, enumerating the smaller parity; with whether that was the odd one.
    pub fn exact_log_z(&self) -> Result<(f64, bool)> {
        let odd = self.parity_units(true, false) <= self.parity_units(false, false);
        Ok((self.log_z_by(odd)?, odd))
    }

    /// log p̃(v) = log Σ_h e^{−E(v, h)} of every row of `x` `[N, …]`, `f64 [N]`,
    /// enumerating the smaller of the odd and the even hidden layers.
    pub fn log_unnormalized(&self, x: &Tensor) -> Result<Tensor> {
        let odd = self.parity_units(true, true) <= self.parity_units(false, true);
        self.check_enumerable(self.parity_units(odd, true), "exact log p(v)")?;
        let layers: Vec<usize> = self
            .parity_layers(odd)
            .into_iter()
            .filter(|&l| l > 0)
            .collect();
        let v = x.reshape([-1, self.sizes[0]]);
        Ok(self.sum_states(&layers, Some(&v)))
    }

    /// The exact log p(v) of every row of `x` `[N, …]`, `f64 [N]`.
    pub fn exact_log_p(&self, x: &Tensor) -> Result<Tensor> {
        let (log_z, _) = self.exact_log_z()?;
        Ok(self.log_unnormalized(x)? - log_z)
    }

    /// The mean-field lower bound −E(v, μ) + Σ_l H(μ_l) − `log_z` of every row of `x`
    /// `[N, …]`, `f64 [N]`, with the mean-field result.
    pub fn mean_field_bound(&self, x: &Tensor, log_z: f64) -> (Tensor, MeanField) {
        let mf = self.mean_field(&self.flat(x));
        let bound = -self.variational_free_energy(&mf).to_kind(Kind::Double) - log_z;
        (bound, mf)
    }

    /// The exact log-likelihood and the mean-field bound (with the exact log Z) of `x`
    /// `[N, …]`, mean-field inference `chunk` examples at a time.
    pub fn exact_log_likelihoods(&self, x: &Tensor, chunk: i64) -> Result<Vec<LogLikelihood>> {
        let (log_z, odd) = self.exact_log_z()?;
        let lp = self.log_unnormalized(x)? - log_z;
        let (bound, iters) = self.chunked_bound(x, chunk.max(1), log_z);
        let enumerated = if odd {
            "odd layers"
        } else {
            "even layers (v included)"
        };
        let exact = labelled(
            &lp,
            LikelihoodKind::Exact,
            "enumeration",
            serde_json::json!({
                "log_z": log_z,
                "log_z_enumerated": enumerated,
                "units": self.parity_units(odd, false),
            }),
        )?;
        let lower = labelled(
            &bound,
            LikelihoodKind::LowerBound,
            "mean-field-bound",
            serde_json::json!({
                "log_z": log_z,
                "log_z_kind": "exact",
                "mf_tolerance": self.cfg.mf_tolerance,
                "mf_max_iters": self.cfg.mf_max_iters,
                "mf_iters_per_chunk": iters,
            }),
        )?;
        Ok(vec![exact, lower])
    }
}

impl Dbm {
    /// [`Dbm::mean_field_bound`] of `x` `[N, …]`, `chunk` rows at a time: `f64 [N]`, and the
    /// mean-field iterations of each chunk.
    pub(super) fn chunked_bound(&self, x: &Tensor, chunk: i64, log_z: f64) -> (Tensor, Vec<i64>) {
        let x = x.reshape([-1, self.sizes[0]]);
        let n = x.size()[0];
        let mut bounds = vec![Tensor::zeros([0], (Kind::Double, x.device()))];
        let mut iters = Vec::new();
        for start in (0..n).step_by(chunk as usize) {
            let (b, mf) = self.mean_field_bound(&x.narrow(0, start, chunk.min(n - start)), log_z);
            bounds.push(b);
            iters.push(mf.iters);
        }
        (Tensor::cat(&bounds, 0), iters)
    }
}

/// The mean and standard error of `values` `[N]` as a [`LogLikelihood`].
fn labelled(
    values: &Tensor,
    kind: LikelihoodKind,
    method: &str,
    settings: serde_json::Value,
) -> Result<LogLikelihood> {
    let (mean, std_err) = gm_eval::importance::mean_and_std_err(values)?;
    Ok(LogLikelihood {
        kind,
        method: method.into(),
        settings,
        mean,
        std_err,
        n: values.numel() as i64,
    })
}
