//! The load engine: W worker threads, each one readiness loop owning its connections, run one
//! load point; this module splits the populations among them (`share`), gathers their interval
//! reports into one timeline as the run goes (`timeline`), and merges their recorders at the end.
//!
//! | room | what |
//! |---|---|
//! | `worker` | the loop (the engine's only mio user) and what its drivers share |
//! | `drivers/` | one driver per population kind: closed, open, slow line |
//! | `client/` | one connection's states; request encoding and response framing (pure) |
//! | `timers` | every wake-up of a worker in one structure |
//! | `pacing`, `modem` | arrival schedules and think times; the slow-line model (pure) |
//! | `source`, `precise_timer` | source addresses and the connect; the timerfd |
//! | `workload` | what is requested and what its reply must be |

pub mod client;
pub mod drivers;
pub mod modem;
pub mod pacing;
pub mod precise_timer;
pub mod share;
pub mod source;
pub mod streams;
pub mod timeline;
pub mod timers;
pub mod viewing;
pub mod worker;
pub mod workload;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reports::model::Timeline;

use crate::record::{IntervalReport, PopulationRecorder};
use crate::scenario::Population;
use modem::RttMode;
use share::{split_shares, ShardSpec};
use timeline::TimelineBuilder;
use worker::{run_worker, WorkerPlan};
use workload::Workload;

/// One load point to run.
pub struct PointPlan<'a> {
    /// When the warm-up begins: the zero of the timeline (a moment in the near future, so every
    /// worker and the sampler start on the same axis).
    pub start: Instant,
    /// The server's address.
    pub target: SocketAddr,
    /// The `Host` header's value.
    pub host_header: String,
    /// The populations, in the scenario's order (the variant's share of them).
    pub populations: &'a [Population],
    /// Share of the full load: clients and rates are scaled by it (sweeps).
    pub load_fraction: f64,
    /// Which generator shard this is ([`ShardSpec::WHOLE`]: the whole run).
    pub shard: ShardSpec,
    /// Worker threads, each one readiness loop.
    pub workers: usize,
    /// CPUs for the workers, assigned round-robin; empty: not pinned.
    pub cpus: Vec<usize>,
    /// Load before the measured window, not recorded.
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Length of a timeline interval (1 s).
    pub interval: Duration,
    /// Request timeout of closed and open populations (slow lines have their own).
    pub request_timeout: Duration,
    /// Seed of the point's random draws.
    pub seed: u64,
    /// What is requested.
    pub workload: &'a Workload,
    /// Source addresses of the connections (empty: the kernel chooses).
    pub sources: Vec<IpAddr>,
    /// Per population, its own source addresses (slow lines on the delayed path); an empty
    /// list, or a missing entry: `sources`.
    pub population_sources: Vec<Vec<IpAddr>>,
    /// How slow-line populations get their round-trip time.
    pub rtt_mode: RttMode,
}

/// What the monitor sees every quarter second.
pub struct Progress {
    /// Since the start of the warm-up.
    pub elapsed: Duration,
    /// Still before the measured window.
    pub warming_up: bool,
    /// Requests completed in the last finished interval, all populations.
    pub last_interval_ops: u64,
    /// Errors so far, warm-up included.
    pub errors_so_far: u64,
}

/// What a load point measured.
pub struct PointOutcome {
    /// Per population, the workers' recorders merged.
    pub recorders: Vec<PopulationRecorder>,
    /// The point's timeline, interval by interval.
    pub timeline: Timeline,
    /// Seconds measured: the window, or less when the point stopped early.
    pub measured_s: f64,
    /// Why the point ended before its time, if it did.
    pub stopped_early: Option<String>,
}

/// Runs one load point. `monitor` is called about every 250 ms; returning a reason stops the
/// point early (server died, Ctrl-C), and what was measured so far is still returned.
pub fn run_load_point(
    plan: &PointPlan<'_>,
    monitor: &mut dyn FnMut(&Progress) -> Option<String>,
) -> std::io::Result<PointOutcome> {
    let window = Window::of(plan);
    let abort = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<IntervalReport>();
    let worker_plans = worker_plans(plan, &window, &sender, &abort);
    // Workers hold their senders in their plans: the channel never disconnects while they run.
    drop(sender);
    let mut watch = Watch {
        timeline: TimelineBuilder::new(
            plan.workers,
            plan.interval,
            plan.warmup,
            plan.populations
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        ),
        receiver,
        errors_so_far: 0,
        stopped: None,
    };
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = worker_plans
            .iter()
            .map(|worker_plan| {
                std::thread::Builder::new()
                    .name(format!("loadgen-worker-{}", worker_plan.index))
                    .spawn_scoped(scope, || run_worker(worker_plan))
                    .expect("spawning a worker thread")
            })
            .collect();
        watch.until_done(&handles, &window, &abort, monitor);
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread panicked"))
            .collect::<Vec<_>>()
    });
    let mut merged: Vec<PopulationRecorder> = Vec::new();
    for result in results {
        let recorders = result?;
        if merged.is_empty() {
            merged = recorders;
        } else {
            for (mine, theirs) in merged.iter_mut().zip(&recorders) {
                mine.merge(theirs);
            }
        }
    }
    let (stopped_early, stopped_at) = watch.stopped.unzip();
    let measured_end = stopped_at.unwrap_or(window.end).min(window.end);
    Ok(PointOutcome {
        recorders: merged,
        timeline: watch.timeline.finish(),
        measured_s: measured_end
            .saturating_duration_since(window.measure_from)
            .as_secs_f64(),
        stopped_early,
    })
}

/// A load point's three instants.
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Window {
    fn of(plan: &PointPlan<'_>) -> Window {
        let measure_from = plan.start + plan.warmup;
        Window {
            start: plan.start,
            measure_from,
            end: measure_from + plan.duration,
        }
    }
}

/// Each worker's plan: its share of every population, its CPU, and the point's instants.
fn worker_plans<'a>(
    plan: &PointPlan<'a>,
    window: &Window,
    reports: &mpsc::Sender<IntervalReport>,
    abort: &'a AtomicBool,
) -> Vec<WorkerPlan<'a>> {
    let mut shares = split_shares(
        plan.populations,
        plan.load_fraction,
        plan.shard,
        plan.workers,
        plan.request_timeout,
        plan.rtt_mode,
    );
    for worker_shares in &mut shares {
        for (share, sources) in worker_shares.iter_mut().zip(&plan.population_sources) {
            share.sources = sources.clone();
        }
    }
    shares
        .into_iter()
        .enumerate()
        .map(|(index, populations)| WorkerPlan {
            index,
            cpu: (!plan.cpus.is_empty()).then(|| plan.cpus[index % plan.cpus.len()]),
            target: plan.target,
            host_header: plan.host_header.clone(),
            populations,
            sources: plan.sources.clone(),
            start: window.start,
            measure_from: window.measure_from,
            end: window.end,
            interval: plan.interval,
            seed: plan.seed,
            workload: plan.workload,
            reports: reports.clone(),
            abort,
        })
        .collect()
}

/// The main thread while the workers run: it merges their interval reports into the timeline
/// and asks the monitor every quarter second whether to go on.
struct Watch {
    timeline: TimelineBuilder,
    receiver: mpsc::Receiver<IntervalReport>,
    errors_so_far: u64,
    /// Why and when the monitor stopped the point.
    stopped: Option<(String, Instant)>,
}

impl Watch {
    fn until_done<T>(
        &mut self,
        handles: &[std::thread::ScopedJoinHandle<'_, T>],
        window: &Window,
        abort: &AtomicBool,
        monitor: &mut dyn FnMut(&Progress) -> Option<String>,
    ) {
        // Workers hold their senders in their plans, which outlive them: watch the threads,
        // not the channel, to know when the point is over.
        let mut finished = false;
        while !finished {
            finished = handles.iter().all(|h| h.is_finished());
            match self.receiver.recv_timeout(Duration::from_millis(250)) {
                Ok(report) => {
                    self.take(report);
                    while let Ok(report) = self.receiver.try_recv() {
                        self.take(report);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => finished = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let progress = Progress {
                elapsed: now.saturating_duration_since(window.start),
                warming_up: now < window.measure_from,
                last_interval_ops: self.timeline.last_complete_ops(),
                errors_so_far: self.errors_so_far,
            };
            if self.stopped.is_none() {
                if let Some(reason) = monitor(&progress) {
                    self.stopped = Some((reason, now));
                    abort.store(true, Ordering::Relaxed);
                }
            }
        }
        while let Ok(report) = self.receiver.try_recv() {
            self.take(report);
        }
    }

    fn take(&mut self, report: IntervalReport) {
        self.errors_so_far += report.populations.iter().map(|p| p.errors).sum::<u64>();
        self.timeline.add(report);
    }
}
