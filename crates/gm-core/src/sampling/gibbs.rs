//! Sequential (site-by-site) Gibbs sampling of binary pairwise models
//!
//! p(x) ∝ exp(β (½ xᵀJx + aᵀx)),  J symmetric with zero diagonal,
//!
//! with 0/1 units (the Boltzmann machine of *Deep Learning* §20.1, where the joint of visible
//! and hidden units has this form) or ±1 units (the stochastic Hopfield network). Each site's
//! conditional given all the others is a Bernoulli with logit β(J_i·x + a_i) (0/1 units) or
//! 2β(J_i·x + a_i) (±1 units, for x_i = +1). A sweep visits the chosen sites in order, all
//! chains at once; updating only some sites samples the others' conditional (clamping).
//! A block-Gibbs step for bipartite models (RBMs) is one call of [`sample_bernoulli`] per
//! layer.
//!
//! ```no_run
//! use gm_core::sampling::gibbs::{PairwiseBinary, Units};
//! use tch::{Device, Kind, Tensor};
//! let j = Tensor::from_slice(&[0.0f32, 1.0, 1.0, 0.0]).view([2, 2]);
//! let a = Tensor::zeros([2], (Kind::Float, Device::Cpu));
//! let model = PairwiseBinary::new(&j, &a, Units::Spin, 1.0)?;
//! let mut x = model.random_states(500);
//! model.sweeps(&mut x, &[0, 1], 20)?;
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::{Error, Result};
use tch::Tensor;

/// The values a binary unit takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// 0 and 1.
    Bernoulli,
    /// −1 and +1.
    Spin,
}

impl Units {
    /// 0/1 bits to this kind of unit.
    pub fn from_bits(self, bits: &Tensor) -> Tensor {
        match self {
            Units::Bernoulli => bits.shallow_clone(),
            Units::Spin => bits * 2.0 - 1.0,
        }
    }

    /// Units of this kind to 0/1 bits.
    pub fn to_bits(self, x: &Tensor) -> Tensor {
        match self {
            Units::Bernoulli => x.shallow_clone(),
            Units::Spin => (x + 1.0) * 0.5,
        }
    }
}

/// Independent Bernoulli draws with probabilities `p` (0/1 values of `p`'s kind).
pub fn sample_bernoulli(p: &Tensor) -> Tensor {
    super::bernoulli::sample(p)
}

/// A binary pairwise model p(x) ∝ exp(β (½ xᵀJx + aᵀx)): borrowed couplings `J` `[D, D]`
/// (symmetric, zero diagonal) and biases `a` `[D]`.
#[derive(Debug)]
pub struct PairwiseBinary<'a> {
    coupling: &'a Tensor,
    bias: &'a Tensor,
    units: Units,
    beta: f64,
}

impl<'a> PairwiseBinary<'a> {
    /// Checks the shapes and β > 0; symmetry and the zero diagonal are the caller's (they are
    /// exact by construction in gm's models) and are not checked here.
    pub fn new(coupling: &'a Tensor, bias: &'a Tensor, units: Units, beta: f64) -> Result<Self> {
        let d = bias.size();
        if d.len() != 1 {
            return Err(Error::config(
                "gibbs.bias",
                format!("shape {d:?}"),
                "a [D] tensor",
            ));
        }
        if coupling.size() != [d[0], d[0]] {
            return Err(Error::config(
                "gibbs.coupling",
                format!("shape {:?}", coupling.size()),
                format!("a [{0}, {0}] tensor (the bias has {0} units)", d[0]),
            ));
        }
        if !(beta > 0.0 && beta.is_finite()) {
            return Err(Error::config(
                "gibbs.beta",
                beta,
                "a finite inverse temperature > 0",
            ));
        }
        Ok(PairwiseBinary {
            coupling,
            bias,
            units,
            beta,
        })
    }

    /// Number of units D.
    pub fn dim(&self) -> i64 {
        self.bias.size()[0]
    }

    /// The kind of units.
    pub fn units(&self) -> Units {
        self.units
    }

    /// Energy E(x) = −½xᵀJx − aᵀx of states `[C, D]`, `[C]` (p ∝ exp(−βE)).
    pub fn energy(&self, x: &Tensor) -> Tensor {
        let quad = (x.mm(self.coupling) * x).sum_dim_intlist(1, false, x.kind());
        -(quad * 0.5 + x.mv(self.bias))
    }

    /// log p(x) + log Z = −βE(x), `[C]`.
    pub fn log_unnormalized(&self, x: &Tensor) -> Tensor {
        self.energy(x) * -self.beta
    }

    /// `n` states drawn uniformly, on the model's device and in its kind.
    pub fn random_states(&self, n: i64) -> Tensor {
        let p = Tensor::full([n, self.dim()], 0.5, (self.bias.kind(), self.bias.device()));
        self.units.from_bits(&sample_bernoulli(&p))
    }

    /// Logits of p(x_i = 1 (or +1) | x_−i) for every site at once, `[C, D]` (each from the
    /// current values of the others; a sequential sweep recomputes them one at a time).
    pub fn conditional_logits(&self, x: &Tensor) -> Tensor {
        let field = x.mm(self.coupling) + self.bias.unsqueeze(0);
        field * self.logit_scale()
    }

    fn logit_scale(&self) -> f64 {
        match self.units {
            Units::Bernoulli => self.beta,
            Units::Spin => 2.0 * self.beta,
        }
    }

    /// `sweeps` sequential Gibbs sweeps over `sites` (in that order) of the chains `x`
    /// `[C, D]`, in place; the other sites stay clamped.
    pub fn sweeps(&self, x: &mut Tensor, sites: &[i64], sweeps: usize) -> Result<()> {
        let (c, d) = super::check_states("gibbs.x", x)?;
        if d != self.dim() {
            return Err(Error::config(
                "gibbs.x",
                format!("[{c}, {d}] states"),
                format!("[chains, {}] states", self.dim()),
            ));
        }
        if let Some(&bad) = sites.iter().find(|&&i| !(0..d).contains(&i)) {
            return Err(Error::config(
                "gibbs.sites",
                bad,
                format!("site indices in 0..{d}"),
            ));
        }
        if sites.is_empty() || sweeps == 0 {
            return Ok(());
        }
        tch::no_grad(|| {
            let scale = self.logit_scale();
            let k = sites.len() as i64;
            let index = Tensor::from_slice(sites).to_device(x.device());
            // Rows of J and entries of a of the visited sites, scaled once.
            let rows = self.coupling.index_select(0, &index) * scale;
            let bias = self.bias.index_select(0, &index) * scale;
            let rows: Vec<Tensor> = (0..k).map(|s| rows.select(0, s)).collect();
            for _ in 0..sweeps {
                // One uniform per chain and site, drawn once per sweep; logit(u) < logit(p)
                // ⇔ u < p.
                let u = Tensor::rand([c, k], (x.kind(), x.device())).logit(None::<f64>);
                for (s, &site) in sites.iter().enumerate() {
                    let s = s as i64;
                    let logit = x.mv(&rows[s as usize]) + bias.select(0, s);
                    let on = u.select(1, s).lt_tensor(&logit).to_kind(x.kind());
                    x.select(1, site).copy_(&self.units.from_bits(&on));
                }
            }
        });
        Ok(())
    }

    /// Like [`PairwiseBinary::sweeps`] over every site, returning the states after each
    /// sweep `[sweeps, C, D]` (for estimates that average over the chain).
    pub fn trajectory(&self, x: &mut Tensor, sweeps: usize) -> Result<Tensor> {
        let all: Vec<i64> = (0..self.dim()).collect();
        let mut out = Vec::with_capacity(sweeps);
        for _ in 0..sweeps {
            self.sweeps(x, &all, 1)?;
            out.push(x.copy());
        }
        if out.is_empty() {
            return Ok(x.zeros_like().unsqueeze(0).narrow(0, 0, 0));
        }
        Ok(Tensor::f_stack(&out, 0)?)
    }
}
