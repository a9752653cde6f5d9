//! Exact enumeration of small binary models: every one of the 2^d states, the normalised
//! distribution of a log-density over them, empirical distributions of samples and the total
//! variation distance. The reference the samplers and the Boltzmann machines are tested
//! against (feasible up to [`MAX_ENUMERATED_UNITS`] units).
//!
//! ```no_run
//! use gm_core::sampling::exact;
//! use gm_core::sampling::gibbs::Units;
//! use tch::{Device, Kind};
//! let states = exact::all_states(3, Units::Spin, Kind::Double, Device::Cpu)?; // [8, 3]
//! let p = exact::distribution(&states, |x| x.sum_dim_intlist(1, false, Kind::Double))?;
//! println!("{p}");
//! # Ok::<(), gm_core::Error>(())
//! ```

use super::gibbs::Units;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// The largest number of units [`all_states`] enumerates (2^24 states).
pub const MAX_ENUMERATED_UNITS: i64 = 24;

/// Every binary state of `d` units, `[2^d, d]`: row `k` holds the bits of `k`, unit 0 the most
/// significant one (so [`state_index`] of row `k` is `k`), as 0/1 or ±1 values.
pub fn all_states(d: i64, units: Units, kind: Kind, device: Device) -> Result<Tensor> {
    if !(1..=MAX_ENUMERATED_UNITS).contains(&d) {
        return Err(Error::config(
            "units",
            d,
            format!("1 ..= {MAX_ENUMERATED_UNITS} units to enumerate every state"),
        ));
    }
    let codes = Tensor::arange(1i64 << d, (Kind::Int64, device)).unsqueeze(1);
    let shifts = Tensor::arange(d, (Kind::Int64, device))
        .flip([0])
        .unsqueeze(0);
    let bits = codes
        .bitwise_right_shift(&shifts)
        .bitwise_and(1)
        .to_kind(kind);
    Ok(units.from_bits(&bits))
}

/// The index of each state `[N, d]` (0/1 or ±1 values) in the order of [`all_states`].
pub fn state_index(x: &Tensor, units: Units) -> Tensor {
    let d = x.size()[1];
    let bits = units.to_bits(x).to_kind(Kind::Int64);
    let weights: Vec<i64> = (0..d).map(|j| 1i64 << (d - 1 - j)).collect();
    let weights = Tensor::from_slice(&weights).to_device(x.device());
    (bits * weights.unsqueeze(0)).sum_dim_intlist(1, false, Kind::Int64)
}

/// The empirical distribution `[2^d]` (f64) of the states `[N, d]`.
pub fn empirical(x: &Tensor, units: Units) -> Tensor {
    let d = x.size()[1];
    let n = x.size()[0].max(1) as f64;
    state_index(x, units)
        .bincount::<Tensor>(None, 1i64 << d)
        .to_kind(Kind::Double)
        / n
}

/// log Σ_states exp(log_p(state)) over `states` `[S, d]`, in chunks of 2^16 rows, in f64.
pub fn log_sum_exp_states(states: &Tensor, log_p: impl Fn(&Tensor) -> Tensor) -> Result<f64> {
    let parts = chunked(states, log_p)?;
    Ok(parts.logsumexp([0], false).double_value(&[]))
}

/// The normalised probabilities `[S]` (f64) of `states` under the unnormalised `log_p`.
pub fn distribution(states: &Tensor, log_p: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
    let lp = chunked(states, log_p)?;
    Ok((&lp - lp.logsumexp([0], false)).exp())
}

fn chunked(states: &Tensor, log_p: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
    let n = states.size()[0];
    let chunk = 1i64 << 16;
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        out.push(tch::no_grad(|| log_p(&states.narrow(0, start, len))).to_kind(Kind::Double));
        start += len;
    }
    Ok(Tensor::f_cat(&out, 0)?)
}

/// Total variation distance ½ Σ |p − q| between two distributions over the same states.
pub fn total_variation(p: &Tensor, q: &Tensor) -> f64 {
    (p.to_kind(Kind::Double) - q.to_kind(Kind::Double))
        .abs()
        .sum(Kind::Double)
        .double_value(&[])
        * 0.5
}
