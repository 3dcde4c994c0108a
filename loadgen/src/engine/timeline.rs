//! The load point's timeline: the workers' interval reports merged as they arrive. An interval
//! is final once every worker sent it, and is then reduced to its figures (operations, bytes,
//! errors, open connections, p50 and p99, and the interval's histogram in its compact encoded
//! form, so timelines merge exactly), so memory does not grow with the run.

use std::collections::BTreeMap;
use std::time::Duration;

use reports::model::{encode_histogram, PopulationTimeline, Timeline};

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
    /// Intervals made final so far (also with no populations: the server side of a sharded
    /// run keeps the time axis without any).
    finished: usize,
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
            finished: 0,
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
            if *count < self.workers || index != self.finished {
                break;
            }
            let (_, figures) = self.pending.remove(&index).expect("present");
            self.push(figures);
        }
    }

    fn push(&mut self, figures: Vec<IntervalFigures>) {
        self.finished += 1;
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
            series
                .latency_hdr_v2_deflate_base64
                .push(encode_histogram(&figures.total_us));
            if let Some(viewer) = &figures.viewer {
                series.frames.push(viewer.frames);
                series.frames_skipped.push(viewer.frames_skipped);
                series.viewer_joins.push(viewer.joins);
                series.viewer_leaves.push(viewer.leaves);
                series.viewer_kicks.push(viewer.kicks);
                let age = |q| {
                    if viewer.frame_age_us.is_empty() {
                        0
                    } else {
                        viewer.frame_age_us.value_at_quantile(q)
                    }
                };
                series.frame_age_p50_us.push(age(0.5));
                series.frame_age_p99_us.push(age(0.99));
                series
                    .frame_age_hdr_v2_deflate_base64
                    .push(encode_histogram(&viewer.frame_age_us));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use reports::model::decode_histogram;

    fn report(worker: usize, index: usize, latencies_us: &[u64]) -> IntervalReport {
        let mut figures = IntervalFigures::new();
        for &us in latencies_us {
            figures.record(1024, us);
        }
        IntervalReport {
            worker,
            index,
            populations: vec![figures],
        }
    }

    #[test]
    fn an_interval_is_final_once_every_worker_sent_it_and_keeps_its_histogram() {
        let second = Duration::from_secs(1);
        let mut timeline = TimelineBuilder::new(2, second, second, vec!["lan".into()]);
        timeline.add(report(0, 0, &[100, 200]));
        assert_eq!(
            timeline.last_complete_ops(),
            0,
            "worker 1 has not sent interval 0"
        );
        timeline.add(report(1, 0, &[300]));
        assert_eq!(timeline.last_complete_ops(), 3);
        timeline.add(report(1, 1, &[5_000]));
        let finished = timeline.finish();
        assert_eq!(finished.measured_from_index, 1);
        let lan = &finished.populations[0];
        assert_eq!(lan.ops, vec![3, 1]);
        let first = decode_histogram(&lan.latency_hdr_v2_deflate_base64[0]).unwrap();
        assert_eq!(first.len(), 3, "both workers' values, merged");
        assert!(first.max() >= 300 && first.max() < 310, "{}", first.max());
        assert_eq!(
            lan.latency_p99_us[1],
            first_p99(&lan.latency_hdr_v2_deflate_base64[1])
        );
    }

    #[test]
    fn viewer_series_merge_over_workers_and_only_viewer_populations_get_them() {
        let viewer = |frames: u64, kicks: u64, ages: &[u64]| {
            let mut figures = IntervalFigures::new();
            let mut v = crate::record::ViewerInterval::new();
            v.frames = frames;
            v.frames_skipped = 2 * frames;
            v.joins = 1;
            v.kicks = kicks;
            for &age in ages {
                v.frame_age_us.record(age).unwrap();
            }
            figures.viewer = Some(v);
            figures
        };
        let second = Duration::from_secs(1);
        let names = vec!["web".into(), "cam".into()];
        let mut timeline = TimelineBuilder::new(2, second, Duration::ZERO, names);
        for (worker, frames, kicks, ages) in [(0, 3, 0, &[100_000u64][..]), (1, 5, 1, &[300_000])] {
            timeline.add(IntervalReport {
                worker,
                index: 0,
                populations: vec![IntervalFigures::new(), viewer(frames, kicks, ages)],
            });
        }
        let finished = timeline.finish();
        let (web, cam) = (&finished.populations[0], &finished.populations[1]);
        assert!(web.frames.is_empty() && web.frame_age_p50_us.is_empty());
        assert_eq!(cam.frames, vec![8]);
        assert_eq!(cam.frames_skipped, vec![16]);
        assert_eq!((cam.viewer_joins[0], cam.viewer_kicks[0]), (2, 1));
        let ages = decode_histogram(&cam.frame_age_hdr_v2_deflate_base64[0]).unwrap();
        assert_eq!(ages.len(), 2);
        assert!(
            cam.frame_age_p99_us[0] >= 299_000,
            "{:?}",
            cam.frame_age_p99_us
        );
    }

    fn first_p99(encoded: &str) -> u64 {
        decode_histogram(encoded).unwrap().value_at_quantile(0.99)
    }
}
