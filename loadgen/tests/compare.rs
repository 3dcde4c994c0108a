//! `loadgen compare` as a user runs it (the binary): two designs of the built-in server over
//! two interleaved rounds give both rows, the ratios, `comparison.json`, the report and every
//! run's own result; a server that cannot start is a row that says so while the others' rows
//! are still there; bad `--servers` are errors that name the culprit.
//!
//! About 12 s of load in all.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reports::comparison::Comparison;

/// A closed loop of 8 keep-alive clients on a one-directory SPECweb96 file set, 1 s measured
/// after a 0.5 s warm-up; on 2 cores either side may be the limit (`measures = "either"`).
const SCENARIO: &str = r#"
name = "compare-test"
warmup = "500ms"
duration = "1s"

[validity]
measures = "either"

[site]
kind = "specweb96"
dirs = 1

[[clients]]
name = "lan"
kind = "closed"
clients = 8
requests_per_connection = 100
"#;

fn compare(dir: &Path, servers: &str, rounds: &str) -> Output {
    let scenario = dir.join("compare-test.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("compare")
        .arg(&scenario)
        .args(["--servers", servers, "--repeat", rounds, "--quiet", "--out"])
        .arg(dir.join("out"))
        .output()
        .expect("run loadgen compare")
}

/// The one comparison directory under `out/compare-test-compare/`.
fn comparison_dir(dir: &Path) -> PathBuf {
    let parent = dir.join("out").join("compare-test-compare");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&parent)
        .unwrap_or_else(|e| panic!("{}: {e}", parent.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "one comparison: {entries:?}");
    entries.pop().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn two_designs_over_two_rounds_give_both_rows_the_ratios_and_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let output = compare(tmp.path(), "loop,poll", "2");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let dir = comparison_dir(tmp.path());
    let comparison = Comparison::read(&dir.join("comparison.json")).unwrap();
    assert_eq!(comparison.rounds, 2);
    let names: Vec<&str> = comparison.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["loop", "poll"]);
    for server in &comparison.servers {
        assert_eq!(
            server.valid_rounds(),
            2,
            "{}: {:?}",
            server.name,
            server.problems()
        );
        let ops = &server.metrics["ops_per_s"];
        assert!(ops.median > 0.0 && ops.min <= ops.median && ops.median <= ops.max);
        for round in &server.rounds {
            let result = dir.join(round.result.as_ref().expect("a result per round"));
            assert!(result.exists(), "{}", result.display());
            assert!(result.with_file_name("report.html").exists());
        }
    }
    // Every run is placed alike: a run gives the process its CPUs back for the next one.
    let placements: Vec<Vec<usize>> = comparison
        .servers
        .iter()
        .flat_map(|server| &server.rounds)
        .map(|round| {
            let path = dir.join(round.result.as_ref().unwrap());
            reports::model::RunResult::read(&path)
                .unwrap()
                .generator
                .cpus
        })
        .collect();
    assert!(
        placements.iter().all(|cpus| *cpus == placements[0]),
        "the generator's CPUs changed between runs: {placements:?}"
    );
    assert!(comparison.servers[0].metrics["ops_per_s"].ratio.is_none());
    let ratio = comparison.servers[1].metrics["ops_per_s"]
        .ratio
        .clone()
        .expect("poll has a ratio to loop");
    assert_eq!(ratio.pairs, 2);
    let (low, high) = (ratio.low.unwrap(), ratio.high.unwrap());
    assert!(low <= ratio.ratio && ratio.ratio <= high, "{ratio:?}");

    let html = std::fs::read_to_string(dir.join("comparison.html")).unwrap();
    assert!(
        html.contains("Over 2 rounds"),
        "the rounds table is in the report"
    );
    assert!(html.contains("<svg"), "the report has its charts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("loop") && stdout.contains("poll") && stdout.contains('×'));
}

#[test]
fn a_server_that_cannot_start_is_a_row_saying_so_and_the_others_still_run() {
    let tmp = tempfile::tempdir().unwrap();
    // `select` refuses to start with more possible connections than FD_SETSIZE, which the
    // default --max-conns is.
    let output = compare(tmp.path(), "loop,select", "1");
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let dir = comparison_dir(tmp.path());
    let comparison = Comparison::read(&dir.join("comparison.json")).unwrap();
    let (ok, refused) = (&comparison.servers[0], &comparison.servers[1]);
    assert_eq!(ok.valid_rounds(), 1, "{:?}", ok.problems());
    assert!(ok.metrics["ops_per_s"].median > 0.0);
    assert_eq!(refused.valid_rounds(), 0);
    let problems = refused.problems().join("\n");
    assert!(problems.contains("FD_SETSIZE"), "{problems}");
    assert!(dir.join("comparison.html").exists());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("select: round 1:"), "{stdout}");
}

#[test]
fn bad_server_lists_are_errors_naming_the_culprit() {
    let tmp = tempfile::tempdir().unwrap();
    let unknown = compare(tmp.path(), "loop,lop", "1");
    assert_eq!(unknown.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("`lop`") && stderr.contains("nginx"),
        "{stderr}"
    );
    let empty = compare(tmp.path(), "loop,,poll", "1");
    assert_eq!(empty.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("an empty name"));
    let twice = compare(tmp.path(), "loop,loop", "1");
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("`loop` is named twice"));
    assert!(!tmp.path().join("out").join("compare-test-compare").exists());
}
