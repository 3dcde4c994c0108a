//! Scenario files: TOML parsing and validation into a checked `Scenario`.
