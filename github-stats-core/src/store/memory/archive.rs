//! The memory store's archive-hour records: a map by hour, persisted as JSON lines.
//!
//! Each record is appended to `archive-hours.jsonl` as one line and synced before
//! [`EventStore::record_archive_hour`](crate::store::EventStore::record_archive_hour) returns; at
//! open the lines are read in order and the last record of each hour wins. A record is a few
//! dozen bytes, one an hour: a year is under a megabyte. A last line cut by a crash is dropped
//! (with a warning) and the file cut back to its last whole line, so the next append starts
//! clean; a line that does not parse elsewhere is skipped with a warning, never fatal: the
//! records are what the archive follower found, and a lost one only makes that hour pending
//! again.
//!
//! Reads never wait for the disk: the records and the latest complete run are kept in memory
//! behind their own lock, taken for a map lookup only, while the file has a lock of its own that
//! a writer holds across its append and sync. A window answer's coverage is then a few map reads
//! in place, as cheap as its counts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use chrono::DateTime;

use crate::coverage::{ArchiveHour, ArchiveStatus, CompleteRun, HOUR_SECONDS};
use crate::store::StoreError;

/// Longest line read back; a record is about 150 bytes.
const MAX_LINE: usize = 4096;

/// Archive-hour records by hour start (seconds), with the file they persist to.
#[derive(Debug, Default)]
pub(super) struct ArchiveLedger {
    /// What readers see; never held across I/O.
    view: RwLock<ArchiveView>,
    /// Serialises writers, held across the append and its sync.
    file: Mutex<Option<(File, PathBuf)>>,
}

#[derive(Debug, Default)]
struct ArchiveView {
    hours: BTreeMap<i64, ArchiveHour>,
    /// The latest unbroken run of imported hours, kept current on every record.
    run: Option<CompleteRun>,
}

impl ArchiveLedger {
    /// Reads `path` (created when missing).
    pub(super) fn open(path: &Path) -> Result<ArchiveLedger, StoreError> {
        let mut file = super::open_own_file(
            path,
            File::options()
                .create(true)
                .truncate(false)
                .read(true)
                .append(true),
        )
        .map_err(|e| e.context(format!("cannot open {}", path.display())))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(format!("cannot read {}", path.display()), e))?;
        let mut ledger = ArchiveView::default();
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in bytes[..whole].split(|&b| b == b'\n') {
            if line.trim_ascii().is_empty() {
                continue;
            }
            match (line.len() <= MAX_LINE).then(|| serde_json::from_slice::<ArchiveHour>(line)) {
                Some(Ok(record)) => {
                    ledger.hours.insert(record.hour.timestamp(), record);
                }
                _ => tracing::warn!(
                    file = %path.display(),
                    "skipped an unreadable archive-hour record"
                ),
            }
        }
        if whole < bytes.len() {
            tracing::warn!(
                file = %path.display(),
                bytes = bytes.len() - whole,
                "dropped a torn last archive-hour record"
            );
            file.set_len(whole as u64)
                .and_then(|()| file.seek(SeekFrom::End(0)).map(|_| ()))
                .map_err(|e| StoreError::io(format!("cannot repair {}", path.display()), e))?;
        }
        ledger.refresh_run();
        Ok(ArchiveLedger {
            view: RwLock::new(ledger),
            file: Mutex::new(Some((file, path.to_path_buf()))),
        })
    }

    /// Stores `record` (durably first, when persistent), replacing the hour's earlier one.
    /// Blocks on file I/O; readers go on meanwhile and see the record once it is synced.
    pub(super) fn record(&self, record: ArchiveHour) -> Result<(), StoreError> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((file, path)) = file.as_mut() {
            let mut line = serde_json::to_vec(&record).expect("a record serialises");
            line.push(b'\n');
            let len = file
                .metadata()
                .map_err(|e| StoreError::io(format!("cannot stat {}", path.display()), e))?
                .len();
            if let Err(e) = file.write_all(&line).and_then(|()| file.sync_data()) {
                // Cut a partial line back so the file stays whole lines (best effort: if this
                // fails too, the next open drops the torn line).
                let _ = file.set_len(len);
                return Err(StoreError::io(
                    format!("cannot write {}", path.display()),
                    e,
                ));
            }
        }
        // Still holding the file: records become visible in the order they were written.
        let mut view = self.view.write().unwrap_or_else(|e| e.into_inner());
        view.hours.insert(record.hour.timestamp(), record);
        view.refresh_run();
        Ok(())
    }

    /// The records with `since <= hour < until`, by hour.
    pub(super) fn between(&self, since: i64, until: i64) -> Vec<ArchiveHour> {
        if since >= until {
            return Vec::new();
        }
        self.view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hours
            .range(since..until)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The latest unbroken run of imported hours.
    pub(super) fn complete_run(&self) -> Option<CompleteRun> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).run
    }
}

impl ArchiveView {
    fn refresh_run(&mut self) {
        let mut imported = self
            .hours
            .iter()
            .rev()
            .filter(|(_, r)| r.status == ArchiveStatus::Imported)
            .map(|(&h, _)| h);
        // Walk back from the latest imported hour while the hours follow each other.
        self.run = imported.next().and_then(|last| {
            let mut first = last;
            for h in imported {
                if h + HOUR_SECONDS != first {
                    break;
                }
                first = h;
            }
            Some(CompleteRun {
                from: DateTime::from_timestamp(first, 0)?,
                until: DateTime::from_timestamp(last + HOUR_SECONDS, 0)?,
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    /// A writer holds the file across its append and sync; readers must not wait for it.
    #[test]
    fn reads_do_not_wait_for_a_write_in_progress() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ArchiveLedger::open(&dir.path().join("archive-hours.jsonl")).unwrap();
        let hour = DateTime::from_timestamp(1_764_655_200, 0).unwrap();
        ledger
            .record(ArchiveHour::new(
                hour,
                ArchiveStatus::Imported,
                10,
                3,
                Utc::now(),
            ))
            .unwrap();
        let writing = ledger.file.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let since = hour.timestamp();
                tx.send((
                    ledger.between(since, since + HOUR_SECONDS).len(),
                    ledger.complete_run(),
                ))
                .unwrap();
            });
            let (records, run) = rx
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("a read waited for the write in progress");
            assert_eq!(records, 1);
            assert_eq!(run.map(|r| r.from), Some(hour));
            drop(writing);
        });
    }
}
