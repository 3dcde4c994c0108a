//! `reports`: the result model of afterburner-bench runs (`model`, the `result.json` that
//! `loadgen` writes; `comparison`, the `comparison.json` of `loadgen compare`; `claims`, the
//! `claims.json` of `loadgen claims`; `check`, the `check.json` of `loadgen check` and its
//! verdicts), the figures computed from it (`prepare`), the merging of a sharded run's parts
//! into one result (`merge`), atomic writes of every file (`files`), and what is made of them:
//! the self-contained HTML report and the text summary printed after a run (`render`), with the
//! charts drawn by `plot`.

// The model is a stored format read by other crates and people: every public item says what it
// is, in which unit.
#![warn(missing_docs)]

pub mod check;
pub mod claims;
pub mod comparison;
pub mod files;
pub mod merge;
pub mod model;
mod plot;
pub mod prepare;
pub mod render;
