//! `loadgen merge`: reads the parts of a sharded run, refuses parts that do not belong together,
//! and writes the merged `result.json` and report (the merging itself is `reports::merge`).

use crate::cli::{ExitStatus, MergeArgs};

/// Why `loadgen merge` ended without a merged run: its exit status (2 refused, 4 not written)
/// and the message, naming the part or file at fault.
#[derive(Debug)]
pub struct MergeFailure {
    /// 2 when the parts were refused, 4 when the merged files could not be written.
    pub status: ExitStatus,
    /// What went wrong, naming the culprit.
    pub error: anyhow::Error,
}

/// Runs `loadgen merge`: prints the merged summary and where it went; `Ok(Success)` for a
/// valid merged run, `Ok(Invalid)` for a merged but invalid one.
pub fn command(args: &MergeArgs) -> Result<ExitStatus, MergeFailure> {
    Err(MergeFailure {
        status: ExitStatus::Refused,
        error: anyhow::anyhow!("merging {} parts is not built yet", args.parts.len()),
    })
}
