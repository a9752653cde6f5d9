use super::*;
use crate::test_kit::load;
use gm_core::config::RunConfig;
use gm_core::data::Dataset;
use gm_core::model::{parse_params, BuildContext, Model};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn cfg(model: &str, data: &str) -> RunConfig {
    crate::test_kit::config("dcgan", model, data)
}

fn build_on(c: &RunConfig, d: &Dataset) -> gm_core::Result<Box<dyn Model>> {
    build(&BuildContext {
        cfg: c,
        data: d,
        device: Device::Cpu,
    })
}

#[test]
fn unpooling_puts_each_value_top_left_of_a_block_of_zeros() {
    let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([1, 1, 2, 3]);
    let got = unpool2(&x);
    #[rustfmt::skip]
    let want = Tensor::from_slice(&[
        1.0f32, 0.0, 2.0, 0.0, 3.0, 0.0,
        0.0,    0.0, 0.0, 0.0, 0.0, 0.0,
        4.0,    0.0, 5.0, 0.0, 6.0, 0.0,
        0.0,    0.0, 0.0, 0.0, 0.0, 0.0,
    ])
    .view([1, 1, 4, 6]);
    assert!(got.equal(&want), "{got}");
    // 2×2 max-pooling undoes it for non-negative inputs (the inverse §20.10.6 describes).
    assert!(got.max_pool2d_default(2).equal(&x));
}

/// Generator and discriminator of `model` lines for `[c, h, w]` images.
fn players(model: &str, image: [i64; 3]) -> (VarStore, Generator, VarStore, Discriminator) {
    let p: DcganConfig = parse_params("dcgan", &cfg(model, "").model.params).unwrap();
    let (vg, vd) = (VarStore::new(Device::Cpu), VarStore::new(Device::Cpu));
    let g = Generator::new(&(vg.root() / "net"), &p, image);
    let d = Discriminator::new(&(vd.root() / "net"), &p, image);
    (vg, g, vd, d)
}

#[test]
fn both_up_samplings_give_images_of_the_data_shape_and_logits() {
    let _rng = crate::test_rng_lock();
    tch::manual_seed(0);
    for up in ["transposed", "unpool"] {
        for image in [[1, 28, 28], [3, 8, 12], [1, 4, 4]] {
            let lines = format!("latent = 5\ng_channels = 4\nd_channels = 3\nupsample = \"{up}\"");
            let (_vg, g, _vd, d) = players(&lines, image);
            let z = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
            let x = g.forward_t(&z, true);
            assert_eq!(
                x.size(),
                [6, image[0], image[1], image[2]],
                "{up} {image:?}"
            );
            let (lo, hi) = (x.min().double_value(&[]), x.max().double_value(&[]));
            assert!(lo > 0.0 && hi < 1.0, "{up}: samples in [{lo}, {hi}]");
            assert_eq!(d.forward_t(&x, true).size(), [6], "{up} {image:?}");
        }
    }
}

#[test]
fn parameters_are_named_by_layer_and_the_up_sampling_chooses_the_kernels() {
    let _rng = crate::test_rng_lock();
    let shapes = |up: &str| {
        let (vg, _g, vd, _d) = players(
            &format!("latent = 5\ng_channels = 4\nd_channels = 3\nupsample = \"{up}\""),
            [1, 28, 28],
        );
        let mut v: Vec<(String, Vec<i64>)> = vg
            .variables()
            .into_iter()
            .chain(vd.variables())
            .map(|(k, t)| (k, t.size()))
            .collect();
        v.sort();
        v
    };
    let t = shapes("transposed");
    let names: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
    #[rustfmt::skip]
    assert_eq!(names, [
        "net.bn0.bias", "net.bn0.running_mean", "net.bn0.running_var", "net.bn0.weight",
        "net.bn1.bias", "net.bn1.running_mean", "net.bn1.running_var", "net.bn1.weight",
        "net.bn2.bias", "net.bn2.running_mean", "net.bn2.running_var", "net.bn2.weight",
        "net.conv1.bias", "net.conv1.weight", "net.conv2.weight",
        "net.fc.bias", "net.fc.weight", "net.fc.weight",
        "net.up1.weight", "net.up2.bias", "net.up2.weight",
    ]);
    let size = |v: &[(String, Vec<i64>)], k: &str| {
        v.iter()
            .filter(|(n, _)| n == k)
            .map(|(_, s)| s.clone())
            .collect::<Vec<_>>()
    };
    // Transposed convolution weights are [in, out, 4, 4]; the unpool convs' [out, in, 5, 5].
    assert_eq!(size(&t, "net.up1.weight"), [vec![8, 4, 4, 4]]);
    assert_eq!(
        size(&shapes("unpool"), "net.up1.weight"),
        [vec![4, 8, 5, 5]]
    );
    // G's projection to [8, 7, 7] and D's logit from [6, 7, 7].
    assert!(size(&t, "net.fc.weight").contains(&vec![8 * 49, 5]));
    assert!(size(&t, "net.fc.weight").contains(&vec![1, 6 * 49]));
}

#[test]
fn images_it_cannot_take_and_bad_fields_are_config_errors() {
    let _rng = crate::test_rng_lock();
    let c = cfg("", "dataset = \"two-moons\"");
    let e = build_on(&c, &load(&c))
        .err()
        .expect("vector data")
        .to_string();
    assert!(
        e.contains("data.dataset") && e.contains("two-moons") && e.contains("multiples of 4"),
        "{e}"
    );
    let c = cfg("", "dataset = \"bars-and-stripes\"\nbars_size = 6");
    let e = build_on(&c, &load(&c))
        .err()
        .expect("6×6 images")
        .to_string();
    assert!(
        e.contains("[1, 6, 6]") && e.contains("multiples of 4"),
        "{e}"
    );
    let c = cfg("", "dataset = \"bars-and-stripes\"\nbars_size = 8");
    assert!(build_on(&c, &load(&c)).is_ok(), "8×8 images are accepted");
    for (field, line) in [
        ("model.latent", "latent = 0"),
        ("model.g_channels", "g_channels = 0"),
        ("model.d_channels", "d_channels = -2"),
        ("model.leak", "leak = 1.5"),
        ("model.d_steps", "d_steps = 0"),
        ("model.generator_lr_scale", "generator_lr_scale = 0.0"),
    ] {
        let p: DcganConfig = parse_params("dcgan", &cfg(line, "").model.params).unwrap();
        match p.validate() {
            Err(gm_core::Error::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{line}: {other:?}"),
        }
    }
    let e = parse_params::<DcganConfig>("dcgan", &cfg("upsample = \"bilinear\"", "").model.params)
        .unwrap_err()
        .to_string();
    assert!(e.contains("upsample") && e.contains("bilinear"), "{e}");
}

#[test]
fn training_on_bars_and_stripes_makes_valid_patterns_and_sampling_uses_running_statistics() {
    let _rng = crate::test_rng_lock();
    let c = cfg(
        "latent = 8\ng_channels = 16\nd_channels = 16",
        "dataset = \"bars-and-stripes\"",
    );
    let d = load(&c);
    tch::manual_seed(3);
    let p: DcganConfig = parse_params("dcgan", &c.model.params).unwrap();
    let ctx = BuildContext {
        cfg: &c,
        data: &d,
        device: Device::Cpu,
    };
    let mut m = new_dcgan(p, &ctx).unwrap();
    let before = crate::test_kit::pattern_fraction(&m.sample(2000).unwrap());
    crate::test_kit::train(&mut m, &d, 600);
    let after = crate::test_kit::pattern_fraction(&m.sample(2000).unwrap());
    eprintln!(
        "dcgan on bars-and-stripes: valid patterns {before:.3} before, {after:.3} after 600 steps"
    );
    // 30 of the 65,536 binary 4×4 images are patterns. Seed 3: 0.000 → 0.589.
    assert!(
        after > 0.4 && after > before + 0.3,
        "valid patterns {before} → {after}"
    );
    // Sampling uses batch norm's running averages: a sample does not depend on the others
    // drawn with it; a training-mode pass (batch statistics) does.
    let z = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
    let all = m.generate(&z, None);
    let first = m.generate(&z.narrow(0, 0, 1), None);
    assert!(all.narrow(0, 0, 1).allclose(&first, 1e-5, 1e-6, false));
    let batch_stats = tch::no_grad(|| m.generator().forward(&z, None, true));
    let gap = (batch_stats - &all).abs().max().double_value(&[]);
    assert!(
        gap > 1e-3,
        "training- and evaluation-mode samples agree ({gap})"
    );
}
