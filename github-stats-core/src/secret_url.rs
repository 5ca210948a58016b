//! [`SecretUrl`]: a URL setting that may carry credentials, shown without them.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// What replaces credentials when a [`SecretUrl`] is shown.
pub const REDACTED: &str = "<redacted>";

/// A URL that may carry credentials: `https://user:password@host/`, or a query such as
/// `?access_token=…` or ClickHouse's `?password=…`. Every URL setting is one (`GITHUB_API_URL`,
/// `CLICKHOUSE_URL`, `CLICKHOUSE_CLUSTER_NODES`, `GHARCHIVE_URL`).
///
/// [`Display`](fmt::Display) and [`Debug`](fmt::Debug) show it redacted, so that it can be
/// logged, quoted in an error, or shown in a status: what lies between `://` and the last `@`
/// becomes `<redacted>`, and so does the query. The URL as given, credentials included, is only
/// reachable through [`expose_secret`](SecretUrl::expose_secret), which the code that connects
/// calls.
///
/// ```
/// use github_stats_core::SecretUrl;
/// let url = SecretUrl::new("https://bot:hunter2@ghe.example/api/v3?access_token=t0k3n");
/// assert_eq!(url.to_string(), "https://<redacted>@ghe.example/api/v3?<redacted>");
/// assert!(!format!("{url:?}").contains("hunter2"));
/// assert_eq!(url.expose_secret(), "https://bot:hunter2@ghe.example/api/v3?access_token=t0k3n");
/// ```
///
/// The value is kept as given, valid URL or not: a value that does not parse is shown redacted
/// all the same (a password with a raw `/` or `?` in it is hidden too, up to its last `@`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`, as given.
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL as given, credentials included: for connecting, never for showing.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether the URL carries something [`Display`](fmt::Display) hides (user information or
    /// a query).
    pub fn has_credentials(&self) -> bool {
        let (_, rest) = split_scheme(&self.0);
        rest.contains('@') || rest.contains('?')
    }

    /// The scheme (`https`), lowercased, when the URL has one.
    pub fn scheme(&self) -> Option<String> {
        split_scheme(self.0.trim_start())
            .0
            .map(|scheme| scheme.to_ascii_lowercase())
    }

    /// The URL with surrounding white space removed and, unless it is only a scheme's root
    /// (`file:///`), trailing `/` too: the base that paths are appended to.
    pub fn trimmed(&self) -> SecretUrl {
        let url = self.0.trim();
        let trimmed = url.trim_end_matches('/');
        if trimmed.ends_with(':') {
            // `file:///` would lose its root.
            SecretUrl(url.to_owned())
        } else {
            SecretUrl(trimmed.to_owned())
        }
    }

    /// Whether it is empty (or only white space).
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

/// `(scheme, rest)`: the scheme when the text starts with `scheme://` (letters, digits, `+`,
/// `-`, `.`, starting with a letter), and what follows `://`; else no scheme and the whole text.
fn split_scheme(url: &str) -> (Option<&str>, &str) {
    if let Some((scheme, rest)) = url.split_once("://") {
        let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if valid {
            return (Some(scheme), rest);
        }
    }
    (None, url)
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = split_scheme(&self.0);
        if let Some(scheme) = scheme {
            write!(f, "{scheme}://")?;
        }
        // Everything up to the last `@` is user information, wherever that `@` is: a raw `/`,
        // `?` or `#` in a password must not let its end show.
        let rest = match rest.rfind('@') {
            Some(at) => {
                write!(f, "{REDACTED}@")?;
                &rest[at + 1..]
            }
            None => rest,
        };
        match rest.split_once('?') {
            Some((before, query)) => {
                let fragment = query.find('#').map_or("", |i| &query[i..]);
                write!(f, "{before}?{REDACTED}{fragment}")
            }
            None => f.write_str(rest),
        }
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.to_string()).finish()
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> SecretUrl {
        SecretUrl(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> SecretUrl {
        SecretUrl(url.to_owned())
    }
}

impl From<&String> for SecretUrl {
    fn from(url: &String) -> SecretUrl {
        SecretUrl(url.clone())
    }
}

impl From<&SecretUrl> for SecretUrl {
    fn from(url: &SecretUrl) -> SecretUrl {
        url.clone()
    }
}

impl FromStr for SecretUrl {
    type Err = Infallible;

    fn from_str(url: &str) -> Result<SecretUrl, Infallible> {
        Ok(SecretUrl::from(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_queries_are_hidden_and_nothing_else() {
        for (url, shown) in [
            (
                "https://user:secret@host:8123/db?password=x",
                "https://<redacted>@host:8123/db?<redacted>",
            ),
            (
                "http://token@github.example/api/v3",
                "http://<redacted>@github.example/api/v3",
            ),
            ("http://a:b@c@host", "http://<redacted>@host"),
            // Raw separators in a password: everything up to the last `@` goes.
            (
                "http://user:p/ss?w#rd@host:1/x",
                "http://<redacted>@host:1/x",
            ),
            (
                "http://host/x?token=abc#top",
                "http://host/x?<redacted>#top",
            ),
            // Not a URL, and no scheme: the part before `@` is still hidden.
            ("reader:hunter2@db:8123", "<redacted>@db:8123"),
            ("https://api.github.com", "https://api.github.com"),
            ("file:///srv/gharchive", "file:///srv/gharchive"),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            let url = SecretUrl::new(url);
            assert_eq!(url.to_string(), shown, "{url:?}");
            assert_eq!(format!("{url:?}"), format!("SecretUrl({shown:?})"));
            assert_eq!(url.has_credentials(), url.to_string() != url.0);
        }
    }

    #[test]
    fn the_secret_is_reachable_only_when_asked_for() {
        let url: SecretUrl = "http://u:pw@h:1".parse().unwrap();
        assert_eq!(url.expose_secret(), "http://u:pw@h:1");
        assert!(url.has_credentials());
        assert_eq!(url.scheme().as_deref(), Some("http"));
        assert_eq!(
            SecretUrl::new("HTTPS://h").scheme().as_deref(),
            Some("https")
        );
        assert_eq!(SecretUrl::new("h:8123").scheme(), None);
    }

    #[test]
    fn trimmed_keeps_a_root() {
        assert_eq!(
            SecretUrl::new(" http://h:1/// ").trimmed().expose_secret(),
            "http://h:1"
        );
        assert_eq!(
            SecretUrl::new("file:///").trimmed().expose_secret(),
            "file:///"
        );
        assert!(SecretUrl::new("  ").is_empty());
    }
}
