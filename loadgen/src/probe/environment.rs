//! The environment a run ran in, recorded once so that a result can be reproduced and compared:
//! kernel, CPU, the TCP sysctls that decide where TIME_WAITs go and how many fit, the descriptor
//! limit, and the git revision of the working directory. What the scenario and server command
//! were is recorded by `run`, not here.
//!
//! `/proc/cpuinfo` is read with the `procfs` crate; the TCP sysctls are read here, since
//! procfs reads only the `kernel`, `vm` and `fs` ones.

use std::process::{Command, Stdio};

use procfs::{CpuInfo, Current as _};
use rustix::process::{getrlimit, Resource};

use super::read_text;

/// What the run ran on: the result model's type, filled in here.
pub use reports::model::Environment;

/// The first CPU's `model name`.
pub fn cpu_model(cpuinfo: &CpuInfo) -> Option<String> {
    cpuinfo.model_name(0).map(|name| name.trim().to_string())
}

/// Whitespace-separated integers of a sysctl's text (pure).
pub fn parse_sysctl_numbers(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace().map(|w| w.parse().ok()).collect()
}

fn sysctl(name: &str) -> Option<Vec<u64>> {
    // Files under /proc/sys/net are per network namespace: these are the calling thread's.
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    parse_sysctl_numbers(&read_text(path).ok()?)
}

fn sysctl_one(name: &str) -> Option<u64> {
    sysctl(name).and_then(|v| v.first().copied())
}

fn sysctl_three(name: &str) -> Option<[u64; 3]> {
    sysctl(name).and_then(|v| v.try_into().ok())
}

/// The kernel's release and the machine's architecture.
fn uname() -> (String, String) {
    let names = rustix::system::uname();
    let text = |name: &std::ffi::CStr| name.to_string_lossy().into_owned();
    (text(names.release()), text(names.machine()))
}

/// The soft and hard limits of open descriptors; `RLIM_INFINITY` (`u64::MAX`) for none.
fn nofile_limits() -> (Option<u64>, Option<u64>) {
    let limit = getrlimit(Resource::Nofile);
    (
        Some(limit.current.unwrap_or(u64::MAX)),
        Some(limit.maximum.unwrap_or(u64::MAX)),
    )
}

fn cpus_allowed() -> u64 {
    std::thread::available_parallelism().map_or(0, |n| n.get() as u64)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Reads the environment now (a few file reads and, if git exists, two short git commands).
pub fn read_environment() -> Environment {
    let (kernel_release, machine) = uname();
    let (nofile_soft_limit, nofile_hard_limit) = nofile_limits();
    // /proc/cpuinfo lists the online CPUs, as `sysconf(_SC_NPROCESSORS_ONLN)` counts them.
    let cpuinfo = CpuInfo::current().ok();
    let git_revision = git(&["rev-parse", "HEAD"]).filter(|r| !r.is_empty());
    let git_dirty = git_revision
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    Environment {
        kernel_release,
        machine,
        cpu_model: cpuinfo.as_ref().and_then(cpu_model),
        cpu_count: cpuinfo.as_ref().map_or(0, |c| c.num_cores() as u64),
        cpus_allowed: cpus_allowed(),
        page_size_bytes: super::page_size_bytes(),
        ip_local_port_range: sysctl("net.ipv4.ip_local_port_range").and_then(|v| match v[..] {
            [lo, hi] => Some((u16::try_from(lo).ok()?, u16::try_from(hi).ok()?)),
            _ => None,
        }),
        tcp_tw_reuse: sysctl_one("net.ipv4.tcp_tw_reuse"),
        tcp_max_tw_buckets: sysctl_one("net.ipv4.tcp_max_tw_buckets"),
        somaxconn: sysctl_one("net.core.somaxconn"),
        tcp_rmem_bytes: sysctl_three("net.ipv4.tcp_rmem"),
        tcp_wmem_bytes: sysctl_three("net.ipv4.tcp_wmem"),
        tcp_fin_timeout_s: sysctl_one("net.ipv4.tcp_fin_timeout"),
        nofile_soft_limit,
        nofile_hard_limit,
        git_revision,
        git_dirty,
    }
}

#[cfg(test)]
mod tests {
    use procfs::FromRead as _;

    use super::*;

    const CPUINFO: &str = include_str!("../../tests/fixtures/probe/cpuinfo.txt");

    #[test]
    fn parses_cpu_model_and_sysctls() {
        // Copied from this machine: "model name\t: AMD EPYC".
        let cpuinfo = CpuInfo::from_read(CPUINFO.as_bytes()).unwrap();
        assert_eq!(cpu_model(&cpuinfo).as_deref(), Some("AMD EPYC"));
        assert_eq!(cpuinfo.num_cores(), 2);
        let nameless = CpuInfo::from_read("processor\t: 0\n".as_bytes()).unwrap();
        assert_eq!(cpu_model(&nameless), None);
        assert_eq!(
            parse_sysctl_numbers("32768\t60999\n"),
            Some(vec![32768, 60999])
        );
        assert_eq!(
            parse_sysctl_numbers("4096\t131072\t6291456\n")
                .unwrap()
                .len(),
            3
        );
        assert_eq!(parse_sysctl_numbers("cubic\n"), None);
    }

    #[test]
    fn reads_this_machine() {
        let e = read_environment();
        assert!(!e.kernel_release.is_empty());
        assert_eq!(e.machine, std::env::consts::ARCH);
        assert!(e.cpu_count >= 1 && e.cpus_allowed >= 1);
        assert!(e.cpus_allowed <= e.cpu_count, "{e:?}");
        assert!(e.page_size_bytes.is_power_of_two() && e.page_size_bytes >= 4096);
        let (lo, hi) = e.ip_local_port_range.unwrap();
        assert!(lo < hi);
        assert!(e.tcp_max_tw_buckets.is_some() && e.somaxconn.is_some());
        let rmem = e.tcp_rmem_bytes.unwrap();
        assert!(rmem[0] <= rmem[1] && rmem[1] <= rmem[2]);
        assert!(e.nofile_soft_limit.unwrap() <= e.nofile_hard_limit.unwrap());
        // Tests run inside the workspace's checkout when git is installed.
        if Command::new("git").arg("--version").output().is_ok() {
            if let Some(rev) = &e.git_revision {
                assert_eq!(rev.len(), 40, "{rev}");
            }
        }
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Environment>(&json).unwrap(), e);
    }
}
