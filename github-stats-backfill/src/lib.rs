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
//! parallel (dropped event types are recognised without a JSON parse); the inserter puts the
//! parsed chunks back in chronological order and inserts large batches while the parsers work on
//! the next chunks. A bounded number of chunks is in flight, so memory stays flat whatever the
//! input size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use github_stats_core::source::file::{DEFAULT_CHUNK_BYTES, collect_event_files};
use github_stats_core::{ClickHouseStore, Event, SharedStore, StoreError};
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

async fn import(
    config: &Config,
    files: Vec<PathBuf>,
    store: &SharedStore,
    cancel: &CancellationToken,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let mut progress = progress::Progress::new(config.progress, &files);
    let mut pipeline = pipeline::start(
        files.clone(),
        config.chunk_bytes,
        config.jobs.max(1),
        cancel.clone(),
    );
    let batch_size = config.batch_size.max(1);
    let mut batch: Vec<Event> = Vec::with_capacity(batch_size.min(1 << 20));
    let mut inserter = Inserter {
        store: Arc::clone(store),
        cancel: cancel.clone(),
        running: None,
    };
    let mut finished = vec![false; files.len()];
    // Bad lines and invalid events of each file, for the summary's list.
    let mut skipped = vec![(0u64, 0u64); files.len()];
    let mut started = vec![false; files.len()];
    let mut cancelled = false;

    let mut ticks = tokio::time::interval(progress.tick_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let item = tokio::select! {
            biased;
            _ = cancel.cancelled() => { cancelled = true; break; }
            item = pipeline.next() => item,
            _ = ticks.tick() => { progress.tick(summary); continue; }
        };
        let Some(item) = item else { break };
        match item {
            pipeline::Item::Chunk {
                file,
                events,
                stats,
                bytes,
            } => {
                started[file] = true;
                skipped[file].0 += stats.malformed;
                skipped[file].1 += stats.invalid;
                summary.stats.merge(&stats);
                summary.bytes += bytes;
                progress.chunk(file, bytes, summary);
                if batch.is_empty() {
                    batch = events;
                } else {
                    batch.extend(events);
                }
                if batch.len() >= batch_size {
                    let full =
                        std::mem::replace(&mut batch, Vec::with_capacity(batch_size.min(1 << 20)));
                    inserter.submit(full, summary, &mut progress).await?;
                }
            }
            pipeline::Item::FileDone { file } => {
                finished[file] = true;
                summary.files_read += 1;
                summary.file_bytes += std::fs::metadata(&files[file]).map_or(0, |m| m.len());
                progress.file_done(file, summary);
            }
            pipeline::Item::FileFailed { file, error } => {
                finished[file] = true;
                progress.suspend(|| {
                    tracing::warn!(file = %files[file].display(), error = %error, "cannot read file, skipped")
                });
                summary.failed.push(FileFailure {
                    path: files[file].clone(),
                    error,
                });
            }
        }
    }
    // The current batch: what is parsed is stored, also after Ctrl-C.
    if !batch.is_empty() {
        inserter.submit(batch, summary, &mut progress).await?;
    }
    inserter.finish(summary, &mut progress).await?;
    progress.finish();
    summary.bad_records = files
        .iter()
        .zip(&skipped)
        .filter(|(_, (malformed, invalid))| malformed + invalid > 0)
        .map(|(path, &(malformed, invalid))| BadRecords {
            path: path.clone(),
            malformed,
            invalid,
        })
        .collect();
    if cancelled {
        summary.interrupted = true;
        summary.unfinished = files
            .iter()
            .zip(finished.iter().zip(&started))
            .filter(|(_, (finished, _))| !**finished)
            .map(|(path, (_, started))| (path.clone(), *started))
            .collect();
        tracing::warn!(
            unfinished_files = summary.unfinished.len(),
            "interrupted: stopped after the current batch; run the same command again to complete the import"
        );
    }
    Ok(())
}

/// Inserts batches in a task of their own, one at a time, so that the next batch fills (and
/// the parsers keep going) while the store works on the previous one.
struct Inserter {
    store: SharedStore,
    cancel: CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<InsertReport>>>,
}

impl Inserter {
    /// Waits for the batch being inserted, then starts inserting `events`.
    async fn submit(
        &mut self,
        events: Vec<Event>,
        summary: &mut Summary,
        progress: &mut progress::Progress,
    ) -> anyhow::Result<()> {
        self.finish(summary, progress).await?;
        let store = Arc::clone(&self.store);
        let cancel = self.cancel.clone();
        self.running = Some(tokio::spawn(async move {
            insert(store.as_ref(), events, &cancel).await
        }));
        Ok(())
    }

    /// Waits for the batch being inserted, if any, and counts it.
    async fn finish(
        &mut self,
        summary: &mut Summary,
        progress: &mut progress::Progress,
    ) -> anyhow::Result<()> {
        if let Some(mut running) = self.running.take() {
            let mut ticks = tokio::time::interval(progress.tick_every());
            ticks.reset();
            let report = loop {
                tokio::select! {
                    report = &mut running => break report.context("insert task failed")??,
                    _ = ticks.tick() => progress.tick(summary),
                }
            };
            summary.inserted += report.inserted;
            summary.duplicates += report.duplicates;
            summary.rejected += report.rejected;
            summary.batches += 1;
            summary.insert_time += report.time;
        }
        Ok(())
    }
}

/// What inserting one batch did.
#[derive(Debug, Default)]
struct InsertReport {
    inserted: u64,
    duplicates: u64,
    rejected: u64,
    time: Duration,
}

/// Inserts `events`. Events the store refuses one by one (a time it cannot represent) are
/// counted as rejected and left out; an unreachable store is retried with backoff for about
/// half a minute before giving up.
async fn insert(
    store: &dyn github_stats_core::Store,
    mut events: Vec<Event>,
    cancel: &CancellationToken,
) -> anyhow::Result<InsertReport> {
    let mut report = InsertReport::default();
    let mut attempt = 0u32;
    loop {
        let started = Instant::now();
        let result = store.insert_events(&events).await;
        report.time += started.elapsed();
        match result {
            Ok(outcome) => {
                report.inserted = outcome.inserted;
                report.duplicates = outcome.duplicates;
                tracing::debug!(
                    events = events.len(),
                    inserted = outcome.inserted,
                    duplicates = outcome.duplicates,
                    "batch stored"
                );
                return Ok(report);
            }
            Err(StoreError::InvalidEvent { id, reason }) => {
                let before = events.len();
                events.retain(|e| e.id != id);
                let removed = before - events.len();
                if removed == 0 {
                    anyhow::bail!(
                        "the store refused event {id} ({reason}), which is not in the batch"
                    );
                }
                tracing::warn!(id, reason = %reason, "the store refused an event, skipped");
                report.rejected += removed as u64;
                if events.is_empty() {
                    return Ok(report);
                }
            }
            Err(e) if e.is_unavailable() && attempt < 6 && !cancel.is_cancelled() => {
                let wait = Duration::from_millis(500 << attempt);
                attempt += 1;
                tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "store unavailable, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot store a batch of {} events; run the same command again to complete the import",
                    events.len()
                )));
            }
        }
    }
}
