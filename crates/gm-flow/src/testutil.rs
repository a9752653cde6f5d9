//! Checks shared by the flows' tests.

use crate::flow::{Flow, FlowModel};
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::model::{BuildContext, Model};
use gm_core::Error;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Sets every weight and bias of `vs` (not the tanh scales) to N(0, 0.3²) draws, so that
/// no layer is the identity it starts as.
pub fn perturb(vs: &VarStore) {
    gm_core::kit::randomize(vs, 0.3, |name, _| !name.ends_with("scale"));
}

/// max |f⁻¹(f(x)) − x| and max |f(f⁻¹(z)) − z| over `x` `[B, ..shape]`.
pub fn round_trip_errors(flow: &dyn Flow, x: &Tensor) -> (f64, f64) {
    tch::no_grad(|| {
        let (z, _) = flow.forward(x);
        let back = flow.inverse(&z);
        let e1 = (back - x).abs().max().double_value(&[]);
        let z2 = Tensor::randn_like(&z);
        let e2 = (flow.forward(&flow.inverse(&z2)).0 - &z2)
            .abs()
            .max()
            .double_value(&[]);
        (e1, e2)
    })
}

/// The Jacobian ∂z/∂x `[D, D]` of the flow at one example `x` `[1, ..shape]` (f64), built
/// row by row with autograd.
pub fn jacobian(flow: &dyn Flow, x: &Tensor) -> Tensor {
    let x = x.detach().set_requires_grad(true);
    let (z, _) = flow.forward(&x);
    let d = z.size()[1];
    let rows: Vec<Tensor> = (0..d)
        .map(|i| {
            let g = Tensor::run_backward(&[z.get(0).get(i)], &[&x], true, false);
            g[0].reshape([-1])
        })
        .collect();
    Tensor::stack(&rows, 0)
}

/// |log |det J| − the flow's log-determinant| at one example `x` `[1, ..shape]` (f64).
pub fn log_det_error(flow: &dyn Flow, x: &Tensor) -> f64 {
    let j = jacobian(flow, x);
    let (_, logabs) = j.slogdet();
    let (_, ld) = tch::no_grad(|| flow.forward(x));
    (logabs - ld.get(0)).abs().double_value(&[])
}

/// The run config of `model` with `params` on two-moons (2,000 training examples).
pub fn two_moons(model: &str, params: &str) -> (RunConfig, Dataset) {
    let cfg = RunConfig::from_toml_str(&format!(
        "seed = 1\n[model]\nname = \"{model}\"\n{params}\n[data]\ndataset = \"two-moons\"\n\
         synthetic_size = 2000\n[optim]\nlr = 0.005\n"
    ))
    .unwrap();
    let data = data::load(&cfg.data.dataset, &cfg.data.options).unwrap();
    (cfg, data)
}

/// The model `make` builds on `cfg` and `data`, trained for `steps` steps on random
/// batches of 256.
pub fn trained<F: Flow>(
    make: fn(&BuildContext<'_>) -> gm_core::Result<FlowModel<F>>,
    cfg: &RunConfig,
    data: &Dataset,
    steps: usize,
) -> FlowModel<F> {
    let ctx = BuildContext {
        cfg,
        data,
        device: Device::Cpu,
    };
    let mut m = make(&ctx).unwrap();
    let n = data.train.len();
    for _ in 0..steps {
        let idx = Tensor::randint(n, [256], (Kind::Int64, Device::Cpu));
        m.train_step(&Batch::inputs(&data.train.x.index_select(0, &idx)))
            .unwrap();
    }
    m
}

/// Mean test log-likelihood of the Gaussian fitted (maximum likelihood) to the training
/// split of 2-D data, in closed form (f64).
pub fn fitted_gaussian_test_ll(data: &Dataset) -> f64 {
    let x = data.train.x.to_kind(Kind::Double);
    let mu = x.mean_dim(0, true, Kind::Double);
    let c = &x - &mu;
    let cov = c.tr().matmul(&c) / x.size()[0] as f64;
    let t = data.test.x.to_kind(Kind::Double) - &mu;
    let maha = (t.matmul(&cov.inverse()) * &t).sum_dim_intlist(1, false, Kind::Double);
    let logdet = cov.det().log();
    let lp = maha * -0.5 - logdet * 0.5 - (2.0 * std::f64::consts::PI).ln();
    lp.mean(Kind::Double).double_value(&[])
}

/// ∫ p(x) dx of a 2-D flow over [−r, r]² by the midpoint rule on an n × n grid.
pub fn grid_integral<F: Flow>(m: &FlowModel<F>, r: f64, n: i64) -> f64 {
    let h = 2.0 * r / n as f64;
    let c = Tensor::arange(n, (Kind::Double, Device::Cpu)) * h + (h / 2.0 - r);
    let xs = c.unsqueeze(1).expand([n, n], false);
    let ys = c.unsqueeze(0).expand([n, n], false);
    let pts = Tensor::stack(&[xs, ys], 2)
        .reshape([n * n, 2])
        .to_kind(Kind::Float);
    let lp = tch::no_grad(|| m.log_prob(&pts)).to_kind(Kind::Double);
    lp.exp().sum(Kind::Double).double_value(&[]) * h * h
}

/// The field a config error names, or a panic saying what came instead.
pub fn error_field<T>(r: gm_core::Result<T>) -> String {
    match r {
        Err(Error::Config { field, .. }) => field,
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("expected a config error, got a model"),
    }
}
