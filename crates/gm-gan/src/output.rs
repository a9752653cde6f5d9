//! The output layer of a generator network, shared by the GANs and the GMMNs.

use gm_core::data::Dataset;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The generator's output non-linearity.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Sigmoid for data in [0, 1] (binary data, images, autoencoder codes), linear otherwise.
    #[default]
    Auto,
    /// The logistic sigmoid: values in (0, 1).
    Sigmoid,
    /// No non-linearity: any real value (the 2-D toys).
    Linear,
}

impl Output {
    /// `Auto` resolved for data that `in_unit_interval` or not.
    pub fn resolve(self, in_unit_interval: bool) -> Output {
        match (self, in_unit_interval) {
            (Output::Auto, true) => Output::Sigmoid,
            (Output::Auto, false) => Output::Linear,
            (o, _) => o,
        }
    }

    /// Whether the dataset's values lie in [0, 1] (binary data or images).
    pub fn unit_data(data: &Dataset) -> bool {
        data.binary || data.is_image
    }

    /// The non-linearity applied to pre-activations `a`.
    pub fn apply(self, a: Tensor) -> Tensor {
        match self {
            Output::Sigmoid => a.sigmoid(),
            _ => a,
        }
    }
}
