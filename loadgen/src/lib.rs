//! `loadgen`: the load generator of afterburner-bench, as a library so tests can call it in-process.

pub mod fileset;
pub mod scenario;
pub mod workload;
