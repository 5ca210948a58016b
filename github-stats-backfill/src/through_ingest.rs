//! Issue #13 item 6, a prototype kept for measurement only (`GITHUB_STATS_BACKFILL_ENGINE=ingest`,
//! benches/README.md, "Backfill through core's Ingest"): the reader and parser pipeline as an
//! [`EventSource`] feeding core's [`Ingest`] loop, with bulk settings (inserts of `batch_size`
//! events, a buffer of two of them) and the totals read from the ingest report.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use github_stats_core::source::{EventBatch, EventSource, SourceError};
use github_stats_core::{Ingest, IngestConfig, SharedStore};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{self, Item, Pipeline};
use crate::{Config, FileFailure, Summary};

/// The pipeline's chunks as batches, in input order; a file that cannot be read is a
/// [`SourceError::File`] (the ingest loop counts it and pulls again).
struct PipelineSource {
    pipeline: tokio::sync::Mutex<Pipeline>,
    files: Vec<PathBuf>,
    read: Mutex<Vec<usize>>,
    failed: Mutex<Option<SourceError>>,
    batch_size: usize,
}

#[async_trait]
impl EventSource for PipelineSource {
    /// Chunks gathered up to `batch_size` kept events (or the end of the input), so that the
    /// ingest loop inserts batches as large as the backfill's own.
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        let mut pipeline = self.pipeline.lock().await;
        if let Some(error) = self.failed.lock().unwrap().take() {
            return Err(error);
        }
        let mut gathered: Option<EventBatch> = None;
        loop {
            if gathered
                .as_ref()
                .is_some_and(|b| b.events.len() >= self.batch_size)
            {
                return Ok(gathered);
            }
            match pipeline.next().await {
                None => return Ok(gathered),
                Some(Item::Chunk {
                    file,
                    events,
                    stats,
                    bytes,
                }) => match &mut gathered {
                    None => {
                        let mut batch =
                            EventBatch::new(events, stats, self.files[file].display().to_string());
                        batch.bytes = bytes;
                        batch.completes_origin = false;
                        gathered = Some(batch);
                    }
                    Some(batch) => {
                        batch.events.extend(events);
                        batch.stats.merge(&stats);
                        batch.bytes += bytes;
                    }
                },
                Some(Item::FileDone { file }) => self.read.lock().unwrap().push(file),
                Some(Item::FileFailed { file, error }) => {
                    let error = SourceError::File {
                        path: self.files[file].clone(),
                        source: std::io::Error::other(error),
                    };
                    if gathered.is_some() {
                        // The events gathered first; the error on the next call.
                        *self.failed.lock().unwrap() = Some(error);
                        return Ok(gathered);
                    }
                    return Err(error);
                }
            }
        }
    }
}

/// [`import`](crate::import) through [`Ingest`].
pub(crate) async fn import(
    config: &Config,
    files: Vec<PathBuf>,
    store: &SharedStore,
    cancel: &CancellationToken,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let source = std::sync::Arc::new(PipelineSource {
        pipeline: tokio::sync::Mutex::new(pipeline::start(
            files.clone(),
            config.chunk_bytes,
            config.jobs.max(1),
            cancel.clone(),
        )),
        files: files.clone(),
        read: Mutex::new(Vec::new()),
        failed: Mutex::new(None),
        batch_size: config.batch_size.max(1),
    });
    let batch_size = config.batch_size.max(1);
    let mut ingest = IngestConfig::default();
    ingest.max_insert_events = batch_size;
    ingest.buffer_capacity = batch_size.saturating_mul(2);
    let report = Ingest::run(
        source.clone(),
        std::sync::Arc::clone(store) as std::sync::Arc<dyn github_stats_core::EventStore>,
        ingest,
        cancel.clone(),
    )
    .await;
    summary.stats.merge(&report.stats);
    summary.bytes = report.bytes;
    summary.inserted = report.inserted;
    summary.duplicates = report.duplicates;
    summary.rejected = report.rejected;
    let read = source.read.lock().unwrap().clone();
    summary.files_read = read.len();
    summary.file_bytes = read
        .iter()
        .map(|&f| std::fs::metadata(&files[f]).map_or(0, |m| m.len()))
        .sum();
    for message in report.source_error_messages {
        summary.failed.push(FileFailure {
            path: PathBuf::new(),
            error: message,
        });
    }
    summary.interrupted = !report.completed;
    Ok(())
}
