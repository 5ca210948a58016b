//! `POLL_MODE=adaptive` against the fake stream: the share of the stream read, the budget
//! spent (never overrun, spread over its window), and the capture estimate against the truth
//! the fake knows. The budget is GitHub's 5,000 requests an hour, scaled: 200 requests per
//! 144 s (the same rate), with the stream's seconds lasting a few milliseconds.

use std::time::Duration;

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use github_stats_core::ingest::{Ingest, IngestConfig};
use github_stats_core::source::file::collect_event_files;
use github_stats_core::source::gharchive::{GhArchiveConfig, GhArchiveSource};
use github_stats_core::source::github::hour_files::HourFiles;
use github_stats_core::source::github::{CaptureSnapshot, PollMode, SaveFormat};
use github_stats_core::{
    ArchiveStatus, EventSource, FileSource, GitHubConfig, GitHubPoller, MemoryStore, MetricsQuery,
    TimeWindow,
};
use tokio_util::sync::CancellationToken;

use crate::fake_stream::{FakeStream, PAGE, Served, StreamSpec};

/// 5,000 an hour, as 200 per 144 s.
const LIMIT: u64 = 200;
const WINDOW_SECS: u64 = 144;

/// A second of the stream: short enough for two budget windows to pass in 15 s, long enough
/// that the noise of a loaded machine (a few milliseconds) stays a small part of the stream's
/// time.
fn time_unit() -> Duration {
    Duration::from_millis(50)
}

fn spec(events_per_second: f64) -> StreamSpec {
    StreamSpec {
        events_per_second,
        time_unit: time_unit(),
        limit: LIMIT,
        window_secs: WINDOW_SECS,
    }
}

fn config(url: &str, mode: PollMode) -> GitHubConfig {
    let mut config = GitHubConfig::new(url);
    config.time_unit = time_unit();
    config.mode = mode;
    config.token = Some("ghp_fake".into());
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(40);
    config.request_timeout = Duration::from_secs(5);
    config
}

/// What a run of the poller over `windows` budget windows did.
struct Run {
    log: Vec<Served>,
    /// Distinct events the poller read.
    read: u64,
    /// Events published by the last poll the poller finished.
    published: u64,
    capture: CaptureSnapshot,
    errors: Vec<String>,
}

impl Run {
    fn true_share(&self) -> f64 {
        self.read as f64 / self.published as f64
    }

    /// Requests answered 200 in each window, in its first and second half.
    fn halves(&self, windows: u64) -> Vec<(u64, u64)> {
        let mut halves = vec![(0, 0); windows as usize];
        for s in self.log.iter().filter(|s| s.status == 200) {
            let window = (s.at / WINDOW_SECS as f64) as usize;
            if window >= halves.len() {
                continue;
            }
            if s.at % (WINDOW_SECS as f64) < WINDOW_SECS as f64 / 2.0 {
                halves[window].0 += 1;
            } else {
                halves[window].1 += 1;
            }
        }
        halves
    }
}

async fn run(fake: &FakeStream, config: GitHubConfig, windows: u64) -> Run {
    let poller = GitHubPoller::new(config).unwrap();
    let end = tokio::time::Instant::now() + time_unit().mul_f64((windows * WINDOW_SECS) as f64);
    let mut errors = Vec::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            polled = poller.next_batch() => if let Err(e) = polled {
                errors.push(e.to_string());
            },
        }
    }
    let status = poller.status().snapshot();
    let log = fake.log();
    // Shown when an assertion fails.
    eprintln!("{:?}\n{:?}", status.counters, status.capture);
    // The poll abandoned at the end is not counted: the truth is taken at the last poll the
    // poller finished (its page-1 answer is the `polls`-th).
    let page_ones: Vec<&Served> = log
        .iter()
        .filter(|s| s.page == 1 && s.status != 403)
        .collect();
    let published = page_ones[status.counters.polls as usize - 1].published;
    // Every event the poller counts as read was served, once.
    assert!(status.counters.new_events <= fake.served_events());
    Run {
        read: status.counters.new_events,
        published,
        capture: status.capture,
        errors,
        log,
    }
}

fn assert_budget_kept(run: &Run, windows: u64) {
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let refused = run.log.iter().filter(|s| s.status == 403).count();
    if let Some(i) = run.log.iter().position(|s| s.status == 403) {
        eprintln!(
            "first refusal, and the requests before it: {:?}",
            &run.log[i.saturating_sub(8)..=i]
        );
    }
    assert_eq!(refused, 0, "requests refused for the budget");
    for (window, (first, second)) in run.halves(windows).into_iter().enumerate() {
        let spent = first + second;
        assert!(spent <= LIMIT, "window {window}: {spent} requests");
        // Spread over the window, not spent early.
        let early = first as f64 / spent as f64;
        assert!(
            (0.35..=0.65).contains(&early),
            "window {window}: {first} requests in its first half, {second} in its second"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_reads_nearly_all_of_a_stream_the_budget_can_follow() {
    let fake = FakeStream::start(spec(100.0)).await;
    let run = run(&fake, config(&fake.url, PollMode::Adaptive), 2).await;
    assert_budget_kept(&run, 2);
    let share = run.true_share();
    assert!(
        share >= 0.99,
        "read {} of {} events",
        run.read,
        run.published
    );
    let estimate = run.capture.seen_share.unwrap();
    assert!(
        (estimate - share).abs() <= 0.03,
        "estimated {estimate}, truly {share}"
    );
    let rate = run.capture.stream_rate.unwrap();
    assert!((90.0..=110.0).contains(&rate), "stream rate {rate}");
    assert_eq!(run.capture.mode, "adaptive");
    // The reserve (10% of the limit) is left for other requests.
    let lowest = run.log.iter().map(|s| s.remaining).min().unwrap();
    assert!(lowest >= LIMIT / 10, "the budget went down to {lowest}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_spends_the_whole_budget_on_a_stream_faster_than_it() {
    let fake = FakeStream::start(spec(200.0)).await;
    let mut config = config(&fake.url, PollMode::Adaptive);
    config.reserve = Some(0);
    let run = run(&fake, config, 2).await;
    assert_budget_kept(&run, 2);
    // What the budget allows: a page of new events per request.
    let allowed = 2 * LIMIT * PAGE;
    assert!(
        run.read as f64 >= 0.95 * allowed as f64,
        "read {} events, the budget allows {allowed}",
        run.read
    );
    let share = run.true_share();
    assert!(share < 0.9, "the stream outran the budget: {share}");
    let estimate = run.capture.seen_share.unwrap();
    assert!(
        (estimate - share).abs() <= 0.03,
        "estimated {estimate}, truly {share}"
    );
    assert!(run.capture.missed_estimate > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mode_still_waits_the_poll_interval() {
    let fake = FakeStream::start(spec(100.0)).await;
    // X-Poll-Interval is 60 s: over 144 s, polls at 0, 60 and 120, three pages each.
    let run = run(&fake, config(&fake.url, PollMode::Interval), 1).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    let page_ones: Vec<&Served> = run.log.iter().filter(|s| s.page == 1).collect();
    assert_eq!(page_ones.len(), 3, "{page_ones:?}");
    for pair in page_ones.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!((59.0..=70.0).contains(&waited), "waited {waited} s");
    }
    assert_eq!(run.log.len(), 9, "every poll reads pages 1 to 3");
    // 300 of the 6,000 events published a minute: a few percent. No two polls overlap, so
    // the rate cannot be measured: the share is unknown, not a made-up 100%.
    let share = run.true_share();
    assert!(share < 0.1, "{share}");
    assert_eq!(run.capture.mode, "interval");
    assert_eq!(run.capture.stream_rate, None);
    assert_eq!(run.capture.seen_share, None);
}

/// The hour a `YYYY-MM-DD-H.json.gz` name stands for.
fn hour_of(name: &str) -> DateTime<Utc> {
    let stem = name.strip_suffix(".json.gz").expect("an hour file");
    let (day, hour) = stem.rsplit_once('-').unwrap();
    assert!(
        hour == "0" || !hour.starts_with('0'),
        "a zero-padded hour: {name}"
    );
    let hour: u32 = hour.parse().unwrap();
    NaiveDateTime::parse_from_str(&format!("{day} {hour:02}:00"), "%Y-%m-%d %H:%M")
        .unwrap()
        .and_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gharchive_mirror_holds_every_event_once_and_reads_back_as_gh_archive() {
    let fake = FakeStream::start(spec(100.0)).await;
    let dir = tempfile::tempdir().unwrap();
    let events_dir = dir.path().join("mirror");
    let mut config = config(&fake.url, PollMode::Adaptive);
    config.events_dir = Some(events_dir.clone());
    config.save_format = SaveFormat::GhArchive;
    let poller = GitHubPoller::new(config).unwrap();
    let mut polls = 0;
    while polls < 12 {
        poller.next_batch().await.unwrap();
        polls += 1;
    }
    let served = fake.served_ids();
    drop(poller);
    // The process is gone; the next one starts after the hour: it finishes the hour's file.
    drop(HourFiles::open(&events_dir, Utc::now() + chrono::Duration::hours(2)).unwrap());

    let mut names: Vec<String> = std::fs::read_dir(&events_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut lines = Vec::new();
    for name in &names {
        // Only finished hour files, named as GH Archive names them.
        let hour = hour_of(name);
        assert_eq!(
            github_stats_core::source::github::hour_files::hour_file_name(hour),
            *name
        );
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(events_dir.join(name)).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        lines.extend(text.lines().map(str::to_owned));
    }
    // Every event served, of every type, once, as the fake sent it.
    let mut ids = HashSet::new();
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let id: u64 = event["id"].as_str().unwrap().parse().unwrap();
        assert!(ids.insert(id), "event {id} written twice");
        assert_eq!(*line, fake.event_text(id));
    }
    assert_eq!(ids, served);
    let types: HashSet<&str> = lines
        .iter()
        .map(|l| {
            let at = l.find("\"type\":\"").unwrap() + 8;
            &l[at..at + l[at..].find('"').unwrap()]
        })
        .collect();
    assert!(
        types.contains("PushEvent") && types.contains("WatchEvent"),
        "{types:?}"
    );

    // The backfill reads the directory…
    let (files, errors) = collect_event_files(std::slice::from_ref(&events_dir));
    assert!(errors.is_empty(), "{errors:?}");
    let backfilled = Arc::new(MemoryStore::new());
    let report = Ingest::run(
        Arc::new(FileSource::new(files)),
        backfilled.clone(),
        IngestConfig::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(report.completed, "{report:?}");
    let kept = backfilled.total_events().await.unwrap();
    assert!(kept > 0);

    // … and so does the follower, as GH Archive, hour by hour. It reads only hours over and
    // published, so the files are moved three days back, bytes untouched.
    let back = chrono::Duration::days(3);
    let archive_dir = dir.path().join("archive");
    std::fs::create_dir(&archive_dir).unwrap();
    for name in &names {
        let moved =
            github_stats_core::source::github::hour_files::hour_file_name(hour_of(name) - back);
        std::fs::copy(events_dir.join(name), archive_dir.join(moved)).unwrap();
    }
    let first = hour_of(&names[0]) - back;
    let last = hour_of(names.last().unwrap()) - back;
    let mut archive = GhArchiveConfig::backfill(first, last + chrono::Duration::hours(1));
    archive.base_url = format!("file://{}", archive_dir.display()).into();
    let followed = Arc::new(MemoryStore::new());
    let source = Arc::new(GhArchiveSource::open(archive, &*followed).await.unwrap());
    let report = Ingest::run(
        source,
        followed.clone(),
        IngestConfig::default(),
        CancellationToken::new(),
    )
    .await;
    assert!(report.completed, "{report:?}");
    assert_eq!(followed.total_events().await.unwrap(), kept);
    let window = TimeWindow::new(first, last + chrono::Duration::hours(1)).unwrap();
    let hours = followed.archive_hours(window).await.unwrap();
    assert_eq!(hours.len(), names.len(), "{hours:?}");
    assert!(
        hours.iter().all(|h| h.status == ArchiveStatus::Imported),
        "{hours:?}"
    );
}
