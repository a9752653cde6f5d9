use crate::gaussian::{Denoiser, GaussianDiffusion, Sampler, Variance};
use crate::nets::{EpsMlp, UNet};
use crate::schedule::Schedule;
use gm_core::prelude::*;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn diffusion(schedule: Schedule, variance: Variance) -> GaussianDiffusion {
    GaussianDiffusion::new(schedule, variance, Kind::Double, Device::Cpu)
}

/// The posterior mean E[ε | x_t] of Gaussian data N(m, s²): the best possible ε_θ.
struct GaussianOracle {
    m: f64,
    s: f64,
    alpha_bar: Vec<f64>,
}

impl GaussianOracle {
    fn new(schedule: &Schedule, m: f64, s: f64) -> Self {
        let alpha_bar = (0..=schedule.steps())
            .map(|t| schedule.alpha_bar(t))
            .collect();
        GaussianOracle { m, s, alpha_bar }
    }
}

impl Denoiser for GaussianOracle {
    fn predict(&self, x: &Tensor, t: &Tensor, _train: bool) -> Tensor {
        let ab = Tensor::from_slice(&self.alpha_bar)
            .to_kind(x.kind())
            .index_select(0, t)
            .view([-1, 1]);
        let one_minus: Tensor = -&ab + 1.0;
        let var = &ab * (self.s * self.s) + &one_minus;
        one_minus.sqrt() * (x - ab.sqrt() * self.m) / var
    }
}

/// A fixed, arbitrary ε_θ(x, t) = tanh(0.7 x + 0.3 t / T − 0.2) (not the oracle).
/// With `learned`, also v = 0.8 tanh(x − 0.1 t) for the variance.
struct Arbitrary(f64, bool);

impl Arbitrary {
    fn v(&self, x: &Tensor, t: &Tensor) -> Tensor {
        (x - t.to_kind(x.kind()).view([-1, 1]) * 0.1).tanh() * 0.8
    }
}

impl Denoiser for Arbitrary {
    fn predict(&self, x: &Tensor, t: &Tensor, _train: bool) -> Tensor {
        let tf = t.to_kind(x.kind()).view([-1, 1]) / self.0;
        let eps = (x * 0.7 + tf * 0.3 - 0.2).tanh();
        if self.1 {
            Tensor::cat(&[eps, self.v(x, t)], 1)
        } else {
            eps
        }
    }
}

fn log_normal(x: &Tensor, mean: &Tensor, var: &Tensor) -> Tensor {
    ((x - mean).square() / var + var.log() + (2.0 * std::f64::consts::PI).ln()).sum_dim_intlist(
        -1,
        false,
        Kind::Double,
    ) * -0.5
}

/// q(x_t | x_0) in closed form equals the composition of the T one-step kernels: exactly
/// for the mean coefficient and variance, and by Monte Carlo for 40,000 chains.
#[test]
fn closed_form_marginal_matches_iterated_steps() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    for schedule in [
        Schedule::linear(50, 1e-3, 0.2).unwrap(),
        Schedule::cosine(50).unwrap(),
    ] {
        let (mut coef, mut var) = (1.0f64, 0.0f64);
        let x0 = Tensor::from_slice(&[1.5f64, -0.5, 0.0])
            .view([1, 3])
            .expand([40_000, 3], false);
        let mut x = x0.copy();
        for t in 1..=50 {
            let b = schedule.beta(t);
            coef *= (1.0 - b).sqrt();
            var = (1.0 - b) * var + b;
            assert!((coef - schedule.alpha_bar(t).sqrt()).abs() < 1e-12);
            assert!((var - (1.0 - schedule.alpha_bar(t))).abs() < 1e-12);
            x = &x * (1.0 - b).sqrt() + x.randn_like() * b.sqrt();
        }
        let d = diffusion(schedule.clone(), Variance::Beta);
        let t = Tensor::full([40_000], 50, (Kind::Int64, Device::Cpu));
        let direct = d.q_sample(&x0, &t, &x0.randn_like());
        let (a, b) = (
            x.mean_dim(0, false, Kind::Double),
            direct.mean_dim(0, false, Kind::Double),
        );
        let se = (2.0 * var / 40_000.0).sqrt();
        assert!((a - b).abs().max().double_value(&[]) < 5.0 * se);
        let (va, vb) = (x.var_dim(0, true, false), direct.var_dim(0, true, false));
        assert!(
            (va - vb).abs().max().double_value(&[]) < 0.05 * var,
            "variances differ"
        );
    }
}

/// The posterior q(x_{t−1} | x_t, x_0) is Bayes' rule on the two Gaussians.
#[test]
fn posterior_is_bayes_rule() {
    let s = Schedule::linear(20, 1e-3, 0.3).unwrap();
    for t in 2..=20 {
        let (ab_prev, b) = (s.alpha_bar(t - 1), s.beta(t));
        let precision = 1.0 / (1.0 - ab_prev) + (1.0 - b) / b;
        let (x0, xt) = (0.8, -1.3);
        let mean = (ab_prev.sqrt() * x0 / (1.0 - ab_prev) + (1.0 - b).sqrt() * xt / b) / precision;
        let (ca, cb) = s.posterior_mean_coefs(t);
        assert!((ca * x0 + cb * xt - mean).abs() < 1e-12, "t = {t}");
        assert!(
            (s.posterior_variance(t) - 1.0 / precision).abs() < 1e-12,
            "t = {t}"
        );
    }
}

/// The bound, summed from its closed-form KLs, equals the plain Monte-Carlo average of
/// log p(x_{0:T}) − log q(x_{1:T} | x_0) over forward chains (T = 4, a fixed ε_θ, f64), for
/// each variance choice (the learned one's σ² computed here from its definition).
#[test]
fn bound_terms_equal_monte_carlo() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    let steps = 4;
    for variance in [Variance::Beta, Variance::Posterior, Variance::Learned] {
        let schedule = Schedule::linear(steps, 0.05, 0.5).unwrap();
        let d = diffusion(schedule.clone(), variance);
        let net = Arbitrary(steps as f64, variance == Variance::Learned);
        let n = 200_000;
        let x0 = Tensor::from_slice(&[0.6f64, -0.3])
            .view([1, 2])
            .expand([n, 2], false)
            .contiguous();
        let (closed, _) = d.bound(&net, &x0, steps - 1);
        // Forward chain x_1 … x_T, then the log-ratio of the joint densities.
        let mut xs = vec![x0.shallow_clone()];
        let mut log_q = Tensor::zeros([n], F64);
        for t in 1..=steps {
            let b = schedule.beta(t);
            let mean = &xs[(t - 1) as usize] * (1.0 - b).sqrt();
            let x = &mean + mean.randn_like() * b.sqrt();
            log_q += log_normal(&x, &mean, &x.full_like(b));
            xs.push(x);
        }
        let last = &xs[steps as usize];
        let mut log_p = log_normal(last, &last.zeros_like(), &last.ones_like());
        for t in 1..=steps {
            let tt = Tensor::full([n], t, (Kind::Int64, Device::Cpu));
            let xt = &xs[t as usize];
            let eps = net.predict(xt, &tt, false).narrow(1, 0, 2);
            let mean = d.model_mean(xt, &tt, &eps, None);
            let var = match (variance, t) {
                (Variance::Posterior, t) if t >= 2 => xt.full_like(schedule.posterior_variance(t)),
                (Variance::Learned, t) => {
                    let f = (net.v(xt, &tt) + 1.0) * 0.5;
                    let low = schedule.posterior_variance(t.max(2)).ln();
                    (&f * schedule.beta(t).ln() + (-&f + 1.0) * low).exp()
                }
                _ => xt.full_like(schedule.beta(t)),
            };
            log_p += log_normal(&xs[(t - 1) as usize], &mean, &var);
        }
        let naive = log_p - log_q;
        let (a, b) = (
            closed.mean(Kind::Double).double_value(&[]),
            naive.mean(Kind::Double).double_value(&[]),
        );
        let se = ((closed.var(true) + naive.var(true)) / n as f64)
            .sqrt()
            .double_value(&[]);
        println!("{variance:?}: closed-form terms {a:.4}, Monte Carlo {b:.4} (se {se:.4})");
        assert!(
            (a - b).abs() < 4.0 * se,
            "{variance:?}: {a} vs {b} (se {se})"
        );
    }
}

/// With the optimal ε_θ of Gaussian data, the bound lies below the data's exact
/// log-density on average over the data (E log p_θ ≤ E log p_data: cross-entropy ≥
/// entropy), by little, and the subset estimate of the sum over t agrees with the full sum.
/// A million examples (paired differences) resolve the gap of about 0.01 nats with
/// σ_t² = β_t. With σ_t² = β̃_t it is nats: where the data's spread exceeds the noise, the
/// true reverse step's variance is about β_t, not β̃_t (Ho et al. 2020, §3.2).
#[test]
fn bound_is_below_exact_log_likelihood_of_gaussian_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(2);
    let (m, s, n) = (0.5, 0.4, 1_000_000);
    let schedule = Schedule::linear(200, 1e-4, 0.1).unwrap();
    let stats = |v: &Tensor| {
        let mean = v.mean(Kind::Double).double_value(&[]);
        (mean, (v.var(true) / n as f64).sqrt().double_value(&[]))
    };
    for variance in [Variance::Beta, Variance::Posterior] {
        let d = diffusion(schedule.clone(), variance);
        let oracle = GaussianOracle::new(&schedule, m, s);
        let x0 = (Tensor::randn([n, 1], F64) * s + m).contiguous();
        let exact = log_normal(&x0, &x0.full_like(m), &x0.full_like(s * s));
        let bound = |k: i64| {
            let parts: Vec<Tensor> = (0..5)
                .map(|i| d.bound(&oracle, &x0.narrow(0, i * n / 5, n / 5), k).0)
                .collect();
            Tensor::cat(&parts, 0)
        };
        let (full, sub) = (bound(199), bound(20));
        let (gap, gap_se) = stats(&(&exact - &full));
        let (diff, diff_se) = stats(&(&full - &sub));
        println!(
            "{variance:?}: exact {:.4}, log p − bound {gap:.4} ± {gap_se:.4}, full − 20-timestep estimate {diff:.4} ± {diff_se:.4}",
            stats(&exact).0
        );
        assert!(
            gap > 3.0 * gap_se,
            "{variance:?}: bound not below log p: gap {gap} ± {gap_se}"
        );
        let most = if variance == Variance::Beta {
            0.05
        } else {
            4.0
        };
        assert!(gap < most, "{variance:?}: bound {gap} nats below log p");
        assert!(
            diff.abs() < 4.0 * diff_se,
            "{variance:?}: subset estimate off by {diff} ± {diff_se}"
        );
    }
}

/// With the optimal ε_θ of N(m, s²), ancestral and DDIM samples have its mean and spread.
#[test]
fn oracle_samplers_reproduce_gaussian_data() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(3);
    let (m, s) = (-0.7, 0.5);
    let schedule = Schedule::linear(500, 1e-4, 0.05).unwrap();
    let d = diffusion(schedule.clone(), Variance::Posterior);
    let oracle = GaussianOracle::new(&schedule, m, s);
    for sampler in [Sampler::Ancestral, Sampler::Ddim(100)] {
        let start = Tensor::randn([20_000, 1], F64);
        let x = d.sample_from(&oracle, start, sampler, None, &mut |_, x| x);
        let (mean, sd) = (
            x.mean(Kind::Double).double_value(&[]),
            x.std(true).double_value(&[]),
        );
        println!("{sampler:?}: mean {mean:.4} (data {m}), sd {sd:.4} (data {s})");
        assert!((mean - m).abs() < 0.03, "{sampler:?} mean {mean}");
        assert!((sd - s).abs() < 0.03, "{sampler:?} sd {sd}");
    }
}

/// A small MLP ε_θ trained on a 1-D mixture of two Gaussians samples it: the weight of
/// each component, its mean, and the histogram (total variation) match the data; with fixed
/// σ_t² = β_t on L_simple, and with a learned variance on the hybrid loss.
#[test]
fn ddpm_learns_a_one_dimensional_mixture() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(4);
    let draw = |n: i64| {
        let left = Tensor::rand([n, 1], (Kind::Float, Device::Cpu)).lt(0.3);
        let a = Tensor::randn([n, 1], (Kind::Float, Device::Cpu)) * 0.3 - 1.5;
        let b = Tensor::randn([n, 1], (Kind::Float, Device::Cpu)) * 0.3 + 1.0;
        a.where_self(&left, &b)
    };
    for (variance, factor) in [(Variance::Beta, 1), (Variance::Learned, 2)] {
        learn_mixture(variance, factor, &draw);
    }
}

fn learn_mixture(variance: Variance, factor: i64, draw: &dyn Fn(i64) -> Tensor) {
    let vs = nn::VarStore::new(Device::Cpu);
    let net = EpsMlp::new(&vs.root(), 1, &[64, 64], factor);
    let d = GaussianDiffusion::new(
        Schedule::cosine(100).unwrap(),
        variance,
        Kind::Float,
        Device::Cpu,
    );
    let mut opt = nn::Adam::default().build(&vs, 2e-3).unwrap();
    for i in 0..3000 {
        opt.set_lr(2e-3 * (1.0 - i as f64 / 3000.0) + 1e-5);
        let loss = d.simple_loss(&net, &draw(1024), true);
        opt.backward_step(&loss);
    }
    let x = tch::no_grad(|| {
        d.sample_from(
            &net,
            Tensor::randn([8000, 1], (Kind::Float, Device::Cpu)),
            Sampler::Ancestral,
            None,
            &mut |_, x| x,
        )
    });
    let data = draw(8000);
    let frac = |v: &Tensor| {
        v.lt(-0.25)
            .to_kind(Kind::Float)
            .mean(Kind::Float)
            .double_value(&[])
    };
    let hist = |v: &Tensor| {
        let bin = ((v.flatten(0, -1) + 3.0) / 0.25)
            .floor()
            .clamp(0.0, 23.0)
            .to_kind(Kind::Int64);
        bin.bincount::<Tensor>(None, 24).to_kind(Kind::Float) / 8000.0
    };
    let tv = ((hist(&x) - hist(&data)).abs().sum(Kind::Float) * 0.5).double_value(&[]);
    let left_mean = |v: &Tensor| {
        v.masked_select(&v.lt(-0.25))
            .mean(Kind::Float)
            .double_value(&[])
    };
    println!(
        "{variance:?}: left weight {:.3} (data {:.3}), left mean {:.3} (data {:.3}), TV {tv:.3}",
        frac(&x),
        frac(&data),
        left_mean(&x),
        left_mean(&data)
    );
    assert!((frac(&x) - 0.3).abs() < 0.03, "{variance:?}");
    assert!((left_mean(&x) + 1.5).abs() < 0.05, "{variance:?}");
    assert!(tv < 0.06, "{variance:?}: total variation {tv}");
}

/// The U-Net keeps the image's shape and starts at ε = 0 (zero last layer).
#[test]
fn unet_keeps_shape_and_starts_at_zero() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(&vs.root(), &[1, 8, 8], &[8, 16, 16], true, 0.0, 1).unwrap();
    let x = Tensor::randn([3, 1, 8, 8], (Kind::Float, Device::Cpu));
    let t = Tensor::from_slice(&[1i64, 5, 9]);
    let e = net.predict(&x, &t, false);
    assert_eq!(e.size(), [3, 1, 8, 8]);
    assert_eq!(e.abs().max().double_value(&[]), 0.0);
    let err = |shape: &[i64], ch: &[i64]| {
        let vs = nn::VarStore::new(Device::Cpu);
        UNet::new(&vs.root(), shape, ch, false, 0.0, 1)
            .err()
            .map(|e| e.to_string())
    };
    assert!(err(&[1, 8, 8], &[8, 12])
        .unwrap()
        .contains("model.channels"));
    assert!(err(&[1, 6, 6], &[8, 8, 8])
        .unwrap()
        .contains("divisible by 4"));
}

/// Binary data is refused, naming `data.binarize`.
#[test]
fn binary_data_is_a_config_error() {
    let cfg = RunConfig::from_toml_str(
        "[model]\nname = \"ddpm\"\n[data]\ndataset = \"bars-and-stripes\"",
    )
    .unwrap();
    let data = data::load(&cfg.data.dataset, &cfg.data.options).unwrap();
    let ctx = BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    };
    let err = super::build(&ctx).err().expect("an error").to_string();
    assert!(err.contains("data.binarize"), "{err}");
}

/// The image path end to end: a small U-Net trained on the 30 bars-and-stripes patterns
/// of side 4 as real images (±1) samples them with DDIM: most samples, thresholded at 0, are
/// valid patterns, and they are crisp (mean |x| near 1).
#[test]
fn unet_ddpm_samples_bars_and_stripes_images() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(6);
    let patterns = gm_core::data::bars_and_stripes_patterns(4).view([30, 1, 4, 4]) * 2.0 - 1.0;
    let vs = nn::VarStore::new(Device::Cpu);
    let net = UNet::new(&vs.root(), &[1, 4, 4], &[16, 16], false, 0.0, 1).unwrap();
    let d = GaussianDiffusion::new(
        Schedule::cosine(100).unwrap(),
        Variance::Beta,
        Kind::Float,
        Device::Cpu,
    );
    let mut opt = nn::Adam::default().build(&vs, 2e-3).unwrap();
    for i in 0..1500 {
        opt.set_lr(2e-3 * (1.0 - i as f64 / 1500.0) + 1e-5);
        let idx = Tensor::randint(30, [64], (Kind::Int64, Device::Cpu));
        let loss = d.simple_loss(&net, &patterns.index_select(0, &idx), true);
        opt.backward_step(&loss);
    }
    let start = Tensor::randn([500, 1, 4, 4], (Kind::Float, Device::Cpu));
    let x = tch::no_grad(|| {
        d.sample_from(
            &net,
            start,
            Sampler::Ddim(50),
            Some((-1.0, 1.0)),
            &mut |_, x| x,
        )
    });
    let b = x.gt(0.0).to_kind(Kind::Float).view([500, 4, 4]);
    let rows = b
        .amax(2, false)
        .eq_tensor(&b.amin(2, false))
        .all_dim(1, false);
    let cols = b
        .amax(1, false)
        .eq_tensor(&b.amin(1, false))
        .all_dim(1, false);
    let valid = rows
        .logical_or(&cols)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    let crisp = x.abs().mean(Kind::Float).double_value(&[]);
    println!("valid {valid:.3}, mean |x| {crisp:.3}");
    assert!(valid > 0.8, "valid fraction {valid}");
    assert!(crisp > 0.8, "mean |x| {crisp}");
}
