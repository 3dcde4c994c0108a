//! Fuzz target: the server's request parser (`parse_request`) and target normalisation
//! (`normalize_target`) alone, pure functions, at a high rate of executions.
//!
//! Input: one byte for the head limit, then the bytes the server has buffered (a seed is a
//! real request with one byte in front). Checked: no panic; a complete head fits the buffer and
//! the limit, and parses the same from its own bytes alone; a partial one is within the limit;
//! a rejection is a 4xx or a 505; the decision on a prefix of the bytes (the server parses
//! whatever part has arrived) stands once all of them have: the same request, or a rejection;
//! a normalised path starts with `/`, holds no NUL and no `.` or `..` segment.

#![no_main]

use afterburner::http::{normalize_target, parse_request, Parsed, Status};
use libfuzzer_sys::fuzz_target;

/// 16 to 2,056 bytes, or the default 8192 for a first byte of 255.
fn max_head_bytes(byte: u8) -> usize {
    if byte == 255 {
        8192
    } else {
        16 + 8 * usize::from(byte)
    }
}

fn check_normalised(target: &[u8]) {
    let mut path = Vec::new();
    if normalize_target(target, &mut path).is_ok() {
        assert_eq!(path.first(), Some(&b'/'), "{path:?}");
        assert!(!path.contains(&0), "a NUL in {path:?}");
        for segment in path.split(|&b| b == b'/') {
            assert!(
                segment != b"." && segment != b"..",
                "a dot segment in {path:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&limit, buf)) = data.split_first() else {
        return;
    };
    let limit = max_head_bytes(limit);
    let parsed = parse_request(buf, limit);
    match &parsed {
        Parsed::Complete { request, consumed } => {
            assert!(*consumed <= buf.len() && *consumed <= limit);
            assert_eq!(parse_request(&buf[..*consumed], limit), parsed);
            check_normalised(request.target);
        }
        Parsed::Partial => assert!(buf.len() <= limit, "partial beyond the limit"),
        Parsed::Reject(violation) => {
            let status = violation.status();
            let code = status.code();
            assert!((400..500).contains(&code) || status == Status::VersionNotSupported);
        }
    }
    // What a shorter read would have decided must stand once the rest arrives: the same
    // request, or a rejection (which status may depend on how much had arrived; see
    // `same_but_for_final_error_status` in server_connection.rs).
    for cut in [buf.len() / 2, buf.len() / 3, buf.len().saturating_sub(1)] {
        match (parse_request(&buf[..cut], limit), &parsed) {
            (Parsed::Partial, _) => {}
            (Parsed::Reject(early), Parsed::Reject(late)) => assert_eq!(
                early.status(),
                late.status(),
                "{cut} bytes were {early:?}, all of them {late:?}"
            ),
            (early, late) => {
                assert_eq!(
                    &early, late,
                    "the decision on {cut} bytes changed with the rest"
                )
            }
        }
    }
});
