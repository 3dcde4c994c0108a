//! `loadgen check` as CI runs it (the binary): the exit statuses (0 pass, 1 regression, 2
//! usage or configuration, 3 invalid), the files CI pages read (check.json, check.md,
//! junit.xml, comparison.html), saved baselines, and instruction counts of two builds.
//!
//! The load runs here are short (rounds of one second) and prove the plumbing; whether the
//! verdicts hold on a noisy machine is what `scripts/check-self.sh` shows in CI, with release
//! builds and a deliberately slowed server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reports::check::{CheckReport, Outcome, Pairing, Verdict};

fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check_scenario() -> PathBuf {
    workspace_dir().join("scenarios/check.toml")
}

fn loadgen(args: &[&str], out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("check")
        .args(args)
        .args(["--quiet", "--out"])
        .arg(out)
        .output()
        .expect("run loadgen check")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The one `OUT/check-check/<time>/` directory under `out`.
fn check_dir(out: &Path) -> PathBuf {
    let parent = out.join("check-check");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    dirs.sort();
    dirs.pop().expect("a check directory")
}

/// Short rounds: one second of load, no warm-up inside a run.
const SHORT: [&str; 4] = ["--duration", "1s", "--warmup", "0s"];

#[test]
fn usage_and_configuration_errors_exit_2_and_name_the_culprit() {
    let out = tempfile::tempdir().unwrap();
    let scenario = check_scenario();
    let scenario = scenario.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&[scenario, "--baseline", "loop"], "--candidate"),
        (&[scenario, "--candidate", "loop"], "--baseline"),
        (
            &[scenario, "--baseline", "lop", "--candidate", "loop"],
            "`lop` is no server",
        ),
        (
            &[
                scenario,
                "--baseline",
                "loop",
                "--candidate",
                "./no/such/afterburner",
            ],
            "no such file",
        ),
        (
            &[
                scenario,
                "--baseline",
                "loop",
                "--candidate",
                "loop",
                "--threshold",
                "p98=5%",
            ],
            "p98: no such metric",
        ),
        (
            &["--baseline", "loop", "--candidate", "poll"],
            "give the scenario first",
        ),
        (&[], "nothing to check"),
    ];
    for (args, culprit) in cases {
        let output = loadgen(args, out.path());
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(culprit),
            "{args:?} should name {culprit}: {}",
            text(&output)
        );
    }

    // A malformed [check] table names its key.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad-check.toml");
    let sites = workspace_dir().join("scenarios/sites");
    std::fs::write(
        &bad,
        std::fs::read_to_string(check_scenario())
            .unwrap()
            .replace("min_rounds = 10", "min_rounds = 60")
            .replace("\"sites/onek", &format!("\"{}/onek", sites.display())),
    )
    .unwrap();
    assert!(std::fs::read_to_string(&bad)
        .unwrap()
        .contains("min_rounds = 60"));
    let output = loadgen(
        &[
            bad.to_str().unwrap(),
            "--baseline",
            "loop",
            "--candidate",
            "poll",
        ],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("check.min_rounds"),
        "{}",
        text(&output)
    );
    // Nothing ran.
    assert!(!out.path().join("check-check").exists());
}

#[test]
fn a_short_check_writes_every_file_and_a_saved_baseline_is_compared_later() {
    let out = tempfile::tempdir().unwrap();
    let scenario = check_scenario();
    let scenario = scenario.to_str().unwrap();
    let mut args = vec![
        scenario,
        "--baseline",
        "loop",
        "--candidate",
        "poll",
        "--rounds",
        "2",
        "--warmup-rounds",
        "0",
    ];
    args.extend(SHORT);
    let output = loadgen(&args, out.path());
    // Two rounds cannot give an interval: inconclusive, which does not fail CI.
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let dir = check_dir(out.path());
    let report = CheckReport::read(&dir.join("check.json")).unwrap();
    assert_eq!(report.outcome, Outcome::Pass);
    assert_eq!(report.pairing, Pairing::Interleaved);
    assert_eq!(report.rounds, 2);
    assert_eq!(report.baseline, "loop");
    let metrics: Vec<&str> = report.metrics.iter().map(|m| m.metric.as_str()).collect();
    assert_eq!(metrics, ["ops_per_s", "server_cpu_us_per_op"]);
    for metric in &report.metrics {
        assert_eq!(metric.baseline.len(), 2, "{metric:?}");
        assert_eq!(metric.verdict, Verdict::Inconclusive, "{metric:?}");
    }
    let summary = std::fs::read_to_string(dir.join("check.md")).unwrap();
    assert!(
        summary.contains("## loadgen check: pass (scenario `check`)"),
        "{summary}"
    );
    assert!(
        summary.contains("too few rounds for an interval"),
        "{summary}"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("name=\"server_cpu_us_per_op\""), "{junit}");
    assert!(dir.join("comparison.html").is_file());
    // The order alternates: round 2 ran the candidate first.
    for side in ["baseline", "candidate"] {
        for round in 1..=2 {
            assert!(dir
                .join(format!("{side}/round-{round}/result.json"))
                .is_file());
        }
    }

    // Save the candidate's rounds, then check against them.
    let mut save = vec![
        scenario,
        "--candidate",
        "loop",
        "--rounds",
        "2",
        "--warmup-rounds",
        "0",
        "--save-baseline",
        "main",
    ];
    save.extend(SHORT);
    let output = loadgen(&save, out.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(out.path().join("baselines/main/check.json").is_file());
    let mut against = vec![
        scenario,
        "--baseline",
        "main",
        "--candidate",
        "loop",
        "--rounds",
        "2",
        "--warmup-rounds",
        "0",
    ];
    against.extend(SHORT);
    let output = loadgen(&against, out.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let report = CheckReport::read(&check_dir(out.path()).join("check.json")).unwrap();
    assert!(
        matches!(&report.pairing, Pairing::Saved { name, .. } if name == "main"),
        "{:?}",
        report.pairing
    );
    assert_eq!(report.metrics[0].baseline.len(), 2);

    // A saved name that is a server is refused; an unknown scenario in a baseline is named.
    let output = loadgen(
        &[scenario, "--candidate", "loop", "--save-baseline", "poll"],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("server's name"), "{}", text(&output));
}

#[test]
fn a_server_that_does_not_start_makes_the_check_invalid() {
    let out = tempfile::tempdir().unwrap();
    let scenario = check_scenario();
    let mut args = vec![
        scenario.to_str().unwrap(),
        "--baseline",
        "loop",
        "--candidate",
        "/bin/false",
        "--rounds",
        "2",
    ];
    args.extend(SHORT);
    let output = loadgen(&args, out.path());
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let report = CheckReport::read(&check_dir(out.path()).join("check.json")).unwrap();
    assert_eq!(report.outcome, Outcome::Invalid);
    assert!(
        report.problems[0].starts_with("warm-up, candidate:"),
        "{:?}",
        report.problems
    );
    assert!(
        text(&output).contains("INVALID MEASUREMENT"),
        "{}",
        text(&output)
    );
}

/// Writes `summary` where gungraun puts `afterburner`'s `connection::request_cycle.ID` summary.
fn place_summary(home: &Path, id: &str, instructions: u64) {
    let mut summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gungraun-summary.json"),
        )
        .unwrap(),
    )
    .unwrap();
    summary["id"] = id.into();
    summary["profiles"][0]["data"]["total"]["metrics"]["Ir"]["values"]["new"] = instructions.into();
    let dir = home.join(format!(
        "afterburner/instructions/connection/request_cycle.{id}"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
}

#[test]
fn instruction_counts_of_two_builds_pass_alike_and_fail_a_costlier_one() {
    let out = tempfile::tempdir().unwrap();
    let (a, same, costlier) = (
        out.path().join("a"),
        out.path().join("same"),
        out.path().join("costlier"),
    );
    for (home, keepalive) in [(&a, 2867), (&same, 2867), (&costlier, 2867 + 60)] {
        place_summary(home, "wrk_keepalive", keepalive);
        place_summary(home, "browser_like", 4235);
    }
    // A bench only the candidate has is listed, not judged.
    place_summary(&costlier, "new_shape", 100);
    let arg = |p: &Path| p.to_str().unwrap().to_string();

    let output = loadgen(&["--instructions", &arg(&a), &arg(&same)], out.path());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // +2.1 % on one bench, past the 1 % default.
    let output = loadgen(&["--instructions", &arg(&a), &arg(&costlier)], out.path());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(
            "request_cycle::wrk_keepalive` | 1.0% | 2867 | 2927 | +2.1% | **regressed** |"
        ),
        "{}",
        text(&output)
    );
    assert!(
        stdout.contains("new_shape` | 1.0% | absent | 100 | – | not compared |"),
        "{stdout}"
    );
    // A looser threshold lets it pass.
    let output = loadgen(
        &[
            "--instructions",
            &arg(&a),
            &arg(&costlier),
            "--instructions-threshold",
            "3%",
        ],
        out.path(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // A directory without summaries is a configuration error naming it and the command.
    let empty = out.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let output = loadgen(&["--instructions", &arg(&a), &arg(&empty)], out.path());
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("scripts/instructions.sh"),
        "{}",
        text(&output)
    );
}
