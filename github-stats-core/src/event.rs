//! The events we keep: their types, the fields we store, and validated repository names.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The three GitHub event types this project keeps; every other type is dropped at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    /// Someone starred a repository (`payload.action` is `started`).
    WatchEvent,
    /// A pull request was opened, closed, reopened, edited, …
    PullRequestEvent,
    /// An issue was opened, closed, reopened, edited, …
    IssuesEvent,
}

impl EventType {
    /// Every kept type, in the order used by per-type arrays (`[u64; 3]`).
    pub const ALL: [EventType; 3] = [
        EventType::WatchEvent,
        EventType::PullRequestEvent,
        EventType::IssuesEvent,
    ];

    /// GitHub's name for the type, as in the `type` field of an event.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::WatchEvent => "WatchEvent",
            EventType::PullRequestEvent => "PullRequestEvent",
            EventType::IssuesEvent => "IssuesEvent",
        }
    }

    /// Position of this type in per-type arrays such as [`TypeCounts`](crate::TypeCounts).
    pub const fn index(self) -> usize {
        match self {
            EventType::WatchEvent => 0,
            EventType::PullRequestEvent => 1,
            EventType::IssuesEvent => 2,
        }
    }

    /// Inverse of [`EventType::index`].
    pub const fn from_index(index: usize) -> Option<EventType> {
        match index {
            0 => Some(EventType::WatchEvent),
            1 => Some(EventType::PullRequestEvent),
            2 => Some(EventType::IssuesEvent),
            _ => None,
        }
    }

    /// The kept type named `name` (GitHub's spelling), or `None` for any other type.
    pub fn from_name(name: &str) -> Option<EventType> {
        match name {
            "WatchEvent" => Some(EventType::WatchEvent),
            "PullRequestEvent" => Some(EventType::PullRequestEvent),
            "IssuesEvent" => Some(EventType::IssuesEvent),
            _ => None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One kept GitHub event: the vital fields only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// GitHub's event id (a numeric string in the JSON). Unique across GitHub.
    pub id: u64,
    /// The event type.
    pub event_type: EventType,
    /// `repo.id`.
    pub repo_id: u64,
    /// `repo.name`, `owner/name`.
    pub repo_name: String,
    /// `created_at`, second precision.
    pub created_at: DateTime<Utc>,
    /// `payload.action` (`started`, `opened`, `closed`, …); empty when the payload has none.
    pub action: String,
}

impl Event {
    /// `created_at` as seconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.created_at.timestamp()
    }

    /// Whether this event opens a pull request: the events behind the PR average.
    pub fn is_pull_request_opened(&self) -> bool {
        self.event_type == EventType::PullRequestEvent && self.action == "opened"
    }
}

/// Seconds since the Unix epoch to a UTC time; `None` outside chrono's range.
pub(crate) fn utc_from_timestamp(seconds: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds, 0).single()
}

/// Longest repository name accepted: GitHub allows 39 characters for an owner and 100 for a
/// repository, plus the slash.
pub const MAX_REPO_NAME_LEN: usize = 140;

/// A validated `owner/name` repository name.
///
/// Owners are letters, digits and `-`; repository names are letters, digits, `-`, `_` and `.`
/// (`.` and `..` alone are refused). This is what GitHub allows, so every real repository
/// passes, and nothing that could break out of a query or a path does.
///
/// ```
/// use github_stats_core::RepoName;
/// let repo: RepoName = "rust-lang/rust".parse().unwrap();
/// assert_eq!(repo.owner(), "rust-lang");
/// assert!("rust-lang/rust/extra".parse::<RepoName>().is_err());
/// assert!("o'neil/repo".parse::<RepoName>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName {
    full: String,
    slash: usize,
}

/// Why a repository name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RepoNameError {
    /// Not of the form `owner/name` with exactly one slash.
    #[error("repository must be 'owner/name' with exactly one slash")]
    NotOwnerSlashName,
    /// The owner or the name is empty.
    #[error("repository owner and name must not be empty")]
    EmptyPart,
    /// Longer than [`MAX_REPO_NAME_LEN`].
    #[error("repository name longer than {MAX_REPO_NAME_LEN} characters")]
    TooLong,
    /// A character GitHub does not allow at that place.
    #[error("repository name contains a character GitHub does not allow: {0:?}")]
    BadCharacter(char),
    /// `.` or `..` as the repository part.
    #[error("repository name must not be '.' or '..'")]
    DotName,
}

impl RepoName {
    /// Builds a repository name from its two parts.
    pub fn new(owner: &str, name: &str) -> Result<RepoName, RepoNameError> {
        validate_part(owner, false)?;
        validate_part(name, true)?;
        let full = format!("{owner}/{name}");
        if full.len() > MAX_REPO_NAME_LEN {
            return Err(RepoNameError::TooLong);
        }
        Ok(RepoName {
            slash: owner.len(),
            full,
        })
    }

    /// The whole `owner/name`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The part before the slash.
    pub fn owner(&self) -> &str {
        &self.full[..self.slash]
    }

    /// The part after the slash.
    pub fn name(&self) -> &str {
        &self.full[self.slash + 1..]
    }
}

fn validate_part(part: &str, is_repo: bool) -> Result<(), RepoNameError> {
    if part.is_empty() {
        return Err(RepoNameError::EmptyPart);
    }
    if part.len() > MAX_REPO_NAME_LEN {
        return Err(RepoNameError::TooLong);
    }
    if is_repo && (part == "." || part == "..") {
        return Err(RepoNameError::DotName);
    }
    for c in part.chars() {
        let allowed = c.is_ascii_alphanumeric() || c == '-' || (is_repo && (c == '_' || c == '.'));
        // Owners of old accounts may contain `_`, which GitHub accepted before 2013.
        let allowed = allowed || (!is_repo && c == '_');
        if c == '/' {
            return Err(RepoNameError::NotOwnerSlashName);
        }
        if !allowed {
            return Err(RepoNameError::BadCharacter(c));
        }
    }
    Ok(())
}

impl FromStr for RepoName {
    type Err = RepoNameError;

    fn from_str(s: &str) -> Result<RepoName, RepoNameError> {
        if s.len() > MAX_REPO_NAME_LEN {
            return Err(RepoNameError::TooLong);
        }
        let (owner, name) = s.split_once('/').ok_or(RepoNameError::NotOwnerSlashName)?;
        RepoName::new(owner, name)
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl AsRef<str> for RepoName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_index_round_trips() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_index(t.index()), Some(t));
            assert_eq!(EventType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(EventType::from_name("PushEvent"), None);
    }

    #[test]
    fn repo_names_github_accepts_parse() {
        for ok in [
            "rust-lang/rust",
            "a/b",
            "kevinvanhove/cssobjects",
            "user/repo.with.dots",
            "user/under_score",
            "old_user/x",
            "Owner-1/.github",
        ] {
            let parsed: RepoName = ok.parse().unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(parsed.as_str(), ok);
        }
    }

    #[test]
    fn repo_names_github_refuses_are_errors() {
        let long = format!("o/{}", "x".repeat(140));
        for (bad, why) in [
            ("norepo", RepoNameError::NotOwnerSlashName),
            ("/repo", RepoNameError::EmptyPart),
            ("owner/", RepoNameError::EmptyPart),
            ("a/b/c", RepoNameError::NotOwnerSlashName),
            ("o'neil/x", RepoNameError::BadCharacter('\'')),
            ("own er/x", RepoNameError::BadCharacter(' ')),
            ("owner/x\"y", RepoNameError::BadCharacter('"')),
            ("owner/x\0", RepoNameError::BadCharacter('\0')),
            ("owner/..", RepoNameError::DotName),
            ("own.er/x", RepoNameError::BadCharacter('.')),
            ("owner/é", RepoNameError::BadCharacter('é')),
            (long.as_str(), RepoNameError::TooLong),
        ] {
            assert_eq!(bad.parse::<RepoName>(), Err(why), "{bad:?}");
        }
    }
}
