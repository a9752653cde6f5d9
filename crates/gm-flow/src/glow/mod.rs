//! Glow (Kingma & Dhariwal 2018): steps of actnorm, an invertible 1×1 convolution and an
//! affine coupling, in a multiscale architecture.
//!
//! - **Actnorm**: y = (x + b) ⊙ e^s per channel, log |det| = H·W·Σ s; b and s are set from
//!   the first training batch so that every channel leaves with zero mean and unit variance
//!   (data-dependent initialisation, once: the optimizer's step count, which checkpoints
//!   save, says whether it happened; across processes the global batch's moments).
//! - **Invertible 1×1 convolution**, LU-parameterised: W = P L (U + diag(sign ⊙ e^s)), P a
//!   fixed permutation, L unit lower- and U strictly upper-triangular, log |det| = H·W·Σ s;
//!   it starts as a random rotation. On vectors the same matrix acts on the features.
//! - **Affine coupling**: the first half of the channels (features) x_a passes through;
//!   a network of x_a (convolutions, or an MLP on vectors; its last layer starts at zero)
//!   gives a shift t and a scale σ = sigmoid(h + 2); x_b → (x_b + t) ⊙ σ, log |det| = Σ log σ.
//! - **Multiscale** (images): each of `scales` levels squeezes 2×2 blocks into channels,
//!   runs `steps` steps and, but for the last, splits half the channels off to the code with
//!   a learned prior N(μ(h), e^{2 s(h)}) given the other half (a zero-initialised
//!   convolution), written as the affine map ε = (z − μ) e^{−s} to a standard normal code.
//!
//! The log-likelihood is exact by the change of variables with a N(0, I) base; on images it
//! is the bound of uniform dequantization on the discrete pixels (see [`crate::flow`]).
//! Glow's own MNIST figure is 1.05 bits/dim (FFJORD's table 1).

mod config;
mod model;

pub use config::GlowConfig;
pub use model::{build, flow_model, ActNorm, Glow, InvConv};

#[cfg(test)]
mod tests;
