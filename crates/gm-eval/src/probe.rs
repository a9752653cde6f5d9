//! A linear probe: multinomial logistic regression trained on fixed features of the
//! training split, and its classification error on another split — how much class
//! information a model's representation (a DBM's mean-field posteriors, a VAE's codes)
//! holds in a linearly readable form.
//!
//! Features are standardised with the training split's mean and standard deviation; the
//! weights start at zero and are trained by Adam on minibatches in a seeded order with a
//! small L2 penalty, so the result is a function of the features and the seed alone.

use gm_core::config::OptimConfig;
use gm_core::data::epoch_order;
use gm_core::optim::Optimizer;
use gm_core::{Error, Result};
use tch::nn::{Init, VarStore};
use tch::{Kind, Tensor};

/// Settings of [`linear_probe`].
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Passes over the training features.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: i64,
    /// Adam's learning rate.
    pub lr: f64,
    /// L2 penalty ½·λ‖W‖² (not the biases), per example.
    pub weight_decay: f64,
    /// Seed of the minibatch order.
    pub seed: u64,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            epochs: 30,
            batch_size: 500,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
        }
    }
}

/// What [`linear_probe`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// Fraction of the test examples classified wrongly.
    pub error: f64,
    /// Its binomial standard error √(e(1 − e)/n).
    pub std_err: f64,
    /// Test examples.
    pub n: i64,
    /// Fraction of the training examples classified wrongly (a fit check).
    pub train_error: f64,
}

/// Trains a softmax regression on `train` (features `[N, F]`, labels `[N]` in
/// `0..classes`) and measures it on `test`. An error when shapes or labels do not fit.
pub fn linear_probe(
    train: (&Tensor, &Tensor),
    test: (&Tensor, &Tensor),
    classes: i64,
    opts: &ProbeOptions,
) -> Result<ProbeResult> {
    check("train", train, classes)?;
    check("test", test, classes)?;
    let f = train.0.size()[1];
    if test.0.size()[1] != f {
        return Err(Error::Msg(format!(
            "linear probe: test features have {} columns, training features {f}",
            test.0.size()[1]
        )));
    }
    let x = train.0.to_kind(Kind::Float);
    let mean = x.mean_dim(0, true, Kind::Float);
    let std = x.std_dim(0, false, true).clamp_min(1e-6);
    let scale = |t: &Tensor| (t.to_kind(Kind::Float) - &mean) / &std;
    let vs = VarStore::new(x.device());
    let w = vs.root().var("w", &[f, classes], Init::Const(0.0));
    let b = vs.root().var("b", &[classes], Init::Const(0.0));
    let mut opt = Optimizer::new(
        &vs,
        &OptimConfig {
            lr: opts.lr,
            ..Default::default()
        },
    )?;
    let (xs, y) = (scale(&x), train.1.to_device(x.device()));
    let n = xs.size()[0];
    for epoch in 0..opts.epochs {
        let order =
            Tensor::from_slice(&epoch_order(n, true, opts.seed, epoch)).to_device(x.device());
        let mut s = 0;
        while s < n {
            let idx = order.narrow(0, s, opts.batch_size.min(n - s));
            let logits = b.addmm(&xs.index_select(0, &idx), &w);
            let loss = logits.cross_entropy_for_logits(&y.index_select(0, &idx))
                + w.square().sum(Kind::Float) * (0.5 * opts.weight_decay);
            opt.backward_step(&loss)?;
            s += idx.size()[0];
        }
    }
    let error_of = |x: &Tensor, y: &Tensor| -> f64 {
        tch::no_grad(|| {
            let pred = b.addmm(x, &w).argmax(1, false);
            pred.ne_tensor(&y.to_device(pred.device()))
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[])
        })
    };
    let train_error = error_of(&xs, &y);
    let error = error_of(&scale(test.0), test.1);
    let m = test.0.size()[0];
    Ok(ProbeResult {
        error,
        std_err: (error * (1.0 - error) / m as f64).sqrt(),
        n: m,
        train_error,
    })
}

/// Features `[N, F]` with labels `[N]` in `0..classes`, N > 0.
fn check(what: &str, (x, y): (&Tensor, &Tensor), classes: i64) -> Result<()> {
    let (xs, ys) = (x.size(), y.size());
    if xs.len() != 2 || ys.len() != 1 || xs[0] != ys[0] || xs[0] == 0 {
        return Err(Error::Msg(format!(
            "linear probe: {what} features must be [N, F] with labels [N], N > 0; got \
             {xs:?} and {ys:?}"
        )));
    }
    let (lo, hi) = (y.min().int64_value(&[]), y.max().int64_value(&[]));
    if lo < 0 || hi >= classes {
        return Err(Error::Msg(format!(
            "linear probe: {what} labels must lie in 0..{classes}, found {lo}..={hi}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Two Gaussian classes in 5-D whose means differ along one axis by 2Δ: the Bayes
    /// error Φ(−Δ) is what a linear rule can reach; the probe comes within 2 % of it.
    #[test]
    fn reaches_the_bayes_error_of_two_gaussians() {
        let _rng = gm_core::rng_guard::seeded(3);
        let delta = 1.0;
        let make = |n: i64| {
            let y = Tensor::randint(2, [n], (Kind::Int64, Device::Cpu));
            let mut x = Tensor::randn([n, 5], (Kind::Float, Device::Cpu));
            let shift = (y.to_kind(Kind::Float) * 2.0 - 1.0) * delta;
            let _ = x.narrow(1, 0, 1).squeeze_dim(1).g_add_(&shift);
            x = x * 3.0 + 7.0; // standardisation undoes scale and shift
            (x, y)
        };
        let (train, test) = (make(4000), make(20000));
        let r = linear_probe(
            (&train.0, &train.1),
            (&test.0, &test.1),
            2,
            &ProbeOptions::default(),
        )
        .unwrap();
        let bayes = 0.158_655; // Φ(−1)
        eprintln!(
            "probe error {:.4} ± {:.4} (Bayes {bayes})",
            r.error, r.std_err
        );
        assert!((r.error - bayes).abs() < 0.02, "{r:?}");
        assert!(r.train_error < 0.2, "{r:?}");
    }

    #[test]
    fn bad_shapes_and_labels_are_errors() {
        let x = Tensor::zeros([4, 3], (Kind::Float, Device::Cpu));
        let y = Tensor::from_slice(&[0i64, 1, 2, 1]);
        let opts = ProbeOptions::default();
        let err = |r: Result<ProbeResult>| r.unwrap_err().to_string();
        assert!(err(linear_probe((&x, &y), (&x, &y), 2, &opts)).contains("0..2"));
        let x2 = Tensor::zeros([4, 2], (Kind::Float, Device::Cpu));
        assert!(err(linear_probe((&x, &y), (&x2, &y), 3, &opts)).contains("columns"));
        let y3 = Tensor::from_slice(&[0i64, 1, 2]);
        assert!(err(linear_probe((&x, &y3), (&x, &y), 3, &opts)).contains("[N, F]"));
    }
}
