//! Where results go, checked before any work starts, and where they go when that place fails
//! mid-run: `--out` must be a folder this process can write (or one it can create), and a result
//! that cannot be written there (a full disk) is kept in the system's temporary folder instead,
//! so nothing measured is lost.

use std::io;
use std::path::{Path, PathBuf};

/// Why `--out` cannot take results; the message names the folder and the part of it at fault.
#[derive(Debug, thiserror::Error)]
#[error("the output folder {} cannot be written: {why}", out.display())]
pub struct OutputDirError {
    /// The folder as given (absolute).
    pub out: PathBuf,
    /// What is wrong, naming the path at fault when it is not `out` itself.
    pub why: String,
}

/// Checks, without creating anything, that `out` is a folder this process can write into, or
/// that its nearest existing ancestor is one (so it can be created): the first existing path
/// up from `out` must be a directory, and `access(2)` must grant write and search on it. Root
/// passes permission bits but not a read-only file system (`EROFS`), which `access` reports.
///
/// Errors: an existing path on the way is a file, not a folder; the folder is not writable
/// (read-only mount, permissions); or the path cannot be looked at (`EACCES` above it).
pub fn check_writable(out: &Path) -> Result<(), OutputDirError> {
    let refuse = |why: String| OutputDirError {
        out: out.to_path_buf(),
        why,
    };
    for candidate in out.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        match std::fs::metadata(candidate) {
            Ok(meta) if meta.is_dir() => {
                use rustix::fs::Access;
                return rustix::fs::access(candidate, Access::WRITE_OK | Access::EXEC_OK).map_err(
                    |errno| {
                        let error = io::Error::from(errno);
                        refuse(if candidate == out {
                            error.to_string()
                        } else {
                            format!("it would be created in {}: {error}", candidate.display())
                        })
                    },
                );
            }
            Ok(_) => {
                return Err(refuse(format!(
                    "{} is a file, not a folder",
                    candidate.display()
                )));
            }
            // Missing, or a component above is a file (ENOTDIR): the parent tells which.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) => {}
            Err(error) => return Err(refuse(format!("{}: {error}", candidate.display()))),
        }
    }
    // A relative path with no existing component: the current directory decides.
    check_writable(&std::env::current_dir().map_err(|error| refuse(error.to_string()))?)
        .map_err(|error| refuse(error.why))
}

/// Writes `bytes` as `loadgen-<name>` in the system's temporary folder (`TMPDIR`, else `/tmp`),
/// atomically, for a document that could not be written where it belongs; returns its path.
/// `name` should tell runs apart (scenario, start time, file name).
pub fn keep_elsewhere(name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("loadgen-{name}"));
    reports::files::write_atomically(&path, bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_or_creatable_folder_passes() {
        let dir = tempfile::tempdir().unwrap();
        check_writable(dir.path()).unwrap();
        check_writable(&dir.path().join("not/yet/there")).unwrap();
        // Nothing was created by looking.
        assert!(!dir.path().join("not").exists());
    }

    #[test]
    fn a_path_below_a_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        for out in [file.clone(), file.join("runs"), file.join("runs/deeper")] {
            let error = check_writable(&out).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "the output folder {} cannot be written: {} is a file, not a folder",
                    out.display(),
                    file.display()
                )
            );
        }
    }

    #[test]
    fn a_document_is_kept_in_the_temporary_folder() {
        let name = format!("output-test-{}.json", std::process::id());
        let path = keep_elsewhere(&name, b"{}").unwrap();
        assert_eq!(path, std::env::temp_dir().join(format!("loadgen-{name}")));
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        std::fs::remove_file(&path).unwrap();
    }
}
