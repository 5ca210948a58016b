//! The memory store's append-only event file: one checksummed record per stored event.
//!
//! ```text
//! file    = magic record*
//! magic   = "GHSEVT01"
//! record  = len:u32le payload crc32(payload):u32le
//! payload = id:u64le repo_id:u64le created_at:i64le type:u8
//!           action_len:u8 action name_len:u16le name
//! ```
//!
//! The file is always the magic followed by whole records, every acknowledged one among them,
//! and at most a torn tail after a crash. What can go wrong, and what happens:
//!
//! - **An append fails part way** (disk full, I/O error), **or its `fsync` fails** (the bytes
//!   may or may not have reached the disk): the file is cut back to the end of the last
//!   acknowledged record and the insert fails, so the caller's retry appends the batch again
//!   after whole records. Nothing of a failed batch is counted. When even the cut fails, no
//!   append is tried until a later cut succeeds: new records never follow torn bytes.
//! - **A crash or a power cut** leaves a torn last record, or a tail of zeros (a file whose
//!   length reached the disk before its data): replay cuts the file back to its last whole
//!   record and reports the bytes dropped. A crash after an append and before the store's
//!   index took the batch loses nothing either: the insert never returned, its records are
//!   replayed at the next start, and the caller's retry finds them stored.
//! - **Damage before the tail** (torn bytes followed by whole records, which versions before
//!   this one left after a failed append and a retry; a bad block): replay skips the damaged
//!   bytes up to the next offset where a whole record with a valid checksum starts, keeps every
//!   whole record on both sides, and reports each range (offset, length). The bytes stay in the
//!   file (nothing is rewritten, so nothing more can be lost), and the same ranges are skipped at
//!   every start. A wrong resynchronisation needs four length bytes in range, a matching CRC-32
//!   and a payload that decodes field by field: about one chance in 10^14 per damaged byte.
//!   The events whose bytes were damaged are lost; re-import their period.
//! - **A record written twice** (a copy of the file appended to itself, an older version's
//!   retry): replayed once; the store deduplicates replay exactly like inserts.
//! - **A read error** during replay stops the open with the error: it is not damage the
//!   format can see, and retrying may succeed.
//!
//! A file that does not start with the magic is refused (it is not ours), unless it holds
//! nothing but zeros, or fewer bytes than the magic that begin it: what a crash while creating
//! it leaves.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::fields::EventFields;
use crate::event::{Event, EventType, utc_from_timestamp};
use crate::store::StoreError;

const MAGIC: &[u8; 8] = b"GHSEVT01";
/// Fixed part of a payload: id, repo id, time, type, action length, name length.
const FIXED: usize = 8 + 8 + 8 + 1 + 1 + 2;
/// Upper bound on one payload, to tell a damaged length from a real one.
const MAX_PAYLOAD: usize = FIXED + 255 + u16::MAX as usize;
/// Events handed to the replay callback at once.
const REPLAY_BATCH: usize = 65_536;
/// Damaged ranges named one by one in the log at open; the others are only counted.
const MAX_DAMAGE_WARNINGS: u64 = 16;

/// What replaying the file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Whole records read back (a record written twice counts twice here, once in the store).
    pub records: u64,
    /// Records whose event id an earlier record already had: counted once.
    pub duplicate_records: u64,
    /// Bytes cut from the end of the file: a torn last record, zeros, or damage with no whole
    /// record after it.
    pub torn_bytes: u64,
    /// Bytes skipped before the end of the file (damage followed by whole records). They stay
    /// in the file.
    pub damaged_bytes: u64,
    /// Ranges of such damage.
    pub damaged_ranges: u64,
}

/// What the log needs from its file. The real one is a [`File`] opened for appending; tests put
/// faults between the log and the disk.
pub(crate) trait LogFile: Send {
    /// Writes all of `bytes` at the end of the file. On error, any prefix may have been written.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes the data written so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Opened with O_APPEND: every write lands at the end, also after a truncation.
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// The open event file.
pub(crate) struct EventLog {
    path: PathBuf,
    file: Box<dyn LogFile>,
    sync: bool,
    buf: Vec<u8>,
    /// End of the last whole record written: where the file ends unless an append failed.
    len: u64,
    /// An append failed and the file could not be cut back to `len` yet.
    torn: bool,
}

impl EventLog {
    /// [`EventLog::open_with`] the file itself.
    #[cfg(test)]
    pub(crate) fn open(
        path: &Path,
        sync: bool,
        apply: impl FnMut(Vec<Event>) -> u64,
    ) -> Result<(EventLog, ReplayReport), StoreError> {
        EventLog::open_with(path, sync, apply, |file| Box::new(file))
    }

    /// Opens (or creates) the file at `path` and replays it into `apply`, in batches; `apply`
    /// answers how many of the batch's events were new (the others are counted as duplicates).
    /// Appends then go through `wrap(file)` (the file itself, or faults in tests).
    pub(crate) fn open_with(
        path: &Path,
        sync: bool,
        mut apply: impl FnMut(Vec<Event>) -> u64,
        wrap: impl FnOnce(File) -> Box<dyn LogFile>,
    ) -> Result<(EventLog, ReplayReport), StoreError> {
        let ctx = |what: &str| format!("{what} {}", path.display());
        let created = !path.exists();
        let file = super::open_own_file(
            path,
            OpenOptions::new().read(true).append(true).create(true),
        )
        .map_err(|e| e.context(ctx("cannot open data file")))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(ctx("cannot stat data file"), e))?
            .len();
        let mut report = ReplayReport::default();
        let good = if len == 0 {
            0
        } else {
            replay(&file, path, &mut report, &mut apply)?
        };
        if good < len {
            report.torn_bytes = len - good;
            tracing::warn!(
                file = %path.display(),
                offset = good,
                torn_bytes = len - good,
                records = report.records,
                "cut the data file back to its last whole record (torn or zeroed tail left by a crash)"
            );
            file.set_len(good)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(ctx("cannot cut back the torn tail of"), e))?;
        }
        let mut file = file;
        let good = if good == 0 {
            file.write_all(MAGIC)
                .and_then(|()| file.sync_all())
                .map_err(|e| StoreError::io(ctx("cannot write data file"), e))?;
            MAGIC.len() as u64
        } else {
            good
        };
        if created {
            // The new file's directory entry must be durable too, or a power cut could lose the
            // whole file along with every insert acknowledged since.
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| StoreError::io(format!("cannot sync {}", dir.display()), e))?;
            }
        }
        Ok((
            EventLog {
                path: path.to_path_buf(),
                file: wrap(file),
                sync,
                buf: Vec::new(),
                len: good,
                torn: false,
            },
            report,
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events` and, when syncing, makes them durable before returning. On error
    /// nothing of them counts as written: the file is cut back to the last whole record.
    pub(crate) fn append<'a, E: EventFields + 'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a E>,
    ) -> Result<(), StoreError> {
        self.buf.clear();
        for event in events {
            encode(event, &mut self.buf);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.cut_back()?;
        }
        let mut result = self
            .file
            .append(&self.buf)
            .map_err(|e| StoreError::io(format!("cannot append to {}", self.path.display()), e));
        if result.is_ok() && self.sync {
            result = self.file.sync().map_err(|e| {
                StoreError::io(
                    format!(
                        "cannot sync {} (the batch was not stored)",
                        self.path.display()
                    ),
                    e,
                )
            });
        }
        match result {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Part of the batch may be in the file, or all of it without a promise that it
                // is on disk: cut it off, so that the retry appends after whole records.
                self.torn = true;
                if let Err(cut) = self.cut_back() {
                    tracing::warn!(error = %cut, "no append until the data file is cut back");
                }
                Err(err)
            }
        }
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        if self.torn {
            // Best effort: what must be durable is before `len`; the next append retries.
            let _ = self.cut_back();
        }
        self.file
            .sync()
            .map_err(|e| StoreError::io(format!("cannot sync {}", self.path.display()), e))
    }

    fn cut_back(&mut self) -> Result<(), StoreError> {
        self.file.truncate(self.len).map_err(|e| {
            StoreError::io(
                format!(
                    "cannot cut {} back to byte {} after a failed append",
                    self.path.display(),
                    self.len
                ),
                e,
            )
        })?;
        self.torn = false;
        Ok(())
    }
}

fn encode(event: &impl EventFields, out: &mut Vec<u8>) {
    let action = truncate_at_char(event.action(), 255);
    let name = truncate_at_char(event.repo_name(), u16::MAX as usize);
    let len = FIXED + action.len() + name.len();
    out.reserve(len + 8);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&event.id().to_le_bytes());
    out.extend_from_slice(&event.repo_id().to_le_bytes());
    out.extend_from_slice(&event.timestamp().to_le_bytes());
    out.push(event.event_type().index() as u8);
    out.push(action.len() as u8);
    out.extend_from_slice(action.as_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The event of a payload whose checksum matched, when every field is one the store writes.
fn decode(payload: &[u8]) -> Option<Event> {
    if payload.len() < FIXED {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
    let id = u64_at(0);
    let repo_id = u64_at(8);
    let timestamp = u64_at(16) as i64;
    // The store refuses other times at insert, so nothing else was ever written.
    u32::try_from(timestamp).ok()?;
    let created_at = utc_from_timestamp(timestamp)?;
    let event_type = EventType::from_index(payload[24] as usize)?;
    let action_len = payload[25] as usize;
    let rest = &payload[26..];
    let action = std::str::from_utf8(rest.get(..action_len)?).ok()?;
    let rest = &rest[action_len..];
    let name_len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(rest.get(2..2 + name_len)?).ok()?;
    if rest.len() != 2 + name_len {
        return None;
    }
    Some(Event {
        id,
        event_type,
        repo_id,
        repo_name: name.to_owned(),
        created_at,
        action: action.to_owned(),
    })
}

/// Reads every whole record into `apply`, skipping damage before the tail; returns the length
/// to keep (0: nothing of ours, start the file again).
fn replay(
    file: &File,
    path: &Path,
    report: &mut ReplayReport,
    apply: &mut impl FnMut(Vec<Event>) -> u64,
) -> Result<u64, StoreError> {
    let read_error = |e| StoreError::io(format!("cannot read {}", path.display()), e);
    let mut window = Window::new(file);
    let head = window.fill(MAGIC.len()).map_err(read_error)?;
    if head != MAGIC {
        let torn_magic = head.len() < MAGIC.len() && MAGIC.starts_with(head);
        if torn_magic || window.rest_is_zero().map_err(read_error)? {
            // What a crash while creating the file leaves: no record can be in it.
            return Ok(0);
        }
        return Err(corrupt(
            path,
            0,
            "not a github-stats event file (bad magic); move it away to start an empty store",
        ));
    }
    window.consume(MAGIC.len());
    let mut offset = MAGIC.len() as u64;
    let mut batch = Vec::with_capacity(REPLAY_BATCH);
    let mut applied = 0;
    // Where the damage being skipped started.
    let mut damage: Option<u64> = None;
    // The time of the last whole record: the lost events of a damaged range are most likely
    // between the times of the records around it (events are stored roughly in time order).
    let mut last_time: Option<i64> = None;
    loop {
        match window.next_record().map_err(read_error)? {
            Next::End => break,
            Next::Invalid => {
                damage.get_or_insert(offset);
                window.consume(1);
                offset += 1;
            }
            Next::Record(event, len) => {
                if let Some(start) = damage.take() {
                    let around = (last_time, event.timestamp());
                    report_damage(path, report, start..offset, around);
                }
                last_time = Some(event.timestamp());
                batch.push(event);
                window.consume(len);
                offset += len as u64;
                report.records += 1;
                if batch.len() == REPLAY_BATCH {
                    applied += apply(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(REPLAY_BATCH),
                    ));
                }
            }
        }
    }
    if !batch.is_empty() {
        applied += apply(batch);
    }
    report.duplicate_records = report.records - applied;
    if report.damaged_ranges > MAX_DAMAGE_WARNINGS {
        tracing::warn!(
            file = %path.display(),
            damaged_ranges = report.damaged_ranges,
            damaged_bytes = report.damaged_bytes,
            "more damaged ranges than named above were skipped"
        );
    }
    // Damage running to the end of the file is a torn tail: cut it.
    Ok(damage.unwrap_or(offset))
}

/// Counts and logs the damaged `range`, between records of the times `around`.
fn report_damage(
    path: &Path,
    report: &mut ReplayReport,
    range: std::ops::Range<u64>,
    around: (Option<i64>, i64),
) {
    report.damaged_ranges += 1;
    report.damaged_bytes += range.end - range.start;
    if report.damaged_ranges <= MAX_DAMAGE_WARNINGS {
        let time = |t: i64| utc_from_timestamp(t).map(|t| t.to_rfc3339());
        tracing::warn!(
            file = %path.display(),
            offset = range.start,
            damaged_bytes = range.end - range.start,
            record_before_at = ?around.0.and_then(time),
            record_after_at = ?time(around.1),
            "skipped damaged bytes in the data file and kept the whole records after them; \
             the events stored there are lost: re-import the period between the records around them"
        );
    }
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

enum Next {
    /// The end of the file.
    End,
    /// A whole record with a valid checksum, and its length in bytes.
    Record(Event, usize),
    /// No whole record starts here.
    Invalid,
}

/// A bounded sliding window over the file: records are read from it, and damage is skipped
/// one byte at a time without reading anything twice.
struct Window<'f> {
    file: &'f File,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
}

impl<'f> Window<'f> {
    /// Bytes read from the file at once; the buffer holds two reads, so that any record fits.
    const CHUNK: usize = 1 << 20;

    fn new(file: &'f File) -> Window<'f> {
        const _: () = assert!(MAX_PAYLOAD + 8 < Window::CHUNK);
        Window {
            file,
            buf: vec![0; 2 * Self::CHUNK],
            pos: 0,
            end: 0,
            eof: false,
        }
    }

    /// The next `need` bytes (fewer at the end of the file); `need` is at most a chunk.
    fn fill(&mut self, need: usize) -> io::Result<&[u8]> {
        if self.end - self.pos < need && !self.eof {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
            while self.end < need && !self.eof {
                match (&mut &*self.file).read(&mut self.buf[self.end..]) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(&self.buf[self.pos..self.end.min(self.pos + need)])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Whether every byte from here to the end of the file is zero.
    fn rest_is_zero(&mut self) -> io::Result<bool> {
        loop {
            let bytes = self.fill(Self::CHUNK)?;
            if bytes.is_empty() {
                return Ok(true);
            }
            if bytes.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            let n = bytes.len();
            self.consume(n);
        }
    }

    fn next_record(&mut self) -> io::Result<Next> {
        let head = self.fill(4)?;
        if head.is_empty() {
            return Ok(Next::End);
        }
        if head.len() < 4 {
            return Ok(Next::Invalid);
        }
        let payload_len = u32::from_le_bytes(head.try_into().expect("4 bytes")) as usize;
        if !(FIXED..=MAX_PAYLOAD).contains(&payload_len) {
            return Ok(Next::Invalid);
        }
        let record = self.fill(4 + payload_len + 4)?;
        if record.len() < 4 + payload_len + 4 {
            return Ok(Next::Invalid);
        }
        let payload = &record[4..4 + payload_len];
        let crc = u32::from_le_bytes(record[4 + payload_len..].try_into().expect("4 bytes"));
        if crc32fast::hash(payload) != crc {
            return Ok(Next::Invalid);
        }
        Ok(match decode(payload) {
            Some(event) => Next::Record(event, record.len()),
            None => Next::Invalid,
        })
    }
}

/// A [`LogFile`] that fails or blocks on demand, for tests of what the store does then.
#[cfg(test)]
pub(crate) mod faults {
    use std::fs::File;
    use std::io;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use super::LogFile;

    /// What the next operations do; shared between a test and its [`FaultyFile`].
    #[derive(Debug, Default)]
    pub(crate) struct Faults {
        /// The next append writes this many bytes, then fails with "no space left on device".
        pub(crate) fail_append_after: Option<usize>,
        /// This many next syncs fail (after the bytes were written).
        pub(crate) failing_syncs: u32,
        /// This many next truncations fail.
        pub(crate) failing_truncations: u32,
        /// Appends wait in [`Gate::pass`] while this is set.
        pub(crate) gate: Option<Arc<Gate>>,
    }

    /// A gate that appends wait at, until a test opens it.
    #[derive(Debug, Default)]
    pub(crate) struct Gate {
        state: Mutex<GateState>,
        changed: Condvar,
        /// Told when an append reaches the gate.
        pub(crate) reached: tokio::sync::Notify,
    }

    #[derive(Debug, Default)]
    struct GateState {
        open: bool,
        /// An append is waiting at the gate.
        waiting: bool,
        /// The gate opened by itself, the test not having opened it in time.
        gave_up: bool,
    }

    impl Gate {
        /// Lets waiting and future appends through.
        pub(crate) fn open(&self) {
            self.state.lock().unwrap().open = true;
            self.changed.notify_all();
        }

        /// Whether an append is waiting at the gate right now.
        pub(crate) fn holds_an_append(&self) -> bool {
            self.state.lock().unwrap().waiting
        }

        /// Whether the gate had to open by itself (the test could not run while an append
        /// waited: the append blocked the test's thread).
        pub(crate) fn gave_up(&self) -> bool {
            self.state.lock().unwrap().gave_up
        }

        fn pass(&self) {
            let mut state = self.state.lock().unwrap();
            state.waiting = true;
            self.reached.notify_one();
            // Not a timing assertion: the bound only turns a deadlock into a test failure.
            let (mut state, timeout) = self
                .changed
                .wait_timeout_while(state, Duration::from_secs(10), |s| !s.open)
                .unwrap();
            if timeout.timed_out() {
                state.gave_up = true;
                state.open = true;
            }
            state.waiting = false;
        }
    }

    /// A real file behind injectable faults.
    pub(crate) struct FaultyFile {
        pub(crate) file: File,
        pub(crate) faults: Arc<Mutex<Faults>>,
    }

    impl LogFile for FaultyFile {
        fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
            let (fail_after, gate) = {
                let mut faults = self.faults.lock().unwrap();
                (faults.fail_append_after.take(), faults.gate.clone())
            };
            if let Some(gate) = gate {
                gate.pass();
            }
            match fail_after {
                Some(n) => {
                    self.file.append(&bytes[..n.min(bytes.len())])?;
                    Err(io::Error::from_raw_os_error(28)) // ENOSPC
                }
                None => self.file.append(bytes),
            }
        }

        fn sync(&mut self) -> io::Result<()> {
            let mut faults = self.faults.lock().unwrap();
            if faults.failing_syncs > 0 {
                faults.failing_syncs -= 1;
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            self.file.sync()
        }

        fn truncate(&mut self, len: u64) -> io::Result<()> {
            let mut faults = self.faults.lock().unwrap();
            if faults.failing_truncations > 0 {
                faults.failing_truncations -= 1;
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            self.file.truncate(len)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::faults::{Faults, FaultyFile};
    use super::*;

    fn event(id: u64, name: &str) -> Event {
        Event {
            id,
            event_type: EventType::PullRequestEvent,
            repo_id: 7,
            repo_name: name.into(),
            created_at: utc_from_timestamp(1_600_000_000 + id as i64).unwrap(),
            action: "opened".into(),
        }
    }

    fn events(ids: std::ops::RangeInclusive<u64>) -> Vec<Event> {
        ids.map(|i| event(i, &format!("o/r{i}"))).collect()
    }

    /// Opens `path` with a plain file and returns every replayed event and the report.
    fn reopen(path: &Path) -> (Vec<Event>, ReplayReport) {
        let mut read = Vec::new();
        let (_, report) = EventLog::open(path, true, |b| {
            let n = b.len() as u64;
            read.extend(b);
            n
        })
        .unwrap();
        (read, report)
    }

    fn open_faulty(path: &Path) -> (EventLog, Arc<Mutex<Faults>>) {
        let faults = Arc::new(Mutex::new(Faults::default()));
        let shared = Arc::clone(&faults);
        let (log, _) = EventLog::open_with(
            path,
            true,
            |b| b.len() as u64,
            move |file| {
                Box::new(FaultyFile {
                    file,
                    faults: shared,
                })
            },
        )
        .unwrap();
        (log, faults)
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    fn append_raw(path: &Path, bytes: &[u8]) {
        OpenOptions::new()
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    fn encoded(events: &[Event]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in events {
            encode(e, &mut out);
        }
        out
    }

    #[test]
    fn records_round_trip_and_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let written = vec![event(1, "a/b"), event(2, "ü/\"q\\")];
        {
            let (mut log, report) = EventLog::open(&path, true, |_| panic!("empty")).unwrap();
            assert_eq!(report, ReplayReport::default());
            log.append(&written).unwrap();
            log.append(&[event(3, "c/d")]).unwrap();
        }
        // Tear the last record in half.
        let len = file_len(&path);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let (read, report) = reopen(&path);
        assert_eq!(read, written);
        assert_eq!(report.records, 2);
        assert!(report.torn_bytes > 0);
        assert_eq!(report.damaged_bytes, 0);
        // The file was cut back to the good records.
        let (again, report) = reopen(&path);
        assert_eq!(again, written);
        assert_eq!(report.torn_bytes, 0);
    }

    #[test]
    fn a_failed_append_is_cut_back_and_the_retry_lands_after_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let (mut log, faults) = open_faulty(&path);
        log.append(&events(1..=2)).unwrap();
        let acknowledged = file_len(&path);
        // The disk fills in the middle of the second record.
        faults.lock().unwrap().fail_append_after = Some(60);
        let err = log.append(&events(3..=4)).unwrap_err();
        assert!(err.to_string().contains("cannot append to"), "{err}");
        assert_eq!(file_len(&path), acknowledged, "the torn bytes were cut");
        // The ingest loop's retry.
        log.append(&events(3..=4)).unwrap();
        drop(log);
        let (read, report) = reopen(&path);
        assert_eq!(read, events(1..=4));
        assert_eq!(
            (
                report.torn_bytes,
                report.damaged_bytes,
                report.duplicate_records
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_failed_sync_cuts_the_batch_back_so_the_retry_writes_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let (mut log, faults) = open_faulty(&path);
        log.append(&events(1..=2)).unwrap();
        let acknowledged = file_len(&path);
        faults.lock().unwrap().failing_syncs = 1;
        let err = log.append(&events(3..=3)).unwrap_err();
        assert!(err.to_string().contains("was not stored"), "{err}");
        assert_eq!(file_len(&path), acknowledged);
        log.append(&events(3..=3)).unwrap();
        drop(log);
        let (read, report) = reopen(&path);
        assert_eq!(read, events(1..=3));
        assert_eq!(report.records, 3);
    }

    #[test]
    fn nothing_is_appended_after_torn_bytes_until_they_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let (mut log, faults) = open_faulty(&path);
        log.append(&events(1..=2)).unwrap();
        let acknowledged = file_len(&path);
        {
            let mut faults = faults.lock().unwrap();
            faults.fail_append_after = Some(5);
            // The cut right after the failure, and the one before the first retry.
            faults.failing_truncations = 2;
        }
        log.append(&events(3..=3)).unwrap_err();
        let err = log.append(&events(3..=3)).unwrap_err();
        assert!(err.to_string().contains("cannot cut"), "{err}");
        assert_eq!(
            file_len(&path),
            acknowledged + 5,
            "nothing after the torn bytes"
        );
        log.append(&events(3..=3)).unwrap();
        drop(log);
        let (read, report) = reopen(&path);
        assert_eq!(read, events(1..=3));
        assert_eq!((report.torn_bytes, report.damaged_bytes), (0, 0));
    }

    #[test]
    fn a_tail_of_zeros_is_cut_and_every_record_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        EventLog::open(&path, true, |_| 0)
            .unwrap()
            .0
            .append(&events(1..=3))
            .unwrap();
        let len = file_len(&path);
        append_raw(&path, &[0; 8192]);
        let (read, report) = reopen(&path);
        assert_eq!(read, events(1..=3));
        assert_eq!(report.torn_bytes, 8192);
        assert_eq!(file_len(&path), len);
    }

    #[test]
    fn a_file_of_zeros_or_a_torn_magic_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        for content in [&[0u8; 4096][..], &MAGIC[..5]] {
            std::fs::write(&path, content).unwrap();
            let (read, report) = reopen(&path);
            assert!(read.is_empty());
            assert_eq!(report.torn_bytes, content.len() as u64);
            assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
        }
    }

    #[test]
    fn a_file_of_something_else_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        std::fs::write(&path, b"{\"id\":\"1\"}\n").unwrap();
        let err = EventLog::open(&path, true, |_| 0).err().unwrap();
        assert!(
            matches!(err, StoreError::Corrupt { offset: 0, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("bad magic"), "{err}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"id\":\"1\"}\n",
            "left alone"
        );
    }

    /// The file an earlier version left after a full disk: torn bytes, then the retry.
    #[test]
    fn torn_bytes_before_whole_records_are_skipped_and_every_whole_record_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        EventLog::open(&path, true, |_| 0)
            .unwrap()
            .0
            .append(&events(1..=2))
            .unwrap();
        let torn = &encoded(&events(3..=3))[..30];
        append_raw(&path, torn);
        append_raw(&path, &encoded(&events(3..=4)));
        let len = file_len(&path);
        for _ in 0..2 {
            let (read, report) = reopen(&path);
            assert_eq!(read, events(1..=4));
            assert_eq!(report.damaged_ranges, 1);
            assert_eq!(report.damaged_bytes, torn.len() as u64);
            assert_eq!(report.torn_bytes, 0);
            assert_eq!(file_len(&path), len, "the damaged bytes stay in place");
        }
        // Appends go on after the damage, and are read back.
        EventLog::open(&path, true, |b| b.len() as u64)
            .unwrap()
            .0
            .append(&events(5..=5))
            .unwrap();
        assert_eq!(reopen(&path).0, events(1..=5));
    }

    #[test]
    fn a_damaged_record_between_whole_ones_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        EventLog::open(&path, false, |_| 0)
            .unwrap()
            .0
            .append(&events(1..=3))
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let first = encoded(&events(1..=1)).len();
        let second = encoded(&events(2..=2)).len();
        // A flipped byte inside the second record's name.
        bytes[MAGIC.len() + first + second - 6] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (read, report) = reopen(&path);
        assert_eq!(read, [events(1..=1), events(3..=3)].concat());
        assert_eq!(report.damaged_bytes, second as u64);
        assert_eq!(report.damaged_ranges, 1);
    }

    #[test]
    fn damage_in_the_length_of_the_first_record_loses_only_that_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        EventLog::open(&path, false, |_| 0)
            .unwrap()
            .0
            .append(&events(1..=3))
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MAGIC.len() + 1] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (read, report) = reopen(&path);
        assert_eq!(read, events(2..=3));
        assert_eq!(report.damaged_ranges, 1);
    }

    #[test]
    fn records_written_twice_are_reported_as_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        EventLog::open(&path, false, |_| 0)
            .unwrap()
            .0
            .append(&events(1..=3))
            .unwrap();
        append_raw(&path, &encoded(&events(2..=3)));
        let mut seen = std::collections::HashSet::new();
        let (_, report) = EventLog::open(&path, false, |b| {
            b.iter().filter(|e| seen.insert(e.id)).count() as u64
        })
        .unwrap();
        assert_eq!((report.records, report.duplicate_records), (5, 2));
    }

    #[test]
    fn times_the_store_never_writes_do_not_decode() {
        let mut bad = event(1, "a/b");
        bad.created_at = utc_from_timestamp(i64::from(u32::MAX) + 1).unwrap();
        let bytes = encoded(&[bad]);
        assert!(decode(&bytes[4..bytes.len() - 4]).is_none());
        let good = encoded(&[event(1, "a/b")]);
        assert!(decode(&good[4..good.len() - 4]).is_some());
    }
}
