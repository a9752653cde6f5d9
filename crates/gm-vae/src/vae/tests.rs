use super::*;
use gm_core::config::RunConfig;
use gm_core::data::{self, Dataset};
use gm_core::model::{BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn cfg(extra_model: &str, dataset: &str, data_extra: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 3\n[model]\nname = \"vae\"\n{extra_model}\n[data]\ndataset = \"{dataset}\"\n{data_extra}\n[optim]\nlr = 0.003\n"
    ))
    .unwrap()
}

fn load(c: &RunConfig) -> Dataset {
    data::load(&c.data.dataset, &c.data.options).unwrap()
}

fn vae(c: &RunConfig, d: &Dataset) -> Vae {
    let p: VaeConfig = gm_core::model::parse_params("vae", &c.model.params).unwrap();
    Vae::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
    .unwrap()
}

/// Exact log p(x) of a 1-D-latent VAE by quadrature over z, for every row of `x`.
fn exact_log_px(m: &Vae, x: &Tensor) -> Tensor {
    let grid = Tensor::linspace(-12.0, 12.0, 24001, (Kind::Float, Device::Cpu)).view([-1, 1]);
    let dz: f64 = 24.0 / 24000.0;
    let out = tch::no_grad(|| m.decode_raw(&grid)); // [G, D]
    let xs = x.reshape([-1, m.dim]).to_kind(Kind::Double);
    let out = out.to_kind(Kind::Double).unsqueeze(1); // [G, 1, D]
    let log_px_z = (&out * &xs - out.softplus()).sum_dim_intlist(-1, false, Kind::Double); // [G, N]
    let log_pz =
        grid.to_kind(Kind::Double).square() * -0.5 - 0.5 * (2.0 * std::f64::consts::PI).ln();
    (log_px_z + log_pz).logsumexp([0], false) + dz.ln()
}

#[test]
fn importance_estimate_converges_to_exact_likelihood_and_elbo_bounds_it() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg(
        "latent = 1\nhidden = [8]",
        "bars-and-stripes",
        "bars_size = 2",
    );
    let d = load(&c);
    tch::manual_seed(0);
    let mut m = vae(&c, &d);
    for _ in 0..150 {
        m.train_step(&gm_core::data::Batch::inputs(&d.train.x))
            .unwrap();
    }
    let x = gm_core::data::bars_and_stripes_patterns(2);
    let exact = exact_log_px(&m, &x);
    let exact_mean = exact.mean(Kind::Double).double_value(&[]);
    // The exact probabilities of all 16 binary 2x2 images sum to one.
    let all = Tensor::arange(16, (Kind::Int64, Device::Cpu));
    let bits = Tensor::stack(
        &(0..4)
            .map(|i| (&all / 2i64.pow(i)).floor().remainder(2))
            .collect::<Vec<_>>(),
        1,
    )
    .to_kind(Kind::Float);
    let total = exact_log_px(&m, &bits)
        .exp()
        .sum(Kind::Double)
        .double_value(&[]);
    approx::assert_abs_diff_eq!(total, 1.0, epsilon = 1e-4);

    let mut run = c.clone();
    run.eval.is_samples = 20_000;
    run.eval.chunk = 2;
    tch::manual_seed(1);
    let lls = m.log_likelihoods(&x, &run).unwrap();
    let elbo = &lls[0];
    let is = &lls[1];
    assert_eq!(elbo.kind, LikelihoodKind::LowerBound);
    assert_eq!(is.kind, LikelihoodKind::StochasticEstimate);
    assert!(
        (is.mean - exact_mean).abs() < 0.01,
        "IS {} vs exact {exact_mean}",
        is.mean
    );
    // A single-sample ELBO is noisy; its expectation (over many z) must lie below log p(x).
    let reps = x.repeat([4000, 1, 1, 1]);
    let elbo_mean = m
        .eval_metrics(&gm_core::data::Batch::inputs(&reps))
        .unwrap()[1]
        .1
        .double_value(&[]);
    assert!(
        elbo_mean < exact_mean,
        "E[ELBO] {elbo_mean} above exact {exact_mean}"
    );
    assert!((elbo.mean - elbo_mean).abs() < 4.0 * elbo.std_err + 0.05);
}

#[test]
fn training_on_bars_and_stripes_approaches_the_optimum() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg("latent = 4\nhidden = [128, 128]", "bars-and-stripes", "");
    let d = load(&c);
    tch::manual_seed(0);
    let mut m = vae(&c, &d);
    let before = m
        .eval_metrics(&gm_core::data::Batch::inputs(&d.valid.x))
        .unwrap()[1]
        .1
        .double_value(&[]);
    let n = d.train.len();
    for step in 0..2500 {
        let i = (step * 32) % (n - 32);
        m.train_step(&gm_core::data::Batch::inputs(&d.train.x.narrow(0, i, 32)))
            .unwrap();
    }
    let mut run = c.clone();
    run.eval.is_samples = 500;
    let lls = m
        .log_likelihoods(&gm_core::data::bars_and_stripes_patterns(4), &run)
        .unwrap();
    let nll = lls[1].nll();
    // Uniform over 16 pixels: 11.09 nats; the optimum (uniform over 30 patterns): 3.40.
    assert!(
        before < -9.0,
        "an untrained model should be near uniform, ELBO {before}"
    );
    eprintln!(
        "bars-and-stripes VAE: IS NLL {nll:.3} (optimum {:.3})",
        30f64.ln()
    );
    assert!(
        nll < 4.5,
        "IS NLL after training {nll}, optimum is ln 30 = 3.40"
    );
    assert!(
        nll > 30f64.ln() - 0.05,
        "NLL {nll} below the optimum ln 30: estimator is wrong"
    );
}

#[test]
fn gaussian_decoder_log_density_is_the_normal_density() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg(
        "latent = 2\nhidden = [4]\nlikelihood = \"gaussian\"",
        "two-moons",
        "",
    );
    let d = load(&c);
    let m = vae(&c, &d);
    let out = Tensor::from_slice(&[0.5f32, -1.0, 0.0, 2f32.ln()]).view([1, 4]); // means, log-vars
    let x = Tensor::from_slice(&[1.5f32, -1.0]).view([1, 2]);
    let got = m.log_px_given_z(&out, &x).double_value(&[0]);
    let n = |x: f64, mu: f64, var: f64| {
        -0.5 * (2.0 * std::f64::consts::PI * var).ln() - (x - mu).powi(2) / (2.0 * var)
    };
    approx::assert_abs_diff_eq!(got, n(1.5, 0.5, 1.0) + n(-1.0, -1.0, 2.0), epsilon = 1e-5);
}

#[test]
fn bernoulli_on_real_valued_data_is_a_config_error() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg("likelihood = \"bernoulli\"", "two-moons", "");
    let d = load(&c);
    let p: VaeConfig = gm_core::model::parse_params("vae", &c.model.params).unwrap();
    let err = Vae::new(
        p,
        &BuildContext {
            cfg: &c,
            data: &d,
            device: Device::Cpu,
        },
    )
    .err()
    .expect("must fail")
    .to_string();
    assert!(
        err.contains("model.likelihood") && err.contains("binarize"),
        "{err}"
    );
}

#[test]
fn invalid_model_fields_are_rejected() {
    let _rng = gm_core::rng_guard::lock();
    let err = gm_core::model::parse_params::<VaeConfig>(
        "vae",
        &cfg("latnet = 3", "two-moons", "").model.params,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("latnet"), "{err}");
    for (field, extra) in [
        ("model.hidden", "hidden = []"),
        ("model.latent", "latent = 0"),
        ("model.beta", "beta = -1.0"),
    ] {
        let p: VaeConfig =
            gm_core::model::parse_params("vae", &cfg(extra, "two-moons", "").model.params).unwrap();
        match p.validate() {
            Err(gm_core::Error::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{extra}: {other:?}"),
        }
    }
}

#[test]
fn samples_and_figures_have_image_shapes() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg("latent = 3\nhidden = [16]", "bars-and-stripes", "");
    let d = load(&c);
    let m = vae(&c, &d);
    assert_eq!(m.sample(5).unwrap().size(), vec![5, 1, 4, 4]);
    let figs = m.figures(&d.test.x.narrow(0, 0, 16)).unwrap();
    assert_eq!(figs[0].images.size(), vec![32, 1, 4, 4]);
    assert_eq!(figs[1].images.size(), vec![80, 1, 4, 4]);
    let s = m.sample(100).unwrap();
    assert!(s.min().double_value(&[]) >= 0.0 && s.max().double_value(&[]) <= 1.0);
}
