//! Checks shared by the models' tests.

use crate::common::{all_binary_vectors, empirical_distribution, total_variation, Autoregressive};
use gm_core::config::RunConfig;
use gm_core::data::{self, Dataset};
use gm_core::model::Model;
use tch::{Device, Kind, Tensor};

pub fn cfg(
    model: &str,
    extra_model: &str,
    dataset: &str,
    data_extra: &str,
    optim: &str,
) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 3\n[model]\nname = \"{model}\"\n{extra_model}\n[data]\ndataset = \"{dataset}\"\n{data_extra}\n[optim]\n{optim}\n"
    ))
    .unwrap()
}

pub fn load(c: &RunConfig) -> Dataset {
    data::load(&c.data.dataset, &c.data.options).unwrap()
}

/// A dataset of given binary or real rows `[N, D]` (train = valid = test).
pub fn dataset_of(x: &Tensor, binary: bool) -> Dataset {
    gm_core::kit::rows_dataset(x, binary)
}

/// Every binary row of length `d`, as a dataset (train = valid = test).
pub fn binary_rows(d: i64) -> Dataset {
    dataset_of(&all_binary_vectors(d, Device::Cpu), true)
}

/// The model's exact distribution over all 2^d states (f64 `[2^d]`).
pub fn exact_distribution(m: &dyn Autoregressive) -> Tensor {
    let x = all_binary_vectors(m.dim(), Device::Cpu);
    tch::no_grad(|| m.log_prob(&x)).to_kind(Kind::Double).exp()
}

/// Σ_x p(x) over every binary x is 1.
pub fn assert_sums_to_one(m: &dyn Autoregressive) {
    let total = exact_distribution(m).sum(Kind::Double).double_value(&[]);
    assert!(
        (total - 1.0).abs() < 1e-5,
        "probabilities of all 2^{} states sum to {total}",
        m.dim()
    );
}

/// For ordered outputs `out(x)` `[B, D]` (output `i` is the conditional of variable
/// `order[i]`), the gradient of output `i` with respect to every input `order[j]`, `j ≥ i`,
/// is exactly zero; and some earlier input does matter (the check can see a dependency).
pub fn assert_autoregressive(out: impl Fn(&Tensor) -> Tensor, order: &[i64]) {
    let d = order.len() as i64;
    let x = Tensor::randn([3, d], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let mut some_dependency = false;
    for i in 0..d {
        let y = out(&x).select(1, i).sum(Kind::Float);
        let g = Tensor::run_backward(&[y], &[&x], false, false)
            .pop()
            .unwrap()
            .abs()
            .sum_dim_intlist(0, false, Kind::Float);
        let g: Vec<f32> = Vec::try_from(g).unwrap();
        for (j, &var) in order.iter().enumerate() {
            let gj = g[var as usize];
            if j as i64 >= i {
                assert!(
                    gj == 0.0,
                    "output {i} (variable {}) depends on variable {var} (step {j}): |grad| {gj}",
                    order[i as usize]
                );
            } else if gj > 0.0 {
                some_dependency = true;
            }
        }
    }
    assert!(
        d < 2 || some_dependency,
        "no output depends on anything: the check is vacuous"
    );
}

/// `steps` full-batch training steps on `x`.
pub fn train(m: &mut dyn Model, x: &Tensor, steps: usize) -> f64 {
    let mut last = f64::NAN;
    for _ in 0..steps {
        last = m.train_step(&gm_core::data::Batch::inputs(x)).unwrap()[0]
            .1
            .double_value(&[]);
    }
    last
}

/// Samples of `m` match its exact distribution within `bound` in total variation; returns
/// the distance.
pub fn assert_samples_match(m: &dyn Autoregressive, n: i64, bound: f64) -> f64 {
    let _rng = gm_core::rng_guard::seeded(11);
    let s = tch::no_grad(|| m.sample_flat(n));
    assert_eq!(s.size(), vec![n, m.dim()]);
    let emp = empirical_distribution(&s);
    let exact = exact_distribution(m);
    let tv = total_variation(&emp, &exact);
    assert!(
        tv < bound,
        "samples vs the model's exact distribution: TV {tv} ≥ {bound}"
    );
    tv
}

/// The error of a config check names `field`.
pub fn assert_config_error<T>(r: gm_core::Result<T>, field: &str) {
    match r {
        Err(gm_core::Error::Config { field: f, .. }) => assert_eq!(f, field),
        Err(other) => panic!("expected a config error on {field}, got {other}"),
        Ok(_) => panic!("expected a config error on {field}, got a model"),
    }
}
