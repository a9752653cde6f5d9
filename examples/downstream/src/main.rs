//! A program of your own that uses gm's RBM through the public API only: it trains a
//! Bernoulli RBM on 4×4 bars and stripes (30 equally likely patterns, so the best possible
//! log-likelihood is −log 30 = −3.401 nats), prints the exact test log-likelihood before
//! and after training next to the AIS estimate and how many samples are valid patterns,
//! and writes the samples as a PNG grid.
//!
//! ```text
//! cargo run -- [samples.png]
//! ```

use gm_boltzmann::rbm::Rbm;
use gm_core::prelude::*;

const CONFIG: &str = r#"
seed = 0

[model]
name = "rbm"
hidden = 64
rule = "cd"
k = 10
init_std = 0.1

[data]
dataset = "bars-and-stripes"
batch_size = 30

[optim]
kind = "sgd"
lr = 0.05
momentum = 0.5

[eval]
ais_chains = 100
ais_steps = 1000
"#;

/// Training epochs over the 1,000 training examples (34 updates each).
const EPOCHS: usize = 30;

fn main() -> gm_core::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "rbm-samples.png".into());
    let cfg = RunConfig::from_toml_str(CONFIG)?;
    let data = data::load(&cfg.data.dataset, &cfg.data.options)?;
    let device = Device::Cpu;
    println!(
        "libtorch: CUDA available {}, {} GPU(s); training on {device:?}",
        gm_core::tch::Cuda::is_available(),
        gm_core::tch::Cuda::device_count()
    );
    seed_all(cfg.seed);
    let ctx = BuildContext {
        cfg: &cfg,
        data: &data,
        device,
    };
    let mut rbm = Rbm::new(parse_params("rbm", &cfg.model.params)?, &ctx)?;

    report(&rbm, &data, &cfg, "before training")?;
    let mut updates = 0;
    for epoch in 0..EPOCHS {
        let batches = Batches::new(
            &data.train.x,
            None,
            cfg.data.batch_size,
            true,
            false,
            cfg.seed,
            epoch,
        );
        for batch in batches {
            rbm.train_step(&batch)?;
            updates += 1;
        }
    }
    println!(
        "trained: {EPOCHS} epochs, {updates} CD-{} updates",
        rbm.config().k
    );
    report(&rbm, &data, &cfg, "after training")?;

    let samples = rbm.sample(64)?; // [64, 1, 4, 4], p(v = 1 | h) after Gibbs sweeps
    let valid = valid_count(&samples.round(), &data::bars_and_stripes_patterns(4));
    println!("samples: {valid} of 64 (rounded to 0/1) are bars-and-stripes patterns");
    save_grid(
        &samples,
        std::path::Path::new(&out),
        &GridOptions::default(),
    )?;
    println!("wrote {out}");
    Ok(())
}

/// Prints every log-likelihood the model reports for the test split, with its kind.
fn report(rbm: &Rbm, data: &Dataset, cfg: &RunConfig, when: &str) -> gm_core::Result<()> {
    for ll in rbm.log_likelihoods(&data.test.x, cfg)? {
        println!(
            "{when}: test log-likelihood {:.3} ± {:.3} nats ({}, {}); optimum {:.3}",
            ll.mean,
            ll.std_err,
            ll.kind,
            ll.method,
            -(30f64).ln()
        );
    }
    Ok(())
}

/// How many of `samples` `[N, 1, n, n]` equal one of `patterns` `[P, 1, n, n]`.
fn valid_count(samples: &Tensor, patterns: &Tensor) -> i64 {
    let n = samples.size()[0];
    let s = samples.reshape([n, 1, -1]);
    let p = patterns.reshape([1, patterns.size()[0], -1]);
    let matches = s.eq_tensor(&p).all_dim(2, false).any_dim(1, false);
    matches.sum(Kind::Int64).int64_value(&[])
}
