//! The error type of gm's library crates: every variant carries what a user needs to fix the
//! problem (the file, field or value, and what was expected).

use std::path::PathBuf;

/// Errors of gm-core and of the family crates built on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed. (The I/O error is part of the message, not a
    /// `source`, so that a printed error chain says it once.)
    #[error("{path}: {err}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A file exists but its content is not what its format requires.
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with expected and found values.
        msg: String,
    },
    /// A downloaded file does not have the checksum its manifest lists.
    #[error("{path}: sha256 is {found}, expected {expected} (corrupt or partial file: delete it and run `cargo xtask data {dataset}`)")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// Dataset the file belongs to.
        dataset: String,
        /// The sha256 from the manifest.
        expected: String,
        /// The sha256 of the file on disk.
        found: String,
    },
    /// A dataset's files are not in the data cache.
    #[error(
        "dataset {dataset} is not downloaded ({path} is missing): run `cargo xtask data {dataset}`"
    )]
    NotDownloaded {
        /// Dataset name.
        dataset: String,
        /// The first missing file.
        path: PathBuf,
    },
    /// A name that no registry knows.
    #[error("unknown {what} `{name}`; known: {known}")]
    Unknown {
        /// "dataset", "model", ...
        what: &'static str,
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A configuration value is out of range or inconsistent.
    #[error("invalid config: {field} = {value}: {expected}")]
    Config {
        /// Dotted path of the field, e.g. `data.batch_size`.
        field: String,
        /// The value found.
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A configuration file could not be parsed (unknown field, wrong type, bad TOML).
    #[error("{path}: {msg}")]
    ConfigParse {
        /// The config file (or `<inline>`).
        path: PathBuf,
        /// The parser's message, which names the field.
        msg: String,
    },
    /// The requested device cannot be used.
    #[error("{0}")]
    Device(String),
    /// Training produced a NaN or infinite value.
    #[error("{metric} became {value} at epoch {epoch}, step {step}; training stopped, the last good checkpoint is kept{}", .checkpoint.as_ref().map(|p| format!(" at {}", p.display())).unwrap_or_default())]
    NonFinite {
        /// Which metric.
        metric: String,
        /// Its value (NaN or inf).
        value: f64,
        /// Epoch (0-based) during which it happened.
        epoch: usize,
        /// Global step.
        step: u64,
        /// The last good checkpoint, if one was written.
        checkpoint: Option<PathBuf>,
    },
    /// A run directory or checkpoint is missing or inconsistent.
    #[error("{path}: {msg}")]
    Run {
        /// The run directory or file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Training was interrupted (Ctrl-C); the checkpoint to resume from was written.
    #[error("interrupted at epoch {epoch}, step {step}; resume with `gm train --resume {}`", .run_dir.display())]
    Interrupted {
        /// Epoch reached.
        epoch: usize,
        /// Global step reached.
        step: u64,
        /// The run directory holding the checkpoint.
        run_dir: PathBuf,
    },
    /// An error reported by libtorch (its message included, not chained as a source).
    #[error("libtorch: {0}")]
    Torch(tch::TchError),
    /// Anything else, with its message.
    #[error("{0}")]
    Msg(String),
}

/// `Result` with gm's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<tch::TchError> for Error {
    fn from(e: tch::TchError) -> Self {
        Error::Torch(e)
    }
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    /// An [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            msg: msg.into(),
        }
    }

    /// An [`Error::Config`].
    pub fn config(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::Config {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message and its chain of sources, as `{:#}` of anyhow prints them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(&format!(": {c}"));
            cur = c.source();
        }
        s
    }

    #[test]
    fn io_and_libtorch_errors_say_their_cause_once() {
        let io = Error::io(
            "/x/model.safetensors",
            std::io::Error::other("No space left"),
        );
        let printed = chain(&io);
        assert_eq!(printed.matches("No space left").count(), 1, "{printed}");
        assert!(printed.contains("/x/model.safetensors"), "{printed}");
        let torch = Error::from(tch::TchError::Torch("bad write".into()));
        let printed = chain(&torch);
        assert_eq!(printed.matches("bad write").count(), 1, "{printed}");
    }
}
