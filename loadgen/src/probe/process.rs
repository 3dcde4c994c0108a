//! What a process tree spends: the server under test and every descendant (servers that fork a
//! process per connection), from `/proc/PID/{stat,status,smaps_rollup,fd}`; and the calling
//! process's own CPU time (`getrusage`), for the generator's self-check.
//!
//! CPU times are cumulative since each process started. Children that exited and were reaped by a
//! parent inside the tree still count: their time is in the parent's `cutime`/`cstime`, reported
//! apart as `reaped_children_cpu_*`, so that a process-per-connection server's CPU is not lost.
//! Their context switches are: `/proc` has no children's share of them, nor an exited thread's
//! (see [`ProcessTreeFigures::voluntary_ctx_switches`]).
//!
//! The files are read and parsed by the `procfs` crate, through one handle on `/proc/PID` per
//! process, so a PID reused between two reads cannot mix two processes' figures. What is ours:
//! which fields make a [`ProcessFigures`], the units, the walk of the tree, and one reader: the
//! context switches of each thread (`/proc/PID/task/TID/status`). procfs parses all sixty-odd
//! fields of a `status` file into a map, about 50 us a file against 16 us for reading the two
//! lines here (measured on a 2-vCPU VM); once per process that is noise, but a
//! thread-per-connection server has up to [`MAX_THREADS_FOR_CTX_SWITCHES`] of them every
//! 250 ms, which would triple the sampler's cost for them.

use std::collections::HashMap;
use std::fs;

use nix::sys::resource::{getrusage, UsageWho};
use procfs::process::{Process, Stat, Status};
use procfs::ProcError;
use serde::{Deserialize, Serialize};

use super::{clock_ticks_per_s, ProbeError};

/// Above this many threads, context switches are read from the main thread only: reading every
/// `/proc/PID/task/TID/status` of a thread-per-connection server would cost the sampler more
/// than the figure is worth.
pub const MAX_THREADS_FOR_CTX_SWITCHES: u64 = 64;

/// CPU time split into user and system, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTime {
    /// Time in user mode.
    pub user_us: u64,
    /// Time in the kernel on the process's behalf.
    pub system_us: u64,
}

impl CpuTime {
    /// User + system.
    pub fn total_us(&self) -> u64 {
        self.user_us + self.system_us
    }
}

/// One process's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// Process ID.
    pub pid: u32,
    /// Parent process ID.
    pub ppid: u32,
    /// Resident set size (`VmRSS`): shared pages counted in full.
    pub rss_bytes: u64,
    /// Proportional set size (`smaps_rollup` `Pss`): shared pages divided among their users, so
    /// that a tree's sum does not count them twice. `None` when unreadable.
    pub pss_bytes: Option<u64>,
    /// User CPU time of its live threads.
    pub cpu_user_us: u64,
    /// System CPU time of its live threads.
    pub cpu_system_us: u64,
    /// User CPU time of children it has reaped.
    pub reaped_children_cpu_user_us: u64,
    /// System CPU time of children it has reaped.
    pub reaped_children_cpu_system_us: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Voluntary context switches (blocking), summed over threads unless `ctx_switches_main_only`.
    pub voluntary_ctx_switches: u64,
    /// Involuntary context switches (preempted), summed like `voluntary_ctx_switches`.
    pub involuntary_ctx_switches: u64,
    /// True when the process had more than [`MAX_THREADS_FOR_CTX_SWITCHES`] threads and the
    /// context switches are its main thread's only.
    pub ctx_switches_main_only: bool,
}

/// A process tree's figures, summed over the root and all its live descendants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTreeFigures {
    /// PID of the tree's root.
    pub root_pid: u32,
    /// Live processes in the tree, the root included.
    pub process_count: u64,
    /// Sum of RSS (shared pages counted once per process).
    pub rss_bytes: u64,
    /// Sum of PSS over the processes whose PSS was readable.
    pub pss_bytes: Option<u64>,
    /// User CPU time of the live processes.
    pub cpu_user_us: u64,
    /// System CPU time of the live processes.
    pub cpu_system_us: u64,
    /// User CPU time of children reaped by processes of the tree.
    pub reaped_children_cpu_user_us: u64,
    /// System CPU time of children reaped by processes of the tree.
    pub reaped_children_cpu_system_us: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Voluntary context switches of the live processes' threads (main threads only where
    /// `ctx_switches_main_only`). Unlike the CPU times there is no reaped children's share:
    /// the kernel keeps an exited thread's switches in its process's totals and a reaped
    /// child's in its parent's children's totals, which only `getrusage` by that process
    /// itself reads; `/proc/PID/status` gives its main thread's own counts. So this sum drops
    /// when a thread or a child exits.
    pub voluntary_ctx_switches: u64,
    /// Involuntary context switches, summed like `voluntary_ctx_switches`.
    pub involuntary_ctx_switches: u64,
    /// True when some process's context switches are its main thread's only.
    pub ctx_switches_main_only: bool,
}

impl ProcessTreeFigures {
    /// All CPU the tree has used: live processes plus reaped children, user plus system.
    pub fn cpu_total_us(&self) -> u64 {
        self.cpu_user_us
            + self.cpu_system_us
            + self.reaped_children_cpu_user_us
            + self.reaped_children_cpu_system_us
    }
}

fn ticks_to_us(ticks: u64, ticks_per_s: u64) -> u64 {
    ticks * 1_000_000 / ticks_per_s
}

/// A failed read of `/proc/PID/FILE`: the process is gone when its directory is.
fn proc_error(pid: u32, file: &str) -> impl FnOnce(ProcError) -> ProbeError + '_ {
    move |error| match error {
        ProcError::NotFound(_) => ProbeError::NoSuchProcess { pid },
        error => ProbeError::Proc {
            path: format!("/proc/{pid}/{file}"),
            error,
        },
    }
}

/// The figures of one process from its `stat` and `status` (pure; `ticks_per_s` converts
/// `stat`'s clock ticks). Context switches are this task's; `pss_bytes` and `open_fds` are
/// left for the caller, who reads them from other files.
pub fn process_figures(pid: u32, stat: &Stat, status: &Status, ticks_per_s: u64) -> ProcessFigures {
    // Reaped children's times are signed in the kernel's format; they are never negative.
    let ticks = |t: i64| t.max(0) as u64;
    ProcessFigures {
        pid,
        ppid: stat.ppid.max(0) as u32,
        // A kernel thread has no VmRSS: zero, not an error.
        rss_bytes: status.vmrss.unwrap_or(0) * 1024,
        pss_bytes: None,
        cpu_user_us: ticks_to_us(stat.utime, ticks_per_s),
        cpu_system_us: ticks_to_us(stat.stime, ticks_per_s),
        reaped_children_cpu_user_us: ticks_to_us(ticks(stat.cutime), ticks_per_s),
        reaped_children_cpu_system_us: ticks_to_us(ticks(stat.cstime), ticks_per_s),
        threads: status.threads,
        open_fds: 0,
        voluntary_ctx_switches: status.voluntary_ctxt_switches.unwrap_or(0),
        involuntary_ctx_switches: status.nonvoluntary_ctxt_switches.unwrap_or(0),
        ctx_switches_main_only: false,
    }
}

/// The PSS in bytes of a `smaps_rollup`: its one mapping's `Pss` (procfs gives it in bytes).
pub fn rollup_pss_bytes(rollup: &procfs::process::SmapsRollup) -> Option<u64> {
    let mapping = rollup.memory_map_rollup.iter().next()?;
    mapping.extension.map.get("Pss").copied()
}

/// The voluntary and involuntary context switches in the text of a task's `status` (pure).
pub fn task_ctx_switches(status: &str) -> Option<(u64, u64)> {
    let (mut voluntary, mut involuntary) = (None, None);
    for line in status.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "voluntary_ctxt_switches" => &mut voluntary,
            "nonvoluntary_ctxt_switches" => &mut involuntary,
            _ => continue,
        };
        *slot = Some(value.trim().parse().ok()?);
    }
    Some((voluntary?, involuntary?))
}

/// Context switches summed over the threads of `pid`; `None` if the task list is unreadable.
fn ctx_switches_all_threads(pid: u32) -> Option<(u64, u64)> {
    let mut sum = (0, 0);
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("status");
        // A thread may exit between listing and reading: skip it.
        let counts = fs::read_to_string(path)
            .ok()
            .and_then(|text| task_ctx_switches(&text));
        if let Some((voluntary, involuntary)) = counts {
            sum.0 += voluntary;
            sum.1 += involuntary;
        }
    }
    Some(sum)
}

/// `total_us`, a process's CPU time to the microsecond (from `schedstat`), split into user
/// and system in the proportion of the tick-counted `user_us` and `system_us` (pure). With no
/// tick counted yet, it is all system time: a server's short bursts are mostly the kernel's
/// socket work. A total below the ticks' (it cannot be, but the two are read apart) keeps the
/// ticks.
pub fn split_precise_cpu(user_us: u64, system_us: u64, total_us: u64) -> (u64, u64) {
    let ticked = user_us + system_us;
    if total_us < ticked {
        return (user_us, system_us);
    }
    if ticked == 0 {
        return (0, total_us);
    }
    let user = (u128::from(total_us) * u128::from(user_us) / u128::from(ticked)) as u64;
    (user, total_us - user)
}

/// Reads one process's figures.
pub fn read_process(pid: u32) -> Result<ProcessFigures, ProbeError> {
    let process = Process::new(pid as i32).map_err(proc_error(pid, ""))?;
    let stat = process.stat().map_err(proc_error(pid, "stat"))?;
    let status = process.status().map_err(proc_error(pid, "status"))?;
    let mut figures = process_figures(pid, &stat, &status, clock_ticks_per_s());
    figures.pss_bytes = process
        .smaps_rollup()
        .ok()
        .and_then(|rollup| rollup_pss_bytes(&rollup));
    // procfs takes the size of /proc/PID/fd as the count where the kernel gives it (Linux
    // 6.2+), which saves listing 10,000 entries, and lists the directory elsewhere.
    figures.open_fds = process.fd_count().map_or(0, |n| n as u64);
    if status.threads == 1 {
        // `stat` gives the CPU in whole clock ticks (10 ms), rounded down per process: a
        // pre-forked pool of 256 workers with a few ms each would read as nothing. The one
        // thread's `schedstat` has it in nanoseconds.
        if let Ok(schedstat) = process.schedstat() {
            (figures.cpu_user_us, figures.cpu_system_us) = split_precise_cpu(
                figures.cpu_user_us,
                figures.cpu_system_us,
                schedstat.sum_exec_runtime / 1000,
            );
        }
    }
    figures.ctx_switches_main_only = status.threads > MAX_THREADS_FOR_CTX_SWITCHES;
    if status.threads > 1 && !figures.ctx_switches_main_only {
        if let Some((voluntary, involuntary)) = ctx_switches_all_threads(pid) {
            figures.voluntary_ctx_switches = voluntary;
            figures.involuntary_ctx_switches = involuntary;
        }
    }
    Ok(figures)
}

/// Descendants of `root` from (pid, ppid) pairs, root first, breadth-first (pure).
pub fn tree_from_parents(root: u32, parents: &[(u32, u32)]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid) in parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied().filter(|k| *k != root));
        }
        i += 1;
    }
    out
}

/// PIDs of `root` and all its live descendants, found through every process's parent in
/// `/proc` (this kernel may lack `/proc/PID/task/TID/children`). Fails if `root` does not
/// exist.
pub fn process_tree_pids(root: u32) -> Result<Vec<u32>, ProbeError> {
    Process::new(root as i32).map_err(proc_error(root, ""))?;
    let processes = procfs::process::all_processes().map_err(|error| ProbeError::Proc {
        path: "/proc".into(),
        error,
    })?;
    // Processes come and go while we list: skip what vanished.
    let parents: Vec<(u32, u32)> = processes
        .flatten()
        .filter_map(|process| process.stat().ok())
        .map(|stat| (stat.pid as u32, stat.ppid as u32))
        .collect();
    Ok(tree_from_parents(root, &parents))
}

/// Sums per-process figures into tree figures (pure).
pub fn sum_tree(root_pid: u32, processes: &[ProcessFigures]) -> ProcessTreeFigures {
    let mut t = ProcessTreeFigures {
        root_pid,
        ..Default::default()
    };
    for p in processes {
        t.process_count += 1;
        t.rss_bytes += p.rss_bytes;
        if let Some(pss) = p.pss_bytes {
            t.pss_bytes = Some(t.pss_bytes.unwrap_or(0) + pss);
        }
        t.cpu_user_us += p.cpu_user_us;
        t.cpu_system_us += p.cpu_system_us;
        t.reaped_children_cpu_user_us += p.reaped_children_cpu_user_us;
        t.reaped_children_cpu_system_us += p.reaped_children_cpu_system_us;
        t.threads += p.threads;
        t.open_fds += p.open_fds;
        t.voluntary_ctx_switches += p.voluntary_ctx_switches;
        t.involuntary_ctx_switches += p.involuntary_ctx_switches;
        t.ctx_switches_main_only |= p.ctx_switches_main_only;
    }
    t
}

/// Figures of `root` and all its live descendants. Fails if `root` itself cannot be read;
/// descendants that exit while being read are left out.
pub fn read_process_tree(root: u32) -> Result<ProcessTreeFigures, ProbeError> {
    read_tree_figures(root, &process_tree_pids(root)?)
}

/// Figures of the processes `pids` (from [`process_tree_pids`], root first), found earlier: a
/// sampler rescans `/proc` only now and then, which is the costly part. A process that exited is
/// left out, and so is one whose parent is no longer in the tree (its PID was reused).
pub fn read_tree_figures(root: u32, pids: &[u32]) -> Result<ProcessTreeFigures, ProbeError> {
    let mut figures = Vec::with_capacity(pids.len().max(1));
    figures.push(read_process(root)?);
    for &pid in pids.iter().filter(|&&p| p != root) {
        if let Ok(p) = read_process(pid) {
            if pids.contains(&p.ppid) {
                figures.push(p);
            }
        }
    }
    Ok(sum_tree(root, &figures))
}

/// The calling process's CPU time, all threads (`getrusage(RUSAGE_SELF)`): the generator's own.
pub fn self_cpu() -> CpuTime {
    // RUSAGE_SELF is always a valid request; a failure could only be EFAULT, which the safe
    // wrapper rules out.
    let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) else {
        return CpuTime::default();
    };
    let us = |tv: nix::sys::time::TimeVal| tv.tv_sec() as u64 * 1_000_000 + tv.tv_usec() as u64;
    CpuTime {
        user_us: us(usage.user_time()),
        system_us: us(usage.system_time()),
    }
}

/// CPU time of the calling thread, user + system, in microseconds (`CLOCK_THREAD_CPUTIME_ID`):
/// what a sample cost the sampler.
pub fn thread_cpu_us() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use procfs::process::SmapsRollup;
    use procfs::FromRead as _;

    use super::*;
    use crate::probe::read_text;

    const STAT: &str = include_str!("../../tests/fixtures/probe/stat.txt");
    const STATUS: &str = include_str!("../../tests/fixtures/probe/status.txt");
    const SMAPS_ROLLUP: &str = include_str!("../../tests/fixtures/probe/smaps_rollup.txt");

    fn stat(text: &str) -> Stat {
        Stat::from_read(text.as_bytes()).unwrap()
    }

    fn status(text: &str) -> Status {
        Status::from_read(text.as_bytes()).unwrap()
    }

    #[test]
    fn figures_come_from_real_stat_status_and_smaps_rollup() {
        let p = process_figures(16107, &stat(STAT), &status(STATUS), 100);
        assert_eq!((p.pid, p.ppid), (16107, 16100));
        assert_eq!(
            (
                p.cpu_user_us,
                p.cpu_system_us,
                p.reaped_children_cpu_user_us,
                p.reaped_children_cpu_system_us
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(p.rss_bytes, 2176 * 1024);
        assert_eq!(p.threads, 1);
        assert_eq!(
            (p.voluntary_ctx_switches, p.involuntary_ctx_switches),
            (0, 11)
        );
        // A thread's status has the process's format; procfs and the lean reader agree on it.
        assert_eq!(task_ctx_switches(STATUS), Some((0, 11)));
        assert_eq!(
            task_ctx_switches("Name:\tx\nvoluntary_ctxt_switches:\t3\n"),
            None
        );
        let rollup = SmapsRollup::from_read(SMAPS_ROLLUP.as_bytes()).unwrap();
        assert_eq!(rollup_pss_bytes(&rollup), Some(617 * 1024));
        // A kernel thread has no VmRSS: zero, not an error.
        let kthread: String = STATUS
            .lines()
            .filter(|line| !line.starts_with("Vm"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(
            process_figures(2, &stat(STAT), &status(&kthread), 100).rss_bytes,
            0
        );
    }

    #[test]
    fn times_survive_a_hostile_command_name() {
        // A name may hold spaces and parentheses: "(a) b) c". Fields 3 to 24 here, the rest
        // from the fixture.
        let rest: Vec<&str> = STAT
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let text = format!(
            "42 ((a) b) c) S 7 42 42 0 -1 4194304 1 0 0 0 150 25 3 4 20 0 9 0 1 2 3 {}",
            rest[22..].join(" ")
        );
        let p = process_figures(42, &stat(&text), &status(STATUS), 100);
        assert_eq!(
            (
                p.ppid,
                p.cpu_user_us,
                p.cpu_system_us,
                p.reaped_children_cpu_user_us,
                p.reaped_children_cpu_system_us
            ),
            (7, 1_500_000, 250_000, 30_000, 40_000)
        );
        assert!(Stat::from_read("42 (x) S 7".as_bytes()).is_err());
    }

    #[test]
    fn tree_from_parents_walks_all_generations() {
        let parents = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 10),
            (13, 12),
            (20, 1),
            (21, 99),
        ];
        assert_eq!(tree_from_parents(10, &parents), vec![10, 11, 12, 13]);
        assert_eq!(tree_from_parents(13, &parents), vec![13]);
    }

    #[test]
    fn tree_sums_context_switches_and_says_when_only_main_threads_counted() {
        let process = |pid, voluntary, involuntary, main_only| ProcessFigures {
            pid,
            voluntary_ctx_switches: voluntary,
            involuntary_ctx_switches: involuntary,
            ctx_switches_main_only: main_only,
            ..ProcessFigures::default()
        };
        let all_threads = [process(10, 100, 7, false), process(11, 20, 3, false)];
        let t = sum_tree(10, &all_threads);
        assert_eq!(
            (
                t.voluntary_ctx_switches,
                t.involuntary_ctx_switches,
                t.ctx_switches_main_only
            ),
            (120, 10, false)
        );
        let one_crowded = [process(10, 100, 7, true), process(11, 20, 3, false)];
        assert!(sum_tree(10, &one_crowded).ctx_switches_main_only);
    }

    #[test]
    fn ticks_become_microseconds() {
        assert_eq!(ticks_to_us(150, 100), 1_500_000);
        assert_eq!(ticks_to_us(3, 250), 12_000);
    }

    #[test]
    fn tree_includes_forked_children() {
        // sh stays (it waits), and has two sleeping children: a tree of exactly 3 processes.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let root = sh.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        let pids = loop {
            let pids = process_tree_pids(root).unwrap();
            // Both children must have exec'd sleep (a fork not yet exec'd is a copy of sh), and
            // be asleep in it: blocked, so each has switched out voluntarily.
            let asleep = |p: &u32| {
                Process::new(*p as i32)
                    .and_then(|p| p.stat())
                    .is_ok_and(|stat| stat.state == 'S')
            };
            let execd = pids[1..]
                .iter()
                .filter(|p| read_text(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep"))
                .filter(|p| asleep(p))
                .count();
            if (pids.len() == 3 && execd == 2) || Instant::now() > deadline {
                break pids;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let tree = read_process_tree(root).unwrap();
        let own = read_process(root).unwrap();
        let kids: Vec<ProcessFigures> = pids[1..]
            .iter()
            .map(|&p| read_process(p).unwrap())
            .collect();
        for &pid in &pids[1..] {
            // The sleep processes this test started.
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        }
        sh.wait().unwrap();

        assert_eq!(pids.len(), 3, "{pids:?}");
        assert_eq!(tree.process_count, 3);
        assert!(kids.iter().all(|k| k.ppid == root && k.rss_bytes > 0));
        // RSS moves between reads by a page or two; the children's share must be there.
        let kids_rss: u64 = kids.iter().map(|k| k.rss_bytes).sum();
        assert!(
            tree.rss_bytes >= own.rss_bytes + kids_rss / 2,
            "{tree:?} {own:?} {kids:?}"
        );
        assert!(tree.rss_bytes > own.rss_bytes);
        assert!(tree.pss_bytes.unwrap() > own.pss_bytes.unwrap());
        assert!(tree.threads >= 3);
        assert!(tree.open_fds >= own.open_fds);
        // Each child blocked in its sleep (a voluntary switch at least); the tree has theirs.
        assert!(
            kids.iter().all(|k| k.voluntary_ctx_switches > 0),
            "{kids:?}"
        );
        assert!(tree.voluntary_ctx_switches > own.voluntary_ctx_switches);
        assert!(!tree.ctx_switches_main_only);
    }

    #[test]
    fn read_process_counts_fds_and_threads() {
        // A sleeping child holds a fixed set of descriptors: its stdio, two more opened by the
        // shell, and whatever the test harness let it inherit. Counting must agree with a listing
        // of /proc/PID/fd, and see the two extra ones.
        let spawn = |extra: &str| {
            Command::new("sh")
                .args(["-c", &format!("{extra} exec sleep 30")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let read_when_sleeping = |pid: u32| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                // The kernel renames the process before it closes the close-on-exec descriptors
                // of an exec: wait for the name, then for the same listing twice.
                let comm = read_text(format!("/proc/{pid}/comm")).unwrap();
                let list = || fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
                if comm.trim() == "sleep" || Instant::now() > deadline {
                    let mut listed = list();
                    loop {
                        std::thread::sleep(Duration::from_millis(20));
                        let (p, again) = (read_process(pid).unwrap(), list());
                        if again == listed || Instant::now() > deadline {
                            return (p, again);
                        }
                        listed = again;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let mut plain = spawn("");
        let mut more = spawn("exec 7</dev/null 8</dev/null;");
        let (p, p_listed) = read_when_sleeping(plain.id());
        let (m, m_listed) = read_when_sleeping(more.id());
        for c in [&mut plain, &mut more] {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        assert_eq!(p.ppid, std::process::id());
        assert_eq!(p.threads, 1, "{p:?}");
        assert!(
            p.open_fds >= 3 && p.rss_bytes > 0 && p.pss_bytes.unwrap() > 0,
            "{p:?}"
        );
        assert_eq!((p.open_fds, m.open_fds), (p_listed, m_listed));
        assert_eq!(m.open_fds, p.open_fds + 2);
    }

    #[test]
    fn own_cpu_time_moves_with_work() {
        // Spin until this thread has used 30 ms of CPU (bounded by wall time on a busy machine);
        // the process's total must have moved at least as much.
        let t0 = thread_cpu_us();
        let all0 = self_cpu().total_us();
        let deadline = Instant::now() + Duration::from_secs(5);
        while thread_cpu_us() - t0 < 30_000 && Instant::now() < deadline {
            std::hint::black_box(0u64);
        }
        assert!(thread_cpu_us() - t0 >= 30_000);
        // getrusage scales its user/system split to the precise runtime and rounds each part
        // down, so the total may trail the thread clock by a few microseconds (seen: 29,989).
        let moved = self_cpu().total_us() - all0;
        assert!(moved >= 29_900, "the process total moved {moved} µs");
    }

    #[test]
    fn known_pids_are_read_again_but_strangers_are_left_out() {
        let me = std::process::id();
        // PID 1 is not our child: a reused PID looks like this, and must not count.
        let t = read_tree_figures(me, &[me, 1]).unwrap();
        assert_eq!(t.process_count, 1);
        assert_eq!(t.root_pid, me);
    }

    #[test]
    fn missing_process_is_an_error() {
        // PID max is at most 2^22: this one cannot exist.
        assert!(process_tree_pids(4_194_305).is_err());
        assert!(read_process_tree(4_194_305).is_err());
    }

    #[test]
    fn precise_cpu_keeps_the_ticks_proportion_and_never_loses_time() {
        assert_eq!(split_precise_cpu(10_000, 30_000, 44_000), (11_000, 33_000));
        // Nothing ticked yet: a few ms of a pre-forked worker, all counted.
        assert_eq!(split_precise_cpu(0, 0, 3_456), (0, 3_456));
        // Read apart, the precise total may trail the ticks: the ticks stay.
        assert_eq!(split_precise_cpu(10_000, 0, 9_990), (10_000, 0));
    }
}
