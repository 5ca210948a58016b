//! Saved event files: the poller's poll files (JSON arrays), GH Archive hours (JSON lines,
//! gzip), and either format plain or gzipped.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flate2::read::MultiGzDecoder;

use super::{EventBatch, EventSource, SourceError};
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

/// Expands `inputs` (files and directories, walked recursively) into event files in
/// chronological order. A named file is taken whatever its extension; in directories, only
/// event files (`.json`, `.jsonl` or `.ndjson`, each maybe `.gz`). Paths that do not exist
/// are returned as errors.
pub fn collect_event_files(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<SourceError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for input in inputs {
        match std::fs::metadata(input) {
            Ok(meta) if meta.is_dir() => walk(input, &mut files, &mut errors),
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

fn walk(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<SourceError>) {
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
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, files, errors),
            Ok(_) if is_event_file(&path) => files.push(path),
            _ => {}
        }
    }
}

/// Opens `path` for reading, decompressing gzip (detected by its magic bytes, not its name).
pub(crate) fn open_event_file(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic)?;
    let head = io::Cursor::new(magic[..n].to_vec());
    if n == 2 && magic == [0x1f, 0x8b] {
        // The decompressor reads its input in small pieces: buffer them.
        let compressed = head.chain(BufReader::with_capacity(1 << 20, file));
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(compressed),
        )))
    } else {
        // Callers read plain files in large requests: a buffer would only add a copy.
        Ok(Box::new(head.chain(file)))
    }
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

/// The longest record (a JSON line, or a whole JSON array) read by default: 16 MiB. A GitHub
/// event is a few kilobytes (the largest seen in GH Archive are under 1 MiB); a longer line is
/// damage or an attack (a small gzip file can expand to one line of gigabytes), and reading it
/// whole would take that much memory.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 16 << 20;

/// Reads one event file in chunks of whole lines, so that huge files are parsed as a stream.
/// JSON arrays are read whole (the poller's files are small).
///
/// Every record is bounded: a line longer than [`max_record_bytes`](Self::with_max_record_bytes)
/// is skipped without being held in memory, and counted as a bad line (see
/// [`take_overlong_lines`](Self::take_overlong_lines)); a JSON array longer than it is an error.
pub struct EventFileReader {
    path: PathBuf,
    reader: Box<dyn Read + Send>,
    pending: Vec<u8>,
    chunk_bytes: usize,
    max_record_bytes: usize,
    /// Lines skipped for their length and not yet reported.
    overlong_lines: u64,
    format: Option<Format>,
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
    /// Opens `path`, decompressing gzip (detected by its magic bytes, not its name).
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
            chunk_bytes: chunk_bytes.max(4096),
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            overlong_lines: 0,
            format: None,
            done: false,
        }
    }

    /// Sets the longest record read (at least 1 KiB; [`DEFAULT_MAX_RECORD_BYTES`] by default).
    pub fn with_max_record_bytes(mut self, max_record_bytes: usize) -> EventFileReader {
        self.max_record_bytes = max_record_bytes.max(1024);
        self
    }

    /// Reads the input as JSON lines whatever its first byte (GH Archive hours are never
    /// arrays: a stray `[` must not make the reader take the whole file as one record).
    pub fn json_lines(mut self) -> EventFileReader {
        self.format = Some(Format::Lines);
        self
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines skipped for being longer than the record cap since the last call. Callers of
    /// [`read_raw_chunk_into`](Self::read_raw_chunk_into) count them as bad lines;
    /// [`next_chunk`](Self::next_chunk) does so itself.
    pub fn take_overlong_lines(&mut self) -> u64 {
        std::mem::take(&mut self.overlong_lines)
    }

    /// Reads and parses the next chunk; `Ok(None)` after the last.
    pub fn next_chunk(&mut self) -> io::Result<Option<FileChunk>> {
        if self.done {
            return Ok(None);
        }
        let data = self.read_raw_chunk()?;
        let mut chunk = FileChunk {
            last: self.done,
            bytes: data.len() as u64,
            ..FileChunk::default()
        };
        let overlong = self.take_overlong_lines();
        chunk.stats.records += overlong;
        chunk.stats.malformed += overlong;
        match self.format {
            Some(Format::Array) => {
                parse::parse_document(&data, &mut chunk.stats, &mut chunk.events)
            }
            _ => parse::parse_json_lines(&data, &mut chunk.stats, &mut chunk.events),
        }
        Ok(Some(chunk))
    }

    /// The next chunk of raw bytes: whole lines for JSON lines, the whole file for an array.
    /// Callers that parse in parallel use this and [`parse::parse_json_lines`] themselves.
    pub fn read_raw_chunk(&mut self) -> io::Result<Vec<u8>> {
        self.read_raw_chunk_into(Vec::new())
    }

    /// [`EventFileReader::read_raw_chunk`] into `buf`, a buffer of an earlier chunk given back
    /// (its contents are dropped, its memory reused): a new buffer per chunk costs page faults
    /// and zeroing, about as much as reading the chunk. An empty chunk means the end.
    pub fn read_raw_chunk_into(&mut self, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
        loop {
            buf.clear();
            buf.append(&mut self.pending);
            let target = self.chunk_bytes;
            buf.reserve((target + 65536).saturating_sub(buf.len()));
            // Fill up to the target size, straight into the buffer's spare capacity (no zeroing
            // for plain files: `read_to_end` reads into uninitialised memory where it can).
            let wanted = target.saturating_sub(buf.len()) as u64;
            let eof = match (&mut self.reader).take(wanted).read_to_end(&mut buf) {
                Ok(n) => (n as u64) < wanted,
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            };
            if self.format.is_none() {
                let first = buf.iter().find(|b| !b.is_ascii_whitespace());
                self.format = Some(if first == Some(&b'[') {
                    Format::Array
                } else {
                    Format::Lines
                });
            }
            if self.format == Some(Format::Array) && !eof {
                // An array is parsed whole, up to the record cap.
                self.done = true;
                let room = (self.max_record_bytes + 1).saturating_sub(buf.len()) as u64;
                (&mut self.reader).take(room).read_to_end(&mut buf)?;
                if buf.len() > self.max_record_bytes {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "a JSON array longer than the {}-byte record cap",
                            self.max_record_bytes
                        ),
                    ));
                }
                return Ok(buf);
            } else if !eof {
                // Keep the partial last line for the next chunk.
                match memchr::memrchr(b'\n', &buf) {
                    Some(nl) => {
                        self.pending.extend_from_slice(&buf[nl + 1..]);
                        buf.truncate(nl + 1);
                        return Ok(buf);
                    }
                    // A single line longer than the chunk: read on until its end.
                    None => {
                        if self.finish_long_line(&mut buf)? {
                            return Ok(buf);
                        }
                        // Skipped for its length: the lines after it make the chunk.
                        continue;
                    }
                }
            }
            self.done = true;
            return Ok(buf);
        }
    }

    /// Reads on to the end of a line that did not fit in a chunk (`buf` holds its start);
    /// what follows it waits for the next chunk. A line that grows beyond the record cap is
    /// dropped and the rest of it read and thrown away block by block, so memory stays flat:
    /// then `buf` is left empty and `false` returned (at the end of the input, `buf` is empty
    /// and `true` returned).
    fn finish_long_line(&mut self, buf: &mut Vec<u8>) -> io::Result<bool> {
        let mut block = vec![0u8; 65536];
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
                        self.overlong_lines += 1;
                    }
                    return Ok(true);
                }
                Ok(n) => match memchr::memchr(b'\n', &block[..n]) {
                    Some(nl) => {
                        self.pending.extend_from_slice(&block[nl + 1..n]);
                        if skipping {
                            self.overlong_lines += 1;
                            return Ok(false);
                        }
                        buf.extend_from_slice(&block[..=nl]);
                        return Ok(true);
                    }
                    None if skipping => {}
                    None => buf.extend_from_slice(&block[..n]),
                },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
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
            overlong += reader.take_overlong_lines();
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

    #[test]
    fn a_json_array_longer_than_the_record_cap_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("poll.json");
        let element = r#"{"id":"1","type":"PushEvent","payload":{}}"#;
        let text = format!("[{}]", vec![element; 100_000].join(","));
        std::fs::write(&path, &text).unwrap();
        let mut reader = EventFileReader::open(&path, 4096)
            .unwrap()
            .with_max_record_bytes(1 << 20);
        let err = reader.next_chunk().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("record cap"), "{err}");
        let mut reader = EventFileReader::open(&path, 4096).unwrap();
        let chunk = reader.next_chunk().unwrap().unwrap();
        assert_eq!(chunk.stats.other_types, 100_000, "under the default cap");
    }
}
