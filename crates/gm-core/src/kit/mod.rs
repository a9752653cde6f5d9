//! Kits for the models' tests (public so that every family crate's tests share them; not
//! used by training or evaluation): enumeration of small binary spaces in the order the
//! tests index them, empirical distributions of samples and their total variation to an
//! exact distribution, datasets of given rows, and hand-written gradients against autograd
//! ([`gradcheck`]).
//!
//! The order here is "bit `j` in column `j`" (row `k` is the binary expansion of `k`, least
//! significant bit first); [`crate::sampling::exact`] puts the most significant bit first.
//!
//! ```
//! use gm_core::kit;
//! let x = kit::all_binary_vectors(3, tch::Device::Cpu); // [8, 3]
//! let p = kit::empirical_distribution(&x); // uniform over the 8 states
//! assert_eq!(kit::state_index(&x.narrow(0, 6, 1)).int64_value(&[0]), 6);
//! assert!(kit::total_variation(&p, &p) == 0.0);
//! ```

pub mod gradcheck;

use crate::data::{Binarization, Dataset, Split};
pub use crate::sampling::exact::total_variation;
use crate::sampling::exact::{self, MAX_ENUMERATED_UNITS};
use crate::sampling::gibbs::Units;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Every binary vector of length `d` (`1 ≤ d ≤ 24`), `f32 [2^d, d]`; row `k` holds the
/// bits of `k`, bit `j` in column `j`.
pub fn all_binary_vectors(d: i64, device: Device) -> Tensor {
    assert!(
        (1..=MAX_ENUMERATED_UNITS).contains(&d),
        "all_binary_vectors: d = {d} outside 1..={MAX_ENUMERATED_UNITS}"
    );
    exact::all_states(d, Units::Bernoulli, Kind::Float, device)
        .expect("d is in range")
        .flip([1])
}

/// The index `k` of each binary row of `x` `[N, d]` in [`all_binary_vectors`], `i64 [N]`.
pub fn state_index(x: &Tensor) -> Tensor {
    exact::state_index(&x.flip([1]), Units::Bernoulli)
}

/// The empirical distribution of binary rows `x` `[N, d]` over the `2^d` states, `f64`.
pub fn empirical_distribution(x: &Tensor) -> Tensor {
    exact::empirical(&x.flip([1]), Units::Bernoulli)
}

/// A dataset whose three splits are the rows `x` `[N, D]` (as `f32`), binary (labelled as
/// thresholded at 0.5) or real, without labels.
pub fn rows_dataset(x: &Tensor, binary: bool) -> Dataset {
    let split = || Split {
        x: x.to_kind(Kind::Float).copy(),
        y: None,
    };
    Dataset {
        name: "test-rows".into(),
        train: split(),
        valid: split(),
        test: split(),
        shape: vec![x.size()[1]],
        num_classes: None,
        binarization: if binary {
            Binarization::Threshold(0.5)
        } else {
            Binarization::None
        },
        binary,
        is_image: false,
    }
}

/// Sets every variable of `vs` for which `keep(name, tensor)` holds to draws of
/// `N(0, scale²)` from libtorch's generator, in the order of the names (a `HashMap`'s order
/// changes from process to process, and with it which draw lands where).
pub fn randomize(vs: &VarStore, scale: f64, keep: impl Fn(&str, &Tensor) -> bool) {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (_, t) in vars.iter().filter(|(n, t)| keep(n, t)) {
            let r = Tensor::randn(t.size().as_slice(), (Kind::Float, t.device())) * scale;
            t.shallow_clone().copy_(&r);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumeration_and_state_index_are_inverse() {
        let x = all_binary_vectors(5, Device::Cpu);
        assert_eq!(x.kind(), Kind::Float);
        let k = state_index(&x);
        assert_eq!(k, Tensor::arange(32, (Kind::Int64, Device::Cpu)));
        let p = empirical_distribution(&x);
        let uniform = Tensor::full([32], 1.0 / 32.0, (Kind::Double, Device::Cpu));
        assert_eq!(total_variation(&p, &uniform), 0.0);
        // row 6 = bits 0,1,1,0,0
        let row: Vec<f32> = Vec::try_from(x.get(6)).unwrap();
        assert_eq!(row, vec![0.0, 1.0, 1.0, 0.0, 0.0]);
        // two draws of state 3 and one of state 0
        let s = Tensor::from_slice(&[1.0f32, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]).view([3, 3]);
        let e: Vec<f64> = Vec::try_from(empirical_distribution(&s)).unwrap();
        assert_eq!(e, vec![1.0 / 3.0, 0.0, 0.0, 2.0 / 3.0, 0.0, 0.0, 0.0, 0.0]);
    }
}
