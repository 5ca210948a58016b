//! Writing: [`EventStore`] for the ClickHouse store. Each event id is stored once: repeats in a
//! batch and recently stored ids are skipped here, the rest checked against `events` in the
//! batch's time range (`docs/clickhouse.md`, "Deduplication"); inserts of one store are
//! serialised, so its [`InsertOutcome`] is exact.

use async_trait::async_trait;
use chrono::Utc;
use serde::Serialize;

use super::ClickHouseStore;
use super::schema::type_code;
use crate::answers::{InsertOutcome, StoreHealth};
use crate::coverage::ArchiveHour;
use crate::event::Event;
use crate::id_set::{IdSet, RecentIds};
use crate::store::{EventStore, StoreError};

/// Ids per existence query: keeps the query text under 18.16's `max_query_size` (256 KiB)
/// even with 20-digit ids.
const IDS_PER_LOOKUP: usize = 10_000;

/// One row of `events`, as sent in RowBinary (`DateTime` is seconds as `u32`, `Enum8` an `i8`).
#[derive(clickhouse::Row, Serialize)]
struct EventRow<'a> {
    id: u64,
    event_type: i8,
    repo_id: u64,
    repo_name: &'a str,
    created_at: u32,
    action: &'a str,
    /// The store instance that inserted the row (`race_check.rs`).
    writer: u64,
}

#[async_trait]
impl EventStore for ClickHouseStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        for e in events {
            check_storable(e)?;
        }
        self.restore_schema_if_lost().await?;
        let mut recent = self.writer.lock().await;
        let mut outcome = InsertOutcome::default();
        // Level 1: within the batch, and against the recent ids.
        let mut seen = IdSet::with_capacity_and_hasher(events.len(), Default::default());
        let mut candidates = Vec::with_capacity(events.len());
        for e in events {
            if !seen.insert(e.id) {
                outcome.duplicates += 1;
            } else if recent.contains(e.id) {
                outcome.duplicates += 1;
                outcome.stored_before.push(e.id);
            } else {
                candidates.push(e);
            }
        }
        if candidates.is_empty() {
            return Ok(outcome);
        }
        // Level 2: against what is stored, in the batch's time range.
        let stored = self.stored_among(&candidates).await?;
        let fresh: Vec<&Event> = candidates
            .into_iter()
            .filter(|e| {
                if stored.contains(&e.id) {
                    outcome.duplicates += 1;
                    false
                } else {
                    true
                }
            })
            .collect();
        self.partial.seen_again(
            fresh.iter().map(|e| e.id).chain(stored.iter().copied()),
            &stored,
        );
        outcome.stored_before.extend(stored.iter().copied());
        for id in stored {
            recent.insert(id);
        }
        #[cfg(feature = "testsuite")]
        {
            let gate = self
                .insert_gate
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(gate) = gate {
                gate.wait().await;
            }
        }
        self.send(&fresh, &mut recent).await?;
        // Under the writer lock: no insert of this store runs while the counts are compared.
        self.repair_partly_stored().await;
        outcome.inserted = fresh.len() as u64;
        tracing::debug!(
            inserted = outcome.inserted,
            duplicates = outcome.duplicates,
            "inserted events into clickhouse"
        );
        Ok(outcome)
    }

    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError> {
        self.restore_schema_if_lost().await?;
        let mut seen = IdSet::default();
        let mut known = 0;
        let mut candidates = Vec::with_capacity(events.len());
        {
            let recent = self.writer.lock().await;
            for e in events {
                if !seen.insert(e.id) {
                    continue;
                }
                if recent.contains(e.id) {
                    known += 1;
                } else if check_storable(e).is_ok() {
                    candidates.push(e);
                }
            }
        }
        if candidates.is_empty() {
            return Ok(known);
        }
        Ok(known + self.stored_among(&candidates).await?.len() as u64)
    }

    async fn health(&self) -> StoreHealth {
        self.health_report().await
    }

    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError> {
        self.restore_schema_if_lost().await?;
        use std::sync::atomic::Ordering;
        let now = Utc::now().timestamp_millis().max(0) as u64;
        let previous = self
            .archive_version
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .unwrap_or(0);
        let version = now.max(previous + 1);
        self.run(
            self.schema
                .q_record_archive_hour(&self.client, record, version)
                .execute(),
        )
        .await
    }

    fn backend_name(&self) -> &'static str {
        "clickhouse"
    }

    /// Checks the recent inserts for copies another writer stored at the same moment now,
    /// without waiting for their time (`race_check.rs`): at shutdown, what can be seen is taken
    /// back.
    async fn flush(&self) -> Result<(), StoreError> {
        self.race_checks.check_all_now().await
    }
}

impl ClickHouseStore {
    /// Repairs the tables derived from `events` after inserts stored in part, when one is due
    /// ([`PartialInserts`]): on the one server or the first replica of each shard, the replicas
    /// synced, the opened pull requests among those events fed again to the id sets, and the
    /// counts recounted from `events`. Tried a few times over 23 s; then a failure is logged
    /// and tried again after a later insert, 30 s later at the earliest, then less and less
    /// often (up to an hour).
    async fn repair_partly_stored(&self) {
        let Some(ids) = self.partial.due() else {
            return;
        };
        // Right after an outage some replicas still refuse writes for a few seconds (read-only
        // until their ZooKeeper session is back): a few quick attempts before waiting for a
        // later insert, which may be long in coming.
        let mut result = Ok(());
        for wait_s in [0, 1, 2, 4, 8, 8] {
            tokio::time::sleep(std::time::Duration::from_secs(wait_s)).await;
            result = self.repair_once(&ids).await;
            if result.is_ok() {
                break;
            }
        }
        match &result {
            Ok(()) => tracing::info!(
                events = ids.len(),
                "repaired the tables derived from events after an insert stored in part"
            ),
            Err(error) => tracing::warn!(
                %error,
                events = ids.len(),
                "cannot repair the tables derived from events yet, trying again after a later insert"
            ),
        }
        self.partial.repaired(&ids, result.is_ok());
    }

    /// One attempt at [`ClickHouseStore::repair_partly_stored`].
    async fn repair_once(&self, ids: &[u64]) -> Result<(), StoreError> {
        let (sync, refeed) = self.schema.repair_partly_stored();
        for (client, origin) in self.shard_leaders() {
            let client = client.clone().with_setting("insert_deduplicate", "0");
            for sql in &sync {
                self.run_within(origin, REPAIR_TIMEOUT, client.query(sql).execute())
                    .await?;
            }
            for sql in &refeed {
                for chunk in ids.chunks(IDS_PER_LOOKUP) {
                    self.run_within(
                        origin,
                        REPAIR_TIMEOUT,
                        client.query(sql).bind(chunk).execute(),
                    )
                    .await?;
                }
            }
        }
        self.recount_within(REPAIR_TIMEOUT).await
    }

    /// Ids among `candidates` (no repeats, none cached) already in `events`.
    ///
    /// First every id stored in the candidates' time range, when there are at most
    /// `range_scan_limit`: one round trip, and nothing to read for new hours. Past that
    /// (a batch spanning a long, full history), the candidates sorted by time are looked up
    /// [`IDS_PER_LOOKUP`] at a time, each chunk in its own time range.
    async fn stored_among(&self, candidates: &[&Event]) -> Result<IdSet, StoreError> {
        let range = |events: &[&Event]| {
            events.iter().fold((u32::MAX, 0u32), |(min, max), e| {
                let ts = e.timestamp() as u32;
                (min.min(ts), max.max(ts))
            })
        };
        let (min, max) = range(candidates);
        let in_range = self
            .run(
                self.schema
                    .q_ids_in_range(&self.client, min, max, self.range_scan_limit as u64 + 1)
                    .fetch_all::<u64>(),
            )
            .await?;
        if in_range.len() <= self.range_scan_limit {
            let wanted: IdSet = candidates.iter().map(|e| e.id).collect();
            return Ok(in_range
                .into_iter()
                .filter(|id| wanted.contains(id))
                .collect());
        }
        let mut sorted = candidates.to_vec();
        sorted.sort_unstable_by_key(|e| e.timestamp());
        let mut found = IdSet::default();
        for chunk in sorted.chunks(IDS_PER_LOOKUP) {
            let (min, max) = range(chunk);
            let ids: Vec<u64> = chunk.iter().map(|e| e.id).collect();
            let rows = self
                .run(
                    self.schema
                        .q_existing_ids(&self.client, min, max, &ids)
                        .fetch_all::<u64>(),
                )
                .await?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Sends `events` in RowBinary, at most `max_rows_per_insert` per `INSERT`, adds the ids of
    /// every completed `INSERT` to `recent`, and schedules their check for racing copies.
    async fn send(&self, events: &[&Event], recent: &mut RecentIds) -> Result<(), StoreError> {
        let table = self.schema.events_table();
        let writer = self.race_checks.writer();
        for chunk in events.chunks(self.max_rows_per_insert) {
            let sent = async {
                let mut insert = self
                    .client
                    .insert_unescaped::<EventRow<'_>>(&table)
                    .await?
                    .with_timeouts(Some(self.timeout), Some(self.timeout));
                for e in chunk {
                    insert
                        .write(&EventRow {
                            id: e.id,
                            event_type: type_code(e.event_type),
                            repo_id: e.repo_id,
                            repo_name: &e.repo_name,
                            created_at: e.timestamp() as u32,
                            action: &e.action,
                            writer,
                        })
                        .await?;
                }
                insert.end().await
            };
            if let Err(e) = self.run(sent).await {
                self.partial.failed(chunk.iter().map(|e| e.id));
                return Err(e);
            }
            let (mut min, mut max) = (u32::MAX, 0);
            for e in chunk {
                recent.insert(e.id);
                let ts = e.timestamp() as u32;
                (min, max) = (min.min(ts), max.max(ts));
            }
            self.race_checks
                .schedule(min, max, chunk.iter().map(|e| e.id).collect());
        }
        Ok(())
    }
}

/// The ids of this writer's last failed `INSERT`s, and how many of their events turned out to be
/// stored all the same.
///
/// An `INSERT` into `events` that fails may have been applied in part: on a cluster, on one
/// shard and not the other (harmless: the retry finds the events stored, their counts with
/// them), or, when ZooKeeper goes away or a server dies in the middle of it, into `events` and
/// some of the tables its materialized views feed but not the others, which the retry cannot
/// see: it finds the events stored and skips them, and the count tables that missed them count
/// them never (`docs/clickhouse.md`, "An insert stored in part"). Such events are found here,
/// counted, and reported (a warning, and `partly_stored_events` in the health details) so that
/// an operator runs a recount.
#[derive(Default)]
pub(super) struct PartialInserts {
    state: std::sync::Mutex<PartialState>,
}

#[derive(Default)]
struct PartialState {
    /// Ids sent by `INSERT`s that failed, not seen by an insert since.
    unconfirmed: IdSet,
    /// Events of failed `INSERT`s that a later insert found stored.
    partly_stored: u64,
    /// Ids of such events whose derived tables are not repaired yet.
    to_repair: Vec<u64>,
    /// Repairs done.
    repairs: u64,
    /// No repair before this (after a failed one).
    next_repair: Option<std::time::Instant>,
    /// Repairs failed in a row.
    failed_repairs: u32,
}

/// The wait before a failed repair is tried again (at the next insert after it), doubled after
/// each failure up to [`MAX_REPAIR_RETRY`].
const REPAIR_RETRY: std::time::Duration = std::time::Duration::from_secs(15);
const MAX_REPAIR_RETRY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The longest a repair may take per statement: it holds the store's inserts meanwhile.
const REPAIR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// At most this many ids are remembered: a failed `INSERT` is retried with the same events
/// next, so only the last few matter.
const MAX_UNCONFIRMED: usize = 1 << 20;

impl PartialInserts {
    /// Remembers the ids of an `INSERT` that failed.
    fn failed(&self, ids: impl Iterator<Item = u64>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.unconfirmed.len() > MAX_UNCONFIRMED {
            state.unconfirmed.clear();
        }
        state.unconfirmed.extend(ids);
    }

    /// An insert looked `candidates` up and found `stored` among them: the ids of failed
    /// `INSERT`s among `stored` were stored in part. `candidates` is only walked after a
    /// failure, never on the common path.
    fn seen_again(&self, candidates: impl IntoIterator<Item = u64>, stored: &IdSet) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.unconfirmed.is_empty() {
            return;
        }
        let mut found = 0;
        for id in candidates {
            if state.unconfirmed.remove(&id) && stored.contains(&id) {
                found += 1;
                if state.to_repair.len() < MAX_UNCONFIRMED {
                    state.to_repair.push(id);
                }
            }
        }
        if found > 0 {
            state.partly_stored += found;
            tracing::warn!(
                events = found,
                total = state.partly_stored,
                "a failed insert was stored in part: repairing the tables derived from events"
            );
        }
    }

    /// Forgets the failed inserts and the repairs due: the tables they were about are gone.
    pub(super) fn forget(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.unconfirmed.clear();
        state.to_repair.clear();
        state.next_repair = None;
        state.failed_repairs = 0;
    }

    /// The ids to repair, when a repair is due.
    fn due(&self) -> Option<Vec<u64>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let waited = state
            .next_repair
            .is_none_or(|at| at <= std::time::Instant::now());
        (!state.to_repair.is_empty() && waited).then(|| state.to_repair.clone())
    }

    /// The repair of `ids` succeeded, or failed (tried again a while later).
    fn repaired(&self, ids: &[u64], ok: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            let done: IdSet = ids.iter().copied().collect();
            state.to_repair.retain(|id| !done.contains(id));
            state.repairs += 1;
            state.next_repair = None;
            state.failed_repairs = 0;
        } else {
            // A recount reads all of `events`: on a large database, failing ones are spaced out.
            state.failed_repairs += 1;
            let wait = REPAIR_RETRY
                .saturating_mul(1 << state.failed_repairs.min(8))
                .min(MAX_REPAIR_RETRY);
            state.next_repair = Some(std::time::Instant::now() + wait);
        }
    }

    /// Repairs done since the store was opened, and events still waiting for one.
    pub(super) fn repairs(&self) -> (u64, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.repairs, state.to_repair.len())
    }

    /// Events of failed `INSERT`s found stored since the store was opened.
    pub(super) fn partly_stored(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .partly_stored
    }
}

/// What every store holds without cutting or mangling it ([`Event::check_storable`]): here above
/// all a time that `DateTime` and ClickHouse's date functions handle (1970 to 2105).
fn check_storable(e: &Event) -> Result<(), StoreError> {
    e.check_storable()
        .map_err(|reason| StoreError::InvalidEvent {
            id: e.id,
            reason: reason.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_a_failed_insert_found_stored_later_are_counted_once() {
        let partial = PartialInserts::default();
        let stored: IdSet = [2, 3, 9].into_iter().collect();
        // Nothing failed: a batch found stored is plain duplicates.
        partial.seen_again([1, 2, 3], &stored);
        assert_eq!(partial.partly_stored(), 0);
        partial.failed([1, 2, 3, 4].into_iter());
        // The retry finds 2 and 3 stored (stored in part), 1 and 4 not (sent again).
        partial.seen_again([1, 2, 3, 4], &stored);
        assert_eq!(partial.partly_stored(), 2);
        // Seen once: a later batch with the same ids is not counted again.
        partial.seen_again([1, 2, 3, 4], &stored);
        assert_eq!(partial.partly_stored(), 2);
        // Ids of a failed insert not looked up yet are remembered until they are.
        partial.failed([9, 10].into_iter());
        partial.seen_again([10], &stored);
        assert_eq!(partial.partly_stored(), 2);
        partial.seen_again([9], &stored);
        assert_eq!(partial.partly_stored(), 3);
    }
}
