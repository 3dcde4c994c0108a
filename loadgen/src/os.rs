//! What the loadgen asks of the operating system about itself, in one place and with one error
//! policy: which CPUs it may use and how they are shared between the server under test and the
//! generator, pinning a thread or a process to CPUs, and whether it runs as root.
//!
//! The policy: a CPU the loadgen was not allowed to use, or a pinning the kernel refused, is an
//! [`AffinityError`] that names the CPU, and the caller passes it up. A run pinned somewhere
//! other than where its result says is not a measurement; nothing here ignores a failure.
//!
//! Not here: network namespaces (`netns`), file descriptors limits (`probe::environment`).

use rustix::thread::CpuSet;

/// A CPU request the kernel would not grant.
#[derive(Debug, thiserror::Error)]
pub enum AffinityError {
    /// The CPU is outside the set this process may run on (its affinity mask, cgroup cpuset).
    #[error("cpu {cpu} is not one this machine lets the loadgen use (allowed: {allowed:?})")]
    NotAllowed {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs this process may use, ascending ([`allowed_cpus`]).
        allowed: Vec<usize>,
    },
    /// `sched_setaffinity(2)` or `sched_getaffinity(2)` failed.
    #[error("pinning to CPUs {cpus:?}: {error}")]
    Kernel {
        /// The CPUs asked for.
        cpus: Vec<usize>,
        /// The kernel's answer.
        error: std::io::Error,
    },
}

/// Who runs where: the server under test on one CPU, the generator's threads on the others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuPlan {
    /// The server's CPU; `None` with a single CPU (nobody is pinned then).
    pub server: Option<usize>,
    /// The generator's CPUs (workers, the sampler, the main thread); empty: not pinned.
    pub generator: Vec<usize>,
}

impl CpuPlan {
    /// The last allowed CPU for the server, the others for the generator; with one CPU nobody
    /// is pinned. `allowed` in ascending order, as [`allowed_cpus`] gives it.
    pub fn split(allowed: &[usize]) -> CpuPlan {
        match allowed {
            [] | [_] => CpuPlan {
                server: None,
                generator: Vec::new(),
            },
            [generator @ .., server] => CpuPlan {
                server: Some(*server),
                generator: generator.to_vec(),
            },
        }
    }
}

/// The CPUs this process may run on, ascending (its affinity mask, which a cgroup cpuset or
/// `taskset` narrows). Falls back to `0..available_parallelism` if the mask cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// [`CpuPlan::split`] of this process's allowed CPUs.
pub fn cpu_plan() -> CpuPlan {
    CpuPlan::split(&allowed_cpus())
}

/// Fails unless this process may run on `cpu`, so that a wrong CPU in a scenario is reported
/// by number rather than as the bare `EINVAL` of a failed pinning.
pub fn check_cpu(cpu: usize) -> Result<(), AffinityError> {
    let allowed = allowed_cpus();
    if allowed.contains(&cpu) {
        Ok(())
    } else {
        Err(AffinityError::NotAllowed { cpu, allowed })
    }
}

/// Pins the calling thread (and the threads it starts afterwards) to `cpus`; an empty list
/// leaves it where it is.
pub fn pin_current_thread(cpus: &[usize]) -> Result<(), AffinityError> {
    if cpus.is_empty() {
        return Ok(());
    }
    let mut set = CpuSet::new();
    for &cpu in cpus {
        if cpu >= CpuSet::MAX_CPU {
            return Err(AffinityError::NotAllowed {
                cpu,
                allowed: allowed_cpus(),
            });
        }
        set.set(cpu);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| AffinityError::Kernel {
        cpus: cpus.to_vec(),
        error: e.into(),
    })
}

/// The calling thread's CPU affinity, put back when dropped: a run pins the thread that calls
/// it to the generator's CPUs, and the next run (of `loadgen compare`, say) must find every CPU
/// the process had, or its server would share the generator's.
#[derive(Debug)]
pub struct AffinityRestore {
    saved: Option<CpuSet>,
}

impl AffinityRestore {
    /// Saves the calling thread's affinity (nothing to restore if it cannot be read).
    pub fn save() -> AffinityRestore {
        AffinityRestore {
            saved: rustix::thread::sched_getaffinity(None).ok(),
        }
    }
}

impl Drop for AffinityRestore {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // Best effort: the mask was this thread's a moment ago.
            let _ = rustix::thread::sched_setaffinity(None, saved);
        }
    }
}

/// Pins the calling process. Safe between `fork` and `exec` (`pre_exec`): it allocates nothing
/// and returns the bare errno, since an error there cannot carry more.
pub fn pin_this_process_raw(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    if cpu >= CpuSet::MAX_CPU {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(Into::into)
}

/// Whether the loadgen runs as root (effective UID 0): network namespaces, netem, TUN devices
/// and `/proc/slabinfo` need it.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_gets_the_last_cpu_and_the_generator_the_rest() {
        assert_eq!(
            CpuPlan::split(&[0, 1]),
            CpuPlan {
                server: Some(1),
                generator: vec![0]
            }
        );
        // A cpuset that is not 0..n: the plan uses the CPUs given, not their count.
        assert_eq!(
            CpuPlan::split(&[2, 5, 7]),
            CpuPlan {
                server: Some(7),
                generator: vec![2, 5]
            }
        );
        assert_eq!(
            CpuPlan::split(&[3]),
            CpuPlan {
                server: None,
                generator: vec![]
            }
        );
    }

    #[test]
    fn a_cpu_outside_the_allowed_set_is_named() {
        let error = check_cpu(CpuSet::MAX_CPU + 5).unwrap_err().to_string();
        assert!(
            error.contains(&format!("cpu {}", CpuSet::MAX_CPU + 5)),
            "{error}"
        );
        let first = allowed_cpus()[0];
        check_cpu(first).unwrap();
        pin_current_thread(&[]).unwrap();
    }
}
