//! Real web servers as targets (`[server] kind = "real"`): nginx, lighttpd, apache2 with the
//! prefork and the event MPM, mini_httpd, h2o and caddy, each from its Debian package, each run
//! from a configuration file this module writes into the run's work directory.
//!
//! Every generated configuration serves the scenario's site root on `{host}:{port}` (the address
//! and free port the loadgen picked, as for a command server), with the access log off, the error
//! log on the server's stderr (the work directory's `server.stderr`, so that a failed start
//! quotes it), its pid file in the work directory, in the foreground, with one worker unless the
//! scenario says otherwise (apache-prefork: a fixed pool of 256 processes), keep-alive idle
//! timeouts of 300 s and no limit (or the server's largest) on requests per connection, no
//! compression, sendfile at each server's own default, no MIME tables beyond what each has built
//! in (`scenarios/README.md` has the whole list, and why). The command line is
//! `exec BINARY ARGS...`, run by `ServerHandle::start`'s command machinery: a process group of its
//! own, pinned to the server's CPU, polled until it answers, stopped with SIGTERM to the group and
//! SIGKILL after the grace period; `exec` makes the server itself the group's leader, whose
//! process tree the probe measures.
//!
//! | file | server |
//! |---|---|
//! | `nginx.rs` | nginx |
//! | `lighttpd.rs` | lighttpd |
//! | `apache.rs` | apache2, prefork and event MPMs |
//! | `mini_httpd.rs` | mini_httpd |
//! | `h2o.rs` | h2o |
//! | `caddy.rs` | caddy |

mod apache;
mod caddy;
mod h2o;
mod lighttpd;
mod mini_httpd;
mod nginx;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A real web server the loadgen can configure and start (`[server] kind = "real"`,
/// `server = "NAME"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RealServer {
    /// nginx: one master and `workers` event-driven worker processes.
    Nginx,
    /// lighttpd: one event-driven process (`workers` > 1: that many forked workers).
    Lighttpd,
    /// apache2 with the prefork MPM: a process per connection, from a fixed pool of `workers`
    /// processes (256 by default); Apache was the 1999 baseline.
    ApachePrefork,
    /// apache2 with the event MPM: `workers` processes of 64 threads each, idle keep-alive
    /// connections held by a listener thread.
    ApacheEvent,
    /// mini_httpd (by thttpd's author): a process forked per connection, no keep-alive.
    MiniHttpd,
    /// h2o: `workers` event-loop threads in one process.
    H2o,
    /// caddy (Go): `workers` is `GOMAXPROCS`.
    Caddy,
}

/// Threads per apache-event process.
pub const APACHE_EVENT_THREADS: u32 = 64;
/// apache-prefork's default process limit: enough for a few hundred slow clients at once.
pub const APACHE_PREFORK_DEFAULT_WORKERS: u32 = 256;
/// The keep-alive idle timeout every generated configuration sets, in seconds: longer than any
/// think time or run, so the server never closes a connection the clients mean to reuse.
pub const KEEP_ALIVE_IDLE_SECS: u32 = 300;

impl RealServer {
    /// Every real server, in the order the documentation lists them.
    pub const ALL: [RealServer; 7] = [
        RealServer::Nginx,
        RealServer::Lighttpd,
        RealServer::ApachePrefork,
        RealServer::ApacheEvent,
        RealServer::MiniHttpd,
        RealServer::H2o,
        RealServer::Caddy,
    ];

    /// The name a scenario (`server = "..."`) and `loadgen compare --servers` use.
    pub fn name(self) -> &'static str {
        match self {
            RealServer::Nginx => "nginx",
            RealServer::Lighttpd => "lighttpd",
            RealServer::ApachePrefork => "apache-prefork",
            RealServer::ApacheEvent => "apache-event",
            RealServer::MiniHttpd => "mini-httpd",
            RealServer::H2o => "h2o",
            RealServer::Caddy => "caddy",
        }
    }

    /// The server of that name, if there is one.
    pub fn from_name(name: &str) -> Option<RealServer> {
        RealServer::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The Debian package that installs its binary (`apt-get install PACKAGE`).
    pub fn package(self) -> &'static str {
        match self {
            RealServer::Nginx => "nginx-light",
            RealServer::Lighttpd => "lighttpd",
            RealServer::ApachePrefork | RealServer::ApacheEvent => "apache2",
            RealServer::MiniHttpd => "mini-httpd",
            RealServer::H2o => "h2o",
            RealServer::Caddy => "caddy",
        }
    }

    /// The names its binary goes by, looked for in `PATH`, `/usr/sbin`, `/usr/bin` and `/sbin`.
    pub fn binary_names(self) -> &'static [&'static str] {
        match self {
            RealServer::Nginx => &["nginx"],
            RealServer::Lighttpd => &["lighttpd"],
            RealServer::ApachePrefork | RealServer::ApacheEvent => &["apache2", "httpd"],
            RealServer::MiniHttpd => &["mini_httpd", "mini-httpd"],
            RealServer::H2o => &["h2o"],
            RealServer::Caddy => &["caddy"],
        }
    }

    /// The server's binary: in `PATH`, or where Debian puts it (`/usr/sbin`, which a user's
    /// `PATH` often lacks). `None`: not installed.
    pub fn find_binary(self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let dirs: Vec<PathBuf> = std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
            .collect();
        self.binary_names().iter().find_map(|name| {
            dirs.iter().map(|dir| dir.join(name)).find(|candidate| {
                candidate
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
    }

    /// `workers` when the scenario gives none: 256 for apache-prefork (its process limit), 1
    /// for the others.
    pub fn default_workers(self) -> u32 {
        match self {
            RealServer::ApachePrefork => APACHE_PREFORK_DEFAULT_WORKERS,
            _ => 1,
        }
    }

    /// Whether `workers` means anything to it: not to mini_httpd, which forks a process per
    /// connection and has no pool.
    pub fn takes_workers(self) -> bool {
        self != RealServer::MiniHttpd
    }

    /// Whether it keeps connections open for further requests: all but mini_httpd, which
    /// answers `Connection: close` to every request.
    pub fn keeps_alive(self) -> bool {
        self != RealServer::MiniHttpd
    }

    /// Whether, started as root, it serves the site from an unprivileged user (apache2 refuses
    /// to serve as root): then the site must be readable by others.
    pub fn drops_root(self) -> bool {
        matches!(self, RealServer::ApachePrefork | RealServer::ApacheEvent)
    }
}

impl fmt::Display for RealServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `workers` of a `[server]` table: a positive count. (Checked here, with the key in the
/// message: inside the internally tagged `[server]` table serde loses the key's name and place.)
pub(crate) fn some_workers<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<u32>, D::Error> {
    // `null` (a scenario serialized to JSON and read back) is no count given.
    let Some(workers) = Option::<u64>::deserialize(d)? else {
        return Ok(None);
    };
    match u32::try_from(workers) {
        Ok(workers) if workers >= 1 => Ok(Some(workers)),
        _ => Err(serde::de::Error::custom(format!(
            "server.workers: {workers} is not a count from 1 to {}",
            u32::MAX
        ))),
    }
}

/// What a generated configuration is made from.
#[derive(Clone, Debug)]
pub(super) struct ConfigInput<'a> {
    /// Where to listen: `{host}:{port}`.
    pub addr: SocketAddr,
    /// The directory served.
    pub site_root: &'a Path,
    /// Configuration, pid file and the server's own state go here.
    pub workdir: &'a Path,
    /// Workers, processes or threads as the server counts them (already defaulted).
    pub workers: u32,
    /// Whether the loadgen runs as root (and so the server starts as root).
    pub as_root: bool,
    /// Connections the server should be able to hold at once (from the open-file limit).
    pub max_connections: u32,
}

/// How to start a configured server.
#[derive(Clone, Debug)]
pub(super) struct Launch {
    /// Arguments after the binary.
    pub args: Vec<OsString>,
    /// Environment variables to set.
    pub env: Vec<(String, String)>,
}

/// Writes `server`'s configuration for `input` into the work directory and says how to run it.
pub(super) fn configure(server: RealServer, input: &ConfigInput) -> io::Result<Launch> {
    match server {
        RealServer::Nginx => nginx::configure(input),
        RealServer::Lighttpd => lighttpd::configure(input),
        RealServer::ApachePrefork => apache::configure(apache::Mpm::Prefork, input),
        RealServer::ApacheEvent => apache::configure(apache::Mpm::Event, input),
        RealServer::MiniHttpd => mini_httpd::configure(input),
        RealServer::H2o => h2o::configure(input),
        RealServer::Caddy => caddy::configure(input),
    }
}

/// Connections a server should be able to hold: the open-file limit the server inherits, less
/// some for its own files, from 1,024 to 65,536.
pub(super) fn connection_limit() -> u32 {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(65_536 + 128);
    u32::try_from(soft.saturating_sub(128))
        .unwrap_or(u32::MAX)
        .clamp(1024, 65_536)
}

/// The first directory on the way to `path` (itself included) that others cannot enter (or, for
/// `path` itself, list), with its mode: an unprivileged server user could not read the site.
pub(super) fn not_readable_by_others(path: &Path) -> Option<(PathBuf, u32)> {
    let path = path.canonicalize().ok()?;
    let mut dirs: Vec<&Path> = path.ancestors().collect();
    dirs.reverse();
    for dir in dirs {
        let mode = dir.metadata().ok()?.permissions().mode() & 0o7777;
        let needed = if dir == path { 0o005 } else { 0o001 };
        if mode & needed != needed {
            return Some((dir.to_path_buf(), mode));
        }
    }
    None
}

/// A path as it goes into a configuration file between double quotes; `None` for one that
/// holds a double quote, a backslash or a newline, which no generated file escapes.
pub(super) fn quoted_path(path: &Path) -> io::Result<String> {
    let text = path.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not UTF-8", path.display()),
        )
    })?;
    if text.contains(['"', '\\', '\n', '\r']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{text}: a path with `\"`, `\\` or a line break cannot go into a server's configuration"),
        ));
    }
    Ok(text.to_string())
}

/// Writes `text` to `workdir/name` and returns the path.
pub(super) fn write_config(workdir: &Path, name: &str, text: &str) -> io::Result<PathBuf> {
    let path = workdir.join(name);
    std::fs::write(&path, text)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for server in RealServer::ALL {
            assert_eq!(RealServer::from_name(server.name()), Some(server));
            let text = toml::to_string(&std::collections::BTreeMap::from([("s", server)])).unwrap();
            assert_eq!(text.trim(), format!("s = \"{}\"", server.name()));
        }
        assert_eq!(RealServer::from_name("apache"), None);
    }

    #[test]
    fn a_real_server_table_survives_json() {
        for workers in [None, Some(3)] {
            let spec = crate::scenario::ServerSpec::Real {
                server: RealServer::H2o,
                workers,
                cpu: None,
            };
            let json = serde_json::to_string(&spec).unwrap();
            match serde_json::from_str(&json).unwrap() {
                crate::scenario::ServerSpec::Real { workers: back, .. } => {
                    assert_eq!(back, workers, "{json}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_private_directory_is_found() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = not_readable_by_others(&site).unwrap();
        assert_eq!(found, (dir.path().canonicalize().unwrap(), 0o700));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        // /tmp and / are open to all on any machine these tests run on.
        assert_eq!(not_readable_by_others(&site), None);
    }
}
