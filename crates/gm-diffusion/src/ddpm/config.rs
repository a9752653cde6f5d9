use crate::gaussian::{Sampler, Variance};
use crate::nets::{NetKind, NetSpec};
use crate::schedule::{Schedule, ScheduleKind};
use gm_core::{checks, Error, Result};
use serde::{Deserialize, Serialize};

/// The training objective.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Ho et al.'s L_simple: ‖ε − ε_θ(x_t, t)‖² at a uniform t (with a learned variance,
    /// Nichol & Dhariwal's hybrid: plus 0.001 × the bound for the variance).
    #[default]
    Simple,
    /// A one-timestep estimate of the variational bound (nats), as Sohl-Dickstein et al.
    Bound,
}

/// The sampler's name in the config.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// The T-step reverse chain.
    #[default]
    Ancestral,
    /// DDIM (η = 0) on `sample_steps` timesteps.
    Ddim,
}

/// `[model]` fields of `ddpm`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DdpmConfig {
    /// Diffusion steps T.
    pub steps: i64,
    /// The β schedule.
    pub schedule: ScheduleKind,
    /// β_1 of the linear schedule.
    pub beta_start: f64,
    /// β_T of the linear schedule.
    pub beta_end: f64,
    /// σ_t² of the reverse process: β_t, β̃_t, or learned (the network's second output).
    pub variance: Variance,
    /// The training objective.
    pub loss: Loss,
    /// The network: `"auto"` (a U-Net on images, an MLP on vectors), `"mlp"`, `"unet"`.
    pub net: NetKind,
    /// Hidden widths of the MLP ε_θ.
    pub hidden: Vec<i64>,
    /// Images: U-Net channels per resolution level (multiples of 8).
    pub channels: Vec<i64>,
    /// Images: self-attention at the lowest resolution.
    pub attention: bool,
    /// Images: dropout inside the residual blocks.
    pub dropout: f64,
    /// How `gm sample` draws.
    pub sampler: SamplerKind,
    /// DDIM: timesteps visited.
    pub sample_steps: i64,
    /// `gm eval`: timesteps t ≥ 2 per example in the bound's estimate (T − 1 or more: all).
    pub bound_timesteps: i64,
    /// Images: values per pixel (256 for 8-bit images).
    pub levels: i64,
}

impl Default for DdpmConfig {
    fn default() -> Self {
        DdpmConfig {
            steps: 1000,
            schedule: ScheduleKind::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            variance: Variance::Beta,
            loss: Loss::Simple,
            net: NetKind::Auto,
            hidden: vec![128, 128, 128],
            channels: vec![32, 64, 64],
            attention: true,
            dropout: 0.1,
            sampler: SamplerKind::Ancestral,
            sample_steps: 100,
            bound_timesteps: 50,
            levels: 256,
        }
    }
}

impl DdpmConfig {
    /// Checks the fields that do not depend on the data.
    pub fn validate(&self) -> Result<()> {
        self.schedule()?;
        if self.hidden.is_empty() || self.hidden.iter().any(|h| *h <= 0) {
            return Err(Error::config(
                "model.hidden",
                format!("{:?}", self.hidden),
                "a non-empty list of positive layer widths",
            ));
        }
        crate::nets::check_channels(&self.channels)?;
        checks::in_range(
            "model.dropout",
            self.dropout,
            0.0..=0.99,
            "a probability in [0, 1)",
        )?;
        checks::at_least(
            "model.sample_steps",
            self.sample_steps,
            1,
            "at least one DDIM step",
        )?;
        checks::at_least(
            "model.bound_timesteps",
            self.bound_timesteps,
            1,
            "at least one timestep per example",
        )?;
        checks::at_least(
            "model.levels",
            self.levels,
            2,
            "at least 2 values per pixel",
        )?;
        Ok(())
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
            factor: if self.variance == Variance::Learned {
                2
            } else {
                1
            },
        }
    }

    /// The sampler `gm sample` uses.
    pub fn sampler(&self) -> Sampler {
        match self.sampler {
            SamplerKind::Ancestral => Sampler::Ancestral,
            SamplerKind::Ddim => Sampler::Ddim(self.sample_steps),
        }
    }
}
