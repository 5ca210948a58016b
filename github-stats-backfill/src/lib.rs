//! `github-stats-backfill`: imports saved GitHub event files (the poller's poll files, GH
//! Archive hours) into a github-stats store.
//!
//! The binary is a thin shell around [`run`]: it parses the command line ([`cli`]), sets up
//! logging and Ctrl-C, and prints the [`Summary`]. Tests call [`run`] in process.
//!
//! # How it goes fast
//!
//! Reader threads read files in chunks of whole lines
//! ([`EventFileReader::read_raw_chunk`](github_stats_core::source::file::EventFileReader::read_raw_chunk),
//! gzip decompressed on the way), several files at once; `jobs` parser threads parse chunks in
//! parallel (dropped event types are recognised without a JSON parse); the parsed chunks are put
//! back in chronological order and handed, in batches of `--batch-size`, to core's
//! [`Ingest`] loop (the server's), which inserts one batch while the
//! next fills. A bounded number of chunks and batches is in flight, so memory stays flat
//! whatever the input size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use github_stats_core::source::file::{DEFAULT_CHUNK_BYTES, collect_event_files};
use github_stats_core::source::{EventBatch, EventSource, SourceError};
use github_stats_core::{
    ClickHouseStore, Event, EventStore, Ingest, IngestConfig, IngestHandle, IngestReport,
    IngestStatus, ParseStats, SharedStore,
};
use tokio_util::sync::CancellationToken;

mod archive;
pub mod cli;
mod pipeline;
mod progress;
mod summary;

pub use archive::ArchiveImport;
pub use github_stats_core::StoreConfig;
pub use summary::{ArchiveSummary, BadRecords, FileFailure, Summary};

/// What to import, where, and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// Files and directories (walked recursively).
    pub inputs: Vec<PathBuf>,
    /// Parse and report, write nothing.
    pub dry_run: bool,
    /// ClickHouse: correct the count tables after the import
    /// ([`ClickHouseStore::recount`]).
    pub recount: bool,
    /// The store (the memory store is written without a sync per batch, and synced at the end).
    pub store: StoreConfig,
    /// Kept events per insert.
    pub batch_size: usize,
    /// Parallel parser threads.
    pub jobs: usize,
    /// Bytes of JSON lines per parsed chunk.
    pub chunk_bytes: usize,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// GH Archive hours to download and import (`--gharchive`), instead of `inputs`.
    pub gharchive: Option<ArchiveImport>,
}

impl Config {
    /// A configuration with the defaults of the command line: batches of 100,000 events, one
    /// parser per CPU, no progress output.
    pub fn new(inputs: Vec<PathBuf>, store: StoreConfig) -> Config {
        Config {
            inputs,
            dry_run: false,
            recount: false,
            store,
            batch_size: 100_000,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            progress: ProgressMode::Off,
            gharchive: None,
        }
    }
}

/// How progress is shown while importing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar on stderr (when stderr is a terminal).
    Bar,
    /// A log line every `every`.
    Log {
        /// Interval between lines.
        every: Duration,
    },
    /// Nothing until the summary.
    Off,
}

/// Imports the files of `config` (or its GH Archive hours) into its store and reports what
/// happened.
///
/// Files that cannot be read are listed in [`Summary::failed`], not errors; an error is a store
/// that cannot be opened or fails for good. When `cancel` fires (Ctrl-C), the events already
/// parsed are inserted as the last batch and the import stops ([`Summary::interrupted`]); a
/// re-run completes it, as stores skip events they already hold. GH Archive hours: see
/// [`ArchiveImport`].
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<Summary> {
    if let Some(archive) = config.gharchive.clone() {
        return archive::run(&config, &archive, cancel).await;
    }
    let started = Instant::now();
    let (files, missing) = collect_event_files(&config.inputs);
    let mut summary = Summary::new(config.dry_run);
    summary.files = files.len() + missing.len();
    for error in missing {
        let (path, message) = match &error {
            github_stats_core::SourceError::File { path, source } => {
                (path.clone(), source.to_string())
            }
            other => (PathBuf::new(), other.to_string()),
        };
        tracing::warn!(file = %path.display(), error = %message, "cannot read input, skipped");
        summary.failed.push(FileFailure {
            path,
            error: message,
        });
    }

    let (store, clickhouse) = open_store(&config).await?;
    summary.backend = store.backend_name();
    tracing::info!(
        files = files.len(),
        backend = summary.backend,
        dry_run = config.dry_run,
        jobs = config.jobs,
        batch_size = config.batch_size,
        "backfill starting"
    );

    let result = import(&config, files, &store, &cancel, &mut summary).await;
    // Whatever happened, make what was stored durable.
    let flushed = store.flush().await;
    summary.elapsed = started.elapsed();
    result?;
    flushed.context("cannot flush the store")?;
    recount_if_asked(&config, clickhouse, &mut summary, started).await?;
    Ok(summary)
}

/// `--recount`, after an import that was not interrupted.
async fn recount_if_asked(
    config: &Config,
    clickhouse: Option<Arc<ClickHouseStore>>,
    summary: &mut Summary,
    started: Instant,
) -> anyhow::Result<()> {
    if config.recount && !summary.interrupted {
        if let Some(clickhouse) = clickhouse {
            clickhouse
                .recount()
                .await
                .context("cannot recount the ClickHouse count tables")?;
            summary.recounted = true;
        } else if !config.dry_run {
            anyhow::bail!("--recount corrects ClickHouse tables: it needs the ClickHouse backend");
        }
        summary.elapsed = started.elapsed();
    }
    Ok(())
}

/// The store to import into, and the same store as a [`ClickHouseStore`] when it is one (for
/// its own operations, such as the recount).
async fn open_store(
    config: &Config,
) -> anyhow::Result<(SharedStore, Option<Arc<ClickHouseStore>>)> {
    let store = match &config.store {
        // Deduplicates within the input, like a real store would, and writes nothing.
        _ if config.dry_run => StoreConfig::in_memory(),
        StoreConfig::Memory { data_dir, options } => {
            let mut options = options.clone();
            // One sync at the end (and at Ctrl-C) instead of one per batch: a crash in the
            // middle loses at most what a re-run puts back.
            options.sync_writes = false;
            StoreConfig::Memory {
                data_dir: data_dir.clone(),
                options,
            }
        }
        other => other.clone(),
    };
    let opened = store.open().await.with_context(|| match &store {
        StoreConfig::Memory {
            data_dir: Some(dir),
            ..
        } => format!("cannot open the memory store in {}", dir.display()),
        other => format!("cannot open the {} store", other.backend_name()),
    })?;
    Ok((opened.shared(), opened.clickhouse().cloned()))
}

/// The parsed events, in batches of `--batch-size`, as an [`EventSource`] for core's
/// [`Ingest`] loop: [`import`] sends each batch as it fills (the last one at the end of the
/// input or at Ctrl-C) and closes the channel when done, which exhausts the source.
struct ParsedBatches {
    rx: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<EventBatch>>,
}

#[async_trait::async_trait]
impl EventSource for ParsedBatches {
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        Ok(self.rx.lock().await.recv().await)
    }
}

/// Inserts that fail in a row before the import gives up: about 20-30 s of the ingest loop's
/// backoff (0.5 s doubling, jittered, at most [`MAX_RETRY`] apart).
const STORE_FAILURES_BEFORE_GIVING_UP: u32 = 7;

/// The longest wait between two inserts of a failing store.
const MAX_RETRY: Duration = Duration::from_secs(16);

/// How often the import looks at the ingest loop's status while it waits for it.
const STATUS_EVERY: Duration = Duration::from_millis(100);

/// Reads and parses `files` (the pipeline, in input order) and hands batches of `batch_size`
/// kept events to core's [`Ingest`] loop, which inserts one while the next fills.
async fn import(
    config: &Config,
    files: Vec<PathBuf>,
    store: &SharedStore,
    cancel: &CancellationToken,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let progress = progress::Progress::new(config.progress, &files);
    let mut pipeline = pipeline::start(
        files.clone(),
        config.chunk_bytes,
        config.jobs.max(1),
        cancel.clone(),
    );
    let batch_size = config.batch_size.max(1);
    // Not the user's Ctrl-C: what is parsed is stored after it; this one stops a store that
    // keeps failing.
    let give_up = CancellationToken::new();
    let (batches, ingest) = spawn_ingest(store, batch_size, give_up.clone());
    let feeder = Feeder {
        batches: Some(batches),
        status: ingest.status(),
        give_up,
        cancel: cancel.clone(),
        checks: tokio::time::interval(STATUS_EVERY),
    };
    let mut ticks = tokio::time::interval(progress.tick_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut import = FileImport {
        outcomes: FileOutcomes::new(files.len()),
        files,
        batch_size,
        batch: Vec::with_capacity(batch_size.min(1 << 20)),
        feeder,
        progress,
        ticks,
    };

    let cancelled = import.read_files(&mut pipeline, cancel, summary).await;
    import.send_last_batch(summary).await;
    let report = import.wait_for_ingest(ingest, summary).await?;
    import.finish(&report, cancelled, summary)
}

/// Core's ingest loop set for bulk inserts of `batch_size` events, pulling from the returned
/// sender until it is dropped.
fn spawn_ingest(
    store: &SharedStore,
    batch_size: usize,
    give_up: CancellationToken,
) -> (tokio::sync::mpsc::Sender<EventBatch>, IngestHandle) {
    let (batches, batches_rx) = tokio::sync::mpsc::channel(1);
    let mut ingest_config = IngestConfig::default();
    // One batch being inserted while the next waits: the overlap of parsing and inserting.
    ingest_config.max_insert_events = batch_size;
    ingest_config.buffer_capacity = batch_size.saturating_mul(2);
    ingest_config.max_retry = MAX_RETRY;
    // Reading outpaces the store: a full buffer is the normal state, not news.
    ingest_config.warn_when_paused = false;
    // Only used when giving up: what is buffered then is not going to be stored.
    ingest_config.shutdown_timeout = Duration::from_secs(1);
    let ingest = Ingest::spawn(
        Arc::new(ParsedBatches {
            rx: tokio::sync::Mutex::new(batches_rx),
        }),
        Arc::clone(store) as Arc<dyn EventStore>,
        ingest_config,
        give_up,
    );
    (batches, ingest)
}

/// What became of each input file, by its place in the list.
struct FileOutcomes {
    finished: Vec<bool>,
    started: Vec<bool>,
    /// Bad lines and invalid events, for the summary's list.
    skipped: Vec<(u64, u64)>,
}

impl FileOutcomes {
    fn new(files: usize) -> FileOutcomes {
        FileOutcomes {
            finished: vec![false; files],
            started: vec![false; files],
            skipped: vec![(0, 0); files],
        }
    }

    /// The files with bad lines or invalid events, in input order.
    fn bad_records(&self, files: &[PathBuf]) -> Vec<BadRecords> {
        files
            .iter()
            .zip(&self.skipped)
            .filter(|(_, (malformed, invalid))| malformed + invalid > 0)
            .map(|(path, &(malformed, invalid))| BadRecords {
                path: path.clone(),
                malformed,
                invalid,
            })
            .collect()
    }

    /// The files not finished, and whether each was started.
    fn unfinished(&self, files: &[PathBuf]) -> Vec<(PathBuf, bool)> {
        files
            .iter()
            .zip(self.finished.iter().zip(&self.started))
            .filter(|(_, (finished, _))| !**finished)
            .map(|(path, (_, started))| (path.clone(), *started))
            .collect()
    }
}

/// An import of files under way: the batch filling, the ingest loop's end, the progress.
struct FileImport {
    files: Vec<PathBuf>,
    outcomes: FileOutcomes,
    batch_size: usize,
    batch: Vec<Event>,
    feeder: Feeder,
    progress: progress::Progress,
    /// When to show progress.
    ticks: tokio::time::Interval,
}

impl FileImport {
    /// Takes what the pipeline yields until the end of the input, an ingest loop that stopped,
    /// or Ctrl-C; whether it was Ctrl-C.
    async fn read_files(
        &mut self,
        pipeline: &mut pipeline::Pipeline,
        cancel: &CancellationToken,
        summary: &mut Summary,
    ) -> bool {
        loop {
            let item = tokio::select! {
                biased;
                _ = cancel.cancelled() => return true,
                item = pipeline.next() => item,
                _ = self.ticks.tick() => {
                    self.feeder.read_status(summary);
                    self.progress.tick(summary);
                    continue;
                }
            };
            let Some(item) = item else { return false };
            match item {
                pipeline::Item::Chunk {
                    file,
                    events,
                    stats,
                    bytes,
                } => {
                    if !self.add_chunk(file, events, &stats, bytes, summary).await {
                        return false;
                    }
                }
                pipeline::Item::FileDone { file } => self.file_done(file, summary),
                pipeline::Item::FileFailed { file, error } => {
                    self.file_failed(file, error, summary);
                }
            }
        }
    }

    /// Adds a parsed chunk of `file` to the batch, and hands the batch over once full; `false`
    /// when the ingest loop stopped.
    async fn add_chunk(
        &mut self,
        file: usize,
        events: Vec<Event>,
        stats: &ParseStats,
        bytes: u64,
        summary: &mut Summary,
    ) -> bool {
        self.outcomes.started[file] = true;
        self.outcomes.skipped[file].0 += stats.malformed;
        self.outcomes.skipped[file].1 += stats.invalid;
        summary.stats.merge(stats);
        summary.bytes += bytes;
        self.progress.chunk(file, bytes, summary);
        if self.batch.is_empty() {
            self.batch = events;
        } else {
            self.batch.extend(events);
        }
        if self.batch.len() < self.batch_size {
            return true;
        }
        let full = std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(self.batch_size.min(1 << 20)),
        );
        self.feeder
            .send(full, &mut self.ticks, &mut self.progress, summary)
            .await
    }

    fn file_done(&mut self, file: usize, summary: &mut Summary) {
        self.outcomes.finished[file] = true;
        summary.files_read += 1;
        summary.file_bytes += std::fs::metadata(&self.files[file]).map_or(0, |m| m.len());
        self.progress.file_done(file, summary);
    }

    fn file_failed(&mut self, file: usize, error: String, summary: &mut Summary) {
        self.outcomes.finished[file] = true;
        let path = &self.files[file];
        self.progress.suspend(
            || tracing::warn!(file = %path.display(), error = %error, "cannot read file, skipped"),
        );
        summary.failed.push(FileFailure {
            path: path.clone(),
            error,
        });
    }

    /// Hands over the batch being filled: what is parsed is stored, also after Ctrl-C.
    async fn send_last_batch(&mut self, summary: &mut Summary) {
        if !self.batch.is_empty() && !self.feeder.give_up.is_cancelled() {
            let batch = std::mem::take(&mut self.batch);
            self.feeder
                .send(batch, &mut self.ticks, &mut self.progress, summary)
                .await;
        }
    }

    /// Lets the ingest loop store what it was handed, showing progress meanwhile (and giving
    /// up on a store that keeps failing); its report.
    async fn wait_for_ingest(
        &mut self,
        ingest: IngestHandle,
        summary: &mut Summary,
    ) -> anyhow::Result<IngestReport> {
        // The source is exhausted once the loop has taken every batch.
        self.feeder.batches = None;
        let join = ingest.join();
        tokio::pin!(join);
        loop {
            tokio::select! {
                report = &mut join => return report.context("the ingest loop failed"),
                _ = self.ticks.tick() => {
                    self.feeder.read_status(summary);
                    self.progress.tick(summary);
                }
                _ = self.feeder.checks.tick() => self.feeder.check(),
            }
        }
    }

    /// Puts the ingest loop's report and the files' outcomes in the summary; an error when
    /// the store failed for good.
    fn finish(
        self,
        report: &IngestReport,
        cancelled: bool,
        summary: &mut Summary,
    ) -> anyhow::Result<()> {
        let snapshot = self.feeder.status.snapshot();
        summary.inserted = report.inserted;
        summary.duplicates = report.duplicates;
        summary.rejected = report.rejected;
        summary.batches = report.batches;
        summary.insert_time = Duration::from_secs_f64(snapshot.insert_duration.sum_seconds);
        self.progress.finish();
        summary.bad_records = self.outcomes.bad_records(&self.files);
        if self.feeder.give_up.is_cancelled() || report.unflushed > 0 {
            anyhow::bail!(
                "cannot store the events ({}); run the same command again to complete the import",
                snapshot
                    .last_store_error
                    .as_deref()
                    .unwrap_or("the store failed")
            );
        }
        if cancelled {
            summary.interrupted = true;
            summary.unfinished = self.outcomes.unfinished(&self.files);
            tracing::warn!(
                unfinished_files = summary.unfinished.len(),
                "interrupted: stopped after the current batch; run the same command again to complete the import"
            );
        }
        Ok(())
    }
}

/// The import's end of the ingest loop: hands it batches, and stops it when the store keeps
/// failing (about half a minute, or at once after Ctrl-C): the ingest loop itself would wait
/// for the store for as long as it takes, as the server wants.
struct Feeder {
    batches: Option<tokio::sync::mpsc::Sender<EventBatch>>,
    status: IngestStatus,
    give_up: CancellationToken,
    cancel: CancellationToken,
    checks: tokio::time::Interval,
}

impl Feeder {
    /// Hands `events` over once the ingest loop has room for them; `false` when it stopped
    /// (the store kept failing).
    async fn send(
        &mut self,
        events: Vec<Event>,
        ticks: &mut tokio::time::Interval,
        progress: &mut progress::Progress,
        summary: &mut Summary,
    ) -> bool {
        let Some(batches) = self.batches.clone() else {
            return false;
        };
        let send = batches.send(EventBatch::new(events, ParseStats::default(), "files"));
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => return sent.is_ok(),
                _ = ticks.tick() => {
                    self.read_status(summary);
                    progress.tick(summary);
                }
                _ = self.checks.tick() => self.check(),
            }
        }
    }

    /// What the ingest loop has stored so far, for the progress line.
    fn read_status(&self, summary: &mut Summary) {
        let status = self.status.snapshot();
        summary.inserted = status.inserted;
        summary.duplicates = status.duplicates;
        summary.rejected = status.rejected;
    }

    /// Stops the ingest loop when the store keeps failing (it then flushes what it can and
    /// stops pulling).
    fn check(&mut self) {
        let status = self.status.snapshot();
        let failures = status.consecutive_store_failures;
        let give_up = failures >= STORE_FAILURES_BEFORE_GIVING_UP
            || (failures > 0 && self.cancel.is_cancelled());
        if give_up && !self.give_up.is_cancelled() {
            tracing::warn!(
                failures,
                error = status.last_store_error.as_deref().unwrap_or(""),
                "the store keeps failing, giving up"
            );
            self.give_up.cancel();
        }
    }
}
