//! MADE masks (Germain et al. 2015): the degrees of a masked MLP's units and the binary
//! masks they give, so that output d depends only on the inputs before d in an ordering.
//!
//! An input's degree is its position in the ordering plus one (1..=D); a hidden unit's degree
//! m is drawn from [lo, D − 1] (lo the smallest degree of the layer below, 1 for the first
//! layer). A hidden unit of degree m sees the units below of degree ≤ m; output d (degree of
//! input d) sees the last hidden units of degree < its own. Used by gm-autoregressive's MADE
//! and gm-flow's MAF.
//!
//! ```
//! use gm_core::nets::made;
//! use rand::SeedableRng;
//! let deg_in = made::input_degrees(&[2, 0, 1]); // x2 first, then x0, then x1
//! assert_eq!(deg_in, [2, 3, 1]);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
//! let hidden = made::hidden_degrees(&mut rng, 3, &[4]);
//! let t = |v: &[i64]| tch::Tensor::from_slice(v);
//! let masks = made::masks(&t(&deg_in), &[t(&hidden[0])]);
//! assert_eq!((masks[0].size(), masks[1].size()), (vec![4, 3], vec![3, 4]));
//! // x2 comes first: its output sees no hidden unit.
//! assert_eq!(masks[1].get(2).sum(tch::Kind::Float).double_value(&[]), 0.0);
//! ```

use rand::Rng;
use tch::{Kind, Tensor};

/// The input degrees of `order` (`order[i]` = the variable generated at step i): variable
/// `order[i]` gets degree i + 1.
pub fn input_degrees(order: &[i64]) -> Vec<i64> {
    let mut deg = vec![0i64; order.len()];
    for (i, &v) in order.iter().enumerate() {
        deg[v as usize] = i as i64 + 1;
    }
    deg
}

/// Random degrees of hidden layers of `widths` units over `dim` ≥ 2 inputs: layer l's
/// degrees are uniform on [lo, dim − 1], lo the smallest degree of layer l − 1 (1 first).
pub fn hidden_degrees<R: Rng>(rng: &mut R, dim: i64, widths: &[i64]) -> Vec<Vec<i64>> {
    let mut lo = 1;
    widths
        .iter()
        .map(|&h| {
            let layer: Vec<i64> = (0..h).map(|_| rng.gen_range(lo..=dim - 1)).collect();
            lo = *layer.iter().min().expect("a positive width");
            layer
        })
        .collect()
}

/// The float masks `[out, in]` of every layer from the input degrees `[D]` and each hidden
/// layer's degrees `[H_l]` (on their device): hidden masks by ≥, the output mask `[D, H_L]`
/// by > (strict, so output d never sees input d).
pub fn masks(deg_in: &Tensor, deg_hidden: &[Tensor]) -> Vec<Tensor> {
    let mut prev = deg_in.shallow_clone();
    let mut out = Vec::with_capacity(deg_hidden.len() + 1);
    for cur in deg_hidden {
        out.push(
            cur.unsqueeze(1)
                .ge_tensor(&prev.unsqueeze(0))
                .to_kind(Kind::Float),
        );
        prev = cur.shallow_clone();
    }
    out.push(
        deg_in
            .unsqueeze(1)
            .gt_tensor(&prev.unsqueeze(0))
            .to_kind(Kind::Float),
    );
    out
}
