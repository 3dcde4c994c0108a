//! `loadgen`: the load generator of afterburner-bench, as a library so tests can call it in-process.

pub mod accounting;
pub mod cli;
pub mod delay_line;
pub mod engine;
pub mod fileset;
pub mod isolation;
pub mod probe;
pub mod record;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod target;
pub mod workload;
