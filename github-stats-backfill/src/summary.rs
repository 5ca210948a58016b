//! What an import did: the numbers behind the final report and the exit code.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use github_stats_cli::escape_control;
use github_stats_core::source::gharchive::HourRange;
use github_stats_core::{EventType, ParseStats};

/// A file that could not be read (or not to its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFailure {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// A file with records skipped as bad or invalid (the rest of it was imported).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadRecords {
    /// The file.
    pub path: PathBuf,
    /// Bad lines: not JSON, not an object, longer than the record cap, or cut short.
    pub malformed: u64,
    /// Invalid events: of a kept type, with a field no store may hold.
    pub invalid: u64,
}

/// What became of the hours of a GH Archive import (`--gharchive`), from the store's records
/// (so hours done by earlier runs count too).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ArchiveSummary {
    /// The range.
    pub range: HourRange,
    /// Hours in the range.
    pub hours: u64,
    /// Hours the store records as imported (by this run or an earlier one).
    pub imported: u64,
    /// Hours this run imported.
    pub imported_now: u64,
    /// Hours this run skipped without a download: recorded already.
    pub skipped: u64,
    /// Hours the archive has no file for (holes; a re-run does not ask again).
    pub missing: Vec<DateTime<Utc>>,
    /// Hours whose file could not be read whole (what was read is stored; a re-run tries
    /// again).
    pub damaged: Vec<DateTime<Utc>>,
    /// Hours left for a later run: `(hour, why, whether its downloads failed)`.
    pub pending: Vec<(DateTime<Utc>, String, bool)>,
    /// Hours not reached (an interrupted run).
    pub unfinished: u64,
}

impl ArchiveSummary {
    /// Whether some hour could not be read: damaged, or failing.
    pub fn has_failures(&self) -> bool {
        !self.damaged.is_empty() || self.pending.iter().any(|(_, _, failed)| *failed)
    }
}

fn show_hour(hour: &DateTime<Utc>) -> String {
    hour.format("%Y-%m-%dT%H").to_string()
}

/// What an import did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Summary {
    /// Whether nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// The store written to (`memory`, `clickhouse`).
    pub backend: &'static str,
    /// Files found (named, or in the directories walked), readable or not.
    pub files: usize,
    /// Files read to their end.
    pub files_read: usize,
    /// Files that could not be read, or not to their end: the import goes on without them.
    pub failed: Vec<FileFailure>,
    /// After an interruption, the files not finished, and whether each was started.
    pub unfinished: Vec<(PathBuf, bool)>,
    /// On-disk bytes of the files read to their end.
    pub file_bytes: u64,
    /// Uncompressed bytes parsed.
    pub bytes: u64,
    /// What the records were: lines (or array elements), kept by type, other types, bad lines,
    /// invalid and unsupported (pre-2015) events.
    pub stats: ParseStats,
    /// Every file with bad lines or invalid events, with their counts, in input order.
    pub bad_records: Vec<BadRecords>,
    /// Kept events stored for the first time.
    pub inserted: u64,
    /// Kept events the store already held (or repeated in the input), skipped.
    pub duplicates: u64,
    /// Kept events the store refused (a time it cannot represent), skipped.
    pub rejected: u64,
    /// Inserts made.
    pub batches: u64,
    /// Wall time of the import.
    pub elapsed: Duration,
    /// Time spent inside the store's insert calls (the rest overlaps with parsing).
    pub insert_time: Duration,
    /// Whether Ctrl-C stopped the import before the end.
    pub interrupted: bool,
    /// Whether the ClickHouse count tables were corrected after the import (`--recount`).
    pub recounted: bool,
    /// A GH Archive import: what became of its hours.
    pub archive: Option<ArchiveSummary>,
}

impl Summary {
    pub(crate) fn new(dry_run: bool) -> Summary {
        Summary {
            dry_run,
            ..Summary::default()
        }
    }

    /// The process exit code: 0 when every file (hour) was read, 1 when some were not (a
    /// damaged hour, or one whose downloads kept failing), 130 when interrupted. Missing hours
    /// (holes in the archive) and hours not published yet are listed, not failures. (Usage
    /// errors exit with 2 before an import starts.)
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if !self.failed.is_empty() || self.archive.as_ref().is_some_and(|a| a.has_failures())
        {
            1
        } else {
            0
        }
    }

    /// Kept events per second of wall time.
    pub fn kept_per_second(&self) -> f64 {
        per_second(self.stats.kept_total() as f64, self.elapsed)
    }

    /// Records (lines) per second of wall time.
    pub fn records_per_second(&self) -> f64 {
        per_second(self.stats.records as f64, self.elapsed)
    }

    /// Uncompressed megabytes (10^6 bytes) parsed per second of wall time.
    pub fn megabytes_per_second(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.elapsed)
    }
}

fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { amount / secs } else { 0.0 }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_headline(f)?;
        match &self.archive {
            Some(archive) => write_archive_input(f, archive, self.bytes)?,
            None => self.write_file_input(f)?,
        }
        self.write_records(f)?;
        self.write_storing(f)?;
        self.write_throughput(f)?;
        self.write_bad_records(f)?;
        self.write_failed_files(f)?;
        if let Some(archive) = &self.archive {
            write_archive_hour_lists(f, archive)?;
        }
        if self.recounted {
            write!(f, "\ncount tables recounted from the merged events")?;
        }
        if self.interrupted {
            self.write_interruption(f)?;
        }
        Ok(())
    }
}

// The report's sections, in their order. The table's lines end with a newline, up to the
// throughput line; the lists after it start with one, so the report ends without one.
impl Summary {
    /// How the import ended, how long it took and where it wrote.
    fn write_headline(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.interrupted {
            "interrupted"
        } else {
            "finished"
        };
        let mode = if self.dry_run {
            "dry run, nothing written".to_string()
        } else {
            format!("{} store", self.backend)
        };
        writeln!(
            f,
            "backfill {state} in {:.2} s ({mode})",
            self.elapsed.as_secs_f64()
        )
    }

    /// The files read and the bytes they held.
    fn write_file_input(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  files       {} of {} read, {} failed{}",
            self.files_read,
            self.files,
            self.failed.len(),
            if self.interrupted {
                format!(", {} not finished", self.unfinished.len())
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "  input       {:.1} MB parsed ({:.1} MB on disk)",
            self.bytes as f64 / 1e6,
            self.file_bytes as f64 / 1e6
        )
    }

    /// What the records were: every line, then the kept events by type.
    fn write_records(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "  lines       {} ({} of other types, {} bad lines, {} invalid events, {} unsupported pre-2015 events)",
            thousands(s.records),
            thousands(s.other_types),
            thousands(s.malformed),
            thousands(s.invalid),
            thousands(s.unsupported)
        )?;
        let by_type: Vec<String> = EventType::ALL
            .iter()
            .map(|t| format!("{t} {}", thousands(s.kept[t.index()])))
            .collect();
        writeln!(
            f,
            "  kept        {}: {}",
            thousands(s.kept_total()),
            by_type.join(", ")
        )
    }

    /// What the store did with the kept events and, for files, what the inserts cost.
    fn write_storing(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  stored      {} new, {} duplicates skipped{}",
            thousands(self.inserted),
            thousands(self.duplicates),
            if self.rejected > 0 {
                format!(", {} refused by the store", thousands(self.rejected))
            } else {
                String::new()
            }
        )?;
        if self.archive.is_none() {
            writeln!(
                f,
                "  inserts     {} batches, {:.2} s in the store ({} kept events/s while inserting)",
                self.batches,
                self.insert_time.as_secs_f64(),
                thousands(per_second(self.stats.kept_total() as f64, self.insert_time) as u64)
            )?;
        }
        Ok(())
    }

    fn write_throughput(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  throughput  {:.1} MB/s, {} lines/s, {} kept events/s",
            self.megabytes_per_second(),
            thousands(self.records_per_second() as u64),
            thousands(self.kept_per_second() as u64)
        )
    }

    /// The files with records skipped, with their counts.
    fn write_bad_records(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.bad_records.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "\nfiles with skipped records (the rest of each was imported):"
        )?;
        for file in &self.bad_records {
            write!(
                f,
                "\n  {}: {} bad lines, {} invalid events",
                escape_control(&file.path.to_string_lossy()),
                thousands(file.malformed),
                thousands(file.invalid)
            )?;
        }
        Ok(())
    }

    /// The files not read to their end, with why.
    fn write_failed_files(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failed.is_empty() {
            return Ok(());
        }
        write!(
            f,
            "\nfiles not read to their end (the whole records before a break were imported; exit code 1):"
        )?;
        for failure in &self.failed {
            // File names and errors come from outside: one line each, no escape sequences.
            write!(
                f,
                "\n  {}: {}",
                escape_control(&failure.path.to_string_lossy()),
                escape_control(&failure.error)
            )?;
        }
        Ok(())
    }

    /// What is left, and how to finish it.
    fn write_interruption(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.archive {
            Some(a) => write!(
                f,
                "\ninterrupted: {} hours not reached; run the same command again to complete the import",
                a.unfinished
            ),
            None => write!(
                f,
                "\ninterrupted: {} files not finished; run the same command again to complete the import",
                self.unfinished.len()
            ),
        }
    }
}

/// What became of the range's hours, and the bytes parsed (a download has no size on disk).
fn write_archive_input(f: &mut fmt::Formatter<'_>, a: &ArchiveSummary, bytes: u64) -> fmt::Result {
    writeln!(
        f,
        "  hours       {} in {}: {} imported ({} now, {} skipped as recorded), {} missing, {} damaged, {} pending{}",
        a.hours,
        a.range,
        a.imported,
        a.imported_now,
        a.skipped,
        a.missing.len(),
        a.damaged.len(),
        a.pending.len(),
        if a.unfinished > 0 {
            format!(", {} not reached", a.unfinished)
        } else {
            String::new()
        }
    )?;
    writeln!(f, "  input       {:.1} MB parsed", bytes as f64 / 1e6)
}

/// The missing, damaged and pending hours, each list under its heading.
fn write_archive_hour_lists(f: &mut fmt::Formatter<'_>, a: &ArchiveSummary) -> fmt::Result {
    write_hour_list(
        f,
        "missing hours (the archive has no file for them; not asked again):",
        &a.missing,
    )?;
    write_hour_list(
        f,
        "damaged hours (could not be read whole; what was read is stored; a re-run tries again; exit code 1):",
        &a.damaged,
    )?;
    if !a.pending.is_empty() {
        write!(f, "\npending hours (a later run takes them):")?;
        for (hour, reason, _) in &a.pending {
            write!(f, "\n  {}: {}", show_hour(hour), escape_control(reason))?;
        }
    }
    Ok(())
}

/// `heading` and one line per hour; nothing when there is no hour.
fn write_hour_list(
    f: &mut fmt::Formatter<'_>,
    heading: &str,
    hours: &[DateTime<Utc>],
) -> fmt::Result {
    if hours.is_empty() {
        return Ok(());
    }
    write!(f, "\n{heading}")?;
    for hour in hours {
        write!(f, "\n  {}", show_hour(hour))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn exit_codes() {
        let mut s = Summary::new(false);
        assert_eq!(s.exit_code(), 0);
        s.failed.push(FileFailure {
            path: "x".into(),
            error: "gone".into(),
        });
        assert_eq!(s.exit_code(), 1);
        s.interrupted = true;
        assert_eq!(s.exit_code(), 130);
    }
}
