//! What a process tree spends: the server under test and every descendant (servers that fork a
//! process per connection), from `/proc/PID/{stat,status,smaps_rollup,fd}`; and the calling
//! process's own CPU time (`getrusage`), for the generator's self-check.
//!
//! CPU times are cumulative since each process started. Children that exited and were reaped by a
//! parent inside the tree still count: their time is in the parent's `cutime`/`cstime`, reported
//! apart as `reaped_children_cpu_*`, so that a process-per-connection server's CPU is not lost.

use std::collections::HashMap;
use std::fs;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{clock_ticks_per_s, read_text};

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

/// The fields of `/proc/PID/stat` used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatFields {
    /// Parent PID.
    pub ppid: u32,
    /// User time of all live threads, in clock ticks.
    pub utime_ticks: u64,
    /// System time of all live threads, in clock ticks.
    pub stime_ticks: u64,
    /// User time of reaped children, in clock ticks.
    pub cutime_ticks: u64,
    /// System time of reaped children, in clock ticks.
    pub cstime_ticks: u64,
    /// Number of threads.
    pub num_threads: u64,
}

/// The fields of `/proc/PID/status` used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusFields {
    /// `VmRSS` in bytes (0 for kernel threads, which have none).
    pub vm_rss_bytes: u64,
    /// `Threads`.
    pub threads: u64,
    /// `voluntary_ctxt_switches` (of this task only: the kernel does not sum threads here).
    pub voluntary_ctx_switches: u64,
    /// `nonvoluntary_ctxt_switches` (of this task only).
    pub involuntary_ctx_switches: u64,
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
    /// Voluntary context switches.
    pub voluntary_ctx_switches: u64,
    /// Involuntary context switches.
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

/// Parses `/proc/PID/stat`. The command name sits in parentheses and may itself hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<StatFields> {
    let close = text
        .rfind(')')
        .context("stat: no `)` after the command name")?;
    // Fields after the name, numbered as in proc(5) from 3 (state) on.
    let f: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let num = |n: usize| -> Result<u64> {
        let s = f
            .get(n - 3)
            .with_context(|| format!("stat: no field {n}"))?;
        s.parse::<i64>()
            .map(|v| v.max(0) as u64)
            .with_context(|| format!("stat: field {n} = `{s}`"))
    };
    Ok(StatFields {
        ppid: num(4)? as u32,
        utime_ticks: num(14)?,
        stime_ticks: num(15)?,
        cutime_ticks: num(16)?,
        cstime_ticks: num(17)?,
        num_threads: num(20)?,
    })
}

/// Parses `/proc/PID/status`.
pub fn parse_status(text: &str) -> Result<StatusFields> {
    let mut out = StatusFields::default();
    let mut saw_threads = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let first = || {
            value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        };
        match key {
            "VmRSS" => out.vm_rss_bytes = first().context("status: VmRSS")? * 1024,
            "Threads" => {
                out.threads = first().context("status: Threads")?;
                saw_threads = true;
            }
            "voluntary_ctxt_switches" => {
                out.voluntary_ctx_switches = first().context("status: voluntary_ctxt_switches")?
            }
            "nonvoluntary_ctxt_switches" => {
                out.involuntary_ctx_switches =
                    first().context("status: nonvoluntary_ctxt_switches")?
            }
            _ => {}
        }
    }
    if !saw_threads {
        bail!("status: no Threads line");
    }
    Ok(out)
}

/// Parses `/proc/PID/smaps_rollup` into the PSS in bytes.
pub fn parse_smaps_rollup(text: &str) -> Result<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .context("smaps_rollup: no Pss line")?;
    let kb: u64 = line["Pss:".len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("smaps_rollup: `{line}`"))?;
    Ok(kb * 1024)
}

fn ticks_to_us(ticks: u64, ticks_per_s: u64) -> u64 {
    ticks * 1_000_000 / ticks_per_s
}

/// Open descriptors of `pid`. Since Linux 6.2 the size of `/proc/PID/fd` is the count, which
/// saves listing 10,000 entries; older kernels report 0 there, and the directory is counted.
fn open_fds(pid: u32) -> Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    let size = fs::metadata(&dir)
        .with_context(|| format!("stat {dir}"))?
        .len();
    if size > 0 {
        return Ok(size);
    }
    Ok(fs::read_dir(&dir)
        .with_context(|| format!("listing {dir}"))?
        .count() as u64)
}

/// Context switches summed over the threads of `pid`; `None` if the task list is unreadable.
fn ctx_switches_all_threads(pid: u32) -> Option<(u64, u64)> {
    let mut sum = (0, 0);
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("status");
        // A thread may exit between listing and reading: skip it.
        if let Ok(s) = read_text(&path).and_then(|t| parse_status(&t)) {
            sum.0 += s.voluntary_ctx_switches;
            sum.1 += s.involuntary_ctx_switches;
        }
    }
    Some(sum)
}

/// Reads one process's figures.
pub fn read_process(pid: u32) -> Result<ProcessFigures> {
    let hz = clock_ticks_per_s();
    let stat = parse_stat(&read_text(format!("/proc/{pid}/stat"))?)
        .with_context(|| format!("/proc/{pid}/stat"))?;
    let status = parse_status(&read_text(format!("/proc/{pid}/status"))?)
        .with_context(|| format!("/proc/{pid}/status"))?;
    let pss_bytes = read_text(format!("/proc/{pid}/smaps_rollup"))
        .and_then(|t| parse_smaps_rollup(&t))
        .ok();
    let mut ctx = (
        status.voluntary_ctx_switches,
        status.involuntary_ctx_switches,
    );
    let main_only = status.threads > MAX_THREADS_FOR_CTX_SWITCHES;
    if status.threads > 1 && !main_only {
        ctx = ctx_switches_all_threads(pid).unwrap_or(ctx);
    }
    Ok(ProcessFigures {
        pid,
        ppid: stat.ppid,
        rss_bytes: status.vm_rss_bytes,
        pss_bytes,
        cpu_user_us: ticks_to_us(stat.utime_ticks, hz),
        cpu_system_us: ticks_to_us(stat.stime_ticks, hz),
        reaped_children_cpu_user_us: ticks_to_us(stat.cutime_ticks, hz),
        reaped_children_cpu_system_us: ticks_to_us(stat.cstime_ticks, hz),
        threads: status.threads,
        open_fds: open_fds(pid).unwrap_or(0),
        voluntary_ctx_switches: ctx.0,
        involuntary_ctx_switches: ctx.1,
        ctx_switches_main_only: main_only,
    })
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

/// PIDs of `root` and all its live descendants, found through every `/proc/*/stat`'s parent
/// (this kernel may lack `/proc/PID/task/TID/children`). Fails if `root` does not exist.
pub fn process_tree_pids(root: u32) -> Result<Vec<u32>> {
    if fs::metadata(format!("/proc/{root}")).is_err() {
        bail!("process {root} does not exist");
    }
    let mut parents = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go while we list: skip what vanished.
        if let Ok(stat) = read_text(format!("/proc/{pid}/stat")).and_then(|t| parse_stat(&t)) {
            parents.push((pid, stat.ppid));
        }
    }
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
pub fn read_process_tree(root: u32) -> Result<ProcessTreeFigures> {
    read_tree_figures(root, &process_tree_pids(root)?)
}

/// Figures of the processes `pids` (from [`process_tree_pids`], root first), found earlier: a
/// sampler rescans `/proc` only now and then, which is the costly part. A process that exited is
/// left out, and so is one whose parent is no longer in the tree (its PID was reused).
pub fn read_tree_figures(root: u32, pids: &[u32]) -> Result<ProcessTreeFigures> {
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
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    CpuTime {
        user_us: us(ru.ru_utime),
        system_us: us(ru.ru_stime),
    }
}

/// CPU time of the calling thread, user + system, in microseconds (`CLOCK_THREAD_CPUTIME_ID`):
/// what a sample cost the sampler.
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    const STAT: &str = include_str!("../../tests/fixtures/probe/stat.txt");
    const STATUS: &str = include_str!("../../tests/fixtures/probe/status.txt");
    const SMAPS_ROLLUP: &str = include_str!("../../tests/fixtures/probe/smaps_rollup.txt");

    #[test]
    fn parses_real_stat() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.ppid, 16100);
        assert_eq!(
            (s.utime_ticks, s.stime_ticks, s.cutime_ticks, s.cstime_ticks),
            (0, 0, 0, 0)
        );
        assert_eq!(s.num_threads, 1);
    }

    #[test]
    fn stat_survives_a_hostile_command_name() {
        // A name may hold spaces and parentheses: "(a) b) c".
        let text = "42 ((a) b) c) S 7 42 42 0 -1 4194304 1 0 0 0 150 25 3 4 20 0 9 0 1 2 3";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            (
                s.ppid,
                s.utime_ticks,
                s.stime_ticks,
                s.cutime_ticks,
                s.cstime_ticks
            ),
            (7, 150, 25, 3, 4)
        );
        assert_eq!(s.num_threads, 9);
        assert!(parse_stat("42 (x) S 7").is_err());
    }

    #[test]
    fn parses_real_status_and_smaps_rollup() {
        let s = parse_status(STATUS).unwrap();
        assert_eq!(s.vm_rss_bytes, 2176 * 1024);
        assert_eq!(s.threads, 1);
        assert_eq!(
            (s.voluntary_ctx_switches, s.involuntary_ctx_switches),
            (0, 11)
        );
        assert_eq!(parse_smaps_rollup(SMAPS_ROLLUP).unwrap(), 617 * 1024);
        // A kernel thread has no VmRSS: zero, not an error.
        let kthread = "Name:\tkworker\nThreads:\t1\nvoluntary_ctxt_switches:\t5\n";
        assert_eq!(parse_status(kthread).unwrap().vm_rss_bytes, 0);
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
            // Both children must have exec'd sleep (a fork not yet exec'd is a copy of sh).
            let execd = pids[1..]
                .iter()
                .filter(|p| read_text(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep"))
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
            // SAFETY: these are the sleep processes this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
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
        assert!(self_cpu().total_us() - all0 >= 30_000);
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
}
