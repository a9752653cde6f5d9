//! Annealed importance sampling of a [`Dbm`]'s log Z (Salakhutdinov & Hinton 2009, §4;
//! the engine of Salakhutdinov & Murray 2008 in [`gm_eval::ais`]).
//!
//! **Base.** p₀ is the DBM with every weight zero and biases c_0 … c_L: c_0 = b_A, the
//! visible biases of the base-rate model (the logits of the training marginals, as the
//! RBM's AIS uses), and for each hidden layer (`ais_base = "chains"`, the default) the
//! logits of its units' mean conditional probabilities p(h_l = 1 | neighbours) over the
//! persistent chains, the model's own marginals as well as its chains know them (clamped as
//! b_A is), or zero (`"fair"`: fair coins). Independent units, so
//! log Z₀ = Σ_l Σ_j softplus(c_l,j). A base is any distribution fixed before the run, so
//! either gives an unbiased estimate of Z; the chains' one starts the hidden layers where
//! the model keeps them, which matters on MNIST: on the 784-500-1000 DBM after 216 epochs,
//! 14,500 temperatures gave forward / reverse log Ẑ 306.65 / 347.70 (ESS 3.0) from fair
//! coins and 321.36 / 321.34 (ESS 63.6 / 55.9) from the chains' marginals.
//!
//! **Path.** −E_β(x) = (1 − β)·Σ_l x_l·c_l + β·(−E(x)): every weight scaled by β, each
//! layer's bias moved from c_l to b_l.
//!
//! **One parity summed out.** Every edge joins an odd and an even layer (figure 20.3), so
//! given the layers of one parity (the *kept* ones) the others are independent and sum
//! out. With a_l(β) = β·u_l + (1 − β)·c_l and u_l = b_l + x_{l−1} W_l + x_{l+1} W_{l+1}ᵀ,
//!
//! log f_β(x_kept) = Σ_{kept l} x_l·(β b_l + (1 − β) c_l)
//!                 + Σ_{summed l} Σ_j softplus(a_{l,j}(β)),
//!
//! the DBM analogue of the RBM's free energy. `ais_state = "even"` keeps (v, h2, …) and
//! sums the odd layers (for L = 2 the chains run over (v, h2), as in the paper);
//! `"odd"` keeps (h1, h3, …) and sums out v with the even hidden layers — for 784-500-1000
//! a 500-unit state instead of a 1,784-unit one. A transition at β samples the summed
//! layers given the kept ones from p_β, then the kept ones given those: a Gibbs sweep of
//! the joint p_β, which leaves the kept layers' marginal invariant. The chain state keeps
//! every layer (the summed ones as last drawn; log f does not read them).
//!
//! **Reverse.** [`Dbm::reverse_ais_log_z`] anneals the other way, from the persistent
//! chains after `sample_steps` more Gibbs sweeps. From exact samples it would overestimate
//! log Z in expectation, bracketing it with the forward run; the chains are only
//! approximate samples, so the pair is a convergence check rather than a bound: a reverse
//! log Ẑ far above the forward one says the forward run has missed mass.
//!
//! Products run in the parameters' kind; log f and its differences are taken in `f64`.

use super::config::{AisBase, AisState};
use super::model::{layer_input, Dbm};
use crate::rbm::exact::softplus;
use crate::rbm::{reverse_note, MARGINAL_EPS};
use gm_core::model::LogLikelihood;
use gm_core::sampling::bernoulli::sample as bernoulli;
use gm_core::Result;
use gm_eval::ais::{self, AisResult, AisTarget, Direction, Schedule};
use tch::{Kind, Tensor};

/// A DBM as an AIS target on the layers of one parity, the others summed out.
pub struct DbmTarget {
    /// W_1 … W_L.
    w: Vec<Tensor>,
    /// b_0 … b_L.
    b: Vec<Tensor>,
    /// The base's biases c_0 … c_L (c_0 = b_A).
    base: Vec<Tensor>,
    /// The parity of the layers the chains keep.
    kept: AisState,
    log_z_base: f64,
}

impl DbmTarget {
    /// The target of weights W_1 … W_L and biases b_0 … b_L, from the base of independent
    /// units with biases `base` c_0 … c_L (one float kind, one device: where the chains
    /// run), its chains keeping the `kept` layers.
    pub fn new(w: &[Tensor], b: &[Tensor], base: &[Tensor], kept: AisState) -> Self {
        let log_z_base = base
            .iter()
            .map(|c| {
                let c = c.to_kind(Kind::Double);
                softplus(&c).sum(Kind::Double).double_value(&[])
            })
            .sum();
        DbmTarget {
            w: w.iter().map(Tensor::detach).collect(),
            b: b.iter().map(Tensor::detach).collect(),
            base: base.iter().map(Tensor::detach).collect(),
            kept,
            log_z_base,
        }
    }

    /// The layers of one parity: 0, 2, … (`odd` false) or 1, 3, ….
    fn layers(&self, odd: bool) -> impl Iterator<Item = usize> {
        (usize::from(odd)..=self.w.len()).step_by(2)
    }

    fn kept_odd(&self) -> bool {
        self.kept == AisState::Odd
    }

    /// u_l of every summed layer, from the kept layers of `x`.
    fn summed_inputs(&self, x: &[Tensor]) -> Vec<(usize, Tensor)> {
        self.layers(!self.kept_odd())
            .map(|l| {
                let below = l.checked_sub(1).map(|k| &x[k]);
                (l, layer_input(&self.w, &self.b, l, below, x.get(l + 1)))
            })
            .collect()
    }

    /// a_l(β) = β·u_l + (1 − β)·c_l.
    fn annealed(&self, l: usize, u: &Tensor, beta: f64) -> Tensor {
        u * beta + &self.base[l] * (1.0 - beta)
    }

    /// Σ_{kept l} x_l·(b_l − c_l) (`delta`) or Σ_{kept l} x_l·c_l, `f64 [M]`.
    fn kept_linear(&self, x: &[Tensor], delta: bool) -> Tensor {
        let d = |t: &Tensor| t.to_kind(Kind::Double);
        self.layers(self.kept_odd())
            .map(|l| {
                let c = if delta {
                    &self.b[l] - &self.base[l]
                } else {
                    self.base[l].shallow_clone()
                };
                d(&x[l]).mv(&d(&c))
            })
            .reduce(|a, b| a + b)
            .expect("a DBM has layers of both parities")
    }

    /// The part of log f_β linear in β: Σ_{kept l} x_l·(b_l − c_l), `f64 [M]`.
    fn kept_slope(&self, x: &[Tensor]) -> Tensor {
        self.kept_linear(x, true)
    }

    /// Σ_{summed l} Σ_j softplus(a_l(β)), `f64 [M]`.
    fn summed_term(&self, u: &[(usize, Tensor)], beta: f64) -> Tensor {
        u.iter()
            .map(|(l, u)| {
                let a = self.annealed(*l, &u.to_kind(Kind::Double), beta);
                softplus(&a).sum_dim_intlist(1, false, Kind::Double)
            })
            .reduce(|a, b| a + b)
            .expect("a DBM has layers of both parities")
    }

    /// log f_to − log f_from given the summed layers' inputs `u`.
    fn ratio_at(&self, x: &[Tensor], u: &[(usize, Tensor)], from: f64, to: f64) -> Tensor {
        self.kept_slope(x) * (to - from) + self.summed_term(u, to) - self.summed_term(u, from)
    }

    /// Draws the summed layers from σ(a_l(β)), then the kept ones given them, at β.
    fn sweep(&self, x: &[Tensor], u: &[(usize, Tensor)], beta: f64) -> Vec<Tensor> {
        let mut next: Vec<Tensor> = x.iter().map(Tensor::shallow_clone).collect();
        for (l, u) in u {
            next[*l] = bernoulli(&self.annealed(*l, u, beta).sigmoid());
        }
        for l in self.layers(self.kept_odd()) {
            let below = l.checked_sub(1).map(|k| &next[k]);
            let u = layer_input(&self.w, &self.b, l, below, next.get(l + 1));
            next[l] = bernoulli(&self.annealed(l, &u, beta).sigmoid());
        }
        next
    }
}

impl AisTarget for DbmTarget {
    /// One `[M, n_l]` tensor per layer 0 … L (the summed ones are not read by log f).
    type State = Vec<Tensor>;

    fn sample_base(&self, m: i64) -> Result<Vec<Tensor>> {
        Ok(self
            .base
            .iter()
            .map(|c| bernoulli(&c.sigmoid().unsqueeze(0).expand([m, -1], false)))
            .collect())
    }

    fn log_z_base(&self) -> f64 {
        self.log_z_base
    }

    fn log_f(&self, x: &Vec<Tensor>, beta: f64) -> Result<Tensor> {
        let u = self.summed_inputs(x);
        Ok(self.kept_linear(x, false) + self.kept_slope(x) * beta + self.summed_term(&u, beta))
    }

    fn transition(&self, x: &Vec<Tensor>, beta: f64) -> Result<Vec<Tensor>> {
        Ok(self.sweep(x, &self.summed_inputs(x), beta))
    }

    fn log_f_ratio(&self, x: &Vec<Tensor>, from: f64, to: f64) -> Result<Tensor> {
        let u = self.summed_inputs(x);
        Ok(self.ratio_at(x, &u, from, to))
    }

    fn step(&self, x: &Vec<Tensor>, from: f64, to: f64) -> Result<(Tensor, Vec<Tensor>)> {
        let u = self.summed_inputs(x);
        Ok((self.ratio_at(x, &u, from, to), self.sweep(x, &u, to)))
    }
}

/// What `gm eval` asks of a DBM's AIS: chains, temperatures, and whether to run the
/// reverse check too.
#[derive(Clone, Debug)]
pub struct AisOptions {
    /// Chains (M) of each run.
    pub chains: i64,
    /// The temperatures, base to target.
    pub schedule: Schedule,
    /// Also anneal from the persistent chains back to the base.
    pub reverse: bool,
}

impl Dbm {
    /// The model as an AIS target, based on the base-rate model ([`DbmTarget`]).
    pub fn ais_target(&self) -> DbmTarget {
        DbmTarget::new(
            &self.weights,
            &self.biases,
            &self.ais_base(),
            self.cfg.ais_state,
        )
    }

    /// The base's biases: b_A for v; for each hidden layer zero, or with `ais_base =
    /// "chains"` the logits of its units' mean conditional probabilities over the persistent
    /// chains (clamped as b_A is).
    fn ais_base(&self) -> Vec<Tensor> {
        let mut base = vec![self.base_b.shallow_clone()];
        for l in 1..=self.weights.len() {
            let x = &self.chains;
            let c = match self.cfg.ais_base {
                AisBase::Fair => self.biases[l].zeros_like(),
                AisBase::Chains => {
                    let u = layer_input(
                        &self.weights,
                        &self.biases,
                        l,
                        Some(&x[l - 1]),
                        x.get(l + 1),
                    );
                    let p = u.sigmoid().mean_dim(0, false, u.kind());
                    let p: Tensor = p.clamp(MARGINAL_EPS, 1.0 - MARGINAL_EPS);
                    p.logit(None::<f64>)
                }
            };
            base.push(c.detach());
        }
        base
    }

    /// Forward AIS estimate of log Z with `chains` chains along `schedule`.
    pub fn ais_log_z(&self, chains: i64, schedule: &Schedule) -> Result<AisResult> {
        ais::run(&self.ais_target(), schedule, chains)
    }

    /// Reverse AIS estimate of log Z along `schedule`, from `chains` copies of the persistent
    /// chains moved by `sample_steps` Gibbs sweeps (see the module docs: a check, not a
    /// bound).
    pub fn reverse_ais_log_z(&self, chains: i64, schedule: &Schedule) -> Result<AisResult> {
        let mut x = self.persistent_start(chains);
        self.gibbs(&mut x, self.cfg.sample_steps);
        ais::run_reverse(&self.ais_target(), schedule, x)
    }

    /// The mean-field bound of `x` `[N, …]` with the AIS estimate `est` of log Z in place
    /// of the true one, mean-field inference `chunk` rows at a time: a stochastic estimate
    /// of a lower bound, the test log-probability Salakhutdinov & Hinton (2009) report. Its
    /// settings carry log Ẑ, its standard error and its ±3σ interval.
    pub fn ais_bound(&self, x: &Tensor, chunk: i64, est: &AisResult) -> Result<LogLikelihood> {
        let (bound, iters) = self.chunked_bound(x, chunk.max(1), 0.0);
        self.bound_with(&bound, iters, est)
    }

    /// The record of per-example mean-field bounds `bound` (without log Z) with log Ẑ = `est`.
    fn bound_with(
        &self,
        bound: &Tensor,
        iters: Vec<i64>,
        est: &AisResult,
    ) -> Result<LogLikelihood> {
        let mut ll = est.log_likelihood(bound)?;
        let (lo, hi) = est.log_z_interval(3.0);
        ll.settings["log_z_interval_3sigma"] = serde_json::json!([lo, hi]);
        ll.settings["mf_tolerance"] = serde_json::json!(self.cfg.mf_tolerance);
        ll.settings["mf_iters_per_chunk"] = serde_json::json!(iters);
        let hidden = match self.cfg.ais_base {
            AisBase::Fair => "zero hidden biases".to_string(),
            AisBase::Chains => format!(
                "hidden biases the logits of the persistent chains' mean conditional \
                 probabilities (clamped to [{MARGINAL_EPS}, {}])",
                1.0 - MARGINAL_EPS
            ),
        };
        ll.settings["base"] = serde_json::json!(format!(
            "zero weights, {hidden}, visible biases of the base-rate model (training \
             marginals clamped to [{MARGINAL_EPS}, {}]); chains on the {} layers, the \
             others summed out",
            1.0 - MARGINAL_EPS,
            self.cfg.ais_state.name()
        ));
        let (method, note) = match est.direction {
            Direction::Forward => (
                "mean-field-bound+ais",
                serde_json::json!(
                    "the mean-field lower bound with the AIS estimate of log Z: a stochastic \
                     estimate of a lower bound (Salakhutdinov & Hinton 2009); forward AIS \
                     underestimates log Z in expectation, so it may lie above the true bound"
                ),
            ),
            Direction::Reverse => (
                "mean-field-bound+reverse-ais",
                reverse_note(est.chains, self.chains[0].size()[0], self.cfg.sample_steps),
            ),
        };
        ll.method = method.into();
        ll.settings["note"] = note;
        Ok(ll)
    }

    /// The likelihoods `gm eval` reports: the exact log p and mean-field bound when the
    /// model can be enumerated, then the mean-field bound with the forward AIS log Ẑ, and
    /// with the reverse one when `ais.reverse` asks for it.
    pub fn evaluation_log_likelihoods(
        &self,
        x: &Tensor,
        chunk: i64,
        ais: &AisOptions,
    ) -> Result<Vec<LogLikelihood>> {
        let mut out = if self.enumerable() {
            self.exact_log_likelihoods(x, chunk)?
        } else {
            Vec::new()
        };
        let (bound, iters) = self.chunked_bound(x, chunk.max(1), 0.0);
        let fwd = self.ais_log_z(ais.chains, &ais.schedule)?;
        out.push(self.bound_with(&bound, iters.clone(), &fwd)?);
        if ais.reverse {
            let est = self.reverse_ais_log_z(ais.chains, &ais.schedule)?;
            let mut ll = self.bound_with(&bound, iters, &est)?;
            ais::note_reverse_shortfall(&mut ll.settings, &fwd, &est);
            out.push(ll);
        }
        Ok(out)
    }
}
