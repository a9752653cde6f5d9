use gm_core::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Hebbian storage of ±1 patterns `[P, N]`: W = (1/N) Σ_μ ξ^μ ξ^μᵀ with a zero diagonal.
pub fn hebbian(patterns: &Tensor) -> Tensor {
    let n = patterns.size()[1];
    let w = patterns.tr().mm(patterns) / n as f64;
    let eye = Tensor::eye(n, (w.kind(), w.device()));
    w * (1.0 - eye)
}

/// E(x) = −½ xᵀWx − bᵀx of states `[B, N]`, `[B]`.
pub fn energy(w: &Tensor, b: Option<&Tensor>, x: &Tensor) -> Tensor {
    let quad = (x.mm(w) * x).sum_dim_intlist(1, false, x.kind()) * -0.5;
    match b {
        Some(b) => quad - x.mv(b),
        None => quad,
    }
}

/// How recall updates the units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// One unit at a time, in index order: x_i ← sign(W_i·x + b_i) (a zero field keeps x_i).
    /// The energy never increases and recall ends at a fixed point.
    #[default]
    Async,
    /// All units at once: x ← sign(Wx + b). May end in a 2-cycle instead of a fixed point.
    Sync,
}

/// The result of a recall.
#[derive(Debug)]
pub struct Recall {
    /// Final states `[B, N]`.
    pub states: Tensor,
    /// Sweeps (async) or steps (sync) run.
    pub sweeps: usize,
    /// Whether every state is a fixed point at the end.
    pub converged: bool,
    /// With `trace`: the energy after every single-unit update (async) or step (sync),
    /// `[updates + 1, B]`, starting with the initial energy.
    pub energies: Option<Tensor>,
}

fn sign_keep(field: &Tensor, current: &Tensor) -> Tensor {
    // sign(field), and the current value where the field is exactly zero.
    field.sign() + current * field.eq(0.0).to_kind(current.kind())
}

/// Recall from `x0` `[B, N]` (±1) with the rule `update`, at most `max_sweeps` sweeps.
pub fn recall(
    w: &Tensor,
    b: Option<&Tensor>,
    x0: &Tensor,
    update: Update,
    max_sweeps: usize,
    trace: bool,
) -> Result<Recall> {
    let n = w.size()[0];
    if x0.dim() != 2 || x0.size()[1] != n {
        return Err(Error::config(
            "hopfield.x",
            format!("shape {:?}", x0.size()),
            format!("[B, {n}] states"),
        ));
    }
    tch::no_grad(|| {
        let mut x = x0.copy();
        let mut energies = trace.then(|| vec![energy(w, b, &x)]);
        let bias = b
            .map(|b| b.shallow_clone())
            .unwrap_or_else(|| w.zeros_like().select(0, 0));
        let mut sweeps = 0;
        let mut converged = false;
        while sweeps < max_sweeps {
            sweeps += 1;
            let before = x.copy();
            match update {
                Update::Async => {
                    for i in 0..n {
                        let field = x.mv(&w.select(0, i)) + bias.select(0, i);
                        let xi = x.select(1, i);
                        let new = sign_keep(&field, &xi);
                        x.select(1, i).copy_(&new);
                        if let Some(e) = energies.as_mut() {
                            e.push(energy(w, b, &x));
                        }
                    }
                }
                Update::Sync => {
                    let field = x.mm(w) + bias.unsqueeze(0);
                    x = sign_keep(&field, &x);
                    if let Some(e) = energies.as_mut() {
                        e.push(energy(w, b, &x));
                    }
                }
            }
            if x.equal(&before) {
                converged = true;
                break;
            }
        }
        let energies = match energies {
            Some(e) => Some(Tensor::f_stack(&e, 0)?),
            None => None,
        };
        Ok(Recall {
            states: x,
            sweeps,
            converged,
            energies,
        })
    })
}

/// Flips a fraction `noise` of the units of each row of `x` (±1), exactly
/// round(noise·N) units per row, chosen uniformly.
pub fn corrupt(x: &Tensor, noise: f64) -> Tensor {
    let (b, n) = (x.size()[0], x.size()[1]);
    let k = (noise * n as f64).round() as i64;
    if k == 0 {
        return x.copy();
    }
    let ranks = Tensor::rand([b, n], (Kind::Float, x.device())).argsort(1, false);
    let flip = ranks.lt(k).to_kind(x.kind());
    x * (1.0 - flip * 2.0)
}

/// One point of the capacity curve.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CapacityPoint {
    /// Stored patterns P.
    pub patterns: i64,
    /// Load α = P / N.
    pub load: f64,
    /// Fraction of stored patterns recalled exactly from their corrupted versions.
    pub exact_recall: f64,
    /// Mean overlap m = ξ·x / N between each pattern and its recall (1: perfect).
    pub mean_overlap: f64,
}

/// The capacity experiment: for each count P in `counts`, `trials` times, store P random
/// ±1 patterns of `n` units by the Hebbian rule, corrupt each by flipping a fraction `noise`
/// of its units, recall asynchronously (at most 50 sweeps) and compare with the pattern.
/// Recall stays nearly perfect up to a load P/N ≈ 0.138 (Amit, Gutfreund & Sompolinsky
/// 1985) and collapses beyond it; exact recall of every unit needs P below about
/// N / (2 ln N).
pub fn capacity_curve(
    n: i64,
    counts: &[i64],
    trials: i64,
    noise: f64,
    seed: i64,
    device: Device,
) -> Result<Vec<CapacityPoint>> {
    if n < 2 {
        return Err(Error::config("capacity.n", n, "at least 2 units"));
    }
    if trials < 1 {
        return Err(Error::config("capacity.trials", trials, "at least 1"));
    }
    if !(0.0..=0.5).contains(&noise) {
        return Err(Error::config(
            "capacity.noise",
            noise,
            "a fraction in [0, 0.5]",
        ));
    }
    if let Some(&p) = counts.iter().find(|&&p| p < 1) {
        return Err(Error::config("capacity.counts", p, "pattern counts ≥ 1"));
    }
    tch::manual_seed(seed);
    let mut out = Vec::with_capacity(counts.len());
    for &p in counts {
        let mut exact = Tensor::zeros([], (Kind::Float, device));
        let mut overlap = Tensor::zeros([], (Kind::Float, device));
        for _ in 0..trials {
            let xi = Tensor::rand([p, n], (Kind::Float, device))
                .lt(0.5)
                .to_kind(Kind::Float)
                * 2.0
                - 1.0;
            let w = hebbian(&xi);
            let r = recall(&w, None, &corrupt(&xi, noise), Update::Async, 50, false)?;
            let m = (&r.states * &xi).sum_dim_intlist(1, false, Kind::Float) / n as f64;
            exact += m.ge(1.0 - 1e-6).to_kind(Kind::Float).sum(Kind::Float);
            overlap += m.sum(Kind::Float);
        }
        let total = (p * trials) as f64;
        out.push(CapacityPoint {
            patterns: p,
            load: p as f64 / n as f64,
            exact_recall: exact.double_value(&[]) / total,
            mean_overlap: overlap.double_value(&[]) / total,
        });
    }
    Ok(out)
}
