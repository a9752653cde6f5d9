//! The exact partition function of a small Bernoulli RBM, by enumerating one layer.
//!
//! Summing the other layer out in closed form, Z = Σ_v e^{v·b} Π_j (1 + e^{c_j + (vW)_j})
//! = Σ_h e^{h·c} Π_i (1 + e^{b_i + (Wh)_i}), so log Z costs 2^n terms for the smaller layer
//! of n units. The states are generated in chunks (bits of a running index), each chunk's
//! log-sum-exp stays on the device, and the chunks are combined at the end: one read-back,
//! all in `f64`.
//!
//! ```
//! use gm_boltzmann::rbm::exact::{log_z, Layer};
//! use tch::{Device, Kind, Tensor};
//! let o = (Kind::Double, Device::Cpu);
//! let (w, b, c) = (Tensor::zeros([3, 2], o), Tensor::zeros([3], o), Tensor::zeros([2], o));
//! // All weights and biases zero: Z = 2^(3 + 2).
//! let lz = log_z(&w, &b, &c, Layer::Hidden)?;
//! assert!((lz - 5.0 * 2f64.ln()).abs() < 1e-12);
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{Error, Result};
use tch::{Kind, Tensor};

use super::config::EXACT_MAX_UNITS_LIMIT;

/// Which layer is enumerated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Sum over all 2^D visible vectors of e^{−F(v)}.
    Visible,
    /// Sum over all 2^H hidden vectors of the visible-marginalised weight.
    Hidden,
}

/// Values (at most) of one chunk's `[rows, other]` matrix.
const CHUNK_VALUES: i64 = 1 << 22;

/// softplus(x) = log(1 + e^x) as `logaddexp(x, 0)`: one kernel, exact for every x
/// (libtorch's `softplus` returns x itself above 20).
pub(crate) fn softplus(x: &Tensor) -> Tensor {
    x.logaddexp(&Tensor::zeros([], (x.kind(), x.device())))
}

/// Rows `start .. start + len` of the table of all binary vectors of `n` bits (row k holds
/// the bits of k, bit j in column j), `f64`.
pub(crate) fn bit_rows(start: i64, len: i64, n: i64, device: tch::Device) -> Tensor {
    let k = Tensor::arange_start(start, start + len, (Kind::Int64, device)).unsqueeze(1);
    let p = Tensor::arange(n, (Kind::Int64, device)).unsqueeze(0);
    k.bitwise_right_shift(&p)
        .bitwise_and(1)
        .to_kind(Kind::Double)
}

/// log Z of the RBM with weights `w` `[D, H]`, visible biases `b` `[D]` and hidden biases
/// `c` `[H]`, enumerating `layer` (at most 25 units), computed in `f64`.
pub fn log_z(w: &Tensor, b: &Tensor, c: &Tensor, layer: Layer) -> Result<f64> {
    tch::no_grad(|| {
        let (w, b, c) = (
            w.to_kind(Kind::Double),
            b.to_kind(Kind::Double),
            c.to_kind(Kind::Double),
        );
        // s: enumerated states; a: their biases; o: the other layer's biases; m: [n, other].
        let (a, o, m) = match layer {
            Layer::Visible => (b, c, w),
            Layer::Hidden => (c, b, w.tr().contiguous()),
        };
        let n = a.size()[0];
        if n > EXACT_MAX_UNITS_LIMIT {
            return Err(Error::Msg(format!(
                "exact log Z: enumerating {n} {layer:?} units (2^{n} states) is beyond the \
                 limit of {EXACT_MAX_UNITS_LIMIT}"
            )));
        }
        let other = o.size()[0].max(1);
        let total = 1i64 << n;
        let rows = (CHUNK_VALUES / other).clamp(1, total);
        let mut parts = Vec::new();
        let mut start = 0;
        while start < total {
            let len = rows.min(total - start);
            let s = bit_rows(start, len, n, m.device());
            let val = s.mv(&a) + softplus(&o.addmm(&s, &m)).sum_dim_intlist(1, false, Kind::Double);
            parts.push(val.logsumexp([0], false));
            start += len;
        }
        Ok(Tensor::stack(&parts, 0)
            .logsumexp([0], false)
            .double_value(&[]))
    })
}
