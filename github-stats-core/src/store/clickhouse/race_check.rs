//! Two writers racing, made exact (`docs/clickhouse.md`, "Two writers racing"): every row a
//! store inserts carries its writer id (`events.writer`). A while after an insert
//! ([`ClickHouseConfig::race_check_delay`](super::ClickHouseConfig::race_check_delay)) the store
//! reads, for the events it inserted, the copy a merge keeps (`FINAL`: the last one inserted).
//! When that copy is another writer's, another writer stored the same event too and the count
//! tables counted both: this writer takes its own copy back, inserting -1 for it into
//! `count_corrections`. Of n copies, the n - 1 that are not kept are each taken back by their
//! own writer, once, with no coordination between writers; which copy is kept does not depend
//! on merges, so the answer is the same whenever it is read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use clickhouse::Client;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::errors::request_within;
use super::schema::Schema;
use crate::store::StoreError;

/// Ids per lookup of kept copies (the query text stays under 18.16's `max_query_size`).
const IDS_PER_LOOKUP: usize = 10_000;

/// How often a batch whose own rows are not all visible yet (a replica behind) is looked at
/// again before it is given up.
const MAX_NOT_VISIBLE: u32 = 10;

/// Longest wait before a failed check is tried again.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Events inserted by one `INSERT`, to check once their time comes.
struct Pending {
    due: Instant,
    min: u32,
    max: u32,
    ids: Vec<u64>,
    not_visible: u32,
    failures: u32,
}

/// What checking needs: where to ask, and who this writer is.
pub(super) struct Checker {
    pub(super) client: Client,
    pub(super) schema: Schema,
    pub(super) origin: String,
    pub(super) timeout: Duration,
    pub(super) native_port_hint: bool,
}

/// The checks a store owes for its recent inserts, and the task that runs them.
pub(super) struct RaceChecks {
    writer: u64,
    delay: Duration,
    queue: Mutex<VecDeque<Pending>>,
    wake: tokio::sync::Notify,
    stop: CancellationToken,
    checker: OnceLock<Checker>,
    taken_back: AtomicU64,
    checked: AtomicU64,
    failures: AtomicU64,
    given_up: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(clickhouse::Row, Deserialize)]
struct KeptCopy {
    writer: u64,
    created_at: u32,
    code: i8,
    repo_name: String,
}

/// One row of `count_corrections`.
#[derive(clickhouse::Row, Serialize)]
struct Correction {
    created_at: u32,
    event_type: i8,
    repo_name: String,
    n: i64,
}

/// What a check found.
enum Checked {
    /// Every inserted event was seen, and this writer's copies not kept were taken back.
    Done,
    /// Some of this writer's own rows are not visible yet (a replica behind): ask again later.
    NotVisible,
}

impl RaceChecks {
    /// A writer with a random id (never 0, the id of rows written before version 5 or by older
    /// binaries), checking `delay` after each insert.
    pub(super) fn new(delay: Duration) -> RaceChecks {
        RaceChecks {
            writer: fastrand::u64(1..),
            delay,
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            stop: CancellationToken::new(),
            checker: OnceLock::new(),
            taken_back: AtomicU64::new(0),
            checked: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            given_up: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// This writer's id, stored in `events.writer` with every row it inserts.
    pub(super) fn writer(&self) -> u64 {
        self.writer
    }

    /// Starts checking with `checker`, on a task that ends when [`RaceChecks::stop`] is called.
    pub(super) fn start(self: &Arc<Self>, checker: Checker) {
        if self.checker.set(checker).is_ok() {
            tokio::spawn(Arc::clone(self).run());
        }
    }

    /// Stops the task (the store is dropped).
    pub(super) fn stop(&self) {
        self.stop.cancel();
    }

    /// Schedules the check of events just inserted (`ids`, created in `[min, max]` seconds).
    pub(super) fn schedule(&self, min: u32, max: u32, ids: Vec<u64>) {
        if ids.is_empty() {
            return;
        }
        self.enqueue(Pending {
            due: Instant::now() + self.delay,
            min,
            max,
            ids,
            not_visible: 0,
            failures: 0,
        });
        self.wake.notify_one();
    }

    fn enqueue(&self, pending: Pending) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let at = queue.partition_point(|p| p.due <= pending.due);
        queue.insert(at, pending);
    }

    /// What health shows: events whose check is pending, copies taken back, checks failed.
    pub(super) fn details(&self) -> serde_json::Value {
        let pending: usize = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|p| p.ids.len())
            .sum();
        let mut details = serde_json::json!({
            "writer": self.writer.to_string(),
            "check_delay_ms": self.delay.as_millis() as u64,
            "pending_events": pending,
            "checked_events": self.checked.load(Ordering::Relaxed),
            "copies_taken_back": self.taken_back.load(Ordering::Relaxed),
            "check_failures": self.failures.load(Ordering::Relaxed),
            "checks_given_up": self.given_up.load(Ordering::Relaxed),
        });
        if let Some(error) = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            details["last_error"] = error.into();
        }
        details
    }

    /// Checks everything pending now, due or not (at shutdown: a copy another writer stores
    /// later than this can no longer be noticed). Returns the first error; what failed stays
    /// pending.
    pub(super) async fn check_all_now(&self) -> Result<(), StoreError> {
        let Some(checker) = self.checker.get() else {
            return Ok(());
        };
        let all: Vec<Pending> = self
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let mut first_error = None;
        for mut pending in all {
            match self.check(checker, &pending).await {
                Ok(Checked::Done) => {}
                Ok(Checked::NotVisible) => {
                    self.given_up.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        events = pending.ids.len(),
                        "not every inserted event is visible yet at shutdown: racing copies \
                         among them may stay counted"
                    );
                }
                Err(e) => {
                    pending.failures += 1;
                    self.enqueue(pending);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn run(self: Arc<Self>) {
        let Some(checker) = self.checker.get() else {
            return;
        };
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .front()
                .map(|p| p.due);
            match next {
                None => {
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = self.wake.notified() => continue,
                    }
                }
                Some(due) if due > Instant::now() => {
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep_until(due) => {}
                        // A new insert is due later than the front: nothing changes, but an
                        // empty queue refilled must not wait for the old deadline.
                        _ = self.wake.notified() => continue,
                    }
                }
                Some(_) => {}
            }
            let due = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                match queue.front() {
                    Some(p) if p.due <= Instant::now() => queue.pop_front(),
                    _ => None,
                }
            };
            let Some(mut pending) = due else { continue };
            let outcome = tokio::select! {
                _ = self.stop.cancelled() => return,
                outcome = self.check(checker, &pending) => outcome,
            };
            match outcome {
                Ok(Checked::Done) => {}
                Ok(Checked::NotVisible) if pending.not_visible < MAX_NOT_VISIBLE => {
                    pending.not_visible += 1;
                    pending.due = Instant::now() + self.delay.min(MAX_RETRY);
                    self.enqueue(pending);
                }
                Ok(Checked::NotVisible) => {
                    self.given_up.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        events = pending.ids.len(),
                        attempts = pending.not_visible,
                        "inserted events still not visible where the store reads: their racing \
                         copies, if any, stay counted (a recount corrects them)"
                    );
                }
                Err(e) => {
                    pending.failures += 1;
                    let wait = Duration::from_millis(500)
                        .saturating_mul(1 << pending.failures.min(8))
                        .min(MAX_RETRY);
                    tracing::warn!(
                        error = %e,
                        failures = pending.failures,
                        retry_in_ms = wait.as_millis() as u64,
                        "checking inserted events for racing copies failed"
                    );
                    pending.due = Instant::now() + wait;
                    self.enqueue(pending);
                }
            }
        }
    }

    /// Reads the kept copy of each event of `pending` and takes back this writer's copies that
    /// are not kept.
    async fn check(&self, checker: &Checker, pending: &Pending) -> Result<Checked, StoreError> {
        let result = self.check_inner(checker, pending).await;
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
        result
    }

    async fn check_inner(
        &self,
        checker: &Checker,
        pending: &Pending,
    ) -> Result<Checked, StoreError> {
        let mut seen = 0usize;
        let mut corrections = Vec::new();
        for chunk in pending.ids.chunks(IDS_PER_LOOKUP) {
            let rows = request_within(
                &checker.origin,
                checker.timeout,
                checker.native_port_hint,
                checker
                    .schema
                    .q_kept_copies(&checker.client, pending.min, pending.max, chunk)
                    .fetch_all::<KeptCopy>(),
            )
            .await?;
            seen += rows.len();
            corrections.extend(
                rows.into_iter()
                    .filter(|r| r.writer != self.writer)
                    .map(|r| Correction {
                        created_at: r.created_at,
                        event_type: r.code,
                        repo_name: r.repo_name,
                        n: -1,
                    }),
            );
        }
        if seen < pending.ids.len() {
            return Ok(Checked::NotVisible);
        }
        let taken = corrections.len() as u64;
        if !corrections.is_empty() {
            // Two corrections can be the same rows (-1 for one hour and type), which a
            // replicated table would drop as a repeated block: every correction counts.
            let client = checker
                .client
                .clone()
                .with_setting("insert_deduplicate", "0");
            let table = checker.schema.corrections_table();
            let sent = async {
                let mut insert = client
                    .insert_unescaped::<Correction>(&table)
                    .await?
                    .with_timeouts(Some(checker.timeout), Some(checker.timeout));
                for c in &corrections {
                    insert.write(c).await?;
                }
                insert.end().await
            };
            request_within(
                &checker.origin,
                checker.timeout,
                checker.native_port_hint,
                sent,
            )
            .await?;
            tracing::info!(
                copies = taken,
                "took back copies of events another writer stored at the same moment"
            );
        }
        self.checked
            .fetch_add(pending.ids.len() as u64, Ordering::Relaxed);
        self.taken_back.fetch_add(taken, Ordering::Relaxed);
        Ok(Checked::Done)
    }
}
