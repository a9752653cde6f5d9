//! Finding, reading and verifying a dataset's files in the data cache.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::manifest::ManifestFile;
use crate::{Error, Result};

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Where `file` of `dataset` is in the cache `dir`: `<dir>/<dataset>/<name>`, or else
/// `<dir>/<dataset>/<name>.gz` (a mirror's compressed copy); [`Error::NotDownloaded`] when
/// neither exists.
pub(crate) fn locate(dir: &Path, dataset: &str, file: &ManifestFile) -> Result<PathBuf> {
    let plain = dir.join(dataset).join(&file.name);
    if plain.is_file() {
        return Ok(plain);
    }
    let gz = dir.join(dataset).join(format!("{}.gz", file.name));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(Error::NotDownloaded {
        dataset: dataset.to_string(),
        path: plain,
    })
}

/// The payload of `path`: the file's bytes, gunzipped when they start with the gzip magic.
pub(crate) fn read_payload(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.len() >= 2 && raw[..2] == GZIP_MAGIC {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("bad gzip stream: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Lower-case hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// [`Error::Checksum`] unless `payload` has the sha256 that `file` lists.
pub(crate) fn verify(
    path: &Path,
    dataset: &str,
    file: &ManifestFile,
    payload: &[u8],
) -> Result<()> {
    let found = sha256_hex(payload);
    if found.eq_ignore_ascii_case(&file.sha256) {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: path.to_path_buf(),
            dataset: dataset.to_string(),
            expected: file.sha256.to_ascii_lowercase(),
            found,
        })
    }
}

/// Locates, reads and (when `check`) verifies `file`; returns its path and payload.
pub(crate) fn fetch(
    dir: &Path,
    dataset: &str,
    file: &ManifestFile,
    check: bool,
) -> Result<(PathBuf, Vec<u8>)> {
    let path = locate(dir, dataset, file)?;
    let payload = read_payload(&path)?;
    if check {
        verify(&path, dataset, file, &payload)?;
    }
    Ok((path, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::manifest::FileRole;
    use std::io::Write;

    fn file(name: &str, payload: &[u8]) -> ManifestFile {
        ManifestFile {
            name: name.to_string(),
            role: FileRole::Train,
            sha256: sha256_hex(payload),
            bytes: payload.len() as u64,
            urls: vec![],
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn reads_plain_and_gz_and_falls_back_to_gz_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("toy")).unwrap();
        let payload = b"hello payload".to_vec();
        std::fs::write(dir.path().join("toy/a"), &payload).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&payload).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(dir.path().join("toy/b.gz"), &gz).unwrap();
        // gzip content under the plain name is recognised by its magic
        std::fs::write(dir.path().join("toy/c"), &gz).unwrap();

        for name in ["a", "b", "c"] {
            let (path, got) = fetch(dir.path(), "toy", &file(name, &payload), true).unwrap();
            assert_eq!(got, payload, "{}", path.display());
        }
    }

    #[test]
    fn checksum_mismatch_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("toy")).unwrap();
        std::fs::write(dir.path().join("toy/a"), b"corrupted").unwrap();
        let f = file("a", b"original");
        match fetch(dir.path(), "toy", &f, true) {
            Err(Error::Checksum {
                path,
                dataset,
                expected,
                found,
            }) => {
                assert_eq!(path, dir.path().join("toy/a"));
                assert_eq!(dataset, "toy");
                assert_eq!(expected, sha256_hex(b"original"));
                assert_eq!(found, sha256_hex(b"corrupted"));
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        // without verification the bytes come back as they are
        assert_eq!(fetch(dir.path(), "toy", &f, false).unwrap().1, b"corrupted");
    }

    #[test]
    fn missing_file_is_not_downloaded_with_the_xtask_hint() {
        let dir = tempfile::tempdir().unwrap();
        let err = fetch(dir.path(), "mnist", &file("x-idx1-ubyte", b""), true).unwrap_err();
        match &err {
            Error::NotDownloaded { dataset, path } => {
                assert_eq!(dataset, "mnist");
                assert_eq!(path, &dir.path().join("mnist/x-idx1-ubyte"));
            }
            other => panic!("expected NotDownloaded, got {other:?}"),
        }
        assert!(err.to_string().contains("cargo xtask data mnist"), "{err}");
    }

    #[test]
    fn broken_gzip_is_a_format_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("toy")).unwrap();
        std::fs::write(dir.path().join("toy/a"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
        match fetch(dir.path(), "toy", &file("a", b""), true) {
            Err(Error::Format { path, msg }) => {
                assert_eq!(path, dir.path().join("toy/a"));
                assert!(msg.contains("gzip"), "{msg}");
            }
            other => panic!("expected a format error, got {other:?}"),
        }
    }
}
