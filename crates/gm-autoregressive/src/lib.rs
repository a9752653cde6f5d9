//! Autoregressive models of *Deep Learning* chapter 20.10.7–20.10.10, whose likelihoods are
//! exact: the logistic fully-visible belief network, neural autoregressive networks, NADE,
//! NADE-k, RNADE, order-agnostic and deep NADE, MADE, and PixelCNN.
//!
//! No model is implemented in this crate yet; it exists so that the workspace layout and
//! dependency direction (`gm-core` ← `gm-autoregressive` ← `gm-cli`) are fixed from the start.
