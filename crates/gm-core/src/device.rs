//! Devices and seeding.
//!
//! A device is named on the command line as `auto`, `cpu`, `cuda` or `cuda:N`; `auto` picks
//! the first CUDA device when libtorch sees one and the CPU otherwise. Asking for CUDA on a
//! machine without it is an error, never a silent fall-back.
//!
//! One `seed` per run drives every random number: [`seed_all`] seeds libtorch (CPU and
//! CUDA), and [`derive_seed`] mixes the run seed with counters (epoch, step, purpose) so that
//! each step's randomness is a pure function of where the run is, which is what makes an
//! interrupted-and-resumed run end with the same weights as an uninterrupted one.
//!
//! ```no_run
//! use gm_core::device::{DeviceSpec, seed_all};
//! let device = DeviceSpec::parse("auto")?.resolve()?;
//! seed_all(42);
//! # Ok::<(), gm_core::Error>(())
//! ```

use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;
use tch::Device;

/// A device as the user names it, before checking that it exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device N.
    Cuda(usize),
}

impl DeviceSpec {
    /// Parses `auto`, `cpu`, `cuda` or `cuda:N`.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        match s.as_str() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(Error::config(
                    "device",
                    s,
                    "one of auto, cpu, cuda, cuda:N (N a device index)",
                )),
            },
        }
    }

    /// The libtorch device, checking that it exists.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceSpec::Auto => Ok(Device::cuda_if_available()),
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => {
                let count = tch::Cuda::device_count();
                if !tch::Cuda::is_available() || count == 0 {
                    Err(Error::Device(format!(
                        "--device {self} was asked for, but libtorch sees no CUDA device \
                         (no GPU, no driver, or a CPU-only libtorch): use --device cpu or auto; \
                         `gm doctor` shows what libtorch sees"
                    )))
                } else if n as i64 >= count {
                    Err(Error::Device(format!(
                        "--device {self}: only {count} CUDA device(s) present (cuda:0..cuda:{})",
                        count - 1
                    )))
                } else {
                    Ok(Device::Cuda(n))
                }
            }
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DeviceSpec::parse(s)
    }
}

impl serde::Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DeviceSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A short human name of a resolved device: `cpu` or `cuda:N`.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Tunes glibc's allocator for libtorch's large, short-lived CPU tensors: without it every
/// tensor above the (adaptive, at most 32 MB) mmap threshold is mapped and page-faulted
/// afresh, and freed heap tops are returned to the kernel, which can cost more system time
/// than the arithmetic (measured on the VAE's importance sampling: 25 % less CPU time).
/// Call once at program start; a no-op off Linux/glibc.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes allocator parameters; called before other threads
    // allocate heavily, with valid parameter codes.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Seeds libtorch's CPU generator and every CUDA generator.
pub fn seed_all(seed: u64) {
    static CUDA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // libtorch takes an i64; keep the bits.
    tch::manual_seed(seed as i64);
    if *CUDA.get_or_init(tch::Cuda::is_available) {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// Mixes a run seed with counters into a new, well-spread seed (SplitMix64 steps).
///
/// Used for per-epoch shuffles, per-step libtorch seeding and per-epoch binarization, so
/// that no random stream depends on how much randomness earlier work consumed.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut h = splitmix(seed ^ 0x6a09_e667_f3bc_c908);
    for &p in parts {
        h = splitmix(h ^ p.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Defines two tests that run `body(device)`: `cpu` on the CPU and `cuda` on the first CUDA
/// device, which says it was skipped where the machine has none. The first GPU machine
/// then runs every device test at once (`cargo xtask gpu-check`).
///
/// ```ignore
/// fn sums_match(device: tch::Device) { /* … */ }
/// gm_core::test_device!(sums_match, sums_match_on_cpu, sums_match_on_cuda);
/// ```
#[macro_export]
macro_rules! test_device {
    ($body:ident, $cpu:ident, $cuda:ident) => {
        #[test]
        fn $cpu() {
            $body(tch::Device::Cpu)
        }

        #[test]
        fn $cuda() {
            if !tch::Cuda::is_available() {
                eprintln!("{}: no CUDA device here, skipped", stringify!($cuda));
                return;
            }
            $body(tch::Device::Cuda(0))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        let _rng = crate::rng_guard::lock();
        assert_eq!(DeviceSpec::parse("auto").unwrap(), DeviceSpec::Auto);
        assert_eq!(DeviceSpec::parse("CPU").unwrap(), DeviceSpec::Cpu);
        assert_eq!(DeviceSpec::parse("cuda").unwrap(), DeviceSpec::Cuda(0));
        assert_eq!(DeviceSpec::parse("cuda:3").unwrap(), DeviceSpec::Cuda(3));
        for bad in ["", "tpu", "cuda:", "cuda:x", "cuda:-1"] {
            let err = DeviceSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("auto, cpu, cuda"), "{bad}: {err}");
        }
    }

    #[test]
    fn cuda_without_gpu_is_a_clear_error() {
        let _rng = crate::rng_guard::lock();
        if tch::Cuda::is_available() {
            return; // covered on CPU-only machines (CI)
        }
        let err = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
        assert!(err.contains("no CUDA device"), "{err}");
        assert_eq!(DeviceSpec::Auto.resolve().unwrap(), Device::Cpu);
    }

    #[test]
    fn derived_seeds_differ_and_repeat() {
        let _rng = crate::rng_guard::lock();
        let a = derive_seed(1, &[0, 5]);
        assert_eq!(a, derive_seed(1, &[0, 5]));
        assert_ne!(a, derive_seed(1, &[5, 0]));
        assert_ne!(a, derive_seed(2, &[0, 5]));
        assert_ne!(derive_seed(1, &[]), derive_seed(1, &[0]));
    }
}
