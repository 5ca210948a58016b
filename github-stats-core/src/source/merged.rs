//! Several sources as one, for one ingest loop: the server runs the poller and the GH Archive
//! follower into the same store.
//!
//! ```no_run
//! # fn demo(poller: std::sync::Arc<dyn github_stats_core::EventSource>,
//! #         archive: std::sync::Arc<dyn github_stats_core::EventSource>) {
//! use github_stats_core::source::merged::MergedSource;
//! let merged = MergedSource::new(vec![("poller".into(), poller), ("gharchive".into(), archive)]);
//! # }
//! ```
//!
//! Each source is pulled by a task of its own into a small shared channel, so a source waiting
//! (the poller between polls, the follower for the next hour) never holds up the other, and no
//! source's `next_batch` is ever dropped half way (only when the merged source is dropped).
//! Batches come out as they are ready, each with its checkpoint wrapped in one naming its
//! source, so [`checkpoint`](EventSource::checkpoint) goes back to the source the batch came
//! from: no bookkeeping of what was returned.
//!
//! One source's end or fatal error ends only that source: a [`SourceError::Config`] of one is
//! passed on as a [`SourceError::Remote`] naming it (the ingest loop keeps pulling), and the
//! merged source is exhausted once every source is, with that configuration error last if
//! there was one (so the run is not reported complete).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

use super::{Checkpoint, EventBatch, EventSource, SourceError, StoredBatch};

/// What a source's task pulled.
enum Pulled {
    Batch(EventBatch),
    Error(SourceError),
    /// The source is exhausted.
    Ended,
    /// The source failed for good.
    Failed(SourceError),
}

/// Several [`EventSource`]s as one. Dropping it stops pulling them.
pub struct MergedSource {
    sources: Vec<(String, Arc<dyn EventSource>)>,
    pull: tokio::sync::Mutex<Pull>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

struct Pull {
    rx: Option<mpsc::Receiver<(usize, Pulled)>>,
    /// The configuration error of a source that failed for good, reported at the end.
    failed: Option<String>,
}

impl std::fmt::Debug for MergedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sources.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("MergedSource")
            .field("sources", &names)
            .finish_non_exhaustive()
    }
}

impl MergedSource {
    /// Merges `sources`, each with a name used in errors. Pulling starts at the first
    /// [`next_batch`](EventSource::next_batch) (inside the runtime).
    pub fn new(sources: Vec<(String, Arc<dyn EventSource>)>) -> MergedSource {
        MergedSource {
            sources,
            pull: tokio::sync::Mutex::new(Pull {
                rx: None,
                failed: None,
            }),
            tasks: Mutex::new(Vec::new()),
        }
    }

    fn start(&self) -> mpsc::Receiver<(usize, Pulled)> {
        // One batch waiting per source, plus one being handed over each: bounded memory, and
        // a fast source cannot crowd out a slow one for long (the channel serves senders in
        // order).
        let (tx, rx) = mpsc::channel(self.sources.len().max(1));
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        for (index, (_, source)) in self.sources.iter().enumerate() {
            let source = Arc::clone(source);
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let pulled = match source.next_batch().await {
                        Ok(Some(batch)) => Pulled::Batch(batch),
                        Ok(None) => Pulled::Ended,
                        Err(e @ SourceError::Config(_)) => Pulled::Failed(e),
                        Err(e) => Pulled::Error(e),
                    };
                    let last = matches!(pulled, Pulled::Ended | Pulled::Failed(_));
                    if tx.send((index, pulled)).await.is_err() || last {
                        return;
                    }
                }
            }));
        }
        rx
    }
}

impl Drop for MergedSource {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            task.abort();
        }
    }
}

#[async_trait]
impl EventSource for MergedSource {
    /// The next batch of any source; `Ok(None)` once every source is exhausted (or the last
    /// configuration error, when a source failed for good). Cancel-safe.
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        let mut pull = self.pull.lock().await;
        let pull = &mut *pull;
        if pull.rx.is_none() {
            pull.rx = Some(self.start());
        }
        let rx = pull.rx.as_mut().expect("started");
        loop {
            let Some((index, pulled)) = rx.recv().await else {
                // Every task ended: every source is exhausted or failed.
                return match pull.failed.take() {
                    Some(message) => Err(SourceError::Config(message)),
                    None => Ok(None),
                };
            };
            let name = &self.sources[index].0;
            match pulled {
                Pulled::Batch(mut batch) => {
                    let inner = std::mem::take(&mut batch.checkpoint);
                    batch.checkpoint = Checkpoint::new(RoutedCheckpoint { index, inner });
                    return Ok(Some(batch));
                }
                Pulled::Ended => {}
                Pulled::Error(SourceError::Remote(message)) => {
                    return Err(SourceError::Remote(format!("{name}: {message}")));
                }
                Pulled::Error(other) => return Err(other),
                Pulled::Failed(error) => {
                    let message = match error {
                        SourceError::Config(message) => message,
                        other => other.to_string(),
                    };
                    warn!(source = %name, error = %message, "source cannot recover, no longer pulling it");
                    let message = format!("{name}: {message}");
                    pull.failed = Some(message.clone());
                    return Err(SourceError::Remote(format!("{message} (no longer pulled)")));
                }
            }
        }
    }

    /// Hands `checkpoint` back to the source its batch came from.
    async fn checkpoint(
        &self,
        checkpoint: Checkpoint,
        stored: StoredBatch,
    ) -> Result<(), SourceError> {
        match checkpoint.into_inner::<RoutedCheckpoint>() {
            Some(RoutedCheckpoint { index, inner }) => {
                self.sources[index].1.checkpoint(inner, stored).await
            }
            None => Ok(()),
        }
    }
}

/// A batch's checkpoint and the index of the source it came from.
struct RoutedCheckpoint {
    index: usize,
    inner: Checkpoint,
}
