//! Build-script helper that links binaries, tests and examples against libtorch: every gm
//! crate's `build.rs` calls it, and so does the `build.rs` of a crate of your own that
//! depends on gm crates (README, "Using gm crates in your own project").
//!
//! `torch-sys` finds libtorch but only links it; the final executables still need to find
//! `libtorch_cpu.so` at run time and, on CUDA builds, must keep `libtorch_cuda.so` as a
//! dependency even though no Rust symbol refers to it (otherwise `--as-needed` drops it and
//! CUDA silently reports unavailable). Both are linker arguments of the final executable,
//! which cargo only takes from that executable's own package (`cargo:rustc-link-arg` does
//! not propagate from dependencies), hence one line in each final package's `build.rs`:
//!
//! ```no_run
//! // the body of `fn main` in build.rs:
//! gm_build::link_libtorch();
//! ```
//!
//! Where libtorch is: `torch-sys` (`links = "tch"`) publishes its `lib/` folder to the build
//! scripts of the packages that depend on it directly as `DEP_TCH_LIBTORCH_LIB`. Every gm
//! library crate declares `links = "gm-<name>"` and passes that folder on, so a package that
//! depends on any gm crate directly sees `DEP_GM_<NAME>_LIBTORCH_LIB` too and need not
//! depend on `torch-sys` itself.

use std::path::Path;

/// The metadata key gm crates publish libtorch's `lib/` folder under (as torch-sys does).
const KEY: &str = "LIBTORCH_LIB";

/// Emits the linker arguments: an rpath to libtorch's `lib/`, and `torch_cuda` kept as a
/// needed library when the install has it. Also publishes the folder to the build scripts
/// of this package's dependents (used when the package declares `links`).
pub fn link_libtorch() {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    for name in watched_vars(&vars) {
        println!("cargo:rerun-if-env-changed={name}");
    }
    let Some(lib) = libtorch_lib(&vars) else {
        println!(
            "cargo:warning=gm-build: no libtorch location (DEP_TCH_{KEY} from torch-sys, or \
             DEP_GM_<CRATE>_{KEY} from a gm crate): binaries get no rpath to libtorch. \
             Depend directly on a gm crate (or on torch-sys)."
        );
        return;
    };
    for arg in link_args(&lib, |name| Path::new(&lib).join(name).exists()) {
        println!("cargo:rustc-link-arg={arg}");
    }
    println!("cargo:libtorch_lib={lib}");
}

/// The `DEP_*` variables the result depends on: torch-sys's and every gm crate's.
fn watched_vars(vars: &[(String, String)]) -> Vec<String> {
    let mut names = vec![format!("DEP_TCH_{KEY}")];
    names.extend(gm_vars(vars).into_iter().map(|(k, _)| k));
    names
}

/// `DEP_GM_*_LIBTORCH_LIB` variables, sorted by name.
fn gm_vars(vars: &[(String, String)]) -> Vec<(String, String)> {
    let mut found: Vec<_> = vars
        .iter()
        .filter(|(k, v)| {
            k.starts_with("DEP_GM_") && k.ends_with(&format!("_{KEY}")) && !v.is_empty()
        })
        .cloned()
        .collect();
    found.sort();
    found
}

/// libtorch's `lib/`: torch-sys's own value first, else the first gm crate's.
fn libtorch_lib(vars: &[(String, String)]) -> Option<String> {
    let tch = format!("DEP_TCH_{KEY}");
    vars.iter()
        .find(|(k, v)| *k == tch && !v.is_empty())
        .map(|(_, v)| v.clone())
        .or_else(|| gm_vars(vars).into_iter().next().map(|(_, v)| v))
}

/// The linker arguments for libtorch in `lib`; `exists(file)` says whether `lib/<file>` is
/// there.
fn link_args(lib: &str, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut args = vec![format!("-Wl,-rpath,{lib}")];
    for cuda in ["torch_cuda", "torch_cuda_cu", "torch_cuda_cpp"] {
        if exists(&format!("lib{cuda}.so")) {
            args.push(format!("-Wl,--no-as-needed,-l{cuda},--as-needed"));
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn torch_sys_value_wins_then_gm_crates_in_name_order() {
        let v = vars(&[
            ("DEP_GM_VAE_LIBTORCH_LIB", "/b"),
            ("DEP_GM_CORE_LIBTORCH_LIB", "/a"),
            ("DEP_TCH_LIBTORCH_LIB", "/t"),
            ("PATH", "/usr/bin"),
        ]);
        assert_eq!(libtorch_lib(&v).as_deref(), Some("/t"));
        assert_eq!(libtorch_lib(&v[..2]).as_deref(), Some("/a"));
        assert_eq!(libtorch_lib(&v[3..]), None);
        assert_eq!(
            watched_vars(&v),
            [
                "DEP_TCH_LIBTORCH_LIB",
                "DEP_GM_CORE_LIBTORCH_LIB",
                "DEP_GM_VAE_LIBTORCH_LIB"
            ]
        );
    }

    #[test]
    fn empty_values_and_other_keys_are_ignored() {
        let v = vars(&[
            ("DEP_TCH_LIBTORCH_LIB", ""),
            ("DEP_GM_CORE_OTHER", "/x"),
            ("DEP_GM_EVAL_LIBTORCH_LIB", "/e"),
        ]);
        assert_eq!(libtorch_lib(&v).as_deref(), Some("/e"));
    }

    #[test]
    fn cuda_libraries_are_kept_linked_only_when_present() {
        assert_eq!(link_args("/l", |_| false), ["-Wl,-rpath,/l"]);
        assert_eq!(
            link_args("/l", |f| f == "libtorch_cuda.so"),
            [
                "-Wl,-rpath,/l",
                "-Wl,--no-as-needed,-ltorch_cuda,--as-needed"
            ]
        );
    }
}
