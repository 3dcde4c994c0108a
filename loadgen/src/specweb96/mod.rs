//! SPECweb96, the benchmark of the 1999 claims: the workload model (`model`: file classes,
//! sizes, the request mix, directory scaling; pure) and the file set on disk with the content
//! pattern clients verify (`fileset`).

pub mod fileset;
pub mod model;

pub use model::*;
