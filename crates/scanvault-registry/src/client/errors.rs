//! What a failed request means: each answer or transport failure as a [`RegistryError`] with
//! its code, class, status and a message naming the image and the registry.

use super::*;

impl RegistryClient {
    /// Error for a non-success manifest answer.
    pub(super) async fn status_error(
        &self,
        t: &Target<'_>,
        resp: reqwest::Response,
    ) -> RegistryError {
        let status = resp.status();
        let retry = retry_after(resp.headers());
        let codes = error_codes(resp).await;
        let said = codes
            .first()
            .map(|(c, m)| {
                if m.is_empty() {
                    c.clone()
                } else {
                    format!("{c}: {m}")
                }
            })
            .unwrap_or_default();
        let has = |c: &str| codes.iter().any(|(code, _)| code == c);
        let code = status.as_u16();
        let e = if code == 404 || has("MANIFEST_UNKNOWN") || has("NAME_UNKNOWN") {
            let detail = if has("NAME_UNKNOWN") && t.op == Op::Manifest {
                format!(
                    " (the registry has no repository {})",
                    t.reference.repository
                )
            } else {
                String::new()
            };
            RegistryError::new(
                ErrorKind::ManifestUnknown,
                format!("{} not found in registry {}{detail}", t.subject, t.registry),
            )
        } else if code == 401 || code == 403 {
            return self.unauthorized(t, status, &said, true);
        } else if code == 429 || has("TOOMANYREQUESTS") {
            RegistryError::new(
                ErrorKind::RateLimited,
                format!(
                    "registry {} is rate limiting requests (HTTP {status}) while {}{}",
                    t.registry,
                    t.action,
                    retry_note(retry)
                ),
            )
        } else if status.is_server_error() {
            let said = if said.is_empty() {
                String::new()
            } else {
                format!(" (it said: {said})")
            };
            RegistryError::new(
                ErrorKind::RegistryUnavailable,
                format!(
                    "registry {} failed to answer for {} (HTTP {status}); try again later{said}",
                    t.registry, t.subject
                ),
            )
        } else {
            let said = if said.is_empty() {
                String::new()
            } else {
                format!(" (it said: {said})")
            };
            RegistryError::new(
                ErrorKind::Protocol,
                format!(
                    "unexpected answer from registry {} for {}: HTTP {status}{said}",
                    t.registry, t.subject
                ),
            )
        };
        e.with_status(code).with_retry_after(retry)
    }

    pub(super) async fn read_limited(
        &self,
        t: &Target<'_>,
        mut resp: reqwest::Response,
        limit: usize,
        what: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_big = || {
            RegistryError::new(
                ErrorKind::Protocol,
                format!(
                    "registry {} sent a {what} larger than {} MiB for {}",
                    t.registry,
                    limit >> 20,
                    t.subject
                ),
            )
        };
        if resp.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_big());
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > limit {
                        return Err(too_big());
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => return Ok(body),
                Err(e) => {
                    return Err(self.transport_error(t, &format!("registry {}", t.registry), &e))
                }
            }
        }
    }

    /// Classify a failed request: timeout, TLS, redirect refusal, else network.
    pub(super) fn transport_error(
        &self,
        t: &Target<'_>,
        peer: &str,
        e: &reqwest::Error,
    ) -> RegistryError {
        let cause = error_chain(e);
        let lower = cause.to_ascii_lowercase();
        let timed_out = e.is_timeout() || io_kinds(e).contains(&std::io::ErrorKind::TimedOut);
        if timed_out {
            return RegistryError::new(
                ErrorKind::Timeout,
                format!(
                    "{peer} did not answer within {} while {}",
                    human_duration(self.inner.timeout),
                    t.action
                ),
            );
        }
        if e.is_builder() {
            return RegistryError::new(
                ErrorKind::InvalidReference,
                format!("cannot build a request for {}: {cause}", t.subject),
            );
        }
        if e.is_redirect() {
            return RegistryError::new(
                ErrorKind::Protocol,
                format!("{peer} sent a bad redirect while {}: {cause}", t.action),
            );
        }
        let https = e.url().is_none_or(|u| u.scheme() == "https");
        const TLS_MARKERS: [&str; 8] = [
            "tls",
            "ssl",
            "certificate",
            "handshake",
            "invalidcontenttype",
            "corrupt message",
            "peer sent",
            "alert",
        ];
        if https && TLS_MARKERS.iter().any(|m| lower.contains(m)) {
            let plain_http =
                lower.contains("invalidcontenttype") || lower.contains("corrupt message");
            let hint = if plain_http {
                format!(
                    "the registry does not seem to speak TLS; if {} serves plain HTTP, list it in {INSECURE_HOSTS_ENV}",
                    t.registry
                )
            } else {
                format!(
                    "check the registry's certificate; if {} serves plain HTTP, list it in {INSECURE_HOSTS_ENV}",
                    t.registry
                )
            };
            return RegistryError::new(
                ErrorKind::Tls,
                format!(
                    "TLS error talking to {peer} while {}: {cause}; {hint}",
                    t.action
                ),
            );
        }
        let what = if io_kinds(e).contains(&std::io::ErrorKind::ConnectionRefused) {
            "connection refused".to_string()
        } else if lower.contains("dns error") || lower.contains("lookup address") {
            format!("DNS lookup failed ({cause})")
        } else {
            cause
        };
        RegistryError::new(
            ErrorKind::Network,
            format!("cannot reach {peer} while {}: {what}", t.action),
        )
    }
}

pub(super) fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

pub(super) fn retry_note(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("; retry after {}", human_duration(d)),
        None => "; retry later".to_string(),
    }
}

/// The error's sources joined with ": ", without the top level (which repeats the URL).
pub(super) fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        // hyper-util's wrapper ("client error (Connect)") says nothing a person needs.
        let wrapper = text.starts_with("client error (");
        if !text.is_empty() && !wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

pub(super) fn io_kinds(e: &(dyn StdError + 'static)) -> Vec<std::io::ErrorKind> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(s) = cur {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            out.push(io.kind());
        }
        cur = s.source();
    }
    out
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// The registry's `{"errors": [{"code", "message"}]}` from an error body.
pub(super) async fn error_codes(resp: reqwest::Response) -> Vec<(String, String)> {
    let Ok(body) = resp.bytes().await else {
        return Vec::new();
    };
    parse_error_body(&body)
}

pub(crate) fn parse_error_body(body: &[u8]) -> Vec<(String, String)> {
    let Ok(v) =
        serde_json::from_slice::<serde_json::Value>(&body[..body.len().min(MAX_SMALL_BODY)])
    else {
        return Vec::new();
    };
    let Some(errors) = v.get("errors").and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    errors
        .iter()
        .filter_map(|e| {
            let code = e.get("code")?.as_str()?.to_ascii_uppercase();
            let msg = e.get("message").and_then(|m| m.as_str()).unwrap_or("");
            Some((clean(&code, 60), clean(msg, 200)))
        })
        .collect()
}

/// First registry error as `CODE: message`, or the token service's `details`/`error`.
pub(super) async fn registry_message(resp: reqwest::Response) -> String {
    let Ok(body) = resp.bytes().await else {
        return String::new();
    };
    if let Some((c, m)) = parse_error_body(&body).into_iter().next() {
        return if m.is_empty() { c } else { format!("{c}: {m}") };
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return String::new();
    };
    ["details", "error_description", "error", "message"]
        .iter()
        .find_map(|k| v.get(*k).and_then(|x| x.as_str()))
        .map(|s| clean(s, 200))
        .unwrap_or_default()
}

/// One line, at most `max` characters.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}
