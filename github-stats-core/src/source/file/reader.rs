//! Reading records out of an event file as it streams by: JSON lines in chunks of whole lines,
//! a JSON array element by element, every record bounded.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::array::ArraySplitter;
use super::open::{open_event_file, read_up_to};
use crate::parse::{self, ParseStats};

/// The longest record (a JSON line, or an element of a JSON array) read by default: 16 MiB. A
/// GitHub event is a few kilobytes (the largest seen in GH Archive are under 1 MiB); a longer
/// record is damage or an attack (a small gzip file can expand to one line of gigabytes), and
/// reading it whole would take that much memory.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;

/// Bytes read at a time while scanning a JSON array, or skipping an overlong line.
pub(super) const BLOCK_BYTES: usize = 64 * 1024;

/// Reads one event file in chunks of whole records, so that files of any size are parsed as a
/// stream: JSON lines in chunks of whole lines, a JSON array (a poll file) element by element,
/// each element handed out as one line. Either way, a chunk is JSON lines.
///
/// Every record is bounded: a line or an array element longer than
/// [`max_record_bytes`](Self::with_max_record_bytes) is skipped without being held in memory,
/// and counted as a bad record (see [`take_skipped_records`](Self::take_skipped_records)), as
/// is an array element cut short by the end of the file. Memory stays under about
/// `chunk_bytes + max_record_bytes` whatever the input.
pub struct EventFileReader {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    /// JSON lines: the partial last line of the previous chunk. A JSON array: input read but not
    /// scanned yet (`pending_at..pending_end`).
    pending: Vec<u8>,
    pending_at: usize,
    pending_end: usize,
    chunk_bytes: usize,
    max_record_bytes: usize,
    /// Records skipped (overlong, cut short) and not yet reported.
    skipped_records: u64,
    format: Option<Format>,
    array: ArraySplitter,
    /// Whether the start of the input was checked for a byte order mark.
    bom_checked: bool,
    /// A read error that broke the input off, returned once the whole records read before it
    /// were handed out.
    failure: Option<io::Error>,
    done: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Format {
    Array,
    Lines,
}

/// One parsed chunk of a file.
#[derive(Debug, Default)]
pub struct FileChunk {
    /// Kept events.
    pub events: Vec<crate::Event>,
    /// Counts.
    pub stats: ParseStats,
    /// Uncompressed bytes consumed.
    pub bytes: u64,
    /// Whether the file is finished.
    pub last: bool,
}

impl EventFileReader {
    /// Opens `path`, decompressing gzip (detected by its magic bytes, not its name). A file
    /// named `.gz` that is not gzip is an error.
    pub fn open(path: &Path, chunk_bytes: usize) -> io::Result<EventFileReader> {
        Ok(EventFileReader::from_reader(
            path,
            open_event_file(path)?,
            chunk_bytes,
        ))
    }

    /// Reads `reader` (already decompressed), calling it `name` in errors and origins.
    pub fn from_reader(
        name: impl Into<PathBuf>,
        reader: Box<dyn Read + Send>,
        chunk_bytes: usize,
    ) -> EventFileReader {
        EventFileReader {
            path: name.into(),
            reader,
            pending: Vec::new(),
            pending_at: 0,
            pending_end: 0,
            chunk_bytes: chunk_bytes.max(4096),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            skipped_records: 0,
            format: None,
            array: ArraySplitter::default(),
            bom_checked: false,
            failure: None,
            done: false,
        }
    }

    /// Sets the longest record read (at least 1 KiB; [`DEFAULT_MAX_RECORD_BYTES`] by default).
    pub fn with_max_record_bytes(mut self, max_record_bytes: usize) -> EventFileReader {
        self.max_record_bytes = max_record_bytes.max(1024);
        self
    }

    /// Reads the input as JSON lines whatever its first byte (GH Archive hours are never
    /// arrays).
    pub fn json_lines(mut self) -> EventFileReader {
        self.format = Some(Format::Lines);
        self
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records skipped since the last call: lines or array elements longer than the record cap,
    /// and an array element cut short by the end of the file. Callers of
    /// [`read_raw_chunk_into`](Self::read_raw_chunk_into) count them as bad records
    /// ([`ParseStats::malformed`]); [`next_chunk`](Self::next_chunk) does so itself.
    pub fn take_skipped_records(&mut self) -> u64 {
        std::mem::take(&mut self.skipped_records)
    }

    /// Reads and parses the next chunk; `Ok(None)` after the last. A read error (a gzip cut
    /// short or damaged, an I/O error) comes after a last chunk of the whole records read
    /// before it.
    pub fn next_chunk(&mut self) -> io::Result<Option<FileChunk>> {
        if self.done && self.failure.is_none() {
            return Ok(None);
        }
        let data = self.read_raw_chunk()?;
        let mut chunk = FileChunk {
            last: self.done && self.failure.is_none(),
            bytes: data.len() as u64,
            ..FileChunk::default()
        };
        let skipped = self.take_skipped_records();
        chunk.stats.records += skipped;
        chunk.stats.malformed += skipped;
        parse::parse_json_lines(&data, &mut chunk.stats, &mut chunk.events);
        Ok(Some(chunk))
    }

    /// The next chunk of raw bytes, as JSON lines: whole lines of a JSON lines file, or the next
    /// elements of a JSON array, one a line. Callers that parse in parallel use this and
    /// [`parse::parse_json_lines`] themselves.
    pub fn read_raw_chunk(&mut self) -> io::Result<Vec<u8>> {
        self.read_raw_chunk_into(Vec::new())
    }

    /// [`EventFileReader::read_raw_chunk`] into `buf`, a buffer of an earlier chunk given back
    /// (its contents are dropped, its memory reused): a new buffer per chunk costs page faults
    /// and zeroing, about as much as reading the chunk. An empty chunk means the end.
    ///
    /// A read error does not lose what came before it: the whole records read before the
    /// break are returned first, and the error (saying how many bytes of a record it cut, if
    /// any) at the next call.
    pub fn read_raw_chunk_into(&mut self, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
        buf.clear();
        if let Some(error) = self.failure.take() {
            return Err(error);
        }
        if self.done {
            return Ok(buf);
        }
        let result = if !self.bom_checked {
            self.skip_bom()
        } else {
            match self.format {
                None => self.detect_format(),
                Some(Format::Lines) => self.read_lines(&mut buf),
                Some(Format::Array) => self.read_array(&mut buf),
            }
        };
        match result {
            // The start was checked, or the format found: now the records.
            Ok(()) if self.format.is_none() || (buf.is_empty() && !self.done) => {
                self.read_raw_chunk_into(buf)
            }
            Ok(()) => Ok(buf),
            Err(error) => {
                self.done = true;
                self.break_off(buf, error)
            }
        }
    }

    /// Drops a UTF-8 byte order mark at the start of the (decompressed) input, as most JSON
    /// readers do: some editors and Windows tools write one, and it would make the first
    /// record (a whole JSON array: the whole file) a bad line.
    fn skip_bom(&mut self) -> io::Result<()> {
        self.bom_checked = true;
        let mut head = [0u8; 3];
        let n = read_up_to(&mut self.reader, &mut head)?;
        self.pending.extend_from_slice(parse::strip_bom(&head[..n]));
        self.pending_end = self.pending.len();
        Ok(())
    }

    /// The input broke off with `error`: the whole records in `buf` (every record but a last
    /// one the break cut) are handed out, and the error kept for the next call, saying what
    /// the break cut.
    fn break_off(&mut self, mut buf: Vec<u8>, error: io::Error) -> io::Result<Vec<u8>> {
        let whole = memchr::memrchr(b'\n', &buf).map_or(0, |nl| nl + 1);
        // JSON lines: the partial line carried over is at the start of `buf` by now.
        let cut = buf.len() - whole;
        buf.truncate(whole);
        let message = if cut > 0 {
            format!(
                "{error} (the record it cut, {cut} bytes, is lost; every record before it was read)"
            )
        } else {
            format!("{error} (every record before it was read)")
        };
        let error = io::Error::new(error.kind(), message);
        if buf.is_empty() {
            return Err(error);
        }
        self.failure = Some(error);
        Ok(buf)
    }

    /// Reads up to the first byte that is not whitespace (whitespace before it is dropped, so
    /// memory stays flat whatever precedes it): a `[` starts a JSON array, anything else JSON
    /// lines.
    fn detect_format(&mut self) -> io::Result<()> {
        // What the byte order mark check read comes first.
        if let Some(at) = self.pending.iter().position(|b| !b.is_ascii_whitespace()) {
            self.format = Some(if self.pending[at] == b'[' {
                Format::Array
            } else {
                Format::Lines
            });
            self.pending.drain(..at);
            self.pending_end = self.pending.len();
            return Ok(());
        }
        self.pending.clear();
        self.pending_end = 0;
        let mut block = vec![0u8; BLOCK_BYTES];
        loop {
            let n = match self.reader.read(&mut block) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.format = Some(Format::Lines);
                return Ok(());
            }
            if let Some(at) = block[..n].iter().position(|b| !b.is_ascii_whitespace()) {
                self.format = Some(if block[at] == b'[' {
                    Format::Array
                } else {
                    Format::Lines
                });
                self.pending.extend_from_slice(&block[at..n]);
                self.pending_end = self.pending.len();
                return Ok(());
            }
        }
    }

    fn read_lines(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        loop {
            buf.clear();
            buf.append(&mut self.pending);
            let target = self.chunk_bytes;
            buf.reserve((target + 65536).saturating_sub(buf.len()));
            // Fill up to the target size, straight into the buffer's spare capacity (no zeroing
            // for plain files: `read_to_end` reads into uninitialised memory where it can).
            let wanted = target.saturating_sub(buf.len()) as u64;
            // On an error, what was read stays in `buf`, for `break_off`.
            let n = (&mut self.reader).take(wanted).read_to_end(buf)?;
            if (n as u64) < wanted {
                self.done = true;
                return Ok(());
            }
            // Keep the partial last line for the next chunk.
            match memchr::memrchr(b'\n', buf) {
                Some(nl) => {
                    self.pending.extend_from_slice(&buf[nl + 1..]);
                    buf.truncate(nl + 1);
                    return Ok(());
                }
                // A single line longer than the chunk: read on until its end.
                None => {
                    if self.finish_long_line(buf)? {
                        return Ok(());
                    }
                    // Skipped for its length: the lines after it make the chunk.
                }
            }
        }
    }

    /// Reads on to the end of a line that did not fit in a chunk (`buf` holds its start);
    /// what follows it waits for the next chunk. A line that grows beyond the record cap is
    /// dropped and the rest of it read and thrown away block by block, so memory stays flat:
    /// then `buf` is left empty and `false` returned (at the end of the input, `buf` is empty
    /// and `true` returned).
    fn finish_long_line(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        let mut block = vec![0u8; BLOCK_BYTES];
        let mut skipping = false;
        loop {
            if !skipping && buf.len() > self.max_record_bytes {
                skipping = true;
                buf.clear();
                buf.shrink_to(self.chunk_bytes + 65536);
            }
            match self.reader.read(&mut block) {
                Ok(0) => {
                    self.done = true;
                    if skipping {
                        self.skipped_records += 1;
                    }
                    return Ok(true);
                }
                Ok(n) => match memchr::memchr(b'\n', &block[..n]) {
                    Some(nl) => {
                        self.pending.extend_from_slice(&block[nl + 1..n]);
                        if skipping {
                            self.skipped_records += 1;
                            return Ok(false);
                        }
                        buf.extend_from_slice(&block[..=nl]);
                        return Ok(true);
                    }
                    None if skipping => {}
                    None => buf.extend_from_slice(&block[..n]),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The next elements of a JSON array, one a line, about `chunk_bytes` of them.
    fn read_array(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        buf.reserve(self.chunk_bytes.min(1 << 20));
        loop {
            if self.pending_at == self.pending_end {
                // Zeroed once: readers handing out a few bytes at a time must not cost a block
                // of zeroing each.
                if self.pending.len() < BLOCK_BYTES {
                    self.pending.resize(BLOCK_BYTES, 0);
                }
                let n = loop {
                    match self.reader.read(&mut self.pending) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                };
                self.pending_at = 0;
                self.pending_end = n;
                if n == 0 {
                    self.array.finish(buf);
                    self.skipped_records += self.array.take_skipped();
                    self.done = true;
                    return Ok(());
                }
            }
            let input = &self.pending[self.pending_at..self.pending_end];
            let (used, full) = self
                .array
                .feed(input, buf, self.chunk_bytes, self.max_record_bytes);
            self.pending_at += used;
            self.skipped_records += self.array.take_skipped();
            if full {
                return Ok(());
            }
        }
    }
}
