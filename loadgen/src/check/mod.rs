//! `loadgen check`: regression verdicts for CI, from figures that noise barely moves.

pub mod instructions;
