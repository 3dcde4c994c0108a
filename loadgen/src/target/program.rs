//! Whether the program of a `[server] command` exists, told before anything is started: the
//! shell would only say `not found` with exit status 127 once the run had begun, and a message
//! naming the program and where it was looked for is clearer.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Words `sh` runs itself (POSIX.1-2017 XCU 2.4 reserved words, 2.14 special built-ins, and the
/// common regular built-ins): a command starting with one of them is left to the shell.
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "case", "do", "done", "elif", "else", "esac", "fi", "for", "if", "in", "then",
    "until", "while", ".", ":", "break", "continue", "eval", "exit", "export", "readonly",
    "return", "set", "shift", "times", "trap", "unset", "alias", "bg", "cd", "command", "echo",
    "false", "fg", "getopts", "jobs", "kill", "printf", "pwd", "read", "test", "[", "true", "type",
    "ulimit", "umask", "unalias", "wait", "source",
];

/// The program a server command line runs, when it can be told without a shell: the first word
/// after any `exec` and `NAME=value` assignments, unless that word holds shell syntax (quotes,
/// `$`, globs, redirections, placeholders) or is a word of the shell itself. `None`: leave it
/// to the shell.
pub(super) fn command_program(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace();
    let program = loop {
        let word = words.next()?;
        let assignment = word.split_once('=').is_some_and(|(name, _)| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
        if word != "exec" && !assignment {
            break word;
        }
    };
    let plain = program
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+,:@%".contains(&b));
    (plain && !SHELL_WORDS.contains(&program)).then_some(program)
}

/// Checks that `program` names an executable file: as a path when it holds a `/` (relative to
/// the current directory, where the shell runs it), else in a directory of `PATH`. `Err` says
/// what is wrong, naming the file or the directories searched.
pub(super) fn check_program(program: &str) -> Result<(), String> {
    if program.contains('/') {
        return executable(Path::new(program)).map_err(|why| format!("{program} {why}"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    let mut last = None;
    for dir in &dirs {
        match executable(&dir.join(program)) {
            Ok(()) => return Ok(()),
            Err(why) if why != "does not exist" => last = Some((dir.join(program), why)),
            Err(_) => {}
        }
    }
    Err(match last {
        Some((found, why)) => format!("{} {why}", found.display()),
        None => format!(
            "`{program}` is not in any directory of PATH ({})",
            std::env::var("PATH").unwrap_or_default()
        ),
    })
}

/// `Ok` for a file with an execute bit; else why not.
fn executable(path: &Path) -> Result<(), &'static str> {
    match path.metadata() {
        Ok(meta) if meta.is_dir() => Err("is a directory, not a program"),
        Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Err("is not executable"),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err("does not exist"),
        Err(_) => Err("cannot be looked at"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_the_first_plain_word_after_exec_and_assignments() {
        assert_eq!(command_program("nginx -g 'daemon off;'"), Some("nginx"));
        assert_eq!(
            command_program("exec FOO=1 ./bin/server --port {port}"),
            Some("./bin/server")
        );
        assert_eq!(
            command_program("  /usr/bin/python3 -m http.server {port}"),
            Some("/usr/bin/python3")
        );
        // Left to the shell: its own words, expansions, quotes, nothing at all.
        for command in [
            "cd {root} && server",
            "$SERVER --port 1",
            "'my server' 1",
            "",
            "[ -x a ]",
        ] {
            assert_eq!(command_program(command), None, "{command}");
        }
    }

    #[test]
    fn a_missing_or_unusable_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-server");
        assert_eq!(
            check_program(missing.to_str().unwrap()),
            Err(format!("{} does not exist", missing.display()))
        );
        let plain = dir.path().join("plain-file");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(
            check_program(plain.to_str().unwrap()),
            Err(format!("{} is not executable", plain.display()))
        );
        assert_eq!(
            check_program(dir.path().to_str().unwrap()).unwrap_err(),
            format!("{} is a directory, not a program", dir.path().display())
        );
        let error = check_program("no-such-server-anywhere-4711").unwrap_err();
        assert!(
            error.starts_with("`no-such-server-anywhere-4711` is not in any directory of PATH"),
            "{error}"
        );
        check_program("sh").unwrap();
        check_program("/bin/sh").unwrap();
    }
}
