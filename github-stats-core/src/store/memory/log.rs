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
//! A crash can leave a torn last record; replay drops it (and truncates the file there) and
//! reports it. Damage anywhere else stops the replay with an error rather than dropping data.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::event::{Event, EventType, utc_from_timestamp};
use crate::store::StoreError;

const MAGIC: &[u8; 8] = b"GHSEVT01";
/// Fixed part of a payload: id, repo id, time, type, action length, name length.
const FIXED: usize = 8 + 8 + 8 + 1 + 1 + 2;
/// Upper bound on one payload, to tell a damaged length from a real one.
const MAX_PAYLOAD: usize = FIXED + 255 + u16::MAX as usize;

/// What replaying the file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Records read back.
    pub records: u64,
    /// Bytes of a torn last record dropped (a crash in the middle of a write).
    pub torn_bytes: u64,
}

/// The open event file, positioned at its end for appends.
pub(crate) struct EventLog {
    path: PathBuf,
    file: File,
    sync: bool,
    buf: Vec<u8>,
}

impl EventLog {
    /// Opens (or creates) the file at `path` and replays it into `apply`, in batches.
    pub(crate) fn open(
        path: &Path,
        sync: bool,
        mut apply: impl FnMut(Vec<Event>),
    ) -> Result<(EventLog, ReplayReport), StoreError> {
        let ctx = |what: &str| format!("{what} {}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| StoreError::io(ctx("cannot open data file"), e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(ctx("cannot stat data file"), e))?
            .len();
        let mut report = ReplayReport::default();
        if len == 0 {
            file.write_all(MAGIC)
                .and_then(|_| file.sync_all())
                .map_err(|e| StoreError::io(ctx("cannot write data file"), e))?;
        } else {
            let good = replay(&file, path, len, &mut report, &mut apply)?;
            if good < len {
                report.torn_bytes = len - good;
                file.set_len(good)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| StoreError::io(ctx("cannot truncate torn data file"), e))?;
            }
            file.seek(SeekFrom::End(0))
                .map_err(|e| StoreError::io(ctx("cannot seek data file"), e))?;
        }
        Ok((
            EventLog {
                path: path.to_path_buf(),
                file,
                sync,
                buf: Vec::new(),
            },
            report,
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `events` and, when syncing, makes them durable before returning.
    pub(crate) fn append<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<(), StoreError> {
        self.buf.clear();
        for event in events {
            encode(event, &mut self.buf);
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(|e| StoreError::io(format!("cannot append to {}", self.path.display()), e))?;
        if self.sync {
            self.file
                .sync_data()
                .map_err(|e| StoreError::io(format!("cannot sync {}", self.path.display()), e))?;
        }
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|e| StoreError::io(format!("cannot sync {}", self.path.display()), e))
    }
}

fn encode(event: &Event, out: &mut Vec<u8>) {
    let action = truncate_at_char(&event.action, 255);
    let name = truncate_at_char(&event.repo_name, u16::MAX as usize);
    let len = FIXED + action.len() + name.len();
    out.reserve(len + 8);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let start = out.len();
    out.extend_from_slice(&event.id.to_le_bytes());
    out.extend_from_slice(&event.repo_id.to_le_bytes());
    out.extend_from_slice(&event.timestamp().to_le_bytes());
    out.push(event.event_type.index() as u8);
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

fn decode(payload: &[u8]) -> Option<Event> {
    if payload.len() < FIXED {
        return None;
    }
    let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
    let id = u64_at(0);
    let repo_id = u64_at(8);
    let created_at = utc_from_timestamp(u64_at(16) as i64)?;
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

/// Reads every record; returns the offset after the last good one.
fn replay(
    file: &File,
    path: &Path,
    len: u64,
    report: &mut ReplayReport,
    apply: &mut impl FnMut(Vec<Event>),
) -> Result<u64, StoreError> {
    const BATCH: usize = 65_536;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    match reader.read_exact(&mut magic) {
        Ok(()) if &magic == MAGIC => {}
        Ok(()) | Err(_) => {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: "not a github-stats event file (bad magic)".into(),
            });
        }
    }
    let mut offset = MAGIC.len() as u64;
    let mut batch = Vec::with_capacity(BATCH);
    let mut payload = Vec::new();
    loop {
        let record_start = offset;
        let mut len_bytes = [0u8; 4];
        match read_full(&mut reader, &mut len_bytes) {
            Ok(0) => break,
            Ok(4) => {}
            Ok(_) => break, // torn inside the length
            Err(e) => return Err(StoreError::io(format!("cannot read {}", path.display()), e)),
        }
        let payload_len = u32::from_le_bytes(len_bytes) as usize;
        let record_len = 4 + payload_len as u64 + 4;
        let is_tail = record_start + record_len >= len;
        if !(FIXED..=MAX_PAYLOAD).contains(&payload_len) {
            if is_tail {
                break;
            }
            return Err(corrupt(path, record_start, "impossible record length"));
        }
        payload.resize(payload_len + 4, 0);
        let got = read_full(&mut reader, &mut payload)
            .map_err(|e| StoreError::io(format!("cannot read {}", path.display()), e))?;
        if got < payload.len() {
            break; // torn: the file ends inside this record
        }
        let crc = u32::from_le_bytes(payload[payload_len..].try_into().expect("4 bytes"));
        let event = (crc32fast::hash(&payload[..payload_len]) == crc)
            .then(|| decode(&payload[..payload_len]))
            .flatten();
        match event {
            Some(event) => batch.push(event),
            None if is_tail => break,
            None => return Err(corrupt(path, record_start, "checksum mismatch")),
        }
        offset += record_len;
        report.records += 1;
        if batch.len() == BATCH {
            apply(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
        }
    }
    if !batch.is_empty() {
        apply(batch);
    }
    Ok(offset)
}

fn corrupt(path: &Path, offset: u64, reason: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
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
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        let mut read = Vec::new();
        let (_, report) = EventLog::open(&path, true, |b| read.extend(b)).unwrap();
        assert_eq!(read, written);
        assert_eq!(report.records, 2);
        assert!(report.torn_bytes > 0);
        // The file was cut back to the good records.
        let mut again = Vec::new();
        let (_, report) = EventLog::open(&path, true, |b| again.extend(b)).unwrap();
        assert_eq!(again, written);
        assert_eq!(report.torn_bytes, 0);
    }

    #[test]
    fn damage_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        {
            let (mut log, _) = EventLog::open(&path, false, |_| {}).unwrap();
            log.append(&[event(1, "a/b"), event(2, "c/d")]).unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[MAGIC.len() + 6] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = EventLog::open(&path, false, |_| {}).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
