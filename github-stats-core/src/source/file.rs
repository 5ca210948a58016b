//! Saved event files: the poller's poll files (JSON arrays), GH Archive hours (JSON lines,
//! gzip), and either format plain or gzipped.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flate2::bufread::GzDecoder;

use super::{Checkpoint, EventBatch, EventSource, SourceError};
use crate::parse::{self, ParseStats};

/// Bytes of JSON lines parsed per chunk: large enough to amortise the hand-over between
/// threads, small enough that a chunk is still in the cache when a parser reads it (on the
/// bench machine, 1 MiB read and parsed a 562 MB file in 0.13 s where 16 MiB took 0.22 s).
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// The sort key of an event file: the time in its name (poll files
/// `YYYY-MM-DDTHH-MM-SS.json`, GH Archive `YYYY-MM-DD-H.json.gz`), then the name. Files without
/// a time in their name sort after those with one.
pub(crate) fn file_order_key(path: &Path) -> (bool, [u32; 6], String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match time_in_name(&name) {
        Some(t) => (false, t, name),
        None => (true, [0; 6], name),
    }
}

/// `[year, month, day, hour, minute, second]` from a leading `YYYY-MM-DD[-H|THH-MM-SS]`.
fn time_in_name(name: &str) -> Option<[u32; 6]> {
    let mut parts = [0u32; 6];
    let mut rest = name;
    for (i, part) in parts.iter_mut().enumerate() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return if i >= 3 { Some(parts) } else { None };
        }
        *part = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        match rest.as_bytes().first() {
            Some(b'-') | Some(b'T') | Some(b':') if i < 5 => rest = &rest[1..],
            _ => return if i >= 2 { Some(parts) } else { None },
        }
    }
    Some(parts)
}

/// Whether `path` names a file this source reads (`.json`, `.jsonl`, `.ndjson`, optionally
/// `.gz`).
pub(crate) fn is_event_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".json") || name.ends_with(".jsonl") || name.ends_with(".ndjson")
}

/// Expands `inputs` (files and directories, walked recursively, following symbolic links) into
/// event files in chronological order. A named file is taken whatever its extension and type (a
/// named pipe, `<(zcat …)`, is read as asked); in directories, only regular event files (`.json`,
/// `.jsonl` or `.ndjson`, each maybe `.gz`). Returned as errors, so the caller can name them:
/// paths that do not exist or cannot be listed, event files in directories that are not regular
/// files (nobody writes a forgotten FIFO: reading it would block forever; a device may never
/// end), and directory symbolic links that lead back to a directory being walked (a loop).
pub fn collect_event_files(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut walked = HashSet::new();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(meta) if meta.is_dir() => {
                let mut ancestors = Vec::new();
                walk(input, &mut ancestors, &mut walked, &mut files, &mut errors);
            }
            Ok(_) => files.push(input.clone()),
            Err(source) => errors.push(SourceError::File {
                path: input.clone(),
                source,
            }),
        }
    }
    files.sort_by_cached_key(|p| (file_order_key(p), p.clone()));
    files.dedup();
    (files, errors)
}

fn not_regular(path: &Path) -> SourceError {
    SourceError::File {
        path: path.to_path_buf(),
        source: not_regular_error(),
    }
}

fn not_regular_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (a FIFO, socket or device), skipped",
    )
}

/// Walks `dir`. `ancestors` are the canonical paths of the directories being walked (a link to
/// one of them is a loop); `walked` every directory walked already (a second link to one adds
/// nothing).
fn walk(
    dir: &Path,
    ancestors: &mut Vec<PathBuf>,
    walked: &mut HashSet<PathBuf>,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<SourceError>,
) {
    let canonical = match std::fs::canonicalize(dir) {
        Ok(canonical) => canonical,
        Err(source) => {
            errors.push(SourceError::File {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    if ancestors.contains(&canonical) {
        errors.push(SourceError::File {
            path: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a directory symbolic link loop (back to {}), not followed",
                    canonical.display()
                ),
            ),
        });
        return;
    }
    if !walked.insert(canonical.clone()) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            errors.push(SourceError::File {
                path: dir.to_path_buf(),
                source,
            });
            return;
        }
    };
    ancestors.push(canonical);
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows symbolic links: a linked directory is walked, a linked file read.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, ancestors, walked, files, errors),
            Ok(meta) if meta.is_file() && is_event_file(&path) => files.push(path),
            Ok(_) if is_event_file(&path) => errors.push(not_regular(&path)),
            // A dangling link, or a link loop, named as an event file.
            Err(source) if is_event_file(&path) => errors.push(SourceError::File { path, source }),
            _ => {}
        }
    }
    ancestors.pop();
}

/// Opens `path` if it is a regular file (after symbolic links). Anything else is refused before
/// it is opened: opening a FIFO blocks until a writer comes, and a device may never end. The
/// opened file is checked again, in case `path` changed in between.
pub(crate) fn open_regular_file(path: &Path) -> io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular_error());
    }
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular_error());
    }
    Ok(file)
}

/// Opens `path` for reading, decompressing gzip (detected by its magic bytes). A file named
/// `.gz` that is not gzip is an error, not text: it is damage (or a wrong name), and reading it
/// as JSON would only report its bytes as bad lines.
pub(crate) fn open_event_file(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic)?;
    let head = io::Cursor::new(magic[..n].to_vec());
    if n == 2 && magic == GZIP_MAGIC {
        // The decompressor reads its input in small pieces: buffer them.
        let compressed = BufReader::with_capacity(1 << 20, head.chain(file));
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            GzipMembers::new(compressed),
        )))
    } else if has_gz_extension(path) {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "named .gz but not gzip (no gzip header)",
        ))
    } else {
        // Callers read plain files in large requests: a buffer would only add a copy.
        Ok(Box::new(head.chain(file)))
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Every member of a gzip file, one after the other, as one stream (GH Archive's hours are
/// several members; `MultiGzDecoder` reads them too, but cannot say what follows the last).
/// After the last member only the end of the input is whole: zero padding (what a copy tool
/// or a disk can leave; GNU `zcat` skips it silently) is an error naming its length, and
/// anything else is read as a next member, whose bad header is the error. Either error comes
/// only after every byte of the members before it was handed out, so a reader keeps them all.
pub(crate) struct GzipMembers<R: BufRead> {
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzipMembers<R> {
    /// Reads `compressed`, which starts with a gzip header.
    pub(crate) fn new(compressed: R) -> GzipMembers<R> {
        GzipMembers {
            member: Some(GzDecoder::new(compressed)),
        }
    }
}

impl<R: BufRead> Read for GzipMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(member) = self.member.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            // The member ended with a whole trailer: what follows it?
            let mut input = self
                .member
                .take()
                .expect("a member is being read")
                .into_inner();
            let next = input.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next[0] != 0 {
                self.member = Some(GzDecoder::new(input));
                continue;
            }
            let (zeros, more) = skip_zeros(&mut input)?;
            let message = if more {
                format!(
                    "{zeros} bytes of zero padding, then bytes that are not gzip, after the last \
                     gzip member"
                )
            } else {
                format!("{zeros} bytes of zero padding after the last gzip member")
            };
            return Err(io::Error::new(io::ErrorKind::InvalidData, message));
        }
    }
}

/// Reads past the zero bytes at `input`'s position: how many, and whether another byte follows.
fn skip_zeros(input: &mut impl BufRead) -> io::Result<(u64, bool)> {
    let mut zeros = 0u64;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok((zeros, false));
        }
        let run = available.iter().take_while(|&&b| b == 0).count();
        let more = run < available.len();
        input.consume(run);
        zeros += run as u64;
        if more {
            return Ok((zeros, true));
        }
    }
}

fn has_gz_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

pub(crate) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The longest record (a JSON line, or an element of a JSON array) read by default: 16 MiB. A
/// GitHub event is a few kilobytes (the largest seen in GH Archive are under 1 MiB); a longer
/// record is damage or an attack (a small gzip file can expand to one line of gigabytes), and
/// reading it whole would take that much memory.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;

/// Bytes read at a time while scanning a JSON array, or skipping an overlong line.
const BLOCK_BYTES: usize = 64 * 1024;

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
enum Format {
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

/// Splits a JSON array into its elements as its bytes stream by, without parsing them: it
/// follows strings (and their escapes) and nesting depth to find the commas and the bracket
/// that end elements, and writes each element out as one line (a line break between tokens
/// becomes a space) for the JSON lines parser. It holds nothing itself: an element goes straight
/// to the output, and one growing past the record cap is taken out again and the rest of it
/// skipped. Each element is then judged by the parser alone: the splitter is lenient about
/// what lies between elements (stray commas), and counts as one bad record an element cut
/// short by the end of the input, or anything but whitespace or another array after the end.
#[derive(Debug, Default)]
struct ArraySplitter {
    state: SplitState,
    /// Nesting depth inside the current element.
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The current element outgrew the cap: its bytes are dropped until its end.
    skipping: bool,
    /// Where the current element starts in the output.
    start: usize,
    skipped: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum SplitState {
    /// Before the opening bracket.
    #[default]
    Before,
    /// Inside the array, between elements.
    Between,
    /// Inside an element.
    Element,
    /// After the closing bracket.
    After,
    /// After something that is neither whitespace nor an array, past the end: ignored.
    Trailing,
}

impl ArraySplitter {
    /// Splits `input`, appending elements to `out`. Stops after an element once `out` holds
    /// `target` bytes; returns the bytes of `input` consumed, and whether it stopped so (`out`
    /// then ends with a whole element).
    fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        target: usize,
        cap: usize,
    ) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                SplitState::Before | SplitState::After => {
                    if b == b'[' {
                        self.state = SplitState::Between;
                    } else if !b.is_ascii_whitespace() {
                        // Only whitespace or another array may follow an array.
                        self.skipped += 1;
                        self.state = SplitState::Trailing;
                    }
                    i += 1;
                }
                SplitState::Trailing => return (input.len(), false),
                SplitState::Between => {
                    if b == b']' {
                        self.state = SplitState::After;
                    } else if !(b.is_ascii_whitespace() || b == b',') {
                        self.state = SplitState::Element;
                        self.depth = 0;
                        self.in_string = false;
                        self.escaped = false;
                        self.skipping = false;
                        self.start = out.len();
                        continue;
                    }
                    i += 1;
                }
                SplitState::Element => {
                    if self.in_string {
                        // Copy the run up to the next quote, escape or line break at once.
                        let run = if self.escaped {
                            self.escaped = false;
                            1
                        } else {
                            match memchr::memchr3(b'"', b'\\', b'\n', &input[i..]) {
                                None => input.len() - i,
                                Some(0) => {
                                    match b {
                                        b'"' => self.in_string = false,
                                        b'\\' => self.escaped = true,
                                        _ => {}
                                    }
                                    1
                                }
                                Some(n) => n,
                            }
                        };
                        self.emit(&input[i..i + run], out, cap);
                        i += run;
                        continue;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                        b'}' | b']' if self.depth > 0 => self.depth -= 1,
                        b',' | b']' if self.depth == 0 => {
                            self.end_element(out);
                            self.state = if b == b']' {
                                SplitState::After
                            } else {
                                SplitState::Between
                            };
                            i += 1;
                            if out.len() >= target {
                                return (i, true);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.emit(&input[i..=i], out, cap);
                    i += 1;
                }
            }
        }
        (input.len(), false)
    }

    /// Appends element bytes to `out`, a line break as a space (or, inside a string, where it
    /// is not allowed, as a control character that keeps the element invalid), unless the
    /// element is being skipped or now outgrows `cap`.
    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>, cap: usize) {
        if self.skipping {
            return;
        }
        if out.len() - self.start + bytes.len() > cap {
            out.truncate(self.start);
            self.skipping = true;
            return;
        }
        let at = out.len();
        out.extend_from_slice(bytes);
        if !bytes.contains(&b'\n') {
            return;
        }
        let in_string = self.in_string;
        for byte in &mut out[at..] {
            if *byte == b'\n' {
                *byte = if in_string { 0x01 } else { b' ' };
            }
        }
    }

    fn end_element(&mut self, out: &mut Vec<u8>) {
        if self.skipping {
            self.skipped += 1;
            self.skipping = false;
        } else if out[self.start..].trim_ascii().is_empty() {
            out.truncate(self.start);
        } else {
            out.push(b'\n');
        }
    }

    /// The end of the input: an element still open (inside a string or a nested value) was cut
    /// short and is a bad record; a whole one missing only its closing bracket is kept.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state != SplitState::Element {
            return;
        }
        self.state = SplitState::After;
        if self.in_string || self.depth > 0 {
            if !self.skipping {
                out.truncate(self.start);
            }
            self.skipping = false;
            self.skipped += 1;
        } else {
            self.end_element(out);
        }
    }

    fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }
}

/// An [`EventSource`] over saved files, read in [chronological order](collect_event_files).
/// A file that cannot be read is returned as an error once, then skipped.
pub struct FileSource {
    state: Arc<Mutex<FileSourceState>>,
    chunk_bytes: usize,
}

struct FileSourceState {
    queue: std::collections::VecDeque<PathBuf>,
    current: Option<EventFileReader>,
}

impl FileSource {
    /// A source over these files (already expanded; see [`collect_event_files`]).
    pub fn new(files: Vec<PathBuf>) -> FileSource {
        FileSource::with_chunk_bytes(files, DEFAULT_CHUNK_BYTES)
    }

    /// Like [`FileSource::new`] with the chunk size for JSON lines.
    pub fn with_chunk_bytes(files: Vec<PathBuf>, chunk_bytes: usize) -> FileSource {
        FileSource {
            state: Arc::new(Mutex::new(FileSourceState {
                queue: files.into(),
                current: None,
            })),
            chunk_bytes,
        }
    }

    fn next_blocking(
        state: &Mutex<FileSourceState>,
        chunk_bytes: usize,
    ) -> Result<Option<EventBatch>, SourceError> {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.current.is_none() {
                let Some(path) = state.queue.pop_front() else {
                    return Ok(None);
                };
                match EventFileReader::open(&path, chunk_bytes) {
                    Ok(reader) => state.current = Some(reader),
                    Err(source) => return Err(SourceError::File { path, source }),
                }
            }
            let reader = state.current.as_mut().expect("a current file");
            let path = reader.path().to_path_buf();
            match reader.next_chunk() {
                Ok(Some(chunk)) => {
                    if chunk.last {
                        state.current = None;
                    }
                    return Ok(Some(EventBatch {
                        events: chunk.events,
                        stats: chunk.stats,
                        origin: path.display().to_string(),
                        bytes: chunk.bytes,
                        completes_origin: chunk.last,
                        checkpoint: Checkpoint::none(),
                        records: Vec::new(),
                    }));
                }
                Ok(None) => state.current = None,
                Err(source) => {
                    state.current = None;
                    return Err(SourceError::File { path, source });
                }
            }
        }
    }
}

#[async_trait]
impl EventSource for FileSource {
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        // Reading and parsing are CPU and disk work: keep them off the async workers.
        let state = Arc::clone(&self.state);
        let chunk_bytes = self.chunk_bytes;
        tokio::task::spawn_blocking(move || FileSource::next_blocking(&state, chunk_bytes))
            .await
            .map_err(|e| SourceError::Remote(format!("file reader task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_their_time() {
        let mut names: Vec<PathBuf> = [
            "2015-01-01-12.json.gz",
            "2015-01-01-2.json.gz",
            "notes.json",
            "2024-03-05T10-00-00.json",
            "2015-01-01-0.json.gz",
            "2024-03-05T09-59-59.json",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        names.sort_by_cached_key(|p| file_order_key(p));
        let sorted: Vec<_> = names.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(
            sorted,
            [
                "2015-01-01-0.json.gz",
                "2015-01-01-2.json.gz",
                "2015-01-01-12.json.gz",
                "2024-03-05T09-59-59.json",
                "2024-03-05T10-00-00.json",
                "notes.json",
            ]
        );
    }

    #[test]
    fn chunks_split_on_line_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.jsonl");
        let line = r#"{"id":"1","type":"PushEvent","payload":{}}"#;
        let text: String = (0..1000).map(|_| format!("{line}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let mut reader = EventFileReader::open(&path, 4096).unwrap();
        let mut stats = ParseStats::default();
        let mut chunks = 0;
        while let Some(chunk) = reader.next_chunk().unwrap() {
            stats.merge(&chunk.stats);
            chunks += 1;
        }
        assert!(chunks > 5);
        assert_eq!(stats.other_types, 1000);
        assert_eq!(stats.malformed, 0);
    }

    /// Chunks read into reused buffers, lines longer than a chunk, a last line without a
    /// newline, plain and gzip: the chunks put together are the file, each ends a line.
    #[test]
    fn reused_buffers_and_long_lines_give_back_the_file_line_by_line() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..300 {
            // Short lines, and every 37th one ten times the chunk size.
            let pad = if i % 37 == 0 { 50_000 } else { i };
            text.push_str(&format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(pad)));
        }
        text.push_str("{\"last\":true}");
        let plain = dir.path().join("lines.jsonl");
        std::fs::write(&plain, &text).unwrap();
        let gzip = dir.path().join("lines.jsonl.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gzip, encoder.finish().unwrap()).unwrap();

        for path in [plain, gzip] {
            let mut reader = EventFileReader::open(&path, 4096).unwrap();
            let mut whole = Vec::new();
            let mut buffer = Vec::new();
            let mut chunks = 0;
            loop {
                let chunk = reader
                    .read_raw_chunk_into(std::mem::take(&mut buffer))
                    .unwrap();
                if chunk.is_empty() {
                    break;
                }
                chunks += 1;
                assert!(
                    chunk.ends_with(b"\n") || chunk.ends_with(b"{\"last\":true}"),
                    "{}: a chunk ends a line",
                    path.display()
                );
                whole.extend_from_slice(&chunk);
                buffer = chunk;
            }
            assert_eq!(whole, text.as_bytes(), "{}", path.display());
            assert!(chunks > 10, "{}: {chunks} chunks", path.display());
        }
    }

    /// A gzip bomb: a few kilobytes that expand to one 256 MiB line without a newline inside.
    /// The line is counted as a bad line and skipped; no buffer ever holds it, and the lines
    /// around it are read.
    #[test]
    fn a_line_longer_than_the_record_cap_is_skipped_with_flat_memory() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let kept = r#"{"id":"7","type":"WatchEvent","repo":{"id":1,"name":"a/b","url":"u"},"payload":{"action":"started"},"public":true,"created_at":"2026-11-30T10:00:00Z"}"#;
        let path = dir.path().join("bomb.json.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        writeln!(encoder, "{kept}").unwrap();
        encoder.write_all(b"{\"id\":\"8\",\"pad\":\"").unwrap();
        let block = vec![b'x'; 1 << 20];
        for _ in 0..256 {
            encoder.write_all(&block).unwrap();
        }
        encoder.write_all(b"\"}\n").unwrap();
        writeln!(encoder, "{}", kept.replace("\"7\"", "\"9\"")).unwrap();
        // The bomb again, as the last line, without a newline.
        for _ in 0..64 {
            encoder.write_all(&block).unwrap();
        }
        let compressed = encoder.finish().unwrap();
        assert!(compressed.len() < 1 << 20, "{} bytes", compressed.len());
        std::fs::write(&path, compressed).unwrap();

        let cap = 1 << 20;
        let mut reader = EventFileReader::open(&path, 64 * 1024)
            .unwrap()
            .with_max_record_bytes(cap);
        let mut stats = ParseStats::default();
        let mut ids = Vec::new();
        while let Some(chunk) = reader.next_chunk().unwrap() {
            stats.merge(&chunk.stats);
            ids.extend(chunk.events.iter().map(|e| e.id));
        }
        assert_eq!(ids, [7, 9]);
        assert_eq!(stats.malformed, 2, "{stats:?}");
        assert_eq!(stats.records, 4, "{stats:?}");

        // The raw interface (the backfill's) never hands out or keeps a buffer near the line's
        // size, and reports the skipped lines.
        let mut reader = EventFileReader::open(&path, 64 * 1024)
            .unwrap()
            .with_max_record_bytes(cap);
        let mut overlong = 0;
        let mut lines = 0;
        loop {
            let chunk = reader.read_raw_chunk().unwrap();
            overlong += reader.take_skipped_records();
            assert!(
                chunk.capacity() <= 2 * cap,
                "a chunk of {} bytes",
                chunk.capacity()
            );
            if chunk.is_empty() {
                break;
            }
            lines += chunk.iter().filter(|&&b| b == b'\n').count();
        }
        assert_eq!((lines, overlong), (2, 2));
    }

    /// Reads `text` (through a reader handing out a few bytes at a time, so that every
    /// boundary falls everywhere) and returns the chunks' lines, the stats, and the largest
    /// chunk capacity seen.
    fn read_all(text: &[u8], chunk: usize, cap: usize) -> (Vec<Vec<u8>>, ParseStats, usize) {
        struct Trickle(io::Cursor<Vec<u8>>, usize);
        impl Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 = self.1 % 7 + 1;
                let n = buf.len().min(self.1);
                self.0.read(&mut buf[..n])
            }
        }
        let input = Box::new(Trickle(io::Cursor::new(text.to_vec()), 0));
        let mut reader = EventFileReader::from_reader("t", input, chunk).with_max_record_bytes(cap);
        let mut lines = Vec::new();
        let mut stats = ParseStats::default();
        let mut largest = 0;
        loop {
            let data = reader.read_raw_chunk().unwrap();
            let skipped = reader.take_skipped_records();
            stats.records += skipped;
            stats.malformed += skipped;
            largest = largest.max(data.capacity());
            if data.is_empty() {
                break;
            }
            assert!(data.ends_with(b"\n"), "a chunk of an array ends an element");
            parse::parse_json_lines(&data, &mut stats, &mut Vec::new());
            lines.extend(
                data.split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        (lines, stats, largest)
    }

    #[test]
    fn a_json_array_is_read_element_by_element() {
        let element = r#"{"id":"1","type":"PushEvent","payload":{"s":"a, b ] } \" \\"}}"#;
        let text = format!("[{}]", vec![element; 100_000].join(","));
        let mut reader = EventFileReader::from_reader(
            "poll.json",
            Box::new(io::Cursor::new(text.clone().into_bytes())),
            64 * 1024,
        )
        .with_max_record_bytes(1 << 20);
        let mut stats = ParseStats::default();
        let mut chunks = 0;
        while let Some(chunk) = reader.next_chunk().unwrap() {
            assert!(chunk.bytes < 2 * 64 * 1024, "{} bytes", chunk.bytes);
            stats.merge(&chunk.stats);
            chunks += 1;
        }
        assert!(chunks > 50, "{chunks} chunks");
        assert_eq!((stats.records, stats.other_types), (100_000, 100_000));
        // Elements come out whole and in order, whatever the boundaries of the reads.
        let (lines, _, _) = read_all(&text.as_bytes()[..5000], 4096, 1024);
        assert!(lines.len() > 50);
        for line in &lines[..lines.len() - 1] {
            assert_eq!(line, element.as_bytes());
        }
    }

    /// An element over the cap is one bad record, skipped without being held; one cut short by
    /// the end of the file too; the others are read, in arrays pretty-printed or not.
    #[test]
    fn array_elements_over_the_cap_or_cut_short_are_bad_records() {
        let kept = |id: u64| {
            format!(
                "{{\n  \"id\": \"{id}\",\n  \"type\": \"WatchEvent\",\n  \"repo\": {{\"id\": 1, \"name\": \"a/b\"}},\n  \"payload\": {{\"action\": \"started\"}},\n  \"created_at\": \"2026-11-30T10:00:00Z\"\n}}"
            )
        };
        let huge = format!("{{\"id\":\"8\",\"pad\":[\"{}\"]}}", "x".repeat(200_000));
        let text = format!(
            "  [\n{},\n{huge},\n{}\n,\n[1,{{\"a\":[]}}],\n{}",
            kept(7),
            kept(9),
            &kept(10)[..40]
        );
        let (lines, stats, largest) = read_all(text.as_bytes(), 4096, 16 * 1024);
        let ids: Vec<u64> = lines
            .iter()
            .filter_map(|l| match parse::parse_record(l) {
                parse::RecordOutcome::Kept(e) => Some(e.id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [7, 9]);
        // Kept 7 and 9; the huge element, the nested array and the cut one are bad.
        assert_eq!((stats.records, stats.malformed), (5, 3), "{stats:?}");
        assert!(largest < 4096 + 2 * 16 * 1024, "a chunk of {largest} bytes");
    }

    #[test]
    fn what_follows_an_array_is_one_bad_record_unless_it_is_another_array() {
        let e = r#"{"id":"1","type":"PushEvent"}"#;
        let (lines, stats, _) = read_all(format!("[{e}] \n [{e},{e}]\n").as_bytes(), 4096, 1024);
        assert_eq!((lines.len(), stats.malformed), (3, 0));
        let (lines, stats, _) = read_all(format!("[{e}] garbage [{e}]").as_bytes(), 4096, 1024);
        assert_eq!((lines.len(), stats.malformed, stats.records), (1, 1, 2));
        let (lines, stats, _) = read_all(b"[ ]", 4096, 1024);
        assert_eq!((lines.len(), stats.records), (0, 0));
        // A line break inside a string is not JSON: the element is never kept.
        let e = r#"{"id":"1","type":"WatchEvent","repo":{"id":1,"name":"a/
b"},"payload":{"action":"started"},"created_at":"2026-11-30T10:00:00Z"}"#;
        let (lines, stats, _) = read_all(format!("[{e}]").as_bytes(), 4096, 1024);
        assert_eq!((lines.len(), stats.records, stats.kept_total()), (1, 1, 0));
        let (_, stats, _) = read_all(format!("[{}]", e.replace('\n', "")).as_bytes(), 4096, 1024);
        assert_eq!(stats.kept_total(), 1);
    }
}
