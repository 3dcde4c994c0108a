//! Scenario files (`loadgen::scenario`) as a user meets them: every bad file in
//! `tests/bad_scenarios/` fails with a message that names the file, the line (where the TOML
//! parser knows one) and what is wrong; every scenario shipped in `scenarios/` and every complete
//! example in the READMEs loads; the defaults are the ones `scenarios/README.md` documents.
//!
//! No sockets and no processes here; running scenarios is `tests/run.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loadgen::scenario::Overrides;
use loadgen::scenario::{Arrival, Population, Scenario, ServerSpec, SiteSpec, Think};
use loadgen::specweb96::{DirChoice, DirScaling, FileChoice, MixParams};

/// The corpus: file name in `tests/bad_scenarios/`, and the fragments its error must contain.
/// `line N` is asserted wherever the `toml` crate reports a position; checks that span several
/// fields run after parsing and name the field path instead.
const BAD: &[(&str, &[&str])] = &[
    // Slow-line (modem) populations.
    (
        "modem_bad_rate.toml",
        &["line 7", "`fast` is not a bit rate", "like 53300, 53.3k"],
    ),
    (
        "modem_key_on_closed.toml",
        &["population `lan`: `rtt` belongs to kind = \"modem\""],
    ),
    (
        "modem_mss_too_small.toml",
        &["clients[0] (`modem`).mss: 40 is outside 88..=65000"],
    ),
    (
        "modem_both_downstreams.toml",
        &["population `modem`: give `downstream` or `downstream_mix`, not both"],
    ),
    (
        "modem_window_below_mss.toml",
        &["clients[0] (`modem`).receive_window: 100 is less than one segment (mss 536)"],
    ),
    (
        "variant_unknown_population.toml",
        &["variants[0].clients: no population is named `lna`"],
    ),
    // Unknown keys, at the top level and inside a population.
    (
        "unknown_top_level_key.toml",
        &["line 3", "unknown field `durration`", "`duration`"],
    ),
    (
        "unknown_client_key.toml",
        &["line 8", "unknown field `think_time`", "`think`"],
    ),
    // Populations.
    ("missing_clients.toml", &["missing field `clients`"]),
    (
        "empty_clients.toml",
        &["clients: at least one `[[clients]]` population is needed"],
    ),
    ("zero_clients.toml", &["line 7", "must be at least 1"]),
    (
        "negative_rate.toml",
        &["line 7", "must be a positive number"],
    ),
    ("zero_rate.toml", &["line 7", "must be a positive number"]),
    (
        "unknown_population_kind.toml",
        &["line 6", "unknown variant `half-open`", "`closed`, `open`"],
    ),
    (
        "duplicate_population_names.toml",
        &["clients[1].name", "`lan` is used twice"],
    ),
    (
        "think_uniform_min_above_max.toml",
        &["clients[0].think", "min is more than max"],
    ),
    (
        "think_unknown_distribution.toml",
        &["line 8", "unknown variant `normal`", "`exponential`"],
    ),
    (
        "open_unknown_arrival.toml",
        &["line 8", "unknown variant `bursty`", "`poisson`"],
    ),
    // Durations and other top-level values.
    (
        "bad_duration.toml",
        &[
            "line 4",
            "`10 fortnights` is not a duration",
            "is not a duration like 500ms, 10s or 2m",
        ],
    ),
    (
        "duration_as_number.toml",
        &[
            "line 3",
            "`10` is not a duration: write it as text with its unit, like \"10s\"",
        ],
    ),
    ("zero_duration.toml", &["duration: must be more than 0"]),
    ("zero_workers.toml", &["line 3", "must be at least 1"]),
    ("sweep_zero_points.toml", &["line 3", "must be at least 1"]),
    (
        "name_with_slash.toml",
        &["name `../elsewhere`", "letters, digits"],
    ),
    // The server.
    (
        "unknown_real_server.toml",
        &[
            "unknown variant `apache`",
            "`nginx`, `lighttpd`, `apache-prefork`, `apache-event`, `mini-httpd`, `h2o`, `caddy`",
        ],
    ),
    (
        "real_mini_httpd_workers.toml",
        &[
            "server.workers",
            "mini-httpd forks a process per connection",
        ],
    ),
    (
        "unknown_server_kind.toml",
        &[
            "line 5",
            "unknown variant `nginx`",
            "`builtin`, `command`, `real`, `url`",
        ],
    ),
    (
        "command_without_port.toml",
        &["server.command", "must contain `{port}`"],
    ),
    (
        "url_not_http.toml",
        &[
            "server.url",
            "`https://127.0.0.1:8443/` must be an http:// URL",
        ],
    ),
    // The site and its mix.
    (
        "site_dirs_and_target.toml",
        &["site: give either `dirs` or `target_ops_per_s`, not both"],
    ),
    ("site_zero_dirs.toml", &["site.dirs: must be at least 1"]),
    (
        "mix_class_shares_length.toml",
        &["site.mix.class_shares", "expected 4 numbers", "got 3"],
    ),
    (
        "mix_file_choice_unknown.toml",
        &[
            "line 9",
            "unknown variant `zipf`",
            "`specweb99`, `uniform`, `weights`",
        ],
    ),
    (
        "mix_file_weights_length.toml",
        &[
            "site.mix.file_choice.weights",
            "expected 9 numbers",
            "got 8",
        ],
    ),
    (
        "scaling_unknown_key.toml",
        &["line 9", "unknown field `coefficent`", "`coefficient`"],
    ),
    // Not TOML at all.
    (
        "syntax_error.toml",
        &["line 3, column 16", "invalid basic string"],
    ),
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus_dir() -> PathBuf {
    manifest_dir().join("tests/bad_scenarios")
}

/// The workspace root (the loadgen crate sits one level below it).
fn workspace_dir() -> PathBuf {
    manifest_dir()
        .parent()
        .expect("loadgen/ has a parent")
        .to_path_buf()
}

/// Loads `path`, which must fail, and returns the whole message as the user would see it.
fn load_error(path: &Path) -> String {
    match Scenario::load(path) {
        Ok(scenario) => panic!(
            "{} loaded, but must be rejected: {scenario:?}",
            path.display()
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_bad_scenario_fails_with_its_message() {
    let mut failures = Vec::new();
    for (file, fragments) in BAD {
        let path = corpus_dir().join(file);
        let message = load_error(&path);
        // The file is named as given, so the user can open it.
        if !message.contains(&path.display().to_string()) {
            failures.push(format!(
                "{file}: the message does not name the file:\n{message}"
            ));
        }
        for fragment in *fragments {
            if !message.contains(fragment) {
                failures.push(format!(
                    "{file}: expected `{fragment}` in the message:\n{message}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// A file added to the corpus without an expected message would test nothing; a table entry
/// without its file would panic above, but say so plainly here.
#[test]
fn the_corpus_and_the_table_list_the_same_files() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = BAD.iter().map(|(file, _)| file.to_string()).collect();
    in_table.sort();
    let before = in_table.len();
    in_table.dedup();
    assert_eq!(before, in_table.len(), "a file is listed twice in BAD");
    assert_eq!(on_disk, in_table);
}

/// `Scenario::parse` reports the same as `load` for text that never was a file, under the name
/// it is given.
#[test]
fn parse_names_the_path_it_is_given() {
    let text = std::fs::read_to_string(corpus_dir().join("unknown_top_level_key.toml")).unwrap();
    let err = Scenario::parse(&text, Path::new("from/the/command/line.toml")).unwrap_err();
    assert_eq!(err.file, Path::new("from/the/command/line.toml"));
    let message = err.to_string();
    assert!(
        message.starts_with("scenario from/the/command/line.toml: "),
        "{message}"
    );
    assert!(message.contains("unknown field `durration`"), "{message}");
}

#[test]
fn a_missing_file_is_named_with_the_reason() {
    let path = corpus_dir().join("no-such-scenario.toml");
    let message = load_error(&path);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("cannot read it"), "{message}");
    assert!(message.contains("No such file"), "{message}");
}

/// Regression: range errors and unknown keys inside a `[[clients]]` or `[site]` table once
/// pointed at the table's header line, because the tables were internally tagged enums, which
/// serde buffers, losing the key's position. They now name the key's own line.
#[test]
fn errors_inside_tagged_tables_point_at_the_key_line() {
    let cases = [
        ("zero_clients.toml", "line 7"),
        ("negative_rate.toml", "line 7"),
        ("zero_rate.toml", "line 7"),
        ("unknown_client_key.toml", "line 8"),
        ("mix_file_choice_unknown.toml", "line 9"),
        ("scaling_unknown_key.toml", "line 9"),
    ];
    let mut failures = Vec::new();
    for (file, line) in cases {
        let message = load_error(&corpus_dir().join(file));
        if !message.contains(line) {
            failures.push(format!("{file}: expected `{line}`:\n{message}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Regression: `loadgen run --workers 0` or `--clients 0` once passed `validate()`, which the run
/// calls again after the overrides, because the `>= 1` checks lived only in the deserializers.
#[test]
fn overrides_get_the_same_range_checks_as_the_file() {
    let base = Scenario::parse(
        "[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 4\n\n\
         [[clients]]\nname = \"arrivals\"\nkind = \"open\"\nrate = 100\n",
        Path::new("overrides.toml"),
    )
    .unwrap();
    let cases = [
        (
            "workers",
            Overrides {
                workers: Some(0),
                ..Overrides::default()
            },
        ),
        (
            "clients",
            Overrides {
                clients: Some(0),
                ..Overrides::default()
            },
        ),
        (
            "rate",
            Overrides {
                rate: Some(0.0),
                ..Overrides::default()
            },
        ),
    ];
    let mut failures = Vec::new();
    for (field, overrides) in cases {
        let mut scenario = base.clone();
        match scenario.apply_overrides(&overrides) {
            Ok(()) => failures.push(format!("{field} = 0 accepted")),
            Err(message) if !message.contains(field) => {
                failures.push(format!("{field} = 0: `{message}` does not name {field}"))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// Duration overrides are re-checked (the one range check `validate()` has).
#[test]
fn a_zero_duration_override_is_rejected() {
    let mut scenario = Scenario::parse(
        "[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 4\n",
        Path::new("d.toml"),
    )
    .unwrap();
    assert_eq!(
        scenario
            .apply_overrides(&Overrides {
                duration: Some(Duration::ZERO),
                ..Overrides::default()
            })
            .unwrap_err(),
        "--duration: must be more than 0"
    );
}

// ---- good scenarios ---------------------------------------------------------------------------

fn shipped_scenarios() -> Vec<PathBuf> {
    let dir = workspace_dir().join("scenarios");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter(|path| !is_claims_file(path))
        .collect();
    paths.sort();
    paths
}

/// A claims file of `loadgen claims` (its `[measurements]` name scenarios; it is not one), read
/// by `claims_files_load` instead.
fn is_claims_file(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains("\n[measurements."))
}

/// Every claims file in `scenarios/` loads, and every scenario it names loads with the
/// overrides of both its sizes.
#[test]
fn claims_files_load_with_their_scenarios() {
    let dir = workspace_dir().join("scenarios");
    let mut found = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "toml") || !is_claims_file(&path) {
            continue;
        }
        found += 1;
        let file = loadgen::claims::plan::ClaimsFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for (id, measurement) in file.ordered_measurements() {
            for quick in [false, true] {
                let sized = measurement.sized(quick);
                let scenario = dir.join(&measurement.scenario);
                let loaded = Scenario::load_with_overrides(&scenario, &sized.overrides)
                    .unwrap_or_else(|e| panic!("measurements.{id} (quick: {quick}): {e}"));
                for server in &sized.servers {
                    server
                        .spec(&loaded.server)
                        .unwrap_or_else(|e| panic!("measurements.{id}: {e}"));
                }
            }
        }
    }
    assert!(found >= 1, "scenarios/claims-1999.toml is missing");
}

/// Every scenario in `scenarios/` loads and validates, and what it points at exists: a broken
/// shipped scenario is caught here rather than by a user's first run.
#[test]
fn every_shipped_scenario_loads() {
    let paths = shipped_scenarios();
    for required in ["quick.toml", "specweb96.toml"] {
        assert!(
            paths.iter().any(|p| p.ends_with(required)),
            "scenarios/{required} is missing; found {paths:?}"
        );
    }
    let mut failures = Vec::new();
    for path in &paths {
        let scenario = match Scenario::load(path) {
            Ok(scenario) => scenario,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        // A directory site's paths are relative to the scenario file.
        if let SiteSpec::Directory { root, urls } = &scenario.site {
            let dir = path.parent().unwrap();
            for (what, p) in [("site.root", root), ("site.urls", urls)] {
                if !dir.join(p).exists() {
                    failures.push(format!(
                        "{}: {what} {} does not exist",
                        path.display(),
                        dir.join(p).display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// What `specweb96.toml` promises in its header: SPECweb96's ten-point sweep of requested rates
/// (open loop, as its prime client paced the load), one connection per request, the default mix,
/// a file set sized for the top rate by the default scaling rule.
#[test]
fn specweb96_is_the_ten_point_sweep() {
    let scenario = Scenario::load(&workspace_dir().join("scenarios/specweb96.toml")).unwrap();
    assert_eq!(scenario.name, "specweb96");
    assert_eq!(scenario.sweep.as_ref().map(|s| s.points), Some(10));
    assert!(matches!(scenario.server, ServerSpec::Builtin { .. }));
    let sized_for = match &scenario.site {
        SiteSpec::Specweb96 {
            dirs: None,
            target_ops_per_s: Some(ops),
            scaling,
            mix,
        } => {
            assert_eq!(*scaling, DirScaling::default());
            assert_eq!(*mix, MixParams::default());
            *ops
        }
        other => panic!("site must be sized by target_ops_per_s: {other:?}"),
    };
    assert!(!scenario.clients.is_empty());
    for population in &scenario.clients {
        match population {
            Population::Open {
                rate,
                requests_per_connection,
                ..
            } => {
                assert_eq!(*requests_per_connection, 1, "{population:?}");
                assert_eq!(*rate, sized_for, "the file set is sized for the top rate");
            }
            Population::Closed { .. } | Population::Modem(_) | Population::Viewer(_) => {
                panic!("SPECweb96 load points are requested rates: {population:?}")
            }
        }
    }
    // The header promises a total run time; keep it within reason for a reporting run.
    let points = f64::from(scenario.sweep.as_ref().unwrap().points);
    let total_s = points * (scenario.warmup + scenario.duration).as_secs_f64();
    assert!(total_s <= 600.0, "{total_s} s");
}

/// The ```toml blocks that hold a whole scenario (they have a `[[clients]]` table) in the
/// top-level README and in scenarios/README.md load: documentation that fails to parse is a
/// bug a reader finds first.
#[test]
fn readme_examples_load() {
    for readme in ["README.md", "scenarios/README.md"] {
        let path = workspace_dir().join(readme);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut examples = 0;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim() != "```toml" {
                continue;
            }
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let block = block.join("\n");
            if !block.contains("[[clients]]") {
                continue;
            }
            examples += 1;
            if let Err(e) = Scenario::parse(&block, &path) {
                panic!("an example in {readme} does not load: {e}\n{block}");
            }
        }
        assert!(examples > 0, "{readme} has no complete ```toml example");
    }
}

/// The smallest scenario and its defaults, as scenarios/README.md lists them.
#[test]
fn defaults_are_the_documented_ones() {
    let scenario = Scenario::parse(
        "[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 8\n\n\
         [[clients]]\nname = \"arrivals\"\nkind = \"open\"\nrate = 250\n",
        Path::new("some/dir/minimal.toml"),
    )
    .unwrap();
    assert_eq!(
        scenario.name, "minimal",
        "the name defaults to the file stem"
    );
    assert_eq!(scenario.description, "");
    assert_eq!(scenario.seed, 1996);
    assert_eq!(scenario.warmup, Duration::from_secs(2));
    assert_eq!(scenario.duration, Duration::from_secs(10));
    assert_eq!(scenario.workers, 1);
    assert_eq!(scenario.request_timeout, Duration::from_secs(10));
    assert!(!scenario.verify_content);
    assert!(scenario.sweep.is_none());
    match &scenario.server {
        ServerSpec::Builtin { args, cpu, binary } => {
            assert!(args.is_empty());
            assert_eq!(*cpu, None);
            assert_eq!(*binary, None);
        }
        other => panic!("{other:?}"),
    }
    match &scenario.site {
        SiteSpec::Specweb96 {
            dirs,
            target_ops_per_s,
            scaling,
            mix,
        } => {
            assert_eq!((*dirs, *target_ops_per_s), (Some(1), None));
            assert_eq!(
                (
                    scaling.coefficient,
                    scaling.divisor_ops_per_s,
                    scaling.exponent
                ),
                (10.0, 5.0, 0.5)
            );
            assert_eq!(mix.class_shares, [0.35, 0.50, 0.14, 0.01]);
            assert_eq!(mix.file_choice, FileChoice::Specweb99);
            assert_eq!(mix.dir_choice, DirChoice::Zipf);
        }
        other => panic!("{other:?}"),
    }
    match &scenario.clients[0] {
        Population::Closed {
            think,
            requests_per_connection,
            ..
        } => {
            assert_eq!(*think, Think::None);
            assert_eq!(*requests_per_connection, 1);
        }
        other => panic!("{other:?}"),
    }
    match &scenario.clients[1] {
        Population::Open {
            arrival,
            max_in_flight,
            requests_per_connection,
            ..
        } => {
            assert_eq!(*arrival, Arrival::Poisson);
            assert_eq!(*max_in_flight, 10_000);
            assert_eq!(*requests_per_connection, 1);
        }
        other => panic!("{other:?}"),
    }
    // A sweep without `points` is SPECweb96's ten.
    let swept = Scenario::parse(
        "sweep = {}\n[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 8\n",
        Path::new("swept.toml"),
    )
    .unwrap();
    assert_eq!(swept.sweep.map(|s| s.points), Some(10));
}

/// Every documented spelling of the values that take several forms is accepted.
#[test]
fn every_documented_form_loads() {
    let text = r#"
        name = "all-forms_1.0"
        warmup = "500ms"
        duration = "1m 30s"
        request_timeout = "2s"

        [server]
        kind = "command"
        command = "lighttpd -D -f {workdir}/lighttpd.conf # port {port}, root {root}"
        ready_url = "http://127.0.0.1:{port}/"
        cpu = 1

        [site]
        kind = "specweb96"
        target_ops_per_s = 5000

        [site.scaling]
        coefficient = 2
        divisor_ops_per_s = 100
        exponent = 1

        [site.mix]
        class_shares = [35, 50, 14, 1]
        file_choice = { weights = [1, 2, 3, 4, 5, 4, 3, 2, 1] }
        dir_choice = "uniform"

        [[clients]]
        name = "constant"
        kind = "closed"
        clients = 1
        think = { distribution = "constant", time = "100ms" }

        [[clients]]
        name = "exponential"
        kind = "closed"
        clients = 1
        think = { distribution = "exponential", mean = "1s" }
        requests_per_connection = 10

        [[clients]]
        name = "uniform"
        kind = "closed"
        clients = 1
        think = { distribution = "uniform", min = "1s", max = "1s" }

        [[clients]]
        name = "paced"
        kind = "open"
        rate = 0.5
        arrival = "uniform"
        max_in_flight = 1
    "#;
    let scenario = Scenario::parse(text, Path::new("forms.toml")).unwrap();
    assert_eq!(scenario.duration, Duration::from_secs(90));
    assert_eq!(scenario.warmup, Duration::from_millis(500));
    let thinks: Vec<Think> = scenario
        .clients
        .iter()
        .filter_map(|p| match p {
            Population::Closed { think, .. } => Some(*think),
            Population::Open { .. } | Population::Modem(_) | Population::Viewer(_) => None,
        })
        .collect();
    let second = Duration::from_secs(1);
    assert_eq!(
        thinks,
        [
            Think::Constant {
                time: Duration::from_millis(100)
            },
            Think::Exponential { mean: second },
            // min == max is a constant, not an error.
            Think::Uniform {
                min: second,
                max: second
            },
        ]
    );
    let directory = Scenario::parse(
        "[site]\nkind = \"directory\"\nroot = \"sites/onek\"\nurls = \"sites/onek.urls\"\n\
         [server]\nkind = \"url\"\nurl = \"http://127.0.0.1:8080/\"\n\
         [[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 1\n",
        Path::new("directory.toml"),
    )
    .unwrap();
    assert!(matches!(directory.site, SiteSpec::Directory { .. }));
}

/// `result.json` carries the scenario as it ran, as TOML: it must load again and mean the same.
#[test]
fn shipped_scenarios_round_trip_through_their_toml() {
    for path in shipped_scenarios() {
        let scenario = Scenario::load(&path).unwrap();
        let text = toml::to_string(&scenario).unwrap();
        let again = Scenario::parse(&text, &path)
            .unwrap_or_else(|e| panic!("{} as written back:\n{text}\n{e}", path.display()));
        assert_eq!(toml::to_string(&again).unwrap(), text, "{}", path.display());
    }
}

#[test]
fn modem_populations_have_1999_defaults_and_take_every_key() {
    use loadgen::scenario::{Count, RateShare};
    let text = r#"
        [[clients]]
        name = "dialup"
        kind = "modem"
        clients = 100
    "#;
    let scenario = Scenario::parse(text, Path::new("modem.toml")).unwrap();
    let Population::Modem(spec) = &scenario.clients[0] else {
        panic!("{:?}", scenario.clients[0]);
    };
    assert_eq!(
        spec.downstream,
        [RateShare {
            rate: 53_300.0,
            weight: 1.0
        }]
    );
    assert_eq!(spec.upstream_bps, 33_600.0);
    assert_eq!(spec.rtt, Duration::from_millis(150));
    assert_eq!((spec.receive_window, spec.mss), (8192, 536));
    assert_eq!(spec.link_overhead_bytes, 48);
    assert_eq!(spec.connections_per_client, 2);
    assert!(spec.keep_alive);
    assert_eq!(spec.images_per_page, Count::Uniform { min: 0, max: 4 });
    assert_eq!(
        spec.think,
        Think::Exponential {
            mean: Duration::from_secs(15)
        }
    );
    assert_eq!(
        spec.linger,
        Think::Constant {
            time: Duration::from_secs(15)
        }
    );
    assert_eq!(spec.ramp_up, Duration::from_secs(10));
    assert_eq!(spec.request_timeout, Duration::from_secs(600));

    let text = r#"
        [[clients]]
        name = "dialup"
        kind = "modem"
        clients = 100
        downstream_mix = [{ rate = "28.8k", weight = 1 }, { rate = 56000, weight = 3 }]
        upstream = "28.8kbit"
        rtt = "200ms"
        receive_window = 8760
        mss = 1460
        link_overhead_bytes = 0
        images_per_page = { distribution = "geometric", mean = 5.0 }
        connections_per_client = 4
        keep_alive = false
        think = { distribution = "uniform", min = "1s", max = "3s" }
        linger = { distribution = "exponential", mean = "5s" }
        ramp_up = "1m"
        request_timeout = "90s"
    "#;
    let scenario = Scenario::parse(text, Path::new("modem.toml")).unwrap();
    let Population::Modem(spec) = &scenario.clients[0] else {
        panic!("{:?}", scenario.clients[0]);
    };
    assert_eq!(spec.downstream[0].rate, 28_800.0);
    assert_eq!(spec.downstream[1].rate, 56_000.0);
    assert_eq!(spec.upstream_bps, 28_800.0);
    assert_eq!(spec.payload_share(), 1.0);
    assert_eq!(
        spec.mean_payload_bytes_per_s(),
        (28_800.0 + 3.0 * 56_000.0) / 4.0 / 8.0
    );
    assert_eq!(spec.images_per_page, Count::Geometric { mean: 5.0 });
    assert_eq!((spec.connections_per_client, spec.keep_alive), (4, false));
    assert_eq!(scenario.clients[0].requests_per_connection(), 1);
    assert_eq!(spec.ramp_up, Duration::from_secs(60));
    // The scenario text kept in a result reads back as the same scenario.
    let again = Scenario::parse(
        &toml::to_string(&scenario).unwrap(),
        Path::new("again.toml"),
    )
    .unwrap();
    assert_eq!(
        format!("{:?}", again.clients[0]),
        format!("{:?}", scenario.clients[0])
    );
}
