//! The GitHub poller against a fake Events API serving recorded answers.
//!
//! GitHub's seconds (`X-Poll-Interval`, `Retry-After`, the distance to `X-RateLimit-Reset`)
//! are scaled by `GitHubConfig::time_unit`, so the rules hold with milliseconds of waiting.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use github_stats_core::{EventSource, EventStore, MemoryStore, MetricsQuery};
use github_stats_core::{FileSource, GitHubConfig, GitHubPoller};
use serde_json::Value;

use github_stats_core::fake_github::{FakeGitHub, Reply, kept_ids, recorded_events};

const RECENT: &str = "events-2020-04-25";
const OLDER: &str = "events-2017-12-29";
const PAGES: &str = "user-events-3-pages-2017";

fn config(fake_url: &str, unit_ms: u64) -> GitHubConfig {
    let mut config = GitHubConfig::new(fake_url);
    config.time_unit = Duration::from_millis(unit_ms);
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(40);
    config.request_timeout = Duration::from_secs(5);
    config
}

fn ids(batch: &github_stats_core::EventBatch) -> HashSet<u64> {
    batch.events.iter().map(|e| e.id).collect()
}

fn gap(
    a: &github_stats_core::fake_github::Seen,
    b: &github_stats_core::fake_github::Seen,
) -> Duration {
    b.at.duration_since(a.at)
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn polls_with_github_headers_and_honours_the_etag() {
    let fake = FakeGitHub::start(vec![]).await;
    let recent = Reply::recorded(RECENT, 1, &fake.url()).without_header("Link");
    let recent_etag = recent.get_header("ETag").unwrap().to_owned();
    fake.push(recent);
    fake.push(Reply::not_modified().header("X-Poll-Interval", 60));
    fake.push(Reply::recorded(OLDER, 1, &fake.url()).without_header("Link"));

    let mut config = config(&fake.url(), 1);
    config.token = Some("ghp_test_token".into());
    let poller = GitHubPoller::new(config).unwrap();

    let first = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&first), kept_ids(&recorded_events(RECENT, 1)));
    assert_eq!(first.events.len(), ids(&first).len());
    // The 304 is not a batch: the next batch is the answer after it.
    let second = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&second), kept_ids(&recorded_events(OLDER, 1)));

    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    for s in &seen {
        assert_eq!(s.authorization.as_deref(), Some("Bearer ghp_test_token"));
        assert_eq!(s.accept.as_deref(), Some("application/vnd.github+json"));
        assert!(
            s.user_agent
                .as_deref()
                .unwrap()
                .starts_with("github-stats/")
        );
        assert_eq!(s.uri, "/events?per_page=100");
    }
    assert_eq!(seen[0].if_none_match, None);
    assert_eq!(seen[1].if_none_match.as_deref(), Some(recent_etag.as_str()));
    assert_eq!(seen[2].if_none_match.as_deref(), Some(recent_etag.as_str()));
    // X-Poll-Interval: 60 (units of 1 ms): no poll sooner.
    assert!(gap(&seen[0], &seen[1]) >= Duration::from_millis(60));
    assert!(gap(&seen[1], &seen[2]) >= Duration::from_millis(60));

    let status = poller.status().snapshot();
    let c = status.counters;
    let all = recorded_events(RECENT, 1).len() + recorded_events(OLDER, 1).len();
    assert_eq!((c.polls, c.not_modified, c.pages), (3, 1, 2));
    assert_eq!(c.events_seen, all as u64);
    assert_eq!(c.new_events, all as u64);
    assert_eq!(
        c.kept_events,
        (first.events.len() + second.events.len()) as u64
    );
    // 2017 and 2020 share no event: a gap.
    assert_eq!((c.gaps, c.overlapping_polls), (1, 0));
    assert_eq!(status.poll_interval_seconds, 60);
    assert_eq!(status.rate_limit_remaining, Some(53));
    assert!(status.authenticated);
    assert!(status.last_successful_poll_at.is_some());
    assert!(status.next_poll_at > status.last_poll_at);
}

#[tokio::test]
async fn follows_links_to_pages_two_and_three_and_no_further() {
    let fake = FakeGitHub::start(vec![]).await;
    let page1 = Reply::recorded(PAGES, 1, &fake.url());
    let etag = page1.get_header("ETag").unwrap().to_owned();
    let link2 = page1.get_header("Link").unwrap().to_owned();
    fake.push(page1);
    fake.push(Reply::recorded(PAGES, 2, &fake.url()));
    // A fourth page exists: the poller must not ask for it.
    let page4 = format!("<{}/events?page=4>; rel=\"next\"", fake.url());
    fake.push(Reply::recorded(PAGES, 3, &fake.url()).header("Link", page4));
    fake.set_fallback(Reply::not_modified().header("X-Poll-Interval", 30));

    let poller = GitHubPoller::new(config(&fake.url(), 1)).unwrap();
    let batch = poller.next_batch().await.unwrap().unwrap();

    let mut all = Vec::new();
    for page in 1..=3 {
        all.extend(recorded_events(PAGES, page));
    }
    assert_eq!(ids(&batch), kept_ids(&all));
    assert_eq!(batch.events.len(), kept_ids(&all).len(), "no event twice");
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].uri, "/events?per_page=100");
    // Pages 2 and 3 are exactly the `rel="next"` targets GitHub sent.
    assert!(link2.contains(&format!("<{}{}>; rel=\"next\"", fake.url(), seen[1].uri)));
    assert_eq!(
        seen[1].uri,
        "/user/240830/events/public?per_page=100&page=2"
    );
    assert_eq!(
        seen[2].uri,
        "/user/240830/events/public?per_page=100&page=3"
    );
    assert!(seen[1..].iter().all(|s| s.if_none_match.is_none()));

    // The next polls answer 304: pages 2 and 3 are not fetched.
    let more = tokio::time::timeout(Duration::from_millis(250), poller.next_batch()).await;
    assert!(more.is_err(), "a 304 gives no batch");
    let later = &fake.seen()[3..];
    assert!(later.len() >= 2, "polled again after 30 ms: {later:#?}");
    assert!(
        later
            .iter()
            .all(|s| s.page == 1 && s.uri == "/events?per_page=100")
    );
    assert!(
        later
            .iter()
            .all(|s| s.if_none_match.as_deref() == Some(etag.as_str()))
    );
    let c = poller.status().snapshot().counters;
    assert_eq!(c.pages, 3);
    assert_eq!(c.events_seen, all.len() as u64);
    assert_eq!(c.not_modified, later.len() as u64);
}

#[tokio::test]
async fn each_answer_sets_the_wait_before_the_next_poll() {
    let fake = FakeGitHub::start(vec![]).await;
    let first = Reply::recorded(RECENT, 1, &fake.url())
        .without_header("Link")
        .header("X-Poll-Interval", 100);
    fake.push(first);
    fake.push(Reply::not_modified().header("X-Poll-Interval", 20));
    fake.push(Reply::recorded(OLDER, 1, &fake.url()).without_header("Link"));
    let poller = GitHubPoller::new(config(&fake.url(), 5)).unwrap();

    poller.next_batch().await.unwrap().unwrap();
    assert_eq!(poller.status().snapshot().poll_interval_seconds, 100);
    poller.next_batch().await.unwrap().unwrap();
    let seen = fake.polls();
    assert_eq!(seen.len(), 3);
    // 100 units of 5 ms after the first answer, then 20 units after the 304: each answer
    // sets the next wait.
    assert!(gap(&seen[0], &seen[1]) >= Duration::from_millis(500));
    assert!(gap(&seen[1], &seen[2]) >= Duration::from_millis(100));
    assert!(gap(&seen[1], &seen[2]) < Duration::from_millis(450));
    assert_eq!(poller.status().snapshot().poll_interval_seconds, 60);
}

#[tokio::test]
async fn rate_limits_are_waited_for() {
    const UNIT: u64 = 50;
    let fake = FakeGitHub::start(vec![]).await;
    let now = unix_now();
    // 1. Exhausted: 403, nothing left, reset in 3 s.
    fake.push(
        Reply::new(403)
            .header("X-RateLimit-Limit", 60)
            .header("X-RateLimit-Remaining", 0)
            .header("X-RateLimit-Reset", now + 3)
            .body(br#"{"message":"API rate limit exceeded for 127.0.0.1."}"#.to_vec()),
    );
    // 2. Fine, but only 5 requests left (threshold 10), reset in 6 s.
    fake.push(
        Reply::recorded(RECENT, 1, &fake.url())
            .without_header("Link")
            .header("X-Poll-Interval", 1)
            .header("X-RateLimit-Remaining", 5)
            .header("X-RateLimit-Reset", now + 6),
    );
    // 3. Secondary rate limit: 429 with Retry-After.
    fake.push(Reply::new(429).header("Retry-After", 4));
    fake.push(
        Reply::recorded(OLDER, 1, &fake.url())
            .without_header("Link")
            .header("X-Poll-Interval", 1),
    );
    let poller = GitHubPoller::new(config(&fake.url(), UNIT)).unwrap();

    let err = poller.next_batch().await.unwrap_err().to_string();
    assert!(err.contains("rate limit"), "{err}");
    assert_eq!(poller.status().snapshot().rate_limit_remaining, Some(0));
    poller.next_batch().await.unwrap().unwrap();
    poller.next_batch().await.unwrap_err();
    poller.next_batch().await.unwrap().unwrap();

    let seen = fake.polls();
    assert_eq!(seen.len(), 4);
    let unit = Duration::from_millis(UNIT);
    // The reset was about 3 s away (plus a second of margin), at least 2 units.
    assert!(
        gap(&seen[0], &seen[1]) >= unit * 2,
        "{:?}",
        gap(&seen[0], &seen[1])
    );
    // Low limit: wait for its reset (about 6 s away), not the 1-unit poll interval.
    assert!(
        gap(&seen[1], &seen[2]) >= unit * 4,
        "{:?}",
        gap(&seen[1], &seen[2])
    );
    // Retry-After: 4.
    assert!(
        gap(&seen[2], &seen[3]) >= unit * 4,
        "{:?}",
        gap(&seen[2], &seen[3])
    );
    let status = poller.status().snapshot();
    assert_eq!(status.counters.rate_limited, 2);
    assert_eq!(status.counters.polls, 2);
    assert_eq!(status.rate_limit_remaining, Some(53));
}

#[tokio::test]
async fn server_errors_bad_json_and_slow_answers_are_survived() {
    let fake = FakeGitHub::start(vec![]).await;
    let body = github_stats_core::fake_github::recorded_events(RECENT, 1);
    let full = serde_json::to_vec(&body).unwrap();
    fake.push(Reply::new(500));
    fake.push(Reply::new(502).body(b"<html>Bad gateway</html>".to_vec()));
    fake.push(Reply::new(503).body(br#"{"message":"Service unavailable"}"#.to_vec()));
    fake.push(Reply::events(&body, "W/\"truncated\"").body(full[..full.len() / 2].to_vec()));
    fake.push(Reply::events(&body, "W/\"slow\"").delay(Duration::from_secs(2)));
    fake.push(Reply::recorded(RECENT, 1, &fake.url()).without_header("Link"));

    let mut config = config(&fake.url(), 1);
    config.token = Some("ghp_SECRET_VALUE".into());
    config.request_timeout = Duration::from_millis(200);
    let poller = GitHubPoller::new(config).unwrap();

    let mut errors = Vec::new();
    let batch = loop {
        match poller.next_batch().await {
            Ok(batch) => break batch.unwrap(),
            Err(e) => {
                errors.push(e.to_string());
                let status = poller.status().snapshot();
                assert_eq!(status.consecutive_failures as usize, errors.len());
                assert!(status.degraded);
                assert!(!status.last_error.unwrap().contains("SECRET"));
            }
        }
        assert!(errors.len() <= 5, "{errors:#?}");
    };
    assert_eq!(ids(&batch), kept_ids(&body));
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(errors[0].contains("500"), "{}", errors[0]);
    assert!(errors[2].contains("Service unavailable"), "{}", errors[2]);
    assert!(errors[3].contains("invalid JSON"), "{}", errors[3]);
    assert!(errors[4].contains("timed out"), "{}", errors[4]);
    assert!(errors.iter().all(|e| !e.contains("SECRET")));

    let seen = fake.polls();
    assert_eq!(seen.len(), 6);
    // Backoff between attempts (at least half the 20 ms minimum): no hot loop.
    for pair in seen.windows(2) {
        assert!(gap(&pair[0], &pair[1]) >= Duration::from_millis(10));
    }
    // The truncated answer's ETag was not adopted.
    assert!(seen.iter().all(|s| s.if_none_match.is_none()));
    let status = poller.status().snapshot();
    assert_eq!(status.consecutive_failures, 0);
    assert!(!status.degraded);
    assert_eq!(status.counters.failed_polls, 5);
    assert_eq!(status.counters.polls, 1);
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let poller = GitHubPoller::new(config(&format!("http://{addr}"), 1)).unwrap();
    let err = poller.next_batch().await.unwrap_err().to_string();
    assert!(err.contains("connect"), "{err}");
    assert_eq!(poller.status().snapshot().consecutive_failures, 1);

    let fake = FakeGitHub::start_on(addr, vec![]).await;
    fake.push(Reply::recorded(RECENT, 1, &fake.url()).without_header("Link"));
    let batch = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&batch), kept_ids(&recorded_events(RECENT, 1)));
    assert_eq!(poller.status().snapshot().consecutive_failures, 0);
}

#[tokio::test]
async fn overlapping_polls_give_each_event_once_and_gaps_are_counted() {
    let recent = recorded_events(RECENT, 1);
    let older = recorded_events(OLDER, 1);
    let fake = FakeGitHub::start(vec![
        Reply::events(&recent[10..], "W/\"a\"").header("X-Poll-Interval", 1),
        Reply::events(&recent[..20], "W/\"b\"").header("X-Poll-Interval", 1),
        Reply::events(&older, "W/\"c\"").header("X-Poll-Interval", 1),
    ])
    .await;
    let poller = GitHubPoller::new(config(&fake.url(), 1)).unwrap();
    let store = MemoryStore::new();
    let mut delivered = 0;
    for _ in 0..3 {
        let batch = poller.next_batch().await.unwrap().unwrap();
        delivered += batch.events.len();
        store.insert_events(&batch.events).await.unwrap();
    }
    let mut everything = recent.clone();
    everything.extend(older.iter().cloned());
    let distinct = kept_ids(&everything).len();
    assert_eq!(delivered, distinct, "the poller itself drops repeats");
    assert_eq!(store.total_events().await.unwrap(), distinct as u64);

    let c = poller.status().snapshot().counters;
    assert_eq!(c.events_seen, (20 + 20 + older.len()) as u64);
    assert_eq!(c.duplicate_events, 10);
    assert_eq!(c.new_events, (recent.len() + older.len()) as u64);
    assert_eq!(c.overlapping_polls, 1);
    assert_eq!(c.gaps, 1);
}

#[tokio::test]
async fn a_restart_with_a_state_file_does_not_poll_early() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state/client-state.json");
    let fake = FakeGitHub::start(vec![]).await;
    let recent = Reply::recorded(RECENT, 1, &fake.url()).without_header("Link");
    let etag = recent.get_header("ETag").unwrap().to_owned();
    fake.push(recent);
    let mut config = config(&fake.url(), 5); // X-Poll-Interval 60: 300 ms.
    config.state_file = Some(state_file.clone());

    {
        let poller = GitHubPoller::new(config.clone()).unwrap();
        let batch = poller.next_batch().await.unwrap().unwrap();
        let store = github_stats_core::MemoryStore::new();
        crate::store_by_hand(&store, &poller, batch).await;
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(saved["etag"], etag.as_str());
    assert_eq!(saved["poll_interval"], 60);
    assert_eq!(saved["counters"]["polls"], 1);
    assert_eq!(
        saved["last_poll_event_ids"].as_array().unwrap().len(),
        recorded_events(RECENT, 1).len()
    );
    let next =
        chrono::DateTime::parse_from_rfc3339(saved["next_poll_time"].as_str().unwrap()).unwrap();
    assert!(next > chrono::Utc::now());
    let leftovers = std::fs::read_dir(state_file.parent().unwrap())
        .unwrap()
        .count();
    assert_eq!(leftovers, 1, "no temporary file left behind");

    // The restart: a 304 for the saved ETag, then the same events again under a new ETag.
    fake.push(Reply::not_modified().header("X-Poll-Interval", 60));
    fake.push(
        Reply::recorded(RECENT, 1, &fake.url())
            .without_header("Link")
            .header("ETag", "W/\"second\""),
    );
    let poller = GitHubPoller::new(config).unwrap();
    let again = poller.next_batch().await.unwrap().unwrap();
    assert!(again.events.is_empty(), "events stored before the restart");

    let seen = fake.polls();
    assert_eq!(seen.len(), 3);
    assert!(
        gap(&seen[0], &seen[1]) >= Duration::from_millis(295),
        "polled {:?} after the previous poll",
        gap(&seen[0], &seen[1])
    );
    assert_eq!(seen[1].if_none_match.as_deref(), Some(etag.as_str()));
    assert!(gap(&seen[1], &seen[2]) >= Duration::from_millis(300));
    let c = poller.status().snapshot().counters;
    assert_eq!(
        (c.polls, c.not_modified),
        (3, 1),
        "counters survive restarts"
    );
    assert_eq!(c.duplicate_events, recorded_events(RECENT, 1).len() as u64);
    assert_eq!(c.overlapping_polls, 1);
}

#[tokio::test]
async fn a_corrupt_state_file_is_reported_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("client-state.json");
    std::fs::write(&state_file, b"{\"next_poll_time\": 12").unwrap();
    let mut config = GitHubConfig::new("http://127.0.0.1:9");
    config.state_file = Some(state_file.clone());
    let started = Instant::now();
    let poller = GitHubPoller::new(config).unwrap();
    let status = poller.status().snapshot();
    assert!(
        status.last_error.as_deref().unwrap().contains("state file"),
        "{status:?}"
    );
    let replaced: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert_eq!(replaced["version"], 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn raw_poll_files_hold_every_event_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGitHub::start(vec![]).await;
    fake.push(Reply::recorded(RECENT, 1, &fake.url()).without_header("Link"));
    let mut config = config(&fake.url(), 1);
    config.events_dir = Some(dir.path().join("downloaded-events"));
    let poller = GitHubPoller::new(config).unwrap();
    let batch = poller.next_batch().await.unwrap().unwrap();

    let files: Vec<_> = std::fs::read_dir(dir.path().join("downloaded-events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_owned();
    // YYYY-MM-DDTHH-MM-SS.json
    assert_eq!(name.len(), 24, "{name}");
    assert!(chrono::NaiveDateTime::parse_from_str(&name[..19], "%Y-%m-%dT%H-%M-%S").is_ok());
    assert!(name.ends_with(".json"));
    let saved: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(
        saved,
        Value::Array(recorded_events(RECENT, 1)),
        "every event, as sent"
    );

    // Backfill reads the file back to the same events.
    let source = Arc::new(FileSource::new(files));
    let read = source.next_batch().await.unwrap().unwrap();
    assert_eq!(read.events, batch.events);
}

#[tokio::test]
async fn a_failing_later_page_keeps_the_pages_read_and_foreign_links_are_not_followed() {
    let fake = FakeGitHub::start(vec![]).await;
    // Page 1 links to page 2, which fails: page 1's events are still delivered.
    fake.push(Reply::recorded(PAGES, 1, &fake.url()).header("X-Poll-Interval", 1));
    fake.push(Reply::new(502));
    // Then a page 1 whose next link leaves the API's origin: not followed (the token stays home).
    fake.push(
        Reply::recorded(OLDER, 1, &fake.url())
            .header("X-Poll-Interval", 1)
            .header(
                "Link",
                "<http://elsewhere.invalid/events?page=2>; rel=\"next\"",
            ),
    );
    let mut config = config(&fake.url(), 1);
    config.token = Some("ghp_stay_home".into());
    let poller = GitHubPoller::new(config).unwrap();

    let first = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&first), kept_ids(&recorded_events(PAGES, 1)));
    let status = poller.status().snapshot();
    assert!(status.last_error.unwrap().contains("page 2"));
    assert_eq!(status.consecutive_failures, 0, "the poll itself succeeded");

    let second = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&second), kept_ids(&recorded_events(OLDER, 1)));
    assert!(
        poller
            .status()
            .snapshot()
            .last_error
            .unwrap()
            .contains("another origin")
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    assert_eq!(poller.status().snapshot().counters.pages, 2);
}

#[tokio::test]
async fn a_rate_limit_answer_repeated_forever_backs_off() {
    let fake = FakeGitHub::start(vec![]).await;
    // Nothing left, and a reset already past (a skewed clock): waiting "until the reset" alone
    // would retry at once, every time.
    fake.set_fallback(
        Reply::new(403)
            .header("X-RateLimit-Remaining", 0)
            .header("X-RateLimit-Reset", unix_now() - 100),
    );
    let mut config = config(&fake.url(), 1);
    config.min_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(80);
    let poller = GitHubPoller::new(config).unwrap();
    for _ in 0..6 {
        poller.next_batch().await.unwrap_err();
    }
    let seen = fake.polls();
    for pair in seen.windows(2) {
        assert!(gap(&pair[0], &pair[1]) >= Duration::from_millis(10));
    }
    // By the fifth answer the backoff reached its cap of 80 ms (jittered to at least 40).
    assert!(gap(&seen[4], &seen[5]) >= Duration::from_millis(40));
    assert_eq!(poller.status().snapshot().counters.rate_limited, 6);
}

/// An answer over the page cap is a failed poll, whether its `Content-Length` says so or a
/// chunked body grows past it (read no further: a 1 GiB body costs the cap, not a gigabyte),
/// retried with backoff; a later page over the cap ends the poll with the pages before it.
#[tokio::test]
async fn an_answer_over_the_page_cap_is_a_failed_poll_retried_with_backoff() {
    let fake = FakeGitHub::start(vec![]).await;
    let body = recorded_events(RECENT, 1);
    // The largest recorded page is 743 KB (100 events of 2017, pretty-printed).
    let cap = 1 << 20;
    let paged = recorded_events(PAGES, 1);
    let four_pages: Vec<Value> = paged
        .iter()
        .cycle()
        .take(4 * paged.len())
        .cloned()
        .collect();
    assert!(serde_json::to_vec(&four_pages).unwrap().len() > cap);
    fake.push(Reply::events(&four_pages, "W/\"big\""));
    let (endless, sent) = Reply::new(200).endless(1 << 30);
    fake.push(endless);
    fake.push(Reply::recorded(RECENT, 1, &fake.url()).without_header("Link"));
    // Page 1 linking to a page 2 over the cap.
    fake.push(
        Reply::recorded(PAGES, 1, &fake.url())
            .header("X-Poll-Interval", 1)
            .header("ETag", "W/\"paged\""),
    );
    fake.push(Reply::events(&four_pages, "W/\"big-page-2\""));

    let mut config = config(&fake.url(), 1);
    config.max_page_bytes = cap;
    let poller = GitHubPoller::new(config).unwrap();

    let first = poller.next_batch().await.unwrap_err().to_string();
    assert!(
        first.contains("page cap") && first.contains("Content-Length"),
        "{first}"
    );
    let second = poller.next_batch().await.unwrap_err().to_string();
    assert!(second.contains("page cap"), "{second}");
    assert!(
        sent.load(std::sync::atomic::Ordering::SeqCst) < 64 << 20,
        "the endless body was read on: {} bytes sent",
        sent.load(std::sync::atomic::Ordering::SeqCst)
    );
    let status = poller.status().snapshot();
    assert_eq!(status.counters.failed_polls, 2);
    assert_eq!(status.consecutive_failures, 2);

    let batch = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&batch), kept_ids(&body));
    let seen = fake.polls();
    for pair in seen.windows(2) {
        assert!(
            gap(&pair[0], &pair[1]) >= Duration::from_millis(10),
            "backoff"
        );
    }

    let first_page = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&first_page), kept_ids(&paged));
    let status = poller.status().snapshot();
    let error = status.last_error.unwrap();
    assert!(
        error.contains("page 2") && error.contains("page cap"),
        "{error}"
    );
    assert_eq!(status.consecutive_failures, 0, "the poll itself succeeded");
}

/// A redirect is followed on the API's own host; one to another host is a failed poll, and
/// that host never hears from us (nor is its answer stored).
#[tokio::test]
async fn redirects_are_followed_on_the_same_host_only() {
    let elsewhere = FakeGitHub::start(vec![]).await;
    elsewhere.set_fallback(Reply::recorded(OLDER, 1, &elsewhere.url()).without_header("Link"));
    let fake = FakeGitHub::start(vec![]).await;
    fake.push(Reply::new(301).header(
        "Location",
        format!("{}/events?per_page=100&moved=1", fake.url()),
    ));
    fake.push(Reply::recorded(RECENT, 1, &fake.url()).without_header("Link"));
    let other_host = elsewhere.url().replace("127.0.0.1", "localhost");
    fake.push(Reply::new(302).header("Location", format!("{other_host}/events")));
    let mut config = config(&fake.url(), 1);
    config.token = Some("ghp_stay_home".into());
    let poller = GitHubPoller::new(config).unwrap();

    let moved = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(ids(&moved), kept_ids(&recorded_events(RECENT, 1)));
    let seen = fake.seen();
    assert_eq!(seen[1].uri, "/events?per_page=100&moved=1", "{seen:#?}");

    let err = poller.next_batch().await.unwrap_err().to_string();
    assert!(err.contains("302") && err.contains("another host"), "{err}");
    assert!(elsewhere.seen().is_empty(), "{:#?}", elsewhere.seen());
    assert_eq!(poller.status().snapshot().counters.failed_polls, 1);
}

/// Events of the kept types whose fields no store may hold (a 70,000-character repository
/// name, an id of 0, a time in 2200) are counted as invalid, never handed to the store.
#[tokio::test]
async fn invalid_events_are_counted_and_never_handed_on() {
    let fake = FakeGitHub::start(vec![]).await;
    let mut events = recorded_events(RECENT, 1);
    let kept: Vec<usize> = (0..events.len())
        .filter(|&i| !kept_ids(&events[i..=i]).is_empty())
        .collect();
    assert!(kept.len() >= 4, "{} kept events", kept.len());
    events[kept[0]]["repo"]["name"] = Value::from(format!("a/{}", "b".repeat(70_000)));
    events[kept[1]]["id"] = Value::from("0");
    events[kept[2]]["created_at"] = Value::from("2200-01-01T00:00:00Z");
    fake.push(Reply::events(&events, "W/\"odd\""));
    let poller = GitHubPoller::new(config(&fake.url(), 1)).unwrap();

    let batch = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(batch.stats.invalid, 3);
    let valid: Vec<Value> = kept[3..].iter().map(|&i| events[i].clone()).collect();
    assert_eq!(ids(&batch), kept_ids(&valid));
    assert!(batch.events.iter().all(|e| e.validate().is_ok()));
    let counters = poller.status().snapshot().counters;
    assert_eq!(counters.invalid_events, 3);
    assert_eq!(counters.kept_events, valid.len() as u64);
}

#[tokio::test]
async fn a_state_file_that_outlived_its_store_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("client-state.json");
    let fake = FakeGitHub::start(vec![]).await;
    let recent = Reply::recorded(RECENT, 1, &fake.url()).without_header("Link");
    fake.push(recent.clone());
    let mut config = config(&fake.url(), 1);
    config.state_file = Some(state_file.clone());
    let first = github_stats_core::MemoryStore::new();
    {
        let poller = GitHubPoller::open(config.clone(), &first).await.unwrap();
        let batch = poller.next_batch().await.unwrap().unwrap();
        crate::store_by_hand(&first, &poller, batch).await;
    }
    let kept = first.total_events().await.unwrap();
    assert!(kept > 0);

    // The same store: the state file is kept, and its events are not handed on again.
    fake.push(Reply::not_modified());
    let poller = GitHubPoller::open(config.clone(), &first).await.unwrap();
    tokio::time::timeout(Duration::from_millis(300), poller.next_batch())
        .await
        .expect_err("a 304 is no batch");
    assert!(state_file.exists());
    assert_eq!(
        fake.polls().last().unwrap().if_none_match.as_deref(),
        recent.get_header("ETag")
    );
    drop(poller);

    // An empty store (a wiped DATA_DIR) with that state file: set aside, the window is read
    // again without the old ETag, and every event of it reaches the new store.
    fake.push(recent.clone());
    let second = github_stats_core::MemoryStore::new();
    let poller = GitHubPoller::open(config, &second).await.unwrap();
    assert!(dir.path().join("client-state.json.orphaned").exists());
    let batch = poller.next_batch().await.unwrap().unwrap();
    assert_eq!(fake.polls().last().unwrap().if_none_match, None);
    crate::store_by_hand(&second, &poller, batch).await;
    assert_eq!(second.total_events().await.unwrap(), kept);
}

#[tokio::test]
async fn an_oversized_etag_is_never_sent_back_nor_kept() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("client-state.json");
    let huge = format!("W/\"{}\"", "x".repeat(70_000));
    let fake = FakeGitHub::start(vec![
        Reply::recorded(RECENT, 1, &fake_url_placeholder())
            .without_header("Link")
            .header("ETag", &huge),
    ])
    .await;
    fake.set_fallback(Reply::not_modified());
    let mut config = config(&fake.url(), 1);
    config.state_file = Some(state_file.clone());
    let store = MemoryStore::new();
    {
        let poller = GitHubPoller::new(config.clone()).unwrap();
        let batch = poller.next_batch().await.unwrap().unwrap();
        assert!(!batch.events.is_empty());
        crate::store_by_hand(&store, &poller, batch).await;
        // The next poll goes out unconditional: a 70 kB If-None-Match would be refused for
        // good.
        let _ = tokio::time::timeout(Duration::from_millis(200), poller.next_batch()).await;
        let polls = fake.polls();
        assert!(polls.len() >= 2, "{polls:?}");
        assert!(polls.iter().all(|p| p.if_none_match.is_none()));
    }
    let saved: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert!(saved["etag"].is_null(), "not kept in the state file");

    // A state file from before the cap, holding such an ETag: dropped at start.
    let mut state = saved.clone();
    state["etag"] = Value::String(huge.clone());
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let before = fake.polls().len();
    let poller = GitHubPoller::new(config).unwrap();
    let _ = tokio::time::timeout(Duration::from_millis(200), poller.next_batch()).await;
    let polls = fake.polls();
    assert!(polls.len() > before);
    assert!(polls[before..].iter().all(|p| p.if_none_match.is_none()));
}

#[tokio::test]
async fn a_431_to_a_conditional_request_drops_the_etag_and_recovers() {
    let fake = FakeGitHub::start(vec![]).await;
    let first = Reply::recorded(RECENT, 1, &fake.url()).without_header("Link");
    fake.push(first);
    fake.push(Reply::new(431));
    fake.push(
        Reply::recorded(RECENT, 1, &fake.url())
            .without_header("Link")
            .header("ETag", "W/\"fresh\""),
    );
    fake.set_fallback(Reply::not_modified());
    let poller = GitHubPoller::new(config(&fake.url(), 1)).unwrap();
    poller.next_batch().await.unwrap().unwrap();
    let err = poller.next_batch().await.unwrap_err().to_string();
    assert!(err.contains("431"), "{err}");
    poller.next_batch().await.unwrap().unwrap();
    let polls = fake.polls();
    assert!(
        polls[1].if_none_match.is_some(),
        "the second poll was conditional"
    );
    assert_eq!(polls[2].if_none_match, None, "the ETag was dropped");
}

#[tokio::test]
async fn the_poll_interval_shown_is_the_wait_and_a_redirect_loop_is_named() {
    let fake = FakeGitHub::start(vec![
        Reply::recorded(RECENT, 1, &fake_url_placeholder())
            .without_header("Link")
            .header("X-Poll-Interval", u64::MAX / 2),
    ])
    .await;
    for _ in 0..10 {
        fake.push(Reply::new(302).header("Location", "/events?per_page=100"));
    }
    let mut config = config(&fake.url(), 1);
    config.time_unit = Duration::from_micros(1);
    let poller = GitHubPoller::new(config).unwrap();
    poller.next_batch().await.unwrap().unwrap();
    assert_eq!(
        poller.status().snapshot().poll_interval_seconds,
        github_stats_core::source::github::MAX_HEADER_WAIT_SECS as u64,
        "the capped wait, not the header's value"
    );
    let err = poller.next_batch().await.unwrap_err().to_string();
    assert!(err.contains("redirect loop"), "{err}");
    assert!(!err.contains("another host"), "{err}");
}

/// For answers whose links are dropped: any base will do.
fn fake_url_placeholder() -> String {
    "http://127.0.0.1:9".to_owned()
}

/// A page starting with a UTF-8 byte order mark is read whole, as most JSON readers read it:
/// on page 1 and on a later page alike.
#[tokio::test]
async fn a_page_starting_with_a_byte_order_mark_is_read_whole() {
    let fake = FakeGitHub::start(vec![]).await;
    let first = recorded_events(RECENT, 1);
    let second = recorded_events(OLDER, 1);
    let with_bom = |events: &[Value]| {
        let mut body = "\u{feff}".as_bytes().to_vec();
        body.extend_from_slice(&serde_json::to_vec(events).unwrap());
        body
    };
    let next = format!("<{}/events?page=2>; rel=\"next\"", fake.url());
    fake.push(
        Reply::events(&first, "W/\"bom\"")
            .header("Link", next)
            .body(with_bom(&first)),
    );
    fake.push(Reply::events(&second, "W/\"bom2\"").body(with_bom(&second)));
    let poller = GitHubPoller::new(config(&fake.url(), 1)).unwrap();
    let batch = poller.next_batch().await.unwrap().unwrap();
    let mut want = kept_ids(&first);
    want.extend(kept_ids(&second));
    assert!(!want.is_empty());
    assert_eq!(ids(&batch), want);
    let status = poller.status().snapshot();
    assert_eq!(status.counters.failed_polls, 0);
    assert_eq!(status.counters.pages, 2);
    assert_eq!(
        status.counters.events_seen,
        (first.len() + second.len()) as u64
    );
    assert!(status.last_error.is_none(), "{:?}", status.last_error);
}
