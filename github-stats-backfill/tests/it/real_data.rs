//! Real recorded files into the memory store, checked against the independent count; the store
//! reopened from the same DATA_DIR (what the server does) answers the metrics of the import.

use std::path::PathBuf;

use chrono::DateTime;
use github_stats_core::{EventType, MemoryStore, MetricsQuery, RepoName, TimeWindow};

use crate::common::{Expected, assert_counts, data, memory_config, run};

pub fn real_inputs() -> Vec<PathBuf> {
    vec![
        data("gharchive"),
        data("samples/2021-07-21-few-hours.jsonl"),
        data("samples/2011-2021-sampled.jsonl"),
        data("api-responses/events-2026-01-25.json"),
        data("api-responses/events-2020-04-25/01.body.json"),
        data("api-responses/events-2017-12-29/01.body.json"),
    ]
}

pub fn expected_of_real_inputs() -> Expected {
    let mut expected = Expected::default();
    for name in ["2015-01-01-0.json.gz", "2015-01-01-12.json.gz"] {
        expected.add_file(&data(&format!("gharchive/{name}")));
    }
    for path in &real_inputs()[1..] {
        expected.add_file(path);
    }
    expected
}

#[tokio::test(flavor = "multi_thread")]
async fn real_files_into_memory_match_an_independent_count_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let expected = expected_of_real_inputs();
    assert!(
        expected.kept_total() > 3000,
        "the fixtures hold kept events"
    );

    let summary = run(memory_config(real_inputs(), &data_dir)).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert_eq!(summary.files, 7);
    assert_eq!(summary.files_read, 7);
    assert!(summary.failed.is_empty());
    assert_counts(&summary, &expected);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
    assert_eq!(
        summary.duplicates,
        expected.kept_total() - expected.distinct.len() as u64
    );
    assert!(summary.batches > 1, "small batches: {}", summary.batches);

    // A second run of the same import adds nothing.
    let again = run(memory_config(real_inputs(), &data_dir)).await;
    assert_counts(&again, &expected);
    assert_eq!(again.inserted, 0);
    assert_eq!(again.duplicates, expected.kept_total());

    // What the server does: open the same DATA_DIR and answer the metrics.
    let store = MemoryStore::open(&data_dir).unwrap();
    assert_metrics(&store, &expected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_the_same_counts_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let expected = expected_of_real_inputs();
    let mut config = memory_config(real_inputs(), &data_dir);
    config.dry_run = true;
    let summary = run(config).await;
    assert!(summary.dry_run);
    assert_eq!(summary.exit_code(), 0);
    assert_counts(&summary, &expected);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
    assert!(!data_dir.exists(), "a dry run creates no data directory");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_large_batch_and_one_parser_give_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_of_real_inputs();
    let mut config = memory_config(real_inputs(), &dir.path().join("data"));
    config.jobs = 1;
    config.batch_size = 1_000_000;
    config.chunk_bytes = 16 << 20;
    let summary = run(config).await;
    assert_counts(&summary, &expected);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
    assert_eq!(summary.batches, 1);
}

/// Asserts that `store` answers the metrics of what `expected` holds: totals, counts by type,
/// the PR average of the repository with the most opened PRs, per-repository counts.
pub async fn assert_metrics(store: &dyn MetricsQuery, expected: &Expected) {
    assert_eq!(
        store.total_events().await.unwrap(),
        expected.distinct.len() as u64
    );
    let everything = TimeWindow::new(
        DateTime::from_timestamp(0, 0).unwrap(),
        DateTime::from_timestamp(4_000_000_000, 0).unwrap(),
    )
    .unwrap();
    let counts = store.event_counts(everything).await.unwrap();
    for t in EventType::ALL {
        assert_eq!(
            counts.counts[t],
            expected.distinct_by_type()[t.index()],
            "{t} in the whole window"
        );
    }

    // The repository with the most opened pull requests (ties by name).
    let (repo, opened) = expected
        .opened_prs
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
        .unwrap();
    assert!(opened.len() >= 2, "a repository with several opened PRs");
    let name: RepoName = repo.parse().unwrap();
    let average = store.pr_average(&name).await.unwrap();
    let first = *opened.values().min().unwrap();
    let last = *opened.values().max().unwrap();
    assert_eq!(average.opened_count, opened.len() as u64, "{repo}");
    assert_eq!(average.first_opened_at.unwrap().timestamp(), first);
    assert_eq!(average.last_opened_at.unwrap().timestamp(), last);
    assert_eq!(
        average.average_seconds(),
        Some((last - first) as f64 / (opened.len() - 1) as f64)
    );

    // Per repository counts, for the busiest repository.
    let (busiest, events) = expected
        .by_repo
        .iter()
        .max_by(|a, b| a.1.len().cmp(&b.1.len()).then(b.0.cmp(a.0)))
        .unwrap();
    let counts = store
        .repo_event_counts(&busiest.parse().unwrap())
        .await
        .unwrap();
    for t in EventType::ALL {
        let want = events.values().filter(|&&e| e == t).count() as u64;
        assert_eq!(counts.counts[t], want, "{busiest} {t}");
    }
}
