//! Real Debian web servers for `tests/real_servers.rs`: nginx, lighttpd and apache2, each given
//! a minimal configuration in a tempdir of its own (127.0.0.1 on a free port, its files, logs
//! and pid there, one worker, keep-alive limits out of the way), started in the foreground as
//! a child, waited for, and stopped by its PID (a guard stops it on panic too). Each serves the
//! same four kinds of reply at URLs of its own, and writes an access log of one line a request
//! with the request line, the status and the reply's bytes on the wire.

pub mod raw_http;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A web server Debian packages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Server {
    Nginx,
    Lighttpd,
    Apache2,
}

/// The kinds of reply every real server sends and the loadgen must frame (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A 1 KiB static file, framed by `Content-Length`.
    ContentLength,
    /// A body of unknown length, sent `Transfer-Encoding: chunked`.
    Chunked,
    /// `204 No Content`, no `Content-Length`: the reply ends at its head.
    NoContent,
    /// `304 Not Modified`, no `Content-Length`: the reply ends at its head.
    NotModified,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::ContentLength,
        Kind::Chunked,
        Kind::NoContent,
        Kind::NotModified,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::ContentLength => "content-length",
            Kind::Chunked => "chunked",
            Kind::NoContent => "204",
            Kind::NotModified => "304",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Kind::ContentLength | Kind::Chunked => 200,
            Kind::NoContent => 204,
            Kind::NotModified => 304,
        }
    }
}

impl Server {
    pub const ALL: [Server; 3] = [Server::Nginx, Server::Lighttpd, Server::Apache2];

    pub fn name(self) -> &'static str {
        match self {
            Server::Nginx => "nginx",
            Server::Lighttpd => "lighttpd",
            Server::Apache2 => "apache2",
        }
    }

    /// The Debian package that installs it (with what the configuration below needs:
    /// nginx's autoindex and proxy, lighttpd's mod_cgi, apache2's mod_cgid are all in them).
    pub fn package(self) -> &'static str {
        match self {
            Server::Nginx => "nginx-light",
            Server::Lighttpd => "lighttpd",
            Server::Apache2 => "apache2",
        }
    }

    /// The URL path of each kind of reply on this server.
    pub fn path(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (_, Kind::ContentLength) => "/1k.bin",
            // nginx's directory listing is built whole but sent without a length, so chunked.
            (Server::Nginx, Kind::Chunked) => "/list/",
            (Server::Nginx, Kind::NoContent) => "/no-content",
            (Server::Nginx, Kind::NotModified) => "/not-modified",
            (_, Kind::Chunked) => "/cgi-bin/chunked",
            (_, Kind::NoContent) => "/cgi-bin/no-content",
            (_, Kind::NotModified) => "/cgi-bin/not-modified",
        }
    }

    /// The server's binary: in `PATH`, or in `/usr/sbin` where Debian puts it (and which a
    /// user's `PATH` often lacks).
    pub fn binary(self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(self.name()))
            .find(|candidate| candidate.is_file())
    }
}

/// When the site's files were last modified, after the Unix epoch: 2001-09-09T01:46:40Z.
const SITE_MTIME: Duration = Duration::from_secs(1_000_000_000);

/// The static file's size.
pub const STATIC_BYTES: usize = 1024;
/// What the chunked CGI script writes, in two halves of this many bytes each.
pub const CGI_HALF_BYTES: usize = 1000;

/// The static file's bytes: every byte value, so a wrong offset shows.
pub fn static_body() -> Vec<u8> {
    (0..STATIC_BYTES).map(|i| (i % 251) as u8).collect()
}

/// The chunked CGI script's body: `a`s then `b`s.
pub fn cgi_chunked_body() -> Vec<u8> {
    let mut body = vec![b'a'; CGI_HALF_BYTES];
    body.extend(vec![b'b'; CGI_HALF_BYTES]);
    body
}

/// The CGI scripts (lighttpd, apache2), `/bin/sh` so that nothing else is needed: name and
/// text. `chunked` writes its head and first half, then pauses before the second: the server
/// has sent the head by then, so it cannot know the length and must chunk, however the machine
/// schedules it (without the pause a server that happened to read the script's whole output
/// before replying could send a `Content-Length` instead). 20 ms still leaves a few hundred
/// requests in a run.
fn cgi_scripts() -> [(&'static str, String); 3] {
    [
        (
            "chunked",
            format!(
                "#!/bin/sh\n\
                 printf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                 head -c {CGI_HALF_BYTES} /dev/zero | tr '\\000' a\n\
                 sleep 0.02\n\
                 head -c {CGI_HALF_BYTES} /dev/zero | tr '\\000' b\n"
            ),
        ),
        (
            "no-content",
            "#!/bin/sh\nprintf 'Status: 204 No Content\\r\\n\\r\\n'\n".into(),
        ),
        (
            "not-modified",
            "#!/bin/sh\nprintf 'Status: 304 Not Modified\\r\\nETag: \"bench\"\\r\\n\\r\\n'\n"
                .into(),
        ),
    ]
}

/// A server's directory: `htdocs/` (the document root: `1k.bin` and `list/`), `cgi-bin/`
/// (outside the document root, so that the loadgen's `[site]` does not take the scripts for
/// files of known length), `run/`, the configuration, logs and pid file.
pub struct ServerDir {
    pub root: PathBuf,
}

impl ServerDir {
    /// Writes the site into `root`, readable by all: a server started as root serves it from
    /// an unprivileged worker (nginx's `nobody`, apache2's `User`), and the tempdir is 0700.
    pub fn create(root: &Path) -> std::io::Result<ServerDir> {
        let dir = ServerDir {
            root: root.to_path_buf(),
        };
        for sub in ["htdocs", "htdocs/list", "cgi-bin", "run"] {
            fs::create_dir_all(root.join(sub))?;
        }
        fs::write(dir.htdocs().join("1k.bin"), static_body())?;
        fs::write(dir.htdocs().join("list/a.txt"), "a\n")?;
        fs::write(dir.htdocs().join("list/b.txt"), "bb\n")?;
        for (name, script) in cgi_scripts() {
            let path = root.join("cgi-bin").join(name);
            fs::write(&path, script)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
        for sub in ["", "htdocs", "htdocs/list", "cgi-bin", "run"] {
            fs::set_permissions(root.join(sub), fs::Permissions::from_mode(0o755))?;
        }
        for file in ["htdocs/1k.bin", "htdocs/list/a.txt", "htdocs/list/b.txt"] {
            let path = root.join(file);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
            // Modified long ago: apache2 makes the ETag of a file modified in the current
            // second weak (`W/"..."`, two bytes more), so replies in the run's first second
            // would differ in size from the later ones.
            fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(std::time::UNIX_EPOCH + SITE_MTIME)?;
        }
        Ok(dir)
    }

    pub fn htdocs(&self) -> PathBuf {
        self.root.join("htdocs")
    }

    pub fn access_log(&self) -> PathBuf {
        self.root.join("access.log")
    }

    pub fn error_log(&self) -> PathBuf {
        self.root.join("error.log")
    }
}

/// Whether this process runs as root: the servers then drop privileges for their workers.
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Writes `server`'s configuration into `dir` and returns the command that starts it in the
/// foreground. Every configuration: 127.0.0.1:`port` only; pid, lock, error and access log in
/// `dir`; one worker process; keep-alive limits raised (requests per connection, idle
/// timeouts) so that the server never closes a loadgen connection during a run; an access log
/// line `"REQUEST LINE" STATUS BYTES`, BYTES being the reply's bytes on the wire (head and
/// framed body: nginx `$bytes_sent`, lighttpd and apache2 `%O`).
fn configure(
    server: Server,
    binary: &Path,
    dir: &ServerDir,
    port: u16,
) -> std::io::Result<Command> {
    let root = dir.root.display();
    let htdocs = dir.htdocs();
    let htdocs = htdocs.display();
    let access_log = dir.access_log();
    let access_log = access_log.display();
    let error_log = dir.error_log();
    let error_log = error_log.display();
    let mut command = Command::new(binary);
    match server {
        Server::Nginx => {
            // /not-modified is nginx proxying to itself with `If-None-Match: *`: a real
            // conditional GET, answered by nginx's not-modified filter, which drops the length
            // as it does for browsers. (`return 304;` would send `Content-Length: 0`, a reply
            // any length-only client frames, so it would not test the 304 rule.) The inner
            // server listens on a Unix socket and logs nothing, so each loadgen request is one
            // line. Temp paths point into `dir`: nginx creates them at start, and the
            // compiled-in ones under /var/lib/nginx need root.
            let config = format!(
                r#"
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {error_log} warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {root}/run/body;
    proxy_temp_path {root}/run/proxy;
    fastcgi_temp_path {root}/run/fastcgi;
    uwsgi_temp_path {root}/run/uwsgi;
    scgi_temp_path {root}/run/scgi;
    log_format bench '"$request" $status $bytes_sent';
    access_log {access_log} bench;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {{
        listen unix:{root}/run/inner.sock;
        access_log off;
        root {htdocs};
    }}
    server {{
        listen 127.0.0.1:{port};
        root {htdocs};
        location /list/ {{ autoindex on; }}
        location = /no-content {{ return 204; }}
        location = /not-modified {{
            proxy_pass http://unix:{root}/run/inner.sock:/1k.bin;
            proxy_set_header If-None-Match "*";
        }}
    }}
}}
"#
            );
            let path = dir.root.join("nginx.conf");
            fs::write(&path, config)?;
            // -e: errors before the configuration is read go here, not to /var/log/nginx.
            command
                .arg("-p")
                .arg(&dir.root)
                .arg("-e")
                .arg(dir.error_log())
                .arg("-c")
                .arg(path);
        }
        Server::Lighttpd => {
            // stream-response-body: send a CGI reply as it comes (chunked) instead of
            // buffering it whole and sending a length. max-keep-alive-requests is a 16-bit
            // setting: 65535 is the most it takes. lighttpd buffers its access log for about a
            // second and flushes it at exit, so the log is read after the server stopped.
            let config = format!(
                r#"
server.document-root = "{htdocs}"
server.bind = "127.0.0.1"
server.port = {port}
server.pid-file = "{root}/lighttpd.pid"
server.errorlog = "{error_log}"
server.modules = ("mod_alias", "mod_cgi", "mod_accesslog")
server.max-keep-alive-requests = 65535
server.max-keep-alive-idle = 300
server.max-read-idle = 300
server.max-write-idle = 300
server.stream-response-body = 1
alias.url = ("/cgi-bin/" => "{root}/cgi-bin/")
$HTTP["url"] =^ "/cgi-bin/" {{ cgi.assign = ("" => "") }}
accesslog.filename = "{access_log}"
accesslog.format = "\"%r\" %s %O"
"#
            );
            let path = dir.root.join("lighttpd.conf");
            fs::write(&path, config)?;
            command.arg("-D").arg("-f").arg(path);
        }
        Server::Apache2 => {
            // The event MPM with one child process of 16 threads (more than the loadgen's
            // connections plus a probe). mod_cgid, Debian's CGI module for threaded MPMs.
            // MaxKeepAliveRequests 0: unlimited. As root the children run as nobody.
            let modules = "/usr/lib/apache2/modules";
            let user = if is_root() {
                "User nobody\nGroup nogroup\n"
            } else {
                ""
            };
            let config = format!(
                r#"
ServerRoot "{root}"
DefaultRuntimeDir "{root}/run"
PidFile "{root}/apache2.pid"
ErrorLog "{error_log}"
LogLevel warn
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
LoadModule mpm_event_module {modules}/mod_mpm_event.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule alias_module {modules}/mod_alias.so
LoadModule cgid_module {modules}/mod_cgid.so
{user}StartServers 1
ServerLimit 1
ThreadLimit 16
ThreadsPerChild 16
MaxRequestWorkers 16
MinSpareThreads 1
MaxSpareThreads 16
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
Timeout 300
ScriptSock "{root}/run/cgid.sock"
DocumentRoot "{htdocs}"
<Directory "/">
    Require all granted
</Directory>
ScriptAlias "/cgi-bin/" "{root}/cgi-bin/"
LogFormat "\"%r\" %>s %O" bench
CustomLog "{access_log}" bench
"#
            );
            let path = dir.root.join("apache2.conf");
            fs::write(&path, config)?;
            command
                .arg("-d")
                .arg(&dir.root)
                .arg("-f")
                .arg(path)
                .arg("-DFOREGROUND");
        }
    }
    Ok(command)
}

/// A port free on 127.0.0.1 right now. Another process could take it before the server binds
/// it; the server then fails to start and says so.
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// A server started by this test, stopped (by its PID) when dropped.
pub struct Running {
    server: Server,
    child: Option<Child>,
    root: PathBuf,
    pub addr: SocketAddr,
}

/// A server that answers in milliseconds; more than this is a failure to start.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// SIGTERM takes effect in well under a second; past this the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Running {
    /// Configures `server` in `dir`, starts it and waits until it answers an HTTP request.
    pub fn start(server: Server, binary: &Path, dir: &ServerDir) -> Result<Running, String> {
        let io = |what: &str, e: std::io::Error| format!("{}: {what}: {e}", server.name());
        let port = free_port().map_err(|e| io("finding a free port", e))?;
        let mut command = configure(server, binary, dir, port).map_err(|e| io("configuring", e))?;
        // Files, not pipes: a chatty server never blocks on a pipe nobody reads.
        let stdout = fs::File::create(dir.root.join("stdout.txt")).map_err(|e| io("stdout", e))?;
        let stderr = fs::File::create(dir.root.join("stderr.txt")).map_err(|e| io("stderr", e))?;
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        let child = command
            .spawn()
            .map_err(|e| io(&format!("starting {}", binary.display()), e))?;
        let mut running = Running {
            server,
            child: Some(child),
            root: dir.root.clone(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        running.wait_until_ready()?;
        Ok(running)
    }

    /// Polls with an HTTP/1.0 GET (any status line will do) until the server answers, it
    /// exits, or [`READY_TIMEOUT`] passes.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "{} exited with {status} before it answered{}",
                    self.server.name(),
                    self.diagnostics()
                ));
            }
            if answers(self.addr) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "{} did not answer at {} within {READY_TIMEOUT:?}{}",
                    self.server.name(),
                    self.addr,
                    self.diagnostics()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The server's stderr and error log, for messages.
    pub fn diagnostics(&self) -> String {
        let mut text = String::new();
        for name in ["stderr.txt", "error.log"] {
            let content = fs::read_to_string(self.root.join(name)).unwrap_or_default();
            if !content.trim().is_empty() {
                text.push_str(&format!("\n--- {name}:\n{}", content.trim_end()));
            }
        }
        text
    }

    /// Stops the server: SIGTERM to its PID (each stops its workers and, lighttpd, flushes
    /// its access log), then waits for it; SIGKILL if it does not go within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        let Some(mut child) = self.child.take() else {
            return Err(format!("{} was not running", self.server.name()));
        };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let asked = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if asked.elapsed() < STOP_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "{} (pid {}) did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed",
                        self.server.name(),
                        pid.as_raw_nonzero()
                    ));
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// Whether an HTTP server answers at `addr` (any status line).
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(format!("GET /1k.bin?ready HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// One access-log line: `"REQUEST LINE" STATUS BYTES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The request target as sent, query included.
    pub target: String,
    pub status: u16,
    /// The reply's bytes on the wire, as the server counted them.
    pub bytes: u64,
}

/// Reads an access log written in the format [`configure`] sets.
pub fn read_access_log(path: &Path) -> Result<Vec<LogLine>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            parse_log_line(line).ok_or_else(|| {
                format!(
                    "{}:{}: not `\"REQUEST\" STATUS BYTES`: {line}",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn parse_log_line(line: &str) -> Option<LogLine> {
    let rest = line.strip_prefix('"')?;
    let (request, rest) = rest.rsplit_once('"')?;
    let target = request.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut fields = rest.split_whitespace();
    let status = fields.next()?.parse().ok()?;
    let bytes = match fields.next()? {
        "-" => 0,
        n => n.parse().ok()?,
    };
    Some(LogLine {
        target,
        status,
        bytes,
    })
}
