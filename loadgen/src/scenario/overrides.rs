//! Command-line values that replace a scenario's (`loadgen run --duration 30s --clients 64`),
//! applied and checked in this one place: each flag gets the range check its key gets in the
//! file, a flag that would change nothing (`--clients` on a scenario without closed-loop
//! clients) is an error naming the populations there are, and the whole scenario is then checked
//! again, so what runs is always a checked scenario.

use std::path::Path;
use std::time::Duration;

use super::{Population, RttChoice, Scenario, ScenarioError};

/// Values given on the command line; `None` keeps the scenario's.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--duration`: the measured time of each load point.
    pub duration: Option<Duration>,
    /// `--warmup`: load applied before measuring.
    pub warmup: Option<Duration>,
    /// `--rate`: requests per second of every open-loop population.
    pub rate: Option<f64>,
    /// `--clients`: clients of every closed-loop population.
    pub clients: Option<u32>,
    /// `--modem-clients`: users of every slow-line (modem) population.
    pub modem_clients: Option<u32>,
    /// `--rtt`: where slow-line round trips come from.
    pub rtt: Option<RttChoice>,
    /// `--seed`: the seed of every random draw.
    pub seed: Option<u64>,
    /// `--workers`: generator threads.
    pub workers: Option<usize>,
}

impl Scenario {
    /// Reads and validates a scenario file, then applies `overrides` ([`Scenario::apply_overrides`]).
    pub fn load_with_overrides(
        path: &Path,
        overrides: &Overrides,
    ) -> Result<Scenario, ScenarioError> {
        let mut scenario = Scenario::load(path)?;
        scenario
            .apply_overrides(overrides)
            .map_err(|message| ScenarioError {
                file: path.to_path_buf(),
                message,
            })?;
        Ok(scenario)
    }

    /// Replaces the scenario's values with the flags given and checks the result; the error
    /// starts with the flag (`--clients 64: ...`) or, for a check across fields, the key.
    pub fn apply_overrides(&mut self, overrides: &Overrides) -> Result<(), String> {
        let kinds_present = self.populations_by_kind();
        let needs = |flag: String, kind: &str, key: &str| -> Result<(), String> {
            if self.clients.iter().any(|p| p.kind_name() == kind) {
                Ok(())
            } else {
                Err(format!(
                    "{flag}: the scenario has no population of kind = \"{kind}\" whose `{key}` it could replace; its populations: {kinds_present}"
                ))
            }
        };
        if let Some(duration) = overrides.duration {
            if duration.is_zero() {
                return Err("--duration: must be more than 0".into());
            }
            self.duration = duration;
        }
        if let Some(warmup) = overrides.warmup {
            self.warmup = warmup;
        }
        if let Some(seed) = overrides.seed {
            self.seed = seed;
        }
        if let Some(workers) = overrides.workers {
            if workers == 0 {
                return Err("--workers: must be at least 1".into());
            }
            self.workers = workers;
        }
        if let Some(rate) = overrides.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("--rate {rate}: must be a positive number"));
            }
            needs(format!("--rate {rate}"), "open", "rate")?;
        }
        if let Some(clients) = overrides.clients {
            if clients == 0 {
                return Err("--clients 0: must be at least 1".into());
            }
            needs(format!("--clients {clients}"), "closed", "clients")?;
        }
        if let Some(users) = overrides.modem_clients {
            if users == 0 {
                return Err("--modem-clients 0: must be at least 1".into());
            }
            needs(format!("--modem-clients {users}"), "modem", "clients")?;
        }
        if let Some(rtt) = overrides.rtt {
            // Viewers on modem lines have a round trip too.
            let modem_viewers = self
                .clients
                .iter()
                .any(|p| matches!(p, Population::Viewer(spec) if spec.modem.is_some()));
            if !modem_viewers {
                needs(format!("--rtt {}", rtt.name()), "modem", "rtt")?;
            }
            self.rtt = Some(rtt);
        }
        for population in &mut self.clients {
            match population {
                Population::Open { rate, .. } => *rate = overrides.rate.unwrap_or(*rate),
                Population::Closed { clients, .. } => {
                    *clients = overrides.clients.unwrap_or(*clients)
                }
                Population::Modem(spec) => {
                    spec.clients = overrides.modem_clients.unwrap_or(spec.clients)
                }
                // Viewers keep their numbers: no flag names them (yet).
                Population::Viewer(_) => {}
            }
        }
        self.validate()
    }

    /// `lan (closed), dialup (modem)`: the populations for an error message.
    fn populations_by_kind(&self) -> String {
        self.clients
            .iter()
            .map(|p| format!("{} ({})", p.name(), p.kind_name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(populations: &str) -> Scenario {
        Scenario::parse(populations, Path::new("o.toml")).unwrap()
    }

    const LAN_AND_ARRIVALS: &str =
        "[[clients]]\nname = \"lan\"\nkind = \"closed\"\nclients = 4\n\n\
         [[clients]]\nname = \"arrivals\"\nkind = \"open\"\nrate = 100\n";

    #[test]
    fn flags_replace_the_values_of_their_kind_only() {
        let mut s = scenario(LAN_AND_ARRIVALS);
        s.apply_overrides(&Overrides {
            clients: Some(64),
            rate: Some(2000.0),
            duration: Some(Duration::from_secs(30)),
            workers: Some(2),
            seed: Some(9),
            ..Overrides::default()
        })
        .unwrap();
        assert!(matches!(
            s.clients[0],
            Population::Closed { clients: 64, .. }
        ));
        assert!(matches!(s.clients[1], Population::Open { rate, .. } if rate == 2000.0));
        assert_eq!(
            (s.duration, s.workers, s.seed),
            (Duration::from_secs(30), 2, 9)
        );
    }

    #[test]
    fn a_flag_with_nothing_to_replace_names_the_populations_there_are() {
        let mut s = scenario(LAN_AND_ARRIVALS);
        let error = s
            .apply_overrides(&Overrides {
                modem_clients: Some(2000),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(error.starts_with("--modem-clients 2000:"), "{error}");
        assert!(error.contains("lan (closed), arrivals (open)"), "{error}");
        let mut s = scenario("[[clients]]\nname = \"a\"\nkind = \"open\"\nrate = 10\n");
        let error = s
            .apply_overrides(&Overrides {
                clients: Some(64),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(error.contains("kind = \"closed\""), "{error}");
        let error = s
            .apply_overrides(&Overrides {
                rtt: Some(RttChoice::Netem),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(error.starts_with("--rtt netem:"), "{error}");
    }

    #[test]
    fn out_of_range_flags_are_named() {
        let cases = [
            (
                "--workers",
                Overrides {
                    workers: Some(0),
                    ..Overrides::default()
                },
            ),
            (
                "--clients",
                Overrides {
                    clients: Some(0),
                    ..Overrides::default()
                },
            ),
            (
                "--rate",
                Overrides {
                    rate: Some(f64::NAN),
                    ..Overrides::default()
                },
            ),
            (
                "--duration",
                Overrides {
                    duration: Some(Duration::ZERO),
                    ..Overrides::default()
                },
            ),
        ];
        for (flag, overrides) in cases {
            let error = scenario(LAN_AND_ARRIVALS)
                .apply_overrides(&overrides)
                .unwrap_err();
            assert!(error.starts_with(flag), "{flag}: {error}");
        }
    }
}
