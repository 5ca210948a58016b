use std::sync::Arc;

use github_stats_core::conformance::{self, event};
use github_stats_core::{
    EventStore, EventType, MemoryStore, MetricsQuery, SharedStore, TimeWindow,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_passes_the_conformance_suite() {
    conformance::run_suite(|_case| async { Arc::new(MemoryStore::new()) as SharedStore }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_memory_store_passes_the_conformance_suite() {
    let root = tempfile::tempdir().unwrap();
    conformance::run_suite(|case| {
        let dir = root.path().join(case);
        async move { Arc::new(MemoryStore::open(dir).unwrap()) as SharedStore }
    })
    .await;
}

#[tokio::test]
async fn a_restart_replays_the_data_file_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let raw = conformance::fixtures::recorded_events();
    let events: Vec<_> = raw
        .iter()
        .filter_map(
            |v| match github_stats_core::parse::parse_record(v.to_string().as_bytes()) {
                github_stats_core::parse::RecordOutcome::Kept(e) => Some(e),
                _ => None,
            },
        )
        .collect();
    let window = TimeWindow::new(
        chrono::DateTime::from_timestamp(0, 0).unwrap(),
        chrono::Utc::now(),
    )
    .unwrap();
    let (before, top_before) = {
        let store = MemoryStore::open(dir.path()).unwrap();
        store
            .insert_events(&events[..events.len() / 2])
            .await
            .unwrap();
        store
            .insert_events(&events[events.len() / 3..])
            .await
            .unwrap();
        (
            store.event_counts(window).await.unwrap(),
            store.top_repositories(20).await.unwrap(),
        )
    };
    let store = MemoryStore::open(dir.path()).unwrap();
    assert_eq!(store.replay_report().torn_bytes, 0);
    assert_eq!(store.replay_report().records, before.counts.total());
    assert_eq!(store.event_counts(window).await.unwrap(), before);
    assert_eq!(store.top_repositories(20).await.unwrap(), top_before);
    // Still deduplicating against what was replayed.
    let again = store.insert_events(&events).await.unwrap();
    assert_eq!(again.inserted, 0);
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = MemoryStore::open(dir.path()).unwrap();
        let batch: Vec<_> = (1..=3)
            .map(|i| {
                event(
                    i,
                    EventType::WatchEvent,
                    "o/r",
                    1_700_000_000 + i as i64,
                    "started",
                )
            })
            .collect();
        store.insert_events(&batch).await.unwrap();
    }
    let file = dir
        .path()
        .join(github_stats_core::store::memory::EVENT_FILE);
    let len = std::fs::metadata(&file).unwrap().len();
    // A crash in the middle of appending a record.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let store = MemoryStore::open(dir.path()).unwrap();
    assert!(store.replay_report().torn_bytes > 0);
    assert_eq!(store.total_events().await.unwrap(), 2);
    let health = store.health().await;
    assert!(health.details["torn_bytes_dropped"].as_u64().unwrap() > 0);
    assert!(health.connected && !health.degraded && health.error.is_none());
}

#[tokio::test]
async fn events_outside_the_storable_range_are_refused_and_nothing_is_stored() {
    let store = MemoryStore::new();
    let ok = event(1, EventType::WatchEvent, "o/r", 1_700_000_000, "started");
    let bad = event(2, EventType::WatchEvent, "o/r", -5, "started");
    let err = store.insert_events(&[ok, bad]).await.unwrap_err();
    assert!(err.to_string().contains("invalid event 2"), "{err}");
    assert_eq!(store.total_events().await.unwrap(), 0);
}

#[tokio::test]
async fn archive_hour_records_survive_a_restart_and_a_torn_last_line() {
    use github_stats_core::{ArchiveHour, ArchiveStatus};
    let dir = tempfile::tempdir().unwrap();
    let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
    let hour = |i: i64| at(1_800_000_000 / 3600 * 3600 + i * 3600);
    let records = [
        ArchiveHour::new(hour(0), ArchiveStatus::Imported, 50, 5, at(1)),
        ArchiveHour::new(hour(1), ArchiveStatus::Missing, 0, 0, at(2)),
        ArchiveHour::new(hour(1), ArchiveStatus::Imported, 40, 4, at(3)),
    ];
    {
        let store = MemoryStore::open(dir.path()).unwrap();
        for r in &records {
            store.record_archive_hour(r).await.unwrap();
        }
    }
    // A crash in the middle of the next record leaves half a line.
    let file = dir
        .path()
        .join(github_stats_core::store::memory::ARCHIVE_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let whole = bytes.len();
    bytes.extend_from_slice(br#"{"hour":"2027-01-15T08:00:00Z","sta"#);
    std::fs::write(&file, &bytes).unwrap();

    let window = TimeWindow::new(hour(-1), hour(5)).unwrap();
    let store = MemoryStore::open(dir.path()).unwrap();
    assert_eq!(
        store.archive_hours(window).await.unwrap(),
        [records[0].clone(), records[2].clone()],
        "the latest record of each hour, after a restart"
    );
    let run = store.complete_run().await.unwrap().unwrap();
    assert_eq!((run.from, run.until), (hour(0), hour(2)));
    assert_eq!(
        std::fs::metadata(&file).unwrap().len() as usize,
        whole,
        "the torn line is cut off so the next record starts a line of its own"
    );
    let next = ArchiveHour::new(hour(2), ArchiveStatus::Damaged, 3, 0, at(4));
    store.record_archive_hour(&next).await.unwrap();
    drop(store);
    let store = MemoryStore::open(dir.path()).unwrap();
    assert_eq!(store.archive_hours(window).await.unwrap().len(), 3);
}
