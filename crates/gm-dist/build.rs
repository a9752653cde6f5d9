//! Compiles the C++ shim over c10d's Gloo process group against the libtorch torch-sys
//! links (its headers, its C++ ABI), and links the crate's tests against libtorch.

use std::path::PathBuf;

fn main() {
    gm_build::link_libtorch();
    println!("cargo:rerun-if-changed=csrc/gloo_shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys publishes libtorch's lib/ folder as DEP_TCH_LIBTORCH_LIB");
    let root = PathBuf::from(lib)
        .parent()
        .expect("libtorch's lib/ has a parent folder")
        .to_path_buf();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .file("csrc/gloo_shim.cpp")
        .compile("gm_gloo_shim");
}
