//! GH Archive's hours: their file names, and the hours and ranges users name (`GHARCHIVE_FROM`,
//! `--gharchive FROM..UNTIL`, `GHARCHIVE_MISSING_AFTER`).

use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};

use crate::coverage::hour_floor;

/// Why an hour, a range or a duration was refused. The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HourSpecError {
    /// Not an hour in any accepted form.
    #[error(
        "{0:?} is not an hour: use an RFC 3339 hour (2026-11-01T00:00:00Z), YYYY-MM-DDTHH \
         (2026-11-01T00, UTC), GH Archive's YYYY-MM-DD-H, or a duration back from now (24h, 7d)"
    )]
    NotAnHour(String),
    /// A time that is not on a whole hour.
    #[error("{0:?} is not a whole hour (minutes and seconds must be zero)")]
    NotWholeHour(String),
    /// Not a duration.
    #[error("{0:?} is not a duration: use a number and a unit, s, m, h or d (90m, 24h, 7d)")]
    NotADuration(String),
    /// Not `FROM..UNTIL`.
    #[error("{0:?} is not a range of hours: use FROM..UNTIL (UNTIL exclusive) or FROM..")]
    NotARange(String),
    /// `UNTIL` is not after `FROM`.
    #[error("empty range of hours: {until} is not after {from}")]
    EmptyRange {
        /// The first hour.
        from: DateTime<Utc>,
        /// The end (exclusive).
        until: DateTime<Utc>,
    },
}

/// GH Archive's name for the file of the hour holding `hour`: `YYYY-MM-DD-H.json.gz`, the hour
/// **not** zero-padded (`2015-01-01-8.json.gz`).
///
/// ```
/// use github_stats_core::source::gharchive::archive_file_name;
/// let hour = "2015-01-01T08:59:59Z".parse().unwrap();
/// assert_eq!(archive_file_name(hour), "2015-01-01-8.json.gz");
/// ```
pub fn archive_file_name(hour: DateTime<Utc>) -> String {
    let hour = hour_floor(hour);
    format!("{}-{}.json.gz", hour.format("%Y-%m-%d"), hour.hour())
}

/// A duration: a whole number and a unit, `s`, `m`, `h` or `d` (`90m`, `24h`, `7d`).
///
/// ```
/// use std::time::Duration;
/// use github_stats_core::source::gharchive::parse_duration;
/// assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
/// assert!(parse_duration("24").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, HourSpecError> {
    let bad = || HourSpecError::NotADuration(text.to_owned());
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 9 {
        return Err(bad());
    }
    let n: u64 = trimmed[..digits].parse().map_err(|_| bad())?;
    let unit = match trimmed[digits..].trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n * unit))
}

/// An hour: an RFC 3339 time on a whole hour (`2026-11-01T00:00:00Z`, any offset),
/// `YYYY-MM-DDTHH` (UTC), GH Archive's `YYYY-MM-DD-H`, or a duration back from `now` (`24h`,
/// `7d`: the hour holding that moment).
///
/// ```
/// use github_stats_core::source::gharchive::parse_hour;
/// let now = "2026-11-30T10:20:00Z".parse().unwrap();
/// let want: chrono::DateTime<chrono::Utc> = "2026-11-29T10:00:00Z".parse().unwrap();
/// assert_eq!(parse_hour("24h", now), Ok(want));
/// assert_eq!(parse_hour("2026-11-29T10", now), Ok(want));
/// assert_eq!(parse_hour("2026-11-29-10", now), Ok(want));
/// assert_eq!(parse_hour("2026-11-29T11:00:00+01:00", now), Ok(want));
/// assert!(parse_hour("2026-11-29T10:30:00Z", now).is_err());
/// ```
pub fn parse_hour(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, HourSpecError> {
    let trimmed = text.trim();
    let not_an_hour = || HourSpecError::NotAnHour(text.to_owned());
    if let Ok(back) = parse_duration(trimmed) {
        let back = chrono::Duration::from_std(back).map_err(|_| not_an_hour())?;
        return now
            .checked_sub_signed(back)
            .map(hour_floor)
            .ok_or_else(not_an_hour);
    }
    let time = if let Ok(t) = DateTime::parse_from_rfc3339(trimmed) {
        t.with_timezone(&Utc)
    } else if let Ok(t) =
        NaiveDateTime::parse_from_str(&format!("{trimmed}:00:00"), "%Y-%m-%dT%H:%M:%S")
    {
        Utc.from_utc_datetime(&t)
    } else {
        // GH Archive's `YYYY-MM-DD-H`.
        let (date, hour) = trimmed
            .get(..10)
            .zip(trimmed.get(10..))
            .ok_or_else(not_an_hour)?;
        let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| not_an_hour())?;
        let hour = hour
            .strip_prefix('-')
            .filter(|h| (1..=2).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|h| h.parse::<u32>().ok())
            .ok_or_else(not_an_hour)?;
        Utc.from_utc_datetime(&date.and_hms_opt(hour, 0, 0).ok_or_else(not_an_hour)?)
    };
    if hour_floor(time) != time {
        return Err(HourSpecError::NotWholeHour(text.to_owned()));
    }
    Ok(time)
}

/// A range of hours `[from, until)`; `until` `None` is open (follow the archive as it grows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourRange {
    /// The first hour.
    pub from: DateTime<Utc>,
    /// The end, exclusive; `None` for an open range.
    pub until: Option<DateTime<Utc>>,
}

impl HourRange {
    /// Parses `FROM..UNTIL` (`UNTIL` exclusive) or `FROM..`, each side as [`parse_hour`].
    ///
    /// ```
    /// use github_stats_core::source::gharchive::HourRange;
    /// let now = "2026-12-01T00:00:00Z".parse().unwrap();
    /// let range = HourRange::parse("2026-11-30T00..2026-11-30T06", now).unwrap();
    /// assert_eq!(range.hours(), Some(6));
    /// assert_eq!(HourRange::parse("48h..", now).unwrap().until, None);
    /// assert!(HourRange::parse("2026-11-30T06..2026-11-30T06", now).is_err());
    /// ```
    pub fn parse(text: &str, now: DateTime<Utc>) -> Result<HourRange, HourSpecError> {
        let (from, until) = text
            .split_once("..")
            .ok_or_else(|| HourSpecError::NotARange(text.to_owned()))?;
        let from = parse_hour(from, now)?;
        let until = match until.trim() {
            "" => None,
            until => Some(parse_hour(until, now)?),
        };
        if let Some(until) = until
            && until <= from
        {
            return Err(HourSpecError::EmptyRange { from, until });
        }
        Ok(HourRange { from, until })
    }

    /// The number of hours in a closed range.
    pub fn hours(&self) -> Option<i64> {
        self.until.map(|u| (u - self.from).num_hours())
    }
}

impl std::fmt::Display for HourRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H").to_string();
        match self.until {
            Some(until) => write!(f, "{}..{}", show(self.from), show(until)),
            None => write!(f, "{}..", show(self.from)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn file_names_do_not_pad_the_hour() {
        assert_eq!(
            archive_file_name(t("2026-11-30T00:00:00Z")),
            "2026-11-30-0.json.gz"
        );
        assert_eq!(
            archive_file_name(t("2026-01-05T23:10:00Z")),
            "2026-01-05-23.json.gz"
        );
    }

    #[test]
    fn bad_hours_durations_and_ranges_say_what_is_wrong() {
        let now = t("2026-11-30T10:20:00Z");
        for bad in [
            "",
            "yesterday",
            "2026-11-30",
            "2026-11-30T25",
            "2026-11-30-24",
            "24x",
        ] {
            assert!(
                matches!(parse_hour(bad, now), Err(HourSpecError::NotAnHour(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_hour("2026-11-30T10:00:01Z", now),
            Err(HourSpecError::NotWholeHour(_))
        ));
        assert_eq!(parse_hour("7d", now), Ok(t("2026-11-23T10:00:00Z")));
        assert_eq!(parse_hour("90m", now), Ok(t("2026-11-30T08:00:00Z")));
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1h").is_err());
        assert_eq!(parse_duration(" 15 m"), Ok(Duration::from_secs(900)));
        assert!(matches!(
            HourRange::parse("2026-11-30T00", now),
            Err(HourSpecError::NotARange(_))
        ));
        assert!(matches!(
            HourRange::parse("2026-11-30T06..2026-11-30T00", now),
            Err(HourSpecError::EmptyRange { .. })
        ));
        let range = HourRange::parse("2026-11-30T00:00:00Z..2026-11-30T06", now).unwrap();
        assert_eq!(range.to_string(), "2026-11-30T00..2026-11-30T06");
        let message = parse_hour("soon", now).unwrap_err().to_string();
        assert!(message.contains("YYYY-MM-DDTHH"), "{message}");
    }
}
