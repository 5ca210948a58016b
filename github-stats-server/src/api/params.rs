//! The query parameters: what each must be, in the words of a 400, and the checked arithmetic
//! that turns them into a window.
//!
//! poem-openapi parses and range-checks the typed parameters; its own error texts are framework
//! internals (`Type "integer(uint32)" expects an input value`), so
//! [`middleware`](super::middleware) answers a parse error with [`invalid_parameter`] instead,
//! and the handlers use the same sentences for what they check themselves. Every query
//! parameter of the spec must have an [`expectation`] (a test walks the spec).

use chrono::{DateTime, Datelike, Utc};
use github_stats_core::{MAX_WINDOW_MINUTES, TimeWindow, WindowError};

use super::ApiError;
use super::debug::MAX_TOP_LIMIT;

/// The earliest `until` accepted: RFC 3339 writes years with four digits.
pub const EARLIEST_UNTIL_YEAR: i32 = 0;
/// The latest year of an `until`.
pub const LATEST_UNTIL_YEAR: i32 = 9999;

/// At most this many characters of a rejected value are quoted back.
pub const QUOTED_VALUE_CHARS: usize = 40;

/// What the query parameter `name` must be, with an example, as a sentence ending that follows
/// "`name` must be …"; `None` for a name that is not a query parameter of the API.
pub fn expectation(name: &str) -> Option<String> {
    Some(match name {
        "offset" => {
            format!("whole minutes from 1 to {MAX_WINDOW_MINUTES} (a year), such as offset=60")
        }
        "bucket_minutes" => {
            format!("whole minutes from 1 to {MAX_WINDOW_MINUTES}, such as bucket_minutes=15")
        }
        "until" => format!(
            "an RFC 3339 time with a four-digit year ({EARLIEST_UNTIL_YEAR:04} to \
             {LATEST_UNTIL_YEAR}), such as until=2026-01-25T12:00:00Z (write a + as %2B)"
        ),
        "since" => format!(
            "an RFC 3339 time with a four-digit year ({EARLIEST_UNTIL_YEAR:04} to \
             {LATEST_UNTIL_YEAR}) before until, such as since=2026-01-18T12:00:00Z (write a + \
             as %2B)"
        ),
        "limit" => format!("a whole number from 1 to {MAX_TOP_LIMIT}, such as limit=10"),
        _ => return None,
    })
}

/// The message of a 400 for the query parameter `name`: "`name` is required: …" when `given` is
/// `None` (absent from the query), else "`name` must be …; got "…"".
pub fn invalid_parameter(name: &str, given: Option<&str>) -> String {
    let expected = expectation(name).unwrap_or_else(|| "a valid value".to_owned());
    match given {
        None => format!("{name} is required: {expected}"),
        Some(value) => format!("{name} must be {expected}; got {}", quote(value)),
    }
}

/// `value` quoted for a message: escaped, and cut after [`QUOTED_VALUE_CHARS`] characters.
pub fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(QUOTED_VALUE_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// The first value of the query parameter `name` in the raw query string `query`, decoded
/// (`+` is a space, `%XX` a byte; invalid UTF-8 is replaced). `None` when absent.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key) == name).then(|| decode(value))
        })
        .next()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', high, low]) if high.is_ascii_hexdigit() && low.is_ascii_hexdigit() => {
                std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            }
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `time`, the value of the time parameter `name`, when its year is one RFC 3339 can write
/// (0000 to 9999); else a 400 naming `name`.
pub fn checked_time(name: &str, time: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if (EARLIEST_UNTIL_YEAR..=LATEST_UNTIL_YEAR).contains(&time.year()) {
        Ok(time)
    } else {
        Err(ApiError::bad_request(invalid_parameter(
            name,
            Some(&time.to_rfc3339()),
        )))
    }
}

/// The window `[since, until)` of two optional time parameters: `since` defaults to the Unix
/// epoch, `until` to now; a 400 naming the parameter when out of range or not in order.
pub fn span(
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) -> Result<TimeWindow, ApiError> {
    let until = match until {
        Some(until) => checked_time("until", until)?,
        None => Utc::now(),
    };
    let since = match since {
        Some(since) => checked_time("since", since)?,
        None => DateTime::UNIX_EPOCH,
    };
    TimeWindow::new(since, until).map_err(|_| {
        ApiError::bad_request(format!(
            "since must be before until; got since={} and until={}",
            since.to_rfc3339(),
            until.to_rfc3339()
        ))
    })
}

/// The window `[until - offset_minutes, until)` (`until` defaults to now), with checked
/// arithmetic: an `until` outside years 0000 to 9999 is a 400 naming `until`, never a panic.
pub fn window(until: Option<DateTime<Utc>>, offset_minutes: u32) -> Result<TimeWindow, ApiError> {
    let until = match until {
        None => Utc::now(),
        Some(until) => checked_time("until", until)?,
    };
    TimeWindow::last_minutes(until, offset_minutes).map_err(|e| {
        ApiError::bad_request(match e {
            WindowError::OutOfRange => format!(
                "until minus offset is before the earliest time this server can represent: \
                 until must be {}",
                expectation("until").unwrap_or_default()
            ),
            _ => invalid_parameter("offset", Some(&offset_minutes.to_string())),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let query = "offset=abc&until=2026-01-25T12%3A00%3A00%2B01%3A00&x&limit=a+b&bad=%zz%4";
        assert_eq!(query_value(query, "offset").as_deref(), Some("abc"));
        assert_eq!(
            query_value(query, "until").as_deref(),
            Some("2026-01-25T12:00:00+01:00")
        );
        assert_eq!(query_value(query, "x").as_deref(), Some(""));
        assert_eq!(query_value(query, "limit").as_deref(), Some("a b"));
        assert_eq!(query_value(query, "bad").as_deref(), Some("%zz%4"));
        assert_eq!(query_value(query, "missing"), None);
        assert_eq!(query_value("", "offset"), None);
        assert_eq!(
            query_value("of%66set=%C3%A9", "offset").as_deref(),
            Some("é")
        );
        assert_eq!(
            query_value("offset=%FF", "offset").as_deref(),
            Some("\u{fffd}")
        );
    }

    #[test]
    fn long_values_are_cut_and_escaped() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        let long = "x".repeat(100);
        assert_eq!(quote(&long), format!("{:?}…", "x".repeat(40)));
    }

    #[test]
    fn messages_say_what_to_send() {
        for name in ["offset", "bucket_minutes", "until", "since", "limit"] {
            let missing = invalid_parameter(name, None);
            assert!(
                missing.starts_with(&format!("{name} is required: ")),
                "{missing}"
            );
            let bad = invalid_parameter(name, Some("zz"));
            assert!(bad.starts_with(&format!("{name} must be ")), "{bad}");
            assert!(bad.contains(&format!("such as {name}=")), "{bad}");
            assert!(bad.ends_with("got \"zz\""), "{bad}");
        }
    }

    #[test]
    fn windows_at_the_ends_of_time_are_400s() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let earliest = window(Some(at("0000-01-01T00:00:00Z")), MAX_WINDOW_MINUTES).unwrap();
        assert_eq!(earliest.until, at("0000-01-01T00:00:00Z"));
        window(Some(at("9999-12-31T23:59:59Z")), MAX_WINDOW_MINUTES).unwrap();
        let year_10000 = chrono::TimeZone::with_ymd_and_hms(&Utc, 10_000, 1, 1, 0, 0, 0).unwrap();
        let before_year_0 = at("0000-01-01T00:00:00Z") - chrono::Duration::seconds(1);
        for too_far in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            year_10000,
            before_year_0,
        ] {
            for offset in [1, MAX_WINDOW_MINUTES, u32::MAX] {
                assert!(window(Some(too_far), offset).is_err(), "{too_far} {offset}");
            }
        }
    }
}
