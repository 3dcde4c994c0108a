//! `reports`: the result model of afterburner-bench runs (`model`), shared by `loadgen` (which
//! writes results) and the report renderer (which reads them).

pub mod model;
mod plot;
pub mod prepare;
pub mod render;
