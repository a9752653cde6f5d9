use super::*;
use crate::flow::{Flow, FlowModel};
use crate::testutil::*;
use gm_core::model::{LikelihoodKind, Model};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// A perturbed MAF for examples shaped `shape`, with `params` over the defaults.
fn flow(shape: &[i64], params: &str) -> (VarStore, Maf) {
    let cfg: MafConfig = toml::from_str(params).unwrap();
    let vs = VarStore::new(Device::Cpu);
    let f = Maf::new(&vs.root(), &cfg, shape).unwrap();
    perturb(&vs);
    (vs, f)
}

const CASES: [(&[i64], &str); 3] = [
    (&[5], "layers = 3\nhidden = [16, 16]"),
    (&[2], "layers = 4\nhidden = [8]"),
    (&[1, 2, 3], "layers = 2\nhidden = [12]\nmask_seed = 7"),
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
        let ld = tch::no_grad(|| f.forward(&x).1);
        assert!(
            ld.abs().max().double_value(&[]) > 1e-3,
            "{params}: identity"
        );
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

/// One layer is autoregressive in its ordering (the natural one): ∂u_i/∂x_j = 0 for j > i
/// and some j < i matters; the second layer's ordering is reversed.
#[test]
fn each_layer_is_triangular_in_its_ordering_and_the_orders_alternate() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(5);
    let (mut vs, f) = flow(&[5], "layers = 2\nhidden = [16, 16]");
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

fn two_moons_flow(steps: usize) -> (FlowModel<Maf>, gm_core::data::Dataset) {
    let (cfg, data) = two_moons("maf", "layers = 5\nhidden = [32, 32]");
    (trained(flow_model, &cfg, &data, steps), data)
}

#[test]
fn the_density_of_a_trained_2d_flow_integrates_to_one() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    let (m, _) = two_moons_flow(300);
    let total = grid_integral(&m, 6.0, 500);
    eprintln!("∫ p over [−6, 6]² = {total:.5}");
    assert!((total - 1.0).abs() < 0.01, "∫ p = {total}");
}

#[test]
fn a_trained_2d_flow_beats_a_fitted_gaussian_on_test_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let (m, data) = two_moons_flow(600);
    let (cfg, _) = two_moons("maf", "");
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
}

#[test]
fn bad_configs_are_one_error_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let cfg = |t: &str| -> MafConfig { toml::from_str(t).unwrap() };
    let vs = VarStore::new(Device::Cpu);
    let new = |t: &str, shape: &[i64]| Maf::new(&vs.root(), &cfg(t), shape);
    assert_eq!(error_field(new("layers = 0", &[2])), "model.layers");
    assert_eq!(error_field(new("hidden = []", &[2])), "model.hidden");
    assert_eq!(error_field(new("hidden = [0]", &[2])), "model.hidden");
    assert_eq!(error_field(new("", &[1])), "data.dataset");
}
