//! The conformance suite every [`Store`] implementation runs (Quickwit's `storage_test_suite`
//! is the model): the same cases, the same expectations, whatever the backend; and the recorded
//! GitHub data ([`fixtures`]) that tests, benches and examples read.
//!
//! Behind the cargo feature `testsuite` (off by default): crates that test against it take
//! `github-stats-core = { …, features = ["testsuite"] }` as a dev-dependency.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use github_stats_core::{conformance, MemoryStore, SharedStore};
//! conformance::run_suite(|_case| async { Arc::new(MemoryStore::new()) as SharedStore }).await;
//! # }
//! ```
//!
//! Cases panic (like `assert!`) on the first wrong answer, naming the case.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::answers::{TimeWindow, TypeCounts};
use crate::coverage::{ArchiveHour, ArchiveStatus, HOUR_SECONDS};
use crate::event::{Event, EventType, RepoName};
use crate::parse::{RecordOutcome, parse_record};
use crate::store::{SharedStore, Store};

#[cfg(feature = "clickhouse")]
pub mod clickhouse;

/// Runs every case, each on a fresh store from `make_store` (given the case name, so a backend
/// can name a database after it). The real-events case reads [`fixtures`].
pub async fn run_suite<F, Fut>(mut make_store: F)
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = SharedStore>,
{
    duplicates_count_once(&*make_store("duplicates_count_once").await).await;
    window_bounds(&*make_store("window_bounds").await).await;
    pr_average_definition(&*make_store("pr_average_definition").await).await;
    unknown_repository_is_zero(&*make_store("unknown_repository_is_zero").await).await;
    timeline_buckets(&*make_store("timeline_buckets").await).await;
    windows_across_hours(&*make_store("windows_across_hours").await).await;
    top_repositories_order(&*make_store("top_repositories_order").await).await;
    ranking_ties_by_name(&*make_store("ranking_ties_by_name").await).await;
    concurrent_inserts_and_queries(make_store("concurrent_inserts_and_queries").await).await;
    let raw = fixtures::recorded_events();
    real_events_match_brute_force(&*make_store("real_events_match_brute_force").await, &raw).await;
    pr_average_in_a_window(&*make_store("pr_average_in_a_window").await).await;
    archive_hours_are_recorded(&*make_store("archive_hours_are_recorded").await).await;
    invalid_events_are_refused(&*make_store("invalid_events_are_refused").await).await;
}

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).expect("valid time")
}

/// A synthetic event for the cases.
pub fn event(id: u64, event_type: EventType, repo: &str, at: i64, action: &str) -> Event {
    Event {
        id,
        event_type,
        repo_id: repo.bytes().map(u64::from).sum(),
        repo_name: repo.to_owned(),
        created_at: t(at),
        action: action.to_owned(),
    }
}

fn repo(name: &str) -> RepoName {
    name.parse().expect("valid repository name")
}

const BASE: i64 = 1_700_000_000;

/// An event with a field the store could not hold as it is (a 70,000-character repository
/// name, which a 16-bit length would cut; a time in 2106, which ClickHouse's date functions
/// mangle; an action of 300 bytes, which an 8-bit length would cut) is refused with
/// `StoreError::InvalidEvent` naming it, and nothing of its batch is stored; the valid events
/// go in once it is taken out.
pub async fn invalid_events_are_refused(store: &dyn Store) {
    let good = event(1, EventType::WatchEvent, "o/r", BASE, "started");
    let mut long_name = event(2, EventType::WatchEvent, "o/r", BASE, "started");
    long_name.repo_name = format!("o/{}", "r".repeat(70_000));
    let late = event(
        3,
        EventType::IssuesEvent,
        "o/r",
        4_291_747_200 + 86_400 * 10,
        "opened",
    );
    let long_action = event(4, EventType::IssuesEvent, "o/r", BASE, &"x".repeat(300));
    for bad in [long_name, late, long_action] {
        match store.insert_events(&[good.clone(), bad.clone()]).await {
            Err(crate::StoreError::InvalidEvent { id, .. }) => {
                assert_eq!(id, bad.id, "invalid_events_are_refused: the event is named")
            }
            other => panic!(
                "invalid_events_are_refused: event {} gave {other:?}",
                bad.id
            ),
        }
        assert_eq!(
            store.total_events().await.unwrap(),
            0,
            "invalid_events_are_refused: nothing of the batch is stored"
        );
    }
    let stored = store.insert_events(&[good]).await.expect("insert");
    assert_eq!(stored.inserted, 1, "invalid_events_are_refused");
    let counts = store.repo_event_counts(&repo("o/r")).await.unwrap();
    assert_eq!(
        counts.counts.total(),
        1,
        "invalid_events_are_refused: {counts:?}"
    );
    assert_eq!(
        store.total_events().await.unwrap(),
        1,
        "invalid_events_are_refused"
    );
}

/// An event id stored twice, in one batch or in two, counts once everywhere.
pub async fn duplicates_count_once(store: &dyn Store) {
    let a = event(1, EventType::PullRequestEvent, "o/r", BASE, "opened");
    let b = event(2, EventType::PullRequestEvent, "o/r", BASE + 100, "opened");
    let c = event(3, EventType::WatchEvent, "o/r", BASE + 50, "started");
    assert_eq!(
        store.count_stored(&[a.clone(), b.clone()]).await.unwrap(),
        0,
        "duplicates_count_once: nothing stored yet"
    );
    let first = store
        .insert_events(&[a.clone(), a.clone(), b.clone()])
        .await
        .expect("insert");
    assert_eq!(
        store
            .count_stored(&[c.clone(), b.clone(), a.clone(), b.clone()])
            .await
            .unwrap(),
        2,
        "duplicates_count_once: count_stored counts distinct stored ids"
    );
    assert_eq!(
        (first.inserted, first.duplicates),
        (2, 1),
        "duplicates_count_once: first batch"
    );
    let second = store
        .insert_events(&[b.clone(), c.clone(), a.clone()])
        .await
        .expect("insert");
    assert_eq!(
        (second.inserted, second.duplicates),
        (1, 2),
        "duplicates_count_once: second batch"
    );
    assert_eq!(
        store.total_events().await.unwrap(),
        3,
        "duplicates_count_once: total"
    );
    let window = TimeWindow::new(t(BASE - 10), t(BASE + 1000)).unwrap();
    let counts = store.event_counts(window).await.unwrap().counts;
    assert_eq!(
        counts,
        TypeCounts([1, 2, 0]),
        "duplicates_count_once: window counts"
    );
    let avg = store.pr_average(&repo("o/r")).await.unwrap();
    assert_eq!(avg.opened_count, 2, "duplicates_count_once: PR count");
    assert_eq!(
        avg.average_seconds(),
        Some(100.0),
        "duplicates_count_once: PR average"
    );
    let per_repo = store.repo_event_counts(&repo("o/r")).await.unwrap();
    assert_eq!(
        per_repo.counts,
        TypeCounts([1, 2, 0]),
        "duplicates_count_once: repo counts"
    );
    let top = store.top_repositories(5).await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].event_count, 3, "duplicates_count_once: top");
    let health = store.health().await;
    assert!(health.connected);
    assert_eq!(
        health.total_events, 3,
        "duplicates_count_once: health total"
    );
    assert_eq!(
        health.last_event_at,
        Some(t(BASE + 100)),
        "duplicates_count_once: last event"
    );
}

/// `since <= created_at < until`: an event at `since` is in, one at `until` is out.
pub async fn window_bounds(store: &dyn Store) {
    let events = [
        event(10, EventType::WatchEvent, "o/r", BASE - 1, "started"),
        event(11, EventType::WatchEvent, "o/r", BASE, "started"),
        event(12, EventType::IssuesEvent, "o/r", BASE + 30, "opened"),
        event(13, EventType::IssuesEvent, "o/r", BASE + 59, "closed"),
        event(14, EventType::PullRequestEvent, "o/r", BASE + 60, "opened"),
    ];
    store.insert_events(&events).await.expect("insert");
    let window = TimeWindow::new(t(BASE), t(BASE + 60)).unwrap();
    let counts = store.event_counts(window).await.unwrap();
    assert_eq!(
        counts.counts,
        TypeCounts([1, 0, 2]),
        "window_bounds: [since, until)"
    );
    assert_eq!(counts.window, window);
    let last_minute = TimeWindow::last_minutes(t(BASE + 61), 1).unwrap();
    let counts = store.event_counts(last_minute).await.unwrap().counts;
    assert_eq!(counts, TypeCounts([0, 1, 2]), "window_bounds: last minute");
    let empty = TimeWindow::new(t(BASE + 1000), t(BASE + 2000)).unwrap();
    let counts = store.event_counts(empty).await.unwrap().counts;
    assert_eq!(
        counts,
        TypeCounts([0, 0, 0]),
        "window_bounds: every type present as zero"
    );
}

/// Only distinct `opened` pull requests count; one gives `None`; the mean of gaps otherwise.
pub async fn pr_average_definition(store: &dyn Store) {
    let events = [
        event(20, EventType::PullRequestEvent, "solo/one", BASE, "opened"),
        event(
            21,
            EventType::PullRequestEvent,
            "solo/one",
            BASE + 500,
            "closed",
        ),
        event(
            22,
            EventType::PullRequestEvent,
            "solo/one",
            BASE + 900,
            "reopened",
        ),
        event(23, EventType::IssuesEvent, "solo/one", BASE + 901, "opened"),
        event(
            30,
            EventType::PullRequestEvent,
            "many/prs",
            BASE + 600,
            "opened",
        ),
        event(31, EventType::PullRequestEvent, "many/prs", BASE, "opened"),
        event(
            32,
            EventType::PullRequestEvent,
            "many/prs",
            BASE + 60,
            "opened",
        ),
        event(
            33,
            EventType::PullRequestEvent,
            "many/prs",
            BASE + 7000,
            "closed",
        ),
        event(
            34,
            EventType::PullRequestEvent,
            "many/prs",
            BASE - 9000,
            "synchronize",
        ),
    ];
    store.insert_events(&events).await.expect("insert");
    let one = store.pr_average(&repo("solo/one")).await.unwrap();
    assert_eq!(one.opened_count, 1, "pr_average_definition: one opened");
    assert_eq!(
        one.average_seconds(),
        None,
        "pr_average_definition: one PR gives None"
    );
    assert_eq!(one.first_opened_at, Some(t(BASE)));
    let many = store.pr_average(&repo("many/prs")).await.unwrap();
    assert_eq!(many.opened_count, 3, "pr_average_definition: only opened");
    assert_eq!(many.first_opened_at, Some(t(BASE)));
    assert_eq!(many.last_opened_at, Some(t(BASE + 600)));
    assert_eq!(
        many.average_seconds(),
        Some(300.0),
        "pr_average_definition: mean gap"
    );
    assert_eq!(many.repository, "many/prs");
}

/// The PR average over a window counts the distinct openings with `since <= t < until` only.
pub async fn pr_average_in_a_window(store: &dyn Store) {
    let opened = |id, at| event(id, EventType::PullRequestEvent, "win/dow", at, "opened");
    let events = [
        opened(50, BASE),
        opened(51, BASE + 100),
        opened(52, BASE + 400),
        opened(53, BASE + 1000),
        opened(53, BASE + 1000),
        event(
            54,
            EventType::PullRequestEvent,
            "win/dow",
            BASE + 200,
            "closed",
        ),
        event(55, EventType::IssuesEvent, "win/dow", BASE + 300, "opened"),
        event(
            56,
            EventType::PullRequestEvent,
            "other/repo",
            BASE + 300,
            "opened",
        ),
    ];
    store.insert_events(&events).await.expect("insert");
    store
        .insert_events(&[opened(52, BASE + 400)])
        .await
        .expect("insert again");
    let repo = repo("win/dow");
    let within = |since, until| TimeWindow::new(t(since), t(until)).unwrap();
    let all = store
        .pr_average_in(&repo, within(BASE - 10, BASE + 2000))
        .await
        .unwrap();
    assert_eq!(
        (all.opened_count, all.average_seconds()),
        (4, Some(1000.0 / 3.0)),
        "pr_average_in_a_window: every opening, once each"
    );
    assert_eq!(
        all.average_seconds(),
        store.pr_average(&repo).await.unwrap().average_seconds(),
        "pr_average_in_a_window: a window holding everything agrees with all time"
    );
    // `since` is inclusive, `until` exclusive.
    let middle = store
        .pr_average_in(&repo, within(BASE + 100, BASE + 1000))
        .await
        .unwrap();
    assert_eq!(middle.opened_count, 2, "pr_average_in_a_window: bounds");
    assert_eq!(
        (middle.first_opened_at, middle.last_opened_at),
        (Some(t(BASE + 100)), Some(t(BASE + 400))),
        "pr_average_in_a_window: extremes inside the window"
    );
    assert_eq!(middle.average_seconds(), Some(300.0));
    let one = store
        .pr_average_in(&repo, within(BASE + 1, BASE + 101))
        .await
        .unwrap();
    assert_eq!(
        (one.opened_count, one.average_seconds()),
        (1, None),
        "pr_average_in_a_window: one opening gives None"
    );
    let none = store
        .pr_average_in(&repo, within(BASE + 2000, BASE + 9000))
        .await
        .unwrap();
    assert_eq!(
        (none.opened_count, none.first_opened_at, none.last_opened_at),
        (0, None, None),
        "pr_average_in_a_window: an empty window"
    );
    let unknown = store
        .pr_average_in(&self::repo("no/such"), within(BASE - 10, BASE + 2000))
        .await
        .unwrap();
    assert_eq!(
        unknown.opened_count, 0,
        "pr_average_in_a_window: unknown repository"
    );
}

/// Archive-hour records come back by hour, the latest of each; the complete run is the latest
/// unbroken run of imported hours.
pub async fn archive_hours_are_recorded(store: &dyn Store) {
    let hour0 = BASE / HOUR_SECONDS * HOUR_SECONDS;
    let h = |i: i64| t(hour0 + i * HOUR_SECONDS);
    let at = t(BASE + 50_000);
    let none = store.complete_run().await.expect("complete run");
    assert_eq!(none, None, "archive_hours_are_recorded: nothing recorded");
    let records = [
        ArchiveHour::new(h(0), ArchiveStatus::Imported, 120, 7, at),
        ArchiveHour::new(h(1), ArchiveStatus::Imported, 80, 80, at),
        ArchiveHour::new(h(2), ArchiveStatus::Missing, 0, 0, at),
        ArchiveHour::new(h(3), ArchiveStatus::Imported, 10, 1, at),
        ArchiveHour::new(h(4), ArchiveStatus::Damaged, 33, 2, at),
        ArchiveHour::new(h(5), ArchiveStatus::Imported, 5, 0, at),
    ];
    for r in &records {
        store.record_archive_hour(r).await.expect("record");
    }
    let all = TimeWindow::new(h(-5), h(10)).unwrap();
    assert_eq!(
        store.archive_hours(all).await.unwrap(),
        records,
        "archive_hours_are_recorded: every record, by hour"
    );
    // Half-open: hours 1 and 2 only.
    let part = TimeWindow::new(h(1), h(3)).unwrap();
    assert_eq!(
        store.archive_hours(part).await.unwrap(),
        records[1..3],
        "archive_hours_are_recorded: since <= hour < until"
    );
    let run = store.complete_run().await.unwrap().expect("a run");
    assert_eq!(
        (run.from, run.until),
        (h(5), h(6)),
        "archive_hours_are_recorded: the latest run"
    );
    // The damaged hour is imported on a later try: the run now spans hours 3 to 5.
    let retried = ArchiveHour::new(h(4), ArchiveStatus::Imported, 40, 2, t(BASE + 60_000));
    store.record_archive_hour(&retried).await.expect("record");
    let got = store.archive_hours(all).await.unwrap();
    assert_eq!(
        got.len(),
        records.len(),
        "archive_hours_are_recorded: replaced, not added"
    );
    assert_eq!(
        got[4], retried,
        "archive_hours_are_recorded: the latest record wins"
    );
    let run = store.complete_run().await.unwrap().expect("a run");
    assert_eq!(
        (run.from, run.until),
        (h(3), h(6)),
        "archive_hours_are_recorded: the run after the retry"
    );
    // Filling the hole joins everything into one run.
    let found = ArchiveHour::new(h(2), ArchiveStatus::Imported, 9, 3, t(BASE + 70_000));
    store.record_archive_hour(&found).await.expect("record");
    let run = store.complete_run().await.unwrap().expect("a run");
    assert_eq!(
        (run.from, run.until),
        (h(0), h(6)),
        "archive_hours_are_recorded: one run once the hole is filled"
    );
}

/// A repository with no events gives zeros and `None`, not an error.
pub async fn unknown_repository_is_zero(store: &dyn Store) {
    store
        .insert_events(&[event(
            40,
            EventType::WatchEvent,
            "known/repo",
            BASE,
            "started",
        )])
        .await
        .expect("insert");
    let unknown = repo("nobody/nothing");
    let avg = store.pr_average(&unknown).await.unwrap();
    assert_eq!(avg.opened_count, 0);
    assert_eq!(avg.average_seconds(), None);
    assert_eq!(avg.first_opened_at, None);
    let counts = store.repo_event_counts(&unknown).await.unwrap();
    assert_eq!(counts.counts, TypeCounts::default());
    assert_eq!(counts.repository, "nobody/nothing");
    // Names are exact: another case is another repository.
    let other_case = store.repo_event_counts(&repo("Known/Repo")).await.unwrap();
    assert_eq!(
        other_case.counts,
        TypeCounts::default(),
        "names are matched exactly"
    );
}

/// Buckets are aligned, empty ones are zero, and they add up to the window's counts.
pub async fn timeline_buckets(store: &dyn Store) {
    let start = (BASE / 60) * 60;
    let events = [
        event(50, EventType::WatchEvent, "o/r", start + 5, "started"),
        event(51, EventType::WatchEvent, "o/r", start + 65, "started"),
        event(52, EventType::IssuesEvent, "o/r", start + 70, "opened"),
        event(
            53,
            EventType::PullRequestEvent,
            "o/r",
            start + 250,
            "opened",
        ),
        event(54, EventType::WatchEvent, "o/r", start - 1, "started"),
    ];
    store.insert_events(&events).await.expect("insert");
    let window = TimeWindow::new(t(start + 3), t(start + 300)).unwrap();
    let timeline = store.timeline(window, 60).await.unwrap();
    let starts: Vec<i64> = timeline
        .bucket_starts
        .iter()
        .map(|s| s.timestamp())
        .collect();
    assert_eq!(
        starts,
        (0..5).map(|i| start + i * 60).collect::<Vec<_>>(),
        "timeline_buckets: aligned starts"
    );
    assert_eq!(
        timeline.counts[0],
        vec![1, 1, 0, 0, 0],
        "timeline_buckets: watch"
    );
    assert_eq!(
        timeline.counts[1],
        vec![0, 0, 0, 0, 1],
        "timeline_buckets: pull requests"
    );
    assert_eq!(
        timeline.counts[2],
        vec![0, 1, 0, 0, 0],
        "timeline_buckets: issues"
    );
    let totals = store.event_counts(window).await.unwrap().counts;
    for t in EventType::ALL {
        assert_eq!(timeline.counts[t.index()].iter().sum::<u64>(), totals[t]);
    }
    // A window that starts mid-bucket leaves out what precedes it in that bucket.
    let narrow = TimeWindow::new(t(start + 6), t(start + 66)).unwrap();
    let timeline = store.timeline(narrow, 60).await.unwrap();
    assert_eq!(
        timeline.counts[0],
        vec![0, 1],
        "timeline_buckets: clipped to window"
    );
}

/// Windows and timelines over many hours, aligned to hours or not, with buckets of whole
/// hours or not, match a brute-force count (a backend may answer whole hours from
/// pre-aggregated counts and the partial hours at the ends from its events).
pub async fn windows_across_hours(store: &dyn Store) {
    const HOUR: i64 = 3600;
    let h0 = (BASE / HOUR) * HOUR;
    // Around every hour boundary of two days and a half, plus spread-out times between.
    let mut events = Vec::new();
    let mut id = 5_000;
    for h in 0..60 {
        for (offset, ty) in [
            (-1, EventType::WatchEvent),
            (0, EventType::IssuesEvent),
            (1, EventType::PullRequestEvent),
            (17 * 60 + h, EventType::WatchEvent),
            (41 * 60 + 7 * h, EventType::IssuesEvent),
        ] {
            if h % 7 == 3 && offset > 0 {
                continue; // some hours hold only their first second
            }
            id += 1;
            events.push(event(id, ty, "hours/x", h0 + h * HOUR + offset, "opened"));
        }
    }
    store.insert_events(&events).await.expect("insert");
    let count = |since: i64, until: i64| {
        let mut c = TypeCounts::default();
        for e in events
            .iter()
            .filter(|e| (since..until).contains(&e.timestamp()))
        {
            c[e.event_type] += 1;
        }
        c
    };
    let windows = [
        (h0, h0 + 10 * HOUR),                     // whole hours
        (h0 + 1, h0 + 10 * HOUR),                 // starts one second into an hour
        (h0 - 1, h0 + 10 * HOUR + 1),             // one second more at each end
        (h0 + 17 * 60, h0 + 49 * HOUR + 41 * 60), // partial hours at both ends
        (h0 + 5 * HOUR, h0 + 6 * HOUR),           // exactly one hour
        (h0 + 5 * HOUR + 10, h0 + 6 * HOUR - 10), // inside one hour
        (h0 + 5 * HOUR - 30, h0 + 5 * HOUR + 30), // across one boundary, no whole hour
        (h0 + 3 * HOUR + 1, h0 + 4 * HOUR + 1),   // one hour long, not aligned
        (h0 - 10 * HOUR, h0 + 100 * HOUR),        // beyond the data on both sides
        (h0 + 20 * HOUR, h0 + 20 * HOUR + 1),     // one second
    ];
    for (since, until) in windows {
        let window = TimeWindow::new(t(since), t(until)).unwrap();
        let expected = count(since, until);
        let got = store.event_counts(window).await.unwrap().counts;
        assert_eq!(
            got,
            expected,
            "windows_across_hours: counts in [h0{:+}, h0{:+})",
            since - h0,
            until - h0
        );
        for bucket in [60, 1800, HOUR, 5400, 2 * HOUR, 3 * HOUR, 86_400] {
            let Ok(timeline) = store.timeline(window, bucket).await else {
                continue; // too many buckets for a one-minute bucket over days
            };
            for (i, start) in timeline.bucket_starts.iter().enumerate() {
                let start = start.timestamp();
                let expected = count(start.max(since), (start + bucket).min(until));
                for ty in EventType::ALL {
                    assert_eq!(
                        timeline.counts[ty.index()][i],
                        expected[ty],
                        "windows_across_hours: {ty} in the bucket at h0{:+} of {bucket} s, \
                         window [h0{:+}, h0{:+})",
                        start - h0,
                        since - h0,
                        until - h0
                    );
                }
            }
        }
    }
    assert_eq!(store.total_events().await.unwrap(), events.len() as u64);
    let health = store.health().await;
    assert_eq!(health.total_events, events.len() as u64);
    assert_eq!(
        health.last_event_at.map(|t| t.timestamp()),
        events.iter().map(Event::timestamp).max(),
        "windows_across_hours: newest event time"
    );
}

/// Most events first, ties by name, limited.
pub async fn top_repositories_order(store: &dyn Store) {
    let mut events = Vec::new();
    let mut id = 100;
    for (name, n) in [("b/two", 2), ("a/three", 3), ("c/one", 1), ("a/two", 2)] {
        for i in 0..n {
            id += 1;
            events.push(event(id, EventType::IssuesEvent, name, BASE + i, "opened"));
        }
    }
    store.insert_events(&events).await.expect("insert");
    let top = store.top_repositories(3).await.unwrap();
    let got: Vec<(&str, u64)> = top
        .iter()
        .map(|r| (r.repository.as_str(), r.event_count))
        .collect();
    assert_eq!(
        got,
        [("a/three", 3), ("a/two", 2), ("b/two", 2)],
        "top_repositories_order"
    );
    assert!(store.top_repositories(0).await.unwrap().is_empty());
}

/// Thousands of repositories tied at the cut-off, arriving in no name order and in several
/// batches, some of them climbing out of the tie later: the ties come by name, and the whole
/// ranking is in order.
pub async fn ranking_ties_by_name(store: &dyn Store) {
    const N: u64 = 3_000;
    let name = |i: u64| format!("tie/r{i:04}");
    // Every repository once, in a scrambled order (7919 is prime to N).
    let events: Vec<Event> = (0..N)
        .map(|i| {
            let r = i * 7919 % N;
            event(
                5_000_000 + i,
                EventType::WatchEvent,
                &name(r),
                BASE + i as i64,
                "started",
            )
        })
        .collect();
    for batch in events.chunks(700) {
        store.insert_events(batch).await.expect("insert");
    }
    // Two climb out of the tie; the first by name among them leaves it too.
    let more: Vec<Event> = [(2_999, 2), (1_500, 1), (0, 1)]
        .into_iter()
        .flat_map(|(r, n)| (0..n).map(move |k| (r, k)))
        .enumerate()
        .map(|(i, (r, _))| {
            event(
                6_000_000 + i as u64,
                EventType::IssuesEvent,
                &name(r),
                BASE + i as i64,
                "opened",
            )
        })
        .collect();
    store.insert_events(&more).await.expect("insert");
    let top = store.top_repositories(6).await.unwrap();
    let got: Vec<(&str, u64)> = top
        .iter()
        .map(|r| (r.repository.as_str(), r.event_count))
        .collect();
    assert_eq!(
        got,
        [
            ("tie/r2999", 3),
            ("tie/r0000", 2),
            ("tie/r1500", 2),
            ("tie/r0001", 1),
            ("tie/r0002", 1),
            ("tie/r0003", 1),
        ],
        "ranking_ties_by_name: top 6"
    );
    let all = store.top_repositories(N as usize + 10).await.unwrap();
    assert_eq!(
        all.len(),
        N as usize,
        "ranking_ties_by_name: every repository"
    );
    assert!(
        all.windows(2)
            .all(|w| (w[1].event_count, &w[0].repository) < (w[0].event_count, &w[1].repository)),
        "ranking_ties_by_name: most events first, ties by name"
    );
    assert_eq!(
        all.iter().map(|r| r.event_count).sum::<u64>(),
        N + 4,
        "ranking_ties_by_name: counts"
    );
}

/// Writers and readers at once: every insert lands once, and no reader sees a count go down.
pub async fn concurrent_inserts_and_queries(store: SharedStore) {
    let store: Arc<dyn Store> = store;
    const WRITERS: u64 = 4;
    const BATCHES: u64 = 10;
    const PER_BATCH: u64 = 50;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                // Writers overlap: half of each batch repeats the previous writer's ids.
                let events: Vec<Event> = (0..PER_BATCH)
                    .map(|i| {
                        let id = 1_000_000 + ((w * BATCHES + b) * PER_BATCH + i) / 2 * 2 + (i % 2);
                        event(
                            id,
                            EventType::WatchEvent,
                            "con/current",
                            BASE + (id % 500) as i64,
                            "started",
                        )
                    })
                    .collect();
                store.insert_events(&events).await.expect("insert");
            }
        }));
    }
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..50 {
                let total = store.total_events().await.expect("total");
                assert!(total >= last, "a total went down: {last} then {total}");
                last = total;
                tokio::task::yield_now().await;
            }
        })
    };
    for task in tasks {
        task.await.expect("writer");
    }
    reader.await.expect("reader");
    let mut expected = HashSet::new();
    for w in 0..WRITERS {
        for b in 0..BATCHES {
            for i in 0..PER_BATCH {
                expected.insert(1_000_000 + ((w * BATCHES + b) * PER_BATCH + i) / 2 * 2 + (i % 2));
            }
        }
    }
    assert_eq!(
        store.total_events().await.unwrap(),
        expected.len() as u64,
        "concurrent_inserts_and_queries: total"
    );
    let all = TimeWindow::new(t(BASE - 1), t(BASE + 1000)).unwrap();
    let counts = store.event_counts(all).await.unwrap().counts;
    assert_eq!(counts[EventType::WatchEvent], expected.len() as u64);
}

/// Real recorded events, inserted in overlapping batches, against expectations computed here
/// by brute force from the JSON itself (not through the crate's parser).
pub async fn real_events_match_brute_force(store: &dyn Store, raw: &[serde_json::Value]) {
    // Input: the crate's parser, fed each recorded object.
    let events: Vec<Event> = raw
        .iter()
        .filter_map(|v| match parse_record(v.to_string().as_bytes()) {
            RecordOutcome::Kept(e) => Some(e),
            _ => None,
        })
        .collect();
    assert!(
        events.len() > 1000,
        "real events: too few kept events ({})",
        events.len()
    );
    // Overlapping batches, as consecutive polls produce.
    let chunk = events.len() / 5 + 1;
    let mut start = 0;
    while start < events.len() {
        let end = (start + chunk).min(events.len());
        let from = start.saturating_sub(chunk / 3);
        store
            .insert_events(&events[from..end])
            .await
            .expect("insert");
        start = end;
    }
    store
        .insert_events(&events[..chunk])
        .await
        .expect("re-insert");

    // Expectations, brute force over serde_json values.
    let kept: HashMap<&str, &serde_json::Value> = raw
        .iter()
        .filter(|v| {
            matches!(
                v["type"].as_str(),
                Some("WatchEvent" | "PullRequestEvent" | "IssuesEvent")
            ) && v["id"].is_string()
        })
        .map(|v| (v["id"].as_str().unwrap(), v))
        .collect();
    let time_of = |v: &serde_json::Value| {
        DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap())
            .unwrap()
            .timestamp()
    };
    let type_of =
        |v: &serde_json::Value| EventType::from_name(v["type"].as_str().unwrap()).unwrap();
    let repo_of = |v: &serde_json::Value| v["repo"]["name"].as_str().unwrap().to_owned();
    assert_eq!(
        store.total_events().await.unwrap(),
        kept.len() as u64,
        "real events: total"
    );

    let times: Vec<i64> = kept.values().map(|v| time_of(v)).collect();
    let (min, max) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
    let span = max - min;
    for (since, until) in [
        (min, max + 1),
        (min + span / 3, max - span / 3),
        (min + 1, min + 61),
        (max, max + 60),
    ] {
        let mut expected = TypeCounts::default();
        for v in kept.values() {
            let at = time_of(v);
            if since <= at && at < until {
                expected[type_of(v)] += 1;
            }
        }
        let window = TimeWindow::new(t(since), t(until)).unwrap();
        let got = store.event_counts(window).await.unwrap().counts;
        assert_eq!(got, expected, "real events: counts in [{since}, {until})");
        let bucket = ((until - since) / 7).max(1);
        let timeline = store.timeline(window, bucket).await.unwrap();
        for ty in EventType::ALL {
            assert_eq!(
                timeline.counts[ty.index()].iter().sum::<u64>(),
                expected[ty],
                "real events: timeline sums to the window count for {ty}"
            );
        }
    }

    // PR averages: the mean of consecutive gaps, computed the long way.
    let mut opened: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut per_repo: BTreeMap<String, TypeCounts> = BTreeMap::new();
    for v in kept.values() {
        per_repo.entry(repo_of(v)).or_default()[type_of(v)] += 1;
        if type_of(v) == EventType::PullRequestEvent && v["payload"]["action"] == "opened" {
            opened.entry(repo_of(v)).or_default().push(time_of(v));
        }
    }
    let mut checked = 0;
    for (name, mut times) in opened.iter().map(|(k, v)| (k, v.clone())) {
        let Ok(name_ok) = name.parse::<RepoName>() else {
            continue;
        };
        times.sort_unstable();
        let gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let expected =
            (!gaps.is_empty()).then(|| gaps.iter().sum::<i64>() as f64 / gaps.len() as f64);
        let got = store.pr_average(&name_ok).await.unwrap();
        assert_eq!(
            got.opened_count,
            times.len() as u64,
            "real events: PRs opened in {name}"
        );
        match (got.average_seconds(), expected) {
            (None, None) => {}
            (Some(g), Some(e)) => assert!(
                (g - e).abs() < 1e-6,
                "real events: average of {name}: {g} vs {e}"
            ),
            (g, e) => panic!("real events: average of {name}: {g:?} vs {e:?}"),
        }
        checked += 1;
    }
    assert!(
        checked > 10,
        "real events: too few repositories with opened PRs"
    );
    for (name, expected) in per_repo.iter().take(200) {
        let Ok(name_ok) = name.parse::<RepoName>() else {
            continue;
        };
        let got = store.repo_event_counts(&name_ok).await.unwrap();
        assert_eq!(got.counts, *expected, "real events: counts of {name}");
    }
    let mut ranking: Vec<(u64, &String)> = per_repo.iter().map(|(k, v)| (v.total(), k)).collect();
    ranking.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let top = store.top_repositories(10).await.unwrap();
    let got: Vec<(u64, &String)> = top.iter().map(|r| (r.event_count, &r.repository)).collect();
    assert_eq!(
        got,
        ranking[..10.min(ranking.len())],
        "real events: top repositories"
    );
}

/// The recorded GitHub events committed in the repository's `testdata/` folder (its README says
/// where each file came from), for tests, benches and examples.
pub mod fixtures {
    use super::*;

    /// The directory of recorded events: `testdata/` at the root of the workspace.
    pub fn data_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace directory")
            .join("testdata")
    }

    /// A file of the recorded data, by its path inside the data directory. Files committed
    /// gzipped are found under their plain name too (`x.jsonl` finds `x.jsonl.gz`).
    pub fn path(relative: &str) -> PathBuf {
        let plain = data_dir().join(relative);
        if plain.exists() {
            return plain;
        }
        let gzipped = data_dir().join(format!("{relative}.gz"));
        if gzipped.exists() { gzipped } else { plain }
    }

    /// The uncompressed bytes of a recorded file (gzip is decompressed).
    pub fn read(relative: &str) -> Vec<u8> {
        let path = path(relative);
        let mut reader = crate::source::file::open_event_file(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut bytes)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        bytes
    }

    /// Every record of a JSON-lines or JSON-array file, as JSON values.
    pub fn json_records(relative: &str) -> Vec<serde_json::Value> {
        let bytes = read(relative);
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            serde_json::from_slice(&bytes).expect("a JSON array")
        } else {
            bytes
                .split(|&b| b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
                .map(|l| serde_json::from_slice(l).expect("a JSON line"))
                .collect()
        }
    }

    /// The records used by the real-events case: a full 2015 GH Archive hour and the 2021
    /// sample, with the 2026 API answer.
    pub fn recorded_events() -> Vec<serde_json::Value> {
        let mut all = json_records("gharchive/2015-01-01-12.json.gz");
        all.extend(json_records("samples/2021-07-21-few-hours.jsonl"));
        all.extend(json_records("api-responses/events-2026-01-25.json"));
        all
    }

    /// The kept events of [`recorded_events`], parsed.
    pub fn recorded_kept_events() -> Vec<Event> {
        recorded_events()
            .iter()
            .filter_map(|v| match parse_record(v.to_string().as_bytes()) {
                RecordOutcome::Kept(e) => Some(e),
                _ => None,
            })
            .collect()
    }
}
