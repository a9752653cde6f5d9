use crate::rbm::{Dtype, RbmConfig, Rule, Update, EXACT_MAX_UNITS_LIMIT};
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// What the layer above is trained on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Propagate {
    /// Binary samples h ~ p(h | x) of the layer below (the distribution the greedy bound
    /// argument is about, §20.3).
    #[default]
    Samples,
    /// The probabilities p(h = 1 | x) of the layer below (Hinton & Salakhutdinov 2006's
    /// common practice: less noise).
    Means,
}

/// Most hidden layers a DBN may have (one checkpoint file and optimizer name each).
pub const MAX_LAYERS: usize = 8;

/// `[model]` fields of `dbn`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DbnConfig {
    /// Hidden layer sizes h1, h2, …, bottom up (at least two: one layer is an `rbm`).
    pub hidden: Vec<i64>,
    /// Epochs of greedy training of each layer, bottom up (same length as `hidden`). The
    /// trainer's epochs are dealt out in this order; epochs beyond their sum keep training
    /// the top RBM.
    pub layer_epochs: Vec<i64>,
    /// Whether the layer above is trained on samples or on probabilities of the one below.
    pub propagate: Propagate,
    /// Training rule of every layer's RBM (as `rbm`'s `rule`).
    pub rule: Rule,
    /// Gibbs sweeps per update (CD-k, PCD-k).
    pub k: i64,
    /// Persistent chains of each layer (PCD / PT); default the batch size.
    pub chains: Option<i64>,
    /// Hand-written or autograd CD gradient.
    pub update: Update,
    /// L2 penalty ½·λ‖W‖² on every layer's weights.
    pub weight_decay: f64,
    /// The centering trick in every layer's RBM.
    pub centering: bool,
    /// Standard deviation of the initial weights.
    pub init_std: f64,
    /// Block-Gibbs sweeps in the top RBM before the ancestral down pass of `sample`.
    pub sample_steps: i64,
    /// Draws of the up-pass q(h | v) per example for the AIS lower bound.
    pub bound_samples: i64,
    /// Largest number of hidden units below the top layer (h1 … h_{L−1}, in all) whose
    /// states are enumerated for the exact log p(x); 0 disables it.
    pub exact_max_units: i64,
    /// Discriminative fine-tuning: the trainer's epochs after the greedy ones train the
    /// up-pass as an MLP with a softmax layer on the labels (a copy: the generative model
    /// is left as the greedy stage made it). Needs a labelled dataset.
    pub finetune: bool,
    /// The fine-tuning MLP's learning rate relative to `[optim] lr` (and its schedule).
    pub finetune_lr_scale: f64,
    /// Parameter precision.
    pub dtype: Dtype,
}

impl Default for DbnConfig {
    fn default() -> Self {
        DbnConfig {
            hidden: vec![500, 500, 2000],
            layer_epochs: vec![10, 10, 10],
            propagate: Propagate::Samples,
            rule: Rule::Cd,
            k: 1,
            chains: None,
            update: Update::Hand,
            weight_decay: 0.0,
            centering: false,
            init_std: 0.01,
            sample_steps: 1000,
            bound_samples: 10,
            exact_max_units: 16,
            finetune: false,
            finetune_lr_scale: 1.0,
            dtype: Dtype::Float32,
        }
    }
}

impl DbnConfig {
    /// Checks every field (the per-layer RBM fields through [`RbmConfig::validate`]).
    pub fn validate(&self) -> Result<()> {
        let layers = self.hidden.len();
        if !(2..=MAX_LAYERS).contains(&layers) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                format!("2 to {MAX_LAYERS} hidden layer sizes (a single layer is model \"rbm\")"),
            ));
        }
        for &h in &self.hidden {
            checks::at_least("model.hidden", h, 1, "positive layer sizes")?;
        }
        if self.layer_epochs.len() != layers {
            return Err(Error::config(
                "model.layer_epochs",
                format!("{:?}", self.layer_epochs),
                format!("one epoch count per hidden layer ({layers})"),
            ));
        }
        for &e in &self.layer_epochs {
            checks::at_least("model.layer_epochs", e, 0, "epoch counts ≥ 0")?;
        }
        checks::at_least(
            "model.sample_steps",
            self.sample_steps,
            1,
            "at least 1 Gibbs sweep",
        )?;
        checks::at_least(
            "model.bound_samples",
            self.bound_samples,
            1,
            "at least 1 draw of q(h | v) per example",
        )?;
        checks::in_range(
            "model.exact_max_units",
            self.exact_max_units,
            0..=EXACT_MAX_UNITS_LIMIT,
            format!("an integer in 0..={EXACT_MAX_UNITS_LIMIT} (0 disables the exact log p)"),
        )?;
        checks::positive("model.finetune_lr_scale", self.finetune_lr_scale)?;
        for l in 0..layers {
            self.layer(l).validate()?;
        }
        Ok(())
    }

    /// The RBM config of layer `l` (0: visible–h1).
    pub fn layer(&self, l: usize) -> RbmConfig {
        RbmConfig {
            hidden: self.hidden[l],
            rule: self.rule,
            k: self.k,
            chains: self.chains,
            update: self.update,
            weight_decay: self.weight_decay,
            centering: self.centering,
            init_std: self.init_std,
            dtype: self.dtype,
            ..RbmConfig::default()
        }
    }
}
