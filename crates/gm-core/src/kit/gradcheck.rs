//! Hand-written gradients against autograd, for the models' tests (in f64).

use tch::Tensor;

/// The gradients of the scalar `loss` with respect to `params`, by autograd.
pub fn autograd(loss: &Tensor, params: &[&Tensor]) -> Vec<Tensor> {
    Tensor::run_backward(&[loss], params, false, false)
}

/// Each hand-written gradient equals the autograd one within `rel_tol · max(scale, 1)`,
/// `scale` the largest autograd entry, and `scale > min_scale` (a vanishing gradient would
/// make the comparison empty). Panics naming `context` and the parameter otherwise; returns
/// the largest difference.
pub fn assert_gradients_match(
    context: &str,
    names: &[&str],
    hand: &[Tensor],
    auto: &[Tensor],
    rel_tol: f64,
    min_scale: f64,
) -> f64 {
    assert_eq!(names.len(), hand.len(), "{context}: one name per gradient");
    assert_eq!(
        hand.len(),
        auto.len(),
        "{context}: as many gradients each way"
    );
    let mut worst = 0.0f64;
    for (name, (h, a)) in names.iter().zip(hand.iter().zip(auto)) {
        let err = (h - a).abs().max().double_value(&[]);
        let scale = a.abs().max().double_value(&[]);
        assert!(
            err < rel_tol * scale.max(1.0),
            "{context}: hand and autograd gradients of {name} differ by {err} (scale {scale})"
        );
        assert!(
            scale > min_scale,
            "{context}: the gradient of {name} vanishes (scale {scale}), the check would be empty"
        );
        worst = worst.max(err);
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn a_right_gradient_passes_and_a_wrong_one_fails() {
        let w = Tensor::from_slice(&[0.5f64, -1.5, 2.0]).set_requires_grad(true);
        let loss = (&w * &w).sum(Kind::Double); // d/dw = 2w
        let auto = autograd(&loss, &[&w]);
        let hand = [w.detach() * 2.0];
        assert_eq!(
            assert_gradients_match("x²", &["w"], &hand, &auto, 1e-12, 1e-3),
            0.0
        );
        let wrong = [w.detach() * 2.0 + Tensor::from_slice(&[0.0f64, 1e-6, 0.0])];
        let r = std::panic::catch_unwind(|| {
            assert_gradients_match("x²", &["w"], &wrong, &auto, 1e-9, 1e-3)
        });
        assert!(
            r.is_err(),
            "a gradient off by 1e-6 passed at tolerance 1e-9"
        );
        let zero = [Tensor::zeros([3], (Kind::Double, Device::Cpu))];
        let r = std::panic::catch_unwind(|| {
            assert_gradients_match("0", &["w"], &zero, &zero, 1e-9, 1e-3)
        });
        assert!(r.is_err(), "a vanishing gradient passed");
    }
}
