//! The environment a run ran in, recorded once so that a result can be reproduced and compared:
//! kernel, CPU, the TCP sysctls that decide where TIME_WAITs go and how many fit, the descriptor
//! limit, and the git revision the binary was built from (embedded by `build.rs`, so neither
//! the directory it runs in nor git being installed where it runs matters). What the scenario
//! and server command were is recorded by `run`, not here.
//!
//! `/proc/cpuinfo` is read with the `procfs` crate; the TCP sysctls are read here, since
//! procfs reads only the `kernel`, `vm` and `fs` ones.

use procfs::{CpuInfo, Current as _};
use rustix::process::{getrlimit, Resource};

use super::read_text;

/// What the run ran on: the result model's type, filled in here.
pub use reports::model::Environment;

/// The first CPU's `model name`.
pub fn cpu_model(cpuinfo: &CpuInfo) -> Option<String> {
    cpuinfo.model_name(0).map(|name| name.trim().to_string())
}

/// The first CPU's clock as `/proc/cpuinfo` gives it (`cpu MHz`), in MHz; `None` where the
/// kernel does not say (some architectures, some VMs).
pub fn cpu_mhz() -> Option<f64> {
    CpuInfo::current()
        .ok()?
        .get_field(0, "cpu MHz")?
        .trim()
        .parse()
        .ok()
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

/// The git revision this binary was built from and whether its sources had changes not
/// committed then, as `build.rs` found them: `git rev-parse HEAD` of the source tree, and
/// whether the loadgen's, afterburner's and the reports' sources (and the workspace's manifest
/// and lock file) differed from it or had new files. `None` for a build without git or outside
/// a git checkout.
pub fn build_revision() -> (Option<String>, Option<bool>) {
    let revision = env!("LOADGEN_GIT_REVISION");
    let dirty = match env!("LOADGEN_GIT_DIRTY") {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    ((revision != "unknown").then(|| revision.to_string()), dirty)
}

/// Reads the environment now (a few file reads; the git revision is the build's).
pub fn read_environment() -> Environment {
    let (kernel_release, machine) = uname();
    let (nofile_soft_limit, nofile_hard_limit) = nofile_limits();
    // /proc/cpuinfo lists the online CPUs, as `sysconf(_SC_NPROCESSORS_ONLN)` counts them.
    let cpuinfo = CpuInfo::current().ok();
    let (git_revision, git_dirty) = build_revision();
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
        if let Some(rev) = &e.git_revision {
            assert_eq!(rev.len(), 40, "{rev}");
            assert!(rev.bytes().all(|b| b.is_ascii_hexdigit()), "{rev}");
        }
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Environment>(&json).unwrap(), e);
    }
}

#[cfg(test)]
mod revision_tests {
    use std::path::Path;
    use std::process::{Command, Stdio};

    use super::*;

    /// Set in the child process of `the_revision_does_not_depend_on_the_current_directory`.
    const CHILD: &str = "LOADGEN_TEST_REVISION_CHILD";

    /// `git ARGS` in `dir`: its trimmed stdout, `None` if git is missing or fails.
    fn git(dir: &Path, args: &[&str]) -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// HEAD of the workspace these tests were built from, now.
    fn workspace_head() -> Option<String> {
        git(
            Path::new(env!("CARGO_MANIFEST_DIR")),
            &["rev-parse", "HEAD"],
        )
    }

    #[test]
    fn the_revision_is_the_workspaces() {
        let Some(head) = workspace_head() else {
            println!("SKIPPED: git is missing or the workspace is not a git checkout");
            return;
        };
        let recorded = read_environment().git_revision;
        assert!(
            recorded.as_deref().is_some_and(|r| head.starts_with(r)),
            "recorded {recorded:?}, the workspace is at {head}"
        );
        assert!(read_environment().git_dirty.is_some());
    }

    #[test]
    fn the_revision_does_not_depend_on_the_current_directory() {
        if std::env::var_os(CHILD).is_some() {
            // The child: report what it records, wherever it was started.
            println!("git_revision={:?}", read_environment().git_revision);
            return;
        }
        let Some(head) = workspace_head() else {
            println!("SKIPPED: git is missing or the workspace is not a git checkout");
            return;
        };
        // Another repository, with a commit of its own, as the current directory: what git
        // says there is not the binary's revision.
        let other = tempfile::tempdir().unwrap();
        let dir = other.path();
        git(dir, &["init", "-q"]).expect("git init");
        let committed = git(
            dir,
            &[
                "-c",
                "user.name=test",
                "-c",
                "user.email=test@example.invalid",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "another repository",
            ],
        );
        let other_head = committed.and_then(|_| git(dir, &["rev-parse", "HEAD"]));
        assert!(other_head.is_some(), "no commit in {}", dir.display());
        assert_ne!(other_head.as_deref(), Some(head.as_str()));

        let this_test = format!(
            "{}::the_revision_does_not_depend_on_the_current_directory",
            module_path!().split_once("::").expect("crate::path").1
        );
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &this_test, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "the child failed:\n{stdout}");
        // The harness may print the test's name on the same line first.
        let reported = stdout
            .lines()
            .find_map(|line| line.split_once("git_revision=").map(|(_, value)| value));
        let expected = format!("{:?}", read_environment().git_revision);
        assert_eq!(
            reported,
            Some(expected.as_str()),
            "the child ran in {}, whose HEAD is {other_head:?}:\n{stdout}",
            dir.display()
        );
    }
}
