//! Checks shared by the flows' tests.

use crate::flow::{Flow, FlowConfig, FlowModel, NewFlow};
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::model::LikelihoodKind;
use gm_core::model::{BuildContext, Model};
use gm_core::Error;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// The flow `new` builds for examples shaped `shape` with the TOML `params` over the
/// defaults, every trainable weight and bias (not the tanh scales; fixed tensors such as
/// Glow's permutation stay) set to N(0, 0.3²) draws so that no layer is the identity it
/// starts as.
pub fn perturbed<C: FlowConfig, F: Flow>(
    new: NewFlow<C, F>,
    shape: &[i64],
    params: &str,
) -> (VarStore, F) {
    let cfg: C = toml::from_str(params).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let f = new(&vs.root(), &cfg, shape).unwrap();
    gm_core::kit::randomize(&vs, 0.3, |name, t| {
        !name.ends_with("scale") && t.requires_grad()
    });
    (vs, f)
}

/// `[B, ..shape]`.
fn batch_shape(b: i64, shape: &[i64]) -> Vec<i64> {
    let mut s = vec![b];
    s.extend_from_slice(shape);
    s
}

/// For each `(shape, params)`: the perturbed flow moves its inputs, and its inverse undoes
/// the forward map (both ways) to 1e-5 in f32.
pub fn assert_round_trips<C: FlowConfig, F: Flow>(new: NewFlow<C, F>, cases: &[(&[i64], &str)]) {
    for &(shape, params) in cases {
        let (_vs, f) = perturbed(new, shape, params);
        let x = Tensor::randn(batch_shape(6, shape).as_slice(), (Kind::Float, Device::Cpu));
        let (z, ld) = tch::no_grad(|| f.forward(&x));
        assert!(
            ld.abs().max().double_value(&[]) > 1e-3,
            "{params}: identity"
        );
        assert_eq!(z.size(), [6, shape.iter().product::<i64>()]);
        let (e1, e2) = round_trip_errors(&f, &x);
        eprintln!("{shape:?}: max |f⁻¹(f(x)) − x| = {e1:.2e}, max |f(f⁻¹(z)) − z| = {e2:.2e}");
        assert!(e1 < 1e-5 && e2 < 1e-5, "{shape:?} {params}: {e1} {e2}");
    }
}

/// For each `(shape, params)`: the perturbed flow's log-determinant at one example equals
/// log |det| of its autograd Jacobian, in f64, to 1e-9.
pub fn assert_log_dets_match_autograd<C: FlowConfig, F: Flow>(
    new: NewFlow<C, F>,
    cases: &[(&[i64], &str)],
) {
    for &(shape, params) in cases {
        let (mut vs, f) = perturbed(new, shape, params);
        vs.double();
        let x = Tensor::randn(
            batch_shape(1, shape).as_slice(),
            (Kind::Double, Device::Cpu),
        );
        let err = log_det_error(&f, &x);
        eprintln!("{shape:?}: |log det − log |det J|| = {err:.2e}");
        assert!(err < 1e-9, "{shape:?} {params}: |log det error| {err}");
    }
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

/// The density of `model` (`params`) trained 300 steps on two-moons integrates to 1 within
/// 0.01 by the midpoint rule on [−6, 6]² with 500² cells (side 0.024, a quarter of the
/// data's noise).
pub fn assert_trained_density_integrates_to_one<F: Flow>(
    make: fn(&BuildContext<'_>) -> gm_core::Result<FlowModel<F>>,
    model: &str,
    params: &str,
) {
    let (cfg, data) = two_moons(model, params);
    let m = trained(make, &cfg, &data, 300);
    let total = grid_integral(&m, 6.0, 500);
    eprintln!("{model}: ∫ p over [−6, 6]² = {total:.5}");
    assert!((total - 1.0).abs() < 0.01, "∫ p = {total}");
}

/// `model` (`params`) trained 600 steps on two-moons has an exact test log-likelihood at
/// least 0.3 nats above the fitted Gaussian's; returns the trained model.
pub fn assert_trained_beats_a_fitted_gaussian<F: Flow>(
    make: fn(&BuildContext<'_>) -> gm_core::Result<FlowModel<F>>,
    model: &str,
    params: &str,
) -> (FlowModel<F>, Dataset) {
    let (cfg, data) = two_moons(model, params);
    let m = trained(make, &cfg, &data, 600);
    let ll = m.log_likelihoods(&data.test.x, &cfg).unwrap().remove(0);
    assert_eq!(ll.kind, LikelihoodKind::Exact);
    let gauss = fitted_gaussian_test_ll(&data);
    eprintln!(
        "{model}: test log-likelihood {:.4} ± {:.4}, fitted Gaussian {gauss:.4}",
        ll.mean, ll.std_err
    );
    assert!(
        ll.mean > gauss + 0.3,
        "flow {} vs Gaussian {gauss}",
        ll.mean
    );
    (m, data)
}

/// The field named by the config error of building `new` with the TOML `params` for
/// examples shaped `shape`, or a panic saying what came instead.
pub fn bad_config_field<C: FlowConfig, F: Flow>(
    new: NewFlow<C, F>,
    params: &str,
    shape: &[i64],
) -> String {
    let cfg: C = toml::from_str(params).unwrap();
    let vs = VarStore::new(Device::Cpu);
    match new(&vs.root(), &cfg, shape) {
        Err(Error::Config { field, .. }) => field,
        Err(e) => panic!("expected a config error, got {e}"),
        Ok(_) => panic!("expected a config error, got a model"),
    }
}
