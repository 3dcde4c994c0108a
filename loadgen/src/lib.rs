//! `loadgen`: the load generator of afterburner-bench, as a library so tests can call it in-process.

#![warn(missing_docs)]

pub mod check;
pub mod claims;
pub mod cli;
pub mod compare;
pub mod engine;
pub mod merge;
pub mod netns;
pub mod os;
pub mod probe;
pub mod record;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod specweb96;
pub mod target;
