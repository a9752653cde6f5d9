//! Moment shaping (§20.13): a generator of the eight-Gaussians ring with the wrong mode
//! weights (mode k drawn with probability ∝ k + 1) reweighted and then thinned so that five
//! statistics — E x, E y, E x², E y², E xy — match those of the `eight-gaussians` training
//! data. Prints the statistics (data, generator, weighted, kept ± standard error) and the
//! mode weights before and after; writes `generator.png` and `kept.png` scatter plots.
//!
//! ```text
//! cargo run --release -p gm-diffusion --example moment_shaping -- [OUT_DIR] [N]
//! ```
//! Five moments cannot pin eight mode weights: the kept samples match the statistics, and
//! move the mode weights only part of the way to 1/8.

use gm_core::checkpoint::atomic_write;
use gm_core::data;
use gm_core::image::{png_bytes, scatter};
use gm_diffusion::shaping::{keep, tilt};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// The five statistics of points `[N, 2]`: `[N, 5]`.
fn stats(v: &Tensor) -> Tensor {
    let (a, b) = (v.select(1, 0), v.select(1, 1));
    Tensor::stack(
        &[
            a.shallow_clone(),
            b.shallow_clone(),
            a.square(),
            b.square(),
            &a * &b,
        ],
        1,
    )
}

/// Fraction of points nearest each of the eight modes.
fn mode_weights(v: &Tensor) -> Vec<f64> {
    let angle = v.select(1, 1).atan2(&v.select(1, 0));
    let k = (angle / (std::f64::consts::PI / 4.0))
        .round()
        .remainder(8)
        .to_kind(Kind::Int64);
    let counts = k.bincount::<Tensor>(None, 8).to_kind(Kind::Double);
    Vec::<f64>::try_from(&counts / v.size()[0] as f64).unwrap()
}

fn save(points: &Tensor, path: &Path) -> gm_core::Result<()> {
    let img = (scatter(points, 256, (-3.0, 3.0))? * 255.0).to_kind(Kind::Uint8);
    atomic_write(path, &png_bytes(&img)?)
}

fn main() -> gm_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "moment-shaping".into()));
    let n: i64 = args
        .next()
        .map(|s| s.parse().expect("N: a number of samples"))
        .unwrap_or(200_000);
    std::fs::create_dir_all(&out)
        .map_err(|e| gm_core::Error::Msg(format!("{}: {e}", out.display())))?;
    tch::manual_seed(0);
    let data = data::load("eight-gaussians", &Default::default())?;
    let real = data.train.x.to_kind(Kind::Double);
    let probs = Tensor::arange_start(1, 9, F64);
    let k = probs.multinomial(n, true).to_kind(Kind::Double);
    let a = &k * (std::f64::consts::PI / 4.0);
    let gen = Tensor::stack(&[a.cos(), a.sin()], 1) * 2.0 + Tensor::randn([n, 2], F64) * 0.02;
    let target = Vec::<f64>::try_from(stats(&real).mean_dim(0, false, Kind::Double))?;
    let s = stats(&gen);
    let t = tilt(&s, &target)?;
    let kept_idx = keep(&t.weights).nonzero().squeeze_dim(1);
    let kept = gen.index_select(0, &kept_idx);
    let ks = stats(&kept);
    let row = |v: &Tensor| Vec::<f64>::try_from(v).unwrap();
    let gen_m = row(&s.mean_dim(0, false, Kind::Double));
    let weighted = row(&s.tr().matmul(&t.weights));
    let kept_m = row(&ks.mean_dim(0, false, Kind::Double));
    let kept_se = row(&(ks.var_dim(0, true, false) / ks.size()[0] as f64).sqrt());
    println!("statistic   data      generator  weighted   kept (± s.e.)");
    for (i, name) in ["E x", "E y", "E x²", "E y²", "E xy"].iter().enumerate() {
        println!(
            "{name:<10} {:>8.4}  {:>8.4}   {:>8.4}   {:>8.4} ± {:.4}",
            target[i], gen_m[i], weighted[i], kept_m[i], kept_se[i]
        );
    }
    println!(
        "λ = {:.4?}, {} Newton iterations, effective sample size {:.0} of {n}, {} kept",
        t.lambda,
        t.iterations,
        t.ess,
        kept.size()[0]
    );
    let fmt = |w: Vec<f64>| {
        w.iter()
            .map(|v| format!("{v:.3}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("mode weights, data:      {}", fmt(mode_weights(&real)));
    println!("mode weights, generator: {}", fmt(mode_weights(&gen)));
    println!("mode weights, kept:      {}", fmt(mode_weights(&kept)));
    save(&gen.narrow(0, 0, 5000.min(n)), &out.join("generator.png"))?;
    save(
        &kept.narrow(0, 0, 5000.min(kept.size()[0])),
        &out.join("kept.png"),
    )?;
    println!(
        "wrote {}/generator.png and kept.png (5,000 points each)",
        out.display()
    );
    Ok(())
}
