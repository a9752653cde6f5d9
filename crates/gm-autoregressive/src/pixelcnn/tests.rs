use super::*;
use crate::common::{
    all_binary_vectors, empirical_distribution, state_index, total_variation, Autoregressive,
};
use crate::testutil::*;
use gm_core::config::RunConfig;
use gm_core::data::{bars_and_stripes_patterns, Dataset};
use gm_core::masks::MaskSpec;
use gm_core::model::{parse_params, BuildContext, LikelihoodKind, Model};
use tch::{Device, Kind, Tensor};

fn pixelcnn(c: &RunConfig, d: &Dataset) -> gm_core::Result<PixelCnn> {
    let p: PixelCnnConfig = parse_params("pixelcnn", &c.model.params)?;
    PixelCnn::new(
        p,
        &BuildContext {
            cfg: c,
            data: d,
            device: Device::Cpu,
        },
    )
}

/// Binary images `[N, 1, h, w]` from rows `x` `[N, h·w]` (train = valid = test).
fn images(x: &Tensor, h: i64, w: i64) -> Dataset {
    let mut d = dataset_of(x, true);
    d.shape = vec![1, h, w];
    d.is_image = true;
    for s in [&mut d.train, &mut d.valid, &mut d.test] {
        s.x = s.x.reshape([-1, 1, h, w]);
    }
    d
}

fn model(extra: &str, h: i64, w: i64, seed: i64) -> PixelCnn {
    let c = cfg("pixelcnn", extra, "bars-and-stripes", "", "");
    tch::manual_seed(seed);
    let x = Tensor::rand([20, h * w], (Kind::Float, Device::Cpu))
        .lt(0.3)
        .to_kind(Kind::Float);
    pixelcnn(&c, &images(&x, h, w)).unwrap()
}

const SMALL: &str = "channels = 8\nresidual_blocks = 2\noutput_channels = 8";

const CONFIGS: [&str; 5] = [
    SMALL,
    "channels = 6\nresidual_blocks = 0\nfirst_kernel = 3\noutput_layers = 0",
    "channels = 8\nresidual_blocks = 1\nfirst_kernel = 3\nkernel = 3\noutput_layers = 1\noutput_channels = 4",
    "channels = 4\nresidual_blocks = 3\nfirst_kernel = 5\nkernel = 5\noutput_channels = 6",
    "channels = 4\nresidual_blocks = 2\nfirst_kernel = 3\nkernel = 1",
];

#[test]
fn a_row_from_its_window_equals_the_full_pass_and_a_smaller_window_does_not() {
    let _rng = crate::test_rng_lock();
    for extra in CONFIGS {
        let (h, w) = (12, 5);
        let m = model(extra, h, w, 3);
        let x = Tensor::rand([4, 1, h, w], (Kind::Float, Device::Cpu))
            .lt(0.5)
            .to_kind(Kind::Float);
        let full = tch::no_grad(|| m.logits(&x));
        let r = m.rows_above();
        for i in 0..h {
            let win = tch::no_grad(|| m.row_logits(&x, i));
            let err = (&win - full.select(1, 0).select(1, i))
                .abs()
                .max()
                .double_value(&[]);
            assert!(err < 1e-5, "{extra}: row {i}: window differs by {err}");
            if i >= r && r > 0 {
                // One row fewer: the zero padding now reaches row i.
                let short = tch::no_grad(|| {
                    m.logits(&x.narrow(2, i - r + 1, r))
                        .select(1, 0)
                        .select(1, r - 1)
                });
                let d = (&short - full.select(1, 0).select(1, i))
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(d > 1e-6, "{extra}: row {i} unchanged without row {}", i - r);
            }
        }
    }
}

#[test]
fn masks_a_and_b_keep_the_past_and_b_keeps_the_centre() {
    let _rng = crate::test_rng_lock();
    let a: Vec<f32> = Vec::try_from(conv_mask(MaskKind::A, 3, Device::Cpu).reshape([-1])).unwrap();
    let b: Vec<f32> = Vec::try_from(conv_mask(MaskKind::B, 3, Device::Cpu).reshape([-1])).unwrap();
    assert_eq!(a, vec![1., 1., 1., 1., 0., 0., 0., 0., 0.]);
    assert_eq!(b, vec![1., 1., 1., 1., 1., 0., 0., 0., 0.]);
    let a7 = conv_mask(MaskKind::A, 7, Device::Cpu);
    assert_eq!(a7.sum(Kind::Float).double_value(&[]), 24.0); // 3 rows of 7, 3 to the left
}

#[test]
fn probabilities_of_all_images_sum_to_one() {
    let _rng = crate::test_rng_lock();
    for extra in CONFIGS {
        for (h, w) in [(3, 4), (4, 3)] {
            let m = model(extra, h, w, 1);
            let x = all_binary_vectors(h * w, Device::Cpu);
            let total = tch::no_grad(|| m.log_prob(&x))
                .to_kind(Kind::Double)
                .exp()
                .sum(Kind::Double)
                .double_value(&[]);
            assert!(
                (total - 1.0).abs() < 1e-4,
                "{extra} on {h}×{w}: Σ p = {total}"
            );
        }
    }
}

#[test]
fn every_pixel_depends_only_on_earlier_pixels_in_raster_order() {
    let _rng = crate::test_rng_lock();
    for extra in CONFIGS {
        let (h, w) = (5, 6);
        let m = model(extra, h, w, 2);
        let order: Vec<i64> = (0..h * w).collect();
        assert_autoregressive(
            |x| m.logits(&x.reshape([-1, 1, h, w])).reshape([-1, h * w]),
            &order,
        );
        // A top crop gives exactly the logits of its rows (what sampling relies on).
        let x = Tensor::rand([4, 1, h, w], (Kind::Float, Device::Cpu)).round();
        let full = m.logits(&x);
        for rows in 1..=h {
            let crop = m.logits(&x.narrow(2, 0, rows));
            let diff = (crop - full.narrow(2, 0, rows))
                .abs()
                .max()
                .double_value(&[]);
            assert!(
                diff < 1e-5,
                "{extra}: crop of {rows} rows differs by {diff}"
            );
        }
    }
}

#[test]
fn the_receptive_field_is_causal_with_the_blind_spot_of_the_paper() {
    let _rng = crate::test_rng_lock();
    // A 3×3 mask-A layer then one block with a 3×3 mask-B conv: pixel (r, c) sees the
    // offsets A ∪ (A ⊕ B), A = {(-1,-1), (-1,0), (-1,1), (0,-1)}, B = A ∪ {(0,0)}:
    // row −2: columns −2..=2; row −1: columns −2..=1; row 0: columns −2, −1.
    // (−1, +2) is earlier in raster order yet unseen: the blind spot.
    let m = model(
        "channels = 8\nresidual_blocks = 1\nfirst_kernel = 3\nkernel = 3",
        6,
        6,
        3,
    );
    let x = Tensor::randn([16, 1, 6, 6], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let (r, c) = (3i64, 2i64);
    let y = m.logits(&x).select(2, r).select(2, c).sum(Kind::Float);
    let g = Tensor::run_backward(&[y], &[&x], false, false)
        .pop()
        .unwrap();
    let g = g
        .abs()
        .sum_dim_intlist([0, 1].as_slice(), false, Kind::Float);
    let mut expect = vec![];
    for dc in -2..=2 {
        expect.push((-2, dc));
    }
    for dc in -2..=1 {
        expect.push((-1, dc));
    }
    expect.extend([(0, -2), (0, -1)]);
    for i in 0..6 {
        for j in 0..6 {
            let seen = g.double_value(&[i, j]) > 0.0;
            let should = expect.contains(&(i - r, j - c));
            assert_eq!(seen, should, "pixel ({r},{c}) vs ({i},{j}): seen {seen}");
        }
    }
    assert!(g.double_value(&[r - 1, c + 2]) == 0.0, "blind spot");
}

#[test]
fn samples_match_the_exact_distribution() {
    let _rng = crate::test_rng_lock();
    // A random model spreads over all 512 states, where sampling noise alone gives a TV
    // near 0.024 at 50,000 draws: compare with exact draws of the same size.
    let m = model(
        "channels = 8\nresidual_blocks = 1\nfirst_kernel = 5\noutput_layers = 1\noutput_channels = 8",
        3,
        3,
        4,
    );
    let n = 50_000;
    let exact = exact_distribution(&m);
    tch::manual_seed(8);
    let draws = exact.multinomial(n, true).bincount::<Tensor>(None, 512);
    let noise = total_variation(&(draws.to_kind(Kind::Double) / n as f64), &exact);
    let tv = assert_samples_match(&m, n, 1.3 * noise + 0.005);
    eprintln!("pixelcnn samples on 3×3: TV {tv:.4} (exact draws: {noise:.4})");
}

#[test]
fn completions_match_the_exact_conditional() {
    let _rng = crate::test_rng_lock();
    let m = model(SMALL, 3, 3, 5);
    let all = all_binary_vectors(9, Device::Cpu);
    let joint = tch::no_grad(|| m.log_prob(&all))
        .to_kind(Kind::Double)
        .exp();
    // Condition on the first 4 pixels (raster order) equal to x0's.
    let x0 = Tensor::from_slice(&[1f32, 0., 0., 1., 1., 1., 0., 0., 1.]);
    let agree = all
        .narrow(1, 0, 4)
        .eq_tensor(&x0.narrow(0, 0, 4).unsqueeze(0))
        .all_dim(1, false)
        .to_kind(Kind::Double);
    let cond = &joint * &agree / (&joint * &agree).sum(Kind::Double);
    tch::manual_seed(6);
    let n = 20_000;
    let s = m
        .complete_from(&x0.view([1, 1, 3, 3]).repeat([n, 1, 1, 1]), 4)
        .reshape([n, 9]);
    let kept = s.narrow(1, 0, 4) - x0.narrow(0, 0, 4).unsqueeze(0);
    assert_eq!(kept.abs().max().double_value(&[]), 0.0);
    let tv = total_variation(&empirical_distribution(&s), &cond);
    eprintln!("pixelcnn completions of the last 5 pixels: TV {tv:.4}");
    assert!(tv < 0.03, "TV {tv}");
    // Figures: masked input (top row kept), 5 completions that keep it, the image.
    let x = s.narrow(0, 0, 3).view([3, 1, 3, 3]);
    let figs = m.figures(&x).unwrap();
    assert_eq!(figs.len(), 1);
    assert_eq!(figs[0].name, "completion-bottom-half");
    let rows = figs[0].images.view([3, 7, 9]);
    assert_eq!(rows.select(1, 6), x.reshape([3, 9]));
    let top = rows.narrow(1, 1, 5).narrow(2, 0, 3) - x.reshape([3, 1, 9]).narrow(2, 0, 3);
    assert_eq!(top.abs().max().double_value(&[]), 0.0);
    let shown = rows.select(1, 0);
    assert_eq!(shown.narrow(1, 0, 3), x.reshape([3, 9]).narrow(1, 0, 3));
    assert_eq!(shown.narrow(1, 3, 6).eq(0.5).all().int64_value(&[]), 1);
    let _ = state_index(&s.narrow(0, 0, 1)); // rows are binary
}

#[test]
fn bottom_half_completion_is_the_exact_conditional_and_other_masks_are_refused() {
    let _rng = crate::test_rng_lock();
    let m = model(SMALL, 4, 3, 7);
    let comp = m.as_completion().expect("pixelcnn completes");
    let all = all_binary_vectors(12, Device::Cpu);
    let joint = tch::no_grad(|| m.log_prob(&all))
        .to_kind(Kind::Double)
        .exp();
    // Bottom half of a 4×3 image hidden: the first 6 pixels in raster order observed.
    let mask = MaskSpec::BottomHalf
        .build(1, &[1, 4, 3], 0, Device::Cpu)
        .unwrap();
    let x0 = Tensor::from_slice(&[0f32, 1., 1., 1., 0., 0., 1., 0., 1., 1., 0., 0.]);
    let agree = all
        .narrow(1, 0, 6)
        .eq_tensor(&x0.narrow(0, 0, 6).unsqueeze(0))
        .all_dim(1, false)
        .to_kind(Kind::Double);
    let cond = &joint * &agree / (&joint * &agree).sum(Kind::Double);
    let n = 20_000;
    tch::manual_seed(8);
    let s = comp
        .complete(
            &x0.view([1, 1, 4, 3]).repeat([n, 1, 1, 1]),
            &mask.repeat([n, 1, 1, 1]),
        )
        .unwrap();
    assert_eq!(s.size(), vec![n, 1, 4, 3]);
    let tv = total_variation(&empirical_distribution(&s.reshape([n, 12])), &cond);
    eprintln!("pixelcnn bottom-half completion (64 states): TV {tv:.4}");
    assert!(tv < 0.04, "TV {tv}");
    for spec in [MaskSpec::RightHalf, MaskSpec::Square, MaskSpec::Random(0.5)] {
        let mask = spec.build(2, &[1, 4, 3], 1, Device::Cpu).unwrap();
        let e = comp.complete(&x0.view([1, 1, 4, 3]).repeat([2, 1, 1, 1]), &mask);
        let e = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("raster order"), "{spec:?}: {e}");
    }
}

#[test]
fn training_fits_bars_and_stripes_and_samples_match() {
    let _rng = crate::test_rng_lock();
    let patterns = bars_and_stripes_patterns(3).reshape([-1, 9]);
    let target = empirical_distribution(&patterns);
    let x = patterns.repeat([8, 1]).view([-1, 1, 3, 3]);
    let c = cfg(
        "pixelcnn",
        "channels = 16\nresidual_blocks = 2\nfirst_kernel = 5\noutput_channels = 16",
        "bars-and-stripes",
        "",
        "lr = 0.01",
    );
    tch::manual_seed(7);
    let mut m = pixelcnn(&c, &images(&x.reshape([-1, 9]), 3, 3)).unwrap();
    let nll = |m: &PixelCnn| -> f64 { -m.log_prob(&patterns).mean(Kind::Double).double_value(&[]) };
    let (tv0, nll0) = (total_variation(&exact_distribution(&m), &target), nll(&m));
    train(&mut m, &x, 250);
    let (tv1, nll1) = (total_variation(&exact_distribution(&m), &target), nll(&m));
    eprintln!(
        "pixelcnn on bars and stripes: NLL {nll0:.3} -> {nll1:.3} (optimum ln 14 = {:.3}), \
         TV to the target {tv0:.3} -> {tv1:.3}",
        14f64.ln()
    );
    assert!(nll1 < 14f64.ln() + 0.1, "NLL {nll1}");
    assert!(nll0 - nll1 > 2.0, "NLL {nll0} -> {nll1}");
    assert!(tv1 < 0.05, "TV {tv1} (start {tv0})");
    assert_sums_to_one(&m);
    assert_samples_match(&m, 20_000, 0.03);
    let lls = m.log_likelihoods(&x, &c).unwrap();
    assert_eq!(lls.len(), 1);
    assert_eq!(lls[0].kind, LikelihoodKind::Exact);
    assert!((lls[0].nll() - nll1).abs() < 1e-4);
    let s = m.sample(5).unwrap();
    assert_eq!(s.size(), vec![5, 1, 3, 3]);
}

#[test]
fn invalid_configs_are_rejected_naming_the_field() {
    let _rng = crate::test_rng_lock();
    let c = cfg("pixelcnn", "blocks = 3", "bars-and-stripes", "", "");
    let err = parse_params::<PixelCnnConfig>("pixelcnn", &c.model.params)
        .unwrap_err()
        .to_string();
    assert!(err.contains("blocks"), "{err}");
    let x = Tensor::rand([10, 9], (Kind::Float, Device::Cpu)).round();
    let data = images(&x, 3, 3);
    for (extra, field) in [
        ("channels = 0", "model.channels"),
        ("channels = 7", "model.channels"),
        ("first_kernel = 4", "model.first_kernel"),
        ("first_kernel = 1", "model.first_kernel"),
        ("kernel = 2", "model.kernel"),
        ("kernel = -1", "model.kernel"),
        ("output_channels = 0", "model.output_channels"),
    ] {
        assert_config_error(
            pixelcnn(&cfg("pixelcnn", extra, "bars-and-stripes", "", ""), &data),
            field,
        );
    }
    let real = images(&Tensor::rand([10, 9], (Kind::Float, Device::Cpu)), 3, 3);
    let real = Dataset {
        binary: false,
        ..real
    };
    assert_config_error(
        pixelcnn(&cfg("pixelcnn", "", "two-moons", "", ""), &real),
        "data.binarize",
    );
    // Vectors, or images of more than one channel, are not [1, H, W].
    assert_config_error(
        pixelcnn(
            &cfg("pixelcnn", "", "bars-and-stripes", "", ""),
            &dataset_of(&x, true),
        ),
        "data",
    );
    let mut rgb = images(&x, 3, 3);
    rgb.shape = vec![3, 1, 3];
    assert_config_error(
        pixelcnn(&cfg("pixelcnn", "", "bars-and-stripes", "", ""), &rgb),
        "data",
    );
}
