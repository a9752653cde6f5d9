//! Trains a small deep order-agnostic NADE on the 4×4 bars-and-stripes images, then fills in
//! the bottom half of each pattern from its top half and prints the exact conditional
//! log-probability of the true bottom half, single-ordering and ensemble NLLs.
//!
//! `cargo run --release -p gm-autoregressive --example deepnade_inpaint`

use gm_autoregressive::deepnade::{DeepNade, DeepNadeConfig};
use gm_core::config::RunConfig;
use gm_core::data;
use gm_core::model::{parse_params, BuildContext, Model};
use tch::{Device, Kind, Tensor};

fn main() -> gm_core::Result<()> {
    let cfg = RunConfig::from_toml_str(
        "seed = 0\n[model]\nname = \"deep-nade\"\nhidden = [128, 128]\nensemble_orderings = 8\n\
         [data]\ndataset = \"bars-and-stripes\"\n[optim]\nlr = 0.005\n",
    )?;
    let ds = data::load(&cfg.data.dataset, &cfg.data.options)?;
    tch::manual_seed(0);
    let params: DeepNadeConfig = parse_params("deep-nade", &cfg.model.params)?;
    let ctx = BuildContext {
        cfg: &cfg,
        data: &ds,
        device: Device::Cpu,
    };
    let mut m = DeepNade::new(params, &ctx)?;
    let x = ds.train.x.reshape([-1, 16]);
    for step in 0..=1500 {
        let loss = m.train_step(&gm_core::data::Batch::inputs(&x))?[0]
            .1
            .double_value(&[]);
        if step % 300 == 0 {
            println!("step {step:>4}: order-agnostic loss {loss:.3} nats");
        }
    }
    let patterns = gm_core::data::bars_and_stripes_patterns(4).reshape([-1, 16]);
    let single = -m
        .log_prob_ordering(&patterns, 0)
        .mean(Kind::Double)
        .double_value(&[]);
    let ens = -m
        .log_prob_ensemble(&patterns)
        .mean(Kind::Double)
        .double_value(&[]);
    println!(
        "NLL of the {} patterns: ordering 0 {single:.3}, ensemble of {} {ens:.3} (uniform: {:.3})",
        patterns.size()[0],
        m.num_orderings(),
        (patterns.size()[0] as f64).ln()
    );
    // Top two rows observed, bottom two missing.
    let observed = Tensor::ones([1, 16], (Kind::Float, Device::Cpu));
    let _ = observed.narrow(1, 8, 8).fill_(0.0);
    let observed = observed.repeat([patterns.size()[0], 1]);
    let lp = m.log_prob_missing(&patterns, &observed, m.ordering(0))?;
    let filled = m.sample_missing(&patterns, &observed, m.ordering(0))?;
    for i in 0..patterns.size()[0].min(6) {
        let show = |t: &Tensor| -> String {
            let v: Vec<f32> = Vec::try_from(t.get(i)).expect("f32 row");
            v.chunks(4)
                .map(|r| {
                    r.iter()
                        .map(|&b| if b > 0.5 { '#' } else { '.' })
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("/")
        };
        println!(
            "{}  ->  {}   log p(true bottom | top) = {:.3}",
            show(&patterns),
            show(&filled),
            lp.double_value(&[i])
        );
    }
    Ok(())
}
