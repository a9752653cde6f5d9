//! Completion by replacement, shared by every diffusion: the reverse chain runs from noise,
//! and after every step the observed entries are replaced by a draw of q(x_t | x_0) at the
//! chain's current t (exactly x_0 at the end). Approximate.

use tch::{Kind, Tensor};

/// What `gm sample --complete` reports as the method.
pub const METHOD: &str = "the reverse chain with the observed entries replaced after every step by a draw of q(x_t | x_0) (replacement)";

/// The step hook of a replacement completion: `known` (model space, `[B, …]`) where `mask`
/// is 1, the chain elsewhere; `draw(t)` gives a draw of q(x_t | known) at t `[B]`.
pub fn replacing<'a>(
    known: &'a Tensor,
    mask: &Tensor,
    draw: impl Fn(&Tensor) -> Tensor + 'a,
) -> impl FnMut(i64, Tensor) -> Tensor + 'a {
    let m = mask.to_kind(Kind::Float);
    let keep: Tensor = 1.0 - &m;
    let (b, dev) = (known.size()[0], known.device());
    move |t, xt| {
        let obs = if t == 0 {
            known.shallow_clone()
        } else {
            draw(&Tensor::full([b], t, (Kind::Int64, dev)))
        };
        &m * obs + &keep * xt
    }
}
