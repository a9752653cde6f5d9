use super::*;
use crate::flow::{Flow, FlowModel};
use crate::testutil::*;
use gm_core::model::{BuildContext, LikelihoodKind, Model};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// A perturbed RealNVP for examples shaped `shape`, with `params` over the defaults.
fn flow(shape: &[i64], params: &str) -> (VarStore, RealNvp) {
    let cfg: RealNvpConfig = toml::from_str(params).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let f = RealNvp::new(&vs.root(), &cfg, shape).unwrap();
    perturb(&vs);
    (vs, f)
}

/// Vectors, single-scale checkerboard and channel images, and the multiscale form.
const CASES: [(&[i64], &str); 4] = [
    (&[5], "layers = 4\nhidden = [8]"),
    (&[1, 4, 4], "layers = 3\nchannels = [4]"),
    (&[2, 2, 2], "layers = 3\nchannels = [4]\nmask = \"channel\""),
    (
        &[1, 4, 4],
        "layers = 2\nchannels = [4]\nscales = 1\nper_scale = 2",
    ),
];

#[test]
fn the_inverse_undoes_the_forward_map() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    for (shape, params) in CASES {
        let (_vs, f) = flow(shape, params);
        let mut s = vec![6];
        s.extend_from_slice(shape);
        let x = Tensor::randn(s.as_slice(), (Kind::Float, Device::Cpu));
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

#[test]
fn the_log_determinant_is_that_of_the_autograd_jacobian() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    for (shape, params) in CASES {
        let (mut vs, f) = flow(shape, params);
        vs.double();
        let mut s = vec![1];
        s.extend_from_slice(shape);
        let x = Tensor::randn(s.as_slice(), (Kind::Double, Device::Cpu));
        let err = log_det_error(&f, &x);
        eprintln!("{shape:?}: |log det − log |det J|| = {err:.2e}");
        assert!(err < 1e-9, "{shape:?} {params}: |log det error| {err}");
    }
}

#[test]
fn squeeze_and_unsqueeze_are_inverse_and_move_2x2_blocks_to_channels() {
    let x = Tensor::arange(16, (Kind::Float, Device::Cpu)).view([1, 1, 4, 4]);
    let s = squeeze(&x);
    assert_eq!(s.size(), [1, 4, 2, 2]);
    // Channel 0 holds the top-left pixel of each block, channel 3 the bottom-right.
    let got: Vec<f32> = Vec::try_from(s.get(0).get(0).reshape([-1])).unwrap();
    assert_eq!(got, [0.0, 2.0, 8.0, 10.0]);
    let got: Vec<f32> = Vec::try_from(s.get(0).get(3).reshape([-1])).unwrap();
    assert_eq!(got, [5.0, 7.0, 13.0, 15.0]);
    assert!(unsqueeze(&s).equal(&x));
}

fn two_moons_flow(steps: usize) -> (FlowModel<RealNvp>, gm_core::data::Dataset) {
    let (cfg, data) = two_moons("realnvp", "layers = 6\nhidden = [32, 32]");
    (trained(flow_model, &cfg, &data, steps), data)
}

#[test]
fn the_density_of_a_trained_2d_flow_integrates_to_one() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    let (m, _) = two_moons_flow(300);
    // Midpoint rule on [−6, 6]² with 500² cells (side 0.024, a quarter of the data's noise).
    let total = grid_integral(&m, 6.0, 500);
    eprintln!("∫ p over [−6, 6]² = {total:.5}");
    assert!((total - 1.0).abs() < 0.01, "∫ p = {total}");
}

#[test]
fn a_trained_2d_flow_beats_a_fitted_gaussian_on_test_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let (m, data) = two_moons_flow(600);
    let (cfg, _) = two_moons("realnvp", "");
    let ll = m.log_likelihoods(&data.test.x, &cfg).unwrap().remove(0);
    assert_eq!(ll.kind, LikelihoodKind::Exact);
    let gauss = fitted_gaussian_test_ll(&data);
    eprintln!(
        "test log-likelihood: flow {:.4} ± {:.4}, fitted Gaussian {gauss:.4}",
        ll.mean, ll.std_err
    );
    assert!(
        ll.mean > gauss + 0.3,
        "flow {} vs Gaussian {gauss}",
        ll.mean
    );
    let density = m.figures(&data.test.x).unwrap().remove(0);
    assert_eq!(density.images.size(), [1, 1, 128, 128]);
}

#[test]
fn bad_configs_are_one_error_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let cfg = |t: &str| -> RealNvpConfig { toml::from_str(t).unwrap() };
    let vs = VarStore::new(Device::Cpu);
    let new = |t: &str, shape: &[i64]| RealNvp::new(&vs.root(), &cfg(t), shape);
    assert_eq!(error_field(new("layers = 0", &[2])), "model.layers");
    assert_eq!(error_field(new("hidden = [8, 0]", &[2])), "model.hidden");
    assert_eq!(error_field(new("kernel = 2", &[1, 4, 4])), "model.kernel");
    // Masks that do not split the input.
    assert_eq!(error_field(new("", &[1])), "model.mask");
    assert_eq!(
        error_field(new("mask = \"channel\"", &[1, 4, 4])),
        "model.mask"
    );
    assert_eq!(
        error_field(new("mask = \"halves\"", &[1, 4, 4])),
        "model.mask"
    );
    assert_eq!(
        error_field(new("mask = \"checkerboard\"", &[4])),
        "model.mask"
    );
    assert_eq!(error_field(new("scales = 3", &[1, 4, 4])), "model.scales");
    assert_eq!(error_field(new("scales = 1", &[4])), "model.scales");
}

/// On images the reported value is a lower bound on the discrete log-likelihood: for the
/// untrained flow (the identity, no logit) it is Σ log N(y_i) − D ln 256 with each y_i in
/// its pixel's cube [k/256, (k+1)/256), so it lies between the cube-end values.
#[test]
fn image_likelihoods_are_the_dequantized_bound_in_nats_and_bits_per_dim() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(4);
    let k = Tensor::randint(256, [32, 16], (Kind::Int64, Device::Cpu)).to_kind(Kind::Double);
    let mut data = gm_core::kit::rows_dataset(&(&k / 255.0), false);
    for s in [&mut data.train, &mut data.valid, &mut data.test] {
        s.x = s.x.view([32, 1, 4, 4]);
    }
    data.shape = vec![1, 4, 4];
    data.is_image = true;
    let cfg = gm_core::config::RunConfig::from_toml_str(
        "[model]\nname = \"realnvp\"\nlayers = 2\nchannels = [4]\nlogit_alpha = 0.0\n[data]\ndataset = \"mnist\"",
    )
    .unwrap();
    let ctx = BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    };
    let m = flow_model(&ctx).unwrap();
    let ll = m.log_likelihoods(&data.test.x, &cfg).unwrap().remove(0);
    assert_eq!(ll.kind, LikelihoodKind::LowerBound);
    let log_n = |y: Tensor| {
        (y.square() * -0.5).sum(Kind::Double) / 32.0
            - 16.0 * 0.5 * (2.0 * std::f64::consts::PI).ln()
    };
    let offset = -16.0 * 256f64.ln();
    let (a, b) = (
        log_n(&k / 256.0).double_value(&[]),
        log_n((&k + 1.0) / 256.0).double_value(&[]),
    );
    let (lo, hi) = (a.min(b) + offset, a.max(b) + offset);
    assert!(
        lo <= ll.mean && ll.mean <= hi,
        "{lo} <= {} <= {hi}",
        ll.mean
    );
    let bpd = ll.settings["bits_per_dim"].as_f64().unwrap();
    approx_eq(bpd, -ll.mean / (16.0 * std::f64::consts::LN_2));
    let s = m.sample(3).unwrap();
    assert_eq!(s.size(), [3, 1, 4, 4]);
    assert!(s.min().double_value(&[]) >= 0.0 && s.max().double_value(&[]) <= 1.0);
}

fn approx_eq(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9 * b.abs().max(1.0), "{a} vs {b}");
}
