//! Image grids: a batch of images `[N, C, H, W]` with values in [0, 1] becomes one PNG with a
//! chosen number of images per row, a one-pixel border, and nearest-neighbour enlargement
//! for tiny images. Files are written atomically.
//!
//! ```no_run
//! use gm_core::image::{save_grid, GridOptions};
//! let x = tch::Tensor::rand([16, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
//! save_grid(&x, std::path::Path::new("grid.png"), &GridOptions { per_row: 4, ..Default::default() })?;
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::checkpoint::atomic_write;
use crate::{Error, Result};
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// How a grid is laid out.
#[derive(Clone, Debug)]
pub struct GridOptions {
    /// Images per row.
    pub per_row: i64,
    /// Border between images, in pixels (after enlargement).
    pub padding: i64,
    /// Value of the border, in [0, 1].
    pub pad_value: f64,
    /// Enlarge each image by this integer factor; 0 picks one so that images are ≥ 28 px.
    pub scale: i64,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            per_row: 8,
            padding: 1,
            pad_value: 0.5,
            scale: 0,
        }
    }
}

/// Arranges `[N, C, H, W]` (C = 1 or 3) into one `[C, H', W']` u8 image.
pub fn grid(images: &Tensor, opts: &GridOptions) -> Result<Tensor> {
    let size = images.size();
    if size.len() != 4 || !(size[1] == 1 || size[1] == 3) || size[0] == 0 {
        return Err(Error::Msg(format!(
            "image grid: expected a non-empty [N, 1 or 3, H, W] tensor, got shape {size:?}"
        )));
    }
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let scale = if opts.scale > 0 {
        opts.scale
    } else {
        (28 + h.max(w) - 1) / h.max(w)
    };
    let x = images
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .nan_to_num(0.0, None, None)
        .clamp(0.0, 1.0);
    let x = if scale > 1 {
        x.repeat_interleave_self_int(scale, 2, None)
            .repeat_interleave_self_int(scale, 3, None)
    } else {
        x
    };
    let (h, w) = (h * scale, w * scale);
    let per_row = opts.per_row.clamp(1, n);
    let rows = (n + per_row - 1) / per_row;
    let p = opts.padding.max(0);
    let (ch, cw) = (h + p, w + p);
    let canvas = Tensor::full(
        [c, rows * ch + p, per_row * cw + p],
        opts.pad_value,
        (Kind::Float, Device::Cpu),
    );
    // Pad the batch to a full last row, then fold the batch into the canvas with one copy.
    let full = rows * per_row;
    let x = if full > n {
        Tensor::cat(
            &[
                x,
                Tensor::full(
                    [full - n, c, h, w],
                    opts.pad_value,
                    (Kind::Float, Device::Cpu),
                ),
            ],
            0,
        )
    } else {
        x
    };
    let tiles = x
        .constant_pad_nd([0, p, 0, p])
        .fill_value_pad(opts.pad_value, h, w, p)
        .view([rows, per_row, c, ch, cw])
        .permute([2, 0, 3, 1, 4])
        .reshape([c, rows * ch, per_row * cw]);
    canvas
        .narrow(1, p, rows * ch)
        .narrow(2, p, per_row * cw)
        .copy_(&tiles);
    Ok((canvas * 255.0).round().to_kind(Kind::Uint8))
}

trait PadFill {
    fn fill_value_pad(self, value: f64, h: i64, w: i64, p: i64) -> Tensor;
}

impl PadFill for Tensor {
    // `constant_pad_nd` pads with zeros; paint the padding strips with `value`.
    fn fill_value_pad(self, value: f64, h: i64, w: i64, p: i64) -> Tensor {
        if p > 0 {
            let _ = self.narrow(2, h, p).fill_(value);
            let _ = self.narrow(3, w, p).fill_(value);
        }
        self
    }
}

/// Encodes a `[C, H, W]` u8 tensor (C = 1 or 3) as PNG bytes.
pub fn png_bytes(img: &Tensor) -> Result<Vec<u8>> {
    let size = img.size();
    if size.len() != 3 || !(size[0] == 1 || size[0] == 3) {
        return Err(Error::Msg(format!(
            "png: expected [1 or 3, H, W], got {size:?}"
        )));
    }
    let (c, h, w) = (size[0], size[1], size[2]);
    let hwc = img.permute([1, 2, 0]).contiguous().to_kind(Kind::Uint8);
    let mut data = vec![0u8; (c * h * w) as usize];
    let len = data.len();
    hwc.f_copy_data_u8(&mut data, len)?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(if c == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| Error::Msg(format!("png: {e}")))?;
        writer
            .write_image_data(&data)
            .map_err(|e| Error::Msg(format!("png: {e}")))?;
    }
    Ok(out)
}

/// Writes `images` as a PNG grid to `path` (atomically).
pub fn save_grid(images: &Tensor, path: &Path, opts: &GridOptions) -> Result<()> {
    let g = grid(images, opts)?;
    atomic_write(path, &png_bytes(&g)?)
}

/// Renders 2-D points `[N, 2]` as a scatter plot (a `[1, size, size]` image in [0, 1]), with
/// the axes scaled to `extent` (min, max) on both dimensions.
pub fn scatter(points: &Tensor, size: i64, extent: (f64, f64)) -> Result<Tensor> {
    let s = points.size();
    if s.len() != 2 || s[1] != 2 {
        return Err(Error::Msg(format!(
            "scatter: expected [N, 2] points, got {s:?}"
        )));
    }
    let (lo, hi) = extent;
    let p = points.to_device(Device::Cpu).to_kind(Kind::Double);
    let ij = ((p - lo) / (hi - lo) * (size - 1) as f64)
        .round()
        .clamp(0.0, (size - 1) as f64)
        .to_kind(Kind::Int64);
    let col = ij.select(1, 0);
    let row = (size - 1) - ij.select(1, 1);
    let flat_idx = row * size + col;
    let img = Tensor::ones([size * size], (Kind::Float, Device::Cpu));
    let img = img.index_fill(0, &flat_idx, 0.0);
    Ok(img.view([1, size, size]))
}

/// Ten distinguishable colours (RGB in [0, 1]) for class-coloured plots; class c gets
/// colour c mod 10.
pub const PALETTE: [[f64; 3]; 10] = [
    [0.12, 0.47, 0.71],
    [1.00, 0.50, 0.05],
    [0.17, 0.63, 0.17],
    [0.84, 0.15, 0.16],
    [0.58, 0.40, 0.74],
    [0.55, 0.34, 0.29],
    [0.89, 0.47, 0.76],
    [0.50, 0.50, 0.50],
    [0.74, 0.74, 0.13],
    [0.09, 0.75, 0.81],
];

/// Renders 2-D points `[N, 2]` with integer class labels `[N]` as an RGB scatter plot
/// (`[3, size, size]` in [0, 1], white background), each point a 2×2 dot in its class's
/// [`PALETTE`] colour, axes scaled to `extent` on both dimensions. Later points are drawn
/// over earlier ones.
pub fn scatter_classes(
    points: &Tensor,
    labels: &Tensor,
    size: i64,
    extent: (f64, f64),
) -> Result<Tensor> {
    let s = points.size();
    if s.len() != 2 || s[1] != 2 || labels.size() != [s[0]] {
        return Err(Error::Msg(format!(
            "class scatter: expected [N, 2] points and [N] labels, got {s:?} and {:?}",
            labels.size()
        )));
    }
    let (lo, hi) = extent;
    let p = points.to_device(Device::Cpu).to_kind(Kind::Double);
    let ij = ((p - lo) / (hi - lo) * (size - 2) as f64)
        .round()
        .clamp(0.0, (size - 2) as f64)
        .to_kind(Kind::Int64);
    let (col, row) = (ij.select(1, 0), (size - 2) - ij.select(1, 1));
    let palette = Tensor::from_slice(&PALETTE.concat())
        .view([10, 3])
        .to_kind(Kind::Float);
    let colours = palette.index_select(
        0,
        &labels
            .to_device(Device::Cpu)
            .to_kind(Kind::Int64)
            .remainder(10),
    );
    let mut img = Tensor::ones([size * size, 3], (Kind::Float, Device::Cpu));
    for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
        let idx = (&row + dr) * size + (&col + dc);
        let _ = img.index_put_(&[Some(idx)], &colours, false);
    }
    Ok(img.view([size, size, 3]).permute([2, 0, 1]).contiguous())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_scatter_colours_each_point_by_its_class() {
        let _rng = crate::rng_guard::lock();
        let pts = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0]).view([2, 2]);
        let y = Tensor::from_slice(&[3i64, 11]);
        let img = scatter_classes(&pts, &y, 12, (0.0, 1.0)).unwrap();
        assert_eq!(img.size(), [3, 12, 12]);
        let px =
            |r: i64, c: i64| -> Vec<f64> { (0..3).map(|k| img.double_value(&[k, r, c])).collect() };
        // (0, 0) is the bottom-left dot (rows 10–11, columns 0–1), class 3.
        for (r, c) in [(10, 0), (11, 1)] {
            for (a, b) in px(r, c).iter().zip(PALETTE[3]) {
                assert!((a - b).abs() < 1e-6, "({r}, {c}): {:?}", px(r, c));
            }
        }
        // (1, 1) is the top-right dot (rows 0–1, columns 10–11), class 11 → colour 1.
        for (a, b) in px(0, 11).iter().zip(PALETTE[1]) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(px(5, 5), vec![1.0; 3]);
        assert!(scatter_classes(&pts, &Tensor::from_slice(&[1i64]), 12, (0.0, 1.0)).is_err());
    }

    #[test]
    fn grid_places_each_image_in_its_cell() {
        let _rng = crate::rng_guard::lock();
        // 3 images of 2x2 with values 0.0, 0.5, 1.0; 2 per row, padding 1, no scaling.
        let imgs = Tensor::cat(
            &[
                Tensor::zeros([1, 1, 2, 2], (Kind::Float, Device::Cpu)),
                Tensor::full([1, 1, 2, 2], 0.5, (Kind::Float, Device::Cpu)),
                Tensor::ones([1, 1, 2, 2], (Kind::Float, Device::Cpu)),
            ],
            0,
        );
        let opts = GridOptions {
            per_row: 2,
            padding: 1,
            pad_value: 0.2,
            scale: 1,
        };
        let g = grid(&imgs, &opts).unwrap();
        assert_eq!(g.size(), vec![1, 2 * 3 + 1, 2 * 3 + 1]);
        let at = |r: i64, c: i64| g.int64_value(&[0, r, c]);
        assert_eq!(at(0, 0), 51); // border
        assert_eq!(at(1, 1), 0); // image 0
        assert_eq!(at(1, 4), 128); // image 1 (0.5 * 255 rounded)
        assert_eq!(at(4, 1), 255); // image 2
        assert_eq!(at(4, 4), 51); // empty cell filled with the pad value
        assert_eq!(at(3, 1), 51); // border between rows
    }

    #[test]
    fn png_encodes_and_decodes() {
        let _rng = crate::rng_guard::lock();
        let imgs = Tensor::rand([5, 3, 4, 4], (Kind::Float, Device::Cpu));
        let g = grid(&imgs, &GridOptions::default()).unwrap();
        let bytes = png_bytes(&g).unwrap();
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.width as i64, g.size()[2]);
        assert_eq!(info.height as i64, g.size()[1]);
        assert_eq!(info.color_type, png::ColorType::Rgb);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let _rng = crate::rng_guard::lock();
        let x = Tensor::zeros([4, 2, 3, 3], (Kind::Float, Device::Cpu));
        assert!(grid(&x, &GridOptions::default()).is_err());
        let x = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        assert!(scatter(&x, 10, (0.0, 1.0)).is_err());
    }

    #[test]
    fn scatter_marks_points() {
        let _rng = crate::rng_guard::lock();
        let pts = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 1.0]).view([2, 2]);
        let img = scatter(&pts, 5, (0.0, 1.0)).unwrap();
        assert_eq!(img.double_value(&[0, 4, 0]), 0.0); // (0,0) bottom-left
        assert_eq!(img.double_value(&[0, 0, 4]), 0.0); // (1,1) top-right
        assert_eq!(img.sum(Kind::Float).double_value(&[]), 23.0);
    }
}
