use std::sync::Arc;

use github_stats_core::conformance::{self, event};
use github_stats_core::store::memory;
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

fn everything() -> TimeWindow {
    TimeWindow::new(
        chrono::DateTime::from_timestamp(0, 0).unwrap(),
        chrono::DateTime::from_timestamp(2_000_000_000, 0).unwrap(),
    )
    .unwrap()
}

/// Events over three repositories and every type, two opened pull requests among them.
fn mixed(ids: std::ops::RangeInclusive<u64>) -> Vec<github_stats_core::Event> {
    ids.map(|i| {
        let (event_type, action) = match i % 3 {
            0 => (EventType::WatchEvent, "started"),
            1 => (EventType::PullRequestEvent, "opened"),
            _ => (EventType::IssuesEvent, "closed"),
        };
        event(
            i,
            event_type,
            &format!("o/r{}", i % 2),
            1_700_000_000 + 60 * i as i64,
            action,
        )
    })
    .collect()
}

fn data_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(github_stats_core::store::memory::EVENT_FILE)
}

/// The records of a store holding `events`, as the event file has them (after its magic).
fn records_of(events: &[github_stats_core::Event]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    MemoryStore::open(dir.path())
        .unwrap()
        .insert_blocking(events)
        .unwrap();
    std::fs::read(data_file(dir.path())).unwrap()[8..].to_vec()
}

fn append_to(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Every metric of `store` agrees with one count of `events`.
async fn assert_counted_once(store: &MemoryStore, events: &[github_stats_core::Event]) {
    let n = events.len() as u64;
    assert_eq!(store.total_events().await.unwrap(), n, "total");
    assert_eq!(store.health().await.total_events, n, "health total");
    let counts = store.event_counts(everything()).await.unwrap().counts;
    assert_eq!(counts.total(), n, "window counts");
    let timeline = store.timeline(everything(), 86_400 * 365).await.unwrap();
    let timed: u64 = timeline.counts.iter().flatten().sum();
    assert_eq!(timed, n, "timeline");
    let mut per_repo = 0;
    for name in ["o/r0", "o/r1"] {
        let counts = store
            .repo_event_counts(&name.parse().unwrap())
            .await
            .unwrap()
            .counts;
        per_repo += counts.total();
    }
    assert_eq!(per_repo, n, "per-repository counts");
    let ranked: u64 = store
        .top_repositories(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event_count)
        .sum();
    assert_eq!(ranked, n, "ranking");
    let opened = events
        .iter()
        .filter(|e| e.is_pull_request_opened() && e.repo_name == "o/r1")
        .count() as u64;
    let avg = store.pr_average(&"o/r1".parse().unwrap()).await.unwrap();
    assert_eq!(avg.opened_count, opened, "opened pull requests");
}

#[tokio::test]
async fn records_written_twice_are_replayed_once() {
    let dir = tempfile::tempdir().unwrap();
    let events = mixed(1..=12);
    MemoryStore::open(dir.path())
        .unwrap()
        .insert_blocking(&events)
        .unwrap();
    // Every record again, as a retry after a failed fsync left them in earlier versions; then
    // some once more, far from the first copy.
    append_to(&data_file(dir.path()), &records_of(&events));
    append_to(&data_file(dir.path()), &records_of(&mixed(20..=30)));
    append_to(&data_file(dir.path()), &records_of(&events[..4]));
    let store = MemoryStore::open(dir.path()).unwrap();
    let report = store.replay_report();
    assert_eq!(report.records, 12 + 12 + 11 + 4);
    assert_eq!(report.duplicate_records, 16);
    let all = [events.clone(), mixed(20..=30)].concat();
    assert_counted_once(&store, &all).await;
    let health = store.health().await;
    assert_eq!(health.details["duplicate_records_replayed"], 16);
}

#[tokio::test]
async fn a_tail_of_zeros_left_by_a_power_cut_is_cut_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let events = mixed(1..=9);
    MemoryStore::open(dir.path())
        .unwrap()
        .insert_blocking(&events)
        .unwrap();
    let len = std::fs::metadata(data_file(dir.path())).unwrap().len();
    append_to(&data_file(dir.path()), &[0; 12_288]);
    let store = MemoryStore::open(dir.path()).unwrap();
    assert_eq!(store.replay_report().torn_bytes, 12_288);
    assert_counted_once(&store, &events).await;
    assert_eq!(std::fs::metadata(data_file(dir.path())).unwrap().len(), len);
    assert_eq!(store.health().await.details["torn_bytes_dropped"], 12_288);
}

/// What a full disk left with earlier versions: part of a batch, then the whole batch again
/// (the ingest loop's retry), then more. The start used to be refused for good.
#[tokio::test]
async fn torn_bytes_followed_by_whole_records_no_longer_refuse_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = mixed(1..=6);
    let retried = mixed(7..=12);
    let later = mixed(13..=15);
    MemoryStore::open(dir.path())
        .unwrap()
        .insert_blocking(&first)
        .unwrap();
    let retried_records = records_of(&retried);
    append_to(&data_file(dir.path()), &retried_records[..100]);
    append_to(&data_file(dir.path()), &retried_records);
    append_to(&data_file(dir.path()), &records_of(&later));
    // The torn part: whole records (replayed, then found again in the retry), then part of one.
    let (mut whole, mut whole_records) = (0, 0);
    loop {
        let len = u32::from_le_bytes(retried_records[whole..whole + 4].try_into().unwrap());
        let next = whole + 4 + len as usize + 4;
        if next > 100 {
            break;
        }
        (whole, whole_records) = (next, whole_records + 1);
    }
    let torn = 100 - whole as u64;
    assert!(whole_records > 0 && torn > 0);
    let all = [first, retried, later].concat();
    for _ in 0..2 {
        let store = MemoryStore::open(dir.path()).unwrap();
        let report = store.replay_report().clone();
        assert_eq!((report.damaged_ranges, report.damaged_bytes), (1, torn));
        assert_eq!(report.duplicate_records, whole_records);
        assert_eq!(report.torn_bytes, 0);
        assert_counted_once(&store, &all).await;
        let health = store.health().await;
        assert_eq!(health.details["damaged_bytes_skipped"], torn);
        assert!(!health.degraded && health.error.is_none());
    }
}

#[tokio::test]
async fn a_file_that_is_not_an_event_file_is_refused_with_where_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(data_file(dir.path()), b"id,type\n1,WatchEvent\n").unwrap();
    let err = MemoryStore::open(dir.path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("events.log"), "{message}");
    assert!(message.contains("at byte 0"), "{message}");
    assert!(message.contains("move it away"), "{message}");
}

/// Where each record of an event file ends, from its length prefixes (`len`, payload, checksum).
fn record_ends(file: &[u8]) -> Vec<usize> {
    let (mut at, mut ends) = (8, Vec::new());
    while at + 4 <= file.len() {
        let len = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        at += 4 + len + 4;
        ends.push(at);
    }
    assert_eq!(at, file.len(), "a whole file of whole records");
    ends
}

/// What a damaged event file does to a start, whatever the damage.
#[derive(Debug, Clone)]
enum Damage {
    /// The file cut at a byte (a crash mid-append).
    Cut(usize),
    /// Arbitrary bytes appended (a torn append, a foreign write).
    Append(Vec<u8>),
    /// Bytes from an offset replaced by arbitrary ones (a bad sector, a stray write).
    Overwrite(usize, Vec<u8>),
}

mod replay_properties {
    use proptest::prelude::*;

    use super::*;

    fn damage(len: usize) -> impl Strategy<Value = Damage> {
        let bytes = || prop::collection::vec(any::<u8>(), 1..200);
        prop_oneof![
            (8..len).prop_map(Damage::Cut),
            bytes().prop_map(Damage::Append),
            (8..len, bytes()).prop_map(|(at, b)| Damage::Overwrite(at, b)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 96,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Replay over an arbitrarily damaged log never panics nor refuses the start; every
        /// record wholly before the damage is kept, nothing is counted twice or invented, and a
        /// second start finds what the first kept.
        #[test]
        fn replay_keeps_every_whole_record_before_any_damage(
            damage in damage(records_of(&mixed(1..=16)).len() + 8)
        ) {
            let events = mixed(1..=16);
            let dir = tempfile::tempdir().unwrap();
            MemoryStore::open(dir.path()).unwrap().insert_blocking(&events).unwrap();
            let path = data_file(dir.path());
            let mut file = std::fs::read(&path).unwrap();
            let ends = record_ends(&file);
            let first_damaged = match &damage {
                Damage::Cut(at) => {
                    file.truncate(*at);
                    *at
                }
                Damage::Append(bytes) => {
                    file.extend_from_slice(bytes);
                    usize::MAX
                }
                Damage::Overwrite(at, bytes) => {
                    let end = (*at + bytes.len()).min(file.len());
                    let changed = file[*at..end] != bytes[..end - *at];
                    file[*at..end].copy_from_slice(&bytes[..end - *at]);
                    if changed { *at } else { usize::MAX }
                }
            };
            std::fs::write(&path, &file).unwrap();
            let intact = ends.iter().filter(|&&end| end <= first_damaged).count() as u64;
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut kept = None;
            for start in 0..2 {
                let store = MemoryStore::open(dir.path())
                    .unwrap_or_else(|e| panic!("start {start} refused: {e}"));
                let total = runtime.block_on(store.total_events()).unwrap();
                prop_assert!(total >= intact, "start {start}: {total} < {intact} intact");
                prop_assert!(total <= events.len() as u64, "start {start}: {total} invented");
                let report = store.replay_report();
                prop_assert_eq!(report.records - report.duplicate_records, total);
                if let Some(first) = kept {
                    prop_assert_eq!(total, first, "the second start differs");
                }
                kept = Some(total);
            }
            if matches!(damage, Damage::Cut(_) | Damage::Append(_)) {
                let store = MemoryStore::open(dir.path()).unwrap();
                runtime.block_on(assert_counted_once(&store, &events[..intact as usize]));
            }
        }
    }
}

#[cfg(unix)]
/// Which of the store's files, and what it points to.
fn link_cases(outside: &std::path::Path) -> Vec<(&'static str, std::path::PathBuf, bool)> {
    let mut cases = Vec::new();
    for name in [memory::EVENT_FILE, memory::ARCHIVE_FILE, memory::LOCK_FILE] {
        cases.push((name, outside.join(format!("{name}.target")), true));
        cases.push((name, outside.join(format!("{name}.dangling")), false));
    }
    cases
}

/// Each of the store's files as a link to a file outside the data directory, and as a dangling
/// link: refused, naming the link; the target unchanged, nothing created outside.
#[cfg(unix)]
#[test]
fn the_memory_store_never_opens_its_files_through_a_link() {
    let outside = tempfile::tempdir().unwrap();
    for (name, target, exists) in link_cases(outside.path()) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let content = b"someone else's file\n".to_vec();
        if exists {
            std::fs::write(&target, &content).unwrap();
        }
        let link = data.join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = match MemoryStore::open(&data) {
            Ok(_) => panic!("{name} -> {}: opened through the link", target.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains(&format!("{} is a symbolic link", link.display())),
            "{name}: {error}"
        );
        if exists {
            assert_eq!(
                std::fs::read(&target).unwrap(),
                content,
                "{name}: target changed"
            );
        } else {
            assert!(
                !target.exists(),
                "{name}: created outside the data directory"
            );
        }
        // The link is left alone.
        assert!(link.symlink_metadata().unwrap().is_symlink());
    }
}

#[test]
fn a_data_directory_that_is_itself_a_link_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let linked = dir.path().join("linked");
    std::os::unix::fs::symlink(&real, &linked).unwrap();
    let store = MemoryStore::open(&linked).unwrap();
    drop(store);
    assert!(real.join(memory::EVENT_FILE).is_file());
}
