//! Several sources through one ingest loop: batches as they come, each commit to its source,
//! one source's end or failure ending only that source.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use github_stats_core::fake_gharchive::{FakeHour, RecordedHour};
use github_stats_core::ingest::{Ingest, IngestConfig};
use github_stats_core::parse::ParseStats;
use github_stats_core::{
    Checkpoint, Event, EventBatch, EventSource, EventStore, MemoryStore, MergedSource,
    MetricsQuery, SourceError, StoredBatch,
};
use tokio_util::sync::CancellationToken;

/// Plays batches (after a delay each), then ends, fails for good, or waits forever. Each
/// commit checks that the batch it commits is the oldest uncommitted one of this source and
/// that the store holds it.
struct Played {
    name: &'static str,
    store: Arc<MemoryStore>,
    batches: Mutex<VecDeque<Vec<Event>>>,
    delay: Duration,
    then: Then,
    commits: AtomicUsize,
    misrouted: AtomicUsize,
}

#[derive(Clone, Copy, PartialEq)]
enum Then {
    End,
    Fail,
    Wait,
}

impl Played {
    fn new(
        name: &'static str,
        store: &Arc<MemoryStore>,
        batches: Vec<Vec<Event>>,
        delay: Duration,
        then: Then,
    ) -> Arc<Played> {
        Arc::new(Played {
            name,
            store: Arc::clone(store),
            batches: Mutex::new(batches.into()),
            delay,
            then,
            commits: AtomicUsize::new(0),
            misrouted: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl EventSource for Played {
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        tokio::time::sleep(self.delay).await;
        let next = self.batches.lock().unwrap().pop_front();
        match next {
            Some(events) => {
                let checkpoint = Checkpoint::new((self.name, events.clone()));
                Ok(Some(
                    EventBatch::new(events, ParseStats::default(), self.name)
                        .with_checkpoint(checkpoint),
                ))
            }
            None => match self.then {
                Then::End => Ok(None),
                Then::Fail => Err(SourceError::Config(format!(
                    "{} is misconfigured",
                    self.name
                ))),
                Then::Wait => std::future::pending().await,
            },
        }
    }

    async fn checkpoint(&self, checkpoint: Checkpoint, _: StoredBatch) -> Result<(), SourceError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        let stored = match checkpoint.into_inner::<(&'static str, Vec<Event>)>() {
            Some((name, events)) => {
                name == self.name
                    && self.store.count_stored(&events).await.unwrap() == events.len() as u64
            }
            None => false,
        };
        if !stored {
            self.misrouted.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Real kept events, cut into `n` batches of `size`.
fn batches(hour_offset: i64, n: usize, size: usize) -> Vec<Vec<Event>> {
    let at =
        Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(hour_offset);
    let events = FakeHour::build(RecordedHour::Midnight, at).sample(0, 1);
    events.chunks(size).take(n).map(<[Event]>::to_vec).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_commit_goes_to_the_source_of_its_batch() {
    let store = Arc::new(MemoryStore::new());
    let fast = Played::new(
        "fast",
        &store,
        batches(0, 12, 40),
        Duration::ZERO,
        Then::End,
    );
    let slow = Played::new(
        "slow",
        &store,
        batches(1, 5, 60),
        Duration::from_millis(30),
        Then::End,
    );
    let merged = Arc::new(MergedSource::new(vec![
        ("fast".into(), fast.clone() as Arc<dyn EventSource>),
        ("slow".into(), slow.clone() as Arc<dyn EventSource>),
    ]));
    let mut config = IngestConfig::default();
    config.max_insert_events = 50;
    let report = Ingest::run(merged, store.clone(), config, CancellationToken::new()).await;
    assert!(report.completed, "{report:?}");
    assert_eq!(report.batches, 17);
    assert_eq!(fast.commits.load(Ordering::SeqCst), 12);
    assert_eq!(slow.commits.load(Ordering::SeqCst), 5);
    assert_eq!(fast.misrouted.load(Ordering::SeqCst), 0);
    assert_eq!(slow.misrouted.load(Ordering::SeqCst), 0);
    assert_eq!(store.total_events().await.unwrap(), 12 * 40 + 5 * 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_fails_for_good_ends_alone() {
    let store = Arc::new(MemoryStore::new());
    let broken = Played::new("broken", &store, Vec::new(), Duration::ZERO, Then::Fail);
    let good = Played::new(
        "good",
        &store,
        batches(2, 4, 50),
        Duration::from_millis(20),
        Then::End,
    );
    let merged = Arc::new(MergedSource::new(vec![
        ("archive".into(), broken as Arc<dyn EventSource>),
        ("poller".into(), good.clone() as Arc<dyn EventSource>),
    ]));
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        Ingest::run(
            merged,
            store.clone(),
            IngestConfig::default(),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(good.commits.load(Ordering::SeqCst), 4);
    assert_eq!(store.total_events().await.unwrap(), 200);
    assert!(
        !report.completed,
        "a source failed: the run is not complete"
    );
    assert!(
        report
            .source_error_messages
            .iter()
            .any(|m| m.contains("archive: broken is misconfigured")),
        "{:?}",
        report.source_error_messages
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_source_does_not_hold_up_the_other() {
    let store = Arc::new(MemoryStore::new());
    let waiting = Played::new(
        "waiting",
        &store,
        batches(3, 1, 10),
        Duration::ZERO,
        Then::Wait,
    );
    let flowing = Played::new(
        "flowing",
        &store,
        batches(4, 6, 30),
        Duration::from_millis(10),
        Then::End,
    );
    let merged = Arc::new(MergedSource::new(vec![
        ("waiting".into(), waiting.clone() as Arc<dyn EventSource>),
        ("flowing".into(), flowing.clone() as Arc<dyn EventSource>),
    ]));
    let cancel = CancellationToken::new();
    let handle = Ingest::spawn(
        merged,
        store.clone(),
        IngestConfig::default(),
        cancel.clone(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.total_events().await.unwrap() < 190 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the flowing source is held up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(flowing.commits.load(Ordering::SeqCst), 6);
    assert_eq!(waiting.commits.load(Ordering::SeqCst), 1);
    cancel.cancel();
    let report = handle.join().await.unwrap();
    assert!(!report.completed, "cancelled while a source still waits");
}
