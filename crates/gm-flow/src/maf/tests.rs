use super::*;
use crate::testutil::*;
use tch::{Device, Kind, Tensor};

const CASES: [(&[i64], &str); 3] = [
    (&[5], "layers = 3\nhidden = [16, 16]"),
    (&[2], "layers = 4\nhidden = [8]"),
    (&[1, 2, 3], "layers = 2\nhidden = [12]\nmask_seed = 7"),
];

#[test]
fn the_inverse_undoes_the_forward_map() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    assert_round_trips(Maf::new, &CASES);
}

#[test]
fn the_log_determinant_is_that_of_the_autograd_jacobian() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    assert_log_dets_match_autograd(Maf::new, &CASES);
}

/// One layer is autoregressive in its ordering (the natural one): ∂u_i/∂x_j = 0 for j > i
/// and some j < i matters; the second layer's ordering is reversed.
#[test]
fn each_layer_is_triangular_in_its_ordering_and_the_orders_alternate() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(5);
    let (mut vs, f) = perturbed(Maf::new, &[5], "layers = 2\nhidden = [16, 16]");
    vs.double();
    let x = Tensor::randn([1, 5], (Kind::Double, Device::Cpu));
    let j0 = jacobian(&f.layers()[0], &x);
    let upper = j0.triu(1);
    assert_eq!(upper.abs().max().double_value(&[]), 0.0, "{j0}");
    assert!(j0.tril(-1).abs().max().double_value(&[]) > 1e-6, "{j0}");
    let j1 = jacobian(&f.layers()[1], &x);
    assert_eq!(j1.tril(-1).abs().max().double_value(&[]), 0.0, "{j1}");
    assert!(j1.triu(1).abs().max().double_value(&[]) > 1e-6, "{j1}");
}

const TWO_MOONS: &str = "layers = 5\nhidden = [32, 32]";

#[test]
fn the_density_of_a_trained_2d_flow_integrates_to_one() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    assert_trained_density_integrates_to_one(flow_model, "maf", TWO_MOONS);
}

#[test]
fn a_trained_2d_flow_beats_a_fitted_gaussian_on_test_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    assert_trained_beats_a_fitted_gaussian(flow_model, "maf", TWO_MOONS);
}

#[test]
fn bad_configs_are_one_error_naming_the_field() {
    let _rng = crate::test_rng_lock();
    assert_eq!(
        bad_config_field(Maf::new, "layers = 0", &[2]),
        "model.layers"
    );
    assert_eq!(
        bad_config_field(Maf::new, "hidden = []", &[2]),
        "model.hidden"
    );
    assert_eq!(
        bad_config_field(Maf::new, "hidden = [0]", &[2]),
        "model.hidden"
    );
    assert_eq!(bad_config_field(Maf::new, "", &[1]), "data.dataset");
}
