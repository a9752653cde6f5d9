//! gm-dist: data-parallel training across processes on PyTorch's own distributed engine,
//! c10d's Gloo process group (the CPU backend of `torch.distributed` and DDP), reached from
//! the libtorch gm links through a small C++ shim.
//!
//! Rendezvous follows `torchrun`'s environment: `RANK`, `WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT` (a TCP store, hosted by rank 0, or by torchrun's agent when
//! `TORCHELASTIC_USE_AGENT_STORE=True`). [`init_from_env`] builds the group and installs it
//! as gm-core's [`gm_core::dist`] group; from then on the trainer shards batches and the
//! optimizer averages gradients. `GM_DIST_TIMEOUT` (seconds, default 120) bounds every
//! collective, so the ranks of a run whose peer died stop with an error instead of waiting.
//!
//! ```no_run
//! // RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500 (and RANK=1 elsewhere)
//! if gm_dist::init_from_env()? {
//!     println!("rank {} of {}", gm_core::dist::rank(), gm_core::dist::world());
//! }
//! # Ok::<(), gm_core::Error>(())
//! ```

use gm_core::dist::Collective;
use gm_core::{Error, Result};
use tch::{Device, Tensor};

mod ffi;

/// Where and how to meet the other processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendezvous {
    /// This process' rank.
    pub rank: usize,
    /// The number of processes.
    pub world: usize,
    /// Host of the TCP store.
    pub addr: String,
    /// Its port.
    pub port: u16,
    /// Whether torchrun's agent hosts the store (then no rank does).
    pub agent_store: bool,
    /// Key prefix in the store.
    pub prefix: String,
    /// Bound on the rendezvous and every collective, milliseconds.
    pub timeout_ms: i64,
}

impl Rendezvous {
    /// The rendezvous `torchrun` describes in `env` (`None` when `WORLD_SIZE` is unset).
    pub fn from_vars(env: impl Fn(&str) -> Option<String>) -> Result<Option<Rendezvous>> {
        let Some(world) = env("WORLD_SIZE") else {
            return Ok(None);
        };
        let int = |name: &str, v: &str| -> Result<i64> {
            v.trim()
                .parse()
                .map_err(|_| Error::config(name, v, "an integer (as torchrun sets it)".to_string()))
        };
        let world = int("WORLD_SIZE", &world)?;
        let rank = int("RANK", &env("RANK").unwrap_or_else(|| "0".into()))?;
        if world < 1 || rank < 0 || rank >= world {
            return Err(Error::config(
                "RANK",
                rank,
                format!("a rank in 0..{world} (WORLD_SIZE = {world})"),
            ));
        }
        let port = int(
            "MASTER_PORT",
            &env("MASTER_PORT").unwrap_or_else(|| "29500".into()),
        )?;
        let port = u16::try_from(port)
            .map_err(|_| Error::config("MASTER_PORT", port, "a TCP port, 1..65535".to_string()))?;
        let timeout_s = match env("GM_DIST_TIMEOUT") {
            Some(v) => int("GM_DIST_TIMEOUT", &v)?.max(1),
            None => 120,
        };
        let agent_store = env("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Some("True");
        let attempt = env("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into());
        Ok(Some(Rendezvous {
            rank: rank as usize,
            world: world as usize,
            addr: env("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            port,
            agent_store,
            prefix: format!("/gm/attempt_{attempt}/"),
            timeout_ms: timeout_s * 1000,
        }))
    }
}

/// A c10d Gloo process group.
pub struct Gloo {
    pg: ffi::Group,
    rank: usize,
    world: usize,
}

impl std::fmt::Debug for Gloo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gloo(rank {} of {})", self.rank, self.world)
    }
}

impl Gloo {
    /// Meets the other processes as `r` says (blocks until all have arrived or the timeout).
    pub fn connect(r: &Rendezvous) -> Result<Gloo> {
        let server = r.rank == 0 && !r.agent_store;
        let pg = ffi::Group::new(r, server).map_err(|e| {
            Error::Msg(format!(
                "rank {} of {}: no process group at {}:{} ({e}); are all {} processes \
                 started with the same MASTER_ADDR / MASTER_PORT?",
                r.rank, r.world, r.addr, r.port, r.world
            ))
        })?;
        Ok(Gloo {
            pg,
            rank: r.rank,
            world: r.world,
        })
    }

    fn call(
        &self,
        op: &str,
        f: impl FnOnce(&ffi::Group) -> std::result::Result<(), String>,
    ) -> Result<()> {
        f(&self.pg).map_err(|e| {
            Error::Msg(format!(
                "rank {} of {}: {op} failed ({e}); another process has probably stopped, see \
                 its log",
                self.rank, self.world
            ))
        })
    }
}

fn host_tensor(t: &Tensor, op: &str) -> Result<()> {
    if t.device() != Device::Cpu || !t.is_contiguous() {
        return Err(Error::Msg(format!(
            "{op}: Gloo takes contiguous CPU tensors, got one on {:?}",
            t.device()
        )));
    }
    Ok(())
}

impl Collective for Gloo {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        host_tensor(t, "all-reduce")?;
        self.call("all-reduce (sum)", |g| g.all_reduce(t, false))
    }

    fn all_reduce_max(&self, t: &Tensor) -> Result<()> {
        host_tensor(t, "all-reduce")?;
        self.call("all-reduce (max)", |g| g.all_reduce(t, true))
    }

    fn broadcast(&self, t: &Tensor, root: usize) -> Result<()> {
        host_tensor(t, "broadcast")?;
        self.call("broadcast", |g| g.broadcast(t, root as i32))
    }

    fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let t = t.contiguous();
        host_tensor(&t, "all-gather")?;
        let mut shape = vec![self.world as i64];
        shape.extend(t.size());
        let out = Tensor::empty(shape.as_slice(), (t.kind(), Device::Cpu));
        self.call("all-gather", |g| g.all_gather(&out, &t))?;
        Ok(out)
    }
}

/// Joins the process group torchrun's environment describes and installs it for gm-core;
/// `false` (and nothing done) when `WORLD_SIZE` is unset or 1.
pub fn init_from_env() -> Result<bool> {
    let Some(r) = Rendezvous::from_vars(|k| std::env::var(k).ok())? else {
        return Ok(false);
    };
    if r.world == 1 {
        return Ok(false);
    }
    let g = Gloo::connect(&r)?;
    gm_core::dist::install(Box::new(g))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn torchrun_environment_is_read() {
        assert_eq!(Rendezvous::from_vars(vars(&[])).unwrap(), None);
        let r = Rendezvous::from_vars(vars(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "1234"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((r.rank, r.world, r.port), (3, 4, 1234));
        assert_eq!(r.addr, "node0");
        assert!(r.agent_store);
        assert_eq!(r.prefix, "/gm/attempt_2/");
        for bad in [("RANK", "4"), ("RANK", "x"), ("MASTER_PORT", "70000")] {
            let err = Rendezvous::from_vars(vars(&[("WORLD_SIZE", "4"), bad]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(bad.0), "{err}");
        }
    }

    #[test]
    fn two_ranks_in_threads_reduce_broadcast_and_gather() {
        let port = free_port();
        let run = |rank: usize| {
            std::thread::spawn(move || {
                let r = Rendezvous {
                    rank,
                    world: 2,
                    addr: "127.0.0.1".into(),
                    port,
                    agent_store: false,
                    prefix: "/test/".into(),
                    timeout_ms: 30_000,
                };
                let g = Gloo::connect(&r).unwrap();
                let t = Tensor::from_slice(&[rank as f32 + 1.0, 10.0]);
                g.all_reduce_sum(&t).unwrap();
                let m = Tensor::from_slice(&[rank as i64]);
                g.all_reduce_max(&m).unwrap();
                let b = Tensor::from_slice(&[rank as f64 * 7.0]);
                g.broadcast(&b, 1).unwrap();
                let all = g
                    .all_gather(&Tensor::from_slice(&[rank as f32; 3]))
                    .unwrap();
                (
                    Vec::<f32>::try_from(&t).unwrap(),
                    m.int64_value(&[0]),
                    b.double_value(&[0]),
                    Vec::<f32>::try_from(&all.reshape([-1])).unwrap(),
                )
            })
        };
        let (a, b) = (run(0), run(1));
        for h in [a, b] {
            let (sum, max, bc, all) = h.join().unwrap();
            assert_eq!(sum, vec![3.0, 20.0]);
            assert_eq!(max, 1);
            assert_eq!(bc, 7.0);
            assert_eq!(all, vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        }
    }

    /// A port no one listens on now (the OS picks it).
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}
