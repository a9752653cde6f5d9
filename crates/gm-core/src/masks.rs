//! Observation masks for completion (1 = observed, 0 = hidden) and the one grid every
//! completion picture uses: masked input (hidden pixels grey) | completions | truth.
//!
//! Masks are named as on the command line: `bottom-half`, `right-half`, `square` (a
//! centred square of half the shorter side hidden) and `random:P` (each pixel hidden with
//! probability P, drawn from a seeded generator of its own, not libtorch's).
//!
//! ```
//! use gm_core::masks::MaskSpec;
//! let m = MaskSpec::parse("bottom-half")?.build(2, &[1, 4, 4], 0, tch::Device::Cpu)?;
//! assert_eq!(m.size(), vec![2, 1, 4, 4]);
//! assert_eq!(m.sum(tch::Kind::Float).double_value(&[]), 16.0); // the top 2 rows of 2 images
//! assert!(MaskSpec::parse("random:1.5").is_err());
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::model::{Complete, Figure};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

/// Which pixels are hidden.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskSpec {
    /// The bottom ⌈H/2⌉ rows hidden.
    BottomHalf,
    /// The right ⌈W/2⌉ columns hidden.
    RightHalf,
    /// A centred square of side max(1, min(H, W)/2) hidden.
    Square,
    /// Each pixel hidden independently with this probability, in (0, 1).
    Random(f64),
}

const EXPECTED: &str = "bottom-half, right-half, square or random:P with 0 < P < 1";

impl MaskSpec {
    /// Parses `bottom-half`, `right-half`, `square` or `random:P`.
    pub fn parse(s: &str) -> Result<MaskSpec> {
        let bad = |why: &str| Error::config("--complete", format!("{s:?}"), why);
        match s {
            "bottom-half" => Ok(MaskSpec::BottomHalf),
            "right-half" => Ok(MaskSpec::RightHalf),
            "square" => Ok(MaskSpec::Square),
            _ => match s.strip_prefix("random:") {
                Some(p) => {
                    let p: f64 = p
                        .trim()
                        .parse()
                        .map_err(|_| bad(&format!("{EXPECTED} ({p:?} is not a number)")))?;
                    if p > 0.0 && p < 1.0 {
                        Ok(MaskSpec::Random(p))
                    } else {
                        Err(bad(&format!("{EXPECTED} (P = {p} is outside (0, 1))")))
                    }
                }
                None => Err(bad(EXPECTED)),
            },
        }
    }

    /// A name for files and captions, e.g. `bottom-half`, `random-0.5`.
    pub fn stem(&self) -> String {
        match self {
            MaskSpec::BottomHalf => "bottom-half".into(),
            MaskSpec::RightHalf => "right-half".into(),
            MaskSpec::Square => "square".into(),
            MaskSpec::Random(p) => format!("random-{p}"),
        }
    }

    /// The masks `f32 [n, C, H, W]` (1 = observed) for images shaped `shape` = `[C, H, W]`,
    /// the same on every channel; `seed` drives `random:P` only.
    pub fn build(&self, n: i64, shape: &[i64], seed: u64, device: Device) -> Result<Tensor> {
        let &[c, h, w] = shape else {
            return Err(Error::Msg(format!(
                "completion masks are for images [C, H, W], the data's examples are shaped {shape:?}"
            )));
        };
        let rows = Tensor::arange(h, (Kind::Int64, device)).view([1, 1, h, 1]);
        let cols = Tensor::arange(w, (Kind::Int64, device)).view([1, 1, 1, w]);
        let hidden = match *self {
            MaskSpec::BottomHalf => rows.ge(h / 2).expand([n, 1, h, w], false),
            MaskSpec::RightHalf => cols.ge(w / 2).expand([n, 1, h, w], false),
            MaskSpec::Square => {
                let side = (h.min(w) / 2).max(1);
                let (top, left) = ((h - side) / 2, (w - side) / 2);
                let inside = |t: &Tensor, lo: i64| t.ge(lo).logical_and(&t.lt(lo + side));
                inside(&rows, top)
                    .logical_and(&inside(&cols, left))
                    .expand([n, 1, h, w], false)
            }
            MaskSpec::Random(p) => {
                let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let v: Vec<f32> = (0..n * h * w)
                    .map(|_| f32::from(u8::from(r.gen::<f64>() < p)))
                    .collect();
                Tensor::from_slice(&v)
                    .view([n, 1, h, w])
                    .to_device(device)
                    .gt(0.5)
            }
        };
        Ok(hidden
            .logical_not()
            .to_kind(Kind::Float)
            .expand([n, c, h, w], true)
            .contiguous())
    }
}

/// The completion grid: for each of the n images of `x` `[n, C, H, W]`, a row of the masked
/// input (hidden pixels at 0.5, grey), its k completions `completions` `[n, k, C, H, W]`,
/// and the truth: `[n (k + 2), C, H, W]`, k + 2 per row.
pub fn completion_grid(x: &Tensor, mask: &Tensor, completions: &Tensor) -> Tensor {
    let size = x.size();
    let n = size[0];
    let hidden: Tensor = 1.0 - mask;
    let shown = x * mask + hidden * 0.5;
    let per = completions.size()[1] + 2;
    Tensor::cat(
        &[
            shown.unsqueeze(1),
            completions.to_kind(Kind::Float),
            x.to_kind(Kind::Float).unsqueeze(1),
        ],
        1,
    )
    .reshape([n * per, size[1], size[2], size[3]])
}

/// A [`Figure`] of `k` completions per image of `x` `[n, C, H, W]` under `spec` (mask seed
/// `seed`), laid out by [`completion_grid`]; the caption says what was hidden and how the
/// completions were made.
pub fn completion_figure(
    model: &dyn Complete,
    x: &Tensor,
    spec: &MaskSpec,
    k: i64,
    seed: u64,
) -> Result<Figure> {
    let size = x.size();
    let n = size[0];
    let mask = spec.build(n, &size[1..], seed, x.device())?;
    let rep = |t: &Tensor| t.repeat_interleave_self_int(k, 0, None);
    let done = tch::no_grad(|| model.complete(&rep(x), &rep(&mask)))?;
    let mut shape = vec![n, k];
    shape.extend_from_slice(&size[1..]);
    Ok(Figure {
        name: format!("completion-{}", spec.stem()),
        caption: format!(
            "each row: a held-out image with its {} hidden (grey), {k} completion(s) ({}), the image",
            spec.stem(),
            model.completion_kind()
        ),
        images: completion_grid(x, &mask, &done.reshape(shape.as_slice())),
        per_row: k + 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden(spec: &str, h: i64, w: i64) -> Vec<Vec<u8>> {
        let m = MaskSpec::parse(spec)
            .unwrap()
            .build(1, &[1, h, w], 7, Device::Cpu)
            .unwrap();
        (0..h)
            .map(|r| {
                (0..w)
                    .map(|c| u8::from(m.double_value(&[0, 0, r, c]) == 0.0))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_named_masks_hide_what_they_say() {
        assert_eq!(
            hidden("bottom-half", 4, 3),
            [[0, 0, 0], [0, 0, 0], [1, 1, 1], [1, 1, 1]]
        );
        assert_eq!(hidden("right-half", 2, 4), [[0, 0, 1, 1], [0, 0, 1, 1]]);
        assert_eq!(
            hidden("square", 4, 4),
            [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
        );
        // Odd sides: bottom half takes the larger half; a 5×5 square hides the centre 2×2.
        assert_eq!(hidden("bottom-half", 3, 1), [[0], [1], [1]]);
        let sq = hidden("square", 5, 5);
        assert_eq!(sq.iter().flatten().map(|&v| v as i32).sum::<i32>(), 4);
    }

    #[test]
    fn random_masks_are_seeded_and_hide_about_p_on_every_channel() {
        let spec = MaskSpec::parse("random:0.3").unwrap();
        let a = spec.build(50, &[3, 10, 10], 1, Device::Cpu).unwrap();
        let b = spec.build(50, &[3, 10, 10], 1, Device::Cpu).unwrap();
        let c = spec.build(50, &[3, 10, 10], 2, Device::Cpu).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.select(1, 0), a.select(1, 2));
        let frac = 1.0 - a.mean(Kind::Double).double_value(&[]);
        // 5000 pixels: the standard error of the fraction is 0.0065.
        assert!((frac - 0.3).abs() < 0.03, "hidden fraction {frac}");
    }

    #[test]
    fn bad_mask_names_are_errors_naming_the_value() {
        for bad in [
            "top-half",
            "random:",
            "random:x",
            "random:0",
            "random:1",
            "random:-2",
        ] {
            let e = MaskSpec::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("--complete"),
                "{e}"
            );
        }
        let e = MaskSpec::Square
            .build(1, &[2], 0, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("[2]"), "{e}");
    }

    #[test]
    fn the_grid_is_masked_input_completions_truth() {
        let x = Tensor::from_slice(&[1f32, 0., 1., 1.]).view([1, 1, 2, 2]);
        let mask = MaskSpec::BottomHalf
            .build(1, &[1, 2, 2], 0, Device::Cpu)
            .unwrap();
        let done = Tensor::from_slice(&[1f32, 0., 0., 0., 1., 0., 1., 1.]).view([1, 2, 1, 2, 2]);
        let g = completion_grid(&x, &mask, &done);
        let flat: Vec<f32> = Vec::try_from(g.reshape([-1])).unwrap();
        assert_eq!(
            flat,
            [1., 0., 0.5, 0.5, 1., 0., 0., 0., 1., 0., 1., 1., 1., 0., 1., 1.]
        );
    }
}
