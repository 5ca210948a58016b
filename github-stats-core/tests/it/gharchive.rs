//! The GH Archive follower against the fake archive (real sockets, recorded hours moved to
//! recent dates): imports, the archive's answers and faults, restarts, coverage, bounds.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use github_stats_core::coverage::ArchiveStatus;
use github_stats_core::fake_gharchive::{Answer, FakeArchive, FakeHour, RecordedHour};
use github_stats_core::ingest::{Ingest, IngestConfig, IngestReport};
use github_stats_core::source::gharchive::{
    ArchiveState, GhArchiveConfig, GhArchiveSource, archive_file_name,
};
use github_stats_core::{
    ArchiveHour, Checkpoint, EventBatch, EventSource, EventStore, MemoryStore, MetricsQuery,
    SharedStore, SourceError, StoredBatch, TimeWindow,
};
use tokio_util::sync::CancellationToken;

/// 04:00 UTC three days ago: older than the default grace period (24 h), and a single-digit
/// hour (GH Archive does not pad it).
fn base_hour() -> DateTime<Utc> {
    let day = (Utc::now() - chrono::Duration::days(3)).date_naive();
    Utc.from_utc_datetime(&day.and_hms_opt(4, 0, 0).unwrap())
}

fn hour(n: i64) -> DateTime<Utc> {
    base_hour() + chrono::Duration::hours(n)
}

/// A backfill of `[hour(from), hour(until))` from `url`, with test timings.
fn config(url: &str, from: i64, until: i64) -> GhArchiveConfig {
    let mut config = GhArchiveConfig::backfill(hour(from), hour(until));
    config.base_url = url.into();
    config.min_retry = Duration::from_millis(20);
    config.max_retry = Duration::from_millis(100);
    config.unpublished_retry = Duration::from_millis(50);
    config.max_unpublished_retry = Duration::from_millis(200);
    config.stall_timeout = Duration::from_secs(5);
    config.batch_size = 300;
    config.parallel = 2;
    config
}

/// Like [`config`], following as the server does: waiting for hours not published yet.
fn live_config(url: &str, from: i64, until: i64) -> GhArchiveConfig {
    let mut config = config(url, from, until);
    config.wait_for_publication = true;
    config.retry_damaged = false;
    config
}

fn memory() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new())
}

async fn run(source: Arc<dyn EventSource>, store: SharedStore) -> IngestReport {
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        Ingest::run(
            source,
            store,
            IngestConfig::default(),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("the import ends");
    assert!(report.completed, "{report:?}");
    report
}

async fn records(store: &dyn MetricsQuery, from: i64, until: i64) -> Vec<ArchiveHour> {
    store
        .archive_hours(TimeWindow::new(hour(from), hour(until)).unwrap())
        .await
        .unwrap()
}

async fn record(store: &dyn MetricsQuery, n: i64) -> ArchiveHour {
    let mut found = records(store, n, n + 1).await;
    assert_eq!(found.len(), 1, "one record of hour {n}: {found:?}");
    found.pop().unwrap()
}

/// The store's counts over the fake hour's hour, by type.
async fn counts_in(store: &dyn MetricsQuery, fake: &FakeHour) -> [u64; 3] {
    let window = TimeWindow::new(fake.hour, fake.hour + chrono::Duration::hours(1)).unwrap();
    store.event_counts(window).await.unwrap().counts.0
}

/// Records the origin of every batch a source yields (the ingest loop commits in this order).
struct Recording {
    inner: Arc<GhArchiveSource>,
    origins: Mutex<Vec<String>>,
}

#[async_trait]
impl EventSource for Recording {
    async fn next_batch(&self) -> Result<Option<EventBatch>, SourceError> {
        let batch = self.inner.next_batch().await?;
        if let Some(b) = &batch {
            self.origins.lock().unwrap().push(b.origin.clone());
        }
        Ok(batch)
    }

    async fn checkpoint(
        &self,
        checkpoint: Checkpoint,
        stored: StoredBatch,
    ) -> Result<(), SourceError> {
        self.inner.checkpoint(checkpoint, stored).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_are_imported_whole_and_recorded() {
    let noon = FakeHour::build(RecordedHour::Noon, hour(0));
    let midnight = FakeHour::build(RecordedHour::Midnight, hour(1));
    let archive = FakeArchive::start().await;
    archive.put_hour(&noon);
    archive.put_hour(&midnight);
    let store = memory();
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 2), &*store)
            .await
            .unwrap(),
    );
    let status = source.status();
    let report = run(source, store.clone()).await;

    let distinct = noon.kept().len() + midnight.kept().len();
    assert_eq!(store.total_events().await.unwrap(), distinct as u64);
    assert_eq!(report.inserted, distinct as u64);
    assert_eq!(report.duplicates, 0);
    assert_eq!(counts_in(store.as_ref(), &noon).await, noon.kept_by_type());
    assert_eq!(
        counts_in(store.as_ref(), &midnight).await,
        midnight.kept_by_type()
    );
    assert_eq!(report.stats.records, noon.lines + midnight.lines);
    for (n, fake) in [(0, &noon), (1, &midnight)] {
        let r = record(store.as_ref(), n).await;
        assert_eq!(r.status, ArchiveStatus::Imported);
        assert_eq!(r.archive_events, fake.kept().len() as u64);
        assert_eq!(r.polled_before_archive, 0, "nothing was stored before");
    }
    let run = store.complete_run().await.unwrap().unwrap();
    assert_eq!((run.from, run.until), (hour(0), hour(2)));

    // GH Archive's names: the hour not zero-padded; one request per hour; who is asking.
    let requests = archive.requests();
    // Both hours are fetched at once: in either order.
    let mut paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    let day = hour(0).format("%Y-%m-%d");
    assert_eq!(
        paths,
        [format!("/{day}-4.json.gz"), format!("/{day}-5.json.gz")]
    );
    for r in &requests {
        let agent = r.user_agent.as_deref().unwrap();
        assert!(
            agent.starts_with("github-stats/") && agent.contains("(+https://"),
            "{agent}"
        );
    }
    let s = status.snapshot();
    assert_eq!(s.counters.imported, 2);
    assert_eq!(s.next_hour, Some(hour(2)));
    assert_eq!(s.last_imported_hour, Some(hour(1)));
    assert!(s.finished && s.fetching.is_empty() && !s.degraded);
    assert!(s.hours_behind >= 60, "{} hours behind", s.hours_behind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_not_published_yet_is_waited_for_404_and_403_alike() {
    let fake = FakeHour::build(RecordedHour::Noon, hour(0));
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    let name = fake.file_name();
    archive.script(
        &name,
        [
            Answer::Status(404),
            Answer::Status(403),
            Answer::Status(404),
        ],
    );
    let store = memory();
    let mut config = live_config(&archive.url(), 0, 1);
    // Not yet past its grace period: the follower must wait, not give up.
    config.missing_after = Duration::from_secs(3650 * 86_400);
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    run(source, store.clone()).await;

    let r = record(store.as_ref(), 0).await;
    assert_eq!(r.status, ArchiveStatus::Imported);
    assert_eq!(r.archive_events, fake.kept().len() as u64);
    let requests = archive.requests();
    assert_eq!(requests.len(), 4);
    // Backoff: 50 ms doubling (with jitter, at least half of it).
    for (pair, min) in requests.windows(2).zip([25, 50, 100]) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(min), "{gap:?} < {min} ms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_past_the_grace_period_is_missing_and_the_next_hour_imported() {
    let next = FakeHour::build(RecordedHour::Midnight, hour(1));
    let archive = FakeArchive::start().await;
    archive.put_hour(&next);
    let store = memory();
    // Following live: the hole is older than missing_after (24 h), so it is given up.
    let source = Arc::new(
        GhArchiveSource::open(live_config(&archive.url(), 0, 2), &*store)
            .await
            .unwrap(),
    );
    let status = source.status();
    run(source, store.clone()).await;

    let hole = record(store.as_ref(), 0).await;
    assert_eq!(hole.status, ArchiveStatus::Missing);
    assert_eq!(hole.archive_events, 0);
    assert_eq!(
        record(store.as_ref(), 1).await.status,
        ArchiveStatus::Imported
    );
    let missing_name = github_stats_core::source::gharchive::archive_file_name(hour(0));
    assert_eq!(
        archive.requests_for(&missing_name),
        2,
        "asked twice, then recorded"
    );
    assert_eq!(archive.requests_for(&next.file_name()), 1);
    assert_eq!(
        store.total_events().await.unwrap(),
        next.kept().len() as u64
    );
    let s = status.snapshot();
    assert_eq!((s.counters.missing, s.counters.imported), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_downloads_are_retried_and_nothing_is_counted_twice() {
    let fake = FakeHour::build(RecordedHour::Noon, hour(0));
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    let name = fake.file_name();
    let len = fake.gzip.len();
    // A connection closed mid-body, then a complete answer whose gzip stream ends early.
    archive.script(
        &name,
        [Answer::CutAfter(len / 2), Answer::Truncated(len * 3 / 4)],
    );
    let store = memory();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&archive.url(), 0, 1);
    config.state_file = Some(dir.path().join("gharchive.json"));
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let status = source.status();
    let report = run(source, store.clone()).await;

    assert_eq!(archive.requests_for(&name), 3);
    let distinct = fake.kept().len() as u64;
    assert_eq!(report.inserted, distinct);
    assert_eq!(report.duplicates, 0, "events read twice are handed on once");
    assert_eq!(store.total_events().await.unwrap(), distinct);
    let r = record(store.as_ref(), 0).await;
    assert_eq!(
        (r.status, r.archive_events),
        (ArchiveStatus::Imported, distinct)
    );
    assert_eq!(
        r.polled_before_archive, 0,
        "the follower's own first attempt is not taken for the poller"
    );
    let s = status.snapshot();
    assert_eq!(s.failed_downloads, 2);
    assert_eq!(s.consecutive_failures, 0);
    assert!(
        s.last_error
            .unwrap()
            .contains(&name.replace(".json.gz", ""))
    );
    let state: ArchiveState =
        serde_json::from_slice(&std::fs::read(dir.path().join("gharchive.json")).unwrap()).unwrap();
    assert_eq!(state.counters.imported, 1, "committed once");
    assert_eq!(state.next_hour, Some(hour(1)));
    assert_eq!(state.in_progress, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_gzip_header_and_a_stalled_download_are_retried() {
    let first = FakeHour::build(RecordedHour::Noon, hour(0));
    let second = FakeHour::build(RecordedHour::Midnight, hour(1));
    let archive = FakeArchive::start().await;
    archive.put_hour(&first);
    archive.put_hour(&second);
    archive.script(
        &first.file_name(),
        [Answer::Status(500), Answer::BadGzipHeader],
    );
    archive.script(&second.file_name(), [Answer::Stall(200_000)]);
    let store = memory();
    let mut config = config(&archive.url(), 0, 2);
    config.stall_timeout = Duration::from_millis(500);
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let status = source.status();
    run(source, store.clone()).await;

    assert_eq!(archive.requests_for(&first.file_name()), 3);
    assert_eq!(archive.requests_for(&second.file_name()), 2);
    for n in [0, 1] {
        assert_eq!(
            record(store.as_ref(), n).await.status,
            ArchiveStatus::Imported
        );
    }
    assert_eq!(
        store.total_events().await.unwrap(),
        (first.kept().len() + second.kept().len()) as u64
    );
    assert_eq!(status.snapshot().failed_downloads, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_download_is_not_a_stall() {
    let fake = FakeHour::build(RecordedHour::Midnight, hour(0));
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    // About 25 pieces, 40 ms apart: a second in all, each gap well under the stall timeout.
    archive.script(
        &fake.file_name(),
        [Answer::Slow {
            piece: fake.gzip.len() / 25 + 1,
            pause: Duration::from_millis(40),
        }],
    );
    let store = memory();
    let mut config = config(&archive.url(), 0, 1);
    config.stall_timeout = Duration::from_millis(400);
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let status = source.status();
    run(source, store.clone()).await;
    assert_eq!(archive.requests_for(&fake.file_name()), 1);
    assert_eq!(status.snapshot().failed_downloads, 0);
    assert_eq!(
        record(store.as_ref(), 0).await.archive_events,
        fake.kept().len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_failing_past_its_grace_period_is_damaged_and_keeps_what_was_read() {
    let fake = FakeHour::build(RecordedHour::Noon, hour(0));
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    let name = fake.file_name();
    let cut = fake.gzip.len() / 3;
    archive.script(&name, vec![Answer::CutAfter(cut); 3]);
    let store = memory();
    let mut live = live_config(&archive.url(), 0, 1);
    live.failures_before_damaged = 3;
    let source = Arc::new(GhArchiveSource::open(live, &*store).await.unwrap());
    run(source, store.clone()).await;

    assert_eq!(archive.requests_for(&name), 3);
    let damaged = record(store.as_ref(), 0).await;
    assert_eq!(damaged.status, ArchiveStatus::Damaged);
    let stored = store.total_events().await.unwrap();
    assert!(
        stored > 0 && stored < fake.kept().len() as u64,
        "part of the hour: {stored}"
    );
    assert_eq!(damaged.archive_events, stored, "what was read is stored");
    // The kept events stored are the first ones of the file.
    let first: HashSet<u64> = fake.kept()[..stored as usize]
        .iter()
        .map(|e| e.id)
        .collect();
    let sample = fake.sample(0, 1);
    assert_eq!(
        store
            .count_stored(&sample[..stored as usize])
            .await
            .unwrap(),
        stored
    );
    assert_eq!(first.len() as u64, stored);

    // Following live, a damaged hour is not fetched again; a backfill fetches it again and
    // replaces the record.
    let source = Arc::new(
        GhArchiveSource::open(live_config(&archive.url(), 0, 1), &*store)
            .await
            .unwrap(),
    );
    run(source, store.clone()).await;
    assert_eq!(archive.requests_for(&name), 3);
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 1), &*store)
            .await
            .unwrap(),
    );
    run(source, store.clone()).await;
    assert_eq!(archive.requests_for(&name), 4);
    let r = record(store.as_ref(), 0).await;
    assert_eq!(r.status, ArchiveStatus::Imported);
    assert_eq!(r.archive_events, fake.kept().len() as u64);
    assert_eq!(
        store.total_events().await.unwrap(),
        fake.kept().len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_are_fetched_ahead_in_parallel_and_committed_in_hour_order() {
    let hours: Vec<FakeHour> = (0..4)
        .map(|n| {
            let recorded = if n % 2 == 0 {
                RecordedHour::Noon
            } else {
                RecordedHour::Midnight
            };
            FakeHour::build(recorded, hour(n))
        })
        .collect();
    let archive = FakeArchive::start().await;
    for h in &hours {
        archive.put_hour(h);
    }
    // The first hour trickles in for about a second; the others come at once.
    archive.script(
        &hours[0].file_name(),
        [Answer::Slow {
            piece: hours[0].gzip.len() / 20 + 1,
            pause: Duration::from_millis(50),
        }],
    );
    let store = memory();
    let mut config = config(&archive.url(), 0, 4);
    config.parallel = 3;
    let inner = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let recording = Arc::new(Recording {
        inner,
        origins: Mutex::new(Vec::new()),
    });
    run(recording.clone(), store.clone()).await;

    // Hours 1 and 2 were asked for while hour 0 was still downloading; hour 3 only once
    // hour 0 was done (three in flight at most).
    let requests = archive.requests();
    let at = |name: &str| {
        requests
            .iter()
            .find(|r| r.path == format!("/{name}"))
            .unwrap()
            .at
    };
    let first = at(&hours[0].file_name());
    assert!(at(&hours[1].file_name()) - first < Duration::from_millis(500));
    assert!(at(&hours[2].file_name()) - first < Duration::from_millis(500));
    assert!(at(&hours[3].file_name()) - first >= Duration::from_millis(700));
    // Batches (and so commits) strictly in hour order.
    let origins = recording.origins.lock().unwrap().clone();
    let order: Vec<&str> = origins
        .iter()
        .map(|o| {
            o.trim_start_matches("gharchive ")
                .split(' ')
                .next()
                .unwrap()
        })
        .collect();
    let mut sorted = order.clone();
    sorted.sort_by_key(|name| {
        hours
            .iter()
            .position(|h| h.file_name().starts_with(&format!("{name}.")))
    });
    assert_eq!(order, sorted);
    let ends: Vec<&String> = origins
        .iter()
        .filter(|o| o.ends_with("(imported)"))
        .collect();
    assert_eq!(ends.len(), 4);
    let recorded = records(store.as_ref(), 0, 4).await;
    assert!(recorded.iter().all(|r| r.status == ArchiveStatus::Imported));
    let total: usize = hours.iter().map(|h| h.kept().len()).sum();
    assert_eq!(store.total_events().await.unwrap(), total as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_an_hour_resumes_it_and_skips_committed_hours() {
    let hours: Vec<FakeHour> = [
        RecordedHour::Midnight,
        RecordedHour::Noon,
        RecordedHour::Midnight,
    ]
    .into_iter()
    .enumerate()
    .map(|(n, r)| FakeHour::build(r, hour(n as i64)))
    .collect();
    let archive = FakeArchive::start().await;
    for h in &hours {
        archive.put_hour(h);
    }
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state/gharchive.json");
    let store = memory();
    let mut cfg = live_config(&archive.url(), 0, 3);
    cfg.state_file = Some(state_file.clone());
    cfg.parallel = 1;

    // First run, by hand: hour 0 whole, then two batches of hour 1 stored and committed, a
    // third stored but not committed (the process dies before its commit).
    let source = GhArchiveSource::open(cfg.clone(), &*store).await.unwrap();
    let mut committed_in_hour_1 = 0u64;
    let mut batches_of_hour_1 = 0;
    let third = loop {
        let batch = source.next_batch().await.unwrap().unwrap();
        if batch
            .origin
            .contains(&hours[1].file_name().replace(".json.gz", ""))
            && !batch.completes_origin
        {
            batches_of_hour_1 += 1;
            if batches_of_hour_1 == 3 {
                store.insert_events(&batch.events).await.unwrap();
                break batch.events;
            }
            committed_in_hour_1 += batch.events.len() as u64;
        }
        crate::store_by_hand(&*store, &source, batch).await;
    };
    drop(source);
    let state: ArchiveState = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(state.next_hour, Some(hour(1)));
    let progress = state.in_progress.unwrap();
    assert_eq!(progress.hour, hour(1));
    assert_eq!(progress.kept_read, committed_in_hour_1);
    assert_eq!(
        record(store.as_ref(), 0).await.status,
        ArchiveStatus::Imported
    );

    // Second run: hour 0 is not downloaded again; hour 1 resumes after its committed events.
    let source = Arc::new(GhArchiveSource::open(cfg, &*store).await.unwrap());
    run(source, store.clone()).await;
    assert_eq!(archive.requests_for(&hours[0].file_name()), 1);
    assert_eq!(archive.requests_for(&hours[1].file_name()), 2);
    assert_eq!(archive.requests_for(&hours[2].file_name()), 1);
    let total: usize = hours.iter().map(|h| h.kept().len()).sum();
    assert_eq!(store.total_events().await.unwrap(), total as u64);
    let r = record(store.as_ref(), 1).await;
    assert_eq!(r.status, ArchiveStatus::Imported);
    assert_eq!(r.archive_events, hours[1].kept().len() as u64);
    // The window of inexactness: the batch stored but not committed before the restart is
    // measured again and taken for events stored first (docs/gharchive.md).
    assert_eq!(r.polled_before_archive, third.len() as u64);
    assert_eq!(record(store.as_ref(), 2).await.polled_before_archive, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_the_store_records_are_skipped_without_a_download() {
    let hours: Vec<FakeHour> = (0..4)
        .map(|n| FakeHour::build(RecordedHour::Midnight, hour(n)))
        .collect();
    let archive = FakeArchive::start().await;
    for h in &hours {
        archive.put_hour(h);
    }
    let store = memory();
    let at = Utc::now();
    for (n, status) in [
        (0, ArchiveStatus::Imported),
        (1, ArchiveStatus::Missing),
        (2, ArchiveStatus::Damaged),
    ] {
        store
            .record_archive_hour(&ArchiveHour::new(hour(n), status, 7, 1, at))
            .await
            .unwrap();
    }
    // Following live: imported, missing and damaged hours are all passed over.
    let source = Arc::new(
        GhArchiveSource::open(live_config(&archive.url(), 0, 4), &*store)
            .await
            .unwrap(),
    );
    let status = source.status();
    run(source, store.clone()).await;
    let names: Vec<String> = archive.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(names, [format!("/{}", hours[3].file_name())]);
    assert_eq!(status.snapshot().counters.skipped, 3);
    assert_eq!(
        record(store.as_ref(), 0).await.archive_events,
        7,
        "left alone"
    );

    // A backfill fetches the damaged hour again.
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 4), &*store)
            .await
            .unwrap(),
    );
    run(source, store.clone()).await;
    assert_eq!(archive.requests().len(), 2);
    assert_eq!(archive.requests_for(&hours[2].file_name()), 1);
    assert_eq!(
        record(store.as_ref(), 2).await.status,
        ArchiveStatus::Imported
    );
    assert_eq!(
        record(store.as_ref(), 1).await.status,
        ArchiveStatus::Missing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_before_archive_counts_the_events_stored_first() {
    let fake = FakeHour::build(RecordedHour::Noon, hour(0));
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    let store = memory();
    // What a poller would have seen: every third kept event, and one of another hour.
    let polled = fake.sample(1, 3);
    let other = FakeHour::build(RecordedHour::Midnight, hour(5)).sample(0, 100);
    store.insert_events(&polled).await.unwrap();
    store.insert_events(&other).await.unwrap();
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 1), &*store)
            .await
            .unwrap(),
    );
    let report = run(source, store.clone()).await;

    let r = record(store.as_ref(), 0).await;
    assert_eq!(r.archive_events, fake.kept().len() as u64);
    assert_eq!(r.polled_before_archive, polled.len() as u64);
    let share = r.poller_coverage().unwrap();
    assert!((share - polled.len() as f64 / fake.kept().len() as f64).abs() < 1e-9);
    assert_eq!(report.inserted, (fake.kept().len() - polled.len()) as u64);
    assert_eq!(report.duplicates, polled.len() as u64);
    assert_eq!(
        store.total_events().await.unwrap(),
        (fake.kept().len() + other.len()) as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_mirror_is_read_through_a_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let first = FakeHour::build(RecordedHour::Noon, hour(0));
    let third = FakeHour::build(RecordedHour::Midnight, hour(2));
    first.write_to(dir.path());
    third.write_to(dir.path());
    // A file caught while being written: a gzip stream that ends early.
    let cut = dir
        .path()
        .join(FakeHour::build(RecordedHour::Noon, hour(3)).file_name());
    std::fs::write(&cut, &first.gzip[..first.gzip.len() / 2]).unwrap();
    let store = memory();
    let mut config = config(&format!("file://{}", dir.path().display()), 0, 4);
    config.failures_before_damaged = 2;
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    run(source, store.clone()).await;
    let statuses: Vec<ArchiveStatus> = records(store.as_ref(), 0, 4)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [
            ArchiveStatus::Imported,
            ArchiveStatus::Missing,
            ArchiveStatus::Imported,
            ArchiveStatus::Damaged
        ]
    );
    assert_eq!(
        record(store.as_ref(), 2).await.archive_events,
        third.kept().len() as u64
    );

    let missing_dir = dir.path().join("nowhere");
    let err = GhArchiveSource::open(
        GhArchiveConfig::new(hour(0)).with_url(format!("file://{}", missing_dir.display())),
        &*store,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SourceError::Config(_)), "{err}");
    let err = GhArchiveSource::open(GhArchiveConfig::new(hour(0)).with_url("ftp://x"), &*store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("http, https or file"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_host_is_not_followed() {
    let fake = FakeHour::build(RecordedHour::Midnight, hour(0));
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    let elsewhere = archive.url().replace("127.0.0.1", "localhost") + "/elsewhere.json.gz";
    archive.script(&fake.file_name(), [Answer::Redirect(elsewhere)]);
    let store = memory();
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 1), &*store)
            .await
            .unwrap(),
    );
    let status = source.status();
    run(source, store.clone()).await;
    assert_eq!(archive.requests_for("elsewhere.json.gz"), 0);
    assert_eq!(archive.requests_for(&fake.file_name()), 2);
    assert!(status.snapshot().last_error.unwrap().contains("302"));
    assert_eq!(
        record(store.as_ref(), 0).await.status,
        ArchiveStatus::Imported
    );
}

/// A large hour (40 recorded hours end to end, 107 MB of gzip) fetched by a consumer that
/// takes one batch and stops: the download stops within the channels' and sockets' buffers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_nobody_takes_stops_downloading() {
    let raw = RecordedHour::Noon.raw_gzip();
    let big: Vec<u8> = raw.iter().copied().cycle().take(raw.len() * 40).collect();
    let archive = FakeArchive::start().await;
    let first = github_stats_core::source::gharchive::archive_file_name(hour(0));
    let second = github_stats_core::source::gharchive::archive_file_name(hour(1));
    archive.put(&first, big.clone());
    let total = big.len() as u64;
    archive.put(&second, big);
    let store = memory();
    let mut config = config(&archive.url(), 0, 2);
    config.batch_size = 100;
    config.prefetch_batches = 2;
    let source = GhArchiveSource::open(config, &*store).await.unwrap();
    let batch = source.next_batch().await.unwrap().unwrap();
    assert!(!batch.events.is_empty());
    // Let both downloads run into their bounds, then check that they stay there.
    let mut served = (0, 0);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = (archive.bytes_served(&first), archive.bytes_served(&second));
        if now == served && now.0 > 0 && now.1 > 0 {
            break;
        }
        served = now;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = (archive.bytes_served(&first), archive.bytes_served(&second));
    assert_eq!(after, served, "the downloads stopped");
    eprintln!("served {} and {} of {total} bytes", after.0, after.1);
    for n in [after.0, after.1] {
        assert!(n < total / 4, "{n} of {total} bytes downloaded ahead");
    }
    drop(source);
}

/// Following live: an hour is not asked for before its end plus the publishing delay, and the
/// status says what it waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_before_an_hour_is_due() {
    let last = github_stats_core::coverage::hour_floor(Utc::now()) - chrono::Duration::hours(1);
    let fake = FakeHour::build(RecordedHour::Midnight, last);
    let archive = FakeArchive::start().await;
    archive.put_hour(&fake);
    let store = memory();
    let mut config = GhArchiveConfig::new(last).with_url(archive.url());
    config.until = Some(last + chrono::Duration::hours(1));
    // Due 800 ms from now.
    let since_end = (Utc::now() - (last + chrono::Duration::hours(1)))
        .to_std()
        .unwrap();
    config.publish_delay = since_end + Duration::from_millis(800);
    let started = tokio::time::Instant::now();
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    let status = source.status();
    let running = tokio::spawn(run(source, store.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = status.snapshot();
    assert_eq!(s.fetching.len(), 1, "{s:?}");
    assert_eq!(
        s.fetching[0].state,
        github_stats_core::source::gharchive::FetchState::Waiting
    );
    let due = s.next_attempt_at.expect("a due time");
    assert!(due > Utc::now(), "{due}");
    assert!(archive.requests().is_empty());
    running.await.unwrap();
    let requests = archive.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].at - started >= Duration::from_millis(750));
    let recorded = store
        .archive_hours(TimeWindow::new(last, last + chrono::Duration::hours(1)).unwrap())
        .await
        .unwrap();
    assert_eq!(recorded[0].status, ArchiveStatus::Imported);
}

/// A state file from a run that started later: a configuration starting earlier (more history
/// wanted) starts over from its own first hour, and skips what the store records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_earlier_first_hour_starts_over_from_it() {
    let hours: Vec<FakeHour> = (0..3)
        .map(|n| FakeHour::build(RecordedHour::Midnight, hour(n)))
        .collect();
    let archive = FakeArchive::start().await;
    for h in &hours {
        archive.put_hour(h);
    }
    let dir = tempfile::tempdir().unwrap();
    let store = memory();
    let mut later = live_config(&archive.url(), 2, 3);
    later.state_file = Some(dir.path().join("gharchive.json"));
    run(
        Arc::new(GhArchiveSource::open(later.clone(), &*store).await.unwrap()),
        store.clone(),
    )
    .await;
    assert_eq!(archive.requests().len(), 1);

    // The same start again: resumed past hour 2, nothing to do.
    let source = Arc::new(GhArchiveSource::open(later.clone(), &*store).await.unwrap());
    assert_eq!(source.status().snapshot().next_hour, Some(hour(3)));
    run(source, store.clone()).await;
    assert_eq!(archive.requests().len(), 1);

    let mut earlier = later;
    earlier.from = hour(0);
    let source = Arc::new(GhArchiveSource::open(earlier, &*store).await.unwrap());
    assert_eq!(source.status().snapshot().next_hour, Some(hour(0)));
    run(source, store.clone()).await;
    assert_eq!(archive.requests_for(&hours[0].file_name()), 1);
    assert_eq!(archive.requests_for(&hours[1].file_name()), 1);
    assert_eq!(
        archive.requests_for(&hours[2].file_name()),
        1,
        "recorded: not again"
    );
    let total: usize = hours.iter().map(|h| h.kept().len()).sum();
    assert_eq!(store.total_events().await.unwrap(), total as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_that_outlived_its_store_does_not_skip_hours() {
    let noon = FakeHour::build(RecordedHour::Noon, hour(0));
    let midnight = FakeHour::build(RecordedHour::Midnight, hour(1));
    let archive = FakeArchive::start().await;
    archive.put_hour(&noon);
    archive.put_hour(&midnight);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = live_config(&archive.url(), 0, 2);
    cfg.state_file = Some(dir.path().join("gharchive-state.json"));

    let first = memory();
    let source = Arc::new(GhArchiveSource::open(cfg.clone(), &*first).await.unwrap());
    run(source, first.clone()).await;
    let state: ArchiveState =
        serde_json::from_slice(&std::fs::read(cfg.state_file.as_ref().unwrap()).unwrap()).unwrap();
    assert_eq!(state.next_hour, Some(hour(2)), "both hours committed");

    // Another store (a wiped DATA_DIR, a switch of backend) with the same state file: the
    // store's records are the truth, so both hours are imported into it.
    let second = memory();
    let source = Arc::new(GhArchiveSource::open(cfg.clone(), &*second).await.unwrap());
    let report = run(source, second.clone()).await;
    let distinct = (noon.kept().len() + midnight.kept().len()) as u64;
    assert_eq!(report.inserted, distinct);
    assert_eq!(second.total_events().await.unwrap(), distinct);
    assert_eq!(records(second.as_ref(), 0, 2).await.len(), 2);

    // The first store again: its records agree with the state file, nothing is fetched.
    let fetched = archive.requests().len();
    let source = Arc::new(GhArchiveSource::open(cfg, &*first).await.unwrap());
    let report = run(source, first.clone()).await;
    assert_eq!(report.inserted, 0);
    assert_eq!(
        archive.requests().len(),
        fetched,
        "no hour downloaded again"
    );
}

/// The kept events, distinct, in the whole lines `zcat` reads of `path`.
fn zcat_kept(path: &std::path::Path) -> u64 {
    let out = std::process::Command::new("zcat")
        .arg(path)
        .output()
        .expect("zcat runs");
    let whole = out
        .stdout
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let mut events = Vec::new();
    let mut stats = github_stats_core::ParseStats::default();
    github_stats_core::parse::parse_json_lines(&out.stdout[..whole], &mut stats, &mut events);
    events.iter().map(|e| e.id).collect::<HashSet<u64>>().len() as u64
}

/// Hours cut before their trailer, cut mid-stream, or padded with zeros: each is damaged (the
/// record says so) and keeps every whole line before the break, as many as `zcat` reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_or_padded_hour_is_damaged_and_keeps_every_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let hours: Vec<FakeHour> = (0..3)
        .map(|n| FakeHour::build(RecordedHour::Noon, hour(n)))
        .collect();
    let gz = &hours[0].gzip;
    let mut padded = hours[1].gzip.clone();
    padded.extend_from_slice(&[0u8; 4096]);
    let files = [
        gz[..gz.len() - 8].to_vec(),
        padded,
        hours[2].gzip[..hours[2].gzip.len() * 2 / 3].to_vec(),
    ];
    let mut want = Vec::new();
    for (fake, bytes) in hours.iter().zip(&files) {
        let path = dir.path().join(fake.file_name());
        std::fs::write(&path, bytes).unwrap();
        want.push(zcat_kept(&path));
    }
    let all = hours[0].kept().len() as u64;
    assert_eq!(want[0], all, "cut in the trailer: every line is there");
    assert_eq!(want[1], hours[1].kept().len() as u64);
    assert!(want[2] > 0 && want[2] < hours[2].kept().len() as u64);

    let store = memory();
    let mut config = config(&format!("file://{}", dir.path().display()), 0, 3);
    config.failures_before_damaged = 2;
    let source = Arc::new(GhArchiveSource::open(config, &*store).await.unwrap());
    run(source, store.clone()).await;
    let records = records(store.as_ref(), 0, 3).await;
    let got: Vec<(ArchiveStatus, u64)> = records
        .iter()
        .map(|r| (r.status, r.archive_events))
        .collect();
    assert_eq!(
        got,
        want.iter()
            .map(|&n| (ArchiveStatus::Damaged, n))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        store.total_events().await.unwrap(),
        want.iter().sum::<u64>()
    );
}

/// `bytes`, gzipped.
fn gzipped(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_file_holding_no_event_is_not_an_imported_hour() {
    let archive = FakeArchive::start().await;
    let empty = archive_file_name(hour(0));
    let html = archive_file_name(hour(1));
    archive.put(&empty, gzipped(b""));
    archive.put(
        &html,
        gzipped(b"<html><body><h1>503 Service Unavailable</h1>\nNo server is available.\n</body></html>\n"),
    );
    let store = memory();
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 2), &*store)
            .await
            .unwrap(),
    );
    run(source, store.clone()).await;
    // Past the grace period: fetched again, then damaged, never imported with 0 events.
    for (n, name) in [(0, &empty), (1, &html)] {
        let r = record(store.as_ref(), n).await;
        assert_eq!(r.status, ArchiveStatus::Damaged, "{name}: {r:?}");
        assert!(archive.requests_for(name) >= 2, "{name} retried");
    }
    assert!(store.complete_run().await.unwrap().is_none());

    // A backfill run again retries damaged hours: once the real file is there, it is imported.
    let real = FakeHour::build(RecordedHour::Noon, hour(0));
    archive.put_hour(&real);
    let source = Arc::new(
        GhArchiveSource::open(config(&archive.url(), 0, 1), &*store)
            .await
            .unwrap(),
    );
    run(source, store.clone()).await;
    assert_eq!(
        record(store.as_ref(), 0).await.status,
        ArchiveStatus::Imported
    );

    // An hour within the grace period holding nothing is left pending, not recorded.
    let now = chrono::Utc::now();
    let recent = github_stats_core::coverage::hour_floor(now) - chrono::Duration::hours(1);
    archive.put(&archive_file_name(recent), gzipped(b""));
    let mut cfg = GhArchiveConfig::backfill(recent, recent + chrono::Duration::hours(1));
    cfg.base_url = archive.url().into();
    cfg.min_retry = Duration::from_millis(20);
    cfg.max_retry = Duration::from_millis(100);
    let source = Arc::new(GhArchiveSource::open(cfg, &*store).await.unwrap());
    let status = source.status();
    run(source, store.clone()).await;
    let window = TimeWindow::new(recent, recent + chrono::Duration::hours(1)).unwrap();
    assert!(store.archive_hours(window).await.unwrap().is_empty());
    assert_eq!(status.snapshot().counters.pending, 1);
}
