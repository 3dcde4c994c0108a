//! Whether a load point can be trusted: pure checks over its figures that give warnings (worth
//! reading) and reasons that make the measurement invalid (it measured the generator, not the
//! server). The run marks the result and exits 3 on an invalid point.

use reports::model::LoadPoint;

use crate::record::ErrorKind;

/// A generator busier than this share of its cores may have been the bottleneck.
pub const GENERATOR_CPU_LIMIT: f64 = 0.90;
/// Open-loop schedule lag p99 above this is reported: requests left later than planned.
pub const SCHEDULE_LAG_P99_LIMIT_US: u64 = 1_000;
/// A sampler above this share of one core is reported: it may have perturbed the run.
pub const SAMPLER_CPU_LIMIT: f64 = 0.02;

/// What the checks found about one load point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Worth reading, but the figures stand.
    pub warnings: Vec<String>,
    /// Why the figures cannot be trusted; empty for a valid point.
    pub invalid: Vec<String>,
}

/// Checks a finished load point.
pub fn check_point(point: &LoadPoint) -> Verdict {
    let mut verdict = Verdict::default();
    let label = &point.label;
    if let Some(kernel) = &point.kernel {
        let k = &kernel.summary;
        if k.loadgen_cpu_share > GENERATOR_CPU_LIMIT {
            verdict.invalid.push(format!(
                "{label}: the generator used {:.0} % of its CPUs: it, not the server, may have set the pace",
                k.loadgen_cpu_share * 100.0
            ));
        }
        if k.time_wait_overflows > 0 {
            verdict.warnings.push(format!(
                "{label}: {} closes skipped TIME_WAIT (TCPTimeWaitOverflow): tcp_max_tw_buckets is too low",
                k.time_wait_overflows
            ));
        }
        if k.listen_drops > 0 || k.listen_overflows > 0 {
            verdict.warnings.push(format!(
                "{label}: the accept queue overflowed {} times and dropped {} connections",
                k.listen_overflows, k.listen_drops
            ));
        }
        if k.sampler_cpu_share > SAMPLER_CPU_LIMIT {
            verdict.warnings.push(format!(
                "{label}: the sampler used {:.1} % of a core",
                k.sampler_cpu_share * 100.0
            ));
        }
    }
    for population in &point.populations {
        if let Some(lag) = &population.schedule_lag_us {
            if lag.p99 > SCHEDULE_LAG_P99_LIMIT_US {
                verdict.warnings.push(format!(
                    "{label}: population {}: schedule lag p99 {:.2} ms: requests left later than planned",
                    population.name,
                    lag.p99 as f64 / 1000.0
                ));
            }
        }
        if population.kind == "closed" {
            let asked = population.offered as u64;
            if population.peak_open_connections < asked {
                verdict.warnings.push(format!(
                    "{label}: population {}: at most {} connections open at once, {} asked",
                    population.name, population.peak_open_connections, asked
                ));
            }
        }
        if let Some(n) = population
            .totals
            .errors
            .get(ErrorKind::AddrNotAvailable.name())
        {
            verdict.warnings.push(format!(
                "{label}: population {}: {n} connects failed with EADDRNOTAVAIL: the client ran out of ports",
                population.name
            ));
        }
    }
    if point.totals.errors_total > 0 {
        let kinds: Vec<String> = point
            .totals
            .errors
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        verdict.warnings.push(format!(
            "{label}: {} request errors ({})",
            point.totals.errors_total,
            kinds.join(", ")
        ));
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::model::{HistogramData, KernelAccounting, PopulationResult};

    fn point() -> LoadPoint {
        LoadPoint {
            label: "full load".into(),
            kernel: Some(KernelAccounting::default()),
            populations: vec![PopulationResult {
                name: "lan".into(),
                kind: "closed".into(),
                offered: 50.0,
                peak_open_connections: 50,
                ..PopulationResult::default()
            }],
            ..LoadPoint::default()
        }
    }

    #[test]
    fn a_quiet_point_is_valid_without_warnings() {
        assert_eq!(check_point(&point()), Verdict::default());
    }

    #[test]
    fn a_saturated_generator_makes_the_point_invalid() {
        let mut p = point();
        p.kernel.as_mut().unwrap().summary.loadgen_cpu_share = 0.95;
        let verdict = check_point(&p);
        assert_eq!(verdict.invalid.len(), 1, "{verdict:?}");
        assert!(verdict.invalid[0].contains("95 %"), "{verdict:?}");
        p.kernel.as_mut().unwrap().summary.loadgen_cpu_share = GENERATOR_CPU_LIMIT;
        assert!(check_point(&p).invalid.is_empty());
    }

    #[test]
    fn kernel_drops_and_a_busy_sampler_are_warnings() {
        let mut p = point();
        let summary = &mut p.kernel.as_mut().unwrap().summary;
        summary.time_wait_overflows = 7;
        summary.listen_overflows = 2;
        summary.sampler_cpu_share = 0.05;
        let verdict = check_point(&p);
        assert!(verdict.invalid.is_empty());
        let text = verdict.warnings.join("\n");
        assert!(text.contains("7 closes skipped TIME_WAIT"), "{text}");
        assert!(text.contains("overflowed 2 times"), "{text}");
        assert!(text.contains("sampler used 5.0 %"), "{text}");
    }

    #[test]
    fn population_shortfalls_lag_and_port_exhaustion_are_warnings() {
        let mut p = point();
        p.populations[0].peak_open_connections = 40;
        p.populations[0]
            .totals
            .errors
            .insert("addr_not_available".into(), 12);
        p.populations.push(PopulationResult {
            name: "arrivals".into(),
            kind: "open".into(),
            schedule_lag_us: Some(HistogramData {
                p99: 2_500,
                ..HistogramData::default()
            }),
            ..PopulationResult::default()
        });
        p.totals.errors_total = 12;
        p.totals.errors.insert("addr_not_available".into(), 12);
        let text = check_point(&p).warnings.join("\n");
        assert!(
            text.contains("at most 40 connections open at once, 50 asked"),
            "{text}"
        );
        assert!(
            text.contains("12 connects failed with EADDRNOTAVAIL"),
            "{text}"
        );
        assert!(text.contains("schedule lag p99 2.50 ms"), "{text}");
        assert!(
            text.contains("12 request errors (addr_not_available 12)"),
            "{text}"
        );
    }
}
