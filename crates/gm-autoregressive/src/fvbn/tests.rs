use super::*;
use crate::common::{total_variation, Autoregressive};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn fvbn(c: &RunConfig, d: &Dataset) -> gm_core::Result<Fvbn> {
    let p: FvbnConfig = parse_params("fvbn", &c.model.params)?;
    Fvbn::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

fn randomize(m: &Fvbn, scale: f64) {
    gm_core::kit::randomize(m.var_stores()[0].1, scale, |n, _| {
        n == "fvbn.w" || n == "fvbn.b"
    });
}

#[test]
fn logistic_probabilities_sum_to_one_for_every_ordering() {
    let _rng = crate::test_rng_lock();
    for extra in ["", "ordering = \"random\"\nordering_seed = 5"] {
        let c = cfg("fvbn", extra, "bars-and-stripes", "", "");
        let d = binary_rows(10);
        tch::manual_seed(1);
        let m = fvbn(&c, &d).unwrap();
        randomize(&m, 1.0);
        assert_sums_to_one(&m);
    }
}

#[test]
fn logistic_outputs_are_autoregressive_and_the_mask_is_enforced() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "fvbn",
        "ordering = \"random\"\nordering_seed = 2",
        "bars-and-stripes",
        "",
        "",
    );
    let d = binary_rows(7);
    tch::manual_seed(0);
    let m = fvbn(&c, &d).unwrap();
    // Non-zero raw weights everywhere, above the diagonal too: the forward pass must mask them.
    randomize(&m, 1.0);
    assert_autoregressive(|x| m.conditionals(x).1, m.ordering());
}

#[test]
fn logistic_fit_recovers_a_logistic_fvbn_and_samples_match() {
    let _rng = crate::test_rng_lock();
    // The known distribution: a random logistic FVBN over 5 bits, enumerated exactly.
    let c = cfg("fvbn", "", "bars-and-stripes", "", "lr = 0.05");
    let d = binary_rows(5);
    tch::manual_seed(4);
    let teacher = fvbn(&c, &d).unwrap();
    randomize(&teacher, 1.5);
    let target = exact_distribution(&teacher);
    tch::manual_seed(5);
    let x = teacher.sample_flat(20_000);
    // The teacher's own samples match its enumerated distribution.
    let emp = crate::common::empirical_distribution(&x);
    let tv_teacher = total_variation(&emp, &target);
    assert!(tv_teacher < 0.03, "teacher samples TV {tv_teacher}");
    let mut m = fvbn(&c, &dataset_of(&x, true)).unwrap();
    let before = total_variation(&exact_distribution(&m), &target);
    train(&mut m, &x, 400);
    let after = total_variation(&exact_distribution(&m), &target);
    assert!(
        after < 0.03,
        "fitted model vs the true FVBN: TV {after} (factorial start {before})"
    );
    assert_sums_to_one(&m);
    assert_samples_match(&m, 20_000, 0.03);
}

fn gaussian_rows(n: i64, d: i64) -> Tensor {
    tch::manual_seed(9);
    let a = Tensor::randn([d, d], (Kind::Float, Device::Cpu));
    Tensor::randn([n, d], (Kind::Float, Device::Cpu)).mm(&a)
        + Tensor::arange(d, (Kind::Float, Device::Cpu))
}

/// Mean log-density of the rows of `x` under N(sample mean, sample covariance), computed
/// from the density formula (slogdet and the inverse), not from any regression.
fn gaussian_mle_mean_log_density(x: &Tensor) -> f64 {
    let x = x.to_kind(Kind::Double);
    let (n, d) = (x.size()[0], x.size()[1]);
    let mu = x.mean_dim(0, true, Kind::Double);
    let xc = &x - &mu;
    let cov = xc.tr().mm(&xc) / n as f64;
    let logdet = cov.logdet();
    let quad = (xc.mm(&cov.inverse()) * &xc).sum_dim_intlist(1, false, Kind::Double);
    let lp = (quad + logdet + d as f64 * (2.0 * std::f64::consts::PI).ln()) * -0.5;
    lp.mean(Kind::Double).double_value(&[])
}

#[test]
fn gaussian_closed_form_fit_is_the_gaussian_mle_for_any_ordering() {
    let _rng = crate::test_rng_lock();
    let x = gaussian_rows(400, 5);
    let expect = gaussian_mle_mean_log_density(&x);
    for extra in ["", "ordering = \"random\"\nordering_seed = 3"] {
        let c = cfg(
            "fvbn",
            &format!("fit = \"closed_form\"\nridge = 0.0\n{extra}"),
            "two-moons",
            "",
            "",
        );
        let mut m = fvbn(&c, &dataset_of(&x, false)).unwrap();
        assert_eq!(m.likelihood(), FvbnLikelihood::Gaussian);
        // Two train steps over two halves: the running sums give the fit of all 400 rows.
        m.train_step(&gm_core::data::Batch::inputs(&x.narrow(0, 0, 150)))
            .unwrap();
        m.train_step(&gm_core::data::Batch::inputs(&x.narrow(0, 150, 250)))
            .unwrap();
        let got = m
            .log_prob(&x)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!(
            (got - expect).abs() < 1e-4,
            "{extra}: FVBN {got} vs Gaussian MLE {expect}"
        );
        let lls = m.log_likelihoods(&x, &c).unwrap();
        assert_eq!(lls[0].kind, LikelihoodKind::Exact);
        assert!((lls[0].mean - expect).abs() < 1e-4);
    }
}

#[test]
fn gaussian_closed_form_weights_are_the_per_variable_least_squares_regressions() {
    let _rng = crate::test_rng_lock();
    let x = gaussian_rows(300, 4);
    let c = cfg(
        "fvbn",
        "fit = \"closed_form\"\nridge = 0.0",
        "two-moons",
        "",
        "",
    );
    let mut m = fvbn(&c, &dataset_of(&x, false)).unwrap();
    m.fit_closed_form(&x).unwrap();
    let (b, w, var) = m.parameters();
    let var = var.unwrap();
    let xd = x.to_kind(Kind::Double);
    let n = x.size()[0];
    for i in 0..4 {
        // Regress x_i on [1, x_<i] with the normal equations.
        let design = Tensor::cat(
            &[
                Tensor::ones([n, 1], (Kind::Double, Device::Cpu)),
                xd.narrow(1, 0, i),
            ],
            1,
        );
        let y = xd.select(1, i);
        let coef = design.tr().mm(&design).inverse().mv(&design.tr().mv(&y));
        let resid = &y - design.mv(&coef);
        let rvar = resid.square().mean(Kind::Double).double_value(&[]);
        approx::assert_abs_diff_eq!(
            b.double_value(&[i]),
            coef.double_value(&[0]),
            epsilon = 1e-3
        );
        for j in 0..4 {
            let expect = if j < i {
                coef.double_value(&[j + 1])
            } else {
                0.0
            };
            approx::assert_abs_diff_eq!(w.double_value(&[i, j]), expect, epsilon = 1e-4);
        }
        approx::assert_relative_eq!(var.double_value(&[i]), rvar, max_relative = 1e-4);
    }
}

#[test]
fn gaussian_gradient_training_approaches_the_mle_and_samples_have_its_moments() {
    let _rng = crate::test_rng_lock();
    let x = gaussian_rows(500, 3);
    let expect = gaussian_mle_mean_log_density(&x);
    let c = cfg("fvbn", "", "two-moons", "", "lr = 0.05");
    let mut m = fvbn(&c, &dataset_of(&x, false)).unwrap();
    let start = -m.eval_metrics(&gm_core::data::Batch::inputs(&x)).unwrap()[0]
        .1
        .double_value(&[]);
    train(&mut m, &x, 1500);
    let got = -m.eval_metrics(&gm_core::data::Batch::inputs(&x)).unwrap()[0]
        .1
        .double_value(&[]);
    assert!(
        got <= expect + 1e-3,
        "gradient fit {got} above the MLE {expect}"
    );
    assert!(
        expect - got < 0.02,
        "gradient fit {got}, MLE {expect}, start {start}"
    );
    tch::manual_seed(2);
    let s = m.sample_flat(50_000).to_kind(Kind::Double);
    let xd = x.to_kind(Kind::Double);
    let mean_err = (s.mean_dim(0, false, Kind::Double) - xd.mean_dim(0, false, Kind::Double))
        .abs()
        .max()
        .double_value(&[]);
    let cov = |t: &Tensor| {
        let c = t - t.mean_dim(0, true, Kind::Double);
        c.tr().mm(&c) / t.size()[0] as f64
    };
    let rel = ((cov(&s) - cov(&xd)).abs().max() / cov(&xd).abs().max()).double_value(&[]);
    assert!(
        mean_err < 0.1 && rel < 0.05,
        "sample moments: mean error {mean_err}, covariance error {rel}"
    );
}

#[test]
fn sample_shapes_and_values() {
    let _rng = crate::test_rng_lock();
    let c = cfg("fvbn", "", "bars-and-stripes", "", "");
    let d = load(&c);
    let m = fvbn(&c, &d).unwrap();
    let s = m.sample(6).unwrap();
    assert_eq!(s.size(), vec![6, 1, 4, 4]);
    let ones = s.eq(1.0).logical_or(&s.eq(0.0)).all().int64_value(&[]);
    assert_eq!(ones, 1, "binary samples");
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("fvbn", "ridgee = 1.0", "two-moons", "", "");
    let err = parse_params::<FvbnConfig>("fvbn", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("ridgee"), "{err}");
    let real = dataset_of(&gaussian_rows(10, 3), false);
    for (extra, field) in [
        ("ridge = -1.0", "model.ridge"),
        ("min_log_var = nan", "model.min_log_var"),
        (
            "fit = \"closed_form\"\nlikelihood = \"bernoulli\"",
            "model.fit",
        ),
        ("likelihood = \"bernoulli\"", "model.likelihood"),
    ] {
        assert_config_error(fvbn(&cfg("fvbn", extra, "two-moons", "", ""), &real), field);
    }
    // Closed form on binary data (which resolves to the logistic FVBN).
    assert_config_error(
        fvbn(
            &cfg("fvbn", "fit = \"closed_form\"", "two-moons", "", ""),
            &binary_rows(3),
        ),
        "model.fit",
    );
    let err = fvbn(
        &cfg("fvbn", "likelihood = \"bernoulli\"", "two-moons", "", ""),
        &real,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("binarize"), "{err}");
}
