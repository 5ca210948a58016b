//! Parsing GitHub events: Events API answers (a JSON array) and GH Archive JSON lines.
//!
//! The hot path of every import is dropping the events we do not keep (about 80% of GitHub's
//! stream is `PushEvent`, `CreateEvent`, …). A kept event's JSON always contains its type name
//! as a complete JSON string (`"WatchEvent"`, `"PullRequestEvent"`, `"IssuesEvent"`), so one
//! SIMD scan for `Event"` decides most lines without parsing them: a line with none of the three
//! names cannot be a kept event. Only the candidates get a (borrowing, field-selective) serde
//! parse, which also settles the rare candidate that merely mentions a name in its text.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use memchr::memmem;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{Event, EventType, InvalidEvent};

/// Counts from parsing some input: what was kept, dropped, or refused, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ParseStats {
    /// Non-empty lines (JSON lines) or array elements (JSON arrays) looked at.
    pub records: u64,
    /// Kept events, by type (index: [`EventType::index`]).
    pub kept: [u64; 3],
    /// Events of the types we do not keep.
    pub other_types: u64,
    /// Records that are not valid JSON (or not a JSON object), skipped.
    pub malformed: u64,
    /// Events of a kept type in a shape we cannot store: the pre-2015 timeline format (no `id`)
    /// or an event missing its repository or creation time. Skipped.
    pub unsupported: u64,
    /// Events of a kept type with a field no store may hold: a repository name GitHub does not
    /// allow, an id of 0, an odd action, a time outside 1970-2105 (see
    /// [`Event::validate`]). Skipped, never stored cut or mangled.
    pub invalid: u64,
}

impl ParseStats {
    /// Kept events of every type.
    pub fn kept_total(&self) -> u64 {
        self.kept.iter().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ParseStats) {
        self.records += other.records;
        for (a, b) in self.kept.iter_mut().zip(other.kept) {
            *a += b;
        }
        self.other_types += other.other_types;
        self.malformed += other.malformed;
        self.unsupported += other.unsupported;
        self.invalid += other.invalid;
    }

    /// Counts one record's `outcome`, moving a kept event into `out`.
    pub fn count(&mut self, outcome: RecordOutcome, out: &mut Vec<Event>) {
        self.records += 1;
        match outcome {
            RecordOutcome::Kept(event) => {
                self.kept[event.event_type.index()] += 1;
                out.push(event);
            }
            RecordOutcome::OtherType => self.other_types += 1,
            RecordOutcome::Malformed => self.malformed += 1,
            RecordOutcome::Unsupported => self.unsupported += 1,
            RecordOutcome::Invalid(_) => self.invalid += 1,
        }
    }
}

/// What one record turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A kept event.
    Kept(Event),
    /// An event of a type we do not keep.
    OtherType,
    /// Not a JSON object.
    Malformed,
    /// A kept type we cannot store (see [`ParseStats::unsupported`]).
    Unsupported,
    /// A kept type with a field no store may hold (see [`ParseStats::invalid`]).
    Invalid(InvalidEvent),
}

/// Errors of whole-document parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The document is not a JSON array of objects (an Events API answer must be one).
    #[error("not a JSON array of events: {0}")]
    NotAnArray(#[source] serde_json::Error),
}

/// Parses one event record (a JSON object): the unit of both formats. A kept event is
/// [validated](Event::validate) before it is returned.
///
/// ```
/// use github_stats_core::parse::{parse_record, RecordOutcome};
/// let line = br#"{"id":"2489582589","type":"WatchEvent","repo":{"id":28624016,"name":"kevinvanhove/cssobjects"},"payload":{"action":"started"},"created_at":"2015-01-01T12:00:01Z"}"#;
/// let RecordOutcome::Kept(event) = parse_record(line) else { panic!() };
/// assert_eq!(event.id, 2489582589);
/// assert_eq!(event.action, "started");
/// assert_eq!(parse_record(br#"{"id":"1","type":"PushEvent"}"#), RecordOutcome::OtherType);
/// assert_eq!(parse_record(b"{\"id\":\"1\",\"type\":\"Watch"), RecordOutcome::Malformed);
/// let text = std::str::from_utf8(line).unwrap();
/// let long = text.replace("kevinvanhove/cssobjects", &format!("a/{}", "b".repeat(70_000)));
/// assert!(matches!(parse_record(long.as_bytes()), RecordOutcome::Invalid(_)));
/// ```
pub fn parse_record(record: &[u8]) -> RecordOutcome {
    let trimmed = trim_ascii(record);
    // A cheap shape check keeps truncated lines of dropped types from passing as dropped events.
    if trimmed.len() < 2 || trimmed[0] != b'{' || trimmed[trimmed.len() - 1] != b'}' {
        return RecordOutcome::Malformed;
    }
    let outcome = match fast_path(trimmed) {
        Some(outcome) => outcome,
        None if !mentions_kept_type(trimmed) => return RecordOutcome::OtherType,
        None => parse_candidate(trimmed),
    };
    match outcome {
        RecordOutcome::Kept(event) => match event.validate() {
            Ok(()) => RecordOutcome::Kept(event),
            Err(reason) => RecordOutcome::Invalid(reason),
        },
        other => other,
    }
}

/// The layout GitHub has written since 2015, in the API and in GH Archive:
/// `{"id":"…","type":"…","actor":{…},"repo":{"id":…,"name":"…","url":"…"},"payload":{…},
/// "public":true,"created_at":"…"[,"org":{…}]}`. For such a record the type is read at a fixed
/// place, so dropping an event costs nothing beyond finding its line; a kept one has its fields
/// picked out at landmarks. Anything unexpected (another layout, an escape in a name, a payload
/// not starting with `action`) returns `None` and the record takes the serde path.
fn fast_path(record: &[u8]) -> Option<RecordOutcome> {
    let rest = record.strip_prefix(b"{\"id\":\"")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let id = parse_u64(&rest[..digits])?;
    let rest = rest[digits..].strip_prefix(b"\",\"type\":\"")?;
    let end = memchr::memchr(b'"', rest)?;
    let name = std::str::from_utf8(&rest[..end]).ok()?;
    if name.contains('\\') {
        return None;
    }
    let Some(event_type) = EventType::from_name(name) else {
        return Some(RecordOutcome::OtherType);
    };
    fast_kept(id, event_type, record, &rest[end + 1..]).map(RecordOutcome::Kept)
}

fn fast_kept(id: u64, event_type: EventType, record: &[u8], rest: &[u8]) -> Option<Event> {
    static REPO: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(b"\"repo\":{\"id\":"));
    const CREATED_AT: &[u8] = b",\"public\":true,\"created_at\":\"";
    static CREATED: std::sync::LazyLock<memmem::FinderRev<'static>> =
        std::sync::LazyLock::new(|| memmem::FinderRev::new(CREATED_AT));
    // The actor object has no "repo" key, so the first one is the event's.
    let at = REPO.find(rest)?;
    let rest = &rest[at + b"\"repo\":{\"id\":".len()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let repo_id = parse_u64(&rest[..digits])?;
    let rest = rest[digits..].strip_prefix(b",\"name\":\"")?;
    let (repo_name, rest) = plain_string(rest)?;
    // Skip the rest of the repo object (`,"url":"…"}`): URLs hold no braces.
    let close = memchr::memchr(b'}', rest)?;
    let rest = rest[close + 1..].strip_prefix(b",\"payload\":{\"action\":\"")?;
    let (action, _) = plain_string(rest)?;
    // The top-level created_at follows "public", which no payload object has.
    let start = CREATED.rfind(record)? + CREATED_AT.len();
    let time = record.get(start..start + 20)?;
    if record.get(start + 20) != Some(&b'"') {
        return None;
    }
    let created_at = parse_github_time(std::str::from_utf8(time).ok()?)?;
    Some(Event {
        id,
        event_type,
        repo_id,
        repo_name: repo_name.to_owned(),
        created_at,
        action: action.to_owned(),
    })
}

/// A JSON string without escapes, up to its closing quote; `None` if it has an escape.
fn plain_string(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = memchr::memchr2(b'"', b'\\', bytes)?;
    if bytes[end] != b'"' {
        return None;
    }
    Some((std::str::from_utf8(&bytes[..end]).ok()?, &bytes[end + 1..]))
}

fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}

/// Parses JSON lines (GH Archive's format, and the memory of many tools), appending kept events
/// to `out` and counting everything in `stats`. Never fails: bad lines are counted.
pub fn parse_json_lines(data: &[u8], stats: &mut ParseStats, out: &mut Vec<Event>) {
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len())) {
        let line = &data[start..end];
        start = end + 1;
        if trim_ascii(line).is_empty() {
            continue;
        }
        stats.count(parse_record(line), out);
    }
}

/// Parses a JSON array of events (an Events API answer, or a saved poll file).
///
/// An element that is not a usable event is counted and skipped; a document that is not a JSON
/// array at all is an error.
pub fn parse_json_array(
    data: &[u8],
    stats: &mut ParseStats,
    out: &mut Vec<Event>,
) -> Result<(), ParseError> {
    for range in json_array_elements(data)? {
        stats.count(parse_record(&data[range]), out);
    }
    Ok(())
}

/// The byte ranges in `data` of the elements of the JSON array it holds (a leading byte order
/// mark skipped), from one parse that validates the whole array; an error when `data` is not a
/// JSON array. The one splitter of whole arrays in memory (an Events API page, a poll file read
/// whole); files are split as they stream by, without holding them (`EventFileReader`).
pub fn json_array_elements(data: &[u8]) -> Result<Vec<std::ops::Range<usize>>, ParseError> {
    let json = strip_bom(data);
    let offset = data.len() - json.len();
    let elements: Vec<&RawValue> = serde_json::from_slice(json).map_err(ParseError::NotAnArray)?;
    let base = json.as_ptr() as usize;
    Ok(elements
        .iter()
        .map(|e| {
            let start = e.get().as_ptr() as usize - base + offset;
            start..start + e.get().len()
        })
        .collect())
}

/// Parses a document in either format: a JSON array when its first non-blank byte is `[`,
/// JSON lines otherwise. A document that starts like an array but is not one is counted as one
/// malformed record.
pub fn parse_document(data: &[u8], stats: &mut ParseStats, out: &mut Vec<Event>) {
    let data = strip_bom(data);
    if trim_ascii(data).first() == Some(&b'[') {
        if parse_json_array(data, stats, out).is_err() {
            stats.records += 1;
            stats.malformed += 1;
        }
    } else {
        parse_json_lines(data, stats, out);
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The UTF-8 byte order mark, which some editors and Windows tools put at the start of a file.
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// `data` without a leading UTF-8 byte order mark. JSON forbids one, but most JSON readers skip
/// it; left in, it makes a whole JSON array (a poll file) one bad record, or the first line of
/// JSON lines. The file reader, the GH Archive decoder and the poller call this on the start
/// of what they read.
///
/// ```
/// use github_stats_core::parse::strip_bom;
/// assert_eq!(strip_bom(b"\xef\xbb\xbf[{}]"), b"[{}]");
/// assert_eq!(strip_bom(b"[{}]"), b"[{}]");
/// ```
pub fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(UTF8_BOM).unwrap_or(data)
}

/// Whether `record` contains `"WatchEvent"`, `"PullRequestEvent"` or `"IssuesEvent"`.
fn mentions_kept_type(record: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(b"Event\""));
    for pos in FINDER.find_iter(record) {
        let before = &record[..pos];
        if before.ends_with(b"\"Watch")
            || before.ends_with(b"\"PullRequest")
            || before.ends_with(b"\"Issues")
        {
            return true;
        }
    }
    false
}

fn parse_candidate(record: &[u8]) -> RecordOutcome {
    let raw: RawEvent<'_> = match serde_json::from_slice(record) {
        Ok(raw) => raw,
        Err(_) => return RecordOutcome::Malformed,
    };
    let Some(event_type) = raw.kind.as_deref().and_then(EventType::from_name) else {
        return RecordOutcome::OtherType;
    };
    let (Some(id), Some(repo), Some(created_at)) = (raw.id, raw.repo, raw.created_at) else {
        return RecordOutcome::Unsupported;
    };
    let (Some(id), Some(repo_id), Some(repo_name), Some(created_at)) =
        (id.0, repo.id, repo.name, parse_github_time(&created_at))
    else {
        return RecordOutcome::Unsupported;
    };
    RecordOutcome::Kept(Event {
        id,
        event_type,
        repo_id,
        repo_name: repo_name.into_owned(),
        created_at,
        action: raw.payload.action.map(Cow::into_owned).unwrap_or_default(),
    })
}

/// Parses GitHub's `created_at`: `YYYY-MM-DDTHH:MM:SSZ` on a fast path, any RFC 3339 otherwise.
///
/// A leap second (`23:59:60Z`, the only second 60 UTC has) reads as the next second, midnight,
/// as POSIX time counts it: events are kept to the second, and a time that is not in the
/// stores' second count would otherwise lose the event. A second 60 at any other minute is not
/// a time.
pub(crate) fn parse_github_time(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
    {
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let mut v = 0u32;
            for &c in &b[range] {
                if !c.is_ascii_digit() {
                    return None;
                }
                v = v * 10 + u32::from(c - b'0');
            }
            Some(v)
        };
        let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if (hour, minute, second) == (23, 59, 60) {
            return Some(date.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc());
        }
        let time = date.and_hms_opt(hour, minute, second)?;
        return Some(time.and_utc());
    }
    let time = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    // chrono holds a leap second as a nanosecond count past 10^9 within second 59.
    if time.nanosecond() >= 1_000_000_000 {
        return time
            .with_nanosecond(0)
            .and_then(|t| t.checked_add_signed(chrono::TimeDelta::seconds(1)));
    }
    Some(time)
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(default)]
    id: Option<RawId>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    repo: Option<RawRepo<'a>>,
    #[serde(borrow, default)]
    created_at: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    payload: RawPayload<'a>,
}

#[derive(Deserialize)]
struct RawRepo<'a> {
    #[serde(default, deserialize_with = "lenient_u64")]
    id: Option<u64>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// An event id: a numeric string in every format we know, a number in some tools' output.
struct RawId(Option<u64>);

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        lenient_u64(d).map(RawId)
    }
}

/// A `u64` written as a number or a numeric string; anything else reads as `None`.
fn lenient_u64<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an unsigned integer or a numeric string")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(u64::try_from(v).ok())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.parse().ok())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// The payload: only `action` matters, and a payload of any shape (or none) is tolerated.
#[derive(Default)]
struct RawPayload<'a> {
    action: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawPayload<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawPayload<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an event payload")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut action = None;
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "action" && action.is_none() {
                        action = map.next_value::<MaybeStr<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(RawPayload { action })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawPayload::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(RawPayload::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(RawPayload::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(RawPayload::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(RawPayload::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(RawPayload::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RawPayload::default())
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A string, or `None` for a value of any other JSON type.
struct MaybeStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_path_handles_the_modern_layout_and_defers_the_rest() {
        let line = br#"{"id":"17244207336","type":"WatchEvent","actor":{"id":1,"login":"x"},"repo":{"id":318651349,"name":"a/b","url":"https://api.github.com/repos/a/b"},"payload":{"action":"started"},"public":true,"created_at":"2021-07-21T06:00:00Z","org":{"id":3}}"#;
        let Some(RecordOutcome::Kept(e)) = fast_path(line) else {
            panic!("fast path refused the modern layout")
        };
        assert_eq!(
            Some(e),
            match parse_candidate(line) {
                RecordOutcome::Kept(e) => Some(e),
                _ => None,
            }
        );
        let push = br#"{"id":"1","type":"PushEvent","actor":{}}"#;
        assert_eq!(fast_path(push), Some(RecordOutcome::OtherType));
        // An escape in the repository name: the serde path decides.
        let escaped = br#"{"id":"5","type":"IssuesEvent","actor":{},"repo":{"id":1,"name":"a/b\u0041","url":"u"},"payload":{"action":"opened"},"public":true,"created_at":"2021-07-21T06:00:00Z"}"#;
        assert_eq!(fast_path(escaped), None);
        let RecordOutcome::Kept(e) = parse_record(escaped) else {
            panic!("not kept")
        };
        assert_eq!(e.repo_name, "a/bA");
        // Another key order: the serde path decides.
        let reordered = br#"{"type":"WatchEvent","id":"5","repo":{"id":1,"name":"a/b"},"payload":{"action":"started"},"created_at":"2021-07-21T06:00:00Z"}"#;
        assert_eq!(fast_path(reordered), None);
        assert!(matches!(parse_record(reordered), RecordOutcome::Kept(_)));
    }

    #[test]
    fn fast_time_path_agrees_with_rfc3339() {
        for t in [
            "2015-01-01T12:00:01Z",
            "2026-01-25T08:49:55Z",
            "2000-02-29T23:59:59Z",
        ] {
            let fast = parse_github_time(t).unwrap();
            let slow = DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
            assert_eq!(fast, slow);
        }
        assert_eq!(
            parse_github_time("2014-01-23T04:03:29-08:00").unwrap(),
            parse_github_time("2014-01-23T12:03:29Z").unwrap()
        );
        assert!(parse_github_time("2015-13-01T12:00:01Z").is_none());
        assert!(parse_github_time("yesterday").is_none());
    }

    #[test]
    fn a_leap_second_reads_as_the_next_second() {
        let midnight = parse_github_time("2017-01-01T00:00:00Z").unwrap();
        assert_eq!(parse_github_time("2016-12-31T23:59:60Z"), Some(midnight));
        assert_eq!(
            parse_github_time("2016-12-31T23:59:60.250Z"),
            Some(midnight)
        );
        assert_eq!(
            parse_github_time("2016-12-31T18:59:60-05:00"),
            Some(midnight)
        );
        // Second 60 of another minute is not a time: the event is counted as unsupported.
        assert!(parse_github_time("2016-12-31T12:30:60Z").is_none());
        // Through both parse paths, kept and counted.
        for line in [
            r#"{"id":"9","type":"WatchEvent","actor":{"id":1,"login":"x"},"repo":{"id":2,"name":"a/b","url":"u"},"payload":{"action":"started"},"public":true,"created_at":"2016-12-31T23:59:60Z"}"#,
            r#"{"type":"WatchEvent","id":"9","repo":{"id":2,"name":"a/b"},"payload":{"action":"started"},"created_at":"2016-12-31T23:59:60Z"}"#,
        ] {
            let mut stats = ParseStats::default();
            let mut events = Vec::new();
            parse_json_lines(line.as_bytes(), &mut stats, &mut events);
            assert_eq!(stats.kept_total(), 1, "{line}: {stats:?}");
            assert_eq!(events[0].created_at, midnight);
        }
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let line = r#"{"id":"9","type":"WatchEvent","repo":{"id":2,"name":"a/b"},"payload":{"action":"started"},"created_at":"2020-01-01T00:00:00Z"}"#;
        for document in [
            format!("\u{feff}[{line},{line}]"),
            format!("\u{feff}{line}\n{line}\n"),
        ] {
            let mut stats = ParseStats::default();
            let mut events = Vec::new();
            parse_document(document.as_bytes(), &mut stats, &mut events);
            assert_eq!(
                (stats.records, stats.kept_total(), stats.malformed),
                (2, 2, 0),
                "{document}"
            );
        }
        assert_eq!(strip_bom("\u{feff}".as_bytes()), b"");
        assert_eq!(strip_bom(b"\xef\xbb"), b"\xef\xbb");
    }

    #[test]
    fn kept_event_without_action_is_kept_with_empty_action() {
        let line = br#"{"id":"5","type":"IssuesEvent","repo":{"id":1,"name":"a/b"},"payload":{},"created_at":"2020-01-01T00:00:00Z"}"#;
        let RecordOutcome::Kept(e) = parse_record(line) else {
            panic!("not kept")
        };
        assert_eq!(e.action, "");
        let line = br#"{"id":"5","type":"IssuesEvent","repo":{"id":1,"name":"a/b"},"payload":"odd","created_at":"2020-01-01T00:00:00Z"}"#;
        assert!(matches!(parse_record(line), RecordOutcome::Kept(_)));
        let line = br#"{"id":"5","type":"IssuesEvent","repo":{"id":1,"name":"a/b"},"created_at":"2020-01-01T00:00:00Z"}"#;
        assert!(matches!(parse_record(line), RecordOutcome::Kept(_)));
    }

    #[test]
    fn a_mention_of_a_kept_type_in_text_is_not_a_kept_event() {
        let line = br#"{"id":"7","type":"PushEvent","payload":{"message":"see \"WatchEvent\" and x","tag":"IssuesEvent"}}"#;
        assert_eq!(parse_record(line), RecordOutcome::OtherType);
    }

    #[test]
    fn truncated_lines_are_malformed_whatever_their_type() {
        assert_eq!(
            parse_record(br#"{"id":"7","type":"PushEvent","pay"#),
            RecordOutcome::Malformed
        );
        assert_eq!(
            parse_record(br#"{"id":"7","type":"WatchEvent","x":}"#),
            RecordOutcome::Malformed
        );
        assert_eq!(parse_record(b"not json"), RecordOutcome::Malformed);
    }

    #[test]
    fn event_without_id_is_unsupported() {
        let line = br#"{"created_at":"2014-01-23T04:03:29-08:00","payload":{"action":"started"},"type":"WatchEvent","repository":{"id":1,"name":"x"}}"#;
        assert_eq!(parse_record(line), RecordOutcome::Unsupported);
    }

    /// Kept events with a field no store may hold are invalid, on the fast path and the serde
    /// path alike; the same event with sane fields is kept.
    #[test]
    fn kept_events_with_fields_no_store_may_hold_are_invalid() {
        let fast = r#"{"id":"17244207336","type":"WatchEvent","actor":{"id":1,"login":"x"},"repo":{"id":318651349,"name":"a/b","url":"https://api.github.com/repos/a/b"},"payload":{"action":"started"},"public":true,"created_at":"2021-07-21T06:00:00Z"}"#;
        let slow = r#"{"type":"WatchEvent","id":"17244207336","repo":{"id":318651349,"name":"a/b"},"payload":{"action":"started"},"created_at":"2021-07-21T06:00:00Z"}"#;
        let long_name = format!("\"a/{}\"", "b".repeat(70_000));
        for line in [fast, slow] {
            assert!(matches!(
                parse_record(line.as_bytes()),
                RecordOutcome::Kept(_)
            ));
            for (from, to) in [
                ("\"a/b\"", long_name.as_str()),
                ("\"a/b\"", "\"a/b c\""),
                ("\"a/b\"", "\"a/b\\u0000\""),
                ("\"a/b\"", "\"../b\""),
                ("\"17244207336\"", "\"0\""),
                ("318651349", "0"),
                ("\"started\"", "\"started; DROP TABLE\""),
                ("2021-07-21T06:00:00Z", "2106-01-01T00:00:00Z"),
                ("2021-07-21T06:00:00Z", "1969-12-31T23:59:59Z"),
            ] {
                let bad = line.replacen(from, to, 1);
                assert_ne!(bad, line);
                assert!(
                    matches!(parse_record(bad.as_bytes()), RecordOutcome::Invalid(_)),
                    "{to}: {:?}",
                    parse_record(bad.as_bytes())
                );
            }
        }
        let mut stats = ParseStats::default();
        let mut out = Vec::new();
        parse_json_lines(
            fast.replacen("\"a/b\"", "\"a/b c\"", 1).as_bytes(),
            &mut stats,
            &mut out,
        );
        assert_eq!((stats.records, stats.invalid, out.len()), (1, 1, 0));
    }

    #[test]
    fn json_lines_count_every_outcome() {
        let data = b"{\"id\":\"1\",\"type\":\"WatchEvent\",\"repo\":{\"id\":1,\"name\":\"a/b\"},\"payload\":{\"action\":\"started\"},\"created_at\":\"2020-01-01T00:00:00Z\"}\n\n{\"id\":\"2\",\"type\":\"PushEvent\"}\r\ngarbage\n{\"type\":\"WatchEvent\"}";
        let mut stats = ParseStats::default();
        let mut out = Vec::new();
        parse_json_lines(data, &mut stats, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(stats.records, 4);
        assert_eq!(stats.kept, [1, 0, 0]);
        assert_eq!(stats.other_types, 1);
        assert_eq!(stats.malformed, 1);
        assert_eq!(stats.unsupported, 1);
    }
}
