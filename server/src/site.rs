//! The in-RAM site: every file loaded at start, every response built once, and the routing
//! from a request to the bytes that answer it.
//!
//! A `Resource` holds one response: three precomputed heads (HTTP/1.1 keep-alive with no
//! `Connection` header, HTTP/1.0 `Connection: keep-alive`, and `Connection: close`) followed by
//! the body, in one allocation. Connections borrow a `&Resource` and a cursor; nothing is copied
//! or built per request, and the disk is never touched after start-up. The one exception is rare:
//! `/dir?query` is redirected to `/dir/?query`, a `Location` only the request knows, so that
//! response is built for it ([`Answer::Built`]).
//!
//! Only what the root holds is loaded: a symbolic link is followed only to a file whose real
//! path is inside the root, links to directories are not followed, and names beginning with `.`
//! are skipped unless `--dotfiles` ([`Dotfiles`]). There is no directory listing: a directory
//! is served only through its `index.html`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::io::Read;
use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::http::{normalize_target, Method, Request, Status, Version};
use crate::live::LiveStream;
use crate::reftab::{pattern_matches, Rule};
use crate::ServerError;

/// The error of a failed `action` on `path`.
fn file_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ServerError {
    let path = path.to_path_buf();
    move |error| ServerError::SiteFile {
        action,
        path,
        error,
    }
}

/// Which `Connection` header a response carries; picks one of a resource's precomputed heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: no header needed.
    Implicit = 0,
    /// HTTP/1.0 keep-alive: `Connection: keep-alive`.
    KeepAlive = 1,
    /// `Connection: close`.
    Close = 2,
}

/// One complete response in RAM.
pub struct Resource {
    status: Status,
    bytes: Box<[u8]>,
    /// (start, end) of each head variant in `bytes`, indexed by `ConnectionHeader`.
    heads: [(u32, u32); 3],
    body_start: usize,
}

impl Resource {
    /// The three heads back to back, with room reserved for the body that follows them.
    fn heads(
        status: Status,
        content_type: &str,
        extra_headers: &str,
        body_len: usize,
    ) -> (Vec<u8>, [(u32, u32); 3]) {
        let mut bytes = Vec::new();
        let mut ranges = [(0u32, 0u32); 3];
        let variants = ["", "Connection: keep-alive\r\n", "Connection: close\r\n"];
        for (range, connection) in ranges.iter_mut().zip(variants) {
            let start = bytes.len() as u32;
            let mut head = String::new();
            let _ = write!(
                head,
                "HTTP/1.1 {} {}\r\nServer: afterburner\r\nContent-Type: {content_type}\r\n\
                 Content-Length: {body_len}\r\n{extra_headers}{connection}\r\n",
                status.code(),
                status.reason()
            );
            bytes.extend_from_slice(head.as_bytes());
            *range = (start, bytes.len() as u32);
        }
        bytes.reserve_exact(body_len);
        (bytes, ranges)
    }

    /// `bytes` is what `heads` returned with the body appended.
    fn finish(status: Status, bytes: Vec<u8>, heads: [(u32, u32); 3]) -> Resource {
        Resource {
            status,
            body_start: heads[2].1 as usize,
            bytes: bytes.into_boxed_slice(),
            heads,
        }
    }

    fn in_memory(status: Status, content_type: &str, extra_headers: &str, body: &[u8]) -> Resource {
        let (mut bytes, heads) = Self::heads(status, content_type, extra_headers, body.len());
        bytes.extend_from_slice(body);
        Self::finish(status, bytes, heads)
    }

    /// A response that is only `head`, the same for every `Connection` variant: the live
    /// stream's (`Connection: close` and no `Content-Length`, the body follows as published).
    pub fn stream_head(head: &str) -> Resource {
        let end = head.len() as u32;
        Resource {
            status: Status::Ok,
            bytes: head.as_bytes().into(),
            heads: [(0, end); 3],
            body_start: head.len(),
        }
    }

    /// The response's status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The response head carrying `connection`'s header.
    pub fn head(&self, connection: ConnectionHeader) -> &[u8] {
        let (start, end) = self.heads[connection as usize];
        &self.bytes[start as usize..end as usize]
    }

    /// The response body.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body_start..]
    }
}

/// The response chosen for a request: almost always one of the site's, built at start and
/// borrowed; a directory redirect that keeps the request's query is built for that request.
pub enum Answer<'site> {
    /// A response of the site, shared by every request for it.
    Prebuilt(&'site Resource),
    /// A response built for one request (`/dir?q` redirected to `/dir/?q`).
    Built(Box<Resource>),
}

impl Deref for Answer<'_> {
    type Target = Resource;

    fn deref(&self) -> &Resource {
        match self {
            Answer::Prebuilt(resource) => resource,
            Answer::Built(resource) => resource,
        }
    }
}

/// Whether names beginning with `.` belong to the site (`--dotfiles`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dotfiles {
    /// Files and directories whose name begins with `.` (`.git`, `.env`, `.htpasswd`) are not
    /// loaded, nor links into them: requests for them are 404.
    #[default]
    Skip,
    /// They are loaded and served like any other file.
    Serve,
}

/// Entries under the root that were not loaded, and why (directories count once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Names beginning with `.`, and links to such names, under [`Dotfiles::Skip`].
    pub dotfiles: usize,
    /// Symbolic links whose real path is outside the root.
    pub outside_root: usize,
}

/// What a normalised path routes to.
#[derive(Clone, Copy, Debug)]
struct Route {
    resource: usize,
    /// Index into `Site::hotlink_rules` of the first reftab rule whose pattern covers the path.
    hotlink_rule: Option<u16>,
}

/// A reftab rule and the resource it serves instead.
struct HotlinkRule {
    rule: Rule,
    alternate: usize,
}

/// The hasher of the site's tables: SipHash with a fixed key instead of std's random one, so
/// that a lookup runs the same instructions in every process (the callgrind instruction counts
/// of `loadgen check` compare builds exactly; with a random key a probe sometimes met a false
/// match, about one run in 30). No hash flooding follows: the tables hold only the site's own
/// files, fixed at start, and a request only looks up.
type FixedSeed = BuildHasherDefault<DefaultHasher>;

/// The whole site, immutable once loaded.
pub struct Site {
    resources: Vec<Resource>,
    routes: HashMap<Box<[u8]>, Route, FixedSeed>,
    errors: HashMap<Status, usize, FixedSeed>,
    hotlink_rules: Vec<HotlinkRule>,
    file_count: usize,
    body_bytes: u64,
    skipped: Skipped,
    live: Option<LiveRoute>,
}

/// The live stream, its path and its two heads (resource indices).
struct LiveRoute {
    stream: LiveStream,
    path: Box<[u8]>,
    /// Answers HTTP/1.0 requests (close-delimited).
    http10: usize,
    /// Answers HTTP/1.1 requests (chunked for CBR).
    http11: usize,
    /// `http11`'s framing.
    http11_framing: StreamFraming,
}

/// How a live stream's body is delimited on one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFraming {
    /// The body ends when the connection closes (RFC 9112 §6.3 rule 8): MJPEG, and CBR to
    /// HTTP/1.0.
    CloseDelimited,
    /// `Transfer-Encoding: chunked` (RFC 9112 §7.1): CBR to HTTP/1.1.
    Chunked,
}

/// The answer chosen for one request.
pub struct Selection<'site> {
    /// The response: the site's own, or (a redirect keeping a query) one built for the request.
    pub resource: Answer<'site>,
    /// False for HEAD: the head only.
    pub send_body: bool,
    /// Which head: keep-alive as the request asked, or close.
    pub connection: ConnectionHeader,
    /// The reftab rule (0-based) whose alternate was served, if any.
    pub hotlink_rule: Option<usize>,
    /// The live stream's head (`--live`): after it, a GET becomes a viewer.
    pub stream: Option<StreamFraming>,
}

impl Selection<'_> {
    /// Whether the connection closes after this response.
    pub fn closes(&self) -> bool {
        self.connection == ConnectionHeader::Close
    }
}

impl Site {
    /// Loads every regular file under `root` into RAM, refusing sites over `max_bytes`; names
    /// beginning with `.` are skipped ([`Dotfiles::Skip`]).
    pub fn load(root: &Path, max_bytes: u64, rules: Vec<Rule>) -> Result<Site, ServerError> {
        Site::load_with(root, max_bytes, Dotfiles::Skip, rules)
    }

    /// Loads every regular file under `root` into RAM, refusing sites over `max_bytes`. A
    /// symbolic link is loaded only if it leads to a file whose real path is inside the root;
    /// links to directories are not followed (no cycles); `dotfiles` says whether names
    /// beginning with `.` are loaded. What was left out is in [`Site::skipped`].
    pub fn load_with(
        root: &Path,
        max_bytes: u64,
        dotfiles: Dotfiles,
        rules: Vec<Rule>,
    ) -> Result<Site, ServerError> {
        let meta = fs::metadata(root).map_err(file_error("site root", root))?;
        if !meta.is_dir() {
            return Err(ServerError::RootNotADirectory {
                path: root.to_path_buf(),
            });
        }
        let real_root = fs::canonicalize(root).map_err(file_error("site root", root))?;
        let mut walk = Walk {
            real_root: &real_root,
            dotfiles,
            skipped: Skipped::default(),
            files: Vec::new(),
        };
        walk.collect(root, &mut Vec::new())?;
        let Walk { files, skipped, .. } = walk;
        let total: u64 = files.iter().map(|f| f.size).sum();
        if total > max_bytes {
            return Err(ServerError::SiteTooLarge {
                root: root.to_path_buf(),
                bytes: total,
                files: files.len(),
                limit: max_bytes,
            });
        }

        let mut site = Site {
            resources: Vec::with_capacity(files.len() + 16),
            routes: HashMap::with_capacity_and_hasher(files.len() * 2, FixedSeed::default()),
            errors: HashMap::default(),
            hotlink_rules: Vec::new(),
            file_count: files.len(),
            body_bytes: 0,
            skipped,
            live: None,
        };
        for file in &files {
            let resource = load_file(&file.path, file.size)?;
            site.body_bytes += resource.body().len() as u64;
            let index = site.push(resource);
            site.routes.insert(
                file.url_path.clone().into_boxed_slice(),
                Route {
                    resource: index,
                    hotlink_rule: None,
                },
            );
        }
        site.add_directory_routes(&files);
        site.add_error_resources();
        site.attach_rules(rules)?;
        Ok(site)
    }

    fn push(&mut self, resource: Resource) -> usize {
        self.resources.push(resource);
        self.resources.len() - 1
    }

    /// `/dir/` serves `/dir/index.html`; `/dir` redirects to `/dir/` as nginx does (the
    /// redirect of `/dir?query` is built per request, see [`Site::select`]).
    fn add_directory_routes(&mut self, files: &[SiteFile]) {
        for file in files {
            let Some(dir) = file.url_path.strip_suffix(b"index.html") else {
                continue;
            };
            if !dir.ends_with(b"/") {
                continue;
            }
            let index = self.routes[file.url_path.as_slice()];
            self.routes
                .entry(dir.to_vec().into_boxed_slice())
                .or_insert(index);
            if dir.len() > 1 {
                let bare = &dir[..dir.len() - 1];
                if self.routes.contains_key(bare) {
                    continue;
                }
                let resource = self.push(directory_redirect(bare, None));
                self.routes.insert(
                    bare.to_vec().into_boxed_slice(),
                    Route {
                        resource,
                        hotlink_rule: None,
                    },
                );
            }
        }
    }

    fn add_error_resources(&mut self) {
        for status in Status::ALL {
            if matches!(status, Status::Ok | Status::MovedPermanently) {
                continue;
            }
            let body = format!(
                "<html><body><h1>{} {}</h1></body></html>\n",
                status.code(),
                status.reason()
            );
            let extra = if status == Status::MethodNotAllowed {
                "Allow: GET, HEAD\r\n"
            } else {
                ""
            };
            let resource =
                Resource::in_memory(status, "text/html; charset=utf-8", extra, body.as_bytes());
            let index = self.push(resource);
            self.errors.insert(status, index);
        }
    }

    /// Matches each rule's pattern against every path once, so requests never run a glob.
    fn attach_rules(&mut self, rules: Vec<Rule>) -> Result<(), ServerError> {
        if rules.len() > u16::MAX as usize {
            return Err(ServerError::TooManyRules {
                rules: rules.len(),
                max: u16::MAX as usize,
            });
        }
        for rule in rules {
            let Some(alternate) = self.routes.get(rule.alternate.as_bytes()) else {
                return Err(ServerError::UnknownAlternate {
                    number: rule.number,
                    pattern: rule.pattern,
                    alternate: rule.alternate,
                });
            };
            let alternate = alternate.resource;
            let rule_index = self.hotlink_rules.len() as u16;
            for (path, route) in self.routes.iter_mut() {
                let serves_file = self.resources[route.resource].status() == Status::Ok;
                if route.hotlink_rule.is_none()
                    && serves_file
                    && route.resource != alternate
                    && pattern_matches(rule.pattern.as_bytes(), path)
                {
                    route.hotlink_rule = Some(rule_index);
                }
            }
            self.hotlink_rules.push(HotlinkRule { rule, alternate });
        }
        Ok(())
    }

    /// Serves `stream` at its path, before any file of the same path: `GET` gets the head
    /// (HTTP/1.0 and 1.1 variants, [`LiveConfig::response_head`]) and then the frames, `HEAD`
    /// the head only.
    ///
    /// [`LiveConfig::response_head`]: crate::live::LiveConfig::response_head
    pub fn add_live(&mut self, stream: LiveStream) {
        let config = &stream.config;
        let http10 = self.push(Resource::stream_head(
            &config.response_head(stream.epoch_unix_us, false),
        ));
        let http11 = self.push(Resource::stream_head(
            &config.response_head(stream.epoch_unix_us, true),
        ));
        self.live = Some(LiveRoute {
            path: config.path.as_bytes().into(),
            http10,
            http11,
            http11_framing: if config.chunked(true) {
                StreamFraming::Chunked
            } else {
                StreamFraming::CloseDelimited
            },
            stream,
        });
    }

    /// The live stream this site serves (`--live`), if any: every design builds its frames
    /// from it ([`LiveStream::ring`]).
    pub fn live(&self) -> Option<&LiveStream> {
        self.live.as_ref().map(|route| &route.stream)
    }

    /// Files loaded from the site root.
    pub fn file_count(&self) -> usize {
        self.file_count
    }

    /// Bytes of those files, held in RAM.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// What the root held that was not loaded: dotfiles, links leading out of the root.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The reftab rules, in the table's order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.hotlink_rules.iter().map(|h| &h.rule)
    }

    /// The error response for `status`; it always closes the connection.
    pub fn error(&self, status: Status) -> Selection<'_> {
        let index = self
            .errors
            .get(&status)
            .copied()
            .unwrap_or(self.errors[&Status::BadRequest]);
        Selection {
            resource: Answer::Prebuilt(&self.resources[index]),
            send_body: true,
            connection: ConnectionHeader::Close,
            hotlink_rule: None,
            stream: None,
        }
    }

    /// Chooses the response for a parsed request. `scratch` is reused for the decoded path so
    /// that routing allocates nothing, except for a directory redirect of a target with a query:
    /// `/dir?x=1` is answered `Location: /dir/?x=1` (the query kept, RFC 9110 section 10.2.2),
    /// built for the request.
    pub fn select(&self, request: &Request<'_>, scratch: &mut Vec<u8>) -> Selection<'_> {
        if let Err(violation) = normalize_target(request.target, scratch) {
            return self.error(violation.status());
        }
        let connection = match (request.keep_alive, request.version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http11) => ConnectionHeader::Implicit,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
        };
        let send_body = request.method == Method::Get;
        if let Some(live) = self.live.as_ref().filter(|live| *live.path == **scratch) {
            let (resource, framing) = match request.version {
                Version::Http10 => (live.http10, StreamFraming::CloseDelimited),
                Version::Http11 => (live.http11, live.http11_framing),
            };
            return Selection {
                resource: Answer::Prebuilt(&self.resources[resource]),
                send_body,
                connection: ConnectionHeader::Close,
                hotlink_rule: None,
                stream: Some(framing),
            };
        }
        let Some(route) = self.routes.get(scratch.as_slice()) else {
            let not_found = self.errors[&Status::NotFound];
            return Selection {
                resource: Answer::Prebuilt(&self.resources[not_found]),
                send_body,
                connection,
                hotlink_rule: None,
                stream: None,
            };
        };
        let mut resource = route.resource;
        if self.resources[resource].status() == Status::MovedPermanently {
            if let Some(question) = request.target.iter().position(|&b| b == b'?') {
                let query = &request.target[question + 1..];
                return Selection {
                    resource: Answer::Built(Box::new(directory_redirect(scratch, Some(query)))),
                    send_body,
                    connection,
                    hotlink_rule: None,
                    stream: None,
                };
            }
        }
        let mut hotlink_rule = None;
        if let Some(rule_index) = route.hotlink_rule {
            let hotlink = &self.hotlink_rules[rule_index as usize];
            if hotlink
                .rule
                .wants_alternate(request.referer.filter(|r| !r.is_empty()))
            {
                resource = hotlink.alternate;
                hotlink_rule = Some(rule_index as usize);
            }
        }
        Selection {
            resource: Answer::Prebuilt(&self.resources[resource]),
            send_body,
            connection,
            hotlink_rule,
            stream: None,
        }
    }
}

struct SiteFile {
    path: PathBuf,
    url_path: Vec<u8>,
    size: u64,
}

/// The loader's walk of the root: what it keeps, what it skips.
struct Walk<'a> {
    /// The root's real path (symlinks resolved): a link must lead inside it.
    real_root: &'a Path,
    dotfiles: Dotfiles,
    skipped: Skipped,
    files: Vec<SiteFile>,
}

impl Walk<'_> {
    /// Walks `dir` depth-first in name order. Directories are entered only when they are real
    /// directories, not links to one, so a link cycle cannot loop the loader; a link to a file
    /// is loaded only when the file's real path is inside the root.
    fn collect(&mut self, dir: &Path, url_prefix: &mut Vec<u8>) -> Result<(), ServerError> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(file_error("reading directory", dir))?
            .collect::<Result<_, _>>()
            .map_err(file_error("reading directory", dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            if self.dotfiles == Dotfiles::Skip && is_dot_name(name.as_bytes()) {
                self.skipped.dotfiles += 1;
                continue;
            }
            let path = entry.path();
            let link_meta =
                fs::symlink_metadata(&path).map_err(file_error("reading metadata of", &path))?;
            let prefix_len = url_prefix.len();
            url_prefix.push(b'/');
            url_prefix.extend_from_slice(name.as_bytes());
            if link_meta.is_dir() {
                self.collect(&path, url_prefix)?;
            } else if link_meta.is_symlink() {
                self.follow_link(&path, url_prefix);
            } else if link_meta.is_file() {
                self.files.push(SiteFile {
                    path,
                    url_path: url_prefix.clone(),
                    size: link_meta.len(),
                });
            }
            // Sockets, FIFOs and devices are not content: skipped.
            url_prefix.truncate(prefix_len);
        }
        Ok(())
    }

    /// Loads the file a link leads to if its real path is inside the root (and, without
    /// `--dotfiles`, does not pass through a dot name); dangling links and links to anything
    /// but a regular file are left out.
    fn follow_link(&mut self, link: &Path, url_path: &[u8]) {
        let Ok(real) = fs::canonicalize(link) else {
            return;
        };
        let Ok(inside) = real.strip_prefix(self.real_root) else {
            self.skipped.outside_root += 1;
            return;
        };
        if self.dotfiles == Dotfiles::Skip
            && inside
                .components()
                .any(|part| is_dot_name(part.as_os_str().as_bytes()))
        {
            self.skipped.dotfiles += 1;
            return;
        }
        if let Ok(meta) = fs::metadata(&real) {
            if meta.is_file() {
                self.files.push(SiteFile {
                    path: real,
                    url_path: url_path.to_vec(),
                    size: meta.len(),
                });
            }
        }
    }
}

fn is_dot_name(name: &[u8]) -> bool {
    name.first() == Some(&b'.')
}

/// The 301 from `bare` (a directory's path, decoded, without its slash) to `bare/`, with the
/// request's raw `query` if it had one. The `Location` is a valid URI reference (RFC 3986):
/// bytes outside `pchar` are percent-encoded, so no file name can break the header (a CR or LF
/// becomes `%0D%0A`); the link in the body is HTML-escaped.
fn directory_redirect(bare: &[u8], query: Option<&[u8]>) -> Resource {
    let mut location = String::with_capacity(bare.len() + 1 + query.map_or(0, |q| q.len() + 1));
    for &byte in bare {
        push_uri_byte(&mut location, byte, byte == b'/' || is_pchar(byte));
    }
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        for (i, &byte) in query.iter().enumerate() {
            let escape = byte == b'%'
                && query
                    .get(i + 1..i + 3)
                    .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
            let keep = escape || byte == b'/' || byte == b'?' || is_pchar(byte);
            push_uri_byte(&mut location, byte, keep);
        }
    }
    let link = html_escape(&location);
    let body = format!("<html><body><a href=\"{link}\">{link}</a></body></html>\n");
    Resource::in_memory(
        Status::MovedPermanently,
        "text/html; charset=utf-8",
        &format!("Location: {location}\r\n"),
        body.as_bytes(),
    )
}

/// `pchar` but `%` (RFC 3986 section 3.3): unreserved, sub-delims, `:` and `@`.
fn is_pchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Appends `byte` as it is when `keep`, else as `%XX` (RFC 3986 section 2.1).
fn push_uri_byte(out: &mut String, byte: u8, keep: bool) {
    if keep {
        out.push(byte as char);
    } else {
        let _ = write!(out, "%{byte:02X}");
    }
}

/// `text` with `&`, `<`, `>`, `"` and `'` as HTML character references.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn load_file(path: &Path, size: u64) -> Result<Resource, ServerError> {
    let content_type = content_type_for(path);
    let (mut encoded, heads) = Resource::heads(Status::Ok, content_type, "", size as usize);
    let head_len = encoded.len();
    let mut file = fs::File::open(path).map_err(file_error("opening", path))?;
    file.read_to_end(&mut encoded)
        .map_err(file_error("reading", path))?;
    if (encoded.len() - head_len) as u64 != size {
        return Err(ServerError::FileChanged {
            path: path.to_path_buf(),
        });
    }
    Ok(Resource::finish(Status::Ok, encoded, heads))
}

/// Content-Type by file extension; unknown or none is `application/octet-stream`.
pub fn content_type_for(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "gif" => "image/gif",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        "mp4" => "video/mp4",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// `<tmp>/site` as the root, `<tmp>` around it for what must stay outside.
    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        fs::create_dir(&root).unwrap();
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        (dir, root)
    }

    fn get<'a>(target: &'a [u8]) -> Request<'a> {
        Request {
            method: Method::Get,
            version: Version::Http11,
            target,
            keep_alive: true,
            referer: None,
        }
    }

    /// Status, `Location` (if any) and body of the answer to `GET target`.
    fn answer(site: &Site, target: &str) -> (u16, Option<String>, String) {
        let mut scratch = Vec::new();
        let selection = site.select(&get(target.as_bytes()), &mut scratch);
        let head = String::from_utf8(selection.resource.head(ConnectionHeader::Implicit).to_vec())
            .unwrap();
        let location = head
            .lines()
            .find_map(|line| line.strip_prefix("Location: "))
            .map(str::to_string);
        let body = String::from_utf8_lossy(selection.resource.body()).into_owned();
        (selection.resource.status().code(), location, body)
    }

    #[test]
    fn dotfiles_are_skipped_unless_asked() {
        let (_dir, root) = tree(&[
            ("index.html", "home"),
            (".env", "SECRET=1"),
            (".git/config", "[core]"),
            ("a/.htpasswd", "user:hash"),
            ("a/b.txt", "b"),
        ]);
        let site = Site::load(&root, 1 << 20, Vec::new()).unwrap();
        assert_eq!(site.file_count(), 2);
        assert_eq!(site.skipped().dotfiles, 3);
        for hidden in ["/.env", "/.git/config", "/a/.htpasswd"] {
            assert_eq!(answer(&site, hidden).0, 404, "{hidden}");
        }
        assert_eq!(answer(&site, "/a/b.txt").0, 200);

        let site = Site::load_with(&root, 1 << 20, Dotfiles::Serve, Vec::new()).unwrap();
        assert_eq!(site.file_count(), 5);
        assert_eq!(site.skipped(), &Skipped::default());
        assert_eq!(answer(&site, "/.env"), (200, None, "SECRET=1".into()));
        assert_eq!(answer(&site, "/.git/config").0, 200);
    }

    #[test]
    fn symlinks_never_lead_out_of_the_root() {
        let (dir, root) = tree(&[("inside.txt", "inside"), (".hidden/key", "key")]);
        fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        fs::create_dir(dir.path().join("elsewhere")).unwrap();
        fs::write(dir.path().join("elsewhere/x.txt"), "outside too").unwrap();
        // A sibling whose name starts with the root's: a string prefix test would let it in.
        fs::create_dir(dir.path().join("site2")).unwrap();
        fs::write(dir.path().join("site2/y.txt"), "sibling").unwrap();

        symlink(dir.path().join("secret.txt"), root.join("absolute.txt")).unwrap();
        symlink("../secret.txt", root.join("relative.txt")).unwrap();
        symlink("../site2/y.txt", root.join("sibling.txt")).unwrap();
        symlink("/etc/passwd", root.join("passwd")).unwrap();
        symlink(dir.path().join("elsewhere"), root.join("dirlink")).unwrap();
        symlink("inside.txt", root.join("alias.txt")).unwrap();
        symlink(".hidden/key", root.join("key.txt")).unwrap();
        symlink("nowhere", root.join("dangling.txt")).unwrap();
        symlink(".", root.join("loop")).unwrap();

        let site = Site::load(&root, 1 << 20, Vec::new()).unwrap();
        for outside in [
            "/absolute.txt",
            "/relative.txt",
            "/sibling.txt",
            "/passwd",
            "/dirlink/x.txt",
            "/dangling.txt",
            "/loop/inside.txt",
            "/key.txt",
        ] {
            let (status, _, body) = answer(&site, outside);
            assert_eq!(status, 404, "{outside}: {body}");
        }
        assert_eq!(answer(&site, "/alias.txt"), (200, None, "inside".into()));
        assert_eq!(answer(&site, "/inside.txt").0, 200);
        assert_eq!(
            site.skipped(),
            &Skipped {
                // `.hidden` itself and the link into it.
                dotfiles: 2,
                // absolute.txt, relative.txt, sibling.txt, passwd, dirlink; `loop` stays
                // inside but is not followed either: no link to a directory is.
                outside_root: 5,
            }
        );
    }

    #[test]
    fn a_root_reached_through_a_symlink_still_serves_its_links() {
        let (dir, root) = tree(&[("a.txt", "a")]);
        symlink("a.txt", root.join("b.txt")).unwrap();
        let via_link = dir.path().join("root-link");
        symlink(&root, &via_link).unwrap();
        let site = Site::load(&via_link, 1 << 20, Vec::new()).unwrap();
        assert_eq!(answer(&site, "/b.txt"), (200, None, "a".into()));
    }

    #[test]
    fn directory_redirect_keeps_the_query_and_is_a_valid_uri_reference() {
        let (_dir, root) = tree(&[
            ("sub/index.html", "sub"),
            ("a b/index.html", "spaced"),
            ("<x>&\"/index.html", "html"),
        ]);
        let site = Site::load(&root, 1 << 20, Vec::new()).unwrap();

        let (status, location, body) = answer(&site, "/sub");
        assert_eq!((status, location.as_deref()), (301, Some("/sub/")));
        assert_eq!(
            body,
            "<html><body><a href=\"/sub/\">/sub/</a></body></html>\n"
        );
        let (status, location, body) = answer(&site, "/sub?x=1&y=2");
        assert_eq!((status, location.as_deref()), (301, Some("/sub/?x=1&y=2")));
        assert!(body.contains("href=\"/sub/?x=1&amp;y=2\""), "{body}");
        // An empty query is still a query; an absolute-form target keeps it too.
        assert_eq!(answer(&site, "/sub?").1.as_deref(), Some("/sub/?"));
        assert_eq!(
            answer(&site, "http://h.test/sub?q=/a?b").1.as_deref(),
            Some("/sub/?q=/a?b")
        );

        let (_, location, _) = answer(&site, "/a%20b?q=%41%zz[");
        assert_eq!(location.as_deref(), Some("/a%20b/?q=%41%25zz%5B"));

        let (status, location, body) = answer(&site, "/%3Cx%3E%26%22");
        assert_eq!(status, 301);
        assert_eq!(location.as_deref(), Some("/%3Cx%3E&%22/"));
        assert!(!body.contains("<x>"), "{body}");
        assert!(body.contains("href=\"/%3Cx%3E&amp;%22/\""), "{body}");
        assert_eq!(answer(&site, "/%3Cx%3E%26%22/").2, "html");
    }

    #[test]
    fn only_a_redirect_with_a_query_is_built_per_request() {
        let (_dir, root) = tree(&[("sub/index.html", "sub"), ("a.txt", "a")]);
        let site = Site::load(&root, 1 << 20, Vec::new()).unwrap();
        let mut scratch = Vec::new();
        for (target, built) in [
            (&b"/sub?x=1"[..], true),
            (b"/sub", false),
            (b"/a.txt?x=1", false),
            (b"/sub/?x=1", false),
            (b"/missing?x=1", false),
        ] {
            let selection = site.select(&get(target), &mut scratch);
            assert_eq!(
                matches!(selection.resource, Answer::Built(_)),
                built,
                "{}",
                String::from_utf8_lossy(target)
            );
        }
    }
}
