//! `--gharchive FROM..UNTIL` against the fake GH Archive: in process (resumable, missing and
//! damaged hours listed, parallel downloads) and through the binary (flags, environment,
//! progress, exit codes, a ClickHouse store).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use github_stats_backfill::{ArchiveImport, Config, StoreConfig};
use github_stats_core::coverage::ArchiveStatus;
use github_stats_core::fake_gharchive::{Answer, FakeArchive, FakeHour, RecordedHour};
use github_stats_core::source::gharchive::archive_file_name;
use github_stats_core::{MemoryStore, MetricsQuery, TimeWindow};

use crate::common::run;

/// 02:00 UTC four days ago: past the default grace period of 24 h.
fn hour(n: i64) -> DateTime<Utc> {
    let day = (Utc::now() - chrono::Duration::days(4)).date_naive();
    Utc.from_utc_datetime(&day.and_hms_opt(2, 0, 0).unwrap()) + chrono::Duration::hours(n)
}

fn show(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

/// An import of `[hour(from), hour(until))` from `url` into the memory store in `data_dir`,
/// with short retries.
fn archive_config(url: &str, from: i64, until: i64, data_dir: &Path) -> Config {
    let mut config = Config::new(Vec::new(), StoreConfig::memory(data_dir));
    let mut import = ArchiveImport::new(hour(from), hour(until));
    import.base_url = url.into();
    import.min_retry = Duration::from_millis(20);
    import.max_retry = Duration::from_millis(50);
    import.failures_before_damaged = 2;
    config.gharchive = Some(import);
    config.jobs = 3;
    config.batch_size = 2000;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_is_imported_resumably_with_missing_and_damaged_hours_listed() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let archive = FakeArchive::start().await;
    // Hours 0-5: hour 2 is a hole, hour 4 is cut on every download of the first run.
    let hours: Vec<Option<FakeHour>> = (0..6)
        .map(|n| {
            let recorded = if n % 2 == 0 {
                RecordedHour::Noon
            } else {
                RecordedHour::Midnight
            };
            (n != 2).then(|| FakeHour::build(recorded, hour(n)))
        })
        .collect();
    for h in hours.iter().flatten() {
        archive.put_hour(h);
    }
    let damaged = hours[4].as_ref().unwrap();
    archive.script(
        &damaged.file_name(),
        vec![Answer::CutAfter(damaged.gzip.len() / 2); 2],
    );
    // Hour 0 trickles in: the next hours are downloaded meanwhile (--jobs 3).
    let slow = hours[0].as_ref().unwrap();
    archive.script(
        &slow.file_name(),
        [Answer::Slow {
            piece: slow.gzip.len() / 10 + 1,
            pause: Duration::from_millis(60),
        }],
    );

    let summary = run(archive_config(&archive.url(), 0, 6, &data_dir)).await;
    assert_eq!(summary.exit_code(), 1, "a damaged hour: {summary}");
    let a = summary.archive.clone().unwrap();
    assert_eq!(a.hours, 6);
    assert_eq!(a.imported, 4);
    assert_eq!(a.imported_now, 4);
    assert_eq!(a.missing, [hour(2)]);
    assert_eq!(a.damaged, [hour(4)]);
    assert!(a.pending.is_empty());
    let text = summary.to_string();
    assert!(
        text.contains("missing hours") && text.contains(&show(hour(2))),
        "{text}"
    );
    assert!(
        text.contains("damaged hours") && text.contains(&show(hour(4))),
        "{text}"
    );
    let whole: u64 = [0, 1, 3, 5]
        .iter()
        .map(|&n| hours[n].as_ref().unwrap().kept().len() as u64)
        .sum();
    assert!(
        summary.inserted > whole,
        "part of the damaged hour is stored"
    );
    assert!(summary.inserted < whole + damaged.kept().len() as u64);
    let requests = archive.requests();
    let at = |n: i64| {
        requests
            .iter()
            .find(|r| r.path == format!("/{}", archive_file_name(hour(n))))
            .unwrap()
            .at
    };
    assert!(at(1) - at(0) < Duration::from_millis(300), "fetched ahead");
    assert!(at(2) - at(0) < Duration::from_millis(300), "fetched ahead");

    // The re-run downloads only the damaged hour, and completes it.
    let before = archive.requests().len();
    let again = run(archive_config(&archive.url(), 0, 6, &data_dir)).await;
    assert_eq!(again.exit_code(), 0, "{again}");
    let a = again.archive.clone().unwrap();
    assert_eq!((a.imported, a.imported_now, a.skipped), (5, 1, 5));
    assert_eq!(a.missing, [hour(2)]);
    assert!(a.damaged.is_empty());
    let new_requests: Vec<String> = archive.requests()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(new_requests, [format!("/{}", damaged.file_name())]);
    let total = whole + damaged.kept().len() as u64;
    assert_eq!(summary.inserted + again.inserted, total);

    // A third run downloads nothing and adds nothing.
    let before = archive.requests().len();
    let third = run(archive_config(&archive.url(), 0, 6, &data_dir)).await;
    assert_eq!(third.exit_code(), 0);
    assert_eq!(third.inserted, 0);
    assert_eq!(archive.requests().len(), before);

    let store = MemoryStore::open(&data_dir).unwrap();
    assert_eq!(store.total_events().await.unwrap(), total);
    let statuses: Vec<ArchiveStatus> = store
        .archive_hours(TimeWindow::new(hour(0), hour(6)).unwrap())
        .await
        .unwrap()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses.len(), 6);
    assert_eq!(statuses[2], ArchiveStatus::Missing);
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == ArchiveStatus::Imported)
            .count(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hours_not_published_yet_are_pending_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let archive = FakeArchive::start().await;
    let fake = FakeHour::build(RecordedHour::Midnight, hour(0));
    archive.put_hour(&fake);
    let mut config = archive_config(&archive.url(), 0, 2, &dir.path().join("data"));
    // Within the grace period: hour 1 is not a hole yet, only not published.
    config.gharchive.as_mut().unwrap().missing_after = Duration::from_secs(3650 * 86_400);
    let summary = tokio::time::timeout(Duration::from_secs(60), run(config))
        .await
        .expect("not waited for");
    assert_eq!(summary.exit_code(), 0, "{summary}");
    let a = summary.archive.unwrap();
    assert_eq!(a.imported, 1);
    assert_eq!(a.pending.len(), 1);
    assert_eq!(a.pending[0].0, hour(1));
    assert!(!a.pending[0].2, "not a failure");
    assert!(a.missing.is_empty());
}

fn backfill(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_github-stats-backfill"));
    cmd.current_dir(cwd);
    for var in [
        "DATABASE_BACKEND",
        "DATA_DIR",
        "EVENTS_DIRECTORY",
        "RUST_LOG",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "CLICKHOUSE_URL",
        "CLICKHOUSE_DATABASE",
        "GHARCHIVE_URL",
        "GHARCHIVE_MISSING_AFTER",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the binary runs"))
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_imports_a_range_from_the_url_in_the_environment_or_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let archive = FakeArchive::start().await;
    let hours: Vec<FakeHour> = (0..3)
        .map(|n| FakeHour::build(RecordedHour::Midnight, hour(n)))
        .collect();
    for h in &hours {
        archive.put_hour(h);
    }
    // Slow enough for a progress line (every second when stderr is not a terminal).
    archive.script(
        &hours[0].file_name(),
        [Answer::Slow {
            piece: hours[0].gzip.len() / 15 + 1,
            pause: Duration::from_millis(100),
        }],
    );
    let range = format!("{}..{}", show(hour(0)), show(hour(2)));
    let mut cmd = backfill(dir.path());
    cmd.args([
        "--gharchive",
        &range,
        "--jobs",
        "2",
        "--progress-interval",
        "1",
    ])
    .env("GHARCHIVE_URL", archive.url())
    .env("DATA_DIR", "store");
    let out = output(cmd).await;
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("hours       2 in {range}: 2 imported")),
        "{stdout}"
    );
    assert!(
        stderr.contains("backfill progress") && stderr.contains("hours_done"),
        "{stderr}"
    );
    assert_eq!(archive.requests().len(), 2);
    assert!(
        archive.requests()[0]
            .user_agent
            .as_deref()
            .unwrap()
            .starts_with("github-stats/")
    );

    // The next hour, through the flag (which wins over the environment), in RFC 3339; the
    // hours before are not downloaded again.
    let from = hour(0).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let until = hour(3).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut cmd = backfill(dir.path());
    cmd.args(["--gharchive", &format!("{from}..{until}")])
        .args(["--gharchive-url", &archive.url()])
        .env("GHARCHIVE_URL", "http://127.0.0.1:9")
        .env("DATA_DIR", "store");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3 imported (1 now, 2 skipped as recorded)"));
    assert_eq!(archive.requests().len(), 3);
    let total: usize = hours.iter().map(|h| h.kept().len()).sum();
    let store = MemoryStore::open(dir.path().join("store")).unwrap();
    assert_eq!(store.total_events().await.unwrap(), total as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ranges_and_urls_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--gharchive", "yesterday"][..],
        &["--gharchive", "2026-11-30T00"],
        &["--gharchive", "2026-11-30T06..2026-11-30T00"],
        &["--gharchive", "2026-11-30T00:30:00Z..2026-11-30T02"],
        &["--gharchive", "2h..", "--gharchive-url", "ftp://mirror"],
        &["--gharchive", "2h..", "--gharchive-missing-after", "soon"],
        &["--gharchive", "2h..", "some-file.json"],
    ] {
        let mut cmd = backfill(dir.path());
        cmd.args(args);
        let out = output(cmd).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out.stderr.is_empty());
    }
    let mut cmd = backfill(dir.path());
    cmd.args(["--gharchive", "2h.."])
        .env("GHARCHIVE_URL", "gopher://x");
    assert_eq!(
        output(cmd).await.status.code(),
        Some(2),
        "a bad GHARCHIVE_URL"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Issue #15: credentials in `GHARCHIVE_URL` (a private mirror's) reach no log line, in either
/// format and at debug, nor the message refusing a bad URL; the URL is logged redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_archive_url_reach_no_log_line() {
    let archive = FakeArchive::start().await;
    let h = FakeHour::build(RecordedHour::Midnight, hour(0));
    archive.put_hour(&h);
    let range = format!("{}..{}", show(hour(0)), show(hour(1)));
    let address = archive.url().trim_start_matches("http://").to_owned();
    let url = format!("http://mirror:planted-archive-secret@{address}");
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = backfill(dir.path());
        cmd.args(["--gharchive", &range])
            .env("GHARCHIVE_URL", &url)
            .env("LOG_LEVEL", "debug")
            .env("LOG_FORMAT", format)
            .env("DATA_DIR", "store");
        let out = output(cmd).await;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 imported"), "{stdout}");
        assert!(
            !stderr.contains("planted") && !stdout.contains("planted"),
            "{format}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("http://<redacted>@{address}")),
            "{format}: the URL is logged redacted: {stderr}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = backfill(dir.path());
    cmd.args(["--gharchive", &range])
        .args(["--gharchive-url", "ftp://mirror:planted-archive-secret@x"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid GHARCHIVE_URL 'ftp://<redacted>@x'"),
        "{stderr}"
    );
    assert!(!stderr.contains("planted"), "{stderr}");
}

/// The backfill into ClickHouse: records and totals (CLICKHOUSE_URL, as the other ClickHouse
/// tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_into_clickhouse_is_recorded_there() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("notice: CLICKHOUSE_URL is not set, skipping the ClickHouse archive backfill");
        return;
    };
    let database = "gs_it_backfill_gharchive";
    let archive = FakeArchive::start().await;
    let hours: Vec<FakeHour> = (0..2)
        .map(|n| FakeHour::build(RecordedHour::Noon, hour(n + 10)))
        .collect();
    for h in &hours {
        archive.put_hour(h);
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = archive_config(&archive.url(), 10, 12, dir.path());
    config.store = github_stats_core::ClickHouseConfig::new(url.clone())
        .with_database(database)
        .into();
    let store = github_stats_core::store::clickhouse::ClickHouseStore::connect(
        github_stats_core::store::clickhouse::ClickHouseConfig::new(url.clone())
            .with_database(database),
    )
    .await
    .expect("CLICKHOUSE_URL is set but ClickHouse does not answer");
    store.drop_database().await.unwrap();
    let summary = run(config).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    let store = github_stats_core::store::clickhouse::ClickHouseStore::connect(
        github_stats_core::store::clickhouse::ClickHouseConfig::new(url).with_database(database),
    )
    .await
    .unwrap();
    let records = store
        .archive_hours(TimeWindow::new(hour(10), hour(12)).unwrap())
        .await
        .unwrap();
    assert_eq!(records.len(), 2);
    for (record, fake) in records.iter().zip(&hours) {
        assert_eq!(record.status, ArchiveStatus::Imported);
        assert_eq!(record.archive_events, fake.kept().len() as u64);
    }
    let total: usize = hours.iter().map(|h| h.kept().len()).sum();
    assert_eq!(store.total_events().await.unwrap(), total as u64);
}
