//! The result model shared by `loadgen` and the report renderer (filled in by the loadgen issue).
