//! Build-script helper shared by every gm crate that produces binaries, tests or benches.
//!
//! `torch-sys` finds libtorch but only links it; the final executables still need to find
//! `libtorch_cpu.so` at run time and, on CUDA builds, must keep `libtorch_cuda.so` as a
//! dependency even though no Rust symbol refers to it (otherwise `--as-needed` drops it and
//! CUDA silently reports unavailable). Call [`link_libtorch`] from `build.rs`:
//!
//! ```no_run
//! // build.rs
//! gm_build::link_libtorch();
//! ```
//!
//! The crate calling it must depend on `torch-sys` directly, so that cargo hands its build
//! script `DEP_TCH_LIBTORCH_LIB`.

use std::path::Path;

/// Emits the linker arguments: an rpath to libtorch's `lib/`, and `torch_cuda` kept as a
/// needed library when the install has it.
pub fn link_libtorch() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        // doc-only builds of torch-sys export nothing.
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    let lib = Path::new(&lib);
    for cuda in ["torch_cuda", "torch_cuda_cu", "torch_cuda_cpp"] {
        if lib.join(format!("lib{cuda}.so")).exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-l{cuda},--as-needed");
        }
    }
}
