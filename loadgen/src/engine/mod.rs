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
pub mod timeline;
pub mod timers;
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
use share::split_shares;
use timeline::TimelineBuilder;
use worker::{run_worker, WorkerPlan};
use workload::Workload;

/// One load point to run.
pub struct PointPlan<'a> {
    /// When the warm-up begins: the zero of the timeline (a moment in the near future, so every
    /// worker and the sampler start on the same axis).
    pub start: Instant,
    pub target: SocketAddr,
    pub host_header: String,
    pub populations: &'a [Population],
    /// Share of the full load: clients and rates are scaled by it (sweeps).
    pub load_fraction: f64,
    pub workers: usize,
    /// CPUs for the workers, assigned round-robin; empty: not pinned.
    pub cpus: Vec<usize>,
    pub warmup: Duration,
    pub duration: Duration,
    pub interval: Duration,
    pub request_timeout: Duration,
    pub seed: u64,
    pub workload: &'a Workload,
    pub sources: Vec<IpAddr>,
    /// Per population, its own source addresses (slow lines on the delayed path); an empty
    /// list, or a missing entry: `sources`.
    pub population_sources: Vec<Vec<IpAddr>>,
    /// How slow-line populations get their round-trip time.
    pub rtt_mode: RttMode,
}

/// What the monitor sees every quarter second.
pub struct Progress {
    pub elapsed: Duration,
    pub warming_up: bool,
    /// Requests completed in the last finished interval, all populations.
    pub last_interval_ops: u64,
    pub errors_so_far: u64,
}

pub struct PointOutcome {
    pub recorders: Vec<PopulationRecorder>,
    pub timeline: Timeline,
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
    let start = plan.start;
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let abort = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<IntervalReport>();
    let mut shares = split_shares(
        plan.populations,
        plan.load_fraction,
        plan.workers,
        plan.request_timeout,
        plan.rtt_mode,
    );
    for worker_shares in &mut shares {
        for (share, sources) in worker_shares.iter_mut().zip(&plan.population_sources) {
            share.sources = sources.clone();
        }
    }
    let worker_plans: Vec<WorkerPlan<'_>> = shares
        .into_iter()
        .enumerate()
        .map(|(index, populations)| WorkerPlan {
            index,
            cpu: (!plan.cpus.is_empty()).then(|| plan.cpus[index % plan.cpus.len()]),
            target: plan.target,
            host_header: plan.host_header.clone(),
            populations,
            sources: plan.sources.clone(),
            start,
            measure_from,
            end,
            interval: plan.interval,
            seed: plan.seed,
            workload: plan.workload,
            reports: sender.clone(),
            abort: &abort,
        })
        .collect();
    drop(sender);

    let mut timeline = TimelineBuilder::new(
        plan.workers,
        plan.interval,
        plan.warmup,
        plan.populations
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
    );
    let mut stopped_early = None;
    let mut stopped_at = None;
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
        let mut errors_so_far = 0;
        // Workers hold their senders in their plans, which outlive them: watch the threads,
        // not the channel, to know when the point is over.
        let mut finished = false;
        while !finished {
            finished = handles.iter().all(|h| h.is_finished());
            match receiver.recv_timeout(Duration::from_millis(250)) {
                Ok(report) => {
                    errors_so_far += report.populations.iter().map(|p| p.errors).sum::<u64>();
                    timeline.add(report);
                    while let Ok(report) = receiver.try_recv() {
                        errors_so_far += report.populations.iter().map(|p| p.errors).sum::<u64>();
                        timeline.add(report);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => finished = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let progress = Progress {
                elapsed: now.saturating_duration_since(start),
                warming_up: now < measure_from,
                last_interval_ops: timeline.last_complete_ops(),
                errors_so_far,
            };
            if stopped_early.is_none() {
                if let Some(reason) = monitor(&progress) {
                    stopped_early = Some(reason);
                    stopped_at = Some(now);
                    abort.store(true, Ordering::Relaxed);
                }
            }
        }
        while let Ok(report) = receiver.try_recv() {
            timeline.add(report);
        }
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
    let measured_end = stopped_at.unwrap_or(end).min(end);
    let measured_s = measured_end
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    Ok(PointOutcome {
        recorders: merged,
        timeline: timeline.finish(),
        measured_s,
        stopped_early,
    })
}
