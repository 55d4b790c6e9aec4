//! Passwords out of URLs before they are logged or shown: the configuration at start, the
//! database a store opened, and error texts that may echo a URL.
//!
//! A URL is parsed with the `url` crate, which is also how sqlx reads `DATABASE_URL`, so
//! the parts masked here are the parts the database driver takes as a password: the
//! password of the userinfo and a `password=` query parameter. Everything else is kept as
//! it was written. A string that does not parse as a URL is still shown without a
//! password: everything that could be one is masked, which may hide more than the password.

use url::Url;

/// What a masked password is shown as.
const MASK: &str = "***";

/// Mask the password of a URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`) and
/// the value of its `password=` query parameters.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        // Without a host there is no userinfo to the parser (`u:pw@h` is scheme `u` and an
        // opaque path), but an `@` says someone meant one.
        Ok(parsed) if parsed.host().is_some() || !url.contains('@') => {
            redact_parsed(url, parsed).unwrap_or_else(|| redact_unparsed(url))
        }
        _ => redact_unparsed(url),
    }
}

/// Error texts from URL parsing can echo the URL; mask anything that looks like one.
pub fn redact_error(msg: &str) -> String {
    msg.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                redact_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The URL with its passwords masked, `original` itself when it has none, or `None` when
/// the password cannot be replaced in place (the caller then masks without the parser).
fn redact_parsed(original: &str, mut url: Url) -> Option<String> {
    let mut changed = false;
    if url.password().is_some() {
        url.set_password(Some(MASK)).ok()?;
        changed = true;
    }
    if let Some(query) = url.query() {
        if let Some(masked) = mask_query_password(query) {
            url.set_query(Some(&masked));
            changed = true;
        }
    }
    Some(if changed {
        url.to_string()
    } else {
        original.to_string()
    })
}

/// The query with the value of every `password` parameter masked, or `None` if it has
/// none. The other parameters keep their spelling; the name is compared decoded and
/// case-insensitively (`pass%77ord=` is a password to a driver too).
fn mask_query_password(query: &str) -> Option<String> {
    let mut found = false;
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| {
            let is_password = url::form_urlencoded::parse(kv.as_bytes())
                .next()
                .is_some_and(|(k, _)| k.eq_ignore_ascii_case("password"));
            match kv.split_once('=') {
                Some((k, _)) if is_password => {
                    found = true;
                    format!("{k}={MASK}")
                }
                _ => kv.to_string(),
            }
        })
        .collect();
    found.then(|| parts.join("&"))
}

/// Masks without a parser, erring on the side of hiding: after `scheme://`, everything up
/// to the last `@` but a plain user name, and every `password=` value up to the next `&`
/// or `#`. Both are worked out on the original text, so a password holding `@`, `&` or
/// `password=` cannot move the boundaries so that a part of it stays visible.
fn redact_unparsed(s: &str) -> String {
    let mut hide = vec![false; s.len()];
    let start = s.find("://").map_or(0, |i| i + 3);
    if let Some(at) = s.rfind('@').filter(|&at| at >= start) {
        let userinfo = &s[start..at];
        let user_end = userinfo.find(':').unwrap_or(userinfo.len());
        let from = if userinfo[..user_end].contains(['/', '?', '#']) {
            // Not a plain user name: the `@` may belong to a query or a password.
            start
        } else {
            (start + user_end + 1).min(at)
        };
        hide[from..at].fill(true);
    }
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("password=") {
        let value = from + i + "password=".len();
        let end = s[value..].find(['&', '#']).map_or(s.len(), |j| value + j);
        hide[value..end].fill(true);
        from = value;
    }
    // Every hidden run starts and ends at an ASCII character or the end, so the slices
    // below fall on character boundaries.
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let run = hide[i..].iter().take_while(|&&h| h == hide[i]).count();
        if hide[i] {
            out.push_str(MASK);
        } else {
            out.push_str(&s[i..i + run]);
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db?sslmode=disable"),
            "postgres://u:***@h:5432/db?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=p"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(
            redact_url("sqlite://x.db?mode=rwc"),
            "sqlite://x.db?mode=rwc"
        );
    }

    #[test]
    fn the_other_query_parameters_keep_their_spelling() {
        assert_eq!(
            redact_url("postgres://u:p%40ss@h/db?options=-c%20a%3Db&PassWord=x&sslmode=require"),
            "postgres://u:***@h/db?options=-c%20a%3Db&PassWord=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://h/db?pass%77ord=x"),
            "postgres://h/db?pass%77ord=***"
        );
        assert_eq!(redact_url("sqlite:x.db?mode=rwc"), "sqlite:x.db?mode=rwc");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn unparsable_urls_never_show_a_password() {
        for (url, secret) in [
            // A port that is not a number.
            ("postgres://u:hunter2@h:port/db", "hunter2"),
            // A '/' in the password ends the authority for the parser.
            ("postgres://u:hun/ter2@h/db", "ter2"),
            ("postgres://u:hun/ter2@h/db", "hun"),
            // An unclosed IPv6 literal, and a password in the query holding '@'.
            ("postgres://[::1/db?user=u&password=hun@ter2", "hun"),
            ("postgres://[::1/db?user=u&password=hun@ter2", "ter2"),
            ("postgres://u:a&password=hunter2@[::1/db", "hunter2"),
            ("postgres://u:a&password=hunter2@[::1/db", "a&"),
        ] {
            assert!(Url::parse(url).is_err(), "{url} parses");
            let shown = redact_url(url);
            assert!(!shown.contains(secret), "{url} → {shown}");
            assert!(shown.contains(MASK), "{url} → {shown}");
        }
        assert_eq!(
            redact_url("postgres://u:hunter2@h:port/db"),
            "postgres://u:***@h:port/db"
        );
        // No `//`: the parser sees the scheme `u` and a path, not a user and a password.
        assert_eq!(redact_url("u:hunter2@h/db"), "u:***@h/db");
        assert_eq!(redact_url("postgres:u:hunter2@h"), "postgres:***@h");
        assert_eq!(
            redact_url("postgres://u@h:port/db"),
            "postgres://u@h:port/db"
        );
    }

    #[test]
    fn urls_in_error_texts_are_redacted() {
        assert_eq!(
            redact_error("invalid port in  postgres://u:hunter2@h:port/db (at 20)"),
            "invalid port in postgres://u:***@h:port/db (at 20)"
        );
    }
}
