//! Cross-origin requests from browsers (CORS), for pages on other origins that call the API:
//! `CORS_ALLOW_ORIGINS` lists the origins allowed, or is `*` for any. None by default: then no
//! CORS header is sent and a preflight is a 405, as for any `OPTIONS`.
//!
//! The API is read-only and takes no credentials, so an allowed origin may send `GET` and `HEAD`
//! with any header; cookies and authentication are never allowed
//! (`Access-Control-Allow-Credentials` is not sent). A request from an origin that is not allowed
//! is still answered (the browser hides the answer from the page, other clients are not
//! concerned), without CORS headers; its preflight is refused with a 403.

use std::collections::BTreeSet;

use poem::http::header::{self, HeaderMap, HeaderValue};
use poem::http::{Method, StatusCode};
use poem::{Request, Response};

use super::middleware::json_error;

/// How long a browser may cache a preflight's answer, in seconds (browsers cap it: 2 h in
/// Chromium, 24 h in Firefox).
pub const PREFLIGHT_MAX_AGE_SECS: u32 = 3600;

/// The methods a cross-origin page may use: the API only reads.
pub const ALLOWED_METHODS: &str = "GET, HEAD";

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsPolicy {
    /// No CORS: browsers on other origins cannot read the answers (the default).
    #[default]
    Disabled,
    /// Any origin (`*`).
    AnyOrigin,
    /// These origins (`scheme://host[:port]`, lowercase), and no other.
    Origins(BTreeSet<String>),
}

impl CorsPolicy {
    /// The policy of `CORS_ALLOW_ORIGINS`, given as its comma-separated entries; or one line per
    /// entry that is not an origin.
    pub fn from_entries<S: AsRef<str>>(entries: &[S]) -> Result<CorsPolicy, Vec<String>> {
        let entries: Vec<&str> = entries
            .iter()
            .map(|e| e.as_ref().trim())
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(CorsPolicy::Disabled);
        }
        if entries.contains(&"*") {
            return if entries.len() == 1 {
                Ok(CorsPolicy::AnyOrigin)
            } else {
                Err(vec![
                    "invalid CORS_ALLOW_ORIGINS: '*' allows every origin and cannot be combined \
                     with others"
                        .to_owned(),
                ])
            };
        }
        let mut origins = BTreeSet::new();
        let mut problems = Vec::new();
        for entry in entries {
            match origin(entry) {
                Some(origin) => {
                    origins.insert(origin);
                }
                None => problems.push(format!(
                    "invalid CORS_ALLOW_ORIGINS entry '{entry}', expected '*' or origins such as \
                     https://dashboard.example.com or http://localhost:3000 (scheme, host, \
                     optional port; no path), comma-separated"
                )),
            }
        }
        if problems.is_empty() {
            Ok(CorsPolicy::Origins(origins))
        } else {
            Err(problems)
        }
    }

    /// Whether CORS is on.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, CorsPolicy::Disabled)
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, when it is allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match self {
            CorsPolicy::Disabled => None,
            CorsPolicy::AnyOrigin => Some(HeaderValue::from_static("*")),
            CorsPolicy::Origins(allowed) => {
                let text = origin.to_str().ok()?;
                allowed
                    .contains(&text.to_ascii_lowercase())
                    .then(|| origin.clone())
            }
        }
    }

    /// The answer to `req` when it is a CORS preflight (an `OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`) and CORS is on: 204 with the permissions for an allowed
    /// origin, a JSON 403 for another. `None` for any other request.
    pub fn preflight(&self, req: &Request) -> Option<Response> {
        if !self.is_enabled() || req.method() != Method::OPTIONS {
            return None;
        }
        let headers = req.headers();
        let origin = headers.get(header::ORIGIN)?;
        headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let mut response = match self.allow_origin(origin) {
            Some(allowed) => {
                let mut response = Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed)
                    .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOWED_METHODS)
                    .header(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE_SECS)
                    .finish();
                // No credentials are ever allowed, so any header the page wants to send is
                // harmless.
                if let Some(asked) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                    response
                        .headers_mut()
                        .insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
                }
                response
            }
            None => json_error(
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin requests from {} are not allowed",
                    super::params::quote(&String::from_utf8_lossy(origin.as_bytes()))
                ),
            ),
        };
        vary(
            response.headers_mut(),
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        Some(response)
    }

    /// Adds the CORS headers to the answer of a request that is not a preflight: `*` on every
    /// answer when any origin is allowed; with a list, the origin when `origin` is in it, and
    /// `Vary: Origin` on every answer (it depends on the origin).
    pub fn decorate(&self, origin: Option<&HeaderValue>, response: &mut Response) {
        match self {
            CorsPolicy::Disabled => {}
            // On every answer, Origin or not: the answer then does not depend on it, and a
            // cache may give it to any page.
            CorsPolicy::AnyOrigin => {
                response.headers_mut().insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            CorsPolicy::Origins(_) => {
                // Caches must key on Origin: the same path answers with or without the header.
                vary(response.headers_mut(), "Origin");
                if let Some(allowed) = origin.and_then(|o| self.allow_origin(o)) {
                    response
                        .headers_mut()
                        .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
                }
            }
        }
    }
}

/// Appends `names` to the `Vary` header.
fn vary(headers: &mut HeaderMap, names: &'static str) {
    headers.append(header::VARY, HeaderValue::from_static(names));
}

/// `entry` as a serialized origin (`scheme://host[:port]`, lowercase, without a trailing `/`),
/// when it is one.
fn origin(entry: &str) -> Option<String> {
    let entry = entry.strip_suffix('/').unwrap_or(entry);
    let (scheme, authority) = entry.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        // An IPv6 host is in brackets: `[::1]:8080`, `[::1]`.
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[') && host.ends_with(']')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    (host_ok && port_ok).then(|| entry.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_normalised() {
        let policy = CorsPolicy::from_entries(&[
            " https://Dash.Example.com/ ",
            "http://localhost:3000",
            "http://[::1]:8080",
            "",
        ])
        .unwrap();
        let CorsPolicy::Origins(origins) = &policy else {
            panic!("{policy:?}")
        };
        assert_eq!(
            origins.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "http://[::1]:8080",
                "http://localhost:3000",
                "https://dash.example.com"
            ]
        );
        assert_eq!(
            CorsPolicy::from_entries(&["*"]).unwrap(),
            CorsPolicy::AnyOrigin
        );
        assert_eq!(
            CorsPolicy::from_entries::<&str>(&[]).unwrap(),
            CorsPolicy::Disabled
        );
    }

    #[test]
    fn every_bad_entry_gets_its_own_line() {
        let problems = CorsPolicy::from_entries(&[
            "https://ok.example",
            "dash.example.com",
            "https://a.example/app",
            "ftp://files.example",
            "http://host:99999",
            "https://",
        ])
        .unwrap_err();
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert!(problems[0].contains("'dash.example.com'"), "{problems:?}");
        let mixed = CorsPolicy::from_entries(&["*", "https://a.example"]).unwrap_err();
        assert_eq!(mixed.len(), 1);
        assert!(mixed[0].contains("'*'"), "{mixed:?}");
    }
}
