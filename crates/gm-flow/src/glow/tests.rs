use super::*;
use crate::flow::Flow;
use crate::testutil::*;
use gm_core::model::Model;
use tch::{Device, Kind, Tensor};

const CASES: [(&[i64], &str); 4] = [
    (&[2], "steps = 3\nhidden = [8]"),
    (&[5], "steps = 2\nhidden = [16, 16]"),
    (
        &[1, 4, 4],
        "scales = 2\nsteps = 1\nchannels = [6]\nkernel = 1",
    ),
    (
        &[2, 2, 6],
        "scales = 1\nsteps = 2\nchannels = [4, 4]\nkernel = 1",
    ),
];

#[test]
fn the_inverse_undoes_the_forward_map() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    assert_round_trips(Glow::new, &CASES);
}

#[test]
fn the_log_determinant_is_that_of_the_autograd_jacobian() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    assert_log_dets_match_autograd(Glow::new, &CASES);
}

/// The 1×1 convolution starts as a rotation (W Wᵀ = I, from its LU factors), and actnorm's
/// data-dependent start leaves every channel with mean 0 and variance 1 over the batch and
/// positions.
#[test]
fn the_invertible_convolution_starts_as_a_rotation_and_actnorm_standardises() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let conv = InvConv::new(&(vs.root() / "conv"), 5);
    let w = conv.weight();
    let err = (w.matmul(&w.tr()) - Tensor::eye(5, tch::kind::FLOAT_CPU))
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-5, "W Wᵀ − I: {err}");
    let norm = ActNorm::new(&(vs.root() / "norm"), 3);
    let x = Tensor::randn([64, 3, 5, 5], tch::kind::FLOAT_CPU) * 4.0 + 2.5;
    norm.init(&x).unwrap();
    let (y, ld) = norm.forward(&x);
    let mean = y.mean_dim(&[0i64, 2, 3][..], false, Kind::Float);
    let std = y.std_dim(&[0i64, 2, 3][..], false, false);
    let worst = |t: Tensor| t.abs().max().double_value(&[]);
    assert!(worst(mean) < 1e-4 && worst(std - 1.0) < 1e-4);
    // log |det| = H·W·Σ s with e^s = 1 / std: about −25 · 3 · ln 4.
    let want = -25.0
        * x.std_dim(&[0i64, 2, 3][..], false, false)
            .log()
            .sum(Kind::Float)
            .double_value(&[]);
    let got = ld.double_value(&[0]);
    assert!((got - want).abs() < 1e-2, "log det {got} vs {want}");
}

/// The first training step sets actnorm from its batch (the model then standardises it);
/// later steps do not.
#[test]
fn actnorm_is_set_from_the_first_training_batch_only() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let (cfg, data) = two_moons("glow", "steps = 2\nhidden = [8]");
    let ctx = gm_core::model::BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    };
    let mut m = flow_model(&ctx).unwrap();
    let x = data.train.x.narrow(0, 0, 256);
    let bias = |m: &crate::flow::FlowModel<Glow>| m.flow().first_actnorm().bias.copy();
    let before = bias(&m);
    assert_eq!(before.abs().max().double_value(&[]), 0.0);
    gm_core::model::Model::train_step(&mut m, &gm_core::data::Batch::inputs(&x)).unwrap();
    let set = bias(&m);
    let want = -x.mean_dim(0, false, Kind::Float);
    assert!(set.allclose(&want, 1e-2, 1e-2, false), "{set} vs {want}");
    let x2 = data.train.x.narrow(0, 256, 256) * 3.0;
    gm_core::model::Model::train_step(&mut m, &gm_core::data::Batch::inputs(&x2)).unwrap();
    let after = bias(&m);
    assert!((after - &set).abs().max().double_value(&[]) < 0.05);
}

const TWO_MOONS: &str = "steps = 6\nhidden = [32, 32]";

#[test]
fn the_density_of_a_trained_2d_flow_integrates_to_one() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(4);
    assert_trained_density_integrates_to_one(flow_model, "glow", TWO_MOONS);
}

#[test]
fn a_trained_2d_flow_beats_a_fitted_gaussian_on_test_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(5);
    assert_trained_beats_a_fitted_gaussian(flow_model, "glow", TWO_MOONS);
}

#[test]
fn bad_configs_are_one_error_naming_the_field() {
    let _rng = crate::test_rng_lock();
    for (params, shape, field) in [
        ("scales = 0", &[2][..], "model.scales"),
        ("steps = 0", &[2][..], "model.steps"),
        ("kernel = 2", &[1, 4, 4][..], "model.kernel"),
        ("hidden = [0]", &[2][..], "model.hidden"),
        ("scales = 2", &[2][..], "model.scales"),
        ("scales = 3", &[1, 28, 28][..], "model.scales"),
        ("", &[1][..], "data.dataset"),
    ] {
        assert_eq!(
            bad_config_field(Glow::new, params, shape),
            field,
            "{params}"
        );
    }
}

/// `temperature = T` samples z ~ N(0, T² I): the codes of the samples (the forward map
/// of what the inverse made) have standard deviation T; T ≤ 0 is refused.
#[test]
fn samples_at_a_temperature_have_codes_of_that_scale() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(6);
    for t in [1.0, 0.6] {
        let (cfg, data) = two_moons("glow", &format!("{TWO_MOONS}\ntemperature = {t}"));
        let m = trained(flow_model, &cfg, &data, 20);
        let x = m.sample(20_000).unwrap();
        let (z, _) = tch::no_grad(|| m.flow().forward(&x));
        let sd = z.std(true).double_value(&[]);
        assert!((sd - t).abs() < 0.02, "T = {t}: sd of the codes {sd}");
    }
    let (cfg, data) = two_moons("glow", &format!("{TWO_MOONS}\ntemperature = 0.0"));
    let ctx = gm_core::model::BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    };
    match flow_model(&ctx) {
        Err(gm_core::Error::Config { field, .. }) => assert_eq!(field, "model.temperature"),
        _ => panic!("temperature 0 accepted"),
    }
}
