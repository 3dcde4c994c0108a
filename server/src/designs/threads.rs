//! The `threads` design (not built yet: refuses to start).

use super::Serving;
use crate::stats::Counters;
use crate::ServerError;

/// The flags this design does not honour, with why.
pub const IGNORED_FLAGS: &[(&str, &str)] = &[];

/// Serves until SIGINT/SIGTERM; see [`super::serve`].
pub fn serve(_serving: Serving<'_>) -> Result<Counters, ServerError> {
    Err(ServerError::Design {
        design: "threads",
        message: "not built yet".into(),
    })
}
