//! The JUnit XML of a `loadgen check` (`junit.xml`), which CI systems (GitLab, Jenkins, GitHub
//! actions that read test reports) show as test results: one test case per metric and per
//! instruction-count benchmark, failed when it regressed, and one for the measurement's
//! validity, an error when it cannot be trusted. Written by `quick-junit` (nextest's writer).

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::format;
use crate::check::{CheckReport, Verdict};

/// `junit.xml`'s text; `Err` only if the XML writer fails.
pub fn check_junit(report: &CheckReport) -> Result<String, quick_junit::SerializeError> {
    let mut junit = Report::new("loadgen check");
    if !report.metrics.is_empty() || !report.problems.is_empty() {
        let name = format!("check {}", report.scenario_name);
        let mut suite = TestSuite::new(name.as_str());
        let mut validity = if report.problems.is_empty() {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(report.problems.join("; "));
            status.set_type("invalid measurement");
            status
        };
        if report.problems.is_empty() {
            validity.set_description(format!("{} rounds", report.rounds));
        }
        suite.add_test_case(case(&name, "measurement is valid", validity));
        for metric in &report.metrics {
            let detail = match metric.change {
                Some(change) => format!(
                    "{}: change {} (interval {} … {}), threshold {}",
                    metric.verdict.word(),
                    format::change(change.estimate),
                    format::change(change.low),
                    format::change(change.high),
                    format::percent(metric.threshold)
                ),
                None => format!("{}: too few rounds for an interval", metric.verdict.word()),
            };
            suite.add_test_case(case(&name, &metric.metric, status(metric.verdict, detail)));
        }
        junit.add_test_suite(suite);
    }
    if !report.instructions.is_empty() {
        let name = "instruction counts";
        let mut suite = TestSuite::new(name);
        for bench in &report.instructions {
            let detail = match bench.change {
                Some(change) => format!(
                    "{}: {} instructions, {} (threshold {})",
                    bench.verdict.word(),
                    bench.candidate.map_or(0, |n| n),
                    format::change(change),
                    format::percent(bench.threshold)
                ),
                None => "present in one build only".to_string(),
            };
            suite.add_test_case(case(name, &bench.bench, status(bench.verdict, detail)));
        }
        junit.add_test_suite(suite);
    }
    junit.to_string()
}

fn case(classname: &str, name: &str, status: TestCaseStatus) -> TestCase {
    let mut case = TestCase::new(name, status);
    case.set_classname(classname);
    case
}

fn status(verdict: Verdict, detail: String) -> TestCaseStatus {
    let mut status = if verdict == Verdict::Regressed {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status.set_type("regression");
        status
    } else {
        TestCaseStatus::success()
    };
    match &mut status {
        TestCaseStatus::NonSuccess { .. } => {
            status.set_message(detail);
        }
        _ => {
            status.set_description(detail);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::MetricCheck;

    #[test]
    fn a_regression_is_a_failed_case_and_a_problem_an_error() {
        let report = CheckReport {
            scenario_name: "check".into(),
            metrics: vec![
                MetricCheck {
                    metric: "server_cpu_us_per_op".into(),
                    verdict: Verdict::Regressed,
                    ..MetricCheck::default()
                },
                MetricCheck {
                    metric: "ops_per_s".into(),
                    verdict: Verdict::Unchanged,
                    ..MetricCheck::default()
                },
            ],
            problems: vec!["round 1, candidate: <the server> & died".into()],
            ..CheckReport::default()
        };
        let xml = check_junit(&report).unwrap();
        assert!(xml.contains("tests=\"3\""), "{xml}");
        assert!(xml.contains("failures=\"1\""), "{xml}");
        assert!(xml.contains("errors=\"1\""), "{xml}");
        assert!(xml.contains("&lt;the server&gt; &amp; died"), "{xml}");
        assert!(xml.contains("name=\"server_cpu_us_per_op\""), "{xml}");
    }
}
