//! The in-RAM site: every file loaded at start, every response built once, and the routing
//! from a request to the bytes that answer it.
//!
//! A `Resource` holds one response: three precomputed heads (HTTP/1.1 keep-alive with no
//! `Connection` header, HTTP/1.0 `Connection: keep-alive`, and `Connection: close`) followed by
//! the body, in one allocation. Connections borrow a `&Resource` and a cursor; nothing is copied
//! or built per request, and the disk is never touched after start-up.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::http::{normalize_target, Method, Request, Status, Version};
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
}

/// The answer chosen for one request.
#[derive(Clone, Copy)]
pub struct Selection<'site> {
    /// The response.
    pub resource: &'site Resource,
    /// False for HEAD: the head only.
    pub send_body: bool,
    /// Which head: keep-alive as the request asked, or close.
    pub connection: ConnectionHeader,
    /// The reftab rule (0-based) whose alternate was served, if any.
    pub hotlink_rule: Option<usize>,
}

impl Selection<'_> {
    /// Whether the connection closes after this response.
    pub fn closes(&self) -> bool {
        self.connection == ConnectionHeader::Close
    }
}

impl Site {
    /// Loads every regular file under `root` into RAM, refusing sites over `max_bytes`.
    pub fn load(root: &Path, max_bytes: u64, rules: Vec<Rule>) -> Result<Site, ServerError> {
        let meta = fs::metadata(root).map_err(file_error("site root", root))?;
        if !meta.is_dir() {
            return Err(ServerError::RootNotADirectory {
                path: root.to_path_buf(),
            });
        }
        let mut files = Vec::new();
        collect_files(root, &mut Vec::new(), &mut files)?;
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

    /// `/dir/` serves `/dir/index.html`; `/dir` redirects to `/dir/` as nginx does.
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
                let location = String::from_utf8_lossy(dir);
                let body =
                    format!("<html><body><a href=\"{location}\">{location}</a></body></html>\n");
                let redirect = Resource::in_memory(
                    Status::MovedPermanently,
                    "text/html; charset=utf-8",
                    &format!("Location: {location}\r\n"),
                    body.as_bytes(),
                );
                let resource = self.push(redirect);
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

    /// Files loaded from the site root.
    pub fn file_count(&self) -> usize {
        self.file_count
    }

    /// Bytes of those files, held in RAM.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
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
            resource: &self.resources[index],
            send_body: true,
            connection: ConnectionHeader::Close,
            hotlink_rule: None,
        }
    }

    /// Chooses the response for a parsed request. `scratch` is reused for the decoded path so
    /// that routing allocates nothing.
    pub fn select(&self, request: &Request<'_>, scratch: &mut Vec<u8>) -> Selection<'_> {
        if let Err(status) = normalize_target(request.target, scratch) {
            return self.error(status);
        }
        let connection = match (request.keep_alive, request.version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http11) => ConnectionHeader::Implicit,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
        };
        let send_body = request.method == Method::Get;
        let Some(route) = self.routes.get(scratch.as_slice()) else {
            let not_found = self.errors[&Status::NotFound];
            return Selection {
                resource: &self.resources[not_found],
                send_body,
                connection,
                hotlink_rule: None,
            };
        };
        let mut resource = route.resource;
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
            resource: &self.resources[resource],
            send_body,
            connection,
            hotlink_rule,
        }
    }
}

struct SiteFile {
    path: PathBuf,
    url_path: Vec<u8>,
    size: u64,
}

/// Walks `dir` depth-first in name order. Symlinks to files are followed; symlinks to
/// directories are not, so a link cycle cannot loop the loader.
fn collect_files(
    dir: &Path,
    url_prefix: &mut Vec<u8>,
    out: &mut Vec<SiteFile>,
) -> Result<(), ServerError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(file_error("reading directory", dir))?
        .collect::<Result<_, _>>()
        .map_err(file_error("reading directory", dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let link_meta =
            fs::symlink_metadata(&path).map_err(file_error("reading metadata of", &path))?;
        let name = entry.file_name();
        let prefix_len = url_prefix.len();
        url_prefix.push(b'/');
        url_prefix.extend_from_slice(name.as_bytes());
        if link_meta.is_dir() {
            collect_files(&path, url_prefix, out)?;
        } else {
            // Sockets, FIFOs and dangling links are not content: skip them.
            if let Ok(Some(size)) = fs::metadata(&path).map(|m| m.is_file().then_some(m.len())) {
                out.push(SiteFile {
                    path: path.clone(),
                    url_path: url_prefix.clone(),
                    size,
                });
            }
        }
        url_prefix.truncate(prefix_len);
    }
    Ok(())
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
