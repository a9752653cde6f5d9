//! Energy-based models of *Deep Learning* chapter 20.1–20.8: Boltzmann machines, Hopfield
//! networks, restricted Boltzmann machines (Bernoulli, Gaussian–Bernoulli, spike-and-slab),
//! their training rules (CD-k, PCD/SML, pseudo-likelihood, ratio matching), deep belief
//! networks, deep Boltzmann machines, and their partition functions (exact by enumeration
//! for small models, AIS otherwise).
//!
//! No model is implemented in this crate yet; it exists so that the workspace layout and
//! dependency direction (`gm-core` ← `gm-boltzmann` ← `gm-cli`) are fixed from the start.
