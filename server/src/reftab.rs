//! The Referer table: which sites may show which files, and what everybody else gets instead.
//!
//! The original Afterburner served "the right image for the right site, another image for the
//! rest" to stop other sites from hotlinking its pictures. A table file lists rules, one a line:
//!
//! ```text
//! # PATTERN        ALLOWED-REFERER-HOSTS          ALTERNATE            [EMPTY-REFERER]
//! /images/*.gif    example.com,.example.org       /images/hotlink.gif  empty=allow
//! /video/*         -                              /video/members.html  empty=alternate
//! ```
//!
//! * PATTERN is a site path where `*` matches any run of characters (slashes included).
//! * ALLOWED-REFERER-HOSTS is a comma-separated list of hosts whose pages get the original;
//!   a leading `.` allows that domain and every subdomain; `-` allows none.
//! * ALTERNATE is the site path served (status 200) to every other referer.
//! * `empty=allow` (the default) gives requests without a Referer the original;
//!   `empty=alternate` gives them the alternate.
//!
//! The first rule whose pattern matches wins. Hosts compare case-insensitively, ports ignored.
//! Patterns are matched once at start-up against the in-RAM site, so a request pays only the
//! Referer check, and only for paths a rule covers.

use std::path::Path;

/// One rule of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// 1-based position in the file among rules, as reported in the stats.
    pub number: usize,
    /// The site paths it covers, `*` matching any run of characters.
    pub pattern: String,
    /// Whose pages get the original; empty for `-`.
    pub allowed_hosts: Vec<AllowedHost>,
    /// The site path served instead to everybody else.
    pub alternate: String,
    /// What a request without a Referer gets.
    pub empty_referer: EmptyReferer,
}

/// A host whose pages may show the files of a rule, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHost {
    /// `example.com`: that host only.
    Exact(String),
    /// `.example.org`: the domain itself and any subdomain.
    Domain(String),
}

/// What a request without a Referer (or with an empty one) gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyReferer {
    /// `empty=allow`, the default: the original.
    Allow,
    /// `empty=alternate`: the alternate.
    Alternate,
}

/// A reftab line that could not be read, with its file and line number.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ReftabError {
    /// The table's file, as given.
    pub file: String,
    /// The line, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// Parses a whole table; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Result<Vec<Rule>, ReftabError> {
    let mut rules = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let content = raw_line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let error = |message: String| ReftabError {
            file: file.display().to_string(),
            line: index + 1,
            message,
        };
        let fields: Vec<&str> = content.split_whitespace().collect();
        if !(3..=4).contains(&fields.len()) {
            return Err(error(format!(
                "expected `PATTERN HOSTS ALTERNATE [empty=allow|empty=alternate]`, found {} field(s)",
                fields.len()
            )));
        }
        let (pattern, hosts, alternate) = (fields[0], fields[1], fields[2]);
        if !pattern.starts_with('/') {
            return Err(error(format!("pattern `{pattern}` must start with `/`")));
        }
        if !alternate.starts_with('/') || alternate.contains('*') {
            return Err(error(format!(
                "alternate `{alternate}` must be a site path starting with `/`, without `*`"
            )));
        }
        let empty_referer = match fields.get(3).copied() {
            None | Some("empty=allow") => EmptyReferer::Allow,
            Some("empty=alternate") => EmptyReferer::Alternate,
            Some(other) => {
                return Err(error(format!(
                    "fourth field `{other}` must be `empty=allow` or `empty=alternate`"
                )))
            }
        };
        let mut allowed_hosts = Vec::new();
        if hosts != "-" {
            for host in hosts.split(',') {
                let host = host.trim().to_ascii_lowercase();
                match host.strip_prefix('.') {
                    Some("") => return Err(error("empty domain `.` in hosts".into())),
                    Some(domain) => allowed_hosts.push(AllowedHost::Domain(domain.to_string())),
                    None if host.is_empty() => {
                        return Err(error(format!("empty host in `{hosts}`")))
                    }
                    None => allowed_hosts.push(AllowedHost::Exact(host)),
                }
            }
        }
        rules.push(Rule {
            number: rules.len() + 1,
            pattern: pattern.to_string(),
            allowed_hosts,
            alternate: alternate.to_string(),
            empty_referer,
        });
    }
    Ok(rules)
}

impl Rule {
    /// Whether a request carrying `referer` (None when absent or empty) gets the alternate.
    pub fn wants_alternate(&self, referer: Option<&[u8]>) -> bool {
        let Some(host) = referer.and_then(referer_host) else {
            return self.empty_referer == EmptyReferer::Alternate;
        };
        !self
            .allowed_hosts
            .iter()
            .any(|allowed| allowed.matches(host))
    }
}

impl AllowedHost {
    fn matches(&self, host: &[u8]) -> bool {
        match self {
            AllowedHost::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            AllowedHost::Domain(domain) => {
                let domain = domain.as_bytes();
                if host.eq_ignore_ascii_case(domain) {
                    return true;
                }
                host.len() > domain.len()
                    && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                    && host[host.len() - domain.len() - 1] == b'.'
            }
        }
    }
}

/// The host part of a Referer URL (`http://user@Host:8080/page` -> `Host`), None if there is none.
pub fn referer_host(referer: &[u8]) -> Option<&[u8]> {
    let after_scheme = match referer.windows(3).position(|w| w == b"://") {
        Some(at) => &referer[at + 3..],
        // A scheme-relative or bare referer still names a host first.
        None => referer.strip_prefix(b"//").unwrap_or(referer),
    };
    let authority_end = after_scheme
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(after_scheme.len());
    let authority = &after_scheme[..authority_end];
    let host_port = match authority.iter().rposition(|&b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if host_port.first() == Some(&b'[') {
        let close = host_port.iter().position(|&b| b == b']')?;
        &host_port[1..close]
    } else {
        match host_port.iter().position(|&b| b == b':') {
            Some(colon) => &host_port[..colon],
            None => host_port,
        }
    };
    (!host.is_empty()).then_some(host)
}

/// Glob match where `*` matches any run of bytes, `/` included.
pub fn pattern_matches(pattern: &[u8], path: &[u8]) -> bool {
    let (mut p, mut s) = (0, 0);
    // Position of the last `*` and of the text it has swallowed up to: classic backtracking glob.
    let mut star: Option<(usize, usize)> = None;
    while s < path.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, s));
            p += 1;
        } else if p < pattern.len() && pattern[p] == path[s] {
            p += 1;
            s += 1;
        } else if let Some((star_p, star_s)) = star {
            p = star_p + 1;
            s = star_s + 1;
            star = Some((star_p, star_s + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<Rule> {
        parse(text, Path::new("t.reftab")).unwrap()
    }

    #[test]
    fn parses_rules_comments_and_defaults() {
        let parsed = rules(
            "# comment\n\n/img/*.gif  example.com,.Example.org  /img/no.gif\n/v/*  -  /v/x.html  empty=alternate # tail\n",
        );
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].number, 1);
        assert_eq!(
            parsed[0].allowed_hosts,
            vec![
                AllowedHost::Exact("example.com".into()),
                AllowedHost::Domain("example.org".into())
            ]
        );
        assert_eq!(parsed[0].empty_referer, EmptyReferer::Allow);
        assert!(parsed[1].allowed_hosts.is_empty());
        assert_eq!(parsed[1].empty_referer, EmptyReferer::Alternate);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("/a b /c\n/x y", Path::new("site.reftab")).unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.to_string().split(':').next(), Some("site.reftab"));
        let err = parse("/a h /c empty=maybe", Path::new("r")).unwrap_err();
        assert!(err.message.contains("empty=maybe"), "{}", err.message);
        assert!(parse("a h /c", Path::new("r")).is_err());
        assert!(parse("/a h c", Path::new("r")).is_err());
    }

    #[test]
    fn referer_hosts_are_extracted() {
        assert_eq!(
            referer_host(b"http://Example.com/page"),
            Some(&b"Example.com"[..])
        );
        assert_eq!(
            referer_host(b"https://u:p@x.org:8080/a?b"),
            Some(&b"x.org"[..])
        );
        assert_eq!(referer_host(b"http://[::1]:80/"), Some(&b"::1"[..]));
        assert_eq!(referer_host(b"http:///nohost"), None);
        assert_eq!(referer_host(b""), None);
    }

    #[test]
    fn allowed_hosts_decide_the_alternate() {
        let rule = &rules("/img/*  example.com,.example.org  /alt.gif")[0];
        assert!(!rule.wants_alternate(Some(b"http://EXAMPLE.com/")));
        assert!(!rule.wants_alternate(Some(b"http://www.example.org/x")));
        assert!(!rule.wants_alternate(Some(b"http://example.org:81/x")));
        assert!(rule.wants_alternate(Some(b"http://badexample.org/")));
        assert!(rule.wants_alternate(Some(b"http://www.example.com/")));
        assert!(!rule.wants_alternate(None));
        let strict = &rules("/img/*  -  /alt.gif  empty=alternate")[0];
        assert!(strict.wants_alternate(None));
        assert!(strict.wants_alternate(Some(b"http://example.com/")));
    }

    #[test]
    fn globs_match_runs_including_slashes() {
        assert!(pattern_matches(b"/img/*.gif", b"/img/a/b.gif"));
        assert!(pattern_matches(b"*", b"/anything"));
        assert!(pattern_matches(b"/a*b*c", b"/aXbYbZc"));
        assert!(!pattern_matches(b"/img/*.gif", b"/img/a.png"));
        assert!(!pattern_matches(b"/img/", b"/img/a"));
        assert!(pattern_matches(b"/exact", b"/exact"));
    }
}
