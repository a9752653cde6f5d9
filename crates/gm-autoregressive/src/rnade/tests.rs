use super::*;
use crate::common::Autoregressive;
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use std::collections::{BTreeMap, HashMap};
use tch::{Device, Kind, Tensor};

fn rnade(c: &RunConfig, d: &Dataset) -> gm_core::Result<Rnade> {
    let p: RnadeConfig = parse_params("rnade", &c.model.params)?;
    Rnade::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

fn real_rows(n: i64, d: i64) -> Dataset {
    tch::manual_seed(100);
    dataset_of(&Tensor::randn([n, d], (Kind::Float, Device::Cpu)), false)
}

/// The model's variables by name, in name order (so seeded draws land the same way each run).
fn vars(m: &Rnade) -> BTreeMap<String, Tensor> {
    m.var_stores()[0]
        .1
        .variables()
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("rnade.").to_string(), v))
        .collect()
}

/// Random input weights of scale `scale`, head weights of `head`; every bias, mean and log σ
/// random too, log σ biases in [−1, −0.2] so the mixtures are neither degenerate nor flat.
fn randomize(m: &Rnade, scale: f64, head: f64) {
    tch::no_grad(|| {
        for (name, t) in vars(m) {
            let r = Tensor::randn(t.size().as_slice(), (t.kind(), Device::Cpu));
            let v = match name.as_str() {
                "b_sigma" => Tensor::rand(t.size().as_slice(), (t.kind(), Device::Cpu)) * 0.8 - 1.0,
                "b_mu" => r * 1.5,
                "rho" => r * 0.3 + 1.0,
                "v_alpha" | "v_mu" | "v_sigma" => r * head,
                _ => r * scale,
            };
            t.shallow_clone().copy_(&v);
        }
    });
}

fn f64_model(m: &mut Rnade) {
    m.var_stores_mut()[0].1.double();
}

#[test]
fn mixture_log_density_matches_a_direct_computation() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "rnade",
        "hidden = 5\ncomponents = 3\nordering = \"random\"\nordering_seed = 3",
        "two-moons",
        "",
        "",
    );
    tch::manual_seed(1);
    let mut m = rnade(&c, &real_rows(20, 4)).unwrap();
    randomize(&m, 0.7, 0.7);
    f64_model(&mut m);
    let v = vars(&m);
    let x = Tensor::randn([6, 4], (Kind::Double, Device::Cpu));
    let fast = m.log_prob(&x);
    // NADE hidden state and mixture written out step by step: p = Σ_k α_k exp(−z²/2)/(σ√2π).
    let mut expect = Tensor::zeros([6], (Kind::Double, Device::Cpu));
    for (i, &oi) in m.ordering().iter().enumerate() {
        let mut a = v["c"].unsqueeze(0).repeat([6, 1]);
        for &oj in &m.ordering()[..i] {
            a += x.select(1, oj).unsqueeze(1) * v["w"].select(1, oj).unsqueeze(0);
        }
        let h = (a * v["rho"].get(oi)).sigmoid();
        let lin =
            |n: &str| h.matmul(&v[&format!("v_{n}")].get(oi).tr()) + v[&format!("b_{n}")].get(oi);
        let e = lin("alpha").exp();
        let alpha = &e / e.sum_dim_intlist(1, true, Kind::Double);
        let (mu, sigma) = (lin("mu"), lin("sigma").exp());
        let z = (x.select(1, oi).unsqueeze(1) - mu) / &sigma;
        let dens = (alpha * (z.square() * -0.5).exp()
            / (sigma * (2.0 * std::f64::consts::PI).sqrt()))
        .sum_dim_intlist(1, false, Kind::Double);
        expect += dens.log();
    }
    let diff = (&fast - &expect).abs().max().double_value(&[]);
    assert!(diff < 1e-10, "log-densities differ by {diff}");
}

#[test]
fn heads_are_autoregressive() {
    let _rng = crate::test_rng_lock();
    for extra in [
        "hidden = 4\ncomponents = 2",
        "hidden = 4\ncomponents = 3\nordering = \"random\"\nordering_seed = 5",
    ] {
        let c = cfg("rnade", extra, "two-moons", "", "");
        tch::manual_seed(2);
        let m = rnade(&c, &real_rows(20, 6)).unwrap();
        randomize(&m, 1.0, 1.0);
        for which in 0..3 {
            assert_autoregressive(
                |x| {
                    let (_, h) = m.heads(x, true);
                    let t = [&h.alpha_logits, &h.mu, &h.log_sigma][which];
                    t.sum_dim_intlist(2, false, Kind::Float)
                },
                m.ordering(),
            );
        }
    }
}

/// Largest |μ| + 8 σ_max and smallest σ over every input: h ∈ (0, 1)ᴴ, so a head
/// b + V·h lies within b ± Σ|V|.
fn head_bounds(m: &Rnade) -> (f64, f64) {
    let v = vars(m);
    let spread = |n: &str| {
        v[&format!("v_{n}")]
            .abs()
            .sum_dim_intlist(2, false, Kind::Double)
    };
    let mu_max = (v["b_mu"].abs() + spread("mu")).max().double_value(&[]);
    let ls_max = (&v["b_sigma"] + spread("sigma")).max().double_value(&[]);
    let ls_min = (&v["b_sigma"] - spread("sigma")).min().double_value(&[]);
    (mu_max + 8.0 * ls_max.exp(), ls_min.exp())
}

/// Midpoints of `n` cells covering [−l, l] and the cell width.
fn midpoints(l: f64, n: i64) -> (Tensor, f64) {
    let h = 2.0 * l / n as f64;
    let t = Tensor::arange(n, (Kind::Double, Device::Cpu)) * h + (h * 0.5 - l);
    (t, h)
}

#[test]
fn density_integrates_to_one_in_1d_and_2d_and_samples_match_its_moments() {
    let _rng = crate::test_rng_lock();
    // The box holds every component mean ± 8 σ_max (tail mass < 2e-15 per component) and the
    // cells are at most σ_min/2 wide: on a Gaussian of std σ the midpoint rule errs by about
    // 2·exp(−2π²σ²/h²) (1e-34 at h = σ/2), and the conditionals vary smoothly with x₁ (through
    // sigmoids), so the 1e-6 tolerance is dominated by neither.
    for d in [1, 2] {
        let c = cfg(
            "rnade",
            "hidden = 6\ncomponents = 3\nordering = \"random\"\nordering_seed = 8",
            "two-moons",
            "",
            "",
        );
        tch::manual_seed(3);
        let mut m = rnade(&c, &real_rows(20, d)).unwrap();
        randomize(&m, 1.0, 0.2);
        // Sample moments from the f32 model.
        tch::manual_seed(4);
        let n = 200_000;
        let s = m.sample_flat(n).to_kind(Kind::Double);
        assert_eq!(s.size(), vec![n, d]);
        let feats = |x: &Tensor| -> Tensor {
            let mut f = vec![x.shallow_clone(), x.square()];
            if d == 2 {
                f.push((x.select(1, 0) * x.select(1, 1)).unsqueeze(1));
            }
            Tensor::cat(&f, 1)
        };
        let fs = feats(&s);
        let s_mean = fs.mean_dim(0, false, Kind::Double);
        let s_se = fs.std_dim(0, true, false) / (n as f64).sqrt();
        f64_model(&mut m);
        let (l, sigma_min) = head_bounds(&m);
        let cells = (2.0 * l / (sigma_min / 2.0)).ceil() as i64;
        assert!(cells <= 1500, "grid of {cells} cells per axis");
        let (t, h) = midpoints(l, cells);
        let grid = if d == 1 {
            t.unsqueeze(1)
        } else {
            let g = Tensor::meshgrid_indexing(&[&t, &t], "ij");
            Tensor::stack(&[g[0].flatten(0, -1), g[1].flatten(0, -1)], 1)
        };
        let p = tch::no_grad(|| m.log_prob(&grid)).exp();
        let cell = h.powi(d as i32);
        let total = p.sum(Kind::Double).double_value(&[]) * cell;
        assert!(
            (total - 1.0).abs() < 1e-6,
            "D = {d}: ∫p = {total} ({cells} cells per axis)"
        );
        let g_mean = (feats(&grid) * p.unsqueeze(1)).sum_dim_intlist(0, false, Kind::Double) * cell;
        let z = ((&s_mean - &g_mean) / &s_se).abs().max().double_value(&[]);
        eprintln!("rnade D = {d}: ∫p − 1 = {:.2e} ({cells} cells per axis), sample moments within {z:.2} SE", total - 1.0);
        assert!(
            z < 4.5,
            "D = {d}: sample moments {s_mean:?} vs the density's {g_mean:?} ({z:.2} standard errors)"
        );
    }
}

#[test]
fn pseudo_gradient_scales_only_the_mean_gradients() {
    let _rng = crate::test_rng_lock();
    let c = cfg("rnade", "hidden = 5\ncomponents = 3", "two-moons", "", "");
    tch::manual_seed(5);
    let mut m = rnade(&c, &real_rows(20, 2)).unwrap();
    randomize(&m, 0.7, 0.7);
    f64_model(&mut m);
    let x = Tensor::randn([7, 2], (Kind::Double, Device::Cpu));
    let v = vars(&m);
    let names: Vec<String> = {
        let mut n: Vec<String> = v.keys().cloned().collect();
        n.sort();
        n
    };
    let grads = |pseudo: bool| -> HashMap<String, Tensor> {
        let (x_o, heads) = m.heads(&x, pseudo);
        let loss = -Rnade::mixture_log_density(&x_o, &heads).sum(Kind::Double);
        let params: Vec<&Tensor> = names.iter().map(|n| &v[n]).collect();
        let g = Tensor::run_backward(&[loss], &params, false, false);
        names.iter().cloned().zip(g).collect()
    };
    let (g_off, g_on) = (grads(false), grads(true));
    // Closed form of ∂(−log p)/∂μ_k = −r_k (x − μ_k)/σ_k², r_k the responsibilities.
    let (x_o, heads) = tch::no_grad(|| m.heads(&x, false));
    let sigma = heads.log_sigma.exp();
    let log_n = ((x_o.unsqueeze(2) - &heads.mu) / &sigma).square() * -0.5 - &heads.log_sigma;
    let r = (heads.alpha_logits.log_softmax(2, Kind::Double) + log_n).softmax(2, Kind::Double);
    let d_mu = -&r * (x_o.unsqueeze(2) - &heads.mu) / sigma.square();
    let expect_off = d_mu.sum_dim_intlist(0, false, Kind::Double);
    let expect_on = (&d_mu * &sigma).sum_dim_intlist(0, false, Kind::Double);
    let close = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
    assert!(close(&g_off["b_mu"], &expect_off) < 1e-10);
    assert!(close(&g_on["b_mu"], &expect_on) < 1e-10);
    assert!(
        close(&g_on["b_mu"], &g_off["b_mu"]) > 1e-3,
        "the option changed nothing"
    );
    for n in ["b_alpha", "v_alpha", "b_sigma", "v_sigma"] {
        assert_eq!(close(&g_on[n], &g_off[n]), 0.0, "{n}: gradient changed");
    }
    for n in ["v_mu", "w", "c"] {
        assert!(
            close(&g_on[n], &g_off[n]) > 1e-6,
            "{n}: upstream of μ, should change"
        );
    }
    // The forward values are identical.
    let (_, h_on) = tch::no_grad(|| m.heads(&x, true));
    assert_eq!(close(&h_on.mu, &heads.mu), 0.0);
}

fn fit(dataset: &str, steps: usize, extra: &str) -> (f64, f64, Rnade, Tensor) {
    let c = cfg(
        "rnade",
        &format!("hidden = 32\ncomponents = 8\n{extra}"),
        dataset,
        "synthetic_size = 2000",
        "lr = 0.01",
    );
    let d = load(&c);
    tch::manual_seed(6);
    let mut m = rnade(&c, &d).unwrap();
    let x = d.train.x.shallow_clone();
    let nll0 = -tch::no_grad(|| m.log_prob(&x))
        .mean(Kind::Float)
        .double_value(&[]);
    train(&mut m, &x, steps);
    let test = d.test.x.shallow_clone();
    let lls = m.log_likelihoods(&test, &c).unwrap();
    assert_eq!(lls[0].kind, LikelihoodKind::Exact);
    (nll0, lls[0].nll(), m, test)
}

#[test]
fn training_fits_two_moons_and_eight_gaussians() {
    let _rng = crate::test_rng_lock();
    let (a0, a1, _, _) = fit("two-moons", 300, "");
    let (b0, b1, m, test) = fit("eight-gaussians", 300, "");
    eprintln!("rnade test NLL: two-moons {a0:.3} → {a1:.3}; eight-gaussians {b0:.3} → {b1:.3}");
    assert!(a1 < a0 - 0.5 && a1 < 1.5, "two-moons: {a0} → {a1}");
    // Eight Gaussians of std 0.02 have entropy ln 8 + ln(2πe·0.02²) = −2.907 nats.
    assert!(b1 < b0 - 2.0 && b1 < -1.5, "eight-gaussians: {b0} → {b1}");
    // Samples land near the eight modes: the mean distance to the nearest mode is small.
    tch::manual_seed(7);
    let s = m.sample(4000).unwrap();
    let angles = Tensor::arange(8, (Kind::Float, Device::Cpu)) * (std::f64::consts::PI / 4.0);
    let modes = Tensor::stack(&[angles.cos() * 2.0, angles.sin() * 2.0], 1);
    let near = |x: &Tensor| {
        (x.unsqueeze(1) - modes.unsqueeze(0))
            .square()
            .sum_dim_intlist(2, false, Kind::Float)
            .sqrt()
            .amin(1, false)
    };
    let (ds, dt) = (near(&s), near(&test));
    let frac_s = ds
        .lt(0.1)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    let frac_t = dt
        .lt(0.1)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    eprintln!("within 0.1 of a mode: samples {frac_s:.3}, test data {frac_t:.3}");
    assert!(frac_s > 0.8, "{frac_s}");
}

#[test]
fn dequantized_likelihood_is_the_shifted_density_of_noisy_pixels() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(8);
    let k = Tensor::randint(256, [40, 4], (Kind::Int64, Device::Cpu));
    let x = k.to_kind(Kind::Float) / 255.0;
    let c = cfg(
        "rnade",
        "hidden = 4\ncomponents = 2\ndequantize = \"uniform\"",
        "two-moons",
        "",
        "",
    );
    let m = rnade(&c, &dataset_of(&x, false)).unwrap();
    tch::manual_seed(9);
    let y = m.model_inputs(&x);
    let kf = k.to_kind(Kind::Float);
    // (in f32, k + u may round up to k + 1)
    let inside = y
        .ge_tensor(&(&kf / 256.0))
        .logical_and(&y.le_tensor(&((&kf + 1.0) / 256.0)));
    assert_eq!(inside.all().int64_value(&[]), 1);
    let expect = tch::no_grad(|| m.log_prob(&y))
        .mean(Kind::Double)
        .double_value(&[])
        - 4.0 * 256f64.ln();
    tch::manual_seed(9);
    let lls = m.log_likelihoods(&x, &c).unwrap();
    assert_eq!(lls[0].kind, LikelihoodKind::LowerBound);
    approx::assert_abs_diff_eq!(lls[0].mean, expect, epsilon = 1e-4);
    let bad = dataset_of(&(&x * 2.0), false);
    assert_config_error(rnade(&c, &bad), "model.dequantize");
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("rnade", "mixtures = 3", "two-moons", "", "");
    let err = parse_params::<RnadeConfig>("rnade", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mixtures"), "{err}");
    let c = cfg("rnade", "dequantize = \"logit\"", "two-moons", "", "");
    let err = parse_params::<RnadeConfig>("rnade", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("logit"), "{err}");
    let data = real_rows(10, 2);
    for (extra, field) in [
        ("hidden = 0", "model.hidden"),
        ("components = 0", "model.components"),
        ("init_scale = 0.0", "model.init_scale"),
    ] {
        assert_config_error(
            rnade(&cfg("rnade", extra, "two-moons", "", ""), &data),
            field,
        );
    }
    let binary = dataset_of(&Tensor::ones([4, 3], (Kind::Float, Device::Cpu)), true);
    assert_config_error(
        rnade(&cfg("rnade", "", "bars-and-stripes", "", ""), &binary),
        "data.binarize",
    );
}
