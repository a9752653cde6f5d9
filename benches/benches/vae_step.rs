//! Criterion benches of the VAE of `configs/vae-binarized-mnist.toml` (784-200-200-50, tanh,
//! Bernoulli decoder, Adam), built through `gm_vae::vae::build` from a TOML run config, on
//! random binary data (speed does not depend on the values):
//!
//! - `vae/train_step_b100`: one `Model::train_step` on a batch of 100 (forward, backward,
//!   Adam update);
//! - `vae/sample_100`: one `Model::sample(100)` (decoder means of 100 prior draws).
//!
//! ```text
//! cargo bench -p gm-benches --bench vae_step
//! cargo bench -p gm-benches --bench vae_step -- --quick
//! ```
//!
//! Threads: libtorch's default unless `GM_BENCH_THREADS` is set.

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use gm_benches::{random_binary_dataset, vae_run_config};
use gm_core::model::BuildContext;
use tch::Device;

const BATCH: i64 = 100;

fn vae(c: &mut Criterion) {
    if let Some(t) = std::env::var("GM_BENCH_THREADS")
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
    {
        tch::set_num_threads(t);
    }
    let cfg = vae_run_config("binarized-mnist", BATCH).expect("the bench config is valid");
    let data = random_binary_dataset(BATCH, 0);
    let mut model = gm_vae::vae::build(&BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    })
    .expect("the VAE builds");
    let x = data.train.x.shallow_clone();

    let mut g = c.benchmark_group("vae");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("train_step_b100", |b| {
        b.iter(|| {
            let m = model
                .train_step(&gm_core::data::Batch::inputs(&x))
                .expect("train step");
            black_box(m);
        })
    });
    g.bench_function("sample_100", |b| {
        b.iter(|| black_box(model.sample(BATCH).expect("sample")))
    });
    g.finish();
}

criterion_group!(benches, vae);
criterion_main!(benches);
