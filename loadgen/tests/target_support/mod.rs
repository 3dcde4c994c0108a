//! Shared by the server-target tests: a temporary site with one page, the options that start
//! a server on it, and the python3 check of the command-server tests.
#![allow(dead_code)] // each test file uses its own subset

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loadgen::target::TargetOptions;

/// The site's one page, `/index.html`.
pub const PAGE: &str = "hello from the site\n";

pub struct Dirs {
    _tmp: tempfile::TempDir,
    pub site: PathBuf,
    pub work: PathBuf,
}

/// A temporary site holding [`PAGE`], and a working directory beside it.
pub fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(site.join("index.html"), PAGE).unwrap();
    let work = tmp.path().join("work");
    Dirs {
        _tmp: tmp,
        site,
        work,
    }
}

/// Options that serve `dirs` with the loadgen's own built-in server, listening on `listen_ip`.
pub fn options_on(dirs: &Dirs, listen_ip: IpAddr) -> TargetOptions<'_> {
    TargetOptions {
        builtin_exe: Path::new(env!("CARGO_BIN_EXE_loadgen")),
        site_root: &dirs.site,
        workdir: &dirs.work,
        server_cpu: None,
        ready_timeout: Duration::from_secs(20),
        listen_ip,
        listen_port: None,
        url_grace: Duration::ZERO,
    }
}

/// Options that serve `dirs` on 127.0.0.1.
pub fn options(dirs: &Dirs) -> TargetOptions<'_> {
    options_on(dirs, std::net::Ipv4Addr::LOCALHOST.into())
}

/// The command-server tests run `python3 -m http.server`; without python3 they skip and say so.
pub fn python3_missing() -> bool {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return false;
    }
    println!("SKIPPED: python3 is not installed (apt-get install python3)");
    true
}
