//! `gm doctor`: what libtorch this binary runs on and which devices it sees.

use std::path::PathBuf;

/// The folder of the loaded `libtorch_cpu.so`, read from the process's memory map.
fn libtorch_path() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("libtorch_cpu.so") || p.contains("libtorch_cpu.so."))
        .map(|p| {
            PathBuf::from(p)
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default()
        })
}

fn libtorch_version(lib: &Option<PathBuf>) -> String {
    let Some(lib) = lib else {
        return "unknown".into();
    };
    let torch_dir = lib.parent().map(PathBuf::from).unwrap_or_default();
    for f in ["build-version", "version.py"] {
        if let Ok(s) = std::fs::read_to_string(torch_dir.join(f)) {
            if f == "build-version" {
                return s.trim().to_string();
            }
            if let Some(v) = s.lines().find_map(|l| l.strip_prefix("__version__ = ")) {
                return v.trim_matches(|c| c == '\'' || c == '"').to_string();
            }
        }
    }
    "unknown".into()
}

pub fn doctor() -> anyhow::Result<()> {
    // Touch libtorch so that it is loaded before reading the memory map.
    let _ = tch::Tensor::zeros([1], (tch::Kind::Float, tch::Device::Cpu));
    let lib = libtorch_path();
    println!("gm {}", env!("CARGO_PKG_VERSION"));
    println!("libtorch version : {}", libtorch_version(&lib));
    println!(
        "libtorch path    : {}",
        lib.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "not found in memory map".into())
    );
    let cuda = tch::Cuda::is_available();
    let count = tch::Cuda::device_count();
    println!("CUDA available   : {cuda}");
    println!("CUDA devices     : {count}");
    let nvidia = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total",
            "--format=csv,noheader",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if count > 0 {
        match &nvidia {
            Some(s) if !s.is_empty() => {
                for line in s.lines() {
                    println!("  cuda:{line}");
                }
            }
            _ => {
                for i in 0..count {
                    println!("  cuda:{i}");
                }
            }
        }
    }
    println!("cuDNN available  : {}", tch::Cuda::cudnn_is_available());
    let linked_cuda = std::fs::read_to_string("/proc/self/maps")
        .map(|m| m.contains("libtorch_cuda.so"))
        .unwrap_or(false);
    println!("torch_cuda linked: {linked_cuda}");
    println!(
        "threads          : {} (intra-op), {} cores",
        tch::get_num_threads(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let dev = gm_core::device::DeviceSpec::Auto.resolve()?;
    println!(
        "default device   : {} (--device auto)",
        gm_core::device::device_name(dev)
    );
    println!(
        "data cache       : {}",
        gm_core::data::data_dir(&Default::default()).display()
    );
    Ok(())
}
