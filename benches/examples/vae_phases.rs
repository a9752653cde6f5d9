//! Where a VAE training step spends its time: forward, backward and optimizer update timed
//! separately, on random binary data, for the VAE of `configs/vae-binarized-mnist.toml`.
//!
//! The forward pass repeats `gm_vae::vae::Vae`'s operations one for one (its internals are
//! private), with its parameters in a `VarStore` and `gm_core::optim::Optimizer`, so the three
//! phases add up to what `Model::train_step` costs; the whole `train_step` of the real model
//! is timed beside them as a check. `benches/reference/vae_phases.py` does the same in
//! PyTorch. This is a profiling aid, not a benchmark of record (that is `bench-vae`).
//!
//! ```text
//! cargo run --release -p gm-benches --example vae_phases -- [steps] [threads]
//! ```

use std::time::Instant;

use anyhow::Result;
use gm_benches::{random_binary_dataset, vae_run_config};
use gm_core::model::BuildContext;
use gm_core::optim::Optimizer;
use tch::nn::{self, Module, OptimizerConfig, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

const B: i64 = 100;

struct Net {
    enc: Vec<nn::Linear>,
    enc_head: nn::Linear,
    dec: Vec<nn::Linear>,
    dec_head: nn::Linear,
}

impl Net {
    fn new(vs: &VarStore) -> Net {
        let r = vs.root();
        let l = |p: nn::Path, i, o| nn::linear(p, i, o, Default::default());
        Net {
            enc: vec![
                l(&r / "encoder" / "fc1", 784, 200),
                l(&r / "encoder" / "fc2", 200, 200),
            ],
            enc_head: l(&r / "encoder" / "head", 200, 100),
            dec: vec![
                l(&r / "decoder" / "fc1", 50, 200),
                l(&r / "decoder" / "fc2", 200, 200),
            ],
            dec_head: l(&r / "decoder" / "head", 200, 784),
        }
    }

    /// `Vae::terms` + `Vae::metrics`: returns (loss, the other metrics).
    fn loss(&self, x: &Tensor) -> (Tensor, Vec<Tensor>) {
        let x = x.reshape([-1, 784]);
        let mut h = x.shallow_clone();
        for l in &self.enc {
            h = l.forward(&h).tanh();
        }
        let mut parts = self.enc_head.forward(&h).chunk(2, 1);
        let log_var = parts.pop().unwrap();
        let mu = parts.pop().unwrap();
        let std = (&log_var * 0.5).exp();
        let z = &mu + &std * std.randn_like();
        let mut h = z;
        for l in &self.dec {
            h = l.forward(&h).tanh();
        }
        let out = self.dec_head.forward(&h);
        let log_px = -out
            .binary_cross_entropy_with_logits::<Tensor>(&x, None, None, Reduction::None)
            .sum_dim_intlist(-1, false, Kind::Float);
        let kl = ((mu.square() + log_var.exp() - log_var - 1.0) * 0.5).sum_dim_intlist(
            -1,
            false,
            Kind::Float,
        );
        let rec = -log_px.mean(Kind::Float);
        let kl_m = kl.mean(Kind::Float);
        let loss = &rec + &kl_m * 1.0;
        let elbo = -(&rec + &kl_m);
        (loss, vec![elbo, rec, kl_m])
    }
}

/// The arithmetic of `gm_core::optim::Optimizer`'s Adam update, op for op.
fn adam_math(flat: &mut Tensor, m: &mut Tensor, v: &mut Tensor, g: &Tensor, t: i32) -> Result<()> {
    let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 1e-3, 1e-4);
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    let _ = m.f_lerp_(g, 1.0 - b1)?;
    let _ = v.f_mul_scalar_(b2)?;
    let _ = v.f_addcmul_(&(g * (1.0 - b2)), g)?;
    let mut denom = v.sqrt();
    let _ = denom.f_mul_scalar_(1.0 / bc2.sqrt())?;
    let _ = denom.f_add_scalar_(eps)?;
    let _ = denom.f_mul_scalar_(-bc1 / lr)?;
    let _ = flat.f_addcdiv_(m, &denom)?;
    Ok(())
}

/// The same update with fewer passes and no allocation: `g²` and the denominator go to a
/// persistent scratch buffer, `v` is updated by one `lerp_`, and the three scalar operations
/// on the denominator are folded into two.
fn adam_math_lean(
    p: &mut Tensor,
    m: &mut Tensor,
    v: &mut Tensor,
    g: &Tensor,
    scratch: &mut Tensor,
    t: i32,
) -> Result<()> {
    let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 1e-3, 1e-4);
    let bc1 = 1.0 - b1.powi(t);
    let bc2 = 1.0 - b2.powi(t);
    let _ = m.f_lerp_(g, 1.0 - b1)?;
    let _ = g.f_mul_out(scratch, g)?;
    let _ = v.f_lerp_(scratch, 1.0 - b2)?;
    let _ = v.f_sqrt_out(scratch)?;
    // p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps)  =  p += m / (sqrt(v)·a + b)
    let _ = scratch.f_mul_scalar_(-bc1 / (lr * bc2.sqrt()))?;
    let _ = scratch.f_add_scalar_(-bc1 * eps / lr)?;
    let _ = p.f_addcdiv_(m, scratch)?;
    Ok(())
}

fn ms(t: Instant, n: u64) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0 / n as f64
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let steps: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);
    let threads: i32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    tch::set_num_threads(threads);
    let cfg = vae_run_config("binarized-mnist", B)?;
    let data = random_binary_dataset(B, 0);
    let x = data.train.x.shallow_clone();

    // The real model, for reference.
    let mut model = gm_vae::vae::build(&BuildContext {
        cfg: &cfg,
        data: &data,
        device: Device::Cpu,
    })?;
    for _ in 0..20 {
        model.train_step(&gm_core::data::Batch::inputs(&x))?;
    }
    let t = Instant::now();
    for _ in 0..steps {
        model.train_step(&gm_core::data::Batch::inputs(&x))?;
    }
    let full = ms(t, steps);

    // The same step in three timed phases.
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let net = Net::new(&vs);
    let mut opt = Optimizer::new(&vs, &cfg.optim)?;
    let params: Vec<Tensor> = opt.params().iter().map(Tensor::shallow_clone).collect();
    let (mut f, mut b, mut o, mut m) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..steps + 20 {
        let t0 = Instant::now();
        let (loss, rest) = net.loss(&x);
        let t1 = Instant::now();
        let grads = Tensor::f_run_backward(&[&loss], &params, false, false)?;
        let t2 = Instant::now();
        opt.apply_gradients(&grads)?;
        let t3 = Instant::now();
        let v = tch::no_grad(|| {
            let mut all = vec![loss.detach().to_kind(Kind::Double)];
            all.extend(rest.iter().map(|t| t.detach().to_kind(Kind::Double)));
            Tensor::stack(&all, 0) * B as f64
        });
        let _ = v;
        let t4 = Instant::now();
        if i >= 20 {
            f += (t1 - t0).as_secs_f64();
            b += (t2 - t1).as_secs_f64();
            o += (t3 - t2).as_secs_f64();
            m += (t4 - t3).as_secs_f64();
        }
    }
    let per = |s: f64| s * 1000.0 / steps as f64;

    // tch's own Adam (per-parameter updates) on the same network, for comparison.
    tch::manual_seed(0);
    let vs2 = VarStore::new(Device::Cpu);
    let net2 = Net::new(&vs2);
    let mut adam = nn::Adam {
        beta1: 0.9,
        beta2: 0.999,
        wd: 0.0,
        eps: 1e-4,
        amsgrad: false,
    }
    .build(&vs2, 1e-3)?;
    let mut tch_opt = 0.0;
    for i in 0..steps + 20 {
        let (loss, _) = net2.loss(&x);
        adam.zero_grad();
        loss.backward();
        let t0 = Instant::now();
        adam.step();
        if i >= 20 {
            tch_opt += t0.elapsed().as_secs_f64();
        }
    }

    // gm's Adam arithmetic on the flat buffer: as gm_core::optim does it (grads
    // concatenated, whole buffer), in chunks small enough to stay in cache between its ~10
    // passes, and a leaner form (7 passes, no allocation) over the whole buffer, over cache-sized
    // chunks, and per parameter tensor (no concatenation).
    let n = opt.params().iter().map(|p| p.numel() as i64).sum::<i64>();
    let mut upd = [0.0f64; 5];
    const CHUNK: i64 = 32 * 1024;
    tch::no_grad(|| -> Result<()> {
        let flat = Tensor::randn([n], (Kind::Float, Device::Cpu)) * 0.05;
        let (m_, v_) = (flat.zeros_like(), flat.zeros_like());
        let scratch = flat.zeros_like();
        let sizes: Vec<i64> = params.iter().map(|p| p.numel() as i64).collect();
        let grads: Vec<Tensor> = params.iter().map(|p| p.randn_like() * 1e-2).collect();
        let views = |t: &Tensor| -> Vec<Tensor> {
            let mut off = 0;
            sizes
                .iter()
                .map(|&k| {
                    off += k;
                    t.narrow(0, off - k, k)
                })
                .collect()
        };
        let (pv, mv, vv, sv) = (views(&flat), views(&m_), views(&v_), views(&scratch));
        for i in 0..steps + 20 {
            let step = (i + 1) as i32;
            for (variant, slot) in upd.iter_mut().enumerate() {
                let t0 = Instant::now();
                if variant == 4 {
                    for (k, g) in grads.iter().enumerate() {
                        adam_math_lean(
                            &mut pv[k].shallow_clone(),
                            &mut mv[k].shallow_clone(),
                            &mut vv[k].shallow_clone(),
                            &g.reshape([-1]),
                            &mut sv[k].shallow_clone(),
                            step,
                        )?;
                    }
                } else {
                    let flat_g: Vec<Tensor> = grads.iter().map(|g| g.reshape([-1])).collect();
                    let g = Tensor::cat(&flat_g, 0);
                    let chunk = if variant == 1 || variant == 3 {
                        CHUNK
                    } else {
                        n
                    };
                    let mut s = 0;
                    while s < n {
                        let len = chunk.min(n - s);
                        let (mut p, mut m, mut v) = (
                            flat.narrow(0, s, len),
                            m_.narrow(0, s, len),
                            v_.narrow(0, s, len),
                        );
                        let gs = g.narrow(0, s, len);
                        if variant < 2 {
                            adam_math(&mut p, &mut m, &mut v, &gs, step)?;
                        } else {
                            let mut sc = scratch.narrow(0, s, len);
                            adam_math_lean(&mut p, &mut m, &mut v, &gs, &mut sc, step)?;
                        }
                        s += len;
                    }
                }
                if i >= 20 {
                    *slot += t0.elapsed().as_secs_f64();
                }
            }
        }
        Ok(())
    })?;
    // The lean update gives the same numbers as gm's (up to rounding).
    tch::no_grad(|| -> Result<()> {
        let p0 = Tensor::randn([1000], (Kind::Float, Device::Cpu));
        let g = Tensor::randn([1000], (Kind::Float, Device::Cpu));
        let (mut p1, mut p2) = (p0.copy(), p0.copy());
        let (mut m1, mut v1, mut m2, mut v2) = (
            p0.zeros_like(),
            p0.zeros_like(),
            p0.zeros_like(),
            p0.zeros_like(),
        );
        let mut sc = p0.zeros_like();
        for t in 1..=5 {
            adam_math(&mut p1, &mut m1, &mut v1, &g, t)?;
            adam_math_lean(&mut p2, &mut m2, &mut v2, &g, &mut sc, t)?;
        }
        let d = (&p1 - &p2).abs().max().double_value(&[]);
        anyhow::ensure!(d < 1e-6, "lean Adam differs from gm's by {d}");
        Ok(())
    })?;

    println!("threads {threads}, batch {B}, {steps} steps (ms per step)");
    println!("  Model::train_step (gm-vae)        {full:8.3}");
    println!("  forward + metrics                 {:8.3}", per(f));
    println!("  backward (run_backward)           {:8.3}", per(b));
    println!("  update (gm Optimizer, flat Adam)  {:8.3}", per(o));
    println!("  metrics to f64 + stack (trainer)  {:8.3}", per(m));
    println!(
        "  sum of phases                     {:8.3}",
        per(f + b + o + m)
    );
    println!("  update (tch nn::Adam, per tensor) {:8.3}", per(tch_opt));
    let names = [
        "gm Adam math, whole flat buffer   ",
        "gm Adam math, 32k-element chunks  ",
        "lean Adam, whole flat buffer      ",
        "lean Adam, 32k-element chunks     ",
        "lean Adam, per parameter, no cat  ",
    ];
    for (name, t) in names.iter().zip(upd) {
        println!("  {name}{:8.3}", per(t));
    }
    Ok(())
}
