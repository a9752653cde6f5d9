//! Tests of loading, validation and binarization (the readers, batches and synthetic
//! generators have their own tests next to them).

use super::*;
use crate::data::files::sha256_hex;
use crate::data::idx::tests::{gzip, idx_bytes};

fn opts() -> DataOptions {
    DataOptions::default()
}

fn config_field<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn validate_accepts_the_defaults_of_every_dataset() {
    let _rng = crate::rng_guard::lock();
    for info in registry() {
        validate(info.name, &opts()).unwrap_or_else(|e| panic!("{}: {e}", info.name));
        assert!(!info.description.is_empty() && !info.description.starts_with('('));
    }
    let names: Vec<&str> = registry().iter().map(|i| i.name).collect();
    assert_eq!(
        names,
        [
            "mnist",
            "binarized-mnist",
            "fashion-mnist",
            "bars-and-stripes",
            "eight-gaussians",
            "two-moons",
            "swiss-roll"
        ]
    );
    assert!(registry().iter().filter(|i| i.needs_download).count() == 3);
}

#[test]
fn validate_rejects_dynamic_on_binarized_mnist() {
    let _rng = crate::rng_guard::lock();
    for spec in [
        BinarizeSpec::Dynamic,
        BinarizeSpec::Stochastic,
        BinarizeSpec::Threshold,
    ] {
        let o = DataOptions {
            binarize: spec,
            ..opts()
        };
        let err = validate("binarized-mnist", &o).unwrap_err();
        assert!(err.to_string().contains("data.binarize"), "{err}");
        assert_eq!(config_field::<()>(Err(err)), "data.binarize");
    }
    assert_eq!(
        binarization("binarized-mnist", &opts()).unwrap(),
        Binarization::StaticFile
    );
    let o = DataOptions {
        valid_size: Some(5000),
        ..opts()
    };
    assert_eq!(
        config_field(validate("binarized-mnist", &o)),
        "data.valid_size"
    );
}

#[test]
fn validate_rejects_binarize_on_real_valued_and_synthetic_sets() {
    let _rng = crate::rng_guard::lock();
    for name in [
        "two-moons",
        "eight-gaussians",
        "swiss-roll",
        "bars-and-stripes",
    ] {
        for spec in [
            BinarizeSpec::Threshold,
            BinarizeSpec::Stochastic,
            BinarizeSpec::Dynamic,
        ] {
            let o = DataOptions {
                binarize: spec,
                ..opts()
            };
            assert_eq!(config_field(validate(name, &o)), "data.binarize", "{name}");
        }
        let o = DataOptions {
            valid_size: Some(10),
            ..opts()
        };
        assert_eq!(config_field(validate(name, &o)), "data.valid_size");
        for bad in [0, 3, -1, i64::MAX] {
            let o = DataOptions {
                synthetic_size: Some(bad),
                ..opts()
            };
            assert_eq!(config_field(validate(name, &o)), "data.synthetic_size");
        }
    }
    for bad in [0, 1, 17, -4] {
        let o = DataOptions {
            bars_size: bad,
            ..opts()
        };
        assert_eq!(
            config_field(validate("bars-and-stripes", &o)),
            "data.bars_size"
        );
    }
}

#[test]
fn validate_checks_mnist_options() {
    let _rng = crate::rng_guard::lock();
    for spec in [
        BinarizeSpec::None,
        BinarizeSpec::Threshold,
        BinarizeSpec::Stochastic,
        BinarizeSpec::Dynamic,
    ] {
        let o = DataOptions {
            binarize: spec,
            binarize_seed: 3,
            ..opts()
        };
        validate("mnist", &o).unwrap();
        validate("fashion-mnist", &o).unwrap();
    }
    assert_eq!(
        binarization(
            "mnist",
            &DataOptions {
                binarize: BinarizeSpec::Dynamic,
                binarize_seed: 3,
                ..opts()
            }
        )
        .unwrap(),
        Binarization::Dynamic { seed: 3 }
    );
    for t in [0.0, 1.0, -0.5, 2.0, f32::NAN] {
        let o = DataOptions {
            binarize: BinarizeSpec::Threshold,
            threshold: t,
            ..opts()
        };
        assert_eq!(config_field(validate("mnist", &o)), "data.threshold", "{t}");
    }
    for v in [-1, 60_000, 100_000] {
        let o = DataOptions {
            valid_size: Some(v),
            ..opts()
        };
        assert_eq!(
            config_field(validate("mnist", &o)),
            "data.valid_size",
            "{v}"
        );
    }
    for v in [0, 10_000, 59_999] {
        let o = DataOptions {
            valid_size: Some(v),
            ..opts()
        };
        validate("mnist", &o).unwrap();
    }
}

#[test]
fn validate_unknown_dataset_lists_known_names() {
    let _rng = crate::rng_guard::lock();
    let err = validate("cifar10", &opts()).unwrap_err();
    match &err {
        Error::Unknown { what, name, known } => {
            assert_eq!(*what, "dataset");
            assert_eq!(name, "cifar10");
            for n in [
                "mnist",
                "binarized-mnist",
                "fashion-mnist",
                "bars-and-stripes",
                "two-moons",
            ] {
                assert!(known.split(", ").any(|k| k == n), "{known}");
            }
        }
        other => panic!("expected Unknown, got {other:?}"),
    }
    assert!(
        err.to_string().contains("known: mnist, binarized-mnist"),
        "{err}"
    );
    assert!(matches!(
        load("cifar10", &opts()),
        Err(Error::Unknown { .. })
    ));
}

#[test]
fn data_options_serde_defaults_and_unknown_keys() {
    let _rng = crate::rng_guard::lock();
    let o: DataOptions = toml::from_str("").unwrap();
    assert_eq!(o, DataOptions::default());
    assert_eq!(o.threshold, 0.5);
    assert!(o.verify);
    assert_eq!(o.bars_size, 4);
    let o: DataOptions =
        toml::from_str("binarize = \"dynamic\"\nbinarize_seed = 7\nvalid_size = 5000").unwrap();
    assert_eq!(o.binarize, BinarizeSpec::Dynamic);
    assert_eq!(o.binarize_seed, 7);
    assert_eq!(o.valid_size, Some(5000));
    assert!(toml::from_str::<DataOptions>("binarise = \"dynamic\"").is_err());
    assert!(toml::from_str::<DataOptions>("binarize = \"random\"").is_err());
}

#[test]
fn data_dir_option_wins() {
    let _rng = crate::rng_guard::lock();
    let o = DataOptions {
        data_dir: Some(PathBuf::from("/x/y")),
        ..opts()
    };
    assert_eq!(data_dir(&o), Path::new("/x/y"));
    // without the option: some absolute or relative folder ending in the documented suffix,
    // unless GM_DATA_DIR is set (not touched here: tests run in parallel)
    if std::env::var_os("GM_DATA_DIR").is_none() {
        assert!(data_dir(&opts()).ends_with("gm/datasets"));
    }
}

#[test]
fn load_bars_and_stripes_and_toys() {
    let _rng = crate::rng_guard::lock();
    let ds = load("bars-and-stripes", &opts()).unwrap();
    assert_eq!(ds.train.x.size(), [1000, 1, 4, 4]);
    assert_eq!(ds.valid.len(), 250);
    assert_eq!(ds.test.len(), 250);
    assert!(ds.binary && ds.is_image);
    assert_eq!(ds.num_classes, Some(2));
    assert_eq!(ds.train.y.as_ref().unwrap().size(), [1000]);
    assert_eq!(ds.binarization, Binarization::None);
    assert_eq!(ds.example_numel(), 16);
    let ones = ds.train.x.eq(1.0).logical_or(&ds.train.x.eq(0.0));
    assert!(bool::try_from(ones.all()).unwrap());
    let again = load("bars-and-stripes", &opts()).unwrap();
    assert!(ds.train.x.equal(&again.train.x));
    assert!(ds.train_inputs(5).equal(&ds.train.x));

    let o = DataOptions {
        bars_size: 3,
        synthetic_size: Some(40),
        synthetic_seed: 9,
        ..opts()
    };
    let ds = load("bars-and-stripes", &o).unwrap();
    assert_eq!(ds.train.x.size(), [40, 1, 3, 3]);
    assert_eq!(ds.shape, [1, 3, 3]);
    assert_eq!((ds.valid.len(), ds.test.len()), (10, 10));

    for name in ["eight-gaussians", "two-moons", "swiss-roll"] {
        let ds = load(name, &opts()).unwrap();
        assert_eq!(ds.train.x.size(), [10_000, 2], "{name}");
        assert_eq!((ds.valid.len(), ds.test.len()), (2500, 2500));
        assert_eq!(ds.shape, [2]);
        assert!(!ds.binary && !ds.is_image);
        assert_eq!(ds.train.x.kind(), Kind::Float);
        assert_eq!(ds.train.y.is_some(), ds.num_classes.is_some());
        assert!(!ds
            .train
            .x
            .equal(&ds.test.x.narrow(0, 0, 10).repeat([1000, 1])));
    }
    assert_eq!(
        load("eight-gaussians", &opts()).unwrap().num_classes,
        Some(8)
    );
}

/// Pixel `j` of image `i` of the toy IDX files.
fn pixel(i: u32, j: u32) -> u8 {
    ((i * 37 + j * 11) % 256) as u8
}

/// A tiny IDX dataset (`n_train` + `n_test` images 1×4×4) written to `<dir>/toy-idx/`, and its
/// manifest.
fn toy_idx(dir: &Path, n_train: u32, n_test: u32, gz: bool) -> Manifest {
    let images = |n: u32, off: u32| {
        let data: Vec<u8> = (0..n)
            .flat_map(|i| (0..16).map(move |j| pixel(i + off, j)))
            .collect();
        idx_bytes(&[n, 4, 4], &data)
    };
    let labels = |n: u32, off: u32| {
        let data: Vec<u8> = (0..n).map(|i| ((i + off) % 10) as u8).collect();
        idx_bytes(&[n], &data)
    };
    let payloads = [
        ("train-images", FileRole::TrainImages, images(n_train, 0)),
        ("train-labels", FileRole::TrainLabels, labels(n_train, 0)),
        ("test-images", FileRole::TestImages, images(n_test, 1000)),
        ("test-labels", FileRole::TestLabels, labels(n_test, 1000)),
    ];
    std::fs::create_dir_all(dir.join("toy-idx")).unwrap();
    let mut files = Vec::new();
    for (name, role, payload) in payloads {
        if gz {
            std::fs::write(
                dir.join("toy-idx").join(format!("{name}.gz")),
                gzip(&payload),
            )
            .unwrap();
        } else {
            std::fs::write(dir.join("toy-idx").join(name), &payload).unwrap();
        }
        files.push(ManifestFile {
            name: name.to_string(),
            role,
            sha256: sha256_hex(&payload),
            bytes: payload.len() as u64,
            urls: vec!["https://example.org".into()],
        });
    }
    Manifest {
        name: "toy-idx".into(),
        description: "toy".into(),
        homepage: String::new(),
        license: String::new(),
        format: FileFormat::Idx,
        shape: vec![1, 4, 4],
        classes: Some(10),
        splits: String::new(),
        files,
        debian: None,
    }
}

fn load_toy_idx(m: &Manifest, dir: &Path, o: &DataOptions) -> Result<Dataset> {
    let scheme = check_files(m, o)?;
    load_files(m, dir, o, scheme)
}

#[test]
fn load_idx_set_splits_scales_and_labels() {
    let _rng = crate::rng_guard::lock();
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let m = toy_idx(dir.path(), 100, 30, gz);
        let o = DataOptions {
            valid_size: Some(20),
            ..opts()
        };
        let ds = load_toy_idx(&m, dir.path(), &o).unwrap();
        assert_eq!(ds.train.x.size(), [80, 1, 4, 4]);
        assert_eq!(ds.valid.x.size(), [20, 1, 4, 4]);
        assert_eq!(ds.test.x.size(), [30, 1, 4, 4]);
        assert_eq!(ds.train.x.kind(), Kind::Float);
        // pixel (i=3, j=5) of the training file, and the first validation example is i=80
        let expect = f64::from(pixel(3, 5)) / 255.0;
        let got = ds.train.x.double_value(&[3, 0, 1, 1]);
        assert!((got - expect).abs() < 1e-6, "{got} vs {expect}");
        let expect = f64::from(pixel(80, 2)) / 255.0;
        assert!((ds.valid.x.double_value(&[0, 0, 0, 2]) - expect).abs() < 1e-6);
        let y = ds.valid.y.as_ref().unwrap();
        assert_eq!(y.kind(), Kind::Int64);
        assert_eq!(y.int64_value(&[0]), 0); // 80 % 10
        assert_eq!(ds.test.y.as_ref().unwrap().int64_value(&[7]), 7); // 1007 % 10
        assert_eq!(ds.num_classes, Some(10));
        assert!(!ds.binary && ds.is_image);
        assert_eq!(ds.binarization, Binarization::None);
        let max = ds.train.x.max().double_value(&[]);
        assert!(max <= 1.0 && ds.train.x.min().double_value(&[]) >= 0.0);

        // valid_size larger than the training file
        let o = DataOptions {
            valid_size: Some(100),
            ..opts()
        };
        assert!(matches!(
            load_toy_idx(&m, dir.path(), &o),
            Err(Error::Config { .. })
        ));
    }
}

#[test]
fn load_reports_missing_files_as_not_downloaded() {
    let _rng = crate::rng_guard::lock();
    let dir = tempfile::tempdir().unwrap();
    let m = toy_idx(dir.path(), 20, 5, false);
    std::fs::remove_file(dir.path().join("toy-idx/test-labels")).unwrap();
    let o = DataOptions {
        valid_size: Some(5),
        ..opts()
    };
    let err = load_toy_idx(&m, dir.path(), &o).unwrap_err();
    match &err {
        Error::NotDownloaded { dataset, path } => {
            assert_eq!(dataset, "toy-idx");
            assert_eq!(path, &dir.path().join("toy-idx/test-labels"));
        }
        other => panic!("expected NotDownloaded, got {other:?}"),
    }
    assert!(
        err.to_string().contains("cargo xtask data toy-idx"),
        "{err}"
    );

    // the real sets in an empty cache
    let empty = tempfile::tempdir().unwrap();
    for name in ["mnist", "binarized-mnist", "fashion-mnist"] {
        let o = DataOptions {
            data_dir: Some(empty.path().to_path_buf()),
            ..opts()
        };
        let err = load(name, &o).unwrap_err();
        assert!(matches!(err, Error::NotDownloaded { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("cargo xtask data {name}")),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains(&empty.path().join(name).display().to_string()));
    }
}

#[test]
fn load_detects_checksum_mismatch_and_bad_files() {
    let _rng = crate::rng_guard::lock();
    let dir = tempfile::tempdir().unwrap();
    let m = toy_idx(dir.path(), 20, 5, false);
    let o = DataOptions {
        valid_size: Some(5),
        ..opts()
    };
    // flip one pixel: still a well-formed IDX file, but not the manifest's
    let p = dir.path().join("toy-idx/train-images");
    let mut b = std::fs::read(&p).unwrap();
    b[100] ^= 1;
    std::fs::write(&p, &b).unwrap();
    match load_toy_idx(&m, dir.path(), &o) {
        Err(Error::Checksum { path, dataset, .. }) => {
            assert_eq!(path, p);
            assert_eq!(dataset, "toy-idx");
        }
        other => panic!("expected a checksum error, got {other:?}"),
    }
    // verify = false loads it
    let o2 = DataOptions {
        verify: false,
        ..o.clone()
    };
    load_toy_idx(&m, dir.path(), &o2).unwrap();
    // a truncated file without verification is a format error naming it
    std::fs::write(&p, &b[..b.len() - 3]).unwrap();
    match load_toy_idx(&m, dir.path(), &o2) {
        Err(Error::Format { path, msg }) => {
            assert_eq!(path, p);
            assert!(msg.contains("truncated"), "{msg}");
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    // labels that do not match the images
    let m = toy_idx(dir.path(), 20, 5, false);
    std::fs::write(
        dir.path().join("toy-idx/train-labels"),
        idx_bytes(&[19], &[0; 19]),
    )
    .unwrap();
    match load_toy_idx(&m, dir.path(), &o2) {
        Err(Error::Format { msg, .. }) => assert!(msg.contains("expected 20 labels"), "{msg}"),
        other => panic!("expected a format error, got {other:?}"),
    }
    // a label outside the classes
    let mut labels = [3u8; 20];
    labels[7] = 12;
    std::fs::write(
        dir.path().join("toy-idx/train-labels"),
        idx_bytes(&[20], &labels),
    )
    .unwrap();
    match load_toy_idx(&m, dir.path(), &o2) {
        Err(Error::Format { msg, .. }) => {
            assert!(msg.contains("label 12 at index 7"), "{msg}")
        }
        other => panic!("expected a format error, got {other:?}"),
    }
    // images of the wrong size
    let m = toy_idx(dir.path(), 20, 5, false);
    std::fs::write(
        dir.path().join("toy-idx/test-images"),
        idx_bytes(&[5, 3, 3], &[0; 45]),
    )
    .unwrap();
    match load_toy_idx(&m, dir.path(), &o2) {
        Err(Error::Format { path, msg }) => {
            assert!(path.ends_with("test-images"));
            assert!(
                msg.contains("[1, 4, 4]") && msg.contains("[5, 3, 3]"),
                "{msg}"
            );
        }
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn dynamic_binarization_is_reproducible_per_epoch() {
    let _rng = crate::rng_guard::lock();
    let dir = tempfile::tempdir().unwrap();
    let m = toy_idx(dir.path(), 400, 50, false);
    let o = DataOptions {
        valid_size: Some(50),
        binarize: BinarizeSpec::Dynamic,
        binarize_seed: 11,
        ..opts()
    };
    let ds = load_toy_idx(&m, dir.path(), &o).unwrap();
    assert_eq!(ds.binarization, Binarization::Dynamic { seed: 11 });
    assert!(ds.binary);
    assert_eq!(ds.binarization.to_string(), "dynamic(seed=11)");
    // train keeps the intensities; inputs are drawn per epoch
    let e0 = ds.train_inputs(0);
    assert_eq!(e0.size(), ds.train.x.size());
    assert_eq!(e0.kind(), Kind::Float);
    let binary = |t: &Tensor| bool::try_from(t.eq(0.0).logical_or(&t.eq(1.0)).all()).unwrap();
    assert!(binary(&e0));
    assert!(!binary(&ds.train.x));
    // same epoch, same draw — also after the global torch RNG is reseeded or advanced
    tch::manual_seed(123);
    let _ = Tensor::rand([1000], (Kind::Float, Device::Cpu));
    assert!(e0.equal(&ds.train_inputs(0)));
    // different epochs differ
    let e1 = ds.train_inputs(1);
    assert!(!e0.equal(&e1));
    let differ = e0
        .ne_tensor(&e1)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(differ > 0.1, "{differ}");
    // the mean matches the intensities' mean, overall and per pixel on average
    let p = ds.train.x.mean(Kind::Float).double_value(&[]);
    let draws = Tensor::stack(&(0..20).map(|e| ds.train_inputs(e)).collect::<Vec<_>>(), 0);
    let m_all = draws.mean(Kind::Float).double_value(&[]);
    assert!((m_all - p).abs() < 0.01, "{m_all} vs {p}");
    let per_pixel = (draws.mean_dim(0, false, Kind::Float) - &ds.train.x)
        .abs()
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(per_pixel < 0.1, "{per_pixel}"); // ≈ E|mean of 20 Bernoullis − p| ≈ 0.07
                                             // valid / test are fixed draws, identical to the stochastic scheme's of the same seed
    assert!(binary(&ds.valid.x) && binary(&ds.test.x));
    let st = load_toy_idx(
        &m,
        dir.path(),
        &DataOptions {
            binarize: BinarizeSpec::Stochastic,
            ..o.clone()
        },
    )
    .unwrap();
    assert!(st.valid.x.equal(&ds.valid.x));
    assert!(st.test.x.equal(&ds.test.x));
    assert!(binary(&st.train.x));
    assert!(st.train_inputs(0).equal(&st.train_inputs(1)));
    let ds2 = load_toy_idx(&m, dir.path(), &o).unwrap();
    assert!(ds2.valid.x.equal(&ds.valid.x));
    let other_seed = load_toy_idx(
        &m,
        dir.path(),
        &DataOptions {
            binarize_seed: 12,
            ..o.clone()
        },
    )
    .unwrap();
    assert!(!other_seed.train_inputs(0).equal(&e0));
    assert!(!other_seed.test.x.equal(&ds.test.x));
}

#[test]
fn threshold_binarization_applies_to_every_split() {
    let _rng = crate::rng_guard::lock();
    let dir = tempfile::tempdir().unwrap();
    let m = toy_idx(dir.path(), 40, 10, false);
    let o = DataOptions {
        valid_size: Some(10),
        binarize: BinarizeSpec::Threshold,
        threshold: 0.5,
        ..opts()
    };
    let ds = load_toy_idx(&m, dir.path(), &o).unwrap();
    let raw = load_toy_idx(
        &m,
        dir.path(),
        &DataOptions {
            binarize: BinarizeSpec::None,
            ..o.clone()
        },
    )
    .unwrap();
    assert_eq!(ds.binarization, Binarization::Threshold(0.5));
    assert!(ds.binary);
    for (b, r) in [
        (&ds.train, &raw.train),
        (&ds.valid, &raw.valid),
        (&ds.test, &raw.test),
    ] {
        assert!(b.x.equal(&r.x.gt(0.5).to_kind(Kind::Float)));
    }
}

#[test]
fn load_amat_set() {
    let _rng = crate::rng_guard::lock();
    let dir = tempfile::tempdir().unwrap();
    let m = manifest::parse_manifest(manifest::tests::TOY, Path::new("toy.toml")).unwrap();
    std::fs::create_dir(dir.path().join("toy")).unwrap();
    let texts = [
        ("train.amat", "0 1 1 0\n1 1 1 1\n"),
        ("valid.amat", "0 0 0 1\n"),
        ("test.amat", "1 0 0 0\n"),
    ];
    let mut m = m;
    for (f, (name, text)) in m.files.iter_mut().zip(texts) {
        assert_eq!(f.name, name);
        std::fs::write(dir.path().join("toy").join(name), text).unwrap();
        f.sha256 = sha256_hex(text.as_bytes());
    }
    let scheme = check_files(&m, &opts()).unwrap();
    assert_eq!(scheme, Binarization::StaticFile);
    let ds = load_files(&m, dir.path(), &opts(), scheme).unwrap();
    assert_eq!(ds.train.x.size(), [2, 1, 2, 2]);
    assert_eq!(ds.valid.x.size(), [1, 1, 2, 2]);
    assert_eq!(
        Vec::<f32>::try_from(&ds.test.x.flatten(0, -1)).unwrap(),
        [1.0, 0.0, 0.0, 0.0]
    );
    assert!(ds.binary && ds.train.y.is_none() && ds.num_classes.is_none());
    // a bad value names the file, line and column
    std::fs::write(dir.path().join("toy/valid.amat"), "0 0 x 1\n").unwrap();
    let o = DataOptions {
        verify: false,
        ..opts()
    };
    let err = load_files(&m, dir.path(), &o, scheme).unwrap_err();
    let s = err.to_string();
    assert!(
        s.contains("valid.amat") && s.contains("line 1, column 3"),
        "{s}"
    );
}

#[test]
fn dataset_to_device_keeps_everything() {
    let _rng = crate::rng_guard::lock();
    let ds = load(
        "two-moons",
        &DataOptions {
            synthetic_size: Some(8),
            ..opts()
        },
    )
    .unwrap();
    let d = ds.to_device(Device::Cpu);
    assert_eq!(d.name, "two-moons");
    assert!(d.train.x.equal(&ds.train.x));
    assert!(d.train.y.unwrap().equal(ds.train.y.as_ref().unwrap()));
    assert_eq!(d.shape, ds.shape);
    assert_eq!(
        (d.binary, d.is_image, d.num_classes),
        (false, false, Some(2))
    );
    assert!(!ds.train.is_empty());
}

/// Loads the real sets from the cache ([`data_dir`], e.g. `GM_DATA_DIR`) and prints shapes,
/// means and load times. Run with `cargo test -p gm-core data::tests::real -- --ignored --nocapture`
/// after `cargo xtask data mnist binarized-mnist fashion-mnist` (or with `GM_DATA_DIR` pointing at a
/// mirror with the same layout).
#[test]
#[ignore = "needs the real datasets in the cache (cargo xtask data ...); fails when they are missing"]
fn real_datasets_load_with_their_documented_shapes() {
    let _rng = crate::rng_guard::lock();
    let o = opts();
    println!("data dir: {}", data_dir(&o).display());
    let expect = [
        ("mnist", [50_000, 10_000, 10_000], 0.1307),
        ("fashion-mnist", [50_000, 10_000, 10_000], 0.2860),
        ("binarized-mnist", [50_000, 10_000, 10_000], 0.1300),
    ];
    for (name, sizes, mean) in expect {
        let t = std::time::Instant::now();
        let ds = load(name, &o).unwrap_or_else(|e| panic!("{name}: {e}"));
        let secs = t.elapsed().as_secs_f64();
        let got = [ds.train.len(), ds.valid.len(), ds.test.len()];
        let m = ds.train.x.mean(Kind::Float).double_value(&[]);
        let mt = ds.test.x.mean(Kind::Float).double_value(&[]);
        println!(
            "{name}: train {:?} valid {:?} test {:?}, train mean {m:.4}, test mean {mt:.4}, {} ({secs:.2} s with sha256)",
            ds.train.x.size(),
            ds.valid.x.size(),
            ds.test.x.size(),
            ds.binarization
        );
        assert_eq!(got, sizes, "{name}");
        assert_eq!(ds.shape, [1, 28, 28]);
        assert!((m - mean).abs() < 0.01, "{name}: mean {m}");
        if let Some(y) = &ds.train.y {
            assert_eq!(y.max().int64_value(&[]), 9);
            let counts = y.bincount(None::<Tensor>, 10);
            assert!(counts.min().int64_value(&[]) > 4000, "{name}: {counts}");
        }
        let t = std::time::Instant::now();
        let _ = load(
            name,
            &DataOptions {
                verify: false,
                ..o.clone()
            },
        )
        .unwrap();
        println!("{name}: {:.2} s without sha256", t.elapsed().as_secs_f64());
    }
    let o = DataOptions {
        binarize: BinarizeSpec::Dynamic,
        binarize_seed: 1,
        ..opts()
    };
    let ds = load("mnist", &o).unwrap();
    let t = std::time::Instant::now();
    let x = ds.train_inputs(0);
    println!(
        "mnist dynamic draw of the training split: {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let (p, m) = (
        ds.train.x.mean(Kind::Float).double_value(&[]),
        x.mean(Kind::Float).double_value(&[]),
    );
    println!(
        "mnist dynamic: intensity mean {p:.4}, draw mean {m:.4}, test mean {:.4}",
        ds.test.x.mean(Kind::Float).double_value(&[])
    );
    assert!((p - m).abs() < 0.001);
}

#[test]
fn evenly_spaced_limits_spread_through_the_split() {
    let _rng = crate::rng_guard::lock();
    let s = Split {
        x: Tensor::arange(10, (Kind::Float, Device::Cpu)).unsqueeze(1),
        y: None,
    };
    let rows = |l: Option<i64>| Vec::<f32>::try_from(s.x_evenly_spaced(l).reshape([-1])).unwrap();
    assert_eq!(rows(Some(3)), vec![0.0, 3.0, 6.0]);
    assert_eq!(
        rows(Some(10)),
        (0..10).map(|i| i as f32).collect::<Vec<_>>()
    );
    assert_eq!(rows(None).len(), 10);
}

/// Indices kept by `observed_labels` and their labels.
fn kept(ds: &Dataset, n: i64, seed: u64) -> (Vec<i64>, Vec<i64>) {
    let mask = ds.observed_labels(Some(n), seed).unwrap().unwrap();
    assert_eq!(mask.size(), [ds.train.len()]);
    let m: Vec<bool> = Vec::try_from(&mask).unwrap();
    let y: Vec<i64> = Vec::try_from(ds.train.y.as_ref().unwrap()).unwrap();
    let idx: Vec<i64> = (0..m.len() as i64).filter(|&i| m[i as usize]).collect();
    let labels = idx.iter().map(|&i| y[i as usize]).collect();
    (idx, labels)
}

fn per_class(labels: &[i64], classes: i64) -> Vec<usize> {
    (0..classes)
        .map(|c| labels.iter().filter(|&&l| l == c).count())
        .collect()
}

#[test]
fn labelled_keeps_a_balanced_subset_chosen_by_the_seed() {
    let ds = load("bars-and-stripes", &opts()).unwrap();
    assert!(ds.observed_labels(None, 0).unwrap().is_none());
    let (a, la) = kept(&ds, 11, 5);
    assert_eq!(a.len(), 11);
    assert_eq!(
        per_class(&la, 2),
        [6, 5],
        "n mod C extra labels go to the first classes"
    );
    assert_eq!(kept(&ds, 11, 5).0, a, "same seed, same labels");
    assert_ne!(kept(&ds, 11, 6).0, a, "another seed, other labels");
    // not the first examples of each class: spread through the split
    assert!(*a.last().unwrap() > 100, "{a:?}");
}

#[test]
fn labelled_errors_name_the_field() {
    let ds = load("bars-and-stripes", &opts()).unwrap();
    for n in [0, 1001] {
        assert_eq!(
            config_field(ds.observed_labels(Some(n), 0)),
            "data.labelled"
        );
    }
    // more of one class than the split holds
    let bars = i64::try_from(ds.train.y.as_ref().unwrap().eq(1).sum(Kind::Int64)).unwrap();
    let n = 2 * bars + 2;
    assert!(n <= 1000);
    let err = ds.observed_labels(Some(n), 0).unwrap_err();
    assert!(err.to_string().contains("class 1"), "{err}");
    let toy = load("swiss-roll", &opts()).unwrap();
    let err = toy.observed_labels(Some(10), 0).unwrap_err();
    assert!(err.to_string().contains("swiss-roll has none"), "{err}");
    let o = DataOptions {
        labelled: Some(0),
        ..opts()
    };
    assert_eq!(config_field(validate("mnist", &o)), "data.labelled");
}

#[test]
fn labelled_100_on_mnist_is_10_per_class() {
    let ds = match load("mnist", &opts()) {
        Ok(ds) => ds,
        Err(Error::NotDownloaded { .. }) => {
            eprintln!("skipped: mnist is not in the data cache (cargo xtask data mnist)");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let (a, labels) = kept(&ds, 100, 0);
    assert_eq!(per_class(&labels, 10), [10; 10]);
    assert_eq!(kept(&ds, 100, 0).0, a);
    assert_ne!(kept(&ds, 100, 1).0, a);
}
