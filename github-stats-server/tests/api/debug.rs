//! `/debug/…` against the recorded events.

use std::collections::BTreeMap;

use poem::http::StatusCode;

use crate::helpers::{KEPT, client_for, get, raw_events, recorded_store};

fn per_repo() -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for e in raw_events() {
        *out.entry(e.repo)
            .or_default()
            .entry(e.event_type)
            .or_default() += 1;
    }
    out
}

#[tokio::test]
async fn total_events_counts_distinct_kept_events() {
    let client = client_for(recorded_store().await);
    let answer = get(&client, "/debug/total-events").await;
    assert_eq!(answer.status, StatusCode::OK);
    let expected = raw_events().len() as u64;
    assert!(expected > 1000);
    assert_eq!(answer.body, serde_json::json!({ "total_events": expected }));
}

#[tokio::test]
async fn repo_events_by_type() {
    let client = client_for(recorded_store().await);
    let repos = per_repo();
    let mut busiest: Vec<_> = repos.iter().collect();
    busiest.sort_by_key(|(name, c)| (std::cmp::Reverse(c.values().sum::<u64>()), *name));
    for (name, counts) in busiest.iter().take(10) {
        let answer = get(&client, &format!("/debug/repo-events/{name}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{name}: {}", answer.body);
        let by_type: serde_json::Value = KEPT
            .iter()
            .map(|t| (t.to_string(), counts.get(*t).copied().unwrap_or(0).into()))
            .collect::<serde_json::Map<_, _>>()
            .into();
        assert_eq!(
            answer.body,
            serde_json::json!({
                "repository": name,
                "event_count": counts.values().sum::<u64>(),
                "by_type": by_type,
            })
        );
    }
    let unknown = get(&client, "/debug/repo-events/nobody-here/nothing").await;
    assert_eq!(unknown.body["event_count"], 0);
}

#[tokio::test]
async fn repos_by_event_count_most_first() {
    let client = client_for(recorded_store().await);
    let mut ranking: Vec<(u64, String)> = per_repo()
        .into_iter()
        .map(|(name, c)| (c.values().sum(), name))
        .collect();
    ranking.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let expected = |n: usize| -> serde_json::Value {
        ranking[..n]
            .iter()
            .map(|(count, name)| serde_json::json!({ "repository": name, "event_count": count }))
            .collect()
    };
    let answer = get(&client, "/debug/repos-by-event-count?limit=7").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, expected(7));
    let default = get(&client, "/debug/repos-by-event-count").await;
    assert_eq!(default.body, expected(10), "the default limit is 10");
    let max = get(&client, "/debug/repos-by-event-count?limit=1000").await;
    assert_eq!(max.body, expected(1000.min(ranking.len())));
}
