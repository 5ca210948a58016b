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

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::DateTime;

use crate::coverage::{ArchiveHour, ArchiveStatus, CompleteRun, HOUR_SECONDS};
use crate::store::StoreError;

/// Longest line read back; a record is about 150 bytes.
const MAX_LINE: usize = 4096;

/// Archive-hour records by hour start (seconds), with the file they persist to.
#[derive(Debug, Default)]
pub(super) struct ArchiveLedger {
    hours: BTreeMap<i64, ArchiveHour>,
    /// The latest unbroken run of imported hours, kept current on every record.
    run: Option<CompleteRun>,
    file: Option<(File, PathBuf)>,
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
        let mut ledger = ArchiveLedger::default();
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
        ledger.file = Some((file, path.to_path_buf()));
        Ok(ledger)
    }

    /// Stores `record` (durably first, when persistent), replacing the hour's earlier one.
    pub(super) fn record(&mut self, record: ArchiveHour) -> Result<(), StoreError> {
        if let Some((file, path)) = &mut self.file {
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
        self.hours.insert(record.hour.timestamp(), record);
        self.refresh_run();
        Ok(())
    }

    /// The records with `since <= hour < until`, by hour.
    pub(super) fn between(&self, since: i64, until: i64) -> Vec<ArchiveHour> {
        if since >= until {
            return Vec::new();
        }
        self.hours
            .range(since..until)
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub(super) fn complete_run(&self) -> Option<CompleteRun> {
        self.run
    }

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
