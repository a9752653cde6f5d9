//! Shared helpers: where the repository and the per-user cache are, how to run cargo with
//! libtorch in its environment, and small formatting helpers.
//!
//! ```ignore
//! let lt = setup::ensure(false)?;
//! let status = util::cargo(&lt).args(["test", "--workspace"]).status()?;
//! ```

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

use anyhow::{bail, Context, Result};

use crate::setup::Libtorch;

/// The repository root (the folder holding the main `Cargo.toml` and `xtask/`).
///
/// `cargo run` sets `CARGO_MANIFEST_DIR` for the process it starts, so a moved checkout is
/// found at run time; the compile-time value is the fallback.
pub fn repo_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("src/main.rs").exists() && d.ends_with("xtask"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir);
    root.canonicalize().unwrap_or(root)
}

/// A non-empty environment variable, or `None`.
pub fn env_nonempty(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The per-user cache root: `$XDG_CACHE_HOME`, else `~/.cache`.
pub fn cache_home() -> Result<PathBuf> {
    if let Some(x) = env_nonempty("XDG_CACHE_HOME").map(PathBuf::from) {
        // The XDG spec says relative values are invalid and must be ignored.
        if x.is_absolute() {
            return Ok(x);
        }
    }
    let home = env_nonempty("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache"))
}

/// A path made absolute against the current directory (without resolving symlinks).
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The cargo that runs us (`CARGO` from the environment), else the one we were built with.
pub fn cargo_exe() -> OsString {
    env_nonempty("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")))
}

/// `cargo` run in the repository root, with libtorch in its environment
/// (see [`apply_libtorch_env`]).
pub fn cargo(lt: &Libtorch) -> Command {
    let mut cmd = Command::new(cargo_exe());
    cmd.current_dir(repo_root());
    apply_libtorch_env(&mut cmd, lt);
    cmd
}

/// Sets `LIBTORCH` and prepends libtorch's `lib/` to `LD_LIBRARY_PATH`, explicitly, for a
/// child process.
pub fn apply_libtorch_env(cmd: &mut Command, lt: &Libtorch) {
    cmd.env("LIBTORCH", &lt.cargo_value);
    cmd.env(
        "LD_LIBRARY_PATH",
        prepend_path(
            &lt.cargo_value.join("lib"),
            std::env::var_os("LD_LIBRARY_PATH"),
        ),
    );
}

/// `dir` followed by the entries of `existing` (a `:`-separated list), without duplicating
/// `dir`.
pub fn prepend_path(dir: &Path, existing: Option<OsString>) -> OsString {
    let mut parts = vec![dir.to_path_buf()];
    if let Some(existing) = existing {
        parts.extend(
            std::env::split_paths(&existing).filter(|p| p != dir && !p.as_os_str().is_empty()),
        );
    }
    std::env::join_paths(parts).unwrap_or_else(|_| dir.as_os_str().to_owned())
}

/// Runs a command with inherited stdio; an error names the command if it fails.
pub fn run(cmd: &mut Command, what: &str) -> Result<()> {
    println!("$ {}", display_cmd(cmd));
    wait_for(cmd, what)
}

/// [`run`] with the command line and the command's stdout on stderr, for steps whose
/// caller keeps stdout for a result (`cargo xtask setup --print-libtorch`).
pub fn run_to_stderr(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("$ {}", display_cmd(cmd));
    wait_for(cmd.stdout(std::io::stderr()), what)
}

fn wait_for(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("{what}: could not start {:?}", cmd.get_program()))?;
    check(status, what)
}

/// Turns a failed exit status into an error naming the step.
pub fn check(status: ExitStatus, what: &str) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        match status.code() {
            Some(code) => bail!("{what} failed (exit status {code})"),
            None => bail!("{what} was killed by a signal ({status})"),
        }
    }
}

/// A command line as a user would type it (program and arguments, no environment).
pub fn display_cmd(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program());
    // `cargo` rather than `~/.rustup/toolchains/…/bin/cargo`.
    let prog = if prog.file_name().is_some_and(|n| n == "cargo") {
        OsStr::new("cargo")
    } else {
        prog.as_os_str()
    };
    let mut s = shell_word(prog);
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_word(a));
    }
    s
}

fn shell_word(w: &OsStr) -> String {
    let w = w.to_string_lossy();
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.into_owned()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

/// Bytes in human units (decimal: kB, MB, GB).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// A path shown relative to the repository root when it lies inside it.
pub fn show(p: &Path) -> String {
    let root = repo_root();
    match p.strip_prefix(&root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
        _ => p.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(47_040_016), "47.0 MB");
        assert_eq!(human_bytes(4_700_000_000), "4.7 GB");
    }

    #[test]
    fn prepend_path_dedups() {
        let p = prepend_path(Path::new("/a/lib"), Some("/b:/a/lib:/c".into()));
        assert_eq!(p, OsString::from("/a/lib:/b:/c"));
        let p = prepend_path(Path::new("/a/lib"), None);
        assert_eq!(p, OsString::from("/a/lib"));
    }

    #[test]
    fn repo_root_has_workspace() {
        let root = repo_root();
        assert!(root.join("xtask/Cargo.toml").exists(), "{}", root.display());
    }

    #[test]
    fn shell_words_are_quoted() {
        let mut c = Command::new("cargo");
        c.args(["run", "--", "a b", "it's"]);
        assert_eq!(display_cmd(&c), r"cargo run -- 'a b' 'it'\''s'");
    }
}
