//! The reader and parser stages: one reader thread, `jobs` parser threads, results handed
//! back in input order.
//!
//! The reader takes a token before each item it emits and the consumer returns it once the item
//! is consumed in order, so at most `2 * jobs + 2` chunks are in flight (read, parsed, or
//! waiting for an earlier chunk) whatever the speed of each stage. The threads are plain
//! threads, not tokio's blocking pool: a read stuck on a slow file must not keep the process
//! from exiting after Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;
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

enum Work {
    Parse {
        seq: u64,
        file: usize,
        data: Vec<u8>,
        array: bool,
    },
    Pass(u64, Item),
}

/// The consumer's end.
pub(crate) struct Pipeline {
    rx: tokio::sync::mpsc::Receiver<(u64, Item)>,
    tokens: SyncSender<()>,
    waiting: BTreeMap<u64, Item>,
    next_seq: u64,
}

impl Pipeline {
    /// The next item in input order; `None` when every file is done.
    pub(crate) async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.waiting.remove(&self.next_seq) {
                self.next_seq += 1;
                // Never blocks: tokens are only ever returned after being taken.
                let _ = self.tokens.try_send(());
                return Some(item);
            }
            let (seq, item) = self.rx.recv().await?;
            self.waiting.insert(seq, item);
        }
    }
}

/// Starts reading `files` in order with `jobs` parsers.
pub(crate) fn start(
    files: Vec<PathBuf>,
    chunk_bytes: usize,
    jobs: usize,
    cancel: CancellationToken,
) -> Pipeline {
    let in_flight = 2 * jobs + 2;
    let (token_tx, token_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        token_tx.try_send(()).expect("room for every token");
    }
    let (work_tx, work_rx) = sync_channel::<Work>(jobs);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (out_tx, out_rx) = tokio::sync::mpsc::channel(in_flight);

    for i in 0..jobs {
        let work_rx = Arc::clone(&work_rx);
        let out_tx = out_tx.clone();
        std::thread::Builder::new()
            .name(format!("backfill-parse-{i}"))
            .spawn(move || parser(&work_rx, &out_tx))
            .expect("cannot start a parser thread");
    }
    drop(out_tx);
    std::thread::Builder::new()
        .name("backfill-read".into())
        .spawn(move || reader(&files, chunk_bytes, &token_rx, &work_tx, &cancel))
        .expect("cannot start the reader thread");

    Pipeline {
        rx: out_rx,
        tokens: token_tx,
        waiting: BTreeMap::new(),
        next_seq: 0,
    }
}

/// The reader's sending end: takes a token, numbers the item, sends it.
struct Emitter<'a> {
    seq: u64,
    tokens: &'a Receiver<()>,
    work: &'a SyncSender<Work>,
    cancel: &'a CancellationToken,
}

impl Emitter<'_> {
    /// False when the consumer is gone or asked to stop.
    fn send(&mut self, make: impl FnOnce(u64) -> Work) -> bool {
        if self.cancel.is_cancelled() || self.tokens.recv().is_err() {
            return false;
        }
        let ok = self.work.send(make(self.seq)).is_ok();
        self.seq += 1;
        ok
    }
}

fn reader(
    files: &[PathBuf],
    chunk_bytes: usize,
    tokens: &Receiver<()>,
    work: &SyncSender<Work>,
    cancel: &CancellationToken,
) {
    let mut emit = Emitter {
        seq: 0,
        tokens,
        work,
        cancel,
    };
    for (file, path) in files.iter().enumerate() {
        let mut reader = match EventFileReader::open(path, chunk_bytes) {
            Ok(reader) => reader,
            Err(e) => {
                let error = e.to_string();
                if !emit.send(|seq| Work::Pass(seq, Item::FileFailed { file, error })) {
                    return;
                }
                continue;
            }
        };
        let mut first = true;
        loop {
            if cancel.is_cancelled() {
                return;
            }
            let sent = match reader.read_raw_chunk() {
                // Reading past the end yields nothing: the file is done.
                Ok(data) if data.is_empty() => {
                    if !emit.send(|seq| Work::Pass(seq, Item::FileDone { file })) {
                        return;
                    }
                    break;
                }
                Ok(data) => {
                    // The format is settled by the first chunk, as `EventFileReader` does: an
                    // array is read whole.
                    let array = first && data.trim_ascii_start().first() == Some(&b'[');
                    first = false;
                    emit.send(|seq| Work::Parse {
                        seq,
                        file,
                        data,
                        array,
                    })
                }
                Err(e) => {
                    let error = e.to_string();
                    if !emit.send(|seq| Work::Pass(seq, Item::FileFailed { file, error })) {
                        return;
                    }
                    break;
                }
            };
            if !sent {
                return;
            }
        }
    }
}

fn parser(work: &Mutex<Receiver<Work>>, out: &tokio::sync::mpsc::Sender<(u64, Item)>) {
    loop {
        let next = work.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(next) = next else { return };
        let result = match next {
            Work::Parse {
                seq,
                file,
                data,
                array,
            } => {
                let mut stats = ParseStats::default();
                let mut events = Vec::new();
                if array {
                    parse::parse_document(&data, &mut stats, &mut events);
                } else {
                    parse::parse_json_lines(&data, &mut stats, &mut events);
                }
                (
                    seq,
                    Item::Chunk {
                        file,
                        events,
                        stats,
                        bytes: data.len() as u64,
                    },
                )
            }
            Work::Pass(seq, item) => (seq, item),
        };
        if out.blocking_send(result).is_err() {
            return;
        }
    }
}
