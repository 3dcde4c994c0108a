//! The load point's timeline: the workers' interval reports merged as they arrive. An interval
//! is final once every worker sent it, and is then reduced to its figures (operations, bytes,
//! errors, open connections, p50 and p99), so memory does not grow with the run.

use std::collections::BTreeMap;
use std::time::Duration;

use reports::model::{PopulationTimeline, Timeline};

use crate::record::{IntervalFigures, IntervalReport};

/// Merges the workers' interval reports; an interval is final once every worker sent it, and is
/// then reduced to its figures so memory does not grow with the histograms.
pub struct TimelineBuilder {
    workers: usize,
    interval_s: f64,
    measured_from_index: usize,
    pending: BTreeMap<usize, (usize, Vec<IntervalFigures>)>,
    series: Vec<PopulationTimeline>,
    names: Vec<String>,
}

impl TimelineBuilder {
    /// A timeline for `workers` workers and the populations `names`, whose measured window
    /// begins `warmup` after its zero.
    pub fn new(workers: usize, interval: Duration, warmup: Duration, names: Vec<String>) -> Self {
        let interval_s = interval.as_secs_f64();
        TimelineBuilder {
            workers: workers.max(1),
            interval_s,
            measured_from_index: (warmup.as_secs_f64() / interval_s).round() as usize,
            pending: BTreeMap::new(),
            series: names
                .iter()
                .map(|_| PopulationTimeline::default())
                .collect(),
            names,
        }
    }

    /// Takes one worker's report of one interval.
    pub fn add(&mut self, report: IntervalReport) {
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

    /// Operations of the last interval every worker has reported.
    pub fn last_complete_ops(&self) -> u64 {
        self.series.iter().filter_map(|s| s.ops.last()).sum()
    }

    /// The timeline, with the intervals some worker never closed (it stopped early).
    pub fn finish(mut self) -> Timeline {
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
