//! TEMPORARY stub, replaced by the helper's implementation at merge.
use std::path::{Path, PathBuf};
/// One benchmark's instruction count.
pub struct InstructionCount {
    /// id
    pub bench: String,
    /// Ir
    pub instructions: u64,
}
/// Errors.
#[derive(Debug, thiserror::Error)]
pub enum InstructionsError {
    /// none
    #[error("no summaries in {0}")]
    NoSummaries(PathBuf),
}
/// Reads.
pub fn read_instruction_counts(dir: &Path) -> Result<Vec<InstructionCount>, InstructionsError> {
    Err(InstructionsError::NoSummaries(dir.to_path_buf()))
}
