//! Binarization schemes and the seeded Bernoulli sampler behind them.
//!
//! Likelihoods measured on differently binarized data are not comparable (chapter 20.14), so
//! every [`crate::data::Dataset`] carries its [`Binarization`] and every result records it.
//!
//! Sampling `x ~ Bernoulli(p)` elementwise is done without libtorch's RNG: a `ChaCha8Rng`
//! stream (see `rng.rs`) gives one 32-bit word per element on the CPU, 23 of its bits become
//! a uniform `u = k / 2^23`, and the sample is `u < p`, computed by libtorch on the device
//! holding `p`. The result is a pure function of `(p, stream)`: the same on CPU and CUDA,
//! unaffected by (and not affecting) the trainer's seeding of the global torch RNG.

use std::fmt;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::rng::{self, Domain};

/// How a dataset's values were made binary; recorded with every result.
///
/// Displayed as `none`, `threshold(0.5)`, `static-file`, `stochastic(seed=1)`,
/// `dynamic(seed=1)`; serialized as `"none"`, `{"threshold": 0.5}`, `"static-file"`,
/// `{"stochastic": {"seed": 1}}`, `{"dynamic": {"seed": 1}}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Binarization {
    /// Not binarized: intensities in `[0, 1]`, real values, or data that is binary by
    /// construction (bars and stripes).
    None,
    /// `x > t`, applied once to every split.
    Threshold(f32),
    /// The fixed binarization of MNIST distributed by Larochelle & Murray (2011).
    StaticFile,
    /// `x ~ Bernoulli(intensity)`, drawn once at load for every split.
    Stochastic {
        /// Seed of the draw.
        seed: u64,
    },
    /// The training split is re-drawn `x ~ Bernoulli(intensity)` every epoch
    /// ([`crate::data::Dataset::train_inputs`]); valid and test are drawn once, exactly as
    /// `Stochastic { seed }` draws them, so evaluation is on a fixed set.
    Dynamic {
        /// Seed of the draws.
        seed: u64,
    },
}

impl fmt::Display for Binarization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binarization::None => write!(f, "none"),
            Binarization::Threshold(t) => write!(f, "threshold({t})"),
            Binarization::StaticFile => write!(f, "static-file"),
            Binarization::Stochastic { seed } => write!(f, "stochastic(seed={seed})"),
            Binarization::Dynamic { seed } => write!(f, "dynamic(seed={seed})"),
        }
    }
}

/// The binarization asked for in a config (`data.binarize`); with the dataset it decides the
/// [`Binarization`] (the static file's scheme is [`Binarization::StaticFile`] whatever is asked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinarizeSpec {
    /// Keep the values (`"none"`).
    #[default]
    None,
    /// `x > data.threshold` (`"threshold"`).
    Threshold,
    /// Bernoulli draw once at load (`"stochastic"`).
    Stochastic,
    /// Bernoulli draw of the training split every epoch (`"dynamic"`).
    Dynamic,
}

impl fmt::Display for BinarizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinarizeSpec::None => "none",
            BinarizeSpec::Threshold => "threshold",
            BinarizeSpec::Stochastic => "stochastic",
            BinarizeSpec::Dynamic => "dynamic",
        })
    }
}

/// Elements drawn per round on the CPU: below libtorch's parallel grain size (32,768), so each
/// operation runs on the calling thread over data in cache, with no thread-pool hand-off (on
/// a busy 2-core machine, ~230 small parallel regions took seconds where these take ~0.1 s).
const CPU_CHUNK: usize = 1 << 15;
/// Elements drawn per round on an accelerator: few, large transfers and kernels.
const DEVICE_CHUNK: usize = 1 << 23;

/// `x ~ Bernoulli(p)` elementwise as `f32` 0/1, with the uniforms taken from `stream`
/// (see the module docs). `p` may live on any device; the result lives on the same one.
///
/// Each element takes one 32-bit word of the stream (little-endian bytes, as on every
/// platform libtorch runs on); its low 23 bits become the mantissa of a float in `[1, 2)`,
/// minus one a uniform `u` on the grid `k / 2^23`, and the draw is `u < p`, so
/// `P(1) = ceil(p · 2^23) / 2^23`. The work is done in chunks, in place, into one output
/// tensor; the chunk size does not change the result.
pub(crate) fn bernoulli(p: &Tensor, stream: ChaCha8Rng) -> Tensor {
    let chunk = if p.device() == Device::Cpu {
        CPU_CHUNK
    } else {
        DEVICE_CHUNK
    };
    bernoulli_chunked(p, stream, chunk)
}

fn bernoulli_chunked(p: &Tensor, mut stream: ChaCha8Rng, chunk: usize) -> Tensor {
    let chunk = chunk.max(1);
    let size = p.size();
    let device = p.device();
    let p = p.to_kind(Kind::Float).reshape([-1]);
    let numel = p.numel();
    let out = Tensor::empty([numel as i64], (Kind::Float, device));
    let mut bytes = vec![0u8; 4 * chunk.min(numel)];
    let mut start = 0usize;
    while start < numel {
        let len = chunk.min(numel - start);
        let buf = &mut bytes[..4 * len];
        stream.fill_bytes(buf);
        let mut bits = Tensor::from_data_size(buf, &[len as i64], Kind::Int).to_device(device);
        let _ = bits.bitwise_and_(0x007F_FFFF);
        let _ = bits.bitwise_or_(0x3F80_0000); // exponent of [1, 2)
        let mut u = bits.view_dtype(Kind::Float);
        let _ = u.g_sub_scalar_(1.0); // exact: u in [0, 1)
        let _ = u.lt_tensor_(&p.narrow(0, start as i64, len as i64));
        out.narrow(0, start as i64, len as i64).copy_(&u);
        start += len;
    }
    out.view(size.as_slice())
}

/// The fixed draw of one split under `Stochastic { seed }` (and of valid/test under `Dynamic`).
pub(crate) fn bernoulli_once(p: &Tensor, seed: u64, split: u64) -> Tensor {
    bernoulli(p, rng::stream(Domain::BinarizeOnce, seed, split, 0))
}

/// The draw of the training split for `epoch` under `Dynamic { seed }`.
pub(crate) fn bernoulli_epoch(p: &Tensor, seed: u64, epoch: usize) -> Tensor {
    bernoulli(p, rng::stream(Domain::BinarizeEpoch, seed, epoch as u64, 0))
}

/// `x > t` as `f32` 0/1.
pub(crate) fn threshold(x: &Tensor, t: f32) -> Tensor {
    x.gt(f64::from(t)).to_kind(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_serde_round_trip() {
        let all = [
            Binarization::None,
            Binarization::Threshold(0.5),
            Binarization::StaticFile,
            Binarization::Stochastic { seed: 7 },
            Binarization::Dynamic { seed: 3 },
        ];
        let shown: Vec<String> = all.iter().map(|b| b.to_string()).collect();
        assert_eq!(
            shown,
            [
                "none",
                "threshold(0.5)",
                "static-file",
                "stochastic(seed=7)",
                "dynamic(seed=3)"
            ]
        );
        for b in all {
            let json = serde_json::to_string(&b).unwrap();
            let back: Binarization = serde_json::from_str(&json).unwrap();
            assert_eq!(back, b, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Binarization::Dynamic { seed: 3 }).unwrap(),
            r#"{"dynamic":{"seed":3}}"#
        );
        assert_eq!(
            serde_json::to_string(&Binarization::StaticFile).unwrap(),
            r#""static-file""#
        );
        let spec: BinarizeSpec = serde_json::from_str(r#""dynamic""#).unwrap();
        assert_eq!(spec, BinarizeSpec::Dynamic);
        assert!(serde_json::from_str::<BinarizeSpec>(r#""Dynamic""#).is_err());
    }

    #[test]
    fn bernoulli_is_reproducible_and_has_the_right_mean() {
        let p = Tensor::from_slice(&[0.0f32, 1.0, 0.25, 0.75]).repeat([20_000]);
        let a = bernoulli_once(&p, 1, 0);
        let b = bernoulli_once(&p, 1, 0);
        let c = bernoulli_once(&p, 1, 1);
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
        let a = a.view([20_000, 4]).mean_dim(0, false, Kind::Float);
        let m: Vec<f32> = Vec::try_from(&a).unwrap();
        assert_eq!(m[0], 0.0);
        assert_eq!(m[1], 1.0);
        assert!((m[2] - 0.25).abs() < 0.015, "{m:?}");
        assert!((m[3] - 0.75).abs() < 0.015, "{m:?}");
    }

    #[test]
    fn bernoulli_does_not_depend_on_the_chunk_size() {
        let _rng = crate::rng_guard::lock();
        let p = Tensor::rand([3 * CPU_CHUNK as i64 + 5], (Kind::Float, tch::Device::Cpu));
        let s = || rng::stream(Domain::BinarizeOnce, 4, 0, 0);
        let a = bernoulli(&p, s());
        for chunk in [1000, 4099, CPU_CHUNK, p.numel()] {
            assert!(a.equal(&bernoulli_chunked(&p, s(), chunk)), "chunk {chunk}");
        }
        // exact threshold semantics: the first draw of an element is u = (w & 0x7fffff) / 2^23
        let mut r = s();
        let w = r.next_u32();
        let u = f64::from(w & 0x007F_FFFF) / f64::from(1u32 << 23);
        let first = bernoulli(&Tensor::from_slice(&[u as f32, (u + 1e-6) as f32]), s());
        assert_eq!(
            Vec::<f32>::try_from(&first).unwrap()[0],
            0.0,
            "u < u is false"
        );
        let second = bernoulli(&Tensor::from_slice(&[(u + 1e-6) as f32]), s());
        assert_eq!(
            Vec::<f32>::try_from(&second).unwrap(),
            [1.0],
            "u < u + 1e-6"
        );
    }

    #[test]
    fn threshold_is_strict() {
        let x = Tensor::from_slice(&[0.2f32, 0.5, 0.6]);
        let y: Vec<f32> = Vec::try_from(&threshold(&x, 0.5)).unwrap();
        assert_eq!(y, [0.0, 0.0, 1.0]);
    }
}
