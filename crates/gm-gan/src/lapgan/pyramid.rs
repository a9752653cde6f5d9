//! The Laplacian pyramid of a batch of images: `d` halves the resolution (2×2 averages),
//! `u` doubles it (each pixel repeated over a 2×2 block), and each finer level is stored as
//! its residual h = x − u(d(x)), so that x = u(d(x)) + h exactly.

use tch::Tensor;

/// 2×2 average pooling: `[B, C, H, W]` → `[B, C, H/2, W/2]` (not tch's
/// `avg_pool2d_default`, whose divisor override of 1 makes it a sum).
pub fn down(x: &Tensor) -> Tensor {
    x.avg_pool2d([2, 2], [2, 2], [0, 0], false, true, None::<i64>)
}

/// Nearest-neighbour up-sampling by 2: `[B, C, h, w]` → `[B, C, 2h, 2w]`.
pub fn up(x: &Tensor) -> Tensor {
    let s = x.size();
    x.upsample_nearest2d([2 * s[2], 2 * s[3]], None, None)
}

/// The images of `x` at `levels` resolutions, coarsest first (`x` itself last).
pub fn gaussian(x: &Tensor, levels: usize) -> Vec<Tensor> {
    let mut out = vec![x.shallow_clone()];
    for _ in 1..levels {
        let coarser = down(out.last().expect("one level"));
        out.push(coarser);
    }
    out.reverse();
    out
}

/// For each level k ≥ 1 of `gaussian(x)`: the condition u(x_{k−1}) and the residual
/// x_k − u(x_{k−1}).
pub fn residuals(levels: &[Tensor]) -> Vec<(Tensor, Tensor)> {
    levels
        .windows(2)
        .map(|w| {
            let cond = up(&w[0]);
            let h = &w[1] - &cond;
            (cond, h)
        })
        .collect()
}
