//! `/metrics/events` and `/metrics/pr-average` against the recorded events, with expectations
//! computed from the JSON by the helpers.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use poem::http::StatusCode;

use crate::helpers::{
    KEPT, at, client_for, get, json_time, raw_events, recorded_store, window_counts,
};

#[tokio::test]
async fn events_by_type_match_the_recorded_data() {
    let client = client_for(recorded_store().await);
    let raw = raw_events();
    // The whole 2015 hour, a part of it, the 2021 sample, a year, and a window with nothing.
    let cases = [
        ("2015-01-01T13:00:00Z", 60),
        ("2015-01-01T12:30:00Z", 15),
        ("2015-01-01T12:00:01Z", 1),
        ("2021-07-21T09:00:00Z", 180),
        ("2021-07-21T07:17:00Z", 42),
        ("2015-06-01T00:00:00Z", 525_600),
        ("2020-01-01T00:00:00Z", 10),
    ];
    let mut nonzero_windows = 0;
    for (until, offset) in cases {
        let answer = get(
            &client,
            &format!("/metrics/events?offset={offset}&until={until}"),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{until} {offset}: {}",
            answer.body
        );
        let body = &answer.body;
        let until = at(until);
        let since = until - Duration::minutes(offset);
        assert_eq!(body["offset_minutes"], offset, "{body}");
        assert_eq!(json_time(&body["since"]), since, "{body}");
        assert_eq!(json_time(&body["until"]), until, "{body}");
        let expected = window_counts(&raw, since, until);
        let got: BTreeMap<String, u64> = KEPT
            .iter()
            .map(|t| (t.to_string(), body["event_counts"][*t].as_u64().unwrap()))
            .collect();
        assert_eq!(got, expected, "window [{since}, {until})");
        assert_eq!(
            body["event_counts"].as_object().unwrap().len(),
            3,
            "every type and nothing else: {body}"
        );
        let total: u64 = expected.values().sum();
        assert_eq!(body["total_events"], total, "{body}");
        if total > 0 {
            nonzero_windows += 1;
        }
    }
    assert!(nonzero_windows >= 5, "the cases must cover real events");
}

#[tokio::test]
async fn window_bounds_are_since_inclusive_until_exclusive() {
    let client = client_for(recorded_store().await);
    let raw = raw_events();
    // An event's own time as `until` excludes it; as `since` includes it.
    let event = raw
        .iter()
        .find(|e| e.event_type == "WatchEvent" && e.created_at.timestamp() % 60 == 0)
        .or_else(|| raw.iter().find(|e| e.event_type == "WatchEvent"))
        .unwrap();
    let t = event.created_at;
    let until = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let before = get(&client, &format!("/metrics/events?offset=1&until={until}")).await;
    let expected = window_counts(&raw, t - Duration::minutes(1), t);
    assert_eq!(
        before.body["event_counts"]["WatchEvent"],
        expected["WatchEvent"]
    );
    let after_until = (t + Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let after = get(
        &client,
        &format!("/metrics/events?offset=1&until={after_until}"),
    )
    .await;
    let expected = window_counts(&raw, t, t + Duration::minutes(1));
    assert!(expected["WatchEvent"] >= 1);
    assert_eq!(
        after.body["event_counts"]["WatchEvent"],
        expected["WatchEvent"]
    );
}

#[tokio::test]
async fn until_accepts_offsets_and_defaults_to_now() {
    let client = client_for(recorded_store().await);
    let zulu = get(
        &client,
        "/metrics/events?offset=60&until=2015-01-01T13:00:00Z",
    )
    .await;
    let plus_one = get(
        &client,
        "/metrics/events?offset=60&until=2015-01-01T14:00:00%2B01:00",
    )
    .await;
    assert_eq!(plus_one.status, StatusCode::OK, "{}", plus_one.body);
    assert_eq!(zulu.body, plus_one.body);

    let before = Utc::now() - Duration::seconds(1);
    let now = get(&client, "/metrics/events?offset=5").await;
    let after = Utc::now() + Duration::seconds(1);
    assert_eq!(now.status, StatusCode::OK);
    let until = json_time(&now.body["until"]);
    assert!(
        before <= until && until <= after,
        "until {until} is not now"
    );
    assert_eq!(json_time(&now.body["since"]), until - Duration::minutes(5));
    // The recorded events are years old.
    assert_eq!(now.body["total_events"], 0);
}

#[tokio::test]
async fn pr_average_matches_the_recorded_data() {
    let client = client_for(recorded_store().await);
    let raw = raw_events();
    let mut opened: BTreeMap<&str, Vec<chrono::DateTime<Utc>>> = BTreeMap::new();
    for e in &raw {
        if e.event_type == "PullRequestEvent" && e.action == "opened" {
            opened
                .entry(e.repo.as_str())
                .or_default()
                .push(e.created_at);
        }
    }
    let mut by_count: Vec<(&str, Vec<_>)> = opened.into_iter().collect();
    by_count.sort_by_key(|(name, times)| (std::cmp::Reverse(times.len()), *name));
    let several: Vec<_> = by_count
        .iter()
        .filter(|(_, t)| t.len() >= 2)
        .take(15)
        .collect();
    assert!(
        several.len() >= 3,
        "the data has repositories with several PRs"
    );
    let single = by_count.iter().find(|(_, t)| t.len() == 1).unwrap();
    for (repo, times) in several.iter().copied().chain([single]) {
        let answer = get(&client, &format!("/metrics/pr-average/{repo}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{repo}: {}", answer.body);
        let body = &answer.body;
        let mut times = times.clone();
        times.sort();
        let n = times.len();
        assert_eq!(body["repository"], *repo);
        assert_eq!(body["total_pull_requests"], n as u64, "{repo}");
        assert_eq!(json_time(&body["first_opened_at"]), times[0], "{repo}");
        assert_eq!(json_time(&body["last_opened_at"]), times[n - 1], "{repo}");
        if n >= 2 {
            let gaps: Vec<f64> = times
                .windows(2)
                .map(|w| (w[1] - w[0]).num_seconds() as f64)
                .collect();
            let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
            let got = body["average_time_seconds"].as_f64().unwrap();
            assert!((got - mean).abs() < 1e-6, "{repo}: {got} vs {mean}");
        } else {
            assert!(body["average_time_seconds"].is_null(), "{repo}: {body}");
        }
    }
}

#[tokio::test]
async fn pr_average_of_an_unknown_repository_is_zero_not_an_error() {
    let client = client_for(recorded_store().await);
    let answer = get(&client, "/metrics/pr-average/nobody-here/nothing.here").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        serde_json::json!({
            "repository": "nobody-here/nothing.here",
            "average_time_seconds": null,
            "total_pull_requests": 0,
            "first_opened_at": null,
            "last_opened_at": null,
            "since": null,
            "until": null,
            "complete": null,
            "archived_share": null,
            "complete_from": null,
            "complete_until": null,
        })
    );
}
