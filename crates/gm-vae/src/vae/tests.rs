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

/// The start these tests were calibrated with (tch's default init, no data bias).
const TCH_INIT: &str = "init = \"kaiming\"\ndata_bias = false";

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
    let bits = gm_core::kit::all_binary_vectors(4, Device::Cpu);
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
fn fixed_variance_decoder_outputs_means_only_and_scores_by_the_normal_density() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg(
        "latent = 2\nhidden = [4]\nlikelihood = \"gaussian\"\ndecoder_variance = 0.25",
        "two-moons",
        "",
    );
    let d = load(&c);
    let m = vae(&c, &d);
    let z = Tensor::zeros([3, 2], (Kind::Float, Device::Cpu));
    assert_eq!(tch::no_grad(|| m.decode_raw(&z)).size(), [3, 2]);
    let out = Tensor::from_slice(&[0.5f32, -1.0]).view([1, 2]); // means
    let x = Tensor::from_slice(&[1.5f32, -0.25]).view([1, 2]);
    let got = m.log_px_given_z(&out, &x).double_value(&[0]);
    let n =
        |x: f64, mu: f64| -0.5 * (2.0 * std::f64::consts::PI * 0.25).ln() - (x - mu).powi(2) / 0.5;
    approx::assert_abs_diff_eq!(got, n(1.5, 0.5) + n(-0.25, -1.0), epsilon = 1e-5);
    // A fixed variance on binary data (a Bernoulli decoder) is refused, naming the field.
    let c = cfg("decoder_variance = 0.25", "bars-and-stripes", "");
    let err = build_err(&c);
    assert!(err.contains("model.decoder_variance"), "{err}");
}

#[test]
fn a_two_dimensional_latent_space_is_drawn_coloured_by_class() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg("latent = 2\nhidden = [8]", "bars-and-stripes", "");
    let d = load(&c);
    let m = vae(&c, &d);
    let (x, y) = (
        &d.test.x,
        d.test.y.as_ref().expect("bars-and-stripes has labels"),
    );
    let figs = m.labelled_figures(x, y).unwrap();
    assert_eq!(figs.len(), 1);
    assert_eq!(figs[0].images.size(), [1, 3, 400, 400]);
    // Some pixels carry a class colour (not white, not grey).
    let img = &figs[0].images;
    let coloured = (img.max_dim(1, false).0 - img.min_dim(1, false).0)
        .gt(0.1)
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert!(coloured > 0);
    // Other latent sizes draw nothing.
    let c = cfg("latent = 3\nhidden = [8]", "bars-and-stripes", "");
    assert!(vae(&c, &d).labelled_figures(x, y).unwrap().is_empty());
}

#[test]
fn the_convolutional_vae_keeps_shapes_and_learns_bars_and_stripes() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg(
        "arch = \"conv\"\nchannels = [8, 16]\nhidden = [64]\nlatent = 4\nactivation = \"relu\"",
        "bars-and-stripes",
        "",
    );
    let d = load(&c);
    tch::manual_seed(0);
    let mut m = vae(&c, &d);
    let names: Vec<_> = m.var_stores()[0].1.variables().into_keys().collect();
    for n in [
        "encoder.conv2.weight",
        "decoder.deconv2.bias",
        "encoder.fc1.weight",
    ] {
        assert!(names.iter().any(|k| k == n), "{n} not in {names:?}");
    }
    // Leading dims of z survive the decoder: [k, B, latent] → [k, B, D].
    let z = Tensor::randn([3, 5, 4], (Kind::Float, Device::Cpu));
    assert_eq!(tch::no_grad(|| m.decode_raw(&z)).size(), [3, 5, 16]);
    let n = d.train.len();
    for step in 0..5000 {
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
    eprintln!(
        "bars-and-stripes conv VAE: IS NLL {nll:.3} (uniform 11.09, optimum {:.3})",
        30f64.ln()
    );
    assert!(nll < 5.0 && nll > 30f64.ln() - 0.05, "IS NLL {nll}");
}

#[test]
fn convolutional_bodies_need_images_they_can_halve() {
    let _rng = gm_core::rng_guard::lock();
    for (extra, dataset, field) in [
        ("arch = \"conv\"", "two-moons", "model.arch"),
        (
            "arch = \"conv\"\nchannels = [4, 4, 4]",
            "bars-and-stripes",
            "model.channels",
        ),
        (
            "arch = \"conv\"\nchannels = []",
            "bars-and-stripes",
            "model.channels",
        ),
    ] {
        let c = cfg(extra, dataset, "");
        let err = build_err(&c);
        assert!(err.contains(field), "{extra}: {err}");
    }
}

#[test]
fn bernoulli_on_real_valued_data_is_a_config_error() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg("likelihood = \"bernoulli\"", "two-moons", "");
    let err = build_err(&c);
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
        ("model.decoder_variance", "decoder_variance = -0.5"),
        (
            "model.decoder_variance",
            "likelihood = \"bernoulli\"\ndecoder_variance = 1.0",
        ),
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

fn cvae(c: &RunConfig, d: &Dataset) -> Box<dyn Model> {
    build_conditional(&BuildContext {
        cfg: c,
        data: d,
        device: Device::Cpu,
    })
    .unwrap()
}

/// Whether each thresholded image `[N, 1, n, n]` is a stripe pattern (every row constant,
/// label 0, the two constant images included) and a bar pattern that is no stripe (every
/// column constant, label 1): two `bool [N]`.
fn stripes_and_bars(s: &Tensor) -> (Tensor, Tensor) {
    let b = s.gt(0.5).to_kind(Kind::Float).squeeze_dim(1);
    let constant = |dim: i64| {
        b.amax([dim].as_slice(), false)
            .eq_tensor(&b.amin([dim].as_slice(), false))
            .all_dim(1, false)
    };
    let stripe = constant(2); // along each row
    let bar = constant(1).logical_and(&stripe.logical_not());
    (stripe, bar)
}

fn fraction(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).mean(Kind::Double).double_value(&[])
}

/// `steps` training steps of a CVAE on bars and stripes (labels 0 stripes, 1 bars), seed
/// `seed`; returns the model and the dataset.
fn trained_cvae(seed: i64, steps: usize) -> (Box<dyn Model>, Dataset) {
    // Calibrated under tch's init: Glorot-started, seed 0 drew stripes for both classes
    // after 400 steps (class 1: bars 0.013, stripes 0.430).
    let c = cfg(
        &format!("latent = 2\nhidden = [64]\n{TCH_INIT}"),
        "bars-and-stripes",
        "",
    );
    let d = load(&c);
    tch::manual_seed(seed);
    let mut m = cvae(&c, &d);
    let (x, y) = (&d.train.x, d.train.y.as_ref().unwrap());
    let n = d.train.len();
    for step in 0..steps {
        let i = (step as i64 * 50) % (n - 50);
        let b = gm_core::data::Batch::labelled(&x.narrow(0, i, 50), &y.narrow(0, i, 50));
        m.train_step(&b).unwrap();
    }
    (m, d)
}

#[test]
fn the_cvae_uses_its_label_for_samples_and_for_the_elbo() {
    let _rng = crate::test_rng_lock();
    let (m, d) = trained_cvae(0, 400);
    let cond = m.as_conditional().expect("a cvae samples by class");
    assert_eq!(cond.num_classes(), 2);
    let n = 2000;
    let (s0, s1) = (
        cond.sample_class(n, 0).unwrap(),
        cond.sample_class(n, 1).unwrap(),
    );
    assert_eq!(s0.size(), vec![n, 1, 4, 4]);
    let (stripe0, bar0) = stripes_and_bars(&s0);
    let (stripe1, bar1) = stripes_and_bars(&s1);
    let [s0, b0, s1, b1] = [&stripe0, &bar0, &stripe1, &bar1].map(fraction);
    eprintln!(
        "cvae: class 0 → stripes {s0:.3}, bars {b0:.3}; class 1 → bars {b1:.3}, stripes {s1:.3} \
         (the rest are no pattern)"
    );
    // A model that ignored its label would draw the same mixture for both classes (bars and
    // stripes about 14 : 16 among the valid patterns). After 400 steps, over seeds 0–3: class 0
    // gave stripes 0.49–0.61 and bars 0.000, class 1 bars 0.47–0.53 and stripes ≤ 0.001
    // (2,000 samples each; about half are not yet valid patterns).
    assert!(
        s0 > 0.3 && b1 > 0.3,
        "valid patterns of the asked class: {s0}, {b1}"
    );
    assert!(
        b0 < 0.02 && s1 < 0.02,
        "patterns of the other class: {b0}, {s1}"
    );
    // The ELBO of the test set with the true labels beats the one with the labels swapped.
    let (x, y) = (&d.test.x, d.test.y.as_ref().unwrap());
    let elbo = |labels: &Tensor| {
        m.eval_metrics(&gm_core::data::Batch::labelled(x, labels))
            .unwrap()[1]
            .1
            .double_value(&[])
    };
    let wrong = y.ones_like() - y;
    let (right, swapped) = (elbo(y), elbo(&wrong));
    eprintln!("cvae test ELBO: true labels {right:.3}, swapped labels {swapped:.3}");
    // Seeds 0–3 after 400 steps: −8.0 to −7.6 with the true labels, −18.0 to −16.9 swapped.
    assert!(right > swapped + 5.0, "ELBO {right} vs swapped {swapped}");
    // Its likelihoods sum over the labels (none are given): finite, kinds as for the VAE.
    let c = cfg("", "bars-and-stripes", "");
    let lls = m.log_likelihoods(&x.narrow(0, 0, 50), &c).unwrap();
    assert_eq!(lls[0].kind, LikelihoodKind::LowerBound);
    assert_eq!(lls[1].kind, LikelihoodKind::StochasticEstimate);
    assert!(
        lls[1].mean >= lls[0].mean - 0.05 && lls[1].mean.is_finite(),
        "{lls:?}"
    );
}

#[test]
fn the_cvae_refuses_bad_labels_and_datasets_without_labels() {
    let _rng = crate::test_rng_lock();
    let (m, d) = trained_cvae(1, 1);
    let e = m
        .as_conditional()
        .unwrap()
        .sample_class(3, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("class 2") && e.contains("cvae"), "{e}");
    let bad =
        gm_core::data::Batch::labelled(&d.test.x.narrow(0, 0, 2), &Tensor::from_slice(&[0i64, 5]));
    let e = m.eval_metrics(&bad).unwrap_err().to_string();
    assert!(e.contains("5") && e.contains("0..2"), "{e}");
    assert!(m.as_completion().is_none());
    let c = cfg("conditional = true", "swiss-roll", "");
    let d = load(&c);
    let e = vae_result(&c, &d)
        .err()
        .expect("a config error")
        .to_string();
    assert!(
        e.contains("data.dataset") && e.contains("swiss-roll"),
        "{e}"
    );
    let plain = vae(
        &cfg("", "bars-and-stripes", ""),
        &load(&cfg("", "bars-and-stripes", "")),
    );
    assert!(plain.as_conditional().is_none());
}

/// The error message of building a VAE from `c`, which must fail.
fn build_err(c: &RunConfig) -> String {
    vae_result(c, &load(c))
        .err()
        .expect("must fail")
        .to_string()
}

fn vae_result(c: &RunConfig, d: &Dataset) -> gm_core::Result<Vae> {
    let p: VaeConfig = gm_core::model::parse_params("vae", &c.model.params)?;
    Vae::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

#[test]
fn completion_keeps_the_observed_pixels_and_stays_in_range() {
    let _rng = crate::test_rng_lock();
    let c = cfg("latent = 4\nhidden = [64]", "bars-and-stripes", "");
    let d = load(&c);
    tch::manual_seed(2);
    let mut m = vae(&c, &d);
    for step in 0..300 {
        let i = (step * 32) % (d.train.len() - 32);
        m.train_step(&gm_core::data::Batch::inputs(&d.train.x.narrow(0, i, 32)))
            .unwrap();
    }
    let comp = m.as_completion().expect("the vae completes");
    assert!(matches!(
        comp.completion_kind(),
        gm_core::model::CompletionKind::Approximate { .. }
    ));
    let x = d.test.x.narrow(0, 0, 40);
    for spec in ["bottom-half", "square", "random:0.5"] {
        let mask = gm_core::masks::MaskSpec::parse(spec)
            .unwrap()
            .build(40, &[1, 4, 4], 3, Device::Cpu)
            .unwrap();
        let done = comp.complete(&x, &mask).unwrap();
        assert_eq!(done.size(), x.size());
        let kept = ((&done - &x) * &mask).abs().max().double_value(&[]);
        assert_eq!(kept, 0.0, "{spec}: observed pixels changed");
        let (lo, hi) = (done.min().double_value(&[]), done.max().double_value(&[]));
        assert!(lo >= 0.0 && hi <= 1.0, "{spec}: values in [{lo}, {hi}]");
        // Hidden pixels moved away from their starting grey.
        let hidden: Tensor = 1.0 - &mask;
        let moved = ((&done - 0.5).abs() * &hidden)
            .sum(Kind::Double)
            .double_value(&[])
            / hidden.sum(Kind::Double).double_value(&[]);
        assert!(
            moved > 0.05,
            "{spec}: hidden pixels stay near 0.5 ({moved})"
        );
    }
}

#[test]
fn analytic_kl_equals_a_monte_carlo_kl() {
    let _rng = gm_core::rng_guard::seeded(5);
    let opts = (Kind::Double, Device::Cpu);
    let mu = Tensor::from_slice(&[0.7, -1.3, 0.0]).to_kind(Kind::Double);
    let log_var = Tensor::from_slice(&[-0.5, 0.8, -2.0]).to_kind(Kind::Double);
    let analytic = kl_to_standard_normal(&mu, &log_var).double_value(&[]);
    // KL = E_q[log q(z) − log p(z)], z = μ + σε; the normalising constants cancel.
    let n = 400_000;
    let eps = Tensor::randn([n, 3], opts);
    let z = &mu + (&log_var * 0.5).exp() * &eps;
    let log_q = (eps.square() * -0.5 - &log_var * 0.5).sum_dim_intlist(1, false, Kind::Double);
    let log_p = (z.square() * -0.5).sum_dim_intlist(1, false, Kind::Double);
    let d = log_q - log_p;
    let mc = d.mean(Kind::Double).double_value(&[]);
    let se = d.std(true).double_value(&[]) / (n as f64).sqrt();
    // By hand: ½ Σ (μ² + σ² − log σ² − 1) for the three coordinates.
    let by_hand: f64 = [(0.7f64, -0.5f64), (-1.3, 0.8), (0.0, -2.0)]
        .iter()
        .map(|&(m, lv)| 0.5 * (m * m + lv.exp() - lv - 1.0))
        .sum();
    approx::assert_abs_diff_eq!(analytic, by_hand, epsilon = 1e-12);
    eprintln!("KL analytic {analytic:.6}, Monte Carlo {mc:.6} ± {se:.6}");
    assert!(
        (mc - analytic).abs() < 4.0 * se,
        "MC KL {mc} ± {se} vs analytic {analytic}"
    );
}

/// Mean over the rows of `x` of L_k = E log (1/k) Σ wᵢ, from `reps` independent sets of k
/// weights per row, with its standard error over the replicates.
fn iwae_bound(m: &Vae, x: &Tensor, k: i64, reps: i64) -> (f64, f64) {
    let b = x.size()[0];
    let lw = tch::no_grad(|| m.log_weights(x, k * reps)).to_kind(Kind::Double);
    let per_rep = gm_eval::importance::log_mean_exp(&lw.view([reps, k, b]), 1).mean_dim(
        1,
        false,
        Kind::Double,
    );
    let mean = per_rep.mean(Kind::Double).double_value(&[]);
    let se = per_rep.std(true).double_value(&[]) / (reps as f64).sqrt();
    (mean, se)
}

/// L_1 < L_5 < L_50 (each from 2000 replicates, apart by 3 standard errors) and L_50 not
/// above the exact mean log p(x).
fn assert_bounds_rise_to(m: &Vae, x: &Tensor, exact: f64, what: &str) {
    let bounds: Vec<(i64, f64, f64)> = [1, 5, 50]
        .iter()
        .map(|&k| {
            let (b, se) = iwae_bound(m, x, k, 2000);
            (k, b, se)
        })
        .collect();
    eprintln!("{what}: exact log p(x) {exact:.5}; (k, L_k, se): {bounds:?}");
    for w in bounds.windows(2) {
        let ((k0, b0, s0), (k1, b1, s1)) = (w[0], w[1]);
        assert!(
            b1 - b0 > 3.0 * (s0 * s0 + s1 * s1).sqrt(),
            "{what}: L_{k1} = {b1} ± {s1} is not above L_{k0} = {b0} ± {s0}"
        );
    }
    let (_, b50, s50) = bounds[2];
    assert!(
        b50 < exact + 3.0 * s50,
        "{what}: L_50 {b50} ± {s50} above log p(x) {exact}"
    );
}

#[test]
fn iwae_bounds_rise_with_k_toward_the_exact_likelihood() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg(
        // Under Glorot's init L_5 lies within its one-draw noise of log p(x) here (the
        // record −2.7088 against the 5,000-sample −2.7192), too close to order them.
        &format!("latent = 1\nhidden = [8]\niw_samples = 5\n{TCH_INIT}"),
        "bars-and-stripes",
        "bars_size = 2",
    );
    let d = load(&c);
    tch::manual_seed(0);
    let mut m = vae(&c, &d);
    let first = m
        .train_step(&gm_core::data::Batch::inputs(&d.train.x))
        .unwrap();
    assert_eq!(first[0].0, "loss");
    assert_eq!(first[1].0, "iwae");
    for _ in 0..150 {
        m.train_step(&gm_core::data::Batch::inputs(&d.train.x))
            .unwrap();
    }
    let x = gm_core::data::bars_and_stripes_patterns(2);
    let exact = exact_log_px(&m, &x).mean(Kind::Double).double_value(&[]);
    tch::manual_seed(2);
    assert_bounds_rise_to(&m, &x, exact, "one layer");
    // The model's own records: ELBO ≤ IWAE-5 ≤ the 5000-sample estimate ≈ exact.
    let mut run = c.clone();
    run.eval.is_samples = 5000;
    run.eval.chunk = 2;
    let lls = m.log_likelihoods(&x, &run).unwrap();
    let kinds: Vec<_> = lls.iter().map(|l| (l.method.as_str(), l.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("elbo", LikelihoodKind::LowerBound),
            ("iwae-5", LikelihoodKind::LowerBound),
            ("importance-sampling", LikelihoodKind::StochasticEstimate)
        ]
    );
    let (elbo, iw5, is) = (&lls[0], &lls[1], &lls[2]);
    eprintln!(
        "records: elbo {:.5}, iwae-5 {:.5}, IS-5000 {:.5} ± {:.5}",
        elbo.mean, iw5.mean, is.mean, is.std_err
    );
    assert!(
        elbo.mean < iw5.mean && iw5.mean < is.mean,
        "{elbo:?} {iw5:?} {is:?}"
    );
    // Its std_err is the spread over the six patterns; the estimator's own error at
    // k = 5000 is far below 0.005 nats here.
    assert!(
        (is.mean - exact).abs() < 0.005,
        "5000-sample estimate {} ± {} vs exact {exact}",
        is.mean,
        is.std_err
    );
}

#[test]
fn beta_schedules_follow_their_definitions_and_are_reported() {
    let mut p = VaeConfig {
        beta: 2.0,
        beta_warmup_steps: 100,
        beta_cycle_steps: 40,
        ..VaeConfig::default()
    };
    assert_eq!(p.beta_at(0), 2.0);
    p.beta_schedule = BetaSchedule::Linear;
    let lin: Vec<f64> = [0, 25, 50, 100, 1000]
        .iter()
        .map(|&s| p.beta_at(s))
        .collect();
    assert_eq!(lin, [0.0, 0.5, 1.0, 2.0, 2.0]);
    p.beta_schedule = BetaSchedule::Cyclical;
    let cyc: Vec<f64> = [0, 10, 20, 39, 40, 50]
        .iter()
        .map(|&s| p.beta_at(s))
        .collect();
    assert_eq!(cyc, [0.0, 1.0, 2.0, 2.0, 0.0, 1.0]);

    let _rng = gm_core::rng_guard::lock();
    let c = cfg(
        "latent = 2\nhidden = [8]\nbeta_schedule = \"linear\"\nbeta_warmup_steps = 4",
        "bars-and-stripes",
        "",
    );
    let d = load(&c);
    tch::manual_seed(0);
    let mut m = vae(&c, &d);
    let betas: Vec<f64> = (0..6)
        .map(|_| {
            let out = m
                .train_step(&gm_core::data::Batch::inputs(&d.train.x.narrow(0, 0, 8)))
                .unwrap();
            let (name, b) = out.last().unwrap();
            assert_eq!(*name, "beta");
            b.double_value(&[])
        })
        .collect();
    assert_eq!(betas, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
}

#[test]
fn iwae_config_errors_name_the_field() {
    let _rng = gm_core::rng_guard::lock();
    for (extra, field) in [
        ("iw_samples = 0", "model.iw_samples"),
        ("iw_samples = 5\nbeta = 0.5", "model.beta"),
        (
            "beta_schedule = \"cyclical\"\nbeta_cycle_steps = 1",
            "model.beta_cycle_steps",
        ),
        ("beta_warmup_steps = 0", "model.beta_warmup_steps"),
        ("input_mask = 1.0", "model.input_mask"),
        ("input_mask = 0.5\niw_samples = 2", "model.input_mask"),
        ("top_latent = -1", "model.top_latent"),
        ("top_latent = 2\ntop_hidden = []", "model.top_hidden"),
        ("top_latent = 2\ntop_hidden = [4, 0]", "model.top_hidden"),
        ("top_latent = 2\ninput_mask = 0.5", "model.input_mask"),
        ("top_latent = 2\nbeta = 0.5", "model.beta"),
        ("top_latent = 2\nconditional = true", "model.conditional"),
    ] {
        let c = cfg(extra, "bars-and-stripes", "");
        let d = load(&c);
        match vae_result(&c, &d) {
            Err(e) => assert!(e.to_string().contains(field), "{extra}: {e}"),
            Ok(_) => panic!("{extra}: accepted"),
        }
    }
}

#[test]
fn active_units_count_the_latent_dimensions_whose_posterior_mean_varies() {
    let _rng = gm_core::rng_guard::lock();
    let c = cfg("latent = 4\nhidden = [8]", "bars-and-stripes", "");
    let d = load(&c);
    tch::manual_seed(0);
    let m = vae(&c, &d);
    // μ is the first half of the encoder head's output: keep dimensions 0 and 1 with large
    // weights, make 2 and 3 constant (zero weights, bias 0.5).
    tch::no_grad(|| {
        let vars = m.var_stores()[0].1.variables();
        let w = vars["encoder.head.weight"].shallow_clone();
        let b = vars["encoder.head.bias"].shallow_clone();
        w.narrow(0, 0, 2)
            .copy_(&(Tensor::randn([2, 8], (Kind::Float, Device::Cpu)) * 5.0));
        let _ = w.narrow(0, 2, 2).zero_();
        let _ = b.narrow(0, 2, 2).fill_(0.5);
    });
    let stats = m.statistics(&d.test, &c).unwrap();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.kind, gm_core::model::StatisticKind::ActiveUnits);
    assert_eq!(s.value, 2.0, "{:?}", s.settings);
    let per_dim = s.settings["variance_per_dimension"].as_array().unwrap();
    assert_eq!(per_dim[2].as_f64(), Some(0.0));
    assert!(per_dim[0].as_f64().unwrap() > 0.01);
}

/// Mean log p(x | z = μ(x̃)) over the 30 patterns of side 4, x̃ with each pixel hidden (0.5)
/// with probability one half: how well x → z survives missing pixels.
fn masked_reconstruction(m: &Vae) -> f64 {
    let x = gm_core::data::bars_and_stripes_patterns(4)
        .reshape([30, 16])
        .repeat([20, 1]);
    let seen = x.masked_fill(&x.rand_like().lt(0.5), 0.5);
    tch::no_grad(|| {
        let (mu, _) = m.encode(&seen);
        m.log_px_given_z(&m.decode_raw(&mu), &x)
            .mean(Kind::Double)
            .double_value(&[])
    })
}

#[test]
fn training_with_masked_inputs_makes_the_encoder_robust_to_missing_pixels() {
    let _rng = gm_core::rng_guard::lock();
    let train = |extra: &str| {
        let c = cfg(
            &format!("latent = 4\nhidden = [32]\n{TCH_INIT}\n{extra}"),
            "bars-and-stripes",
            "",
        );
        let d = load(&c);
        tch::manual_seed(0);
        let mut m = vae(&c, &d);
        for step in 0..800 {
            let i = (step * 32) % (d.train.len() - 32);
            m.train_step(&gm_core::data::Batch::inputs(&d.train.x.narrow(0, i, 32)))
                .unwrap();
        }
        tch::manual_seed(7);
        masked_reconstruction(&m)
    };
    // Under tch's init. Glorot-started, the plain model already scored −6.885 after these
    // 800 steps, the masked one −7.479: masking did not help there.
    let (plain, masked) = (train(""), train("input_mask = 0.5"));
    eprintln!("log p(x | μ(half-masked x)): plain {plain:.3}, trained with masks {masked:.3}");
    assert!(masked > plain + 1.0, "plain {plain}, masked {masked}");
}

/// Exact log p(x) of a two-layer VAE with 1-D z and 1-D z₂, by quadrature over both:
/// p(x) = ∫∫ p(x | z) N(z; μ(z₂), σ²(z₂)) N(z₂; 0, 1) dz dz₂, the Gaussian densities
/// written out here (not the model's).
fn exact_log_px_two_layers(m: &Vae, x: &Tensor) -> Tensor {
    let opts = (Kind::Float, Device::Cpu);
    let (n1, n2) = (1201, 801);
    let z1 = Tensor::linspace(-12.0, 12.0, n1, opts).view([-1, 1]);
    let z2 = Tensor::linspace(-8.0, 8.0, n2, opts).view([-1, 1]);
    let (dz1, dz2) = (24.0 / (n1 - 1) as f64, 16.0 / (n2 - 1) as f64);
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let top = m.top.as_ref().unwrap();
    let (out, (pm, plv)) =
        tch::no_grad(|| (m.decode_raw(&z1), top.prior_below(&z2, m.cfg.activation)));
    let xs = x.reshape([-1, m.dim]).to_kind(Kind::Double);
    let out = out.to_kind(Kind::Double).unsqueeze(1); // [G1, 1, D]
    let log_px_z = (&out * &xs - out.softplus()).sum_dim_intlist(-1, false, Kind::Double); // [G1, N]
    let (pm, plv) = (pm.to_kind(Kind::Double), plv.to_kind(Kind::Double)); // [G2, 1]
    let z1d = z1.to_kind(Kind::Double).view([1, -1]); // [1, G1]
    let log_p1 = ((&z1d - &pm).square() * (-&plv).exp() + &plv + ln2pi) * -0.5; // [G2, G1]
    let log_p2 = (z2.to_kind(Kind::Double).square() + ln2pi) * -0.5; // [G2, 1]
    let joint = log_p1.unsqueeze(-1) + log_px_z.unsqueeze(0) + log_p2.unsqueeze(-1); // [G2, G1, N]
    joint.logsumexp([0, 1], false) + (dz1 * dz2).ln()
}

fn two_layer_bars(extra: &str) -> (RunConfig, Dataset) {
    let c = cfg(
        &format!("latent = 1\nhidden = [8]\ntop_latent = 1\ntop_hidden = [6]\n{extra}"),
        "bars-and-stripes",
        "bars_size = 2",
    );
    let d = load(&c);
    (c, d)
}

#[test]
fn two_layer_bounds_rise_with_k_toward_the_exact_likelihood() {
    let _rng = gm_core::rng_guard::lock();
    let (c, d) = two_layer_bars("iw_samples = 5");
    tch::manual_seed(0);
    let mut m = vae(&c, &d);
    for _ in 0..300 {
        m.train_step(&gm_core::data::Batch::inputs(&d.train.x))
            .unwrap();
    }
    let bits = gm_core::kit::all_binary_vectors(4, Device::Cpu);
    let total = exact_log_px_two_layers(&m, &bits)
        .exp()
        .sum(Kind::Double)
        .double_value(&[]);
    approx::assert_abs_diff_eq!(total, 1.0, epsilon = 1e-3);
    let x = gm_core::data::bars_and_stripes_patterns(2);
    let exact = exact_log_px_two_layers(&m, &x)
        .mean(Kind::Double)
        .double_value(&[]);
    tch::manual_seed(2);
    assert_bounds_rise_to(&m, &x, exact, "two layers");
    // The model's own records, each over 200 copies of the six patterns (one draw of the
    // bound per row, so the means are sharp enough to order).
    let mut run = c.clone();
    run.eval.is_samples = 5000;
    run.eval.chunk = 64;
    let reps = x.repeat([200, 1, 1, 1]);
    let lls = m.log_likelihoods(&reps, &run).unwrap();
    let methods: Vec<_> = lls.iter().map(|l| l.method.as_str()).collect();
    assert_eq!(methods, ["elbo", "iwae-5", "importance-sampling"]);
    let (elbo, iw5, is) = (&lls[0], &lls[1], &lls[2]);
    eprintln!(
        "two layers, records: elbo {:.5}, iwae-5 {:.5}, IS-5000 {:.5}",
        elbo.mean, iw5.mean, is.mean
    );
    assert_eq!(elbo.settings["kl"], "monte-carlo (two stochastic layers)");
    assert!(
        elbo.mean < iw5.mean && iw5.mean < is.mean,
        "{elbo:?} {iw5:?} {is:?}"
    );
    assert!(
        (is.mean - exact).abs() < 0.01,
        "5000-sample estimate {} vs exact {exact}",
        is.mean
    );
}

#[test]
fn the_two_layer_vae_trains_on_its_elbo_and_samples_through_both_layers() {
    let _rng = gm_core::rng_guard::lock();
    let (c, d) = two_layer_bars("");
    tch::manual_seed(1);
    let mut m = vae(&c, &d);
    let names: Vec<_> = m
        .train_step(&gm_core::data::Batch::inputs(&d.train.x))
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names, ["loss", "elbo"]);
    let vars = m.var_stores()[0].1.variables();
    for v in [
        "top.up.fc1.weight",
        "top.up.head.weight",
        "top.down.head.bias",
    ] {
        assert!(vars.contains_key(v), "{v} missing from {:?}", vars.keys());
    }
    let s = m.sample(7).unwrap();
    assert_eq!(s.size(), [7, 1, 2, 2]);
    let (lo, hi) = (s.min().double_value(&[]), s.max().double_value(&[]));
    assert!((0.0..=1.0).contains(&lo) && hi <= 1.0, "{lo} {hi}");
    let stats = m.statistics(&d.test, &c).unwrap();
    let methods: Vec<_> = stats.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "cov-of-posterior-mean",
            "cov-of-posterior-mean, second layer z2"
        ]
    );
    assert_eq!(stats[1].settings["latent"], 1);
}

#[test]
fn the_decoder_starts_at_the_data_marginal_with_glorot_layers() {
    let _rng = gm_core::rng_guard::lock();
    let bias_of = |extra: &str, likelihood: &str| {
        let c = cfg(
            &format!("hidden = [16]\nlatent = 2\nlikelihood = \"{likelihood}\"\n{extra}"),
            "bars-and-stripes",
            "bars_size = 3",
        );
        let mut d = load(&c);
        // Pixels 6 and 7 always off, 8 always on: the marginal is not 0.5 everywhere.
        let shape = d.train.x.size();
        let col = Tensor::arange(9, (Kind::Float, Device::Cpu));
        let x = d.train.x.reshape([shape[0], 9]) * col.lt(6.0);
        d.train.x = x.maximum(&col.eq(8.0).to_kind(Kind::Float)).reshape(shape);
        let m = vae(&c, &d);
        let vars = m.vs.variables();
        let get = |n: &str| Vec::<f32>::try_from(&vars[n].flatten(0, -1)).unwrap();
        let x = Vec::<f32>::try_from(&d.train.x.flatten(0, -1)).unwrap();
        let n = x.len() / 9;
        let mean: Vec<f64> = (0..9)
            .map(|j| (0..n).map(|i| x[i * 9 + j] as f64).sum::<f64>() / n as f64)
            .collect();
        let w = get("encoder.fc1.weight");
        (get("decoder.head.bias"), mean, w, get("encoder.fc1.bias"))
    };
    let (bias, mean, w, b) = bias_of("", "bernoulli");
    assert_eq!((mean[6], mean[8]), (0.0, 1.0));
    for (got, p) in bias.iter().zip(&mean) {
        let p = p.clamp(1e-3, 1.0 - 1e-3);
        approx::assert_abs_diff_eq!(*got as f64, (p / (1.0 - p)).ln(), epsilon = 1e-4);
    }
    let glorot = (6.0f64 / (9.0 + 16.0)).sqrt() as f32;
    assert!(w.iter().all(|v| v.abs() <= glorot), "glorot weights");
    assert!(b.iter().all(|&v| v == 0.0), "glorot biases are 0");
    let (bias, mean, ..) = bias_of("", "gaussian");
    assert_eq!(bias.len(), 18, "a mean and a log-variance per pixel");
    for (got, m) in bias.iter().zip(&mean) {
        approx::assert_abs_diff_eq!(*got as f64, m, epsilon = 1e-6);
    }
    let (bias, mean, w, _) = bias_of("data_bias = false\ninit = \"kaiming\"", "bernoulli");
    assert!(
        bias.iter().all(|v| v.abs() <= 0.25),
        "kept the layer's own bias"
    );
    assert!(bias
        .iter()
        .zip(&mean)
        .any(|(b, m)| (*b as f64 - m).abs() > 1e-3));
    assert!(
        w.iter().any(|v| v.abs() > glorot),
        "kaiming draws wider than glorot"
    );
}
