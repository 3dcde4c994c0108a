//! Build script: embeds the git revision of the sources the loadgen is built from, so that a
//! result records the binary's own revision, wherever and from whatever directory it runs.
//!
//! Sets `LOADGEN_GIT_REVISION` (`git rev-parse HEAD`, 40 hex digits) and `LOADGEN_GIT_DIRTY`
//! (`true` when the binary's sources, listed in [`SOURCES`], differ from that revision or have
//! files not yet committed; else `false`). Both are `unknown` when git is missing or the package
//! is not in a git checkout (a crates tarball, say). Cargo reruns this script when HEAD moves
//! (a commit, checkout or reset) and when a source changes, which rebuilds the loadgen anyway.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the loadgen binary is compiled from, relative to the workspace root: the workspace
/// manifest and lock file, and the loadgen's package with its path dependencies (afterburner,
/// reports). Edits elsewhere (docs, scenarios) leave the binary as it is, and would cost a
/// rebuild for nothing if they reran this script.
const SOURCES: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "loadgen/Cargo.toml",
    "loadgen/build.rs",
    "loadgen/src",
    "server/Cargo.toml",
    "server/src",
    "reports/Cargo.toml",
    "reports/src",
    "reports/templates",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let package = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let (revision, dirty) = match revision(&package) {
        Some((revision, dirty)) => (revision, dirty.to_string()),
        None => ("unknown".to_string(), "unknown".to_string()),
    };
    println!("cargo:rustc-env=LOADGEN_GIT_REVISION={revision}");
    println!("cargo:rustc-env=LOADGEN_GIT_DIRTY={dirty}");
}

/// HEAD's commit and whether the sources differ from it; `None` without git or a checkout
/// that holds this package. Also tells cargo what to watch.
fn revision(package: &Path) -> Option<(String, bool)> {
    // An unpacked crate may sit inside some unrelated repository: only a checkout that
    // tracks this package's manifest is ours.
    git(package, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let head = git(package, &["rev-parse", "HEAD"])?;
    let workspace = package.parent()?;
    let sources: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|source| workspace.join(source).exists())
        .collect();
    let mut status = vec![
        // No index refresh written back: a build script must not touch the repository, and a
        // rewritten index would look like a change to watch.
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=all",
        "--",
    ];
    status.extend(&sources);
    let dirty = !git(workspace, &status)?.is_empty();

    for source in &sources {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(source).display()
        );
    }
    // HEAD itself (a checkout), its reflog (every commit, reset or checkout in this worktree,
    // also when the branch's ref is packed) and the branch's ref. Worktrees keep HEAD apart
    // from the refs, so git says where each is. Only files that exist: cargo reruns the script
    // on every build for a missing one.
    let mut watched = vec!["HEAD".to_string(), "logs/HEAD".to_string()];
    if let Some(branch) = git(package, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    let mut args = vec!["rev-parse"];
    for path in &watched {
        args.extend(["--git-path", path]);
    }
    for path in git(package, &args)?.lines() {
        let path = package.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some((head, dirty))
}

/// `git ARGS` run in `dir`: its trimmed stdout on success, `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
