use crate::binary::Reverse;
use crate::nets::{check_channels, NetKind, NetSpec};
use crate::schedule::{Schedule, ScheduleKind};
use gm_core::{checks, Error, Result};
use serde::{Deserialize, Serialize};

/// `[model]` fields of `binary-diffusion`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BinaryDiffusionConfig {
    /// Diffusion steps T.
    pub steps: i64,
    /// The β schedule (ᾱ_T should be near 0: x_T is then Bernoulli(½)).
    pub schedule: ScheduleKind,
    /// β_1 of the linear schedule.
    pub beta_start: f64,
    /// β_T of the linear schedule.
    pub beta_end: f64,
    /// Weight of the auxiliary cross-entropy of p̃(x_0 | x_t) (D3PM; 0: the bound alone).
    pub aux_weight: f64,
    /// The reverse step: `"joint"` (D3PM's q(x_{t−1}, x_t | x̃_0), the evidence of x_t added
    /// to the network's logits) or `"posterior"` (q(x_{t−1} | x_t, x̃_0) over p̃ alone).
    pub reverse: Reverse,
    /// The network: `"auto"` (a U-Net on images, an MLP on vectors), `"mlp"`, `"unet"`.
    pub net: NetKind,
    /// Hidden widths of the MLP.
    pub hidden: Vec<i64>,
    /// U-Net channels per resolution level (multiples of 8).
    pub channels: Vec<i64>,
    /// U-Net self-attention at the lowest resolution.
    pub attention: bool,
    /// U-Net dropout.
    pub dropout: f64,
    /// `gm eval`: timesteps t ≥ 2 per example in the bound's estimate (T − 1 or more: all).
    pub bound_timesteps: i64,
}

impl Default for BinaryDiffusionConfig {
    fn default() -> Self {
        BinaryDiffusionConfig {
            steps: 200,
            schedule: ScheduleKind::Cosine,
            beta_start: 1e-3,
            beta_end: 0.1,
            aux_weight: 1e-3,
            reverse: Reverse::Joint,
            net: NetKind::Auto,
            hidden: vec![512, 512],
            channels: vec![32, 64, 64],
            attention: true,
            dropout: 0.1,
            bound_timesteps: 50,
        }
    }
}

impl BinaryDiffusionConfig {
    /// Checks the fields that do not depend on the data.
    pub fn validate(&self) -> Result<()> {
        self.schedule()?;
        checks::non_negative("model.aux_weight", self.aux_weight)?;
        if self.hidden.is_empty() || self.hidden.iter().any(|h| *h <= 0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "a non-empty list of positive layer widths",
            ));
        }
        check_channels(&self.channels)?;
        checks::in_range(
            "model.dropout",
            self.dropout,
            0.0..=0.99,
            "a probability in [0, 1)",
        )?;
        checks::at_least(
            "model.bound_timesteps",
            self.bound_timesteps,
            1,
            "at least one timestep per example",
        )
    }

    /// The β schedule.
    pub fn schedule(&self) -> Result<Schedule> {
        self.schedule
            .build(self.steps, self.beta_start, self.beta_end)
    }

    /// The network's sizes.
    pub fn net(&self) -> NetSpec<'_> {
        NetSpec {
            kind: self.net,
            hidden: &self.hidden,
            channels: &self.channels,
            attention: self.attention,
            dropout: self.dropout,
            factor: 1,
        }
    }
}
