//! The in-memory store: the embedded default.
//!
//! It keeps indexes, not events: a set of stored ids (deduplication), one sorted vector of
//! creation times per event type (window counts and timelines by binary search), and per
//! repository its counts by type and its opened pull requests' count, first and last time
//! (names interned once in an arena, shared by the lookup table and the ranking). No query scans the events; each costs
//! O(log n). About 30 bytes per event, all indexes included (see `benches/README.md`).
//!
//! With a data directory, every stored event is also appended to `events.log` (see
//! `memory/log.rs` for its format) before [`EventStore::insert_events`] returns, and replayed at open, so a restart
//! loses nothing. A lock file keeps a second process out of the same directory.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use async_trait::async_trait;

use crate::coverage::{ArchiveHour, CompleteRun};
use crate::event::{Event, EventType, RepoName, utc_from_timestamp};
use crate::id_set::IdHasher;
use crate::metrics::{
    EventCounts, InsertOutcome, PrAverage, RepoEventCount, RepoEventCounts, StoreHealth,
    TimeWindow, Timeline, TypeCounts, timeline_buckets,
};
use crate::store::{EventStore, MetricsQuery, StoreError};

mod archive;
mod log;

pub use log::ReplayReport;

/// Name of the event file inside the data directory.
pub const EVENT_FILE: &str = "events.log";
/// Name of the file of archive-hour records inside the data directory.
pub const ARCHIVE_FILE: &str = "archive-hours.jsonl";
/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// Options of [`MemoryStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MemoryStoreOptions {
    /// `fsync` after every insert (default `true`). Without it a power cut may lose the last
    /// inserts; a process crash still loses nothing.
    pub sync_writes: bool,
}

impl Default for MemoryStoreOptions {
    fn default() -> Self {
        MemoryStoreOptions { sync_writes: true }
    }
}

/// The in-memory store; see the [module documentation](self).
pub struct MemoryStore {
    index: RwLock<Index>,
    /// Serialises writers, and holds the event file when persistent.
    writer: Mutex<Option<log::EventLog>>,
    data_dir: Option<PathBuf>,
    replay: ReplayReport,
    /// Archive-hour records (and their file, when persistent).
    archive: Mutex<archive::ArchiveLedger>,
    _lock: Option<File>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// A purely in-memory store (library use, tests): nothing is written anywhere.
    pub fn new() -> MemoryStore {
        MemoryStore {
            index: RwLock::new(Index::default()),
            writer: Mutex::new(None),
            data_dir: None,
            replay: ReplayReport::default(),
            archive: Mutex::new(archive::ArchiveLedger::default()),
            _lock: None,
        }
    }

    /// A persistent store in `dir` (created if missing): locks it, replays its event file.
    pub fn open(dir: impl AsRef<Path>) -> Result<MemoryStore, StoreError> {
        MemoryStore::open_with(dir, MemoryStoreOptions::default())
    }

    /// [`MemoryStore::open`] with options.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: MemoryStoreOptions,
    ) -> Result<MemoryStore, StoreError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::io(format!("cannot create data directory {}", dir.display()), e)
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(format!("cannot open {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: dir.to_path_buf(),
                    lock: lock_path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::io(
                    format!("cannot lock {}", lock_path.display()),
                    e,
                ));
            }
        }
        let mut index = Index::default();
        let (event_log, replay) =
            log::EventLog::open(&dir.join(EVENT_FILE), options.sync_writes, |batch| {
                let fresh: Vec<&Event> = batch
                    .iter()
                    .filter(|e| !index.ids.contains(&e.id))
                    .collect();
                index.apply(&fresh);
            })?;
        if replay.torn_bytes > 0 {
            tracing::warn!(
                torn_bytes = replay.torn_bytes,
                records = replay.records,
                file = %event_log.path().display(),
                "dropped a torn last record left by a crash"
            );
        }
        let archive = archive::ArchiveLedger::open(&dir.join(ARCHIVE_FILE))?;
        Ok(MemoryStore {
            index: RwLock::new(index),
            writer: Mutex::new(Some(event_log)),
            data_dir: Some(dir.to_path_buf()),
            replay,
            archive: Mutex::new(archive),
            _lock: Some(lock),
        })
    }

    /// What replaying the event file found at open (all zero without a data directory).
    pub fn replay_report(&self) -> &ReplayReport {
        &self.replay
    }

    /// The data directory, when persistent.
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_deref()
    }

    /// Approximate heap bytes held by the indexes (capacity, not length): what
    /// `benches/README.md` divides by the event count.
    pub fn heap_bytes(&self) -> usize {
        self.read().heap_bytes()
    }

    /// Stores `events` synchronously; [`EventStore::insert_events`] calls this.
    pub fn insert_blocking(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let fresh: Vec<&Event> = {
            let index = self.read();
            let mut in_batch: HashSet<u64, IdHasher> = HashSet::default();
            events
                .iter()
                .filter(|e| !index.ids.contains(&e.id) && in_batch.insert(e.id))
                .collect()
        };
        for e in &fresh {
            if u32::try_from(e.timestamp()).is_err() {
                return Err(StoreError::InvalidEvent {
                    id: e.id,
                    reason: format!("created_at {} is outside 1970-2106", e.created_at),
                });
            }
        }
        // Durable first, visible second: a reader never sees what a crash could lose.
        if let Some(event_log) = writer.as_mut() {
            event_log.append(fresh.iter().copied())?;
        }
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .apply(&fresh);
        Ok(InsertOutcome {
            inserted: fresh.len() as u64,
            duplicates: (events.len() - fresh.len()) as u64,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        self.insert_blocking(events)
    }

    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError> {
        let index = self.read();
        let mut seen: HashSet<u64, IdHasher> = HashSet::default();
        Ok(events
            .iter()
            .filter(|e| seen.insert(e.id) && index.ids.contains(&e.id))
            .count() as u64)
    }

    async fn health(&self) -> StoreHealth {
        let index = self.read();
        let mut health = StoreHealth::new(
            self.backend_name(),
            true,
            index.ids.len() as u64,
            index.last_event_ts.and_then(utc_from_timestamp),
        );
        health.details.insert(
            "persistent".into(),
            serde_json::Value::Bool(self.data_dir.is_some()),
        );
        if let Some(dir) = &self.data_dir {
            health.details.insert(
                "data_file".into(),
                dir.join(EVENT_FILE).display().to_string().into(),
            );
            health
                .details
                .insert("replayed_records".into(), self.replay.records.into());
            health
                .details
                .insert("torn_bytes_dropped".into(), self.replay.torn_bytes.into());
        }
        health
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }

    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError> {
        self.archive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(record.clone())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        match writer.as_mut() {
            Some(event_log) => event_log.sync(),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl MetricsQuery for MemoryStore {
    async fn pr_average(&self, repo: &RepoName) -> Result<PrAverage, StoreError> {
        let index = self.read();
        Ok(match index.repos.get(repo.as_str()) {
            Some(stats) if stats.opened > 0 => PrAverage::from_extremes(
                repo.as_str(),
                u64::from(stats.opened),
                utc_from_timestamp(i64::from(stats.first_opened)),
                utc_from_timestamp(i64::from(stats.last_opened)),
            ),
            _ => PrAverage::from_extremes(repo.as_str(), 0, None, None),
        })
    }

    async fn pr_average_in(
        &self,
        repo: &RepoName,
        window: TimeWindow,
    ) -> Result<PrAverage, StoreError> {
        let index = self.read();
        let times = index
            .repos
            .find(repo.as_str())
            .and_then(|i| index.opened_times.get(&i))
            .map(|times| {
                let (lower, upper) = (
                    position(times, window.since_ts()),
                    position(times, window.until_ts()),
                );
                &times[lower..upper]
            })
            .unwrap_or_default();
        Ok(PrAverage::from_extremes(
            repo.as_str(),
            times.len() as u64,
            times
                .first()
                .and_then(|&t| utc_from_timestamp(i64::from(t))),
            times.last().and_then(|&t| utc_from_timestamp(i64::from(t))),
        ))
    }

    async fn event_counts(&self, window: TimeWindow) -> Result<EventCounts, StoreError> {
        let index = self.read();
        let mut counts = TypeCounts::default();
        for t in EventType::ALL {
            counts[t] = index.count_between(t, window.since_ts(), window.until_ts());
        }
        Ok(EventCounts { window, counts })
    }

    async fn timeline(
        &self,
        window: TimeWindow,
        bucket_seconds: i64,
    ) -> Result<Timeline, StoreError> {
        let starts = timeline_buckets(&window, bucket_seconds)?;
        let index = self.read();
        let mut counts: [Vec<u64>; 3] = Default::default();
        for t in EventType::ALL {
            let times = &index.times[t.index()];
            // One binary search per boundary: O(buckets · log n).
            let mut lower = position(times, window.since_ts());
            counts[t.index()] = starts
                .iter()
                .map(|&start| {
                    let end = (start + bucket_seconds).min(window.until_ts());
                    let upper = position(times, end);
                    let n = (upper - lower) as u64;
                    lower = upper;
                    n
                })
                .collect();
        }
        Ok(Timeline {
            window,
            bucket_seconds,
            bucket_starts: starts.into_iter().filter_map(utc_from_timestamp).collect(),
            counts,
        })
    }

    async fn repo_event_counts(&self, repo: &RepoName) -> Result<RepoEventCounts, StoreError> {
        let index = self.read();
        let counts = index
            .repos
            .get(repo.as_str())
            .map(|s| TypeCounts(s.counts.map(u64::from)))
            .unwrap_or_default();
        Ok(RepoEventCounts {
            repository: repo.as_str().to_owned(),
            counts,
        })
    }

    async fn total_events(&self) -> Result<u64, StoreError> {
        Ok(self.read().ids.len() as u64)
    }

    async fn top_repositories(&self, limit: usize) -> Result<Vec<RepoEventCount>, StoreError> {
        let index = self.read();
        Ok(index.repos.top(limit))
    }

    async fn archive_hours(&self, window: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError> {
        Ok(self
            .archive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .between(window.since_ts(), window.until_ts()))
    }

    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError> {
        Ok(self
            .archive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .complete_run())
    }
}

/// Index of the first time `>= ts` (clamped to the `u32` range the times are kept in).
fn position(times: &[u32], ts: i64) -> usize {
    if ts <= 0 {
        return 0;
    }
    if ts > i64::from(u32::MAX) {
        return times.len();
    }
    let ts = ts as u32;
    times.partition_point(|&t| t < ts)
}

#[derive(Default, Debug, Clone, Copy)]
struct RepoStats {
    counts: [u32; 3],
    opened: u32,
    first_opened: u32,
    last_opened: u32,
}

impl RepoStats {
    fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    fn add(&mut self, delta: &RepoStats) {
        for i in 0..3 {
            self.counts[i] += delta.counts[i];
        }
        if delta.opened > 0 {
            if self.opened == 0 {
                self.first_opened = delta.first_opened;
                self.last_opened = delta.last_opened;
            } else {
                self.first_opened = self.first_opened.min(delta.first_opened);
                self.last_opened = self.last_opened.max(delta.last_opened);
            }
            self.opened += delta.opened;
        }
    }

    fn add_event(&mut self, event_type: EventType, opened_at: Option<u32>) {
        self.counts[event_type.index()] += 1;
        if let Some(ts) = opened_at {
            self.add(&RepoStats {
                counts: [0; 3],
                opened: 1,
                first_opened: ts,
                last_opened: ts,
            });
        }
    }
}

/// One repository: where its name sits in the arena, and its statistics. 32 bytes.
#[derive(Debug, Clone, Copy)]
struct RepoEntry {
    name_start: u32,
    name_len: u32,
    stats: RepoStats,
}

/// Interned repositories. Names live once, back to back, in one arena; the hash table holds
/// only entry numbers; the ranking holds `(Reverse(total), entry number)`. About 70-90 bytes per
/// repository in all, against 150-180 with a map of owned names and a ranking of names.
#[derive(Default)]
struct RepoTable {
    names: String,
    entries: Vec<RepoEntry>,
    lookup: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    ranking: BTreeSet<(Reverse<u32>, u32)>,
}

impl RepoTable {
    fn name(&self, entry: &RepoEntry) -> &str {
        let start = entry.name_start as usize;
        &self.names[start..start + entry.name_len as usize]
    }

    fn find(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.lookup
            .find(hash, |&i| self.name(&self.entries[i as usize]) == name)
            .copied()
    }

    fn get(&self, name: &str) -> Option<&RepoStats> {
        self.find(name).map(|i| &self.entries[i as usize].stats)
    }

    /// Adds `delta` to `name`'s statistics, interning the name on first sight; returns its
    /// entry number.
    fn add(&mut self, name: &str, delta: &RepoStats) -> u32 {
        let index = match self.find(name) {
            Some(i) => i,
            None => {
                let i = self.entries.len() as u32;
                self.entries.push(RepoEntry {
                    name_start: self.names.len() as u32,
                    name_len: name.len() as u32,
                    stats: RepoStats::default(),
                });
                self.names.push_str(name);
                let hash = self.hasher.hash_one(name);
                let (entries, names, hasher) = (&self.entries, &self.names, &self.hasher);
                self.lookup.insert_unique(hash, i, |&j| {
                    let e = &entries[j as usize];
                    let start = e.name_start as usize;
                    hasher.hash_one(&names[start..start + e.name_len as usize])
                });
                i
            }
        };
        let stats = &mut self.entries[index as usize].stats;
        let old_total = stats.total();
        stats.add(delta);
        let new_total = stats.total();
        if old_total != new_total {
            if old_total > 0 {
                self.ranking.remove(&(Reverse(old_total), index));
            }
            self.ranking.insert((Reverse(new_total), index));
        }
        index
    }

    /// The `limit` most active repositories, ties by name. The ranking orders ties by entry
    /// number, so the last group reached is sorted by name: only that group is looked at whole.
    fn top(&self, limit: usize) -> Vec<RepoEventCount> {
        let mut out = Vec::with_capacity(limit.min(self.entries.len()));
        let mut iter = self.ranking.iter().peekable();
        while out.len() < limit {
            let Some(&(Reverse(total), first)) = iter.next() else {
                break;
            };
            let mut group = vec![first];
            while let Some(&&(Reverse(t), i)) = iter.peek() {
                if t != total {
                    break;
                }
                group.push(i);
                iter.next();
            }
            group.sort_unstable_by(|&a, &b| {
                self.name(&self.entries[a as usize])
                    .cmp(self.name(&self.entries[b as usize]))
            });
            for i in group.into_iter().take(limit - out.len()) {
                out.push(RepoEventCount {
                    repository: self.name(&self.entries[i as usize]).to_owned(),
                    event_count: u64::from(total),
                });
            }
        }
        out
    }

    fn heap_bytes(&self) -> usize {
        let lookup = buckets(self.lookup.capacity()) * (4 + 1);
        // A B-tree node holds up to 11 keys; assume two-thirds full.
        let ranking = self.ranking.len() * std::mem::size_of::<(Reverse<u32>, u32)>() * 3 / 2;
        self.names.capacity()
            + self.entries.capacity() * std::mem::size_of::<RepoEntry>()
            + lookup
            + ranking
    }
}

/// hashbrown's bucket count for a capacity: one control byte per bucket plus the value.
fn buckets(capacity: usize) -> usize {
    if capacity == 0 {
        0
    } else {
        (capacity * 8 / 7).next_power_of_two()
    }
}

#[derive(Default)]
struct Index {
    ids: HashSet<u64, IdHasher>,
    /// Creation times (seconds since the epoch), sorted, one vector per type.
    times: [Vec<u32>; 3],
    repos: RepoTable,
    /// Per repository entry with opened pull requests, their opening times, sorted: the PR
    /// average over a window by binary search.
    opened_times: HashMap<u32, Vec<u32>>,
    last_event_ts: Option<i64>,
}

impl Index {
    /// Adds events already known to be new (not in `ids`, no repeats) with valid times.
    fn apply(&mut self, events: &[&Event]) {
        if events.is_empty() {
            return;
        }
        self.ids.reserve(events.len());
        let mut new_times: [Vec<u32>; 3] = Default::default();
        // Aggregated per repository first, so the ranking moves once per repository and batch.
        let mut per_repo: HashMap<&str, (RepoStats, Vec<u32>)> = HashMap::new();
        for e in events {
            self.ids.insert(e.id);
            let ts = e.timestamp() as u32;
            new_times[e.event_type.index()].push(ts);
            let opened_at = e.is_pull_request_opened().then_some(ts);
            let (stats, opened) = per_repo.entry(e.repo_name.as_str()).or_default();
            stats.add_event(e.event_type, opened_at);
            opened.extend(opened_at);
            self.last_event_ts = Some(
                self.last_event_ts
                    .map_or(e.timestamp(), |l| l.max(e.timestamp())),
            );
        }
        for (times, new) in self.times.iter_mut().zip(new_times) {
            merge_sorted(times, new);
        }
        for (name, (delta, opened)) in per_repo {
            let entry = self.repos.add(name, &delta);
            if !opened.is_empty() {
                merge_sorted(self.opened_times.entry(entry).or_default(), opened);
            }
        }
    }

    fn count_between(&self, t: EventType, since: i64, until: i64) -> u64 {
        let times = &self.times[t.index()];
        position(times, until).saturating_sub(position(times, since)) as u64
    }

    fn heap_bytes(&self) -> usize {
        let ids = buckets(self.ids.capacity()) * (8 + 1);
        let times: usize = self.times.iter().map(|v| v.capacity() * 4).sum();
        // A map entry (key, vector header, control byte) per repository with opened pull
        // requests, and their times.
        let opened = buckets(self.opened_times.capacity()) * (4 + 24 + 1)
            + self
                .opened_times
                .values()
                .map(|v| v.capacity() * 4)
                .sum::<usize>();
        ids + times + opened + self.repos.heap_bytes()
    }
}

/// Merges `new` (unsorted) into the sorted `times`, in O(new · log new + tail), where `tail` is
/// the number of existing times greater than the smallest new one: mostly zero, since events
/// arrive roughly in time order.
fn merge_sorted(times: &mut Vec<u32>, mut new: Vec<u32>) {
    if new.is_empty() {
        return;
    }
    new.sort_unstable();
    if times.last().is_none_or(|&last| last <= new[0]) {
        times.extend_from_slice(&new);
        return;
    }
    let old_len = times.len();
    times.resize(old_len + new.len(), 0);
    let (mut i, mut j, mut k) = (old_len, new.len(), old_len + new.len());
    while j > 0 {
        if i > 0 && times[i - 1] > new[j - 1] {
            times[k - 1] = times[i - 1];
            i -= 1;
        } else {
            times[k - 1] = new[j - 1];
            j -= 1;
        }
        k -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_times_sorted() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut times = Vec::new();
        let mut all = Vec::new();
        for _ in 0..50 {
            let batch: Vec<u32> = (0..rng.usize(0..40)).map(|_| rng.u32(0..1000)).collect();
            all.extend_from_slice(&batch);
            merge_sorted(&mut times, batch);
        }
        all.sort_unstable();
        assert_eq!(times, all);
    }

    #[test]
    fn a_second_open_of_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = MemoryStore::open(dir.path()).unwrap();
        let err = MemoryStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another process"));
    }
}
