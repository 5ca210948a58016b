//! `SAVE_EVENTS_FORMAT=gharchive`: what the poller receives, written as GH Archive's hour files
//! (`YYYY-MM-DD-H.json.gz`, the hour not zero-padded, gzipped JSON lines), so the follower and
//! the backfill read the directory as they read GH Archive.
//!
//! The open hour is written to `<name>.partial` and renamed to its name once an event (or a
//! poll) of a later hour arrives: a finished file is never torn. Each poll's lines are flushed
//! (a gzip sync point), so a crash loses at most what the last poll wrote; at the next start the
//! partial file's whole lines are copied into a fresh one (its torn tail dropped) and the hour
//! goes on, or ends when it is over.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use tracing::{info, warn};

/// The suffix of the hour being written.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The longest line copied back from a partial file at start (GitHub's events are under 1 MB;
/// a longer line is damage and ends the copy there).
const MAX_RECOVERED_LINE: u64 = 16 << 20;

/// `YYYY-MM-DD-H.json.gz` of the hour holding `at`.
pub fn hour_file_name(at: DateTime<Utc>) -> String {
    format!(
        "{:04}-{:02}-{:02}-{}.json.gz",
        at.year(),
        at.month(),
        at.day(),
        at.hour()
    )
}

struct OpenHour {
    name: String,
    partial: PathBuf,
    encoder: GzEncoder<BufWriter<File>>,
}

/// Writes the hour files of one directory.
pub struct HourFiles {
    dir: PathBuf,
    open: Option<OpenHour>,
    /// Whether the partial files of an earlier run were dealt with.
    recovered: bool,
}

impl std::fmt::Debug for HourFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HourFiles")
            .field("dir", &self.dir)
            .field("open", &self.open.as_ref().map(|o| &o.name))
            .finish()
    }
}

impl HourFiles {
    /// The writer of `dir`, created if missing. The partial files of an earlier run are
    /// recovered by the first [`write`](HourFiles::write): copying an hour's worth takes a few
    /// seconds, which is the blocking pool's work, not the caller's.
    pub fn new(dir: &Path) -> std::io::Result<HourFiles> {
        std::fs::create_dir_all(dir)?;
        Ok(HourFiles {
            dir: dir.to_owned(),
            open: None,
            recovered: false,
        })
    }

    /// [`HourFiles::new`], recovering the partial files left by an earlier run now: an hour
    /// still going on (by `now`) is reopened, an hour over is finished.
    pub fn open(dir: &Path, now: DateTime<Utc>) -> std::io::Result<HourFiles> {
        let mut files = HourFiles::new(dir)?;
        files.recover(now)?;
        Ok(files)
    }

    fn recover(&mut self, now: DateTime<Utc>) -> std::io::Result<()> {
        self.recovered = true;
        let current = hour_file_name(now);
        let mut partials: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with(&format!(".json.gz{PARTIAL_SUFFIX}")))
            })
            .collect();
        partials.sort();
        for partial in partials {
            let name = partial
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(PARTIAL_SUFFIX))
                .unwrap_or_default()
                .to_owned();
            let lines = self.reopen(&name, &partial)?;
            info!(file = %name, lines, "recovered a partial hour file");
            if name != current {
                self.finish()?;
            }
        }
        Ok(())
    }

    /// Copies the whole lines of `partial` into a new partial file of `name`, left open.
    fn reopen(&mut self, name: &str, partial: &Path) -> std::io::Result<u64> {
        self.finish()?;
        let old = partial.with_extension(format!("recovering-{}", std::process::id()));
        std::fs::rename(partial, &old)?;
        let mut open = self.create(name)?;
        let mut lines = 0;
        let mut reader = BufReader::new(MultiGzDecoder::new(BufReader::new(File::open(&old)?)));
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_RECOVERED_LINE)
                .read_until(b'\n', &mut line)
            {
                Ok(0) => break,
                Ok(_) if line.ends_with(b"\n") => {
                    open.encoder.write_all(&line)?;
                    lines += 1;
                }
                // A torn last line (the crash), or a line over the cap: the copy ends here.
                Ok(_) => break,
                Err(e) => {
                    warn!(file = %name, error = %e, lines, "partial hour file torn, keeping its whole lines");
                    break;
                }
            }
        }
        open.encoder.flush()?;
        self.open = Some(open);
        std::fs::remove_file(&old)?;
        Ok(lines)
    }

    fn create(&self, name: &str) -> std::io::Result<OpenHour> {
        let partial = self.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
        let file = File::create(&partial)?;
        Ok(OpenHour {
            name: name.to_owned(),
            partial,
            encoder: GzEncoder::new(BufWriter::new(file), Compression::default()),
        })
    }

    /// Appends `events` (JSON texts, one line each) received at `at` to their hour's file,
    /// finishing the previous hour's first when `at` is in a later one. Called for every poll,
    /// events or not, so an hour is finished soon after it ends.
    pub fn write(&mut self, at: DateTime<Utc>, events: &[&str]) -> std::io::Result<()> {
        if !self.recovered {
            self.recover(at)?;
        }
        let name = hour_file_name(at);
        if self.open.as_ref().is_some_and(|o| o.name != name) {
            self.finish()?;
        }
        if events.is_empty() {
            return Ok(());
        }
        if self.open.is_none() {
            let partial = self.dir.join(format!("{name}{PARTIAL_SUFFIX}"));
            if partial.exists() {
                // Written by this process earlier in the hour then finished by a clock step
                // back: keep it.
                self.reopen(&name, &partial)?;
            } else {
                self.open = Some(self.create(&name)?);
            }
        }
        let open = self.open.as_mut().expect("opened above");
        for event in events {
            // GitHub sends each event on one line; a raw newline inside one cannot be valid
            // JSON, so nothing needs escaping.
            open.encoder.write_all(event.trim().as_bytes())?;
            open.encoder.write_all(b"\n")?;
        }
        open.encoder.flush()
    }

    /// Finishes the open hour: the gzip trailer, `fsync`, and the rename to its name.
    pub fn finish(&mut self) -> std::io::Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let file = open
            .encoder
            .finish()?
            .into_inner()
            .map_err(|e| e.into_error())?;
        file.sync_all()?;
        let path = self.dir.join(&open.name);
        if path.exists() {
            // A finished file of the same hour (a clock step back): never overwrite it.
            // Still an event file (`….again-N.json.gz`), which the backfill reads.
            let stem = open.name.strip_suffix(".json.gz").unwrap_or(&open.name);
            let mut n = 1;
            let mut other = self.dir.join(format!("{stem}.again-{n}.json.gz"));
            while other.exists() {
                n += 1;
                other = self.dir.join(format!("{stem}.again-{n}.json.gz"));
            }
            warn!(file = %open.name, kept_as = %other.display(), "hour file exists already, keeping both");
            std::fs::rename(&open.partial, &other)?;
        } else {
            std::fs::rename(&open.partial, &path)?;
        }
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        info!(file = %open.name, "hour file finished");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn read_gz(path: &Path) -> String {
        let mut text = String::new();
        MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn hours_are_named_as_gh_archive_names_them() {
        let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        assert_eq!(hour_file_name(at), "2026-03-04-5.json.gz");
        let at = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        assert_eq!(hour_file_name(at), "2026-12-31-23.json.gz");
    }

    #[test]
    fn an_hour_is_renamed_when_the_next_begins_and_a_crash_keeps_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let h5 = Utc.with_ymd_and_hms(2026, 3, 4, 5, 10, 0).unwrap();
        let h6 = Utc.with_ymd_and_hms(2026, 3, 4, 6, 0, 1).unwrap();
        let mut files = HourFiles::open(dir.path(), h5).unwrap();
        files
            .write(h5, &[r#"{"id":"1"}"#, r#"{"id":"2"}"#])
            .unwrap();
        assert!(!dir.path().join("2026-03-04-5.json.gz").exists());
        assert!(dir.path().join("2026-03-04-5.json.gz.partial").exists());
        files.write(h6, &[]).unwrap();
        assert_eq!(
            read_gz(&dir.path().join("2026-03-04-5.json.gz")),
            "{\"id\":\"1\"}\n{\"id\":\"2\"}\n"
        );
        assert!(!dir.path().join("2026-03-04-5.json.gz.partial").exists());

        // Hour 6: a poll flushed, then the process dies (no trailer) with a torn tail.
        files.write(h6, &[r#"{"id":"3"}"#]).unwrap();
        drop(files);
        let partial = dir.path().join("2026-03-04-6.json.gz.partial");
        let mut bytes = std::fs::read(&partial).unwrap();
        bytes.extend_from_slice(&[0x1f, 0x8b, 0x08, 0, 1, 2]);
        std::fs::write(&partial, bytes).unwrap();
        // Restarted within the hour: the first write recovers the partial file and goes on.
        let mut files = HourFiles::new(dir.path()).unwrap();
        files.write(h6, &[r#"{"id":"4"}"#]).unwrap();
        files.finish().unwrap();
        assert_eq!(
            read_gz(&dir.path().join("2026-03-04-6.json.gz")),
            "{\"id\":\"3\"}\n{\"id\":\"4\"}\n"
        );

        // Restarted after the hour: it is finished at start.
        let h7 = Utc.with_ymd_and_hms(2026, 3, 4, 7, 0, 0).unwrap();
        let mut files = HourFiles::open(dir.path(), h7).unwrap();
        files.write(h7, &[r#"{"id":"5"}"#]).unwrap();
        drop(files);
        let files = HourFiles::open(dir.path(), h7 + chrono::Duration::hours(1)).unwrap();
        drop(files);
        assert_eq!(
            read_gz(&dir.path().join("2026-03-04-7.json.gz")),
            "{\"id\":\"5\"}\n"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".json.gz"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }
}
