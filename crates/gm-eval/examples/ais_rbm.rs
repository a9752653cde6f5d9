//! Times forward AIS on a random 784-500 Bernoulli RBM with M = 100 chains along the
//! 14,500-step schedule of Salakhutdinov & Murray (2008), the setting of their MNIST table.
//! `ais_rbm.py` beside this file runs the same loop in PyTorch for comparison.
//!
//! ```text
//! cargo run --release -p gm-eval --example ais_rbm [-- STEPS]
//! ```
//!
//! With STEPS the schedule is `linear(STEPS)` instead (quick checks). The RBM is random but
//! MNIST-shaped: W ~ N(0, 0.05²), visible biases from base rates in [0.01, 0.5], hidden
//! biases −1; the base distribution is the base-rate model.

use std::time::Instant;

use gm_eval::ais::{self, rbm::BernoulliRbm, Schedule};
use tch::{Device, Kind, Tensor};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let schedule = match std::env::args().nth(1) {
        Some(s) => Schedule::linear(s.parse()?)?,
        None => Schedule::salakhutdinov_murray(),
    };
    let device = Device::Cpu;
    tch::manual_seed(0);
    let opts = (Kind::Float, device);
    let (d, h, m) = (784, 500, 100);
    let w = Tensor::randn([d, h], opts) * 0.05;
    let p = Tensor::rand([d], opts) * 0.49 + 0.01;
    let b = BernoulliRbm::base_rate_biases(&p, 1e-3);
    let c = Tensor::full([h], -1.0, opts);
    let rbm = BernoulliRbm::new(w, b.copy(), c, b)?;
    let t = Instant::now();
    let est = ais::run(&rbm, &schedule, m)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "rust/tch ais: {} steps, {m} chains, {} threads: {secs:.2} s ({:.1} µs/step), log Z = {:.4} ± {:.4}, ESS {:.1}, peak RSS {:.0} MiB",
        schedule.steps(),
        tch::get_num_threads(),
        secs / schedule.steps() as f64 * 1e6,
        est.log_z,
        est.std_err,
        est.ess,
        peak_rss_mib()
    );
    Ok(())
}
