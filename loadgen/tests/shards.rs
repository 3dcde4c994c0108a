//! A sharded run end to end over loopback, with real processes as the Kubernetes manifests run
//! them: `loadgen serve` and two `loadgen run --shards 2` generators taking their index from
//! JOB_COMPLETION_INDEX, all given one `--start-at`, then `loadgen merge` of their directory.
//! The merged ops are the shards' sum, the server counted exactly the requests the shards sent,
//! and the merged histogram holds every shard's replies. A shard whose server answers only after
//! the agreed start (behind a relay that starts relaying late) is late: the merge exits 3 naming it.
//!
//! Each case is a 1 s warm-up and a 2 s window starting a few seconds ahead; the two cases run
//! in parallel, about 15 s in all. Every process is waited for with a deadline and killed by
//! its PID if it overstays.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use reports::model::RunResult;

/// A small open-loop scenario against the built-in server: light enough for a busy 2-core
/// machine to run two cases at once without the generators setting the pace.
const SCENARIO: &str = r#"
name = "shards"
seed = 16
warmup = "1s"
duration = "2s"
workers = 1
request_timeout = "5s"

[server]
kind = "builtin"

[site]
kind = "specweb96"
dirs = 1

[[clients]]
name = "web"
kind = "open"
rate = 300
arrival = "poisson"
max_in_flight = 100
requests_per_connection = 1
"#;

/// Time every process has to set up before the agreed start (site, server, readiness probe).
const LEAD: Duration = Duration::from_secs(5);
/// The longest any process may take: the lead, one slot (1 + 2 + 5 s) and a generous margin.
const DEADLINE: Duration = Duration::from_secs(40);

/// Processes of one case, killed by their PIDs if the test ends before they do.
struct Processes {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Processes {
    fn new(dir: &Path) -> Processes {
        Processes {
            dir: dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    /// Starts `loadgen ARGS` named `name`, with `env` added to a clean shard environment;
    /// stdout and stderr go to files named after it.
    fn start(&mut self, name: &str, args: &[String], env: &[(&str, &str)]) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
        command.args(args).stdin(Stdio::null());
        for variable in [
            "JOB_COMPLETION_INDEX",
            "SLURM_PROCID",
            "LOADGEN_SHARD_INDEX",
            "LOADGEN_START_AT",
            "LOADGEN_TARGET",
        ] {
            command.env_remove(variable);
        }
        command.envs(env.iter().copied());
        command.stdout(std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap());
        command.stderr(std::fs::File::create(self.dir.join(format!("{name}.err"))).unwrap());
        let child = command.spawn().unwrap();
        self.children.push((name.to_string(), child));
    }

    /// Waits for every process (by `deadline`), and returns each one's exit code by name.
    fn wait_all(&mut self, deadline: Instant) -> Vec<(String, Option<i32>)> {
        let mut codes = Vec::new();
        for (name, child) in &mut self.children {
            let status = wait_until(child, deadline)
                .unwrap_or_else(|| panic!("{name} still running at the deadline"));
            codes.push((name.clone(), status.code()));
        }
        self.children.clear();
        codes
    }

    /// What process `name` printed, stdout then stderr.
    fn output(&self, name: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.dir.join(format!("{name}.{ext}"))).unwrap_or_default()
        };
        format!("{}{}", read("out"), read("err"))
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for `child` until `deadline`; `None` (after killing it by its PID) if it overstays.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `--start-at` as Unix seconds with milliseconds, and the time itself.
fn start_at() -> (String, SystemTime) {
    let at = SystemTime::now() + LEAD;
    let unix = at.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    (
        format!("{}.{:03}", unix.as_secs(), unix.subsec_millis()),
        at,
    )
}

/// One case's files: the scenario, and the results folder every part shares (as a Kubernetes
/// volume or a Slurm job's shared directory would be).
struct Case {
    tmp: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("shards.toml"), SCENARIO).unwrap();
        Case { tmp }
    }

    fn scenario(&self) -> String {
        self.tmp.path().join("shards.toml").display().to_string()
    }

    fn out(&self) -> String {
        self.tmp.path().join("out").display().to_string()
    }

    fn serve_args(&self, port: u16, start: &str) -> Vec<String> {
        [
            "serve",
            &self.scenario(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--start-at",
            start,
            "--out",
            &self.out(),
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    }

    fn shard_args(&self, port: u16, start: &str) -> Vec<String> {
        [
            "run",
            &self.scenario(),
            "--shards",
            "2",
            "--start-at",
            start,
            "--target",
            &format!("http://127.0.0.1:{port}/"),
            "--out",
            &self.out(),
            "--quiet",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The run's directory, `OUT/shards/<start>/`, which holds the parts.
    fn run_dir(&self) -> PathBuf {
        let scenario = self.tmp.path().join("out/shards");
        let runs: Vec<PathBuf> = std::fs::read_dir(&scenario)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].clone()
    }
}

fn part(run_dir: &Path, name: &str) -> RunResult {
    RunResult::read(&run_dir.join(name).join("result.json")).unwrap()
}

#[test]
fn two_shards_and_the_server_merge_into_the_sum_of_their_parts() {
    let case = Case::new();
    let port = free_port();
    let (start, _) = start_at();
    let mut processes = Processes::new(case.tmp.path());
    processes.start("server", &case.serve_args(port, &start), &[]);
    for index in ["0", "1"] {
        let name = format!("shard{index}");
        let args = case.shard_args(port, &start);
        processes.start(&name, &args, &[("JOB_COMPLETION_INDEX", index)]);
    }
    let deadline = Instant::now() + DEADLINE;
    let codes = processes.wait_all(deadline);
    for (name, code) in &codes {
        assert_eq!(*code, Some(0), "{name}: {}", processes.output(name));
    }
    let run_dir = case.run_dir();
    let parts = [
        part(&run_dir, "shard-0-of-2"),
        part(&run_dir, "shard-1-of-2"),
    ];
    let server = part(&run_dir, "server");

    processes.start(
        "merge",
        &["merge".into(), run_dir.display().to_string()],
        &[],
    );
    let codes = processes.wait_all(Instant::now() + Duration::from_secs(20));
    assert_eq!(codes[0].1, Some(0), "{}", processes.output("merge"));
    let printed = processes.output("merge");
    assert!(printed.contains("shards: 3 parts merged"), "{printed}");
    assert!(
        printed.contains(&format!(
            "result: {}",
            run_dir.join("result.json").display()
        )),
        "{printed}"
    );
    let merged = RunResult::read(&run_dir.join("result.json")).unwrap();
    assert!(merged.valid, "{:?}", merged.invalid_reasons);
    assert_eq!(merged.shards.len(), 3);
    let html = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    assert!(html.contains("Shards: 3 parts merged"));

    let point = &merged.load_points[0];
    let population = &point.populations[0];
    let each = |f: fn(&RunResult) -> u64| parts.iter().map(f).sum::<u64>();
    let ops = each(|r| r.load_points[0].totals.ops);
    assert!(ops > 0);
    assert_eq!(point.totals.ops, ops);
    // Each shard's own: about half of the whole, neither empty.
    assert!(parts.iter().all(|r| r.load_points[0].totals.ops > 0));
    let sent = each(|r| r.load_points[0].populations[0].requests_sent);
    assert_eq!(population.requests_sent, sent);
    let counted = server.load_points[0].server_stats.as_ref().unwrap()["requests_total"]
        .as_u64()
        .unwrap();
    assert_eq!(counted, sent, "the server's count against the shards'");
    let histogram_counts = each(|r| r.load_points[0].populations[0].latency.total_us.count);
    assert_eq!(population.latency.total_us.count, histogram_counts);
    assert_eq!(
        population.latency.total_us.decode().unwrap().len(),
        histogram_counts
    );
    // The server's probes come once, from its own part.
    let kernel = point.kernel.as_ref().unwrap();
    let served = server.load_points[0].kernel.as_ref().unwrap();
    assert_eq!(
        kernel.summary.peak_time_wait_server_side,
        served.summary.peak_time_wait_server_side
    );
    assert!(kernel.summary.server_cpu_us_per_op.is_some());
}

/// Relays connections from `listener` to `target`, accepting only from `open_at` on and for
/// `open_for`: a server that does not answer yet when its shard asks. The listener is bound by
/// the caller before any shard starts (a port merely found free could be taken meanwhile as
/// the source port of some client's connection); connections wait in its backlog until then.
fn late_relay(listener: TcpListener, target: SocketAddr, open_at: SystemTime, open_for: Duration) {
    thread::spawn(move || {
        if let Ok(wait) = open_at.duration_since(SystemTime::now()) {
            thread::sleep(wait);
        }
        listener.set_nonblocking(true).unwrap();
        let until = Instant::now() + open_for;
        while Instant::now() < until {
            match listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false).unwrap();
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    for (from, to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        thread::spawn(move || relay(from, to));
                    }
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    });
}

/// Copies `from` into `to` until either closes or 10 s pass without a byte.
fn relay(mut from: TcpStream, mut to: TcpStream) {
    use std::io::Write;
    from.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

#[test]
fn a_shard_not_ready_at_the_agreed_start_makes_the_merged_run_invalid_naming_it() {
    let case = Case::new();
    let port = free_port();
    let relay = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_port = relay.local_addr().unwrap().port();
    let (start, at) = start_at();
    let mut processes = Processes::new(case.tmp.path());
    processes.start("server", &case.serve_args(port, &start), &[]);
    processes.start(
        "shard0",
        &case.shard_args(port, &start),
        &[("JOB_COMPLETION_INDEX", "0")],
    );
    // Shard 1's server answers half a second after the agreed start: it is ready too late.
    late_relay(
        relay,
        SocketAddr::from(([127, 0, 0, 1], port)),
        at + Duration::from_millis(500),
        Duration::from_secs(20),
    );
    processes.start(
        "shard1",
        &case.shard_args(relay_port, &start),
        &[("JOB_COMPLETION_INDEX", "1")],
    );
    let codes = processes.wait_all(Instant::now() + DEADLINE);
    let code = |name: &str| codes.iter().find(|(n, _)| n == name).unwrap().1;
    assert_eq!(code("server"), Some(0), "{}", processes.output("server"));
    assert_eq!(code("shard0"), Some(0), "{}", processes.output("shard0"));
    assert_eq!(code("shard1"), Some(3), "{}", processes.output("shard1"));

    let run_dir = case.run_dir();
    processes.start(
        "merge",
        &["merge".into(), run_dir.display().to_string()],
        &[],
    );
    let codes = processes.wait_all(Instant::now() + Duration::from_secs(20));
    let printed = processes.output("merge");
    assert_eq!(codes[0].1, Some(3), "{printed}");
    assert!(
        printed.contains("Invalid measurement: shard 1/2: stopped early: shard 1/2 was not ready"),
        "{printed}"
    );
    let merged = RunResult::read(&run_dir.join("result.json")).unwrap();
    assert!(!merged.valid && merged.partial);
    assert!(
        merged
            .invalid_reasons
            .iter()
            .any(|r| r.contains("lacks the share of shard 1/2")),
        "{:?}",
        merged.invalid_reasons
    );
    let late = merged
        .shards
        .iter()
        .find(|s| s.index == 1 && s.role == "generator");
    assert!(!late.unwrap().valid);
    // What shard 0 measured is kept; the server counted what it sent and the one readiness
    // probe shard 1 sent through the relay during the warm-up before it gave up.
    let point = &merged.load_points[0];
    let shard0 = part(&run_dir, "shard-0-of-2");
    assert_eq!(point.totals.ops, shard0.load_points[0].totals.ops);
    let counted = point.server_stats.as_ref().unwrap()["requests_total"]
        .as_u64()
        .unwrap();
    assert_eq!(counted, point.populations[0].requests_sent + 1);
}
