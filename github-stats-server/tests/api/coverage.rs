//! `/coverage` and the coverage fields of the window answers, over archive-hour records put in
//! the store directly (the archive follower end to end is in `gharchive`).

use github_stats_core::{ArchiveHour, ArchiveStatus};
use poem::http::StatusCode;

use crate::helpers::{assert_error, at, client_for, get, json_time, raw_events, recorded_store};

/// The recorded GH Archive hour is 2015-01-01 12:00-13:00.
const HOUR: &str = "2015-01-01T12:00:00Z";

async fn store_with_records() -> github_stats_core::SharedStore {
    let store = recorded_store().await;
    let recorded = at("2015-01-02T00:00:00Z");
    let hour = |h: i64| at(HOUR) + chrono::Duration::hours(h);
    for record in [
        ArchiveHour::new(hour(-2), ArchiveStatus::Imported, 50, 10, recorded),
        ArchiveHour::new(hour(-1), ArchiveStatus::Missing, 0, 0, recorded),
        ArchiveHour::new(hour(0), ArchiveStatus::Imported, 1722, 430, recorded),
        ArchiveHour::new(hour(2), ArchiveStatus::Damaged, 9, 1, recorded),
    ] {
        store.record_archive_hour(&record).await.unwrap();
    }
    store
}

#[tokio::test]
async fn coverage_lists_every_hour_with_its_state() {
    let client = client_for(store_with_records().await);
    let answer = get(
        &client,
        "/coverage?since=2015-01-01T10:30:00Z&until=2015-01-01T15:00:00Z",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = &answer.body;
    let hours = body["hours"].as_array().unwrap();
    let listed: Vec<(String, &str)> = hours
        .iter()
        .map(|h| {
            (
                h["hour"].as_str().unwrap().to_owned(),
                h["archive"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("2015-01-01T10:00:00Z".to_owned(), "imported"),
            ("2015-01-01T11:00:00Z".to_owned(), "missing"),
            ("2015-01-01T12:00:00Z".to_owned(), "imported"),
            ("2015-01-01T13:00:00Z".to_owned(), "pending"),
            ("2015-01-01T14:00:00Z".to_owned(), "damaged"),
        ]
    );
    let noon = &hours[2];
    assert_eq!(noon["archive_events"], 1722);
    assert_eq!(noon["polled_before_archive"], 430);
    assert_eq!(noon["poller_coverage"].as_f64(), Some(430.0 / 1722.0));
    // The store holds the recorded hour: every kept event of it.
    let in_hour = raw_events()
        .iter()
        .filter(|e| at(HOUR) <= e.created_at && e.created_at < at("2015-01-01T13:00:00Z"))
        .count();
    assert_eq!(noon["stored_events"], in_hour as u64);
    assert!(hours[3]["archive_events"].is_null());
    assert!(hours[3]["poller_coverage"].is_null());
    assert!(
        hours[4]["poller_coverage"].is_null(),
        "damaged hours have no coverage"
    );
    assert_eq!(
        body["missing_hours"],
        serde_json::json!(["2015-01-01T11:00:00Z"])
    );
    // The latest unbroken run of imported hours is the noon hour alone.
    assert_eq!(json_time(&body["complete_from"]), at(HOUR));
    assert_eq!(
        json_time(&body["complete_until"]),
        at("2015-01-01T13:00:00Z")
    );
}

#[tokio::test]
async fn coverage_refuses_spans_out_of_order_or_too_long() {
    let client = client_for(store_with_records().await);
    for (uri, names) in [
        (
            "/coverage?since=2015-01-02T00:00:00Z&until=2015-01-01T00:00:00Z",
            "since must be before until",
        ),
        (
            "/coverage?since=2014-11-01T00:00:00Z&until=2015-01-01T00:00:00Z",
            "at most 31 days",
        ),
        ("/coverage?since=yesterday", "since must be"),
    ] {
        let message = assert_error(&get(&client, uri).await, StatusCode::BAD_REQUEST, uri);
        assert!(message.contains(names), "{uri}: {message}");
    }
}

#[tokio::test]
async fn window_answers_say_whether_they_are_complete() {
    let client = client_for(store_with_records().await);
    // Inside the imported noon hour: complete.
    for path in ["/metrics/events", "/metrics/visualization"] {
        let inside = get(
            &client,
            &format!("{path}?offset=30&until=2015-01-01T12:45:00Z"),
        )
        .await;
        assert_eq!(inside.body["complete"], true, "{path}: {}", inside.body);
        assert_eq!(inside.body["archived_share"], 1.0, "{path}");
        // 12:30-13:30: half in the imported hour, half in the pending one.
        let across = get(
            &client,
            &format!("{path}?offset=60&until=2015-01-01T13:30:00Z"),
        )
        .await;
        assert_eq!(across.body["complete"], false, "{path}");
        assert_eq!(across.body["archived_share"], 0.5, "{path}");
        // 11:00-12:00 is missing: nothing archived.
        let missing = get(
            &client,
            &format!("{path}?offset=60&until=2015-01-01T12:00:00Z"),
        )
        .await;
        assert_eq!(missing.body["complete"], false, "{path}");
        assert_eq!(missing.body["archived_share"], 0.0, "{path}");
    }
}

#[tokio::test]
async fn the_pr_average_over_a_window_counts_its_openings_and_says_what_it_rests_on() {
    let client = client_for(store_with_records().await);
    // The repository with the most openings in the recorded hour, counted from the JSON.
    let mut openings: std::collections::BTreeMap<&str, Vec<chrono::DateTime<chrono::Utc>>> =
        Default::default();
    let raw = raw_events();
    for e in &raw {
        if e.event_type == "PullRequestEvent" && e.action == "opened" {
            openings.entry(&e.repo).or_default().push(e.created_at);
        }
    }
    let (repo, times) = openings
        .iter()
        .max_by_key(|(name, times)| (times.len(), std::cmp::Reverse(*name)))
        .unwrap();
    let (since, until) = (at("2015-01-01T12:20:00Z"), at("2015-01-01T12:50:00Z"));
    let mut inside: Vec<_> = times
        .iter()
        .filter(|t| since <= **t && **t < until)
        .copied()
        .collect();
    inside.sort();
    let answer = get(
        &client,
        &format!(
            "/metrics/pr-average/{repo}?since=2015-01-01T12:20:00Z&until=2015-01-01T12:50:00Z"
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let body = &answer.body;
    assert_eq!(body["total_pull_requests"], inside.len() as u64);
    if inside.len() >= 2 {
        let expected =
            (*inside.last().unwrap() - inside[0]).num_seconds() as f64 / (inside.len() - 1) as f64;
        assert!((body["average_time_seconds"].as_f64().unwrap() - expected).abs() < 1e-9);
    } else {
        assert!(body["average_time_seconds"].is_null());
    }
    assert_eq!(
        body["complete"], true,
        "the window lies in the imported hour"
    );
    assert_eq!(body["archived_share"], 1.0);
    assert_eq!(json_time(&body["since"]), since);
    assert_eq!(json_time(&body["complete_from"]), at(HOUR));
    // Without a window: all time, as before, with the run beside it.
    let all = get(&client, &format!("/metrics/pr-average/{repo}")).await;
    assert_eq!(all.body["total_pull_requests"], times.len() as u64);
    assert!(all.body["complete"].is_null());
    assert!(all.body["since"].is_null());
    assert_eq!(
        json_time(&all.body["complete_until"]),
        at("2015-01-01T13:00:00Z")
    );
    // Only `since`: until now; a window reaching into pending hours is not complete.
    let open_ended = get(
        &client,
        &format!("/metrics/pr-average/{repo}?since=2015-01-01T12:00:00Z"),
    )
    .await;
    assert_eq!(open_ended.body["total_pull_requests"], times.len() as u64);
    assert_eq!(open_ended.body["complete"], false);
    let backwards = get(
        &client,
        &format!(
            "/metrics/pr-average/{repo}?since=2015-01-01T13:00:00Z&until=2015-01-01T12:00:00Z"
        ),
    )
    .await;
    assert_error(&backwards, StatusCode::BAD_REQUEST, "since after until");
}
