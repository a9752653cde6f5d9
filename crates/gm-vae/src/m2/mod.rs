//! The semi-supervised VAE "M2" of Kingma, Rezende, Mohamed & Welling (2014) (seed
//! `001_*.txt` §3.5.3).
//!
//! Generative model: y ~ Cat(1/C), z ~ N(0, I), x ~ p(x | y, z): Bernoulli pixels on binary
//! data, a Gaussian with a learned variance per dimension on real-valued data
//! (`likelihood`).
//! Inference: a classifier q(y | x) and a Gaussian q(z | x, y). For a labelled example the
//! bound is L(x, y) = E_q(z|x,y)[log p(x | y, z)] + log p(y) − KL(q(z | x, y) ‖ p(z)) ≤
//! log p(x, y); for an unlabelled one y is summed out by enumeration over the C classes,
//! U(x) = Σ_y q(y | x) L(x, y) + H(q(y | x)) ≤ log p(x). Training maximises the mean of L on
//! labelled and U on unlabelled examples of a batch, minus α times a mean cross-entropy
//! −log q(y | x) (Kingma et al.'s α·E[−log q(y|x)] term). When `[data] labelled = N_l` hides
//! labels, that mean is over `labelled_batch` draws of the N_l observed examples in every
//! step (a batch of 100 from 50,000 examples holds one of 100 labels only every fifth step);
//! otherwise over the batch's labelled examples. α is the weight against the mean bound per
//! example: Kingma et al.'s 0.1 scaled by N / N_l as in common ports (50 for 100 labels
//! of 50,000).
//!
//! **M1+M2** (`m1_latent` > 0; Kingma et al.'s stacked model): a VAE "M1" (`m1_hidden`,
//! Gaussian q(z₁ | x), the data's likelihood) trains alone on every training image for
//! `m1_steps` updates, then stays frozen while M2 (Gaussian decoder) models its codes
//! z₁ ~ q(z₁ | x), drawn afresh every step; classification is argmax q(y | z₁) at the mean
//! of q(z₁ | x); samples decode a drawn z₁ by M1's means. The phase follows M1's optimizer's
//! saved step count, so a resumed run continues in it; both networks and both optimizers
//! are saved. `gm eval` reports one lower bound, E_q(z₁|x)[log p(x | z₁) − log q(z₁ | x) +
//! U(z₁)] (no importance-sampled estimate: M2's marginal of z₁ has no closed form).
//!
//! Which labels are observed comes with the batch (`[data] labelled = N`); the model needs a
//! labelled dataset (registry entry `m2`). `eval_metrics` reports the classification error
//! of q(y | x) on its (fully labelled) batches, so every epoch's validation error is in
//! `metrics.jsonl`; `gm eval` reports U(x) (a lower bound on log p(x)) and an
//! importance-sampled log p(x) pooled over the classes.
//!
//! ```no_run
//! use gm_core::{config::RunConfig, data, model::BuildContext};
//! let cfg = RunConfig::from_toml_str("[model]\nname = \"m2\"\nlatent = 2\n[data]\ndataset = \"bars-and-stripes\"\nlabelled = 4")?;
//! let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
//! let mut m2 = gm_vae::m2::build(&BuildContext { cfg: &cfg, data: &ds, device: tch::Device::Cpu })?;
//! let x = ds.train.x.narrow(0, 0, 16);
//! let y = ds.train.y.as_ref().unwrap().narrow(0, 0, 16);
//! let m = m2.train_step(&gm_core::data::Batch::labelled(&x, &y))?;
//! println!("loss {}", m[0].1.double_value(&[]));
//! # Ok::<(), gm_core::Error>(())
//! ```

mod config;
mod m1;
mod model;

pub use config::M2Config;
pub use model::{build, M2};

#[cfg(test)]
mod tests;
