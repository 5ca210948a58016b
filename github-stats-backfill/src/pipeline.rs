//! The reader and parser stages: reader threads (one per file being read, at most `jobs`),
//! `jobs` parser threads, results handed back in input order.
//!
//! A reader takes one of its tokens before each item it emits and the consumer returns it once
//! the item is consumed in order, so at most `jobs + 1` chunks per reader are in flight (read,
//! parsed, or waiting for an earlier chunk) whatever the speed of each stage. The threads are
//! plain threads, not tokio's blocking pool: a read stuck on a slow file must not keep the
//! process from exiting after Ctrl-C.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use github_stats_core::Event;
use github_stats_core::parse::{self, ParseStats};
use github_stats_core::source::file::EventFileReader;
use tokio_util::sync::CancellationToken;

/// What the pipeline yields, in input order.
#[derive(Debug)]
pub(crate) enum Item {
    /// A parsed chunk of a file.
    Chunk {
        file: usize,
        events: Vec<Event>,
        stats: ParseStats,
        bytes: u64,
    },
    /// The file was read to its end.
    FileDone { file: usize },
    /// The file could not be opened, read or decompressed (after the chunks read before).
    FileFailed { file: usize, error: String },
}

/// Where an item goes in the input order: its file, its place in the file, and the reader
/// whose token it holds.
#[derive(Debug, Clone, Copy)]
struct Key {
    file: usize,
    chunk: u64,
    reader: usize,
}

enum Work {
    Parse {
        key: Key,
        file: usize,
        data: Vec<u8>,
        /// Records the reader skipped before this chunk (too long, cut short): bad lines.
        skipped: u64,
        /// Where the buffer goes back to its reader once parsed, to be read into again.
        recycle: SyncSender<Vec<u8>>,
    },
    Pass(Key, Item),
}

/// The consumer's end.
pub(crate) struct Pipeline {
    rx: tokio::sync::mpsc::Receiver<(Key, Item)>,
    /// Each reader's token channel.
    tokens: Vec<SyncSender<()>>,
    waiting: BTreeMap<(usize, u64), (Key, Item)>,
    /// The next item wanted: file, chunk.
    next: (usize, u64),
}

impl Pipeline {
    /// The next item in input order; `None` when every file is done.
    pub(crate) async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some((key, item)) = self.waiting.remove(&self.next) {
                self.next = match item {
                    Item::Chunk { .. } => (key.file, key.chunk + 1),
                    Item::FileDone { .. } | Item::FileFailed { .. } => (key.file + 1, 0),
                };
                // Never blocks: a reader's tokens are only ever returned after being taken.
                let _ = self.tokens[key.reader].try_send(());
                return Some(item);
            }
            let (key, item) = self.rx.recv().await?;
            self.waiting.insert((key.file, key.chunk), (key, item));
        }
    }
}

/// Starts reading `files` with `jobs` parsers, and as many readers (at most one per file).
///
/// Readers take the next file not taken yet, so files are decompressed in parallel, and the
/// consumer gets them back in order. Each reader has its own tokens (`jobs + 1` items in flight):
/// the reader of the earliest unfinished file only ever waits for items of that file, which
/// the consumer takes as they come, so no reader can starve the one the consumer waits for.
pub(crate) fn start(
    files: Vec<PathBuf>,
    chunk_bytes: usize,
    jobs: usize,
    cancel: CancellationToken,
) -> Pipeline {
    let readers = jobs.min(files.len()).max(1);
    let per_reader = jobs + 1;
    let (work_tx, work_rx) = sync_channel::<Work>(jobs);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(readers * per_reader);

    for i in 0..jobs {
        let work_rx = Arc::clone(&work_rx);
        let out_tx = out_tx.clone();
        std::thread::Builder::new()
            .name(format!("backfill-parse-{i}"))
            .spawn(move || parser(&work_rx, &out_tx))
            .expect("cannot start a parser thread");
    }
    drop(out_tx);

    let files = Arc::new(files);
    let next_file = Arc::new(AtomicUsize::new(0));
    let mut tokens = Vec::with_capacity(readers);
    for reader_id in 0..readers {
        let (token_tx, token_rx) = sync_channel::<()>(per_reader);
        let (recycle_tx, recycle_rx) = sync_channel::<Vec<u8>>(per_reader);
        for _ in 0..per_reader {
            token_tx.try_send(()).expect("room for every token");
        }
        tokens.push(token_tx);
        let files = Arc::clone(&files);
        let next_file = Arc::clone(&next_file);
        let work_tx = work_tx.clone();
        let cancel = cancel.clone();
        std::thread::Builder::new()
            .name(format!("backfill-read-{reader_id}"))
            .spawn(move || {
                let mut emit = Emitter {
                    reader: reader_id,
                    tokens: &token_rx,
                    work: &work_tx,
                    cancel: &cancel,
                    recycle: recycle_tx,
                    recycled: &recycle_rx,
                };
                loop {
                    let file = next_file.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(file) else { return };
                    if !read_file(file, path, chunk_bytes, &mut emit) {
                        return;
                    }
                }
            })
            .expect("cannot start a reader thread");
    }

    Pipeline {
        rx: out_rx,
        tokens,
        waiting: BTreeMap::new(),
        next: (0, 0),
    }
}

/// A reader's sending end: takes one of its tokens, sends.
struct Emitter<'a> {
    reader: usize,
    tokens: &'a Receiver<()>,
    work: &'a SyncSender<Work>,
    cancel: &'a CancellationToken,
    /// Where parsers give back the buffers of parsed chunks (a clone goes with each chunk),
    /// and where the reader takes them to read into again.
    recycle: SyncSender<Vec<u8>>,
    recycled: &'a Receiver<Vec<u8>>,
}

impl Emitter<'_> {
    /// False when the consumer is gone or asked to stop.
    fn send(&mut self, file: usize, chunk: u64, make: impl FnOnce(Key) -> Work) -> bool {
        if self.cancel.is_cancelled() || self.tokens.recv().is_err() {
            return false;
        }
        let key = Key {
            file,
            chunk,
            reader: self.reader,
        };
        self.work.send(make(key)).is_ok()
    }
}

/// Reads one file into chunks; false when the pipeline stops.
fn read_file(file: usize, path: &Path, chunk_bytes: usize, emit: &mut Emitter<'_>) -> bool {
    let mut reader = match EventFileReader::open(path, chunk_bytes) {
        Ok(reader) => reader,
        Err(e) => {
            let error = e.to_string();
            return emit.send(file, 0, |key| {
                Work::Pass(key, Item::FileFailed { file, error })
            });
        }
    };
    let mut chunk = 0u64;
    loop {
        if emit.cancel.is_cancelled() {
            return false;
        }
        let buffer = emit.recycled.try_recv().unwrap_or_default();
        let read = reader.read_raw_chunk_into(buffer);
        let skipped = reader.take_skipped_records();
        match read {
            // Reading past the end yields nothing: the file is done.
            Ok(data) if data.is_empty() => {
                if skipped > 0 {
                    let mut stats = ParseStats::default();
                    stats.records = skipped;
                    stats.malformed = skipped;
                    let item = Item::Chunk {
                        file,
                        events: Vec::new(),
                        stats,
                        bytes: 0,
                    };
                    if !emit.send(file, chunk, |key| Work::Pass(key, item)) {
                        return false;
                    }
                    chunk += 1;
                }
                return emit.send(file, chunk, |key| Work::Pass(key, Item::FileDone { file }));
            }
            Ok(data) => {
                let recycle = emit.recycle.clone();
                let sent = emit.send(file, chunk, |key| Work::Parse {
                    key,
                    file,
                    data,
                    skipped,
                    recycle,
                });
                if !sent {
                    return false;
                }
                chunk += 1;
            }
            Err(e) => {
                let error = e.to_string();
                return emit.send(file, chunk, |key| {
                    Work::Pass(key, Item::FileFailed { file, error })
                });
            }
        }
    }
}

fn parser(work: &Mutex<Receiver<Work>>, out: &tokio::sync::mpsc::Sender<(Key, Item)>) {
    loop {
        let next = work.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(next) = next else { return };
        let result = match next {
            Work::Parse {
                key,
                file,
                data,
                skipped,
                recycle,
            } => {
                let mut stats = ParseStats::default();
                stats.records = skipped;
                stats.malformed = skipped;
                let mut events = Vec::new();
                // Chunks are JSON lines: a JSON array's reader hands out its elements as lines.
                parse::parse_json_lines(&data, &mut stats, &mut events);
                let bytes = data.len() as u64;
                // Events own their strings: the buffer is free. A full channel (the reader
                // has enough spare buffers) or a finished reader drops it.
                let _ = recycle.try_send(data);
                (
                    key,
                    Item::Chunk {
                        file,
                        events,
                        stats,
                        bytes,
                    },
                )
            }
            Work::Pass(key, item) => (key, item),
        };
        if out.blocking_send(result).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: u64) -> String {
        format!(
            r#"{{"id":"{id}","type":"WatchEvent","repo":{{"id":1,"name":"a/b"}},"payload":{{"action":"started"}},"created_at":"2020-01-01T00:00:00Z"}}"#
        )
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn items_come_back_in_file_and_chunk_order() {
        let dir = tempfile::tempdir().unwrap();
        // Files of very different sizes, so that readers finish out of order.
        let sizes = [3000u64, 10, 0, 2000, 1, 500];
        let mut files = Vec::new();
        let mut id = 0;
        for (i, n) in sizes.iter().enumerate() {
            let path = dir.path().join(format!("{i}.jsonl"));
            let text: String = (0..*n)
                .map(|_| {
                    id += 1;
                    line(id) + "\n"
                })
                .collect();
            std::fs::write(&path, text).unwrap();
            files.push(path);
        }
        files.insert(2, dir.path().join("missing.jsonl"));
        let mut pipeline = start(files.clone(), 4096, 3, CancellationToken::new());
        let mut ids = Vec::new();
        let mut ended = Vec::new();
        while let Some(item) = pipeline.next().await {
            match item {
                Item::Chunk { file, events, .. } => {
                    assert_eq!(file, ended.len(), "a chunk of the current file");
                    ids.extend(events.iter().map(|e| e.id));
                }
                Item::FileDone { file } | Item::FileFailed { file, .. } => {
                    assert_eq!(file, ended.len(), "files end in order");
                    ended.push(matches!(item, Item::FileDone { .. }));
                }
            }
        }
        assert_eq!(ended, [true, true, false, true, true, true, true]);
        assert_eq!(
            ids,
            (1..=id).collect::<Vec<_>>(),
            "every event, in input order"
        );
    }
}
