//! `[model]` fields of `dbm`, with their defaults and checks.

use crate::rbm::{check_init_sampling_exact, Dtype};
use gm_core::checks;
use gm_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Where the Gibbs chains of `sample` start.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SampleStart {
    /// Fresh chains: v from the base-rate model, hidden units fair coins.
    #[default]
    Fresh,
    /// Copies of the persistent training chains (row i of the samples continues chain
    /// i mod `chains`); the training chains themselves are left as they are.
    Chains,
}

/// What the negative phase's statistics are taken of.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NegativePhase {
    /// The persistent chains' states themselves (Algorithm 20.1).
    #[default]
    Samples,
    /// The means of one mean-field pass started at the chains' states (odd layers given
    /// the even states, then the even layers, v included, given those means): the factorial
    /// distribution *Deep Learning* §20.4.4 says the best DBM results use (Salakhutdinov
    /// & Hinton 2009). The chains themselves stay binary.
    MeanField,
}

/// Which layers the AIS chains keep ([`crate::dbm::ais`]); the others are summed out.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AisState {
    /// v, h2, …, the odd layers summed out (Salakhutdinov & Hinton 2009).
    #[default]
    Even,
    /// h1, h3, …, v and the even hidden layers summed out.
    Odd,
}

impl AisState {
    /// `"even"` or `"odd"`.
    pub fn name(self) -> &'static str {
        match self {
            AisState::Even => "even",
            AisState::Odd => "odd",
        }
    }
}

/// The AIS base's hidden biases ([`crate::dbm::ais`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AisBase {
    /// Zero: every hidden unit a fair coin.
    Fair,
    /// The logits of each unit's mean conditional probability over the persistent chains.
    #[default]
    Chains,
}

/// How the RBMs of greedy pre-training are trained.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PretrainMethod {
    /// Contrastive divergence: the negative chains start at the data's hidden samples.
    #[default]
    Cd,
    /// Persistent contrastive divergence: one set of chains (a batch) kept across updates.
    Pcd,
}

/// `[model.pretrain]`: greedy layer-wise pre-training (§20.4.4) before joint training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// Epochs over the training set per RBM; 0 turns pre-training off.
    pub epochs: i64,
    /// CD-k or PCD-k.
    pub method: PretrainMethod,
    /// k, Gibbs sweeps per update.
    pub gibbs_steps: i64,
    /// SGD learning rate of the RBMs (the step is lr × the batch-mean gradient).
    pub lr: f64,
    /// Momentum of the RBMs' SGD after the first `momentum_after` epochs (Salakhutdinov &
    /// Hinton's code: 0.9); 0 is plain SGD.
    pub momentum: f64,
    /// Momentum during the first `momentum_after` epochs (their code: 0.5); default
    /// `momentum`.
    pub initial_momentum: Option<f64>,
    /// Epochs run at `initial_momentum`.
    pub momentum_after: i64,
    /// L2 penalty λ on the RBMs' weights: the weight step adds −lr · λ · W (their code:
    /// 0.001).
    pub weight_decay: f64,
    /// The RBMs to train, 1 … L (RBM l joins layers l − 1 and l); default all. The others
    /// keep their initial weights but are composed all the same.
    pub layers: Option<Vec<i64>>,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            epochs: 0,
            method: PretrainMethod::Cd,
            gibbs_steps: 1,
            lr: 0.05,
            momentum: 0.0,
            initial_momentum: None,
            momentum_after: 5,
            weight_decay: 0.0,
            layers: None,
        }
    }
}

impl PretrainConfig {
    /// Checks the fields for a DBM with `depth` hidden layers.
    pub fn validate(&self, depth: usize) -> Result<()> {
        checks::at_least(
            "model.pretrain.epochs",
            self.epochs,
            0,
            "a number of epochs per RBM, 0 for none",
        )?;
        checks::at_least(
            "model.pretrain.gibbs_steps",
            self.gibbs_steps,
            1,
            "at least 1 Gibbs sweep",
        )?;
        checks::positive("model.pretrain.lr", self.lr)?;
        let momentum = "a momentum in [0, 0.999]";
        checks::in_range(
            "model.pretrain.momentum",
            self.momentum,
            0.0..=0.999,
            momentum,
        )?;
        if let Some(m) = self.initial_momentum {
            checks::in_range("model.pretrain.initial_momentum", m, 0.0..=0.999, momentum)?;
        }
        checks::at_least(
            "model.pretrain.momentum_after",
            self.momentum_after,
            0,
            "a number of epochs at the initial momentum",
        )?;
        checks::non_negative("model.pretrain.weight_decay", self.weight_decay)?;
        for &l in self.layers.iter().flatten() {
            checks::in_range(
                "model.pretrain.layers",
                l,
                1..=depth as i64,
                format!(
                    "RBMs 1..={depth} of this {depth}-layer DBM (RBM l joins layers l − 1 and l)"
                ),
            )?;
        }
        Ok(())
    }

    /// The momentum of epoch `epoch` (0-based).
    pub fn momentum_at(&self, epoch: i64) -> f64 {
        match self.initial_momentum {
            Some(m) if epoch < self.momentum_after => m,
            _ => self.momentum,
        }
    }

    /// Whether RBM `l` is trained (pre-training on and `l` listed or no list).
    pub fn trains(&self, l: usize) -> bool {
        self.epochs > 0
            && self
                .layers
                .as_ref()
                .is_none_or(|ls| ls.contains(&(l as i64)))
    }
}

/// `[model]` fields of `dbm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DbmConfig {
    /// Hidden layer sizes h1, h2, …, bottom up (at least two: one layer is an `rbm`).
    pub hidden: Vec<i64>,
    /// Block-Gibbs sweeps (even layers, then odd layers) of the persistent chains per
    /// update (Algorithm 20.1's k).
    pub gibbs_steps: i64,
    /// Persistent chains of the negative phase; default the batch size.
    pub chains: Option<i64>,
    /// Mean-field inference stops when the next update would move no mean by more than
    /// this (max |σ(input) − μ| over the odd layers; the even ones hold exactly).
    pub mf_tolerance: f64,
    /// Mean-field inference stops after this many iterations in any case.
    pub mf_max_iters: i64,
    /// L2 penalty ½·λ Σ_l ‖W_l‖² on the weights (not the biases), as `rbm`'s.
    pub weight_decay: f64,
    /// Standard deviation of the initial weights.
    pub init_std: f64,
    /// Gibbs sweeps per sample drawn by `sample`.
    pub sample_steps: i64,
    /// Where `sample`'s chains start.
    pub sample_start: SampleStart,
    /// The negative phase's statistics: `"samples"` or `"mean-field"`.
    pub negative_phase: NegativePhase,
    /// Which layers the AIS chains keep, `"even"` (v, h2, …) or `"odd"` (h1, h3, …); the
    /// others are summed out.
    pub ais_state: AisState,
    /// The AIS base's hidden biases: `"chains"` (the persistent chains' mean conditional
    /// probabilities) or `"fair"` (zero).
    pub ais_base: AisBase,
    /// Most units enumerated for the exact log Z (the smaller of the odd and the even
    /// layers, v counted with the even ones), at most 25; 0 disables the exact path.
    pub exact_max_units: i64,
    /// Parameter precision.
    pub dtype: Dtype,
    /// The centering trick (Montavon & Müller 2012; Melchior et al. 2016): the update is
    /// the gradient of the energy written in x_l − o_l, with offsets o_l the data mean
    /// (visible) and running means of the mean-field posteriors (hidden).
    pub centering: bool,
    /// Moving-average rate of the centering offsets, in (0, 1].
    pub centering_rate: f64,
    /// Greedy pre-training.
    pub pretrain: PretrainConfig,
    /// Discriminative fine-tuning (Salakhutdinov & Hinton 2009) once this many epochs of
    /// generative training have run: every later step trains the unrolled classifier of
    /// [`crate::dbm::finetune`] instead of the DBM. Needs labels; `None`: never.
    pub finetune_after: Option<i64>,
    /// The fine-tuning learning rate as a multiple of the run's.
    pub finetune_lr_scale: f64,
}

impl Default for DbmConfig {
    fn default() -> Self {
        DbmConfig {
            hidden: vec![500, 1000],
            gibbs_steps: 5,
            chains: None,
            mf_tolerance: 1e-5,
            mf_max_iters: 30,
            weight_decay: 0.0,
            init_std: 0.01,
            sample_steps: 1000,
            sample_start: SampleStart::Fresh,
            negative_phase: NegativePhase::Samples,
            ais_state: AisState::Even,
            ais_base: AisBase::Chains,
            exact_max_units: 20,
            dtype: Dtype::Float32,
            centering: false,
            centering_rate: 0.01,
            pretrain: PretrainConfig::default(),
            finetune_after: None,
            finetune_lr_scale: 1.0,
        }
    }
}

impl DbmConfig {
    /// Checks every field on its own (the visible size is checked against the data by the
    /// builder).
    pub fn validate(&self) -> Result<()> {
        if self.hidden.len() < 2 {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "at least 2 hidden layer sizes for a DBM (one hidden layer is model \"rbm\")",
            ));
        }
        for &h in &self.hidden {
            checks::at_least(
                "model.hidden",
                h,
                1,
                "positive layer sizes (no empty layer)",
            )?;
        }
        checks::at_least(
            "model.gibbs_steps",
            self.gibbs_steps,
            1,
            "at least 1 Gibbs sweep",
        )?;
        if let Some(c) = self.chains {
            checks::at_least("model.chains", c, 1, "a positive number of chains")?;
        }
        checks::positive("model.mf_tolerance", self.mf_tolerance)?;
        checks::at_least(
            "model.mf_max_iters",
            self.mf_max_iters,
            1,
            "at least 1 mean-field iteration",
        )?;
        checks::non_negative("model.weight_decay", self.weight_decay)?;
        if !(self.centering_rate > 0.0 && self.centering_rate <= 1.0) {
            return Err(Error::config(
                "model.centering_rate",
                self.centering_rate,
                "a rate in (0, 1]",
            ));
        }
        check_init_sampling_exact(self.init_std, self.sample_steps, self.exact_max_units)?;
        self.pretrain.validate(self.depth())?;
        if let Some(e) = self.finetune_after {
            checks::at_least(
                "model.finetune_after",
                e,
                1,
                "at least 1 epoch of generative training before fine-tuning",
            )?;
        }
        checks::positive("model.finetune_lr_scale", self.finetune_lr_scale)?;
        Ok(())
    }

    /// Number of layers L above the visible one.
    pub fn depth(&self) -> usize {
        self.hidden.len()
    }
}
