use crate::binary::{BinaryDiffusion, Reverse};
use crate::gaussian::Denoiser;
use crate::schedule::Schedule;
use gm_core::prelude::*;
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

/// A fixed, arbitrary x_0 predictor that looks at every pixel and at t.
struct Arbitrary;

impl Denoiser for Arbitrary {
    fn predict(&self, x: &Tensor, t: &Tensor, _train: bool) -> Tensor {
        let tf = t.to_kind(x.kind()).view([-1, 1]);
        let other = x.flip([1]);
        x * 2.5 - 1.2 + other * 0.8 - tf * 0.3
    }
}

/// The 2×2 kernel of step t: K[a][b] = q(x_t = b | x_{t−1} = a).
fn kernel(s: &Schedule, t: i64) -> [[f64; 2]; 2] {
    let h = s.beta(t) / 2.0;
    [[1.0 - h, h], [h, 1.0 - h]]
}

/// q(x_t = 1 | x_0) and q(x_{t−1} | x_t, x_0) against products of the one-step kernels
/// (Bayes' rule on the enumerated joint).
#[test]
fn marginal_and_posterior_match_the_enumerated_chain() {
    let s = Schedule::linear(12, 0.02, 0.4).unwrap();
    let d = BinaryDiffusion::new(s.clone(), Kind::Double, Device::Cpu);
    for x0 in [0.0, 1.0] {
        let mut p = [1.0 - x0, x0]; // q(x_{t−1} | x_0)
        for t in 1..=12 {
            let k = kernel(&s, t);
            let tt = Tensor::from_slice(&[t]);
            for xt in [0.0f64, 1.0] {
                let b = xt as usize;
                let joint1 = p[1] * k[1][b];
                let want = joint1 / (joint1 + p[0] * k[0][b]);
                let got = d
                    .posterior(
                        &Tensor::from_slice(&[x0]).view([1, 1]),
                        &Tensor::from_slice(&[xt]).view([1, 1]),
                        &tt,
                    )
                    .double_value(&[0, 0]);
                assert!(
                    (got - want).abs() < 1e-12,
                    "posterior t = {t}, x0 = {x0}, xt = {xt}"
                );
            }
            p = [
                p[0] * k[0][0] + p[1] * k[1][0],
                p[0] * k[0][1] + p[1] * k[1][1],
            ];
            let m = d
                .marginal(&Tensor::from_slice(&[x0]).view([1, 1]), &tt)
                .double_value(&[0, 0]);
            assert!((m - p[1]).abs() < 1e-12, "marginal t = {t}, x0 = {x0}");
        }
    }
}

/// Both reverse forms against their definitions on the enumerated chain: for x̃_0 ∈ {0, 1},
/// q(x_{t−1}, x_t | x̃_0) = q(x_{t−1} | x̃_0) q(x_t | x_{t−1}); `Joint` normalises
/// Σ_{x̃_0} q(x_{t−1}, x_t | x̃_0) p̃(x̃_0) over x_{t−1}, `Posterior` averages the normalised
/// q(x_{t−1} | x_t, x̃_0) over p̃.
#[test]
fn reverse_forms_match_their_definitions() {
    let s = Schedule::linear(12, 0.02, 0.4).unwrap();
    for form in [Reverse::Joint, Reverse::Posterior] {
        let d = BinaryDiffusion::new(s.clone(), Kind::Double, Device::Cpu).with_reverse(form);
        // q[x0][a] = q(x_{t−1} = a | x̃_0 = x0), advanced step by step.
        let mut q = [[1.0, 0.0], [0.0, 1.0]];
        for t in 1..=12 {
            let k = kernel(&s, t);
            for logit in [-2.3f64, 0.4, 3.1] {
                let w1 = 1.0 / (1.0 + (-logit).exp());
                let w = [1.0 - w1, w1];
                for xt in [0usize, 1] {
                    let joint = |x0: usize, a: usize| q[x0][a] * k[a][xt];
                    let want = match form {
                        Reverse::Joint => {
                            let m = |a| w[0] * joint(0, a) + w[1] * joint(1, a);
                            m(1) / (m(0) + m(1))
                        }
                        Reverse::Posterior => (0..2)
                            .map(|x0| w[x0] * joint(x0, 1) / (joint(x0, 0) + joint(x0, 1)))
                            .sum(),
                    };
                    let got = d
                        .reverse(
                            &Tensor::from_slice(&[logit]).view([1, 1]),
                            &Tensor::from_slice(&[xt as f64]).view([1, 1]),
                            &Tensor::from_slice(&[t]),
                        )
                        .double_value(&[0, 0]);
                    assert!(
                        (got - want).abs() < 1e-12,
                        "{form:?}: t = {t}, logit {logit}, xt = {xt}: {got} vs {want}"
                    );
                }
            }
            q = q.map(|r| {
                [
                    r[0] * k[0][0] + r[1] * k[1][0],
                    r[0] * k[0][1] + r[1] * k[1][1],
                ]
            });
        }
    }
}

/// All 4^T paths of a 2-pixel model: log p_θ(x_0) exactly. The reverse process is
/// normalised, the bound (every term, averaged over 100,000 draws) lies below the exact
/// value, and it equals the plain Monte-Carlo average of log p(x_{0:T}) − log q(x_{1:T} | x_0).
#[test]
fn bound_against_enumeration_of_a_two_pixel_model() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    let steps = 3;
    let s = Schedule::linear(steps, 0.3, 0.9).unwrap();
    for form in [Reverse::Joint, Reverse::Posterior] {
        let d = BinaryDiffusion::new(s.clone(), Kind::Double, Device::Cpu).with_reverse(form);
        two_pixel_bound(&d);
    }
}

fn two_pixel_bound(d: &BinaryDiffusion) {
    let steps = d.steps();
    let states: Vec<[f64; 2]> = vec![[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
    let all = Tensor::from_slice(&states.concat()).view([4, 2]);
    // r[t][a][b] = p(x_{t−1} = b | x_t = a), b and a state indices.
    let r: Vec<Tensor> = (1..=steps)
        .map(|t| {
            let tt = Tensor::full([4], t, (Kind::Int64, Device::Cpu));
            let p1 = d.reverse(&Arbitrary.predict(&all, &tt, false), &all, &tt); // [4, 2]
            let lp1 = p1.log().unsqueeze(1);
            let lp0 = (-&p1 + 1.0).log().unsqueeze(1);
            let b = all.unsqueeze(0);
            (&b * lp1 + (-&b + 1.0) * lp0)
                .sum_dim_intlist(-1, false, Kind::Double)
                .exp()
        })
        .collect();
    let mut p = Tensor::full([4], 0.25, F64); // p(x_T)
    for t in (1..=steps).rev() {
        p = p.unsqueeze(0).matmul(&r[(t - 1) as usize]).squeeze_dim(0);
    }
    assert!((p.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-12);
    let n = 100_000;
    for (i, x) in states.iter().enumerate() {
        let exact = p.double_value(&[i as i64]).ln();
        let x0 = Tensor::from_slice(x)
            .view([1, 2])
            .expand([n, 2], false)
            .contiguous();
        let (bound, _) = d.bound(&Arbitrary, &x0, steps - 1);
        // Forward chains and the log-ratio of the joints.
        let mut xs = vec![x0.shallow_clone()];
        let mut log_ratio = Tensor::zeros([n], F64);
        let index = |v: &Tensor| (v.select(1, 0) * 2.0 + v.select(1, 1)).to_kind(Kind::Int64);
        for t in 1..=steps {
            let prev = &xs[(t - 1) as usize];
            let next =
                (prev * (1.0 - d.schedule().beta(t)) + d.schedule().beta(t) / 2.0).bernoulli();
            let q1 = prev * (1.0 - d.schedule().beta(t)) + d.schedule().beta(t) / 2.0;
            let log_q = (&next * q1.log() + (-&next + 1.0) * (-&q1 + 1.0).log()).sum_dim_intlist(
                1,
                false,
                Kind::Double,
            );
            let log_p = r[(t - 1) as usize]
                .index_select(0, &index(&next))
                .gather(1, &index(prev).unsqueeze(1), false)
                .squeeze_dim(1)
                .log();
            log_ratio += log_p - log_q;
            xs.push(next);
        }
        log_ratio += (0.25f64).ln();
        let (a, b) = (
            bound.mean(Kind::Double).double_value(&[]),
            log_ratio.mean(Kind::Double).double_value(&[]),
        );
        let se = ((bound.var(true) + log_ratio.var(true)) / n as f64)
            .sqrt()
            .double_value(&[]);
        println!("x0 {x:?}: exact {exact:.4}, bound {a:.4}, Monte Carlo {b:.4} (se {se:.4})");
        assert!(a < exact, "bound {a} above log p {exact}");
        assert!(
            (a - b).abs() < 4.0 * se,
            "bound {a} vs Monte Carlo {b} (se {se})"
        );
    }
}

/// On 4×4 bars-and-stripes (30 patterns, log p ≤ −ln 30 = −3.40; uniform −11.09), a small
/// MLP trained for 1,500 steps gives a test bound well above uniform and mostly valid samples.
#[test]
fn learns_bars_and_stripes() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(1);
    let cfg = RunConfig::from_toml_str(
        "[model]\nname = \"binary-diffusion\"\nsteps = 50\nnet = \"mlp\"\nhidden = [128, 128]\nbound_timesteps = 49\n[data]\ndataset = \"bars-and-stripes\"\n[optim]\nkind = \"adam\"\nlr = 2e-3",
    )
    .unwrap();
    let data = data::load(&cfg.data.dataset, &cfg.data.options).unwrap();
    let ctx = BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    };
    let mut m = super::build(&ctx).unwrap();
    let n = data.train.x.size()[0];
    for _ in 0..1500 {
        let idx = Tensor::randint(n, [64], (Kind::Int64, Device::Cpu));
        m.train_step(&Batch::inputs(&data.train.x.index_select(0, &idx)))
            .unwrap();
    }
    let ll = m.log_likelihoods(&data.test.x, &cfg).unwrap();
    let samples = m.sample(2000).unwrap().view([2000, 4, 4]);
    let rows_const = samples
        .amax(2, false)
        .eq_tensor(&samples.amin(2, false))
        .all_dim(1, false);
    let cols_const = samples
        .amax(1, false)
        .eq_tensor(&samples.amin(1, false))
        .all_dim(1, false);
    let valid = rows_const
        .logical_or(&cols_const)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    println!(
        "test bound {:.3} ± {:.3} nats, valid samples {valid:.3}",
        ll[0].mean, ll[0].std_err
    );
    assert!(
        ll[0].mean < -3.40 + 1e-9,
        "bound above the best possible value"
    );
    assert!(
        ll[0].mean > -7.0,
        "bound {} not well above uniform (-11.09)",
        ll[0].mean
    );
    assert!(valid > 0.6, "valid fraction {valid}");
}

/// Real-valued data is refused, naming `data.binarize`; a U-Net on vectors names `model.net`.
#[test]
fn config_errors_name_the_field() {
    let err = |text: &str, build: fn(&BuildContext<'_>) -> gm_core::Result<Box<dyn Model>>| {
        let cfg = RunConfig::from_toml_str(text).unwrap();
        let data = data::load(&cfg.data.dataset, &cfg.data.options).unwrap();
        let ctx = BuildContext {
            cfg: &cfg,
            data: &data,
            device: Device::Cpu,
        };
        build(&ctx).err().expect("an error").to_string()
    };
    let e = err(
        "[model]\nname = \"binary-diffusion\"\n[data]\ndataset = \"two-moons\"",
        super::build,
    );
    assert!(e.contains("data.binarize"), "{e}");
    let e = err(
        "[model]\nname = \"ddpm\"\nnet = \"unet\"\n[data]\ndataset = \"two-moons\"",
        crate::ddpm::build,
    );
    assert!(e.contains("model.net"), "{e}");
}
