//! Turning Trivy's stderr into a short message and a retry class.
//!
//! Trivy (0.59) with `--quiet` prints only the fatal error, e.g.
//!
//! ```text
//! 2026-11-23T06:56:23Z\tFATAL\tFatal error\timage scan error: scan error: unable to initialize a scanner: unable to initialize an image scanner: unable to find the specified image "127.0.0.1:56539/e2e/does-not-exist:1.0" in ["remote"]: 1 error occurred:
//! \t* remote error: GET http://127.0.0.1:56539/v2/e2e/does-not-exist/manifests/1.0: MANIFEST_UNKNOWN: manifest unknown; map[Tag:1.0]
//! ```
//!
//! With `--debug` the wrapper chain is printed one element per line (`  - scan error:`) with
//! Go stack frames in between. Both shapes are handled; see the tests for real samples.

use crate::error::ErrorClass;

/// Maximum length (in characters) of an extracted message.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Generic wrappers Trivy puts in front of the actual cause; stripped from the message start.
const WRAPPER_PREFIXES: &[&str] = &[
    "image scan error:",
    "scan error:",
    "unable to initialize a scanner:",
    "unable to initialize an image scanner:",
    "scan failed:",
    "failed analysis:",
    "init error:",
    "run error:",
    "Fatal error",
    "Error:",
    "error:",
];

/// Result of [`diagnose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// Short human message (≤ [`MAX_MESSAGE_CHARS`] chars), timestamp/level prefix stripped.
    pub message: String,
    pub class: ErrorClass,
    /// Name of the classification rule that matched (`"unclassified"` when none did).
    pub rule: &'static str,
}

/// Extracts the message and classifies the failure from (the tail of) Trivy's stderr.
pub fn diagnose(stderr: &str) -> Diagnosis {
    let (full, classify_text) = match error_block(stderr) {
        Some(block) => {
            let msg = join_block(&block);
            (msg.clone(), msg)
        }
        None => (fallback_line(stderr), stderr.to_string()),
    };
    let (class, rule) = classify(&classify_text);
    Diagnosis {
        message: cap(&strip_wrappers(&full), MAX_MESSAGE_CHARS),
        class,
        rule,
    }
}

/// Just the message part of [`diagnose`].
pub fn extract_message(stderr: &str) -> String {
    diagnose(stderr).message
}

// ---------------------------------------------------------------------------------------------
// Message extraction

/// Log levels that mark an error record, most important first.
const FATAL_LEVELS: &[&str] = &["FATAL", "FATA"];
const ERROR_LEVELS: &[&str] = &["ERROR", "ERRO"];
const ALL_LEVELS: &[&str] = &[
    "FATAL", "FATA", "ERROR", "ERRO", "WARN", "WARNING", "INFO", "DEBUG", "DEBU",
];

/// If one of the first three whitespace-separated tokens of `line` is a log level from
/// `levels` (optionally followed by `[...]`, logrus style), returns the text after it.
fn after_level<'a>(line: &'a str, levels: &[&str]) -> Option<&'a str> {
    let mut rest = line;
    for _ in 0..3 {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            return None;
        }
        let end = trimmed
            .find(|c: char| c.is_whitespace())
            .unwrap_or(trimmed.len());
        let token = &trimmed[..end];
        let bare = token.split('[').next().unwrap_or(token);
        if levels.contains(&bare) {
            return Some(trimmed[end..].trim_start());
        }
        rest = &trimmed[end..];
    }
    None
}

/// Does the line start a new log record (timestamp or level in front)?
fn is_record_start(line: &str) -> bool {
    let starts_with_timestamp = line.len() >= 10
        && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && line.as_bytes()[4] == b'-';
    starts_with_timestamp || after_level(line, ALL_LEVELS).is_some()
}

/// Go stack frames printed by `--debug`: `github.com/x/y.(*T).F` and `/path/file.go:123`.
fn is_stack_frame(trimmed: &str) -> bool {
    !trimmed.contains(char::is_whitespace)
        && (trimmed.contains(".go:")
            || trimmed.starts_with("github.com/")
            || trimmed.starts_with("golang.org/")
            || trimmed.contains(".(*")
            || (trimmed.starts_with('/') && trimmed.contains('.')))
}

/// The lines of the last FATAL record (falling back to a panic, then the last ERROR record):
/// the text after the level on its first line plus its continuation lines.
fn error_block(stderr: &str) -> Option<Vec<String>> {
    let lines: Vec<&str> = stderr.lines().collect();
    let find_last = |levels: &[&str]| {
        lines
            .iter()
            .rposition(|l| after_level(l, levels).is_some())
            .map(|i| (i, after_level(lines[i], levels).unwrap_or_default()))
    };
    let (start, first) = find_last(FATAL_LEVELS)
        .or_else(|| {
            lines
                .iter()
                .rposition(|l| l.starts_with("panic: "))
                .map(|i| (i, lines[i]))
        })
        .or_else(|| find_last(ERROR_LEVELS))?;
    // `FATAL\tFatal error\t<cause>`: the constant "Fatal error" says nothing.
    let first = first
        .strip_prefix("Fatal error")
        .unwrap_or(first)
        .trim_start();
    let mut block = vec![first.to_string()];
    for line in &lines[start + 1..] {
        if is_record_start(line) || line.starts_with("goroutine ") {
            break;
        }
        block.push((*line).to_string());
    }
    Some(block)
}

/// Removes a trailing `N error(s) occurred:` (go-multierror header).
fn strip_multierror_header(s: &str) -> &str {
    let t = s.trim_end();
    for suffix in ["errors occurred:", "error occurred:"] {
        if let Some(head) = t.strip_suffix(suffix) {
            let head = head.trim_end();
            let digits = head.len() - head.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 {
                return head[..head.len() - digits].trim_end();
            }
        }
    }
    t
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Joins the record's lines into one line: chain elements and `* item` bullets are appended,
/// stack frames and multierror headers dropped.
fn join_block(block: &[String]) -> String {
    let mut out = String::new();
    for (i, raw) in block.iter().enumerate() {
        let mut piece = raw.trim();
        if i > 0 {
            if piece.is_empty() || is_stack_frame(piece) {
                continue;
            }
            piece = piece
                .strip_prefix("- ")
                .or_else(|| piece.strip_prefix("* "))
                .unwrap_or(piece)
                .trim();
        }
        let piece = collapse_ws(strip_multierror_header(piece));
        if piece.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(&piece);
    }
    out.trim_end_matches([':', ' ']).to_string()
}

/// For stderr without a level-tagged error: the last non-empty line that is not a stack frame.
fn fallback_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !is_stack_frame(l))
        .map(|l| {
            let l = after_level(l, ALL_LEVELS).unwrap_or(l);
            collapse_ws(l.strip_prefix("* ").unwrap_or(l))
        })
        .unwrap_or_default()
}

fn strip_wrappers(s: &str) -> String {
    let mut s = s.trim();
    'outer: loop {
        for p in WRAPPER_PREFIXES {
            if let Some(rest) = s.strip_prefix(p) {
                let rest = rest.trim_start();
                if !rest.is_empty() {
                    s = rest;
                    continue 'outer;
                }
            }
        }
        break;
    }
    s.to_string()
}

/// Caps `s` at `max` chars keeping its head and its tail (the root cause is usually last).
fn cap(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head_len = max * 2 / 5;
    let tail_len = max - head_len - 3;
    let head: String = s.chars().take(head_len).collect();
    let tail: String = s.chars().skip(n - tail_len).collect();
    format!("{} … {}", head.trim_end(), tail.trim_start())
}

// ---------------------------------------------------------------------------------------------
// Classification

enum Pat {
    /// Case-sensitive substring.
    Cs(&'static str),
    /// Case-insensitive substring (needle given in lower case).
    Ci(&'static str),
    /// Case-sensitive whole word (not preceded/followed by `[A-Za-z0-9_]`).
    Word(&'static str),
    /// `status code NNN` (go-containerregistry / twirp wording) for one of the codes.
    Status(&'static [u16]),
}

struct Rule {
    name: &'static str,
    class: ErrorClass,
    any: &'static [Pat],
}

use ErrorClass::{Permanent, Transient};
use Pat::{Ci, Cs, Status, Word};

/// Ordered: the first rule with a matching pattern wins. The order matters because Trivy wraps
/// *every* remote failure in `unable to find the specified image ...` (even "connection
/// refused"), so the specific registry answers and network errors are checked before the
/// generic "not found" wording.
const RULES: &[Rule] = &[
    // 1. The registry (or the trivy server) answered "come back later".
    Rule {
        name: "registry_throttled_or_unavailable",
        class: Transient,
        any: &[
            Cs("TOOMANYREQUESTS"),
            Word("UNAVAILABLE"),
            Status(&[408, 429, 500, 502, 503, 504]),
            Ci("too many requests"),
            Ci("internal server error"),
            Ci("bad gateway"),
            Ci("service unavailable"),
            Ci("gateway timeout"),
            Cs("twirp error unavailable"),
        ],
    },
    // 2. The registry answered definitively: no such artifact / not allowed / not scannable.
    Rule {
        name: "artifact_rejected",
        class: Permanent,
        any: &[
            Cs("MANIFEST_UNKNOWN"),
            Cs("NAME_UNKNOWN"),
            Cs("NAME_INVALID"),
            Cs("BLOB_UNKNOWN"),
            Cs("MANIFEST_INVALID"),
            Word("UNAUTHORIZED"),
            Word("DENIED"),
            Ci("unauthorized"),
            Status(&[401, 403, 404]),
            Cs("unsupported MediaType"),
            Ci("unknown artifact"),
            Ci("invalid reference"),
            Ci("could not parse reference"),
            Ci("failed to parse the image name"),
            Ci("no child with platform"),
        ],
    },
    // 3. Our own configuration is wrong; retrying cannot help.
    Rule {
        name: "configuration",
        class: Permanent,
        any: &[
            Cs("cannot be specified on the first run"),
            Cs("unknown flag"),
            Cs("unknown shorthand flag"),
            Cs("invalid argument"),
            Cs("x509:"),
            Cs("server gave HTTP response to HTTPS client"),
        ],
    },
    // 4. Infrastructure: network, DNS, deadlines, local resources, DB download/lock.
    Rule {
        name: "infrastructure",
        class: Transient,
        any: &[
            Ci("connection refused"),
            Ci("connection reset"),
            Ci("i/o timeout"),
            Ci("context deadline exceeded"),
            Ci("server misbehaving"),
            Ci("no such host"),
            Ci("temporary failure in name resolution"),
            Ci("network is unreachable"),
            Ci("no route to host"),
            Ci("tls handshake timeout"),
            Ci("client.timeout exceeded"),
            Ci("broken pipe"),
            Word("EOF"),
            Ci("database is locked"),
            Ci("resource temporarily unavailable"),
            Ci("failed to download vulnerability db"),
            Ci("too many open files"),
            Ci("no space left on device"),
            Ci("cannot allocate memory"),
        ],
    },
    // 5. Generic "not there / not scannable" wording without a more specific cause.
    Rule {
        name: "artifact_not_found",
        class: Permanent,
        any: &[
            Ci("not found"),
            Ci("unsupported"),
            Ci("no such image"),
            Ci("unable to find the specified image"),
            Ci("manifest unknown"),
        ],
    },
];

/// Classifies an error text. Unknown errors are Permanent: retrying an error we cannot
/// classify mostly burns attempts (and registry quota) on the same failure, while an
/// operator can always re-run a failed job once the cause is understood.
pub fn classify(text: &str) -> (ErrorClass, &'static str) {
    let lower = text.to_ascii_lowercase();
    for rule in RULES {
        if rule.any.iter().any(|p| matches(p, text, &lower)) {
            return (rule.class, rule.name);
        }
    }
    (Permanent, "unclassified")
}

fn matches(p: &Pat, text: &str, lower: &str) -> bool {
    match p {
        Pat::Cs(n) => text.contains(n),
        Pat::Ci(n) => lower.contains(n),
        Pat::Word(w) => contains_word(text, w),
        Pat::Status(codes) => status_codes(lower).any(|c| codes.contains(&c)),
    }
}

fn contains_word(text: &str, word: &str) -> bool {
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = text.as_bytes();
    text.match_indices(word).any(|(i, _)| {
        let before_ok = i == 0 || !is_word(bytes[i - 1]);
        let end = i + word.len();
        let after_ok = end == bytes.len() || !is_word(bytes[end]);
        before_ok && after_ok
    })
}

/// HTTP status codes written as `status code NNN` (go-containerregistry:
/// `unexpected status code 503 Service Unavailable`; twirp: `HTTP status code 503`).
fn status_codes(lower: &str) -> impl Iterator<Item = u16> + '_ {
    lower.match_indices("status code ").filter_map(|(i, m)| {
        let rest = &lower[i + m.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.len() == 3 {
            digits.parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! sample {
        ($name:literal) => {
            include_str!(concat!("../testdata/trivy-0.59.1/", $name, ".stderr"))
        };
    }

    /// (sample, expected class, expected rule, substrings the message must contain)
    fn check(stderr: &str, class: ErrorClass, rule: &str, contains: &[&str]) -> Diagnosis {
        let d = diagnose(stderr);
        assert_eq!((d.class, d.rule), (class, rule), "diagnosis: {d:#?}");
        for c in contains {
            assert!(d.message.contains(c), "{:?} not in {:?}", c, d.message);
        }
        assert!(!d.message.contains("FATAL"), "{}", d.message);
        assert!(!d.message.starts_with("2026-"), "{}", d.message);
        assert!(d.message.chars().count() <= MAX_MESSAGE_CHARS);
        d
    }

    #[test]
    fn manifest_unknown_tag() {
        let d = check(
            sample!("notfound_tag"),
            Permanent,
            "artifact_rejected",
            &["unable to find the specified image", "MANIFEST_UNKNOWN"],
        );
        assert_eq!(
            d.message,
            "unable to find the specified image \"127.0.0.1:56539/e2e/does-not-exist:1.0\" \
             in [\"remote\"]: remote error: GET \
             http://127.0.0.1:56539/v2/e2e/does-not-exist/manifests/1.0: MANIFEST_UNKNOWN: \
             manifest unknown; map[Tag:1.0]"
        );
    }

    #[test]
    fn manifest_unknown_digest_and_name_unknown() {
        check(
            sample!("notfound_digest"),
            Permanent,
            "artifact_rejected",
            &["MANIFEST_UNKNOWN", "alpine-app@sha256:0000"],
        );
        check(
            sample!("reg_name_unknown"),
            Permanent,
            "artifact_rejected",
            &["NAME_UNKNOWN: repository name not known to registry"],
        );
    }

    #[test]
    fn auth_and_media_type_rejections() {
        check(
            sample!("reg_401"),
            Permanent,
            "artifact_rejected",
            &["UNAUTHORIZED: authentication required"],
        );
        check(
            sample!("reg_403"),
            Permanent,
            "artifact_rejected",
            &["DENIED: requested access to the resource is denied"],
        );
        check(
            sample!("reg_schema1"),
            Permanent,
            "artifact_rejected",
            &["unsupported MediaType"],
        );
        check(
            sample!("reg_index_arm"),
            Permanent,
            "artifact_rejected",
            &["no child with platform linux/amd64"],
        );
        check(
            sample!("invalid_ref"),
            Permanent,
            "artifact_rejected",
            &["could not parse reference: UPPER/Bad::ref"],
        );
    }

    #[test]
    fn registry_throttling_and_5xx_are_transient() {
        check(
            sample!("reg_429"),
            Transient,
            "registry_throttled_or_unavailable",
            &["TOOMANYREQUESTS"],
        );
        for (s, code) in [
            (sample!("reg_500"), "500 Internal Server Error"),
            (sample!("reg_502"), "502 Bad Gateway"),
            (sample!("reg_503"), "503 Service Unavailable"),
            (sample!("reg_504"), "504 Gateway Timeout"),
        ] {
            check(s, Transient, "registry_throttled_or_unavailable", &[code]);
        }
        check(
            sample!("server_503"),
            Transient,
            "registry_throttled_or_unavailable",
            &["twirp error unavailable"],
        );
    }

    #[test]
    fn network_errors_are_transient_despite_unable_to_find() {
        check(
            sample!("conn_refused"),
            Transient,
            "infrastructure",
            &["connection refused"],
        );
        check(
            sample!("no_such_host"),
            Transient,
            "infrastructure",
            &["no such host"],
        );
        check(sample!("reg_eof"), Transient, "infrastructure", &["EOF"]);
        check(
            sample!("server_refused"),
            Transient,
            "infrastructure",
            &["MissingBlobs", "connection refused"],
        );
        check(
            sample!("server_eof"),
            Transient,
            "infrastructure",
            &["twirp error internal", "EOF"],
        );
        check(
            sample!("server_nohost"),
            Transient,
            "infrastructure",
            &["no such host"],
        );
        check(
            sample!("to_1ms"),
            Transient,
            "infrastructure",
            &["context deadline exceeded"],
        );
        check(
            sample!("to_20ms"),
            Transient,
            "infrastructure",
            &["semaphore acquire: context deadline exceeded"],
        );
        check(
            sample!("db_download_offline"),
            Transient,
            "infrastructure",
            &["failed to download vulnerability DB"],
        );
    }

    #[test]
    fn configuration_errors_are_permanent() {
        let d = check(
            sample!("db_missing"),
            Permanent,
            "configuration",
            &["--skip-update cannot be specified on the first run"],
        );
        assert!(d.message.starts_with("DB error"), "{}", d.message);
        check(
            sample!("bad_flag"),
            Permanent,
            "configuration",
            &["unknown flag: --no-such-flag"],
        );
    }

    #[test]
    fn debug_and_non_quiet_output() {
        let debug = check(
            sample!("debug_notfound"),
            Permanent,
            "artifact_rejected",
            &["unable to find the specified image", "MANIFEST_UNKNOWN"],
        );
        assert!(!debug.message.contains("run.go"), "{}", debug.message);
        assert!(!debug.message.contains("github.com/"), "{}", debug.message);
        let plain = check(
            sample!("noquiet_notfound"),
            Permanent,
            "artifact_rejected",
            &["MANIFEST_UNKNOWN"],
        );
        assert!(!plain.message.contains("Secret scanning"));
        // All three shapes give the same message.
        assert_eq!(debug.message, plain.message);
        assert_eq!(debug.message, diagnose(sample!("notfound_tag")).message);
    }

    #[test]
    fn other_shapes() {
        // Plain (non-trivy) text.
        let d = diagnose("MANIFEST_UNKNOWN: manifest unknown\n");
        assert_eq!(d.class, Permanent);
        assert_eq!(d.message, "MANIFEST_UNKNOWN: manifest unknown");
        // Older logrus style and a leading "error:".
        let d = diagnose("FATA[0001] error: dial tcp 10.0.0.1:443: i/o timeout\n");
        assert_eq!(
            (d.class, d.message.as_str()),
            (Transient, "dial tcp 10.0.0.1:443: i/o timeout")
        );
        // Go panic.
        let d = diagnose("panic: runtime error: index out of range\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\n");
        assert_eq!(d.message, "panic: runtime error: index out of range");
        assert_eq!(d.class, Permanent);
        // Nothing at all.
        assert_eq!(diagnose("").message, "");
        assert_eq!(diagnose("").rule, "unclassified");
    }

    #[test]
    fn digits_inside_digests_are_not_status_codes() {
        let text = "GET http://r/v2/x/manifests/sha256:5003a4290b2f4e50255029: something odd";
        assert_eq!(classify(text), (Permanent, "unclassified"));
        assert_eq!(
            classify("unexpected status code 429 Too Many Requests").0,
            Transient
        );
        assert_eq!(
            classify("unexpected status code 401 Unauthorized").0,
            Permanent
        );
        assert!(!contains_word("GEOFF", "EOF"));
        assert!(contains_word("Post \"http://x\": EOF", "EOF"));
        assert!(contains_word("unexpected EOF", "EOF"));
    }

    #[test]
    fn long_messages_are_capped_keeping_both_ends() {
        let long = format!(
            "2024-01-01T00:00:00Z\tFATAL\tFatal error\tscan error: start {} MANIFEST_UNKNOWN: the end",
            "x".repeat(2000)
        );
        let d = diagnose(&long);
        assert_eq!(d.message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(d.message.starts_with("start xxx"));
        assert!(d.message.ends_with("MANIFEST_UNKNOWN: the end"));
        assert!(d.message.contains(" … "));
        assert_eq!(d.class, Permanent);
    }
}
