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

/// The earliest `created_at` stored: the Unix epoch, 1970-01-01T00:00:00Z (both stores keep
/// times as unsigned seconds).
pub const MIN_STORABLE_SECONDS: i64 = 0;

/// The latest `created_at` stored: 2105-12-31T23:59:59Z. Both stores keep `u32` seconds (up to
/// 2106-02-07), but ClickHouse's date functions stop at the end of 2105: ClickHouse 18.16 turns
/// `toDate` of a later time into `0000-00-00` and shows `u32::MAX` as 1970.
pub const MAX_STORABLE_SECONDS: i64 = 4_291_747_199;

/// Longest `payload.action` the parser accepts, in bytes. GitHub's longest is
/// `review_request_removed` (22).
pub const MAX_ACTION_LEN: usize = 64;

/// Longest repository name a store holds, in bytes: the memory store's log keeps its length in
/// 16 bits.
pub const MAX_STORED_NAME_BYTES: usize = u16::MAX as usize;

/// Longest action a store holds, in bytes: the memory store's log keeps its length in 8 bits.
pub const MAX_STORED_ACTION_BYTES: usize = u8::MAX as usize;

/// Why an event is refused. The parser checks every field against GitHub's rules
/// ([`Event::validate`]) and counts a failing record as [`invalid`](crate::ParseStats::invalid);
/// the stores refuse what they could not hold as it is ([`Event::check_storable`]) with
/// [`StoreError::InvalidEvent`](crate::StoreError::InvalidEvent), so no store ever holds a
/// value it cut, wrapped or mangled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidEvent {
    /// The event id is 0 (GitHub's ids start at 1).
    #[error("event id is 0")]
    ZeroId,
    /// The repository id is 0 (GitHub's ids start at 1).
    #[error("repository id is 0")]
    ZeroRepoId,
    /// The repository name is not one GitHub allows.
    #[error("repository name {name:?}: {reason}")]
    RepoName {
        /// The name, cut to 100 characters.
        name: String,
        /// What is wrong with it.
        #[source]
        reason: RepoNameError,
    },
    /// The action is longer than [`MAX_ACTION_LEN`] or holds a character other than ASCII
    /// letters, digits and `_`.
    #[error(
        "action {0:?} is not a GitHub action (at most {MAX_ACTION_LEN} ASCII letters, digits or '_')"
    )]
    Action(String),
    /// `created_at` is outside 1970-01-01 to 2105-12-31 ([`MAX_STORABLE_SECONDS`]).
    #[error("created_at {0} is outside the storable range (1970-01-01 to 2105-12-31)")]
    Time(DateTime<Utc>),
    /// A field is longer than a store can hold ([`MAX_STORED_NAME_BYTES`],
    /// [`MAX_STORED_ACTION_BYTES`]).
    #[error("{field} of {bytes} bytes is longer than the {max} bytes a store holds")]
    TooLong {
        /// `repo_name` or `action`.
        field: &'static str,
        /// Its length.
        bytes: usize,
        /// The most a store holds.
        max: usize,
    },
}

impl Event {
    /// Checks every field against what GitHub sends and what the stores can hold: ids above 0,
    /// a repository name GitHub allows ([`RepoName`]), an action of at most
    /// [`MAX_ACTION_LEN`] ASCII letters, digits or `_` (or none), and a time from 1970 to the
    /// end of 2105.
    ///
    /// ```
    /// use github_stats_core::{Event, EventType, InvalidEvent};
    /// let mut event = Event {
    ///     id: 1,
    ///     event_type: EventType::WatchEvent,
    ///     repo_id: 2,
    ///     repo_name: "rust-lang/rust".into(),
    ///     created_at: "2026-01-25T08:49:55Z".parse().unwrap(),
    ///     action: "started".into(),
    /// };
    /// assert_eq!(event.validate(), Ok(()));
    /// event.repo_name = "x".repeat(70_000);
    /// assert!(matches!(event.validate(), Err(InvalidEvent::RepoName { .. })));
    /// ```
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        validate_fields(
            self.id,
            self.repo_id,
            &self.repo_name,
            &self.action,
            self.timestamp(),
        )
    }

    /// Checks what a store could not hold as it is: a time outside 1970 to the end of 2105,
    /// a repository name over [`MAX_STORED_NAME_BYTES`] or an action over
    /// [`MAX_STORED_ACTION_BYTES`]. Looser than [`Event::validate`] (the stores take names
    /// GitHub would refuse, quotes and all, safely); every store checks it on insert.
    pub fn check_storable(&self) -> Result<(), InvalidEvent> {
        check_storable_fields(&self.repo_name, &self.action, self.timestamp())
    }
}

/// [`Event::check_storable`] of an event's fields.
pub(crate) fn check_storable_fields(
    repo_name: &str,
    action: &str,
    seconds: i64,
) -> Result<(), InvalidEvent> {
    if repo_name.len() > MAX_STORED_NAME_BYTES {
        return Err(InvalidEvent::TooLong {
            field: "repo_name",
            bytes: repo_name.len(),
            max: MAX_STORED_NAME_BYTES,
        });
    }
    if action.len() > MAX_STORED_ACTION_BYTES {
        return Err(InvalidEvent::TooLong {
            field: "action",
            bytes: action.len(),
            max: MAX_STORED_ACTION_BYTES,
        });
    }
    check_time(seconds)
}

fn check_time(seconds: i64) -> Result<(), InvalidEvent> {
    if (MIN_STORABLE_SECONDS..=MAX_STORABLE_SECONDS).contains(&seconds) {
        Ok(())
    } else {
        let at = utc_from_timestamp(seconds).unwrap_or(DateTime::<Utc>::MIN_UTC);
        Err(InvalidEvent::Time(at))
    }
}

/// [`Event::validate`] of an event's fields, `created_at` in seconds since the epoch.
fn validate_fields(
    id: u64,
    repo_id: u64,
    repo_name: &str,
    action: &str,
    seconds: i64,
) -> Result<(), InvalidEvent> {
    if id == 0 {
        return Err(InvalidEvent::ZeroId);
    }
    if repo_id == 0 {
        return Err(InvalidEvent::ZeroRepoId);
    }
    if let Err(reason) = check_repo_name(repo_name) {
        return Err(InvalidEvent::RepoName {
            name: repo_name.chars().take(100).collect(),
            reason,
        });
    }
    if !is_valid_action(action) {
        return Err(InvalidEvent::Action(action.chars().take(100).collect()));
    }
    check_time(seconds)
}

fn is_valid_action(action: &str) -> bool {
    action.len() <= MAX_ACTION_LEN
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
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

/// Checks `owner/name` as [`RepoName`] does, without allocating; the slash's position.
fn check_repo_name(s: &str) -> Result<usize, RepoNameError> {
    if s.len() > MAX_REPO_NAME_LEN {
        return Err(RepoNameError::TooLong);
    }
    let (owner, name) = s.split_once('/').ok_or(RepoNameError::NotOwnerSlashName)?;
    validate_part(owner, false)?;
    validate_part(name, true)?;
    Ok(owner.len())
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
        let slash = check_repo_name(s)?;
        Ok(RepoName {
            full: s.to_owned(),
            slash,
        })
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
    fn validation_keeps_what_github_sends_and_the_stores_hold() {
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let good = Event {
            id: 1,
            event_type: EventType::PullRequestEvent,
            repo_id: 1,
            repo_name: format!("{}/{}", "o".repeat(39), "r".repeat(100)),
            created_at: at(MIN_STORABLE_SECONDS),
            action: "review_request_removed".into(),
        };
        assert_eq!(good.validate(), Ok(()));
        let with = |f: &dyn Fn(&mut Event)| {
            let mut e = good.clone();
            f(&mut e);
            e.validate()
        };
        assert_eq!(with(&|e| e.created_at = at(MAX_STORABLE_SECONDS)), Ok(()));
        assert_eq!(with(&|e| e.action = "x".repeat(MAX_ACTION_LEN)), Ok(()));
        assert_eq!(with(&|e| e.action.clear()), Ok(()));
        assert_eq!(with(&|e| e.id = 0), Err(InvalidEvent::ZeroId));
        assert_eq!(with(&|e| e.repo_id = 0), Err(InvalidEvent::ZeroRepoId));
        for (seconds, text) in [
            (MAX_STORABLE_SECONDS + 1, "2106-01-01"),
            (i64::from(u32::MAX), "2106-02-07"),
            (-1, "1969-12-31"),
        ] {
            let err = with(&|e| e.created_at = at(seconds)).unwrap_err();
            assert!(matches!(err, InvalidEvent::Time(_)), "{err}");
            assert!(err.to_string().contains(text), "{err}");
        }
        for action in ["x".repeat(MAX_ACTION_LEN + 1), "opened!".into(), "é".into()] {
            assert!(matches!(
                with(&|e| e.action = action.clone()),
                Err(InvalidEvent::Action(_))
            ));
        }
        // What a store checks is looser: names GitHub refuses are stored safely, but nothing
        // a store would cut.
        let mut odd = good.clone();
        odd.repo_name = "o'neil/it's \"quoted\"".into();
        odd.id = 0;
        assert_eq!(odd.check_storable(), Ok(()));
        odd.repo_name = "x".repeat(MAX_STORED_NAME_BYTES + 1);
        assert!(matches!(
            odd.check_storable(),
            Err(InvalidEvent::TooLong { .. })
        ));
        odd.repo_name = "a/b".into();
        odd.action = "x".repeat(MAX_STORED_ACTION_BYTES + 1);
        assert!(matches!(
            odd.check_storable(),
            Err(InvalidEvent::TooLong { .. })
        ));
        odd.action.clear();
        odd.created_at = at(MAX_STORABLE_SECONDS + 1);
        assert!(matches!(odd.check_storable(), Err(InvalidEvent::Time(_))));
        let err = with(&|e| e.repo_name = format!("a/{}", "b".repeat(70_000))).unwrap_err();
        assert!(
            matches!(&err, InvalidEvent::RepoName { name, reason: RepoNameError::TooLong } if name.len() == 100),
            "{err:?}"
        );
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
