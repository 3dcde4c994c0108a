//! Atomic file writes, shared by every file a run writes (`result.json`, `report.html`, the
//! comparison, check and claims files): a reader, or a run killed half-way, never sees half a
//! file under the final name.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that `path` holds either its old content or all of `bytes`,
/// never a part, even across a crash or a full disk:
///
/// 1. a temporary sibling `.NAME.tmp-PID` is created beside `path` (same directory, so the
///    rename stays on one file system),
/// 2. `bytes` are written to it and flushed to the disk (`fsync`),
/// 3. it is renamed over `path` (`rename(2)` replaces atomically, POSIX.1-2017 `rename()`),
/// 4. the directory is flushed, so the rename itself survives a power cut (best effort: some
///    file systems refuse `fsync` on a directory).
///
/// On any failure the temporary file is removed (it would only take space on a full disk) and
/// the error is returned as the system gave it (`StorageFull` for ENOSPC); `path` is untouched.
/// The caller names `path` in its message: the temporary file is an implementation detail.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temporary_sibling(path)?;
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// `DIR/.NAME.tmp-PID` for `DIR/NAME`; hidden, so a glob like `runs/*/*.json` skips it.
fn temporary_sibling(path: &Path) -> std::io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    Ok(path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_no_temporary_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        write_atomically(&path, b"old").unwrap();
        write_atomically(&path, b"new and longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new and longer");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["result.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("result.json");
        write_atomically(&path, b"old").unwrap();
        // A directory where the temporary file would go: its creation fails.
        let tmp = temporary_sibling(&path).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        assert!(write_atomically(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        std::fs::remove_dir(&tmp).unwrap();
        // A missing directory: nothing is created anywhere.
        let missing = dir.path().join("missing/result.json");
        let error = write_atomically(&missing, b"x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let error = write_atomically(Path::new("/"), b"x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
}
