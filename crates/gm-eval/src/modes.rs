//! Mode coverage of samples of a known mixture: the protocol of VEEGAN (Srivastava et al.
//! 2017, §5.1) on the 2-D ring / grid of Gaussians.
//!
//! A sample is *high quality* when it lies within 3σ (σ: the modes' standard deviation) of
//! its nearest mode's centre; a mode is *covered* when it is the nearest mode of at least one
//! high-quality sample. The protocol draws 2,500 samples ([`VEEGAN_SAMPLES`]). The published
//! plain-GAN figure on the ring of 8 is 1 of 8 modes with 99.3 % high-quality samples
//! (Srivastava et al. 2017, table 1).
//!
//! ```
//! use gm_eval::modes::{mode_coverage, ring_centres};
//! use tch::Tensor;
//! let centres = ring_centres(8, 2.0);
//! let samples = Tensor::from_slice(&[2.0f32, 0.01, 0.0, 2.0, 0.5, 0.5]).view([3, 2]);
//! let c = mode_coverage(&samples, &centres, 0.02)?;
//! assert_eq!((c.modes_covered, c.high_quality), (2, 2));
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::{Error, Result};
use serde::Serialize;
use tch::{Kind, Tensor};

/// Samples drawn by the VEEGAN protocol.
pub const VEEGAN_SAMPLES: i64 = 2500;

/// What [`mode_coverage`] measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModeCoverage {
    /// Modes that are the nearest mode of at least one high-quality sample.
    pub modes_covered: i64,
    /// Number of modes.
    pub modes: i64,
    /// Samples within 3σ of their nearest mode.
    pub high_quality: i64,
    /// Samples.
    pub samples: i64,
    /// High-quality samples per mode (the nearest mode of each).
    pub per_mode: Vec<i64>,
}

impl ModeCoverage {
    /// Percentage of high-quality samples.
    pub fn high_quality_percent(&self) -> f64 {
        100.0 * self.high_quality as f64 / self.samples.max(1) as f64
    }
}

/// The `k` centres `(r cos 2πi/k, r sin 2πi/k)`, `f64 [k, 2]` (the eight-gaussians ring for
/// `k = 8, r = 2`).
pub fn ring_centres(k: i64, radius: f64) -> Tensor {
    let xy: Vec<f64> = (0..k)
        .flat_map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / k as f64;
            [radius * a.cos(), radius * a.sin()]
        })
        .collect();
    Tensor::from_slice(&xy).view([k, 2])
}

/// Mode coverage of `samples` `[N, D]` around `centres` `[K, D]` of modes with standard
/// deviation `sigma`.
pub fn mode_coverage(samples: &Tensor, centres: &Tensor, sigma: f64) -> Result<ModeCoverage> {
    let (s, c) = (samples.to_kind(Kind::Double), centres.to_kind(Kind::Double));
    if s.dim() != 2 || c.dim() != 2 || s.size()[1] != c.size()[1] || c.size()[0] == 0 {
        return Err(Error::Msg(format!(
            "mode coverage: samples {:?} and centres {:?} must be [N, D] and [K, D], K > 0",
            s.size(),
            c.size()
        )));
    }
    if !(sigma > 0.0 && sigma.is_finite()) {
        return Err(Error::config("sigma", sigma, "a positive finite number"));
    }
    let k = c.size()[0];
    let d = s.unsqueeze(1).to_device(c.device()) - c.unsqueeze(0);
    let (dist, nearest) = d
        .square()
        .sum_dim_intlist(-1, false, Kind::Double)
        .min_dim(1, false);
    let hq = dist.sqrt().le(3.0 * sigma);
    let per_mode = Vec::<i64>::try_from(
        nearest
            .masked_select(&hq)
            .bincount::<Tensor>(None, k)
            .to_kind(Kind::Int64),
    )?;
    Ok(ModeCoverage {
        modes_covered: per_mode.iter().filter(|&&m| m > 0).count() as i64,
        modes: k,
        high_quality: per_mode.iter().sum(),
        samples: s.size()[0],
        per_mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_made_points_are_counted_by_the_protocol() {
        let c = ring_centres(8, 2.0);
        let r = 2f64.sqrt();
        // Centres 0 (2, 0), 1 (√2, √2), 2 (0, 2); σ = 0.02, 3σ = 0.06.
        let pts: [[f64; 2]; 7] = [
            [2.0, 0.0],           // mode 0, exact
            [2.05, 0.0],          // mode 0, 0.05 < 0.06: high quality
            [2.0, 0.07],          // mode 0, 0.07 > 0.06: not
            [r + 0.03, r - 0.04], // mode 1, 0.05: high quality
            [0.0, 2.061],         // mode 2, 0.061: not
            [0.0, 0.0],           // the centre: far from all
            [-5.0, 0.0],          // far outside, nearest mode 4: not
        ];
        let s = Tensor::from_slice(&pts.concat()).view([7, 2]);
        let m = mode_coverage(&s, &c, 0.02).unwrap();
        assert_eq!(m.per_mode, [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!((m.modes_covered, m.modes), (2, 8));
        assert_eq!((m.high_quality, m.samples), (3, 7));
        approx::assert_abs_diff_eq!(m.high_quality_percent(), 300.0 / 7.0, epsilon = 1e-12);
        let cs = Vec::<f64>::try_from(c.view([-1])).unwrap();
        approx::assert_abs_diff_eq!(cs[2], r, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(cs[4], 0.0, epsilon = 1e-12);
        approx::assert_abs_diff_eq!(cs[11], -r, epsilon = 1e-12);
    }

    #[test]
    fn bad_shapes_and_sigma_are_errors() {
        let c = ring_centres(8, 2.0);
        assert!(mode_coverage(
            &Tensor::zeros([3, 3], (Kind::Float, tch::Device::Cpu)),
            &c,
            0.02
        )
        .is_err());
        assert!(mode_coverage(
            &Tensor::zeros([3, 2], (Kind::Float, tch::Device::Cpu)),
            &c,
            0.0
        )
        .is_err());
    }
}
