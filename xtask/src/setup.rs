//! `cargo xtask setup`: make libtorch 2.13 available and point the repository's
//! git-ignored `.libtorch` symlink at it.
//!
//! `.cargo/config.toml` sets `LIBTORCH=<repo>/.libtorch` for every cargo process that does
//! not already have `LIBTORCH` in its environment, and every gm build script puts
//! `$LIBTORCH/lib` on the binaries' rpath; so once the symlink points at a libtorch, plain
//! `cargo build`, `cargo test` and `cargo run` work.
//!
//! Where libtorch comes from, first match wins:
//!
//! 1. `LIBTORCH` set by the user (any value other than the repository's own `.libtorch`),
//!    checked for `include/` and `lib/libtorch_cpu.so`;
//! 2. the symlink already pointing at a libtorch 2.13 (the fast path, one line of output);
//! 3. a Python on `PATH` (`python3`, then `python`) whose `torch.__version__` is 2.13.x;
//! 4. the private virtual environment `${XDG_CACHE_HOME:-~/.cache}/gm/torch-2.13.0`,
//!    created with `python3 -m venv` + `pip install torch==2.13.0` when absent and repaired
//!    (pip re-run) when its torch does not import.
//!
//! Its report goes to stderr (so does pip's output), leaving stdout to `cargo xtask setup
//! --print-libtorch`, which prints only the `LIBTORCH` value for other projects.
//!
//! ```ignore
//! let lt = setup::ensure(true)?; // reports what it did on stderr
//! assert!(lt.dir.join("lib/libtorch_cpu.so").exists());
//! ```

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

use crate::util::{self, env_nonempty};

/// The PyTorch release `tch` 0.26 is built against.
pub const TORCH_VERSION: &str = "2.13.0";
/// Prefix every acceptable `torch.__version__` starts with.
pub const TORCH_VERSION_PREFIX: &str = "2.13.";

/// Where libtorch came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `LIBTORCH` given by the user.
    UserEnv,
    /// `.libtorch` already pointed at a good libtorch.
    AlreadySetUp,
    /// The torch package of a Python found on `PATH`.
    SystemPython,
    /// The private virtual environment in the per-user cache.
    PrivateVenv {
        /// The venv's folder.
        venv: PathBuf,
        /// What setup had to do to it: "reused", "created", "repaired".
        action: &'static str,
    },
}

/// A usable libtorch.
#[derive(Debug, Clone)]
pub struct Libtorch {
    /// The libtorch folder (holds `include/` and `lib/`), symlinks resolved.
    pub dir: PathBuf,
    /// The value passed to cargo as `LIBTORCH`: `<repo>/.libtorch`, the same value
    /// `.cargo/config.toml` gives plain cargo (so `torch-sys`, which re-runs its build
    /// script when `LIBTORCH` changes, is not rebuilt when switching between `cargo xtask
    /// test` and `cargo test`), or the user's own `LIBTORCH`.
    pub cargo_value: PathBuf,
    /// `torch.__version__` or `build-version`, e.g. `2.13.0+cu130`.
    pub version: String,
    /// Where it came from.
    pub source: Source,
    /// The Python interpreter this torch belongs to, when known without running anything.
    pub python: Option<PathBuf>,
}

impl Libtorch {
    /// The Python whose `import torch` is this libtorch (used by `bench` to run the PyTorch
    /// reference scripts). `None` when the user gave `LIBTORCH` and no Python with torch
    /// 2.13 is on `PATH`.
    pub fn python(&self) -> Option<PathBuf> {
        if let Some(p) = &self.python {
            return Some(p.clone());
        }
        if self.source == Source::UserEnv {
            // The user's libtorch may be a plain C++ distribution: any Python with a
            // matching torch runs the references equally well.
            return find_path_python().map(|(py, _)| py);
        }
        // A Python on PATH whose torch is this very folder.
        for exe in ["python3", "python"] {
            if let Some(info) = probe_python(Path::new(exe)) {
                if same_file(&info.dir, &self.dir) {
                    return Some(resolve_exe(exe));
                }
            }
        }
        None
    }
}

/// The private venv: `${XDG_CACHE_HOME:-~/.cache}/gm/torch-2.13.0`.
pub fn venv_dir() -> Result<PathBuf> {
    Ok(util::cache_home()?
        .join("gm")
        .join(format!("torch-{TORCH_VERSION}")))
}

/// Makes libtorch available (see the module docs) and returns it. With `verbose`, prints
/// the full summary even on the fast path.
pub fn ensure(verbose: bool) -> Result<Libtorch> {
    let repo = util::repo_root();
    let link = repo.join(".libtorch");

    // 1. LIBTORCH from the user.
    if let Some(user) = user_libtorch(&repo) {
        let dir = user
            .canonicalize()
            .with_context(|| format!("LIBTORCH={} does not exist", user.display()))?;
        let version = check_libtorch_dir(&dir).with_context(|| {
            format!(
                "LIBTORCH={} is not a usable libtorch (unset LIBTORCH to let setup find or install one)",
                user.display()
            )
        })?;
        if !version.starts_with(TORCH_VERSION_PREFIX) && version != "unknown" {
            eprintln!(
                "warning: LIBTORCH={} is torch {version}; tch 0.26 expects {TORCH_VERSION}",
                user.display()
            );
        }
        let relinked = relink(&link, &dir)?;
        let lt = Libtorch {
            dir,
            cargo_value: user,
            version,
            source: Source::UserEnv,
            python: None,
        };
        print_summary(&lt, &link, relinked);
        return Ok(lt);
    }

    // 2. Already set up.
    if let Ok(dir) = link.canonicalize() {
        if let Ok(version) = check_libtorch_dir(&dir) {
            if version.starts_with(TORCH_VERSION_PREFIX) {
                let lt = Libtorch {
                    python: python_of_site_packages(&dir),
                    dir,
                    cargo_value: link.clone(),
                    version,
                    source: Source::AlreadySetUp,
                };
                if verbose {
                    print_summary(&lt, &link, false);
                } else {
                    eprintln!(
                        "setup: libtorch {} ready (.libtorch -> {})",
                        lt.version,
                        lt.dir.display()
                    );
                }
                return Ok(lt);
            }
        }
    }

    // 3. A Python on PATH with torch 2.13.
    let (dir, version, source, python) = if let Some((py, info)) = find_path_python() {
        (info.dir, info.version, Source::SystemPython, Some(py))
    } else {
        // 4. The private venv.
        let venv = venv_dir()?;
        let (info, action) = ensure_venv(&venv)?;
        let python = venv.join("bin/python");
        (
            info.dir,
            info.version,
            Source::PrivateVenv { venv, action },
            Some(python),
        )
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    check_libtorch_dir(&dir).with_context(|| {
        format!(
            "torch {version} at {} has no C++ libtorch (include/, lib/libtorch_cpu.so)",
            dir.display()
        )
    })?;
    let relinked = relink(&link, &dir)?;
    let lt = Libtorch {
        dir,
        cargo_value: link.clone(),
        version,
        source,
        python,
    };
    print_summary(&lt, &link, relinked);
    Ok(lt)
}

fn print_summary(lt: &Libtorch, link: &Path, relinked: bool) {
    let source = match &lt.source {
        Source::UserEnv => format!(
            "LIBTORCH from your environment ({})",
            lt.cargo_value.display()
        ),
        Source::AlreadySetUp => "existing .libtorch link".to_owned(),
        Source::SystemPython => format!(
            "torch of the Python on PATH ({})",
            lt.python.as_deref().unwrap_or(Path::new("?")).display()
        ),
        Source::PrivateVenv { venv, action } => {
            format!("private venv {} ({action})", venv.display())
        }
    };
    eprintln!("setup: libtorch source  {source}");
    eprintln!("setup: torch version    {}", lt.version);
    eprintln!("setup: libtorch dir     {}", lt.dir.display());
    eprintln!("setup: lib dir          {}", lt.dir.join("lib").display());
    match lt.python.as_ref() {
        Some(py) => eprintln!("setup: python           {}", py.display()),
        None if lt.source == Source::UserEnv => {
            eprintln!("setup: python           none (LIBTORCH given by the user)")
        }
        None => {}
    }
    eprintln!(
        "setup: {} {} -> {}",
        if relinked { "linked " } else { "link   " },
        link.display(),
        lt.dir.display()
    );
    if lt.source == Source::UserEnv {
        eprintln!(
            "setup: plain `cargo build`, `cargo test` and `cargo run` now work \
             (they use your LIBTORCH while it is set, and .libtorch otherwise)."
        );
    } else {
        eprintln!(
            "setup: plain `cargo build`, `cargo test` and `cargo run` now work \
             (.cargo/config.toml sets LIBTORCH={}).",
            lt.cargo_value.display()
        );
    }
}

/// `LIBTORCH` when the user set it: any non-empty value that is not the repository's own
/// `.libtorch` (which `.cargo/config.toml` puts into cargo-run processes, us included).
fn user_libtorch(repo: &Path) -> Option<PathBuf> {
    let val = PathBuf::from(env_nonempty("LIBTORCH")?);
    let val = util::absolute(&val);
    if is_repo_link(&val, repo) {
        None
    } else {
        Some(val)
    }
}

/// Whether `val` names `<repo>/.libtorch`: lexically, with its parent folder canonicalized,
/// or (when both resolve) as the same folder.
pub fn is_repo_link(val: &Path, repo: &Path) -> bool {
    let link = repo.join(".libtorch");
    if val == link {
        return true;
    }
    let canon_repo = repo.canonicalize().unwrap_or_else(|_| repo.to_path_buf());
    if let (Some(parent), Some(name)) = (val.parent(), val.file_name()) {
        if let Ok(parent) = parent.canonicalize() {
            if parent == canon_repo && name == ".libtorch" {
                return true;
            }
        }
    }
    matches!((val.canonicalize(), link.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Checks a libtorch folder (`include/`, `lib/libtorch_cpu.so`) and returns its version
/// (`version.py` of a Python torch package, `build-version` of a C++ distribution, or
/// `"unknown"`).
pub fn check_libtorch_dir(dir: &Path) -> Result<String> {
    if !dir.join("include").is_dir() {
        bail!("{} has no include/ folder", dir.display());
    }
    if !dir.join("lib/libtorch_cpu.so").is_file() {
        bail!("{} has no lib/libtorch_cpu.so", dir.display());
    }
    Ok(read_torch_version(dir).unwrap_or_else(|| "unknown".to_owned()))
}

/// The torch version recorded in a libtorch folder, if any.
pub fn read_torch_version(dir: &Path) -> Option<String> {
    if let Ok(text) = fs::read_to_string(dir.join("version.py")) {
        if let Some(v) = parse_version_py(&text) {
            return Some(v);
        }
    }
    fs::read_to_string(dir.join("build-version"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// `__version__ = '2.13.0+cu130'` → `2.13.0+cu130`.
pub fn parse_version_py(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("__version__")?;
        let rest = rest.trim_start().strip_prefix('=')?.trim();
        let rest = rest.split('#').next()?.trim();
        let unquoted = rest
            .strip_prefix('\'')
            .and_then(|r| r.strip_suffix('\''))
            .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))?;
        Some(unquoted.to_owned())
    })
}

/// What `import torch` says in some Python.
#[derive(Debug)]
struct TorchInfo {
    version: String,
    dir: PathBuf,
}

const PROBE: &str = "import os, torch\nprint('GM_TORCH_VERSION=' + torch.__version__)\nprint('GM_TORCH_DIR=' + os.path.dirname(torch.__file__))\n";

/// Runs `python -c PROBE`; `None` when Python or torch is missing or broken.
fn probe_python(python: &Path) -> Option<TorchInfo> {
    let out = Command::new(python)
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = None;
    let mut dir = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("GM_TORCH_VERSION=") {
            version = Some(v.trim().to_owned());
        } else if let Some(d) = line.strip_prefix("GM_TORCH_DIR=") {
            dir = Some(PathBuf::from(d.trim()));
        }
    }
    Some(TorchInfo {
        version: version?,
        dir: dir?,
    })
}

/// The first of `python3`, `python` on `PATH` whose torch is 2.13.x.
fn find_path_python() -> Option<(PathBuf, TorchInfo)> {
    for exe in ["python3", "python"] {
        if let Some(info) = probe_python(Path::new(exe)) {
            if info.version.starts_with(TORCH_VERSION_PREFIX) {
                return Some((resolve_exe(exe), info));
            }
        }
    }
    None
}

/// The real interpreter behind a name on `PATH` (pyenv shims resolve to themselves, which
/// is fine: they keep working), asked from Python itself.
fn resolve_exe(exe: &str) -> PathBuf {
    Command::new(exe)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(exe))
}

/// `<prefix>/lib/pythonX.Y/site-packages/torch` → `<prefix>/bin/python` when it exists
/// (a venv or a self-contained Python installation).
fn python_of_site_packages(torch_dir: &Path) -> Option<PathBuf> {
    let site = torch_dir.parent()?;
    if site.file_name()? != "site-packages" {
        return None;
    }
    let pyver = site.parent()?;
    if !pyver.file_name()?.to_string_lossy().starts_with("python") {
        return None;
    }
    let prefix = pyver.parent()?.parent()?;
    ["bin/python", "bin/python3"]
        .iter()
        .map(|b| prefix.join(b))
        .find(|p| p.exists())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Creates, reuses or repairs the private venv; returns its torch and what was done.
fn ensure_venv(venv: &Path) -> Result<(TorchInfo, &'static str)> {
    let python = venv.join("bin/python");
    if python.exists() {
        if let Some(info) = probe_python(&python) {
            if info.version.starts_with(TORCH_VERSION_PREFIX) {
                return Ok((info, "reused"));
            }
            eprintln!(
                "setup: {} has torch {}; installing {TORCH_VERSION}",
                venv.display(),
                info.version
            );
        } else if python_runs(&python) {
            eprintln!(
                "setup: torch does not import in {}; repairing with pip",
                venv.display()
            );
        } else {
            eprintln!(
                "setup: the venv {} is broken (its python does not run); recreating it",
                venv.display()
            );
            create_venv(venv, true)?;
        }
        pip_install(&python, false)?;
        if let Some(info) =
            probe_python(&python).filter(|i| i.version.starts_with(TORCH_VERSION_PREFIX))
        {
            return Ok((info, "repaired"));
        }
        eprintln!("setup: torch still does not import; forcing a reinstall");
        pip_install(&python, true)?;
        let info = probe_python(&python)
            .filter(|i| i.version.starts_with(TORCH_VERSION_PREFIX))
            .with_context(|| {
                format!(
                    "torch {TORCH_VERSION} still does not import in {}; delete that folder and run `cargo xtask setup` again",
                    venv.display()
                )
            })?;
        return Ok((info, "repaired"));
    }
    eprintln!(
        "setup: no Python with torch {TORCH_VERSION} on PATH; creating the private venv {} \
         (pip downloads about 4.7 GB, about a minute on a fast link)",
        venv.display()
    );
    create_venv(venv, venv.exists())?;
    pip_install(&python, false)?;
    let info = probe_python(&python)
        .filter(|i| i.version.starts_with(TORCH_VERSION_PREFIX))
        .with_context(|| {
            format!(
                "torch {TORCH_VERSION} does not import in the new venv {}",
                venv.display()
            )
        })?;
    Ok((info, "created"))
}

fn python_runs(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "pass"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn create_venv(venv: &Path, clear: bool) -> Result<()> {
    if let Some(parent) = venv.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let base = ["python3", "python"]
        .into_iter()
        .find(|p| python_runs(Path::new(p)))
        .context("no `python3` or `python` on PATH: install Python 3.10+ (with its venv module), or set LIBTORCH to a libtorch 2.13 folder")?;
    let mut cmd = Command::new(base);
    cmd.args(["-m", "venv"]);
    if clear {
        cmd.arg("--clear");
    }
    cmd.arg(venv);
    util::run_to_stderr(&mut cmd, "creating the venv").with_context(|| {
        format!("`{base} -m venv` failed (on Debian/Ubuntu: apt-get install python3-venv)")
    })
}

fn pip_install(python: &Path, force: bool) -> Result<()> {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "pip", "install", "--disable-pip-version-check"]);
    if force {
        cmd.arg("--force-reinstall");
    }
    cmd.arg(format!("torch=={TORCH_VERSION}"));
    // pip's own progress goes straight to the terminal.
    util::run_to_stderr(&mut cmd, "pip install torch").with_context(|| {
        format!("installing torch=={TORCH_VERSION} with pip failed; check network access to PyPI (or a pip mirror via PIP_INDEX_URL)")
    })
}

/// Points `link` at `target`, replacing an existing symlink atomically (temporary symlink +
/// rename). Returns whether anything changed.
pub fn relink(link: &Path, target: &Path) -> Result<bool> {
    if let Ok(meta) = fs::symlink_metadata(link) {
        if meta.file_type().is_symlink() {
            if fs::read_link(link).ok().as_deref() == Some(target) {
                return Ok(false);
            }
        } else {
            bail!(
                "{} exists and is not a symlink; move it away (or set LIBTORCH to it) and run setup again",
                link.display()
            );
        }
    }
    let tmp = link.with_file_name(format!(".libtorch.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    if let Err(e) = fs::rename(&tmp, link) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("replacing {}", link.display()));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gm-xtask-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn version_py_is_parsed() {
        let text = "from typing import Optional\n__all__ = ['__version__']\n__version__ = '2.13.0+cu130'\ndebug = False\n";
        assert_eq!(parse_version_py(text).as_deref(), Some("2.13.0+cu130"));
        assert_eq!(
            parse_version_py("__version__ = \"2.13.1\"").as_deref(),
            Some("2.13.1")
        );
        assert_eq!(parse_version_py("__all__ = ['__version__']"), None);
    }

    #[test]
    fn libtorch_dir_check_and_relink() {
        let d = tmpdir("libtorch");
        let torch = d.join("torch");
        assert!(check_libtorch_dir(&torch).is_err());
        fs::create_dir_all(torch.join("include")).unwrap();
        fs::create_dir_all(torch.join("lib")).unwrap();
        assert!(
            check_libtorch_dir(&torch).is_err(),
            "no libtorch_cpu.so yet"
        );
        fs::write(torch.join("lib/libtorch_cpu.so"), b"").unwrap();
        assert_eq!(check_libtorch_dir(&torch).unwrap(), "unknown");
        fs::write(torch.join("build-version"), "2.13.0+cpu\n").unwrap();
        assert_eq!(check_libtorch_dir(&torch).unwrap(), "2.13.0+cpu");

        let link = d.join(".libtorch");
        assert!(relink(&link, &torch).unwrap());
        assert!(!relink(&link, &torch).unwrap(), "second relink is a no-op");
        let other = d.join("other");
        fs::create_dir_all(&other).unwrap();
        assert!(relink(&link, &other).unwrap());
        assert_eq!(fs::read_link(&link).unwrap(), other);

        // The link counts as the repo's own LIBTORCH, whichever way it is spelled.
        assert!(is_repo_link(&link, &d));
        std::os::unix::fs::symlink(&d, d.join("alias")).unwrap();
        assert!(is_repo_link(&d.join("alias/.libtorch"), &d));
        assert!(!is_repo_link(&torch, &d));

        // A real directory in the link's place is not replaced.
        let dirlink = d.join("dirlink");
        fs::create_dir_all(&dirlink).unwrap();
        assert!(relink(&dirlink, &torch).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn python_from_site_packages_layout() {
        let d = tmpdir("venv");
        let torch = d.join("lib/python3.11/site-packages/torch");
        fs::create_dir_all(&torch).unwrap();
        assert_eq!(python_of_site_packages(&torch), None);
        fs::create_dir_all(d.join("bin")).unwrap();
        fs::write(d.join("bin/python"), b"").unwrap();
        assert_eq!(python_of_site_packages(&torch), Some(d.join("bin/python")));
        assert_eq!(python_of_site_packages(&d.join("torch")), None);
        fs::remove_dir_all(&d).unwrap();
    }
}
