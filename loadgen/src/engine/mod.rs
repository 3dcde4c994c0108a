//! The load engine: W worker threads, each one readiness loop owning its connections, run one
//! load point; this module splits the populations among them, gathers their interval reports
//! into one timeline as the run goes, and merges their recorders at the end.

pub mod modem;
pub mod pacing;
pub mod precise_timer;
pub mod source;
pub mod worker;
pub mod workload;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reports::model::{PopulationTimeline, Timeline};

use crate::record::{IntervalFigures, IntervalReport, PopulationRecorder};
use crate::scenario::Population;
use modem::{LineProfile, RttMode};
use worker::{run_worker, PopulationShare, ShareLoad, WorkerPlan};
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
            request_timeout: plan.request_timeout,
            seed: plan.seed,
            workload: plan.workload,
            reports: sender.clone(),
            abort: &abort,
        })
        .collect();
    drop(sender);

    let pops = plan.populations.len();
    let mut timeline = TimelineBuilder::new(plan, pops);
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

/// Splits each population over the workers: closed and slow-line clients by count, open rates
/// by share. `request_timeout` is the scenario's (slow lines have their own).
pub fn split_shares(
    populations: &[Population],
    load_fraction: f64,
    workers: usize,
    request_timeout: Duration,
    rtt_mode: RttMode,
) -> Vec<Vec<PopulationShare>> {
    let workers = workers.max(1);
    let count_share = |count: u32, w: usize| {
        let total = (f64::from(count) * load_fraction).ceil().max(1.0) as u32;
        let base = total / workers as u32;
        base + u32::from((w as u32) < total % workers as u32)
    };
    let profiles: Vec<Option<Arc<LineProfile>>> = populations
        .iter()
        .map(|p| match p {
            Population::Modem(spec) => Some(Arc::new(LineProfile::new(spec, rtt_mode))),
            _ => None,
        })
        .collect();
    (0..workers)
        .map(|w| {
            populations
                .iter()
                .enumerate()
                .map(|(index, population)| {
                    let load = match population {
                        Population::Closed { clients, think, .. } => ShareLoad::Closed {
                            clients: count_share(*clients, w),
                            think: *think,
                        },
                        Population::Modem(spec) => ShareLoad::Modem {
                            clients: count_share(spec.clients, w),
                            profile: Arc::clone(
                                profiles[index]
                                    .as_ref()
                                    .expect("a profile per modem population"),
                            ),
                        },
                        Population::Open {
                            rate,
                            arrival,
                            max_in_flight,
                            ..
                        } => ShareLoad::Open {
                            rate: rate * load_fraction / workers as f64,
                            arrival: *arrival,
                            max_in_flight: max_in_flight.div_ceil(workers as u32),
                        },
                    };
                    PopulationShare {
                        load,
                        requests_per_connection: population.requests_per_connection(),
                        request_timeout: match population {
                            Population::Modem(spec) => spec.request_timeout,
                            _ => request_timeout,
                        },
                        sources: Vec::new(),
                    }
                })
                .collect()
        })
        .collect()
}

/// Merges the workers' interval reports; an interval is final once every worker sent it, and is
/// then reduced to its figures so memory does not grow with the histograms.
struct TimelineBuilder {
    workers: usize,
    interval_s: f64,
    measured_from_index: usize,
    pending: BTreeMap<usize, (usize, Vec<IntervalFigures>)>,
    series: Vec<PopulationTimeline>,
    names: Vec<String>,
}

impl TimelineBuilder {
    fn new(plan: &PointPlan<'_>, pops: usize) -> Self {
        let interval_s = plan.interval.as_secs_f64();
        TimelineBuilder {
            workers: plan.workers.max(1),
            interval_s,
            measured_from_index: (plan.warmup.as_secs_f64() / interval_s).round() as usize,
            pending: BTreeMap::new(),
            series: (0..pops).map(|_| PopulationTimeline::default()).collect(),
            names: plan
                .populations
                .iter()
                .map(|p| p.name().to_string())
                .collect(),
        }
    }

    fn add(&mut self, report: IntervalReport) {
        let entry = self.pending.entry(report.index).or_insert_with(|| {
            (
                0,
                (0..report.populations.len())
                    .map(|_| IntervalFigures::new())
                    .collect(),
            )
        });
        entry.0 += 1;
        for (mine, theirs) in entry.1.iter_mut().zip(&report.populations) {
            mine.merge(theirs);
        }
        let _ = report.worker;
        while let Some((&index, (count, _))) = self.pending.first_key_value() {
            if *count < self.workers || index != self.series[0].ops.len() {
                break;
            }
            let (_, figures) = self.pending.remove(&index).expect("present");
            self.push(figures);
        }
    }

    fn push(&mut self, figures: Vec<IntervalFigures>) {
        for (series, figures) in self.series.iter_mut().zip(figures) {
            series.ops.push(figures.ops);
            series.bytes.push(figures.bytes);
            series.errors.push(figures.errors);
            series.open_connections.push(figures.open_connections);
            let at = |q| {
                if figures.total_us.is_empty() {
                    0
                } else {
                    figures.total_us.value_at_quantile(q)
                }
            };
            series.latency_p50_us.push(at(0.5));
            series.latency_p99_us.push(at(0.99));
        }
    }

    fn last_complete_ops(&self) -> u64 {
        self.series.iter().filter_map(|s| s.ops.last()).sum()
    }

    fn finish(mut self) -> Timeline {
        // Intervals some worker never closed (it stopped early) still count what arrived.
        let rest: Vec<_> = std::mem::take(&mut self.pending).into_values().collect();
        for (_, figures) in rest {
            self.push(figures);
        }
        for (series, name) in self.series.iter_mut().zip(&self.names) {
            series.name = name.clone();
        }
        Timeline {
            interval_s: self.interval_s,
            measured_from_index: self.measured_from_index,
            populations: self.series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Arrival, Think};

    #[test]
    fn shares_split_clients_and_rates_over_workers() {
        let populations = vec![
            Population::Closed {
                name: "lan".into(),
                clients: 10,
                think: Think::None,
                requests_per_connection: 1,
            },
            Population::Open {
                name: "open".into(),
                rate: 900.0,
                arrival: Arrival::Poisson,
                max_in_flight: 100,
                requests_per_connection: 5,
            },
        ];
        let timeout = Duration::from_secs(10);
        let shares = split_shares(&populations, 1.0, 3, timeout, RttMode::Application);
        let clients: Vec<u32> = shares
            .iter()
            .map(|w| match w[0].load {
                ShareLoad::Closed { clients, .. } => clients,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(clients, vec![4, 3, 3]);
        for worker in &shares {
            match worker[1].load {
                ShareLoad::Open {
                    rate,
                    max_in_flight,
                    ..
                } => {
                    assert!((rate - 300.0).abs() < 1e-9);
                    assert_eq!(max_in_flight, 34);
                }
                _ => unreachable!(),
            }
            assert_eq!(worker[1].requests_per_connection, 5);
        }
        // A sweep point at 30 % of the load: 3 clients, 90 req/s per worker.
        let shares = split_shares(&populations, 0.3, 3, timeout, RttMode::Application);
        let total: u32 = shares
            .iter()
            .map(|w| match w[0].load {
                ShareLoad::Closed { clients, .. } => clients,
                _ => 0,
            })
            .sum();
        assert_eq!(total, 3);
    }
}
