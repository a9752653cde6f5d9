//! Trains a small PixelCNN on the 4×4 bars-and-stripes images and prints its exact NLL and
//! a few samples drawn pixel by pixel in raster order.
//!
//! `cargo run --release -p gm-autoregressive --example pixelcnn_bars`

use gm_autoregressive::common::Autoregressive;
use gm_autoregressive::pixelcnn::{PixelCnn, PixelCnnConfig};
use gm_core::config::RunConfig;
use gm_core::data;
use gm_core::model::{parse_params, BuildContext, Model};
use tch::{Device, Kind, Tensor};

fn main() -> gm_core::Result<()> {
    let cfg = RunConfig::from_toml_str(
        "seed = 0\n[model]\nname = \"pixelcnn\"\nchannels = 32\nresidual_blocks = 3\n\
         first_kernel = 7\noutput_channels = 32\n[data]\ndataset = \"bars-and-stripes\"\n\
         [optim]\nlr = 0.005\n",
    )?;
    let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
    tch::manual_seed(0);
    let params: PixelCnnConfig = parse_params("pixelcnn", &cfg.model.params)?;
    let ctx = BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    };
    let mut m = PixelCnn::new(params, &ctx)?;
    for step in 0..=600 {
        let nll = m.train_step(&gm_core::data::Batch::inputs(&ds.train.x))?[0]
            .1
            .double_value(&[]);
        if step % 100 == 0 {
            println!("step {step:>3}: training NLL {nll:.3} nats");
        }
    }
    let patterns = data::bars_and_stripes_patterns(4);
    let nll = -tch::no_grad(|| m.log_prob(&patterns))
        .mean(Kind::Double)
        .double_value(&[]);
    println!(
        "exact NLL of the {} patterns {nll:.3} nats (uniform over them: {:.3})",
        patterns.size()[0],
        (patterns.size()[0] as f64).ln()
    );
    let s: Tensor = m.sample(8)?.reshape([8, 16]);
    for i in 0..8 {
        let v: Vec<f32> = Vec::try_from(s.get(i)).expect("f32 row");
        let rows: Vec<String> = v
            .chunks(4)
            .map(|r| r.iter().map(|&b| if b > 0.5 { '#' } else { '.' }).collect())
            .collect();
        println!("sample {i}: {}", rows.join("/"));
    }
    Ok(())
}
