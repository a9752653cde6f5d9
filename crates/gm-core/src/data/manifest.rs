//! Dataset manifests: `datasets/<name>.toml`, embedded at build time.
//!
//! A manifest lists a downloadable dataset's files (name in the cache, role, sha256 and size
//! of the decompressed payload, official URLs and mirrors), its format, per-example shape,
//! class count, splits and licence. `cargo xtask data <name>` fills the cache from it;
//! [`crate::data::load`] reads and verifies the cached files against it. Unknown keys are
//! rejected, so a typo in a manifest is an error rather than a silently ignored field.

use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The embedded manifests, by dataset name.
const EMBEDDED: [(&str, &str); 3] = [
    ("mnist", include_str!("../../../../datasets/mnist.toml")),
    (
        "binarized-mnist",
        include_str!("../../../../datasets/binarized-mnist.toml"),
    ),
    (
        "fashion-mnist",
        include_str!("../../../../datasets/fashion-mnist.toml"),
    ),
];

/// A dataset manifest (`datasets/<name>.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Dataset name, as used by `gm` and the cache folder.
    pub name: String,
    /// One line on what it is.
    pub description: String,
    /// Where it comes from.
    pub homepage: String,
    /// Its licence.
    pub license: String,
    /// How its files are encoded.
    pub format: FileFormat,
    /// Per-example shape, `[C, H, W]`.
    pub shape: Vec<i64>,
    /// Number of classes; absent when unlabelled.
    #[serde(default)]
    pub classes: Option<i64>,
    /// The splits, in words.
    pub splits: String,
    /// The files (`[[file]]` tables).
    #[serde(rename = "file")]
    pub files: Vec<ManifestFile>,
    /// Where Debian packages it, when it does.
    #[serde(default)]
    pub debian: Option<Debian>,
}

/// One file of a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name in the cache (decompressed payload).
    pub name: String,
    /// What the file holds.
    pub role: FileRole,
    /// Lower-case hex sha256 of the decompressed payload.
    pub sha256: String,
    /// Size of the decompressed payload in bytes.
    pub bytes: u64,
    /// Official location first, then mirrors.
    pub urls: Vec<String>,
}

/// Encoding of a dataset's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// IDX unsigned-byte arrays (MNIST, Fashion-MNIST).
    Idx,
    /// Text rows of 0/1 values (binarized MNIST).
    Amat,
}

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    /// IDX training images.
    TrainImages,
    /// IDX training labels.
    TrainLabels,
    /// IDX test images.
    TestImages,
    /// IDX test labels.
    TestLabels,
    /// The training split (unlabelled formats).
    Train,
    /// The validation split.
    Valid,
    /// The test split.
    Test,
}

impl FileRole {
    /// The role as the manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileRole::TrainImages => "train-images",
            FileRole::TrainLabels => "train-labels",
            FileRole::TestImages => "test-images",
            FileRole::TestLabels => "test-labels",
            FileRole::Train => "train",
            FileRole::Valid => "valid",
            FileRole::Test => "test",
        }
    }
}

/// Where Debian ships a dataset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Debian {
    /// Package name.
    pub package: String,
    /// Folder of the files inside the package.
    pub dir: String,
}

impl FileFormat {
    /// The roles a manifest of this format must list, each exactly once.
    pub fn roles(self) -> &'static [FileRole] {
        match self {
            FileFormat::Idx => &[
                FileRole::TrainImages,
                FileRole::TrainLabels,
                FileRole::TestImages,
                FileRole::TestLabels,
            ],
            FileFormat::Amat => &[FileRole::Train, FileRole::Valid, FileRole::Test],
        }
    }
}

impl Manifest {
    /// The file with `role`.
    pub fn file(&self, role: FileRole) -> Option<&ManifestFile> {
        self.files.iter().find(|f| f.role == role)
    }

    /// Number of values per example (product of `shape`).
    pub fn example_numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// Parses and checks a manifest; `origin` names it in errors.
pub fn parse_manifest(text: &str, origin: &Path) -> Result<Manifest> {
    let m: Manifest = toml::from_str(text).map_err(|e| Error::format(origin, e.to_string()))?;
    let bad = |msg: String| Err(Error::format(origin, msg));
    if m.shape.is_empty() || m.shape.iter().any(|&d| d <= 0) {
        return bad(format!("shape {:?}: expected positive dimensions", m.shape));
    }
    if let Some(c) = m.classes {
        if c < 2 {
            return bad(format!("classes = {c}: expected at least 2"));
        }
    }
    for role in m.format.roles() {
        let n = m.files.iter().filter(|f| f.role == *role).count();
        if n != 1 {
            return bad(format!(
                "format {:?} needs exactly one file with role `{}`, found {n}",
                m.format,
                role.as_str()
            ));
        }
    }
    for f in &m.files {
        if !m.format.roles().contains(&f.role) {
            return bad(format!(
                "file {}: role `{}` does not belong to format {:?}",
                f.name,
                f.role.as_str(),
                m.format
            ));
        }
        if f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!(
                "file {}: sha256 `{}` is not 64 hex digits",
                f.name, f.sha256
            ));
        }
        if f.name.is_empty() || f.name.contains(['/', '\\']) || f.name.starts_with('.') {
            return bad(format!(
                "file name `{}`: expected a plain file name",
                f.name
            ));
        }
        if f.urls.is_empty() {
            return bad(format!("file {}: no urls", f.name));
        }
    }
    Ok(m)
}

/// The embedded manifests, parsed once; an error names the manifest that does not parse.
pub fn manifests() -> Result<&'static [Manifest]> {
    static PARSED: OnceLock<std::result::Result<Vec<Manifest>, String>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        EMBEDDED
            .iter()
            .map(|(name, text)| {
                let origin = format!("datasets/{name}.toml");
                let m = parse_manifest(text, Path::new(&origin)).map_err(|e| e.to_string())?;
                if m.name != *name {
                    return Err(format!(
                        "{origin}: name = \"{}\", expected \"{name}\"",
                        m.name
                    ));
                }
                Ok(m)
            })
            .collect()
    });
    parsed.as_deref().map_err(|e| Error::Msg(e.clone()))
}

/// The embedded manifest of `name`, if it has one.
pub fn manifest(name: &str) -> Result<Option<&'static Manifest>> {
    Ok(manifests()?.iter().find(|m| m.name == name))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const TOY: &str = r#"
name = "toy"
description = "A toy."
homepage = "https://example.org"
license = "CC0"
format = "amat"
shape = [1, 2, 2]
splits = "train 2, valid 1, test 1"
[[file]]
name = "train.amat"
role = "train"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
bytes = 16
urls = ["https://example.org/train.amat"]
[[file]]
name = "valid.amat"
role = "valid"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
bytes = 8
urls = ["https://example.org/valid.amat"]
[[file]]
name = "test.amat"
role = "test"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
bytes = 8
urls = ["https://example.org/test.amat"]
"#;

    #[test]
    fn embedded_manifests_parse_and_match_the_formats() {
        let ms = manifests().unwrap();
        assert_eq!(ms.len(), 3);
        for m in ms {
            assert_eq!(m.shape, [1, 28, 28], "{}", m.name);
            assert_eq!(m.files.len(), m.format.roles().len(), "{}", m.name);
        }
        let mnist = manifest("mnist").unwrap().unwrap();
        assert_eq!(mnist.format, FileFormat::Idx);
        assert_eq!(mnist.classes, Some(10));
        let f = mnist.file(FileRole::TrainImages).unwrap();
        assert_eq!(f.bytes, 47_040_016);
        assert_eq!(
            f.sha256,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
        );
        let bin = manifest("binarized-mnist").unwrap().unwrap();
        assert_eq!(bin.format, FileFormat::Amat);
        assert_eq!(bin.classes, None);
        assert_eq!(
            bin.file(FileRole::Train).unwrap().sha256,
            "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"
        );
        let fashion = manifest("fashion-mnist").unwrap().unwrap();
        assert_eq!(
            fashion.file(FileRole::TestLabels).unwrap().sha256,
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
        );
        assert!(manifest("two-moons").unwrap().is_none());
    }

    #[test]
    fn manifest_rejects_unknown_keys_and_missing_roles() {
        let p = Path::new("datasets/toy.toml");
        assert!(parse_manifest(TOY, p).is_ok());
        let typo = TOY.replace("license =", "licence =");
        let err = parse_manifest(&typo, p).unwrap_err();
        assert!(err.to_string().contains("licence"), "{err}");
        let no_valid = TOY.replace("role = \"valid\"", "role = \"test\"");
        let err = parse_manifest(&no_valid, p).unwrap_err();
        assert!(err.to_string().contains("`valid`"), "{err}");
        let bad_sha = TOY.replacen("sha256 = \"0000", "sha256 = \"zz00", 1);
        assert!(parse_manifest(&bad_sha, p).is_err());
        let bad_role = TOY.replacen("role = \"train\"", "role = \"train-images\"", 1);
        assert!(parse_manifest(&bad_role, p).is_err());
    }
}
