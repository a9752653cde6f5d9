//! Checks of the DBM against brute force over every state of every unit of tiny models:
//! log Z and p(v), the mean-field bound and fixed point, the invariance of block Gibbs,
//! Algorithm 20.1's update against autograd, and training on bars and stripes.

use super::*;
use crate::rbm::exact::bit_rows;
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::kit::gradcheck::{assert_gradients_match, autograd};
use gm_core::kit::{empirical_distribution, rows_dataset, total_variation};
use gm_core::model::{
    parse_params, BuildContext, LikelihoodKind, LogLikelihood, Model, ModelRegistry,
};
use gm_eval::ais::{AisResult, Schedule};
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn cfg(model: &str, data: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 1\n[model]\nname = \"dbm\"\n{model}\n[data]\n{data}\n[optim]\nkind = \"sgd\"\n\
         lr = 0.02\nmomentum = 0.5\n[eval]\nais_steps = 1000\nais_chains = 50\n"
    ))
    .unwrap()
}

fn build(c: &RunConfig, d: &Dataset) -> gm_core::Result<Dbm> {
    let p: DbmConfig = parse_params("dbm", &c.model.params)?;
    Dbm::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// An f64 DBM on `d` visible units with hidden sizes `hidden` (TOML array), W ~ N(0,
/// scale²) and biases ~ N(0, 0.5²).
fn random_dbm(d: i64, hidden: &str, scale: f64, extra: &str) -> Dbm {
    let x = Tensor::rand([40, d], F64).lt(0.5).to_kind(Kind::Double);
    let c = cfg(
        &format!("dtype = \"float64\"\nhidden = {hidden}\nchains = 20\n{extra}"),
        "dataset = \"bars-and-stripes\"\nbatch_size = 40",
    );
    let dbm = build(&c, &rows_dataset(&x, true)).unwrap();
    let (w, b) = dbm.params();
    tch::no_grad(|| {
        for (t, s) in w
            .iter()
            .map(|t| (t, scale))
            .chain(b.iter().map(|t| (t, 0.5)))
        {
            t.shallow_clone()
                .copy_(&(Tensor::randn(t.size().as_slice(), F64) * s));
        }
    });
    dbm
}

/// Every state of every unit as per-layer tensors (row k = bits of k, v in the lowest
/// bits), and −E of each, `[2^n]`.
fn all_states(dbm: &Dbm) -> (Vec<Tensor>, Tensor) {
    let n: i64 = dbm.sizes().iter().sum();
    let bits = bit_rows(0, 1 << n, n, Device::Cpu);
    let mut col = 0;
    let mut x = Vec::new();
    for &s in dbm.sizes() {
        x.push(bits.narrow(1, col, s));
        col += s;
    }
    let neg_e = tch::no_grad(|| -dbm.energy(&x));
    (x, neg_e)
}

/// log p(v) of every visible state by brute force, `[2^D]`, and log Z.
fn brute_log_p(dbm: &Dbm) -> (Tensor, f64) {
    let (_, neg_e) = all_states(dbm);
    let d = dbm.sizes()[0];
    let log_z = neg_e.logsumexp([0], false).double_value(&[]);
    (
        neg_e.view([-1, 1 << d]).logsumexp([0], false) - log_z,
        log_z,
    )
}

fn visible_states(dbm: &Dbm) -> Tensor {
    let d = dbm.sizes()[0];
    bit_rows(0, 1 << d, d, Device::Cpu)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn log_z_and_log_p_match_brute_force_over_all_units() {
    let _rng = gm_core::rng_guard::seeded(3);
    for (d, hidden) in [(6, "[4, 3]"), (4, "[3, 3, 3]"), (3, "[2, 3, 2, 2]")] {
        let dbm = random_dbm(d, hidden, 1.0, "");
        let (log_p, log_z) = brute_log_p(&dbm);
        let (odd, even) = (dbm.log_z_by(true).unwrap(), dbm.log_z_by(false).unwrap());
        eprintln!("{d}-{hidden}: log Z brute force {log_z:.10}, odd {odd:.10}, even {even:.10}");
        assert!((odd - log_z).abs() < 1e-9 && (even - log_z).abs() < 1e-9);
        let mine = dbm.exact_log_p(&visible_states(&dbm)).unwrap();
        assert!(max_abs(&mine, &log_p) < 1e-9, "{d}-{hidden}: log p(v)");
        let total = mine.logsumexp([0], false).double_value(&[]);
        assert!(total.abs() < 1e-10, "{d}-{hidden}: log Σ_v p(v) = {total}");
    }
}

#[test]
fn mean_field_bound_is_below_log_p_and_tight_when_the_posterior_factorises() {
    let _rng = gm_core::rng_guard::seeded(4);
    let dbm = random_dbm(
        6,
        "[4, 3]",
        1.0,
        "mf_tolerance = 1e-12\nmf_max_iters = 1000",
    );
    let v = visible_states(&dbm);
    let (log_z, _) = dbm.exact_log_z().unwrap();
    let exact = dbm.exact_log_p(&v).unwrap();
    let (bound, _) = dbm.mean_field_bound(&v, log_z);
    let gap = (&exact - &bound).min().double_value(&[]);
    let mean_gap = (&exact - &bound).mean(Kind::Double).double_value(&[]);
    eprintln!("bound gap over all v: min {gap:.3e}, mean {mean_gap:.4}");
    assert!(gap > -1e-10, "the bound exceeds log p(v) by {}", -gap);
    assert!(
        mean_gap > 1e-4,
        "the bound is tight with W2 ≠ 0: the check would be empty"
    );

    // W2 = 0: p(h1, h2 | v) = p(h1 | v) p(h2), which the mean field represents exactly.
    tch::no_grad(|| {
        let _ = dbm.params().0[1].shallow_clone().zero_();
    });
    let (log_z, _) = dbm.exact_log_z().unwrap();
    let exact = dbm.exact_log_p(&v).unwrap();
    let (bound, mf) = dbm.mean_field_bound(&v, log_z);
    let err = max_abs(&exact, &bound);
    eprintln!("W2 = 0: max |bound − log p(v)| = {err:.3e}");
    assert!(err < 1e-6);
    // The means are the exact posterior marginals (brute force over all units).
    let (x, neg_e) = all_states(&dbm);
    let post = neg_e.view([-1, 64]).tr().softmax(1, Kind::Double); // [v, h]
    let h_bits = Tensor::cat(
        &[
            x[1].view([-1, 64, 4]).select(1, 0),
            x[2].view([-1, 64, 3]).select(1, 0),
        ],
        1,
    );
    let marginals = post.mm(&h_bits);
    let means = Tensor::cat(&mf.means[1..], 1);
    assert!(max_abs(&marginals, &means) < 1e-9);
}

#[test]
fn mean_field_fixed_point_satisfies_its_equations() {
    let _rng = gm_core::rng_guard::seeded(5);
    let tol = 1e-8;
    let dbm = random_dbm(
        8,
        "[6, 5, 4]",
        1.0,
        &format!("mf_tolerance = {tol}\nmf_max_iters = 500"),
    );
    let v = Tensor::rand([50, 8], F64).lt(0.5).to_kind(Kind::Double);
    let mf = dbm.mean_field(&v);
    eprintln!(
        "mean field: {} iterations, residual {:.3e}",
        mf.iters, mf.residual
    );
    assert!(mf.iters > 1 && mf.iters < 500 && mf.residual < tol);
    for l in 1..=dbm.depth() {
        let r = max_abs(&mf.means[l], &dbm.input(&mf.means, l).sigmoid());
        let allowed = if l % 2 == 1 { tol } else { 1e-14 };
        assert!(r <= allowed, "layer {l}: residual {r}");
    }
    // A cap of one iteration is reported as such, with its larger residual.
    let capped = random_dbm(8, "[6, 5, 4]", 1.0, "mf_tolerance = 1e-8\nmf_max_iters = 1");
    let (w, b) = dbm.params();
    let (cw, cb) = capped.params();
    tch::no_grad(|| {
        for (to, from) in cw.iter().zip(w).chain(cb.iter().zip(b)) {
            to.shallow_clone().copy_(from);
        }
    });
    let one = capped.mean_field(&v);
    assert_eq!(one.iters, 1);
    assert!(one.residual > tol);
    let metrics = capped.mean_field_metrics(&one);
    let iters = metrics.iter().find(|(n, _)| *n == "mf_iters").unwrap();
    assert_eq!(iters.1.double_value(&[]), 1.0);
}

#[test]
fn block_gibbs_leaves_the_exact_distribution_invariant() {
    let _rng = gm_core::rng_guard::seeded(6);
    let dbm = random_dbm(4, "[3, 2]", 1.0, "");
    let p = dbm.exact_log_p(&visible_states(&dbm)).unwrap().exp();
    let n = 40_000;
    let mut x = dbm.fresh_chains(n);
    dbm.gibbs(&mut x, 100);
    let tv = total_variation(&empirical_distribution(&x[0]), &p);
    // Expected TV of an n-sample histogram from p (normal approximation).
    let noise = (&p * (p.ones_like() - &p) * (2.0 / (std::f64::consts::PI * n as f64)))
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[])
        * 0.5;
    // The same model without its top layer's weights is far enough to be told apart.
    tch::no_grad(|| {
        let _ = dbm.params().0[1].shallow_clone().zero_();
    });
    let q = dbm.exact_log_p(&visible_states(&dbm)).unwrap().exp();
    let tv_other = total_variation(&q, &p);
    eprintln!("TV after 100 sweeps of {n} chains: {tv:.4} (noise ≈ {noise:.4}; W2 = 0 model at {tv_other:.4})");
    assert!(tv < 2.0 * noise, "TV {tv} vs sampling noise {noise}");
    assert!(
        tv_other > 4.0 * noise,
        "the check could not tell W2 = 0 apart"
    );
}

/// A positive phase (mean field of 30 random 7-unit rows) and a negative one (20 fresh
/// chains after 3 sweeps) of `dbm`.
fn both_phases(dbm: &Dbm) -> (MeanField, Vec<Tensor>) {
    let v = Tensor::rand([30, 7], F64).lt(0.5).to_kind(Kind::Double);
    let mut neg = dbm.fresh_chains(20);
    let mf = dbm.mean_field(&v);
    dbm.gibbs(&mut neg, 3);
    (mf, neg)
}

#[test]
fn hand_update_is_the_autograd_gradient_of_the_surrogate() {
    let _rng = gm_core::rng_guard::seeded(7);
    let dbm = random_dbm(7, "[5, 4, 3]", 0.7, "weight_decay = 0.01");
    let (mf, neg) = both_phases(&dbm);
    let hand = dbm.hand_gradients(&mf.means, &neg);
    let (w, b) = dbm.params();
    let params: Vec<&Tensor> = w.iter().chain(b).collect();
    let auto = autograd(&dbm.surrogate(&mf.means, &neg), &params);
    let names = ["W1", "W2", "W3", "b0", "b1", "b2", "b3"];
    let worst = assert_gradients_match("Algorithm 20.1", &names, &hand, &auto, 1e-12, 1e-3);
    eprintln!("hand vs autograd: largest difference {worst:.3e}");
}

/// The centered energy −Σ (x_l−o_l)·b′_l − Σ (x_{l−1}−o_{l−1})ᵀ W_l (x_l−o_l), `[N]`,
/// written out independently of the model.
fn centered_energy(x: &[Tensor], o: &[Tensor], w: &[Tensor], b: &[Tensor]) -> Tensor {
    let c: Vec<Tensor> = x.iter().zip(o).map(|(x, o)| x - o).collect();
    let mut e = -c[0].matmul(&b[0]);
    for l in 1..c.len() {
        e = e
            - c[l].matmul(&b[l])
            - (c[l - 1].matmul(&w[l - 1]) * &c[l]).sum_dim_intlist(1, false, Kind::Double);
    }
    e
}

/// With centering on, one SGD step of the stored parameters along `hand_gradients` leaves
/// the same model as one SGD step of the centered parameters (W, b′_l = b_l + W_lᵀ o_{l−1}
/// + W_{l+1} o_{l+1}) along autograd of the centered surrogate, mapped back.
#[test]
fn centered_update_is_a_step_of_the_centered_parametrisation() {
    let _rng = gm_core::rng_guard::seeded(9);
    let dbm = random_dbm(7, "[5, 4, 3]", 0.7, "weight_decay = 0.01\ncentering = true");
    let o = dbm.offsets().expect("centering on");
    tch::no_grad(|| {
        for t in o {
            t.shallow_clone()
                .copy_(&(Tensor::rand(t.size().as_slice(), F64) * 0.8 + 0.1));
        }
    });
    let (mf, neg) = both_phases(&dbm);
    let hand = dbm.hand_gradients(&mf.means, &neg);
    let (w, b) = dbm.params();
    let depth = w.len();
    let to_centered = |w: &[Tensor], b: &[Tensor], sign: f64| -> Vec<Tensor> {
        (0..=depth)
            .map(|l| {
                let mut t = b[l].copy();
                if l >= 1 {
                    t += w[l - 1].tr().mv(&o[l - 1]) * sign;
                }
                if l < depth {
                    t += w[l].mv(&o[l + 1]) * sign;
                }
                t
            })
            .collect()
    };
    let wc: Vec<Tensor> = w
        .iter()
        .map(|t| t.detach().set_requires_grad(true))
        .collect();
    let bc: Vec<Tensor> = to_centered(w, b, 1.0)
        .iter()
        .map(|t| t.detach().set_requires_grad(true))
        .collect();
    let det = |x: &[Tensor]| -> Vec<Tensor> { x.iter().map(|t| t.detach()).collect() };
    let mut s = centered_energy(&det(&mf.means), o, &wc, &bc).mean(Kind::Double)
        - centered_energy(&det(&neg), o, &wc, &bc).mean(Kind::Double);
    for t in &wc {
        s += t.square().sum(Kind::Double) * 0.005;
    }
    let params: Vec<&Tensor> = wc.iter().chain(&bc).collect();
    let g = autograd(&s, &params);
    let lr = 0.3;
    let (w_new, bc_new): (Vec<Tensor>, Vec<Tensor>) = (
        (0..depth).map(|l| wc[l].detach() - &g[l] * lr).collect(),
        (0..=depth)
            .map(|l| bc[l].detach() - &g[depth + l] * lr)
            .collect(),
    );
    let b_new = to_centered(&w_new, &bc_new, -1.0);
    let mut worst: f64 = 0.0;
    for l in 0..depth {
        worst = worst.max(max_abs(&(&w[l] - &hand[l] * lr), &w_new[l]));
    }
    for l in 0..=depth {
        worst = worst.max(max_abs(&(&b[l] - &hand[depth + l] * lr), &b_new[l]));
    }
    eprintln!("centered step: largest parameter difference {worst:.3e}");
    assert!(worst < 1e-12, "{worst}");
    // The centered direction differs from the plain one (the check is not vacuous).
    let plain = {
        let d = random_dbm(7, "[5, 4, 3]", 0.7, "weight_decay = 0.01");
        copy_params(&dbm, &d);
        d.hand_gradients(&mf.means, &neg)
    };
    assert!(max_abs(&plain[depth], &hand[depth]) > 1e-3);
}

/// Copies the weights and biases of `from` into `to` (same sizes).
fn copy_params(from: &Dbm, to: &Dbm) {
    let ((wf, bf), (wt, bt)) = (from.params(), to.params());
    tch::no_grad(|| {
        for (a, b) in wf.iter().chain(bf).zip(wt.iter().chain(bt)) {
            b.shallow_clone().copy_(a);
        }
    });
}

/// 3,000 updates of a 16-8-4 DBM on the 4×4 patterns, the last fifth at a fifth of the
/// rate (measured with seed 8: exact log p −11.14 → −4.92; the optimum is log(1/30) = −3.40).
#[test]
fn training_on_bars_and_stripes_raises_the_exact_log_likelihood() {
    let _rng = gm_core::rng_guard::seeded(8);
    let mut c = cfg(
        "hidden = [8, 4]\nchains = 100\ngibbs_steps = 5\ninit_std = 0.1\nmf_tolerance = 1e-4",
        "dataset = \"bars-and-stripes\"\nbatch_size = 30",
    );
    c.optim.lr = 0.05;
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let mut m = build(&c, &d).unwrap();
    let pats = data::bars_and_stripes_patterns(4);
    let before = m.log_likelihoods(&pats, &c).unwrap();
    let x = d.train.x.reshape([-1, 16]);
    let n = x.size()[0];
    let steps = 3000;
    let mut iters = 0.0;
    for s in 0..steps {
        if s == steps * 4 / 5 {
            m.optimizers()[0].1.set_lr(c.optim.lr / 5.0);
        }
        let start = (s * 30) % (n - 30);
        let metrics = m
            .train_step(&Batch::inputs(&x.narrow(0, start, 30)))
            .unwrap();
        iters += metrics
            .iter()
            .find(|(k, _)| *k == "mf_iters")
            .unwrap()
            .1
            .double_value(&[]);
    }
    let after = m.log_likelihoods(&pats, &c).unwrap();
    assert_eq!(after[0].kind, LikelihoodKind::Exact);
    assert_eq!(after[1].kind, LikelihoodKind::LowerBound);
    eprintln!(
        "bars and stripes 4×4, 16-8-4 DBM, {steps} updates (mean {:.1} mean-field iterations): \
         exact log p {:.4} → {:.4}, mean-field bound {:.4} → {:.4} (optimum {:.4})",
        iters / steps as f64,
        before[0].mean,
        after[0].mean,
        before[1].mean,
        after[1].mean,
        -(30f64.ln())
    );
    assert!(after[1].mean <= after[0].mean + 1e-5);
    assert!(after[0].mean > -6.0 && after[0].mean > before[0].mean + 4.0);
}

#[test]
fn samples_figures_metrics_and_likelihood_labels() {
    let _rng = gm_core::rng_guard::seeded(9);
    let c = cfg(
        "hidden = [5, 3]\nchains = 10\nsample_steps = 5",
        "dataset = \"bars-and-stripes\"\nbatch_size = 20",
    );
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let mut m = build(&c, &d).unwrap();
    let batch = Batch::inputs(&d.train.x.narrow(0, 0, 20));
    let metrics = m.train_step(&batch).unwrap();
    let names: Vec<&str> = metrics.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["mf_free_energy", "recon_err", "mf_iters", "mf_residual"]
    );
    assert_eq!(m.eval_metrics(&batch).unwrap().len(), 4);
    for start in [SampleStart::Fresh, SampleStart::Chains] {
        m.cfg.sample_start = start;
        let s = m.sample(13).unwrap();
        assert_eq!(s.size(), [13, 1, 4, 4]);
        assert!(s.min().double_value(&[]) >= 0.0 && s.max().double_value(&[]) <= 1.0);
    }
    let figs = m.figures(&d.test.x).unwrap();
    assert_eq!(figs[0].images.size(), [5, 1, 4, 4]); // one filter per h1 unit
    assert_eq!(figs[1].images.size(), [100, 1, 4, 4]); // 50 pairs
    let lls = m.log_likelihoods(&d.test.x, &c).unwrap();
    assert_eq!(lls.len(), 3);
    assert_eq!(
        (lls[0].kind, lls[1].kind, lls[2].kind),
        (
            LikelihoodKind::Exact,
            LikelihoodKind::LowerBound,
            LikelihoodKind::StochasticEstimate
        )
    );
    assert_eq!(lls[2].method, "mean-field-bound+ais");
    assert!(lls[1].mean <= lls[0].mean && lls[0].mean < 0.0);
}

/// Beyond `exact_max_units` the exact path says so and `gm eval` reports the AIS-based
/// estimate alone, with log Ẑ and its interval in the settings.
#[test]
fn a_model_too_large_to_enumerate_gets_the_ais_estimate_only() {
    let _rng = gm_core::rng_guard::seeded(10);
    let c = cfg("hidden = [30, 30]", "dataset = \"bars-and-stripes\"");
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let m = build(&c, &d).unwrap();
    let err = m
        .exact_log_likelihoods(&d.test.x, 100)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("30 units") && err.contains("exact_max_units = 20"),
        "{err}"
    );
    assert!(err.contains("AIS"), "{err}");
    let lls = m.log_likelihoods(&d.test.x, &c).unwrap();
    assert_eq!(lls.len(), 1);
    assert_eq!(lls[0].kind, LikelihoodKind::StochasticEstimate);
    let s = &lls[0].settings;
    let (lo, hi) = (
        s["log_z_interval_3sigma"][0].as_f64().unwrap(),
        s["log_z_interval_3sigma"][1].as_f64().unwrap(),
    );
    let log_z = s["log_z"].as_f64().unwrap();
    assert!(lo <= log_z && log_z <= hi && hi.is_finite(), "{s}");
    assert_eq!(
        (s["chains"].as_i64(), s["steps"].as_u64()),
        (Some(50), Some(1000))
    );
}

/// Runs forward AIS on `dbm` and prints it beside the exact log Z; returns (estimate, exact).
fn ais_vs_exact(dbm: &Dbm, what: &str) -> (AisResult, f64) {
    let (exact, _) = dbm.exact_log_z().unwrap();
    let est = dbm
        .ais_log_z(1000, &Schedule::linear(3000).unwrap())
        .unwrap();
    eprintln!(
        "{what}: AIS log Z {:.4} ± {:.4} (ESS {:.0}/1000, base {:.4}), exact {exact:.4}, \
         error {:+.4}",
        est.log_z,
        est.std_err,
        est.ess,
        est.log_z_base,
        est.log_z - exact
    );
    (est, exact)
}

/// AIS with either parity summed out and either base (fair hidden coins, or the chains'
/// marginals), against the exact log Z, on tiny 2- and 3-layer DBMs whose log Z is far from
/// the base's; then one weight of the top layer is changed by 2
/// (moving the exact log Z by more than 0.3 nats) and the estimate must follow it: an
/// estimate that summed the wrong layers or scaled the wrong energy would not.
#[test]
fn ais_log_z_matches_the_exact_log_z_and_follows_a_weight_change() {
    let _rng = gm_core::rng_guard::seeded(21);
    let shapes = [(6, "[5, 4]"), (5, "[4, 4, 3]")];
    let models: Vec<_> = shapes
        .iter()
        .map(|(d, hidden)| random_dbm(*d, hidden, 1.5, ""))
        .collect();
    for ((d, hidden), mut dbm) in shapes.into_iter().zip(models) {
        // Both bases run the same code with other values: the fair one once.
        let variants = [
            (AisState::Even, AisBase::Fair),
            (AisState::Even, AisBase::Chains),
            (AisState::Odd, AisBase::Chains),
        ];
        for (state, base) in variants {
            (dbm.cfg.ais_state, dbm.cfg.ais_base) = (state, base);
            let what = format!("{d}-{hidden}, {} layers kept, {base:?} base", state.name());
            let (est, exact) = ais_vs_exact(&dbm, &what);
            if base == AisBase::Fair {
                assert!(
                    (exact - est.log_z_base).abs() > 1.0,
                    "log Z {exact} vs base {}",
                    est.log_z_base
                );
            }
            assert!((est.log_z - exact).abs() < 0.05, "{what}");
            let top = dbm.params().0.last().unwrap().shallow_clone();
            let shift = |by: f64| {
                tch::no_grad(|| {
                    let _ = top.get(0).get(0).g_add_scalar_(by);
                })
            };
            shift(2.0);
            let (moved, exact_moved) = ais_vs_exact(&dbm, &format!("{what}, W_L[0, 0] + 2"));
            shift(-2.0);
            assert!((exact_moved - exact).abs() > 0.3, "{exact} → {exact_moved}");
            assert!((moved.log_z - exact_moved).abs() < 0.05, "{what} moved");
        }
    }
}

/// The test log-probability estimate (mean-field bound with the AIS log Ẑ) lies below the
/// exact log p up to the AIS error, and differs from the bound with the exact log Z by
/// exactly log Z − log Ẑ.
#[test]
fn ais_bound_is_below_the_exact_log_p() {
    let _rng = gm_core::rng_guard::seeded(22);
    let dbm = random_dbm(6, "[5, 4]", 1.5, "mf_tolerance = 1e-10\nmf_max_iters = 500");
    let x = Tensor::rand([30, 6], F64).lt(0.5).to_kind(Kind::Double);
    let exact = dbm.exact_log_likelihoods(&x, 100).unwrap();
    let est = dbm
        .ais_log_z(1000, &Schedule::linear(3000).unwrap())
        .unwrap();
    let ll = dbm.ais_bound(&x, 100, &est).unwrap();
    eprintln!(
        "6-[5, 4]: exact log p {:.4}, mean-field bound {:.4} (exact log Z), {:.4} ± {:.4} \
         (AIS log Z {:.4} ± {:.4})",
        exact[0].mean, exact[1].mean, ll.mean, ll.std_err, est.log_z, est.std_err
    );
    assert_eq!(ll.kind, LikelihoodKind::StochasticEstimate);
    assert!(ll.mean <= exact[0].mean + 3.0 * est.std_err);
    let log_z = exact[0].settings["log_z"].as_f64().unwrap();
    assert!((ll.mean - (exact[1].mean + log_z - est.log_z)).abs() < 1e-9);
    assert!(
        exact[0].mean - exact[1].mean > 1e-3,
        "the bound is not tight here"
    );
}

/// Reverse AIS from the persistent chains, moved to equilibrium by `sample_steps` sweeps:
/// along a long schedule it matches the exact log Z; along a short one the chains' mean
/// log-weights, forward and reverse, lie on either side of it. `gm eval`'s reverse record is
/// the same bound with the reverse log Ẑ.
#[test]
fn reverse_ais_from_the_chains_brackets_the_exact_log_z_with_forward_ais() {
    let _rng = gm_core::rng_guard::seeded(23);
    let mut dbm = random_dbm(6, "[5, 4]", 3.0, "sample_steps = 300");
    let (exact, _) = dbm.exact_log_z().unwrap();
    let long = Schedule::linear(3000).unwrap();
    let rev = dbm.reverse_ais_log_z(1000, &long).unwrap();
    eprintln!(
        "reverse, 3000 temperatures: {:.4} ± {:.4}, exact {exact:.4}",
        rev.log_z, rev.std_err
    );
    assert!((rev.log_z - exact).abs() < 0.05);
    let short = Schedule::linear(4).unwrap();
    let fwd = dbm.ais_log_z(1000, &short).unwrap();
    let rev = dbm.reverse_ais_log_z(1000, &short).unwrap();
    eprintln!(
        "4 temperatures: forward {:.4} ± {:.4}, reverse {:.4} ± {:.4}, exact {exact:.4}",
        fwd.log_z, fwd.std_err, rev.log_z, rev.std_err
    );
    // The mean log-weights: stochastic bounds, precise enough with 1,000 chains to show it.
    let ((lower, lo_se), (upper, hi_se)) =
        (fwd.mean_log_weight_bound(), rev.mean_log_weight_bound());
    eprintln!("mean log-weights: {lower:.4} ± {lo_se:.4} ≤ {exact:.4} ≤ {upper:.4} ± {hi_se:.4}");
    assert!(lower + 3.0 * lo_se < exact, "forward");
    assert!(upper - 3.0 * hi_se > exact, "reverse");

    let x = Tensor::rand([30, 6], F64).lt(0.5).to_kind(Kind::Double);
    dbm.cfg.sample_steps = 0;
    let ais = AisOptions {
        chains: 200,
        schedule: short,
        reverse: true,
    };
    let lls = dbm.evaluation_log_likelihoods(&x, 100, &ais).unwrap();
    let methods: Vec<&str> = lls.iter().map(|l| l.method.as_str()).collect();
    assert_eq!(
        methods[2..],
        ["mean-field-bound+ais", "mean-field-bound+reverse-ais"]
    );
    let log_z = |l: &LogLikelihood| l.settings["log_z"].as_f64().unwrap();
    let shift = (lls[2].mean - lls[3].mean) - (log_z(&lls[3]) - log_z(&lls[2]));
    assert!(shift.abs() < 1e-9, "{shift}");
    assert_eq!(lls[3].settings["direction"], "reverse");
    let note = lls[3].settings["note"].as_str().unwrap();
    assert!(
        note.contains("its 200 chains started from the 20 persistent chains")
            && note.contains("after 0 more Gibbs sweeps"),
        "{note}"
    );
}

/// The mean-field probe: reported only with labels; a label that is a function of v (v_0)
/// is read off the features of a random 8-16-8 DBM almost without error, random labels
/// stay near chance.
#[test]
fn mean_field_probe_reads_labels_that_depend_on_v() {
    let dbm_with = |labels: &dyn Fn(&Tensor) -> Tensor| -> (Dbm, Dataset) {
        let x = Tensor::rand([2000, 8], F64).lt(0.5).to_kind(Kind::Double);
        let mut d = rows_dataset(&x, true);
        for split in [&mut d.train, &mut d.valid, &mut d.test] {
            split.y = Some(labels(&split.x));
        }
        d.num_classes = Some(2);
        let c = cfg(
            "dtype = \"float64\"\nhidden = [16, 8]",
            "dataset = \"bars-and-stripes\"",
        );
        let dbm = build(&c, &d).unwrap();
        let (w, _) = dbm.params();
        tch::no_grad(|| {
            for t in w {
                t.shallow_clone()
                    .copy_(&Tensor::randn(t.size().as_slice(), F64));
            }
        });
        (dbm, d)
    };
    let _rng = gm_core::rng_guard::seeded(4);
    let c = cfg("hidden = [16, 8]", "dataset = \"bars-and-stripes\"");
    let (dbm, d) = dbm_with(&|x| x.select(1, 0).to_kind(Kind::Int64));
    let stats = dbm.statistics(&d.test, &c).unwrap();
    assert_eq!(stats.len(), 1);
    let informative = stats[0].value;
    let (dbm, d) = dbm_with(&|x| Tensor::randint(2, [x.size()[0]], (Kind::Int64, Device::Cpu)));
    let chance = dbm.statistics(&d.test, &c).unwrap()[0].value;
    eprintln!("probe error: label = v_0 {informative:.4}, random labels {chance:.4}");
    assert!(informative < 0.05, "{informative}");
    assert!((chance - 0.5).abs() < 0.06, "{chance}");
    let unlabelled = data::Split {
        x: d.test.x.shallow_clone(),
        y: None,
    };
    assert!(dbm.statistics(&unlabelled, &c).unwrap().is_empty());
}

#[test]
fn finetuning_starts_from_the_mean_field_equations_and_learns_the_labels() {
    let _rng = gm_core::rng_guard::seeded(21);
    let c = cfg(
        "dtype = \"float64\"\nhidden = [16, 8]\nchains = 32\nmf_tolerance = 1e-10\n\
         mf_max_iters = 1000\nfinetune_after = 2\nfinetune_lr_scale = 10.0\ninit_std = 0.3",
        "dataset = \"bars-and-stripes\"\nbatch_size = 32",
    );
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let mut dbm = build(&c, &d).unwrap();
    let n = d.train.x.size()[0];
    let per_epoch = crate::dbn::steps_per_epoch(&c, n);
    let batch = || {
        let idx = Tensor::randint(n, [32], (Kind::Int64, Device::Cpu));
        let y = d.train.y.as_ref().unwrap();
        Batch::labelled(&d.train.x.index_select(0, &idx), &y.index_select(0, &idx))
    };
    for i in 0..2 * per_epoch {
        assert!(!dbm.finetuning(), "step {i}");
        dbm.train_step(&batch()).unwrap();
    }
    assert!(dbm.finetuning() && !dbm.finetune_begun());
    // Before any update the MLP's layers are the mean-field means of the trained DBM.
    let x = d.test.x.narrow(0, 0, 64);
    let h = dbm.finetune_activations(&x).unwrap();
    let mf = dbm.mean_field(&dbm.flat(&x));
    assert!(
        mf.residual < 1e-9,
        "mean field not converged: {}",
        mf.residual
    );
    for l in 1..=2 {
        let d = max_abs(&h[l - 1], &mf.means[l]);
        assert!(d < 1e-8, "layer {l}: MLP vs mean field {d}");
    }
    let (w_before, _) = dbm.params();
    let w_before: Vec<Tensor> = w_before.iter().map(Tensor::copy).collect();
    for _ in 0..1500 {
        dbm.train_step(&batch()).unwrap();
    }
    let stats = dbm.statistics(&d.test, &c).unwrap();
    let tuned = stats
        .iter()
        .find(|s| s.method.contains("fine-tuned"))
        .expect("a fine-tuned error");
    eprintln!("probe {:.3}, fine-tuned {:.3}", stats[0].value, tuned.value);
    assert!(tuned.value < 0.1, "fine-tuned error {}", tuned.value);
    for (a, b) in dbm.params().0.iter().zip(&w_before) {
        assert_eq!(max_abs(a, b), 0.0, "fine-tuning moved the DBM");
    }
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = gm_core::rng_guard::lock();
    let x = Tensor::rand([10, 4], F64).lt(0.5).to_kind(Kind::Double);
    let d = rows_dataset(&x, true);
    for (extra, field) in [
        ("hidden = [8]", "model.hidden"),
        ("hidden = []", "model.hidden"),
        ("hidden = [8, 0]", "model.hidden"),
        ("hidden = [0, 8, 4]", "model.hidden"),
        ("mf_tolerance = 0.0", "model.mf_tolerance"),
        ("mf_tolerance = -1e-3", "model.mf_tolerance"),
        ("mf_max_iters = 0", "model.mf_max_iters"),
        ("gibbs_steps = 0", "model.gibbs_steps"),
        ("chains = 0", "model.chains"),
        ("weight_decay = -0.1", "model.weight_decay"),
        ("init_std = 0.0", "model.init_std"),
        ("sample_steps = 0", "model.sample_steps"),
        ("exact_max_units = 26", "model.exact_max_units"),
        ("pretrain = { epochs = -1 }", "model.pretrain.epochs"),
        (
            "pretrain = { epochs = 2, layers = [3] }",
            "model.pretrain.layers",
        ),
        (
            "pretrain = { epochs = 2, layers = [0, 1] }",
            "model.pretrain.layers",
        ),
        (
            "pretrain = { gibbs_steps = 0 }",
            "model.pretrain.gibbs_steps",
        ),
        ("pretrain = { lr = 0.0 }", "model.pretrain.lr"),
        ("pretrain = { momentum = 1.0 }", "model.pretrain.momentum"),
        (
            "pretrain = { initial_momentum = -0.1 }",
            "model.pretrain.initial_momentum",
        ),
        (
            "pretrain = { momentum_after = -1 }",
            "model.pretrain.momentum_after",
        ),
        (
            "pretrain = { weight_decay = -0.001 }",
            "model.pretrain.weight_decay",
        ),
        ("centering_rate = 0.0", "model.centering_rate"),
        ("centering_rate = 1.5", "model.centering_rate"),
        ("finetune_after = 0", "model.finetune_after"),
        // d has no labels.
        ("finetune_after = 2", "model.finetune_after"),
        ("finetune_lr_scale = 0.0", "model.finetune_lr_scale"),
    ] {
        let c = cfg(extra, "dataset = \"bars-and-stripes\"");
        match build(&c, &d) {
            Err(gm_core::Error::Config {
                field: f, expected, ..
            }) => {
                assert_eq!(f, field, "{extra}");
                if extra == "hidden = [8]" {
                    assert!(expected.contains("rbm"), "{expected}");
                }
            }
            Err(e) => panic!("{extra}: expected a config error, got {e}"),
            Ok(_) => panic!("{extra}: accepted"),
        }
    }
    for (extra, word) in [
        ("hiden = [3, 3]", "hiden"),
        ("sample_start = \"warm\"", "warm"),
        ("pretrain = { epoch = 3 }", "epoch"),
        ("pretrain = { method = \"pcd2\" }", "pcd2"),
    ] {
        let c = cfg(extra, "dataset = \"bars-and-stripes\"");
        let err = build(&c, &d)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains(word), "{extra}: {err}");
    }
    let mut real = rows_dataset(&x, false);
    real.binary = false;
    match build(&cfg("hidden = [3, 3]", "dataset = \"two-moons\""), &real) {
        Err(gm_core::Error::Config { field, .. }) => assert_eq!(field, "data.binarize"),
        _ => panic!("real-valued data accepted"),
    }
}

#[test]
fn registry_builds_the_model_and_shipped_configs_validate() {
    let _rng = gm_core::rng_guard::lock();
    let mut r = ModelRegistry::new();
    crate::register(&mut r);
    let c = cfg("hidden = [4, 3]", "dataset = \"bars-and-stripes\"");
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let m = r
        .build(&BuildContext {
            cfg: &c,
            data: &d,
            device: Device::Cpu,
        })
        .unwrap();
    assert_eq!(m.name(), "dbm");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seen = 0;
    for name in [
        "dbm-mnist.toml",
        "dbm3-mnist.toml",
        "dbm-centered-mnist.toml",
        "dbm-bars-and-stripes.toml",
    ] {
        let c = RunConfig::from_file(&dir.join(name)).unwrap();
        c.validate().unwrap();
        assert_eq!(c.model.name, "dbm", "{name}");
        parse_params::<DbmConfig>("dbm", &c.model.params)
            .unwrap()
            .validate()
            .unwrap();
        seen += 1;
    }
    assert_eq!(seen, 4);
}

/// The composition rule of greedy pre-training, checked on every state of tiny 2- and
/// 3-layer DBMs after a few epochs of pre-training: each DBM conditional's total input is
/// the input the adjoining RBM(s) give that layer, averaged where there are two. Written
/// out from the RBMs' own definitions (Salakhutdinov & Hinton 2009, §3.1): the bottom RBM
/// sees 2·vW bottom-up and hWᵀ top-down, the top RBM x W bottom-up and 2·h Wᵀ top-down,
/// middle RBMs x W and h Wᵀ; the visible layer and the top layer have one RBM each. For
/// L = 2, p(h1 | v, h2) = σ(½(c¹ + 2vW¹) + ½(a² + 2h2W²ᵀ)): the doubled bottom-up input
/// of the bottom RBM stands in for the missing top-down half, as the paper argues.
#[test]
fn pretrained_dbm_conditionals_average_the_doubled_rbm_conditionals() {
    let _rng = gm_core::rng_guard::seeded(31);
    for (d, hidden) in [(5, "[4, 3]"), (4, "[3, 3, 2]")] {
        let mut dbm = random_dbm(
            d,
            hidden,
            0.3,
            "pretrain = { epochs = 5, method = \"pcd\", lr = 0.2 }",
        );
        let x = Tensor::rand([64, d], F64).lt(0.4).to_kind(Kind::Double);
        let w_init = dbm.params().0[0].copy();
        let rbms = dbm.pretrain_rbms(&x);
        assert!(max_abs(&rbms[0].w, &w_init) > 1e-3, "RBM 1 was not trained");
        dbm.compose(&rbms);
        let depth = dbm.depth();
        let (states, _) = all_states(&dbm);
        // Input of layer l from RBM r (joining r − 1 and r), by the RBM's definition.
        let up = |r: usize, x: &Tensor| {
            let m = if r == 1 { 2.0 } else { 1.0 };
            x.matmul(&rbms[r - 1].w) * m + &rbms[r - 1].c
        };
        let down = |r: usize, h: &Tensor| {
            let m = if r == depth { 2.0 } else { 1.0 };
            h.matmul(&rbms[r - 1].w.tr()) * m + &rbms[r - 1].a
        };
        for l in 0..=depth {
            let want = if l == 0 {
                down(1, &states[1])
            } else if l == depth {
                up(depth, &states[depth - 1])
            } else {
                (up(l, &states[l - 1]) + down(l + 1, &states[l + 1])) * 0.5
            };
            let got = tch::no_grad(|| dbm.input(&states, l));
            let err = max_abs(&got, &want);
            assert!(err < 1e-12, "{d}-{hidden}: layer {l}, error {err:e}");
        }
    }
}

/// `steps` joint updates (seed `seed`, rate 0.05) of a 16-8-4 DBM with `extra` model
/// fields on bars and stripes; the exact mean log p and mean-field bound of the 30 patterns
/// after, the steps and the training-set size.
fn joint_on_bars(extra: &str, seed: i64, steps: i64) -> (f64, f64, i64, i64) {
    let _rng = gm_core::rng_guard::seeded(seed);
    let mut c = cfg(
        &format!(
            "hidden = [8, 4]\nchains = 100\ngibbs_steps = 5\ninit_std = 0.1\n\
             mf_tolerance = 1e-4\n{extra}"
        ),
        "dataset = \"bars-and-stripes\"\nbatch_size = 30",
    );
    c.optim.lr = 0.05;
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let mut m = build(&c, &d).unwrap();
    let x = d.train.x.reshape([-1, 16]);
    let n = x.size()[0];
    for s in 0..steps {
        let start = (s * 30) % (n - 30);
        m.train_step(&Batch::inputs(&x.narrow(0, start, 30)))
            .unwrap();
    }
    let pats = data::bars_and_stripes_patterns(4);
    let ll = m.exact_log_likelihoods(&pats, 100).unwrap();
    (ll[0].mean, ll[1].mean, steps, n)
}

/// Joint training from scratch (no pre-training) with and without centering, same seeds:
/// the exact log-likelihood of the 30 patterns after 2,000 updates (measured: plain −4.80,
/// −5.59, −5.36; centered −4.31, −4.51, −4.54 for seeds 12, 13, 14; optimum −3.40).
#[test]
fn centering_helps_joint_training_without_pretraining() {
    let steps = 2000;
    let mut gains = Vec::new();
    for seed in [12, 13, 14] {
        let (plain, ..) = joint_on_bars("", seed, steps);
        let (centered, ..) = joint_on_bars("centering = true\ncentering_rate = 0.05", seed, steps);
        eprintln!(
            "bars 16-8-4, {steps} joint updates, seed {seed}: exact log p plain {plain:.4}, \
             centered {centered:.4}"
        );
        gains.push(centered - plain);
    }
    assert!(gains.iter().all(|&g| g > 0.2), "{gains:?}");
}

/// Bars and stripes 4×4, 16-8-4 DBM: pre-training, then a short joint training, against the
/// same joint training from scratch (same seed); the exact log-likelihood of the 30 patterns
/// after each.
#[test]
fn pretraining_then_joint_training_beats_joint_training_alone() {
    let run = |extra: &str| joint_on_bars(extra, 12, 300);
    let (scratch, scratch_bound, steps, n) = run("");
    let (pre, pre_bound, ..) = run("pretrain = { epochs = 100, method = \"pcd\", lr = 0.05 }");
    eprintln!(
        "bars and stripes 4×4, 16-8-4 DBM, {steps} joint updates on {n} training examples: \
         exact log p {scratch:.4} from scratch, {pre:.4} after pre-training (100 epochs per \
         RBM, PCD-1); mean-field bounds {scratch_bound:.4}, {pre_bound:.4} (optimum {:.4})",
        -(30f64.ln())
    );
    assert!(pre > scratch + 0.5, "{pre} vs {scratch}");
}

/// What one epoch (600 updates of batch 100) of the 784-500-1000 DBM of `dbm-mnist.toml`
/// costs on this machine, single-threaded: joint training (Algorithm 20.1, 100 chains, 5
/// sweeps, mean field to 1e-5 or 30 iterations) on binarized MNIST, and one pre-training
/// epoch of its two RBMs (PCD-1), and one AIS temperature of 100 chains, each timed over a
/// slice and scaled.
#[test]
#[ignore = "timing, not a check: run with --release --ignored --nocapture"]
fn time_one_epoch_784_500_1000() {
    let _rng = gm_core::rng_guard::seeded(0);
    tch::set_num_threads(1);
    let c = RunConfig::from_file(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/dbm-mnist.toml"),
    )
    .unwrap();
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    let mut m = build(&c, &d).unwrap();
    m.pretrained = None; // time the joint updates alone
    let x = d.train.x.narrow(0, 0, 1000);
    let t = std::time::Instant::now();
    let _ = m.pretrain_rbms(&x.narrow(0, 0, 1000)); // 100 epochs of 10 updates per RBM
    let pre = t.elapsed().as_secs_f64() / (100.0 * 10.0) * 600.0;
    let n = 10;
    let t = std::time::Instant::now();
    let mut iters = 0.0;
    for s in 0..n {
        let b = Batch::inputs(&x.narrow(0, 100 * s, 100));
        let metrics = m.train_step(&b).unwrap();
        iters += metrics
            .iter()
            .find(|(k, _)| *k == "mf_iters")
            .unwrap()
            .1
            .double_value(&[]);
    }
    let joint = t.elapsed().as_secs_f64() / n as f64;
    let est = m.ais_log_z(100, &Schedule::linear(200).unwrap()).unwrap();
    eprintln!(
        "AIS, 100 chains: {:.2} ms per temperature = {:.0} s for the 14,500 of \
         Salakhutdinov & Murray",
        1e3 * est.seconds / 200.0,
        est.seconds / 200.0 * 14_500.0
    );
    eprintln!(
        "784-500-1000 DBM, 1 thread: {:.1} ms per joint update (mean {:.1} mean-field \
         iterations) = {:.0} s per epoch of 600; pre-training both RBMs: {:.0} s per epoch",
        1e3 * joint,
        iters / n as f64,
        600.0 * joint,
        pre
    );
}

/// Pre-training's momentum is the heavy-ball recursion v ← m v + lr g, W ← W + v, with
/// `initial_momentum` for the first `momentum_after` epochs: at a learning rate small
/// enough that the samples do not change, the updates of 3 momentum epochs equal the plain
/// ones combined as 1.75 g₁ + 1.5 g₂ + g₃ (m = 0 then 0.5), weight decay included.
#[test]
fn pretraining_momentum_is_heavy_ball_with_its_schedule() {
    let _rng = gm_core::rng_guard::lock();
    let dbm = random_dbm(6, "[4, 3]", 0.5, "");
    let data = Tensor::rand([8, 6], F64).lt(0.5).to_kind(Kind::Double);
    let run = |epochs: i64, momentum: f64| {
        let p: DbmConfig = parse_params(
            "dbm",
            &cfg(
                &format!(
                    "hidden = [4, 3]\npretrain = {{ epochs = {epochs}, lr = 1e-7, \
                     weight_decay = 0.3, momentum = {momentum}, initial_momentum = 0.0, \
                     momentum_after = 1 }}"
                ),
                "dataset = \"bars-and-stripes\"",
            )
            .model
            .params,
        )
        .unwrap();
        tch::manual_seed(7);
        let mut rbm = pretrain::LayerRbm {
            w: dbm.params().0[0].detach().copy(),
            a: Tensor::zeros([6], F64),
            c: Tensor::full([4], 0.2, F64),
            up: 2.0,
            down: 1.0,
        };
        let w0 = rbm.w.copy();
        dbm.train_rbm(&mut rbm, &data, &p.pretrain);
        rbm.w - w0
    };
    let s: Vec<Tensor> = (1..=3).map(|e| run(e, 0.0)).collect();
    let g = [s[0].copy(), &s[1] - &s[0], &s[2] - &s[1]];
    let expected = &g[0] * 1.75 + &g[1] * 1.5 + &g[2];
    let got = run(3, 0.5);
    let scale = expected.abs().max().double_value(&[]);
    assert!(scale > 1e-8, "no update: {scale}");
    assert!(
        max_abs(&got, &expected) < 1e-6 * scale,
        "{} vs scale {scale}",
        max_abs(&got, &expected)
    );
}

/// `negative_phase = "mean-field"`: the negative states are one mean-field pass from the
/// chains, written out here for a 7-5-4-3 DBM: q1 = σ(b1 + x0 W1 + x2 W2ᵀ), q3 = σ(b3 +
/// x2 W3), then q0 = σ(b0 + q1 W1ᵀ), q2 = σ(b2 + q1 W2 + q3 W3ᵀ).
#[test]
fn mean_field_negative_phase_is_one_pass_from_the_chains() {
    let _rng = gm_core::rng_guard::seeded(9);
    let dbm = random_dbm(7, "[5, 4, 3]", 0.7, "negative_phase = \"mean-field\"");
    let mut x = dbm.fresh_chains(20);
    dbm.gibbs(&mut x, 2);
    let got = dbm.negative_states(x.iter().map(Tensor::shallow_clone).collect());
    let (w, b) = dbm.params();
    let q1 = (&b[1] + x[0].mm(&w[0]) + x[2].mm(&w[1].tr())).sigmoid();
    let q3 = (&b[3] + x[2].mm(&w[2])).sigmoid();
    let q0 = (&b[0] + q1.mm(&w[0].tr())).sigmoid();
    let q2 = (&b[2] + q1.mm(&w[1]) + q3.mm(&w[2].tr())).sigmoid();
    for (l, want) in [q0, q1, q2, q3].iter().enumerate() {
        let err = (&got[l] - want).abs().max().double_value(&[]);
        assert!(err < 1e-12, "layer {l}: {err}");
    }
    // The chains themselves are not touched; the default keeps the states.
    let plain = random_dbm(7, "[5, 4, 3]", 0.7, "");
    let kept = plain.negative_states(x.iter().map(Tensor::shallow_clone).collect());
    assert!(kept.iter().zip(&x).all(|(a, b)| a.equal(b)));
}

/// On bars and stripes (16-8-4, joint training from scratch, 300 updates) the mean-field
/// negative phase learns faster than the samples' (measured, seeds 12–15: exact log p −9.74,
/// −9.83, −9.64, −9.36 against −10.57, −10.67, −10.62, −10.57). After 2,000 updates the two
/// are within the seeds' spread (mean −5.03 against −5.14).
#[test]
fn mean_field_negative_phase_learns_faster_early() {
    for seed in [12, 13, 14] {
        let (samples, ..) = joint_on_bars("", seed, 300);
        let (mf, ..) = joint_on_bars("negative_phase = \"mean-field\"", seed, 300);
        eprintln!("seed {seed}, 300 updates: exact log p samples {samples:.4}, mean-field {mf:.4}");
        assert!(mf > samples + 0.5, "seed {seed}: {mf} vs {samples}");
    }
}
