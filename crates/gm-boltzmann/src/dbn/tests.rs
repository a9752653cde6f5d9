//! Checks of the DBN against quantities written out here by brute force: p(v) as a sum of
//! products of the directed conditionals and the top RBM's normalised joint, log Z_top over
//! every pair of top states, and the variational bound as an exact sum over h1.

use super::*;
use crate::rbm::exact::bit_rows;
use crate::rbm::Rbm;
use gm_core::config::RunConfig;
use gm_core::data::{self, Batch, Dataset};
use gm_core::kit::{empirical_distribution, rows_dataset, total_variation};
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model, ModelRegistry};
use gm_core::Error;
use gm_eval::ais::Schedule;
use tch::{Device, Kind, Tensor};

const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

fn cfg(model: &str, data: &str) -> RunConfig {
    RunConfig::from_toml_str(&format!(
        "seed = 1\n[model]\nname = \"dbn\"\n{model}\n[data]\n{data}\n[optim]\nkind = \"sgd\"\n\
         lr = 0.1\nmomentum = 0.5\n"
    ))
    .unwrap()
}

fn build(c: &RunConfig, d: &Dataset) -> gm_core::Result<Dbn> {
    let p: DbnConfig = parse_params("dbn", &c.model.params)?;
    Dbn::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// An f64 DBN on `d`-unit random rows with hidden sizes `hidden` (TOML array) and its
/// parameters drawn at random: W ~ N(0, scale²), biases ~ N(0, 0.5²).
fn random_dbn(d: i64, hidden: &str, scale: f64, extra: &str) -> Dbn {
    let x = Tensor::rand([40, d], F64).lt(0.5).to_kind(Kind::Double);
    let n = hidden.matches(',').count() + 1;
    let epochs = vec!["1"; n].join(", ");
    let c = cfg(
        &format!("dtype = \"float64\"\nhidden = {hidden}\nlayer_epochs = [{epochs}]\n{extra}"),
        "dataset = \"bars-and-stripes\"\nbatch_size = 40",
    );
    let dbn = build(&c, &rows_dataset(&x, true)).unwrap();
    tch::no_grad(|| {
        for layer in dbn.layers() {
            let (w, b, c) = layer.params();
            for (t, s) in [(w, scale), (b, 0.5), (c, 0.5)] {
                t.shallow_clone()
                    .copy_(&(Tensor::randn(t.size().as_slice(), F64) * s));
            }
        }
    });
    dbn
}

fn params64(layer: &Rbm) -> (Tensor, Tensor, Tensor) {
    let (w, b, c) = layer.params();
    (
        w.detach().to_kind(Kind::Double),
        b.detach().to_kind(Kind::Double),
        c.detach().to_kind(Kind::Double),
    )
}

fn all_states(n: i64) -> Tensor {
    bit_rows(0, 1 << n, n, Device::Cpu)
}

/// p(x | h) = Π_i q_i^{x_i} (1 − q_i)^{1 − x_i}, q = σ(b + W h), for every pair of rows:
/// `[N, M]`.
fn directed_prob(layer: &Rbm, x: &Tensor, h: &Tensor) -> Tensor {
    let (w, b, _) = params64(layer);
    let q = (b.unsqueeze(0) + h.mm(&w.tr())).sigmoid().unsqueeze(0); // [1, M, D]
    let x = x
        .reshape([-1, w.size()[0]])
        .to_kind(Kind::Double)
        .unsqueeze(1); // [N, 1, D]
    (&x * &q + (x.ones_like() - &x) * (q.ones_like() - &q)).prod_dim_int(2, false, Kind::Double)
}

/// The top RBM's joint e^{−E(s, t)} over every pair of states, `[2^n_{L−1}, 2^n_L]`.
fn top_weights(dbn: &Dbn) -> Tensor {
    let (w, b, c) = params64(dbn.top());
    let (s, t) = (all_states(w.size()[0]), all_states(w.size()[1]));
    (s.mv(&b).unsqueeze(1) + t.mv(&c).unsqueeze(0) + s.mm(&w).mm(&t.tr())).exp()
}

/// log Z of the top RBM, summing every pair of states.
fn hand_log_z_top(dbn: &Dbn) -> f64 {
    top_weights(dbn).sum(Kind::Double).log().double_value(&[])
}

/// p(h1) over every state of h1, by sums of products down from the top joint.
fn hand_prior_h1(dbn: &Dbn) -> Tensor {
    let joint = top_weights(dbn);
    let mut p = joint.sum_dim_intlist(1, false, Kind::Double) / joint.sum(Kind::Double);
    let layers = dbn.layers();
    for l in (1..layers.len() - 1).rev() {
        let (below, above) = (layers[l].visible(), layers[l].hidden());
        p = directed_prob(&layers[l], &all_states(below), &all_states(above)).mv(&p);
    }
    p
}

/// log p(v) for every row of `v`, by brute force.
fn hand_log_p(dbn: &Dbn, v: &Tensor) -> Tensor {
    let n1 = dbn.layers()[0].hidden();
    directed_prob(&dbn.layers()[0], v, &all_states(n1))
        .mv(&hand_prior_h1(dbn))
        .log()
}

/// The two-layer bound Σ_h1 q(h1|v) [log p(v|h1) + log p(h1)] + H(q) as an exact sum.
fn hand_bound(dbn: &Dbn, v: &Tensor) -> Tensor {
    assert_eq!(dbn.layers().len(), 2);
    let layer = &dbn.layers()[0];
    let (w, _, c) = params64(layer);
    let h1 = all_states(layer.hidden());
    let q_h1 = directed_prob_up(&w, &c, v, &h1); // q(h1 | v), [N, 2^n1]
    let log_joint = directed_prob(layer, v, &h1).log() + hand_prior_h1(dbn).log().unsqueeze(0);
    let entropy = -(&q_h1 * q_h1.log()).sum_dim_intlist(1, false, Kind::Double);
    (q_h1 * log_joint).sum_dim_intlist(1, false, Kind::Double) + entropy
}

/// The three-layer bound Σ_{h1,h2} q(h1|v) q(h2|h1) [log p(v|h1) + log p(h1|h2) +
/// log p(h2) − log q(h1|v) − log q(h2|h1)] as an exact sum.
fn hand_bound3(dbn: &Dbn, v: &Tensor) -> Tensor {
    let layers = dbn.layers();
    assert_eq!(layers.len(), 3);
    let (s1, s2) = (
        all_states(layers[0].hidden()),
        all_states(layers[1].hidden()),
    );
    let (w0, _, c0) = params64(&layers[0]);
    let (w1, _, c1) = params64(&layers[1]);
    let q1 = directed_prob_up(&w0, &c0, v, &s1); // [N, 2^n1]
    let q2 = directed_prob_up(&w1, &c1, &s1, &s2); // [2^n1, 2^n2]
    let log_pv = directed_prob(&layers[0], v, &s1).log();
    let log_ph1 = directed_prob(&layers[1], &s1, &s2).log();
    let joint = top_weights(dbn);
    let log_ph2 = (joint.sum_dim_intlist(1, false, Kind::Double) / joint.sum(Kind::Double)).log();
    let inner =
        (&q2 * (log_ph1 + log_ph2.unsqueeze(0) - q2.log())).sum_dim_intlist(1, false, Kind::Double); // [2^n1]
    (&q1 * (log_pv - q1.log() + inner.unsqueeze(0))).sum_dim_intlist(1, false, Kind::Double)
}

/// q(h | v) = Π_j p_j^{h_j} (1 − p_j)^{1 − h_j}, p = σ(c + vW), for every pair: `[N, M]`.
fn directed_prob_up(w: &Tensor, c: &Tensor, v: &Tensor, h: &Tensor) -> Tensor {
    let p = (c.unsqueeze(0) + v.reshape([-1, w.size()[0]]).to_kind(Kind::Double).mm(w))
        .sigmoid()
        .unsqueeze(1);
    let h = h.unsqueeze(0);
    (&h * &p + (h.ones_like() - &h) * (p.ones_like() - &p)).prod_dim_int(2, false, Kind::Double)
}

fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The expected total variation of an N-sample histogram from p (normal approximation):
/// ½ Σ_s √(2 p_s (1 − p_s) / (π N)).
fn expected_tv(p: &Tensor, n: i64) -> f64 {
    (p * (p.ones_like() - p) * (2.0 / (std::f64::consts::PI * n as f64)))
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[])
        * 0.5
}

#[test]
fn exact_log_p_sums_to_one_and_matches_brute_force() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(11);
    for (d, hidden) in [(6, "[4, 3]"), (5, "[3, 4, 2]"), (4, "[2, 3, 2, 3]")] {
        let dbn = random_dbn(d, hidden, 1.0, "");
        let v = all_states(d);
        let lp = dbn.exact_log_p(&v).unwrap();
        let total = lp.logsumexp([0], false).double_value(&[]);
        assert!(total.abs() < 1e-10, "{hidden}: log Σ_v p(v) = {total}");
        let err = max_abs(&lp, &hand_log_p(&dbn, &v));
        assert!(err < 1e-10, "{hidden}: exact log p vs brute force: {err}");
    }
}

#[test]
fn exact_log_p_of_a_one_unit_dbn_is_the_formula() {
    let _rng = crate::test_rng_lock();
    let dbn = random_dbn(1, "[1, 1]", 1.0, "");
    // v–h1: w1 = 2, b1 = −1; h1–h2 (top RBM): w2 = 1.5, b2 = 0.5, c2 = −0.25.
    let set = |t: &Tensor, x: f64| {
        let _ = tch::no_grad(|| t.shallow_clone().fill_(x));
    };
    let (w1, b1, _) = dbn.layers()[0].params();
    let (w2, b2, c2) = dbn.top().params();
    for (t, x) in [(w1, 2.0), (b1, -1.0), (w2, 1.5), (b2, 0.5), (c2, -0.25)] {
        set(t, x);
    }
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    // p̃(h1) = Σ_h2 e^{0.5 h1 − 0.25 h2 + 1.5 h1 h2}: h1 = 0: 1 + e^{−0.25};
    // h1 = 1: e^{0.5} (1 + e^{1.25}).
    let f0 = 1.0 + (-0.25f64).exp();
    let f1 = 0.5f64.exp() * (1.0 + 1.25f64.exp());
    let (p0, p1) = (f0 / (f0 + f1), f1 / (f0 + f1));
    // p(v = 1) = p(h1 = 0) σ(−1) + p(h1 = 1) σ(1).
    let pv1 = p0 * sig(-1.0) + p1 * sig(1.0);
    let lp = dbn
        .exact_log_p(&Tensor::from_slice(&[0.0f64, 1.0]).view([2, 1]))
        .unwrap();
    let got: Vec<f64> = Vec::try_from(&lp).unwrap();
    assert!((got[1] - pv1.ln()).abs() < 1e-12, "{got:?} vs {}", pv1.ln());
    assert!((got[0] - (1.0 - pv1).ln()).abs() < 1e-12);
}

#[test]
fn bound_is_the_exact_sum_over_h1_and_below_log_p() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(12);
    let dbn = random_dbn(6, "[4, 3]", 1.0, "");
    let v = all_states(6);
    let exact = hand_log_p(&dbn, &v);
    let bound = hand_bound(&dbn, &v);
    let gap: Vec<f64> = Vec::try_from(&(&exact - &bound)).unwrap();
    assert!(
        gap.iter().all(|g| *g >= -1e-12),
        "bound above log p: {gap:?}"
    );
    // The estimate from draws of q: E_q[…] + H(q) − log Z_top, with the exact log Z_top.
    let est = dbn.bound_before_log_z(&v, 20_000, 16) - hand_log_z_top(&dbn);
    let err = max_abs(&est, &bound);
    println!(
        "random 6-4-3 DBN: mean log p {:.4}, mean bound {:.4}, sampled bound max error {err:.4}",
        exact.mean(Kind::Double).double_value(&[]),
        bound.mean(Kind::Double).double_value(&[]),
    );
    assert!(
        err < 0.1,
        "sampled bound (20,000 draws) vs exact sum: {err}"
    );
}

/// Hinton et al. (2006)'s argument for greedy stacking: a second RBM that is the first one
/// turned upside down (W₂ = W₁ᵀ, the biases swapped) makes the DBN the first RBM itself, and
/// q(h1 | v) its exact posterior, so log p(v) equals the RBM's and the bound is tight. The
/// RBM's log p(v) is written out here by enumeration; gm's sampled bound (the entropy of q
/// taken analytically, so not variance-free) is checked against it.
#[test]
fn a_flipped_second_rbm_makes_the_bound_the_first_rbms_log_p() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(21);
    let dbn = random_dbn(5, "[3, 5]", 1.0, "");
    let (w, b, c) = params64(&dbn.layers()[0]);
    tch::no_grad(|| {
        let (wt, bt, ct) = dbn.top().params();
        wt.shallow_clone().copy_(&w.tr());
        bt.shallow_clone().copy_(&c);
        ct.shallow_clone().copy_(&b);
    });
    let (v, h) = (all_states(5), all_states(3));
    // log Σ_h e^{−E(v, h)} − log Z of the bottom RBM.
    let log_unnorm = (v.mv(&b).unsqueeze(1) + h.mv(&c).unsqueeze(0) + v.mm(&w).mm(&h.tr()))
        .logsumexp([1], false);
    let rbm_log_p = &log_unnorm - log_unnorm.logsumexp([0], false);
    let exact = hand_log_p(&dbn, &v);
    assert!(
        max_abs(&exact, &rbm_log_p) < 1e-10,
        "DBN log p vs the RBM's"
    );
    let tight = max_abs(&hand_bound(&dbn, &v), &rbm_log_p);
    assert!(tight < 1e-10, "the exact bound is not tight: {tight}");
    let est = dbn.bound_before_log_z(&v, 100_000, 32) - hand_log_z_top(&dbn);
    let err = max_abs(&est, &rbm_log_p);
    println!("flipped 5-3-5 DBN: sampled bound vs the RBM's log p, max error {err:.4}");
    assert!(err < 0.015, "sampled bound (100,000 draws) vs log p: {err}");
}

#[test]
fn three_layer_bound_is_the_exact_sum_over_h1_and_h2() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(18);
    let dbn = random_dbn(5, "[4, 3, 3]", 1.0, "");
    let v = all_states(5);
    let bound = hand_bound3(&dbn, &v);
    let gap = (hand_log_p(&dbn, &v) - &bound).min().double_value(&[]);
    assert!(gap >= -1e-12, "bound above log p by {}", -gap);
    let est = dbn.bound_before_log_z(&v, 20_000, 32) - hand_log_z_top(&dbn);
    let err = max_abs(&est, &bound);
    println!("random 5-4-3-3 DBN: sampled bound max error {err:.4}");
    assert!(
        err < 0.1,
        "sampled bound (20,000 draws) vs exact sum: {err}"
    );
}

/// Bars and stripes on a 3×3 grid (14 patterns, optimum log(1/14) = −2.639).
fn bars3(model: &str) -> (RunConfig, Dataset) {
    let c = cfg(
        model,
        "dataset = \"bars-and-stripes\"\nbars_size = 3\nsynthetic_size = 500\nbatch_size = 50",
    );
    let d = data::load(&c.data.dataset, &c.data.options).unwrap();
    (c, d)
}

/// Runs `epochs` epochs of greedy steps (in order, 10 batches of 50 per epoch).
fn run_epochs(dbn: &mut Dbn, data: &Dataset, epochs: i64) {
    for _ in 0..epochs {
        for b in 0..10 {
            let x = data.train.x.narrow(0, b * 50, 50);
            let y = data.train.y.as_ref().unwrap().narrow(0, b * 50, 50);
            dbn.train_step(&Batch::labelled(&x, &y)).unwrap();
        }
    }
}

fn mean(t: &Tensor) -> f64 {
    t.mean(Kind::Double).double_value(&[])
}

const BARS_MODEL: &str =
    "dtype = \"float64\"\nhidden = [10, 8]\nlayer_epochs = [100, 100]\nk = 5\ninit_std = 0.1";

#[test]
fn greedy_training_raises_the_exact_likelihood_and_the_bound() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(13);
    let (c, data) = bars3(BARS_MODEL);
    let mut dbn = build(&c, &data).unwrap();
    let x = &data.train.x;
    let samples = 200;
    let measure = |dbn: &Dbn| {
        let lz = hand_log_z_top(dbn);
        let exact = mean(&hand_log_p(dbn, x));
        let bound = mean(&dbn.bound_before_log_z(x, samples, 500)) - lz;
        (exact, bound)
    };
    let at_init = measure(&dbn);
    run_epochs(&mut dbn, &data, 100);
    assert_eq!(dbn.layer_at(dbn.steps_taken()), 1);
    let after_1 = measure(&dbn);
    run_epochs(&mut dbn, &data, 100);
    let after_2 = measure(&dbn);
    println!(
        "bars 3×3, 9-10-8 DBN (exact log p, bound with exact log Z_top): init {at_init:.3?}, \
         after layer 1 {after_1:.3?}, after layer 2 {after_2:.3?} (optimum −2.639)"
    );
    assert!(after_2.0 > at_init.0 + 2.0, "{at_init:?} → {after_2:?}");
    assert!(after_2.0 > after_1.0 + 0.5, "{after_1:?} → {after_2:?}");
    assert!(after_2.1 > at_init.1 + 2.0, "{at_init:?} → {after_2:?}");
    assert!(after_2.1 > after_1.1 + 0.5, "{after_1:?} → {after_2:?}");
    // The trained model's bound is close to its log-likelihood.
    assert!(after_2.0 - after_2.1 < 1.0, "gap {after_2:?}");
    assert!(
        after_2.0 - after_2.1 > -0.05,
        "bound above log p: {after_2:?}"
    );
}

#[test]
fn ais_log_z_of_the_top_rbm_and_the_ais_bound_match_enumeration() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(14);
    let (mut c, data) = bars3(BARS_MODEL);
    let mut dbn = build(&c, &data).unwrap();
    run_epochs(&mut dbn, &data, 200);
    let exact_z = hand_log_z_top(&dbn);
    let est = dbn
        .top()
        .ais_log_z(200, &Schedule::linear(1000).unwrap())
        .unwrap();
    println!(
        "top RBM 10×8 of a trained 9-10-8 DBN: exact log Z {exact_z:.4}, AIS {:.4} ± {:.4}",
        est.log_z, est.std_err
    );
    assert!(
        (est.log_z - exact_z).abs() < 0.05,
        "{} vs {exact_z}",
        est.log_z
    );

    // gm eval's path: exact log p, and the AIS bound below it (within AIS error).
    c.eval.ais_chains = 200;
    c.eval.ais_steps = Some(1000);
    c.eval.chunk = 64;
    let x = data.test.x.narrow(0, 0, 64);
    let lls = dbn.log_likelihoods(&x, &c).unwrap();
    assert_eq!(lls.len(), 2);
    let (exact, bound) = (&lls[0], &lls[1]);
    assert_eq!(exact.kind, LikelihoodKind::Exact);
    assert_eq!(bound.kind, LikelihoodKind::LowerBound);
    let hand = mean(&hand_log_p(&dbn, &x));
    assert!((exact.mean - hand).abs() < 1e-9, "{} vs {hand}", exact.mean);
    println!(
        "64 test rows: exact {:.4}, AIS bound {:.4} ± {:.4}",
        exact.mean, bound.mean, bound.std_err
    );
    assert!(
        bound.mean < exact.mean + 0.05,
        "{} vs {}",
        bound.mean,
        exact.mean
    );
    // Example by example (5,000 draws of q each; the tolerance covers their noise and AIS's).
    let per_x = dbn.bound_before_log_z(&x, 5000, 64) - est.log_z;
    let gap = hand_log_p(&dbn, &x) - per_x;
    let (lo, hi) = (gap.min().double_value(&[]), gap.max().double_value(&[]));
    println!("log p − bound on single examples: {lo:.4} … {hi:.4}");
    assert!(lo > -0.05, "bound above log p by {} on an example", -lo);
}

#[test]
fn ancestral_samples_follow_the_exact_distribution() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(15);
    for hidden in ["[3, 3]", "[3, 2, 3]"] {
        let dbn = random_dbn(4, hidden, 1.0, "sample_steps = 50");
        let n = 40_000;
        let s = dbn.sample_binary(n);
        let p = hand_log_p(&dbn, &all_states(4)).exp();
        let tv = total_variation(&empirical_distribution(&s), &p);
        let want = expected_tv(&p, n);
        println!("{hidden}: TV {tv:.4} (sampling noise alone ≈ {want:.4})");
        assert!(tv < 3.0 * want, "{hidden}: TV {tv} vs noise {want}");
    }
}

#[test]
fn sample_and_likelihoods_have_the_contract_shapes() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(16);
    let (c, data) = bars3("hidden = [6, 4]\nlayer_epochs = [1, 1]\nsample_steps = 5");
    let mut dbn = build(&c, &data).unwrap();
    let m = dbn.train_step(&Batch::inputs(&data.train.x.narrow(0, 0, 100)));
    let names: Vec<&str> = m.unwrap().iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["pseudo_nll_proxy", "recon_err", "layer"]);
    let s = dbn.sample(7).unwrap();
    assert_eq!(s.size(), [7, 1, 3, 3]);
    let (lo, hi) = (s.min().double_value(&[]), s.max().double_value(&[]));
    assert!((0.0..=1.0).contains(&lo) && hi <= 1.0);
}

#[test]
fn layers_get_their_epochs_in_order() {
    let _rng = crate::test_rng_lock();
    // 500 examples in batches of 50: 10 steps per epoch; layer 2 gets no epochs.
    let (c, data) = bars3("hidden = [4, 3, 2]\nlayer_epochs = [2, 0, 3]");
    let dbn = build(&c, &data).unwrap();
    let layers: Vec<usize> = (0..70).step_by(10).map(|s| dbn.layer_at(s)).collect();
    assert_eq!(layers, [0, 0, 2, 2, 2, 2, 2]);
    assert_eq!(dbn.layer_at(19), 0);
    assert_eq!(dbn.layer_at(20), 2);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let cases = [
        ("hidden = [4]\nlayer_epochs = [1]", "model.hidden"),
        ("hidden = [4, 0]\nlayer_epochs = [1, 1]", "model.hidden"),
        (
            "hidden = [1, 1, 1, 1, 1, 1, 1, 1, 1]\nlayer_epochs = [1, 1, 1, 1, 1, 1, 1, 1, 1]",
            "model.hidden",
        ),
        ("hidden = [4, 3]\nlayer_epochs = [1]", "model.layer_epochs"),
        (
            "hidden = [4, 3]\nlayer_epochs = [1, -1]",
            "model.layer_epochs",
        ),
        ("hidden = [4, 3]\nlayer_epochs = [1, 1]\nk = 0", "model.k"),
        (
            "hidden = [4, 3]\nlayer_epochs = [1, 1]\nsample_steps = 0",
            "model.sample_steps",
        ),
        (
            "hidden = [4, 3]\nlayer_epochs = [1, 1]\nbound_samples = 0",
            "model.bound_samples",
        ),
        (
            "hidden = [4, 3]\nlayer_epochs = [1, 1]\nexact_max_units = 26",
            "model.exact_max_units",
        ),
        (
            "hidden = [4, 3]\nlayer_epochs = [1, 1]\ninit_std = 0.0",
            "model.init_std",
        ),
    ];
    for (model, field) in cases {
        let (c, data) = bars3(model);
        match build(&c, &data) {
            Err(Error::Config { field: f, .. }) => assert_eq!(f, field, "{model}"),
            Err(e) => panic!("{model}: expected a config error on {field}, got {e}"),
            Ok(_) => panic!("{model}: accepted"),
        }
    }
    let (c, data) = bars3("hidden = [4, 3]\nlayer_epochs = [1, 1]\nno_such = 1");
    match build(&c, &data) {
        Err(Error::ConfigParse { msg, .. }) => assert!(msg.contains("no_such"), "{msg}"),
        Err(e) => panic!("expected a parse error naming no_such, got {e}"),
        Ok(_) => panic!("unknown field accepted"),
    }
}

#[test]
fn registry_builds_the_model() {
    let _rng = crate::test_rng_lock();
    let mut reg = ModelRegistry::new();
    crate::register(&mut reg);
    let (c, data) = bars3("hidden = [4, 3]\nlayer_epochs = [1, 1]");
    let m = reg
        .build(&BuildContext {
            cfg: &c,
            data: &data,
            device: Device::Cpu,
        })
        .unwrap();
    assert_eq!(m.name(), "dbn");
    let stores: Vec<&str> = m.var_stores().iter().map(|(n, _)| *n).collect();
    assert_eq!(stores, ["dbn", "layer1", "layer2"]);
}

#[test]
fn fine_tuning_classifies_and_leaves_the_generative_model_alone() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(17);
    let model = "hidden = [10, 8]\nlayer_epochs = [20, 20]\nk = 5\ninit_std = 0.1\n\
                 finetune = true\nfinetune_lr_scale = 10.0";
    let (c, data) = bars3(model);
    let mut dbn = build(&c, &data).unwrap();
    let test = data.test.evenly_spaced(None);
    run_epochs(&mut dbn, &data, 40);
    assert!(dbn.statistics(&test, &c).unwrap().is_empty());
    let before = dbn.exact_log_p(&test.x).unwrap();
    assert!(dbn.finetuning_at(dbn.steps_taken()));
    let valid = Batch::labelled(&data.valid.x, data.valid.y.as_ref().unwrap());
    let xent = |dbn: &Dbn| dbn.eval_metrics(&valid).unwrap()[0].1.double_value(&[]);
    run_epochs(&mut dbn, &data, 1);
    let first = xent(&dbn);
    run_epochs(&mut dbn, &data, 99);
    let last = xent(&dbn);
    println!("fine-tuning: validation cross-entropy {first:.4} after 1 epoch, {last:.4} after 100");
    assert!(last < 0.1 && last < first, "{first} → {last}");
    let stats = dbn.statistics(&test, &c).unwrap();
    assert_eq!(stats.len(), 1);
    let e = stats[0].value;
    // The 14 patterns of 3×3 bars and stripes, each with one label (blank and full are
    // "stripes"): separable.
    println!("fine-tuned 9-10-8 classifier, test error {e:.4}");
    assert!(e < 0.05, "test error {e}");
    let after = dbn.exact_log_p(&test.x).unwrap();
    assert_eq!(
        max_abs(&before, &after),
        0.0,
        "fine-tuning moved the generative model"
    );
}

#[test]
fn fine_tuning_needs_labels() {
    let _rng = crate::test_rng_lock();
    let x = Tensor::rand([40, 4], F64).lt(0.5).to_kind(Kind::Double);
    let c = cfg(
        "hidden = [3, 2]\nlayer_epochs = [1, 1]\nfinetune = true",
        "dataset = \"bars-and-stripes\"\nbatch_size = 40",
    );
    match build(&c, &rows_dataset(&x, true)) {
        Err(Error::Config { field, .. }) => assert_eq!(field, "model.finetune"),
        Err(e) => panic!("expected a config error on model.finetune, got {e}"),
        Ok(_) => panic!("fine-tuning accepted without labels"),
    }
}
