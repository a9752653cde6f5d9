//! Dataset manifests: `datasets/<name>.toml`, one per downloadable dataset.
//!
//! The same files are read by gm-core's data loader, so the keys here are the schema:
//!
//! ```toml
//! name = "mnist"
//! description = "..."
//! homepage = "..."
//! license = "..."
//! format = "idx"            # "idx" or "amat"
//! shape = [1, 28, 28]
//! classes = 10              # omitted when unlabelled
//! splits = "..."
//!
//! [[file]]
//! name = "train-images-idx3-ubyte"   # decompressed payload name in the cache
//! role = "train-images"
//! sha256 = "..."                     # of the decompressed payload
//! bytes = 47040016                   # size of the decompressed payload
//! urls = ["...", "..."]              # in order of preference
//!
//! [debian]                  # optional
//! package = "dataset-fashion-mnist"
//! dir = "usr/share/datasets/fashion-mnist"
//! ```

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// Roles a file may play.
pub const ROLES: &[&str] = &[
    "train-images",
    "train-labels",
    "test-images",
    "test-labels",
    "train",
    "valid",
    "test",
];

/// Payload formats gm-core can read.
pub const FORMATS: &[&str] = &["idx", "amat"];

/// Datasets generated in memory by gm-core: nothing to download.
pub const SYNTHETIC: &[&str] = &[
    "bars-and-stripes",
    "eight-gaussians",
    "two-moons",
    "swiss-roll",
];

/// One dataset manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Dataset name; equals the manifest's file stem and the cache folder name.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Where the dataset is described.
    pub homepage: String,
    /// Licence, as honestly as known.
    pub license: String,
    /// Payload format: `idx` or `amat`.
    pub format: String,
    /// Shape of one example, `[C, H, W]`.
    pub shape: Vec<usize>,
    /// Number of classes; absent when unlabelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<u32>,
    /// How the examples are split.
    pub splits: String,
    /// The files.
    #[serde(rename = "file")]
    pub files: Vec<FileEntry>,
    /// A Debian package that also ships the files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debian: Option<Debian>,
}

/// One file of a dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Decompressed payload name in the cache.
    pub name: String,
    /// What the file holds (see [`ROLES`]).
    pub role: String,
    /// sha256 of the decompressed payload, lowercase hex.
    pub sha256: String,
    /// Size of the decompressed payload.
    pub bytes: u64,
    /// Official location first, then public mirrors.
    pub urls: Vec<String>,
}

/// A Debian package shipping the files as `<dir>/<name>.gz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debian {
    /// Package name (`apt-get download <package>`).
    pub package: String,
    /// Folder inside the package holding `<name>.gz`.
    pub dir: String,
}

impl Manifest {
    /// Parses and validates a manifest's text.
    pub fn parse(text: &str) -> Result<Self> {
        let m: Manifest = toml::from_str(text)?;
        m.validate()?;
        Ok(m)
    }

    /// Reads `path` and checks that the name matches the file stem.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let m =
            Self::parse(&text).with_context(|| format!("invalid manifest {}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        ensure!(
            m.name == stem,
            "{}: name = {:?} but the file is named {stem}.toml",
            path.display(),
            m.name
        );
        Ok(m)
    }

    /// Structural checks that serde cannot express.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            is_plain_name(&self.name),
            "name {:?} must be a plain file name",
            self.name
        );
        ensure!(
            FORMATS.contains(&self.format.as_str()),
            "format {:?} is not one of {FORMATS:?}",
            self.format
        );
        ensure!(
            !self.shape.is_empty() && self.shape.iter().all(|&d| d > 0),
            "shape {:?} must be non-empty and positive",
            self.shape
        );
        ensure!(!self.files.is_empty(), "no [[file]] entries");
        let mut seen = HashSet::new();
        for f in &self.files {
            ensure!(
                is_plain_name(&f.name),
                "file name {:?} must be a plain file name",
                f.name
            );
            ensure!(seen.insert(&f.name), "file {:?} listed twice", f.name);
            ensure!(
                ROLES.contains(&f.role.as_str()),
                "file {}: role {:?} is not one of {ROLES:?}",
                f.name,
                f.role
            );
            ensure!(
                f.sha256.len() == 64
                    && f.sha256
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "file {}: sha256 {:?} must be 64 lowercase hex digits",
                f.name,
                f.sha256
            );
            ensure!(f.bytes > 0, "file {}: bytes must be positive", f.name);
            for u in &f.urls {
                ensure!(
                    u.starts_with("http://") || u.starts_with("https://"),
                    "file {}: url {u:?} is not http(s)",
                    f.name
                );
            }
        }
        if let Some(d) = &self.debian {
            ensure!(
                is_plain_name(&d.package),
                "debian.package {:?} is not a package name",
                d.package
            );
            ensure!(
                !d.dir.starts_with('/') && !d.dir.split('/').any(|c| c == ".."),
                "debian.dir {:?} must be relative to the package root",
                d.dir
            );
        }
        Ok(())
    }
}

/// No separators, no `..`, nothing hidden: safe to join onto a folder.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.contains('/')
        && !s.contains('\\')
        && !s.contains('\0')
}

/// The manifests folder of the repository.
pub fn manifests_dir() -> PathBuf {
    crate::util::repo_root().join("datasets")
}

/// Every manifest in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Manifest>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let ms = paths
        .iter()
        .map(|p| Manifest::load(p))
        .collect::<Result<Vec<_>>>()?;
    if ms.is_empty() {
        bail!("no dataset manifests (*.toml) in {}", dir.display());
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "tiny"
description = "d"
homepage = "h"
license = "l"
format = "idx"
shape = [1, 2, 2]
splits = "s"

[[file]]
name = "a"
role = "train"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
bytes = 4
urls = []
"#;

    #[test]
    fn real_manifests_parse_and_match_the_schema() {
        let ms = load_all(&manifests_dir()).unwrap();
        let names: Vec<_> = ms.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["binarized-mnist", "fashion-mnist", "mnist"]);
        for m in &ms {
            for f in &m.files {
                assert!(!f.urls.is_empty(), "{}/{} has no urls", m.name, f.name);
            }
        }
        let mnist = &ms[2];
        assert_eq!(mnist.format, "idx");
        assert_eq!(mnist.shape, [1, 28, 28]);
        assert_eq!(mnist.classes, Some(10));
        assert_eq!(mnist.files.len(), 4);
        let ti = mnist
            .files
            .iter()
            .find(|f| f.role == "train-images")
            .unwrap();
        assert_eq!(ti.name, "train-images-idx3-ubyte");
        assert_eq!(ti.bytes, 47_040_016);
        assert_eq!(
            ti.sha256,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        );
        assert!(ti.urls[0].starts_with("http://yann.lecun.com/exdb/mnist/"));
        assert!(mnist.debian.is_none());

        let bin = &ms[0];
        assert_eq!(bin.format, "amat");
        assert_eq!(bin.classes, None);
        let roles: Vec<_> = bin.files.iter().map(|f| f.role.as_str()).collect();
        assert_eq!(roles, ["train", "valid", "test"]);
        assert_eq!(bin.files[0].bytes, 78_400_000);

        let fashion = &ms[1];
        let deb = fashion.debian.as_ref().unwrap();
        assert_eq!(deb.package, "dataset-fashion-mnist");
        assert_eq!(deb.dir, "usr/share/datasets/fashion-mnist");
        assert_eq!(fashion.classes, Some(10));
    }

    /// When the shared offline mirror sits beside the repository (`../shared/datasets`),
    /// every manifest checksum must equal the one its `SHA256SUMS` lists for the payload.
    #[test]
    fn manifests_agree_with_the_shared_mirror_checksums() {
        let shared = crate::util::repo_root().join("../shared/datasets");
        if !shared.is_dir() {
            eprintln!("skipped: no {}", shared.display());
            return;
        }
        for m in load_all(&manifests_dir()).unwrap() {
            let sums = fs::read_to_string(shared.join(&m.name).join("SHA256SUMS")).unwrap();
            for f in &m.files {
                let listed = sums
                    .lines()
                    .find_map(|l| {
                        let (sha, name) = l.split_once(char::is_whitespace)?;
                        (name.trim().trim_start_matches('*') == f.name).then_some(sha)
                    })
                    .unwrap_or_else(|| panic!("{}/{} not in SHA256SUMS", m.name, f.name));
                assert_eq!(listed, f.sha256, "{}/{}", m.name, f.name);
            }
        }
    }

    #[test]
    fn minimal_manifest_parses() {
        let m = Manifest::parse(MINIMAL).unwrap();
        assert_eq!(m.files[0].bytes, 4);
        assert!(m.classes.is_none() && m.debian.is_none());
    }

    #[test]
    fn invalid_manifests_are_rejected() {
        let bad = [
            MINIMAL.replace("format = \"idx\"", "format = \"png\""),
            MINIMAL.replace("role = \"train\"", "role = \"training\""),
            MINIMAL.replace(
                "0000000000000000000000000000000000000000000000000000000000000000",
                "00",
            ),
            MINIMAL.replace(
                "0000000000000000000000000000000000000000000000000000000000000000",
                &"A".repeat(64),
            ),
            MINIMAL.replace("name = \"a\"", "name = \"../a\""),
            MINIMAL.replace("urls = []", "urls = [\"ftp://x\"]"),
            MINIMAL.replace("splits = \"s\"", "splits = \"s\"\nunknown_key = 1"),
            MINIMAL.replace("shape = [1, 2, 2]", "shape = []"),
            MINIMAL.replace("bytes = 4", "bytes = 0"),
            MINIMAL.replace(
                "urls = []",
                "urls = []\n[debian]\npackage = \"p\"\ndir = \"/abs\"",
            ),
        ];
        for (i, text) in bad.iter().enumerate() {
            assert!(
                Manifest::parse(text).is_err(),
                "case {i} should fail:\n{text}"
            );
        }
    }
}
