//! The ingest loop: buffering through store outages, a full buffer, shutdown, finite sources,
//! and the poller end to end.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use github_stats_core::conformance::{self, fixtures};
use github_stats_core::parse::{ParseStats, RecordOutcome, parse_record};
use github_stats_core::source::github::PollMode;
use github_stats_core::{
    ArchiveHour, Checkpoint, Event, EventBatch, EventSource, EventStore, EventType, MemoryStore,
    MetricsQuery, SourceError, StoreError, StoredBatch,
};
use github_stats_core::{FileSource, GitHubConfig, GitHubPoller};
use github_stats_core::{Ingest, IngestConfig, IngestStatus};
use github_stats_core::{InsertOutcome, StoreHealth};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use github_stats_core::fake_github::{FakeGitHub, Reply, kept_ids, recorded_events};

/// A [`MemoryStore`] that fails on demand, and can be slow.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    down: AtomicBool,
    delay_ms: AtomicUsize,
    calls: AtomicUsize,
    /// When set, inserts left before the store goes down again.
    inserts_left: Mutex<Option<usize>>,
}

impl FlakyStore {
    fn down() -> Arc<FlakyStore> {
        let store = FlakyStore::default();
        store.down.store(true, Ordering::SeqCst);
        Arc::new(store)
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl EventStore for FlakyStore {
    async fn insert_events(&self, events: &[Event]) -> Result<InsertOutcome, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay as u64)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "connection refused (test outage)".into(),
            ));
        }
        if let Some(left) = &mut *self.inserts_left.lock().unwrap() {
            if *left == 0 {
                self.down.store(true, Ordering::SeqCst);
                return Err(StoreError::Unavailable("gone again (test outage)".into()));
            }
            *left -= 1;
        }
        self.inner.insert_events(events).await
    }

    async fn health(&self) -> StoreHealth {
        self.inner.health().await
    }

    async fn record_archive_hour(&self, record: &ArchiveHour) -> Result<(), StoreError> {
        self.inner.record_archive_hour(record).await
    }

    async fn count_stored(&self, events: &[Event]) -> Result<u64, StoreError> {
        self.inner.count_stored(events).await
    }

    fn backend_name(&self) -> &'static str {
        "flaky"
    }
}

/// A source playing prepared batches, then either ending (`finite`) or waiting forever.
struct ScriptedSource {
    batches: Mutex<VecDeque<EventBatch>>,
    finite: bool,
    pulls: AtomicUsize,
    commits: AtomicUsize,
}

impl ScriptedSource {
    fn new(batches: Vec<Vec<Event>>, finite: bool) -> Arc<ScriptedSource> {
        Arc::new(ScriptedSource {
            batches: Mutex::new(
                batches
                    .into_iter()
                    .map(|events| EventBatch::new(events, ParseStats::default(), "script"))
                    .collect(),
            ),
            finite,
            pulls: AtomicUsize::new(0),
            commits: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl EventSource for ScriptedSource {
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        let next = self.batches.lock().unwrap().pop_front();
        match next {
            Some(batch) => Ok(Some(batch)),
            None if self.finite => Ok(None),
            None => std::future::pending().await,
        }
    }

    async fn checkpoint(&self, _: Checkpoint, _: StoredBatch) -> Result<(), SourceError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The kept events of recorded JSON values.
fn kept(values: &[Value]) -> Vec<Event> {
    values
        .iter()
        .filter_map(|v| match parse_record(v.to_string().as_bytes()) {
            RecordOutcome::Kept(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn fast_config() -> IngestConfig {
    let mut config = IngestConfig::default();
    config.min_retry = Duration::from_millis(10);
    config.max_retry = Duration::from_millis(20);
    config.source_error_pause = Duration::from_millis(5);
    config
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn snapshot(status: &IngestStatus) -> github_stats_core::IngestSnapshot {
    status.snapshot()
}

#[tokio::test]
async fn a_store_outage_keeps_events_buffered_and_inserts_them_once_back() {
    let recent = kept(&recorded_events("events-2020-04-25", 1));
    let older = kept(&recorded_events("events-2017-12-29", 1));
    let mut pages = Vec::new();
    for page in 1..=3 {
        pages.extend(recorded_events("user-events-3-pages-2017", page));
    }
    let pages = kept(&pages);
    // The second batch repeats half of the first, as overlapping polls do.
    let mut second: Vec<Event> = recent[recent.len() / 2..].to_vec();
    second.extend(older.iter().cloned());
    let batches = vec![recent.clone(), second.clone(), pages.clone()];
    let total: usize = batches.iter().map(Vec::len).sum();
    let distinct: HashSet<u64> = batches.iter().flatten().map(|e| e.id).collect();
    assert!(distinct.len() < total, "the script holds repeats");

    let store = FlakyStore::down();
    let source = ScriptedSource::new(batches, false);
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(source.clone(), store.clone(), fast_config(), cancel.clone());
    let status = handle.status();

    eventually("three batches and retries", || {
        let s = snapshot(&status);
        s.batches == 3 && s.store_failures >= 3
    })
    .await;
    let s = snapshot(&status);
    assert_eq!(
        s.buffered, total as u64,
        "nothing dropped while the store is down"
    );
    assert!(s.degraded && s.running && !s.paused);
    assert!(s.last_store_error.unwrap().contains("unavailable"));
    assert_eq!(s.inserted, 0);
    assert_eq!(store.inner.total_events().await.unwrap(), 0);
    assert_eq!(
        source.commits.load(Ordering::SeqCst),
        0,
        "nothing stored, nothing committed"
    );

    store.set_down(false);
    eventually("the buffer drains", || snapshot(&status).buffered == 0).await;
    let s = snapshot(&status);
    assert_eq!(
        store.inner.total_events().await.unwrap(),
        distinct.len() as u64
    );
    assert_eq!(s.inserted, distinct.len() as u64, "none lost");
    assert_eq!(
        s.duplicates,
        (total - distinct.len()) as u64,
        "none doubled"
    );
    assert!(!s.degraded);
    assert_eq!(s.consecutive_store_failures, 0);
    assert_eq!(
        source.commits.load(Ordering::SeqCst),
        3,
        "one commit per batch"
    );

    cancel.cancel();
    let report = handle.join().await.unwrap();
    assert!(!report.completed);
    assert_eq!(report.unflushed, 0);
    assert_eq!(report.inserted, distinct.len() as u64);
    assert!(report.store_failures >= 3);
    assert!(!status.snapshot().running);
}

/// A loop whose runtime shut down before it returned has no report: `join` says so instead of
/// an all-zero report that would read as "nothing to do".
#[test]
fn joining_an_aborted_loop_is_an_error() {
    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = doomed.block_on(async {
        Ingest::spawn(
            ScriptedSource::new(vec![], false),
            Arc::new(MemoryStore::new()),
            fast_config(),
            CancellationToken::new(),
        )
    });
    // Shutting the runtime down cancels the loop's task where it waits for the source.
    drop(doomed);
    let joined = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(handle.join());
    assert_eq!(joined.unwrap_err(), github_stats_core::IngestError::Aborted);
}

#[tokio::test]
async fn a_full_buffer_pauses_the_source_without_dropping() {
    let mut pages = Vec::new();
    for page in 1..=3 {
        pages.extend(recorded_events("user-events-3-pages-2017", page));
    }
    let events = kept(&pages);
    assert!(events.len() >= 30);
    let batches: Vec<Vec<Event>> = events[..30].chunks(6).map(<[Event]>::to_vec).collect();
    let store = FlakyStore::down();
    let source = ScriptedSource::new(batches, true);
    let mut config = fast_config();
    config.buffer_capacity = 10;
    let handle = Ingest::spawn(
        source.clone(),
        store.clone(),
        config,
        CancellationToken::new(),
    );
    let status = handle.status();

    eventually("the buffer fills", || snapshot(&status).paused).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let s = snapshot(&status);
    assert!(s.paused && s.degraded);
    assert_eq!(s.buffered, 12, "two batches of 6 reach the capacity of 10");
    assert_eq!(s.capacity, 10);
    assert_eq!(source.pulls.load(Ordering::SeqCst), 2, "no pull while full");

    store.set_down(false);
    let report = handle.join().await.unwrap();
    assert!(report.completed);
    assert_eq!(report.inserted, 30);
    assert_eq!(report.batches, 5);
    assert_eq!(store.inner.total_events().await.unwrap(), 30);
    assert!(!status.snapshot().paused);
}

#[tokio::test]
async fn shutdown_flushes_the_buffer() {
    let events = kept(&recorded_events("user-events-3-pages-2017", 1));
    let (a, b) = events.split_at(events.len() / 2);
    let store = FlakyStore::down();
    let source = ScriptedSource::new(vec![a.to_vec(), b.to_vec()], false);
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(source.clone(), store.clone(), fast_config(), cancel.clone());
    let status = handle.status();
    eventually("both batches buffered", || snapshot(&status).batches == 2).await;

    let started = Instant::now();
    cancel.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !handle.is_finished(),
        "still flushing while the store is down"
    );
    store.set_down(false);
    let report = handle.join().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.unflushed, 0);
    assert_eq!(report.inserted, events.len() as u64);
    assert_eq!(
        store.inner.total_events().await.unwrap(),
        events.len() as u64
    );
    assert_eq!(source.commits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_gives_up_in_bounded_time_and_says_what_was_left() {
    let events = kept(&recorded_events("events-2017-12-29", 1));
    let store = FlakyStore::down();
    let source = ScriptedSource::new(vec![events.clone()], false);
    let cancel = CancellationToken::new();
    let mut config = fast_config();
    config.shutdown_timeout = Duration::from_millis(200);
    let handle = Ingest::spawn(source, store, config, cancel.clone());
    let status = handle.status();
    eventually("the batch is buffered", || snapshot(&status).batches == 1).await;

    let started = Instant::now();
    cancel.cancel();
    let report = handle.join().await.unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(report.unflushed, events.len() as u64);
    assert_eq!(report.inserted, 0);
}

#[tokio::test]
async fn shutdown_finishes_the_insert_in_flight() {
    let events = kept(&recorded_events("events-2020-04-25", 1));
    let store = Arc::new(FlakyStore::default());
    store.delay_ms.store(300, Ordering::SeqCst);
    let source = ScriptedSource::new(vec![events.clone()], false);
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(source.clone(), store.clone(), fast_config(), cancel.clone());
    eventually("the insert started", || {
        store.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    cancel.cancel();
    let report = handle.join().await.unwrap();
    assert_eq!(report.inserted, events.len() as u64);
    assert_eq!(report.unflushed, 0);
    assert_eq!(
        store.inner.total_events().await.unwrap(),
        events.len() as u64
    );
    assert_eq!(source.commits.load(Ordering::SeqCst), 1);
}

/// Every insert's duration is recorded, failed ones included: what `/metrics` exports as
/// `github_stats_ingest_insert_duration_seconds`.
#[tokio::test]
async fn insert_durations_are_measured_failed_inserts_included() {
    let first = kept(&recorded_events("events-2020-04-25", 1));
    let second = kept(&recorded_events("events-2017-12-29", 1));
    let store = FlakyStore::down();
    store.delay_ms.store(30, Ordering::SeqCst);
    let source = ScriptedSource::new(vec![first, second], false);
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(source.clone(), store.clone(), fast_config(), cancel.clone());
    let status = handle.status();
    eventually("two failed inserts", || {
        snapshot(&status).store_failures >= 2
    })
    .await;
    store.set_down(false);
    eventually("the buffer drains", || snapshot(&status).buffered == 0).await;
    cancel.cancel();
    handle.join().await.unwrap();

    let s = status.snapshot();
    let calls = store.calls.load(Ordering::SeqCst) as u64;
    let histogram = &s.insert_duration;
    assert_eq!(
        histogram.count, calls,
        "one duration per insert: {histogram:?}"
    );
    assert!(
        calls > s.store_failures,
        "successful inserts were measured too"
    );
    assert_eq!(histogram.buckets.iter().sum::<u64>(), calls);
    // Each insert slept 30 ms: none in a bucket up to 25 ms, the sum at least 30 ms each.
    for (bound, count) in histogram.bucket_counts() {
        if bound < 0.03 {
            assert_eq!(count, 0, "bucket <= {bound} s: {histogram:?}");
        }
    }
    assert!(
        histogram.sum_seconds >= 0.03 * calls as f64,
        "{histogram:?}"
    );
    // /health shows the count and the sum, not the buckets.
    let shown = serde_json::to_value(&s).unwrap();
    assert_eq!(shown["insert_duration"]["count"], calls);
    assert!(shown["insert_duration"].get("buckets").is_none(), "{shown}");
}

#[tokio::test]
async fn a_finite_source_ends_with_a_report_and_a_rerun_adds_nothing() {
    let files = vec![
        fixtures::path("api-responses/events-2020-04-25/01.body.json"),
        fixtures::path("api-responses/events-2017-12-29/01.body.json"),
        fixtures::path("samples/2021-07-21-few-hours.jsonl"),
    ];
    let mut values = fixtures::json_records("api-responses/events-2020-04-25/01.body.json");
    values.extend(fixtures::json_records(
        "api-responses/events-2017-12-29/01.body.json",
    ));
    values.extend(fixtures::json_records("samples/2021-07-21-few-hours.jsonl"));
    let expected = kept_ids(&values).len() as u64;

    let store = Arc::new(MemoryStore::new());
    let run = |store: Arc<MemoryStore>| {
        // Chunks larger than any of the files: one batch per file.
        let source = Arc::new(FileSource::with_chunk_bytes(files.clone(), 64 << 20));
        Ingest::run(source, store, fast_config(), CancellationToken::new())
    };
    let first = run(store.clone()).await;
    assert!(first.completed);
    assert_eq!(first.batches, 3);
    assert_eq!(first.inserted, expected);
    assert_eq!(first.stats.records, values.len() as u64);
    assert_eq!(first.stats.kept_total(), expected);
    assert_eq!(first.source_errors, 0);
    assert_eq!(store.total_events().await.unwrap(), expected);

    let second = run(store.clone()).await;
    assert!(second.completed);
    assert_eq!(second.inserted, 0);
    assert_eq!(second.duplicates, expected);
    assert_eq!(store.total_events().await.unwrap(), expected);

    // A missing file is reported, and the rest still goes in.
    let source = Arc::new(FileSource::new(vec![
        fixtures::path("no/such/file.json"),
        files[0].clone(),
    ]));
    let fresh = Arc::new(MemoryStore::new());
    let report = Ingest::run(
        source,
        fresh.clone(),
        fast_config(),
        CancellationToken::new(),
    )
    .await;
    assert!(report.completed);
    assert_eq!(report.source_errors, 1);
    assert!(report.source_error_messages[0].contains("no/such/file.json"));
    let one_file = kept_ids(&fixtures::json_records(
        "api-responses/events-2020-04-25/01.body.json",
    ));
    assert_eq!(fresh.total_events().await.unwrap(), one_file.len() as u64);
}

#[tokio::test]
async fn an_event_the_store_refuses_is_the_only_one_dropped() {
    let mut events = kept(&recorded_events("events-2020-04-25", 1));
    let n = events.len();
    let mut ancient = conformance::event(42, EventType::WatchEvent, "o/r", 0, "started");
    ancient.created_at = chrono::DateTime::from_timestamp(-86_400 * 365, 0).unwrap();
    events.insert(1, ancient);
    let store = Arc::new(MemoryStore::new());
    let source = ScriptedSource::new(vec![events], true);
    let report = Ingest::run(
        source.clone(),
        store.clone(),
        fast_config(),
        CancellationToken::new(),
    )
    .await;
    assert!(report.completed);
    assert_eq!(report.rejected, 1);
    assert_eq!(report.inserted, n as u64);
    assert_eq!(store.total_events().await.unwrap(), n as u64);
    assert_eq!(source.commits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_poller_feeds_the_store_through_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let recent = recorded_events("events-2020-04-25", 1);
    let older = recorded_events("events-2017-12-29", 1);
    let fake = FakeGitHub::start(vec![
        Reply::events(&recent[10..], "W/\"a\"").header("X-Poll-Interval", 1),
        Reply::events(&recent[..20], "W/\"b\"").header("X-Poll-Interval", 1),
        Reply::events(&older, "W/\"c\"").header("X-Poll-Interval", 1),
    ])
    .await;
    fake.set_fallback(Reply::not_modified().header("X-Poll-Interval", 1));
    let mut config = GitHubConfig::new(fake.url());
    config.time_unit = Duration::from_millis(5);
    config.state_file = Some(dir.path().join("client-state.json"));
    let poller = Arc::new(GitHubPoller::new(config).unwrap());
    let poller_status = poller.status();

    let store = FlakyStore::down();
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(poller.clone(), store.clone(), fast_config(), cancel.clone());
    let status = handle.status();
    eventually("three polls buffered", || snapshot(&status).batches == 3).await;
    assert!(snapshot(&status).degraded);
    assert!(
        poller_status.snapshot().counters.not_modified > 0 || fake.polls().len() >= 3,
        "the poller keeps polling while the store is down"
    );
    store.set_down(false);
    eventually("stored", || {
        let s = snapshot(&status);
        s.buffered == 0 && s.inserted > 0
    })
    .await;
    cancel.cancel();
    let report = handle.join().await.unwrap();

    let mut everything = recent.clone();
    everything.extend(older);
    let distinct = kept_ids(&everything).len() as u64;
    assert_eq!(store.inner.total_events().await.unwrap(), distinct);
    assert_eq!(report.inserted, distinct);
    assert_eq!(report.unflushed, 0);
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("client-state.json")).unwrap())
            .unwrap();
    assert_eq!(
        state["etag"], "W/\"c\"",
        "the last stored poll is committed"
    );
    let c = poller_status.snapshot().counters;
    assert_eq!(
        (c.duplicate_events, c.overlapping_polls, c.gaps),
        (10, 1, 1)
    );
}

/// Recorded `WatchEvent`s given ids `first..first + n`: a stream of distinct kept events.
fn stream_of_watch_events(first: u64, n: usize) -> Vec<Value> {
    let template = recorded_events("events-2020-04-25", 1)
        .into_iter()
        .find(|e| e["type"] == "WatchEvent")
        .expect("a recorded WatchEvent");
    (0..n as u64)
        .map(|i| {
            let mut event = template.clone();
            event["id"] = Value::String((first + i).to_string());
            event
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_away_for_more_than_1024_polls_then_a_restart_loses_nothing() {
    a_store_away_then_a_restart(PollMode::Interval).await;
}

/// The same with the adaptive pace (issue #22): the rate limit's headers, not
/// `X-Poll-Interval`, set when each poll comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_away_then_a_restart_loses_nothing_with_the_adaptive_pace() {
    a_store_away_then_a_restart(PollMode::Adaptive).await;
}

async fn a_store_away_then_a_restart(mode: PollMode) {
    const POLLS: usize = 1_100;
    const WINDOW: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("client-state.json");
    // Each poll brings one new event: the latest WINDOW of the stream, under a new ETag.
    let stream = stream_of_watch_events(9_000_000_000, POLLS + WINDOW - 1);
    let etag = |n: usize| format!("W/\"poll-{n}\"");
    let budgeted = |reply: Reply| match mode {
        // A whole hour's budget, its reset an hour away: a poll every 0.8 s of GitHub's time.
        PollMode::Adaptive => reply
            .header("X-RateLimit-Limit", 5000)
            .header("X-RateLimit-Remaining", 5000)
            .header("X-RateLimit-Reset", chrono::Utc::now().timestamp() + 3600),
        _ => reply,
    };
    let script: Vec<Reply> = (0..POLLS)
        .map(|n| budgeted(Reply::events(&stream[n..n + WINDOW], &etag(n))))
        .collect();
    let fake = FakeGitHub::start(script).await;
    fake.set_fallback(budgeted(Reply::not_modified()));
    let mut config = GitHubConfig::new(fake.url());
    // X-Poll-Interval's default 60 s in 60 µs: a fast fake.
    config.time_unit = Duration::from_micros(1);
    config.state_file = Some(state_file.clone());
    config.mode = mode;
    let poller = Arc::new(GitHubPoller::new(config.clone()).unwrap());

    let store = FlakyStore::down();
    let mut ingest = fast_config();
    ingest.min_retry = Duration::from_millis(1);
    ingest.max_retry = Duration::from_millis(2);
    ingest.max_insert_events = 10;
    ingest.shutdown_timeout = Duration::from_millis(50);
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(poller.clone(), store.clone(), ingest, cancel.clone());
    let status = handle.status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while snapshot(&status).batches < POLLS as u64 {
        assert!(
            Instant::now() < deadline,
            "the fake's polls were not all read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        snapshot(&status).inserted,
        0,
        "the store was away for every poll"
    );

    // The store comes back for three inserts of ten polls, then goes away again; the process
    // stops with the rest buffered (as a crash would leave it).
    *store.inserts_left.lock().unwrap() = Some(3);
    store.set_down(false);
    eventually("three inserts", || {
        *store.inserts_left.lock().unwrap() == Some(0) && snapshot(&status).inserted > 0
    })
    .await;
    cancel.cancel();
    let report = handle.join().await.unwrap();
    assert!(report.unflushed > 0, "{report:?}");
    let stored_before_restart = store.inner.total_events().await.unwrap();
    // Three inserts: the first as it was made when the store went away (poll 0's WINDOW new
    // events, and the polls buffered then, one event each: at most ten), retried as it was,
    // then two of ten polls.
    assert!(
        (WINDOW as u64 + 20..=30).contains(&stored_before_restart),
        "{stored_before_restart}"
    );
    let last_stored_poll = stored_before_restart as usize - WINDOW;

    // The state file names a poll whose events are all stored, and that poll's ETag.
    let state: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let ids: Vec<u64> = state["last_poll_event_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let stream_events = kept(&stream);
    let by_id: std::collections::HashMap<u64, &Event> =
        stream_events.iter().map(|e| (e.id, e)).collect();
    let named: Vec<Event> = ids.iter().map(|id| by_id[id].clone()).collect();
    assert_eq!(
        store.inner.count_stored(&named).await.unwrap(),
        ids.len() as u64,
        "the state file is never ahead of the store"
    );
    assert_eq!(state["etag"], etag(last_stored_poll).as_str());

    // A restart polls the window GitHub shows now (the stream's last WINDOW events): none of
    // it was stored, and all of it is, once each.
    drop(poller);
    let fake = FakeGitHub::start(vec![budgeted(Reply::events(
        &stream[POLLS - 1..],
        &etag(POLLS),
    ))])
    .await;
    fake.set_fallback(budgeted(Reply::not_modified()));
    let mut config = config.clone();
    config.api_url = fake.url().into();
    let poller = Arc::new(GitHubPoller::new(config).unwrap());
    let poller_status = poller.status();
    store.set_down(false);
    *store.inserts_left.lock().unwrap() = None;
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(poller, store.clone(), fast_config(), cancel.clone());
    let status = handle.status();
    eventually("the window stored", || {
        snapshot(&status).inserted >= WINDOW as u64
    })
    .await;
    cancel.cancel();
    let report = handle.join().await.unwrap();
    assert_eq!(report.inserted, WINDOW as u64);
    assert_eq!(report.duplicates, 0, "nothing stored twice");
    let window = kept(&stream[POLLS - 1..]);
    assert_eq!(
        store.inner.count_stored(&window).await.unwrap(),
        WINDOW as u64
    );
    assert_eq!(
        store.inner.total_events().await.unwrap(),
        stored_before_restart + WINDOW as u64
    );
    assert_eq!(poller_status.snapshot().capture.mode, mode.as_str());
}

/// A source that always fails, remotely or for good.
struct FailingSource {
    fatal: bool,
    pulls: AtomicUsize,
}

#[async_trait]
impl EventSource for FailingSource {
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        self.pulls.fetch_add(1, Ordering::SeqCst);
        if self.fatal {
            Err(SourceError::Config("no such API".into()))
        } else {
            Err(SourceError::Remote("GitHub answered HTTP 500".into()))
        }
    }
}

#[tokio::test]
async fn failing_sources_neither_spin_nor_hang() {
    let flaky = Arc::new(FailingSource {
        fatal: false,
        pulls: AtomicUsize::new(0),
    });
    let mut config = fast_config();
    config.source_error_pause = Duration::from_millis(20);
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(
        flaky.clone(),
        Arc::new(MemoryStore::new()),
        config.clone(),
        cancel.clone(),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let status = handle.status().snapshot();
    cancel.cancel();
    let report = handle.join().await.unwrap();
    let pulls = flaky.pulls.load(Ordering::SeqCst);
    assert!((2..=12).contains(&pulls), "{pulls} pulls in 200 ms");
    assert!(status.last_source_error.unwrap().contains("500"));
    assert_eq!(report.source_errors, pulls as u64);

    let fatal = Arc::new(FailingSource {
        fatal: true,
        pulls: AtomicUsize::new(0),
    });
    let report = Ingest::run(
        fatal.clone(),
        Arc::new(MemoryStore::new()),
        config,
        CancellationToken::new(),
    )
    .await;
    assert!(!report.completed);
    assert_eq!(fatal.pulls.load(Ordering::SeqCst), 1);
    assert!(report.source_error_messages[0].contains("no such API"));
}

/// A saved poll file holding events no store may hold (a 70,000-character repository name, a
/// time in 2200): the loop's status counts them as invalid, and the store never sees them.
#[tokio::test]
async fn invalid_events_are_counted_in_the_status_and_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut values = fixtures::json_records("api-responses/events-2020-04-25/01.body.json");
    let kept_at: Vec<usize> = (0..values.len())
        .filter(|&i| !kept_ids(&values[i..=i]).is_empty())
        .collect();
    values[kept_at[0]]["repo"]["name"] = Value::from(format!("a/{}", "b".repeat(70_000)));
    values[kept_at[1]]["created_at"] = Value::from("2200-01-01T00:00:00Z");
    let path = dir.path().join("2020-04-25T10-00-00.json");
    std::fs::write(&path, serde_json::to_vec(&values).unwrap()).unwrap();

    let store = Arc::new(MemoryStore::new());
    let handle = Ingest::spawn(
        Arc::new(FileSource::new(vec![path])),
        store.clone(),
        fast_config(),
        CancellationToken::new(),
    );
    let status = handle.status();
    let report = handle.join().await.unwrap();
    assert!(report.completed);
    assert_eq!(report.stats.invalid, 2);
    assert_eq!(status.snapshot().invalid, 2);
    let valid = kept_ids(&values).len() as u64 - 2;
    assert_eq!(store.total_events().await.unwrap(), valid);
    assert_eq!(report.inserted, valid);
}
