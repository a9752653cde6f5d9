//! Generator networks trained without a likelihood, *Deep Learning* chapter 20.10.4–20.10.6:
//! generative adversarial networks (minimax and non-saturating), DCGAN, conditional GAN,
//! LAPGAN, and generative moment-matching networks (MMD, also on autoencoder codes).
//!
//! No model is implemented in this crate yet; it exists so that the workspace layout and
//! dependency direction (`gm-core` ← `gm-gan` ← `gm-cli`) are fixed from the start.
