//! Fused passes over the memory of CPU tensors: where libtorch has no fused kernel for a
//! short chain of elementwise work (a draw, a series, a reduction per row), one Rust loop
//! reads the inputs' memory and writes fresh outputs directly, without host copies or an
//! ATen call per operation.
//!
//! [`pass`] lends the inputs as slices (made contiguous first) and the outputs as mutable
//! slices of new tensors; it holds the workspace's raw-memory access in one place.
//!
//! ```
//! use tch::{Device, Kind, Tensor};
//! let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
//! let ([y], total) = gm_core::host::pass::<f32, 1, 1, _>([&x], [&[3]], |[x], [y]| {
//!     for (yi, xi) in y.iter_mut().zip(x) {
//!         *yi = xi * xi;
//!     }
//!     x.iter().sum::<f32>()
//! })?;
//! assert_eq!(Vec::<f32>::try_from(&y).unwrap(), [1.0, 4.0, 9.0]);
//! assert_eq!(total, 6.0);
//! # Ok::<(), gm_core::Error>(())
//! ```

use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

/// Element types a pass can lend: `f32` and `f64`.
pub trait Element: Copy + Send + Sync + 'static {
    /// The matching libtorch kind.
    const KIND: Kind;
}

impl Element for f32 {
    const KIND: Kind = Kind::Float;
}

impl Element for f64 {
    const KIND: Kind = Kind::Double;
}

/// Runs `f` on the elements of `inputs` (CPU tensors of `T`'s kind, read in contiguous
/// row-major order) and on new output tensors of the shapes `outputs`, returned with `f`'s
/// result. The output slices start uninitialised in value (whatever the allocator gave):
/// `f` must write every element.
pub fn pass<T: Element, const I: usize, const O: usize, R>(
    inputs: [&Tensor; I],
    outputs: [&[i64]; O],
    f: impl FnOnce([&[T]; I], [&mut [T]; O]) -> R,
) -> Result<([Tensor; O], R)> {
    for (i, t) in inputs.iter().enumerate() {
        if t.device() != Device::Cpu || t.kind() != T::KIND {
            return Err(Error::config(
                format!("host pass input {i}"),
                format!("{:?} tensor on {:?}", t.kind(), t.device()),
                format!("a {:?} tensor on the CPU", T::KIND),
            ));
        }
    }
    let held: [Tensor; I] = inputs.map(|t| t.contiguous());
    let outs: [Tensor; O] = outputs.map(|s| Tensor::empty(s, (T::KIND, Device::Cpu)));
    let ins: [&[T]; I] = std::array::from_fn(|i| read(&held[i]));
    let mut slices: [&mut [T]; O] = std::array::from_fn(|_| <&mut [T]>::default());
    for (s, t) in slices.iter_mut().zip(&outs) {
        *s = write(t);
    }
    let r = f(ins, slices);
    Ok((outs, r))
}

/// The elements of a contiguous CPU tensor of `T`'s kind.
#[allow(unsafe_code)]
fn read<T: Element>(t: &Tensor) -> &[T] {
    let n = t.numel();
    if n == 0 {
        return &[];
    }
    // SAFETY: `t` is a contiguous CPU tensor of `n` elements of type `T` (checked by the
    // caller), kept alive by the borrow for the slice's lifetime.
    unsafe { std::slice::from_raw_parts(t.data_ptr() as *const T, n) }
}

/// The elements of a new contiguous CPU tensor of `T`'s kind, for writing.
#[allow(unsafe_code, clippy::mut_from_ref)]
fn write<T: Element>(t: &Tensor) -> &mut [T] {
    let n = t.numel();
    if n == 0 {
        return &mut [];
    }
    // SAFETY: `t` was just created by `Tensor::empty` in `pass` and no other handle to its
    // storage exists; each output tensor is lent once, so the slices never alias.
    unsafe { std::slice::from_raw_parts_mut(t.data_ptr() as *mut T, n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_contiguous_inputs_are_read_in_row_major_order() {
        let x = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
        let xt = x.tr(); // [[1, 4], [2, 5], [3, 6]]
        let ([], seen) = pass::<f64, 1, 0, _>([&xt], [], |[v], []| v.to_vec()).unwrap();
        assert_eq!(seen, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }

    #[test]
    fn wrong_kind_or_empty_tensors() {
        let x = Tensor::from_slice(&[1.0f64]);
        let err = pass::<f32, 1, 0, _>([&x], [], |_, _| ()).unwrap_err();
        assert!(err.to_string().contains("host pass input 0"), "{err}");
        let e = Tensor::zeros([0, 3], (Kind::Float, Device::Cpu));
        let ([y], n) = pass::<f32, 1, 1, _>([&e], [&[0, 3]], |[v], [y]| v.len() + y.len()).unwrap();
        assert_eq!((n, y.size()), (0, vec![0, 3]));
    }
}
