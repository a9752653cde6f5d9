use super::*;
use crate::testutil::*;
use gm_core::model::{BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

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
    assert_round_trips(RealNvp::new, &CASES);
}

#[test]
fn the_log_determinant_is_that_of_the_autograd_jacobian() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    assert_log_dets_match_autograd(RealNvp::new, &CASES);
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

const TWO_MOONS: &str = "layers = 6\nhidden = [32, 32]";

#[test]
fn the_density_of_a_trained_2d_flow_integrates_to_one() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    assert_trained_density_integrates_to_one(flow_model, "realnvp", TWO_MOONS);
}

#[test]
fn a_trained_2d_flow_beats_a_fitted_gaussian_on_test_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let (m, data) = assert_trained_beats_a_fitted_gaussian(flow_model, "realnvp", TWO_MOONS);
    let density = m.figures(&data.test.x).unwrap().remove(0);
    let n = crate::flow::DENSITY_PIXELS;
    assert_eq!(density.images.size(), [1, 1, n, n]);
}

#[test]
fn bad_configs_are_one_error_naming_the_field() {
    let _rng = crate::test_rng_lock();
    assert_eq!(
        bad_config_field(RealNvp::new, "layers = 0", &[2]),
        "model.layers"
    );
    assert_eq!(
        bad_config_field(RealNvp::new, "hidden = [8, 0]", &[2]),
        "model.hidden"
    );
    assert_eq!(
        bad_config_field(RealNvp::new, "kernel = 2", &[1, 4, 4]),
        "model.kernel"
    );
    // Masks that do not split the input.
    assert_eq!(bad_config_field(RealNvp::new, "", &[1]), "model.mask");
    assert_eq!(
        bad_config_field(RealNvp::new, "mask = \"channel\"", &[1, 4, 4]),
        "model.mask"
    );
    assert_eq!(
        bad_config_field(RealNvp::new, "mask = \"halves\"", &[1, 4, 4]),
        "model.mask"
    );
    assert_eq!(
        bad_config_field(RealNvp::new, "mask = \"checkerboard\"", &[4]),
        "model.mask"
    );
    assert_eq!(
        bad_config_field(RealNvp::new, "scales = 3", &[1, 4, 4]),
        "model.scales"
    );
    assert_eq!(
        bad_config_field(RealNvp::new, "scales = 1", &[4]),
        "model.scales"
    );
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
