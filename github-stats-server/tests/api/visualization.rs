//! `GET /metrics/visualization`, `GET /metrics/visualization.svg` and the dashboard's files, in
//! process over the whole application (JSON errors included), with the memory store loaded from
//! recorded GitHub events. Expectations are computed here from the raw JSON records.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use github_stats_core::conformance::fixtures;
use github_stats_core::parse::parse_document;
use github_stats_core::{Event, MemoryStore, ParseStats};
use github_stats_server::api::{self, AppState};
use poem::Endpoint;
use poem::http::StatusCode;
use poem::test::TestClient;
use serde_json::Value;

/// The GH Archive hour 2015-01-01 12:00-13:00 UTC.
pub const HOUR_FILE: &str = "gharchive/2015-01-01-12.json.gz";
const SAMPLE_2021: &str = "samples/2021-07-21-few-hours.jsonl";
const TYPES: [&str; 3] = ["WatchEvent", "PullRequestEvent", "IssuesEvent"];

/// The events of recorded files, parsed by core.
pub fn parsed_events(files: &[&str]) -> Vec<Event> {
    let mut events = Vec::new();
    for file in files {
        let mut stats = ParseStats::default();
        parse_document(&fixtures::read(file), &mut stats, &mut events);
    }
    events
}

/// A kept event as read straight from the raw JSON: `(id, type, created_at, repo, action)`.
pub struct RawEvent {
    pub id: String,
    pub event_type: &'static str,
    pub at: i64,
    pub repo: String,
    pub action: String,
}

/// The kept events of recorded files, read from the JSON values without core's parser.
pub fn raw_events(files: &[&str]) -> Vec<RawEvent> {
    let mut out = Vec::new();
    for file in files {
        for record in fixtures::json_records(file) {
            let Some(event_type) = TYPES.iter().find(|t| record["type"] == **t) else {
                continue;
            };
            let at = DateTime::parse_from_rfc3339(record["created_at"].as_str().unwrap())
                .unwrap()
                .timestamp();
            out.push(RawEvent {
                id: record["id"].as_str().unwrap().to_owned(),
                event_type,
                at,
                repo: record["repo"]["name"].as_str().unwrap().to_owned(),
                action: record["payload"]["action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    out
}

/// Distinct events per `(type, bucket start)` with `since <= t < until`, buckets of `bucket`
/// seconds aligned on the epoch.
fn expected_buckets(
    raw: &[RawEvent],
    since: i64,
    until: i64,
    bucket: i64,
) -> BTreeMap<(&'static str, i64), u64> {
    let mut seen = HashSet::new();
    let mut counts = BTreeMap::new();
    for e in raw {
        if since <= e.at && e.at < until && seen.insert(e.id.clone()) {
            *counts
                .entry((e.event_type, e.at - e.at.rem_euclid(bucket)))
                .or_insert(0) += 1;
        }
    }
    counts
}

fn app_over(events: &[Event]) -> impl Endpoint + use<> {
    let store = MemoryStore::new();
    store.insert_blocking(events).unwrap();
    api::app(AppState::new(Arc::new(store)), Duration::from_secs(30))
}

async fn get_json(client: &TestClient<impl Endpoint>, uri: &str) -> (StatusCode, Value) {
    let response = client.get(uri).send().await;
    let status = response.0.status();
    let content_type = response.0.content_type().unwrap_or_default().to_owned();
    let body = response.0.into_body().into_string().await.unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{uri}: {content_type}: {body}"
    );
    (status, serde_json::from_str(&body).unwrap())
}

async fn get_text(client: &TestClient<impl Endpoint>, uri: &str) -> (StatusCode, String, String) {
    let response = client.get(uri).send().await;
    let status = response.0.status();
    let content_type = response.0.content_type().unwrap_or_default().to_owned();
    let body = response.0.into_body().into_string().await.unwrap();
    (status, content_type, body)
}

fn ts(text: &Value) -> i64 {
    DateTime::parse_from_rfc3339(text.as_str().unwrap())
        .unwrap()
        .timestamp()
}

fn at(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text).unwrap().timestamp()
}

#[tokio::test]
async fn timeline_buckets_match_the_recorded_events() {
    let files = [HOUR_FILE, SAMPLE_2021];
    let raw = raw_events(&files);
    let client = TestClient::new(app_over(&parsed_events(&files)));

    // (offset, until, bucket asked, bucket expected)
    let cases = [
        (60, "2015-01-01T13:00:00Z", Some(5), 5),
        (60, "2015-01-01T13:00:00Z", None, 1),
        (45, "2015-01-01T12:52:30Z", Some(7), 7),
        (240, "2015-01-01T14:00:00Z", None, 5),
        (300, "2021-07-21T09:30:00Z", Some(20), 20),
        (600, "2021-07-21T12:00:00Z", None, 10),
    ];
    for (offset, until, bucket, expected_bucket) in cases {
        let mut uri = format!("/metrics/visualization?offset={offset}&until={until}");
        if let Some(b) = bucket {
            uri.push_str(&format!("&bucket_minutes={b}"));
        }
        let (status, body) = get_json(&client, &uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert_eq!(body["offset_minutes"], offset, "{uri}");
        assert_eq!(body["bucket_minutes"], expected_bucket, "{uri}");
        let until = at(until);
        let since = until - offset * 60;
        assert_eq!(ts(&body["until"]), until);
        assert_eq!(ts(&body["since"]), since);
        let bucket = expected_bucket * 60;
        let expected = expected_buckets(&raw, since, until, bucket);

        let series = body["series"].as_array().unwrap();
        assert_eq!(series.len(), 3, "{uri}");
        let mut first_starts: Option<Vec<i64>> = None;
        for (s, event_type) in series.iter().zip(TYPES) {
            assert_eq!(s["event_type"], event_type, "{uri}: series order");
            let points = s["points"].as_array().unwrap();
            let starts: Vec<i64> = points.iter().map(|p| ts(&p["t"])).collect();
            // Aligned, consecutive, covering the window and no more.
            assert!(starts.iter().all(|t| t % bucket == 0), "{uri}: {starts:?}");
            assert!(starts.windows(2).all(|w| w[1] - w[0] == bucket), "{uri}");
            assert!(starts[0] <= since && since < starts[0] + bucket, "{uri}");
            let last = *starts.last().unwrap();
            assert!(last < until && until <= last + bucket, "{uri}");
            let mut total = 0;
            for (p, t) in points.iter().zip(&starts) {
                let want = expected.get(&(event_type, *t)).copied().unwrap_or(0);
                assert_eq!(p["count"], want, "{uri}: {event_type} at {t}");
                total += want;
            }
            assert_eq!(s["total"], total, "{uri}: {event_type} total");
            assert_eq!(body["event_counts"][event_type], total, "{uri}");
            match &first_starts {
                None => first_starts = Some(starts),
                Some(first) => assert_eq!(first, &starts, "{uri}: same buckets in every series"),
            }
        }
        // Every expected event landed in a bucket.
        let expected_total: u64 = expected.values().sum();
        assert_eq!(body["total_events"], expected_total, "{uri}");

        // The series add up to /metrics/events over the same window.
        let (status, counts) = get_json(
            &client,
            &format!(
                "/metrics/events?offset={offset}&until={}",
                body["until"].as_str().unwrap().replace('+', "%2B")
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(counts["event_counts"], body["event_counts"], "{uri}");
        assert_eq!(counts["total_events"], body["total_events"], "{uri}");
    }
}

#[tokio::test]
async fn the_recorded_hour_has_the_counts_its_readme_gives() {
    let client = TestClient::new(app_over(&parsed_events(&[HOUR_FILE])));
    let (status, body) = get_json(
        &client,
        "/metrics/visualization?offset=60&until=2015-01-01T13:00:00Z&bucket_minutes=60",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // testdata/README.md: 994 / 367 / 361 kept events in this hour.
    for (series, want) in body["series"]
        .as_array()
        .unwrap()
        .iter()
        .zip([994, 367, 361])
    {
        assert_eq!(series["points"].as_array().unwrap().len(), 1);
        assert_eq!(ts(&series["points"][0]["t"]), at("2015-01-01T12:00:00Z"));
        assert_eq!(series["points"][0]["count"], want);
    }
}

#[tokio::test]
async fn an_empty_window_has_zero_buckets() {
    let client = TestClient::new(app_over(&parsed_events(&[HOUR_FILE])));
    let (status, body) = get_json(
        &client,
        "/metrics/visualization?offset=30&until=2020-01-01T00:00:00Z&bucket_minutes=10",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for series in body["series"].as_array().unwrap() {
        let points = series["points"].as_array().unwrap();
        assert_eq!(points.len(), 3);
        assert_eq!(ts(&points[0]["t"]), at("2019-12-31T23:30:00Z"));
        assert!(points.iter().all(|p| p["count"] == 0));
        assert_eq!(series["total"], 0);
    }
    assert_eq!(body["total_events"], 0);
    let (status, content_type, svg) = get_text(
        &client,
        "/metrics/visualization.svg?offset=30&until=2020-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("image/svg+xml"));
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(
        doc.descendants()
            .any(|n| n.has_tag_name("text") && n.text() == Some("no events in this window"))
    );
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_parameter() {
    let client = TestClient::new(app_over(&[]));
    let cases = [
        ("", "offset"),
        ("offset=", "offset"),
        ("offset=abc", "offset"),
        ("offset=0", "offset"),
        ("offset=-5", "offset"),
        ("offset=1.5", "offset"),
        ("offset=525601", "offset"),
        ("offset=99999999999999999999", "offset"),
        ("offset=60&bucket_minutes=0", "bucket_minutes"),
        ("offset=60&bucket_minutes=-1", "bucket_minutes"),
        ("offset=60&bucket_minutes=x", "bucket_minutes"),
        ("offset=60&bucket_minutes=525601", "bucket_minutes"),
        // A year of one-minute buckets: far more than a timeline may hold.
        ("offset=525600&bucket_minutes=1", "bucket_minutes"),
        ("offset=60&until=yesterday", "until"),
        ("offset=60&until=2015-01-01", "until"),
    ];
    for path in ["/metrics/visualization", "/metrics/visualization.svg"] {
        for (query, parameter) in cases {
            let uri = format!("{path}?{query}");
            let (status, body) = get_json(&client, &uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            let message = body["error"].as_str().unwrap();
            assert!(message.contains(parameter), "{uri}: {message}");
        }
    }
    // The largest window with the smallest bucket the message suggests is accepted.
    let (status, body) = get_json(&client, "/metrics/visualization?offset=525600").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bucket_minutes"], 10_080);
    let (_, body) = get_json(
        &client,
        "/metrics/visualization?offset=525600&bucket_minutes=1",
    )
    .await;
    let message = body["error"].as_str().unwrap();
    let smallest: u32 = message.rsplit(' ').next().unwrap().parse().unwrap();
    let (status, body) = get_json(
        &client,
        &format!("/metrics/visualization?offset=525600&bucket_minutes={smallest}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// `points="x,y x,y …"` of a polyline.
fn polyline_points(node: roxmltree::Node) -> Vec<(f64, f64)> {
    node.attribute("points")
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn the_svg_chart_is_valid_and_draws_the_timeline() {
    let client = TestClient::new(app_over(&parsed_events(&[HOUR_FILE])));
    let query = "offset=90&until=2015-01-01T13:00:00Z&bucket_minutes=5";
    let (status, timeline) = get_json(&client, &format!("/metrics/visualization?{query}")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, content_type, svg) =
        get_text(&client, &format!("/metrics/visualization.svg?{query}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "image/svg+xml; charset=utf-8");

    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    let root = doc.root_element();
    assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
    assert!(root.attribute("viewBox").is_some());
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    // Title, legend with totals, time labels.
    assert!(texts.contains(&"GitHub events per 5 minutes"), "{texts:?}");
    assert!(texts.contains(&"2015-01-01 11:30:00 to 2015-01-01 13:00:00 UTC"));
    for series in timeline["series"].as_array().unwrap() {
        let legend = format!(
            "{} ({})",
            series["event_type"].as_str().unwrap(),
            series["total"]
        );
        assert!(texts.contains(&legend.as_str()), "{legend} in {texts:?}");
    }
    for label in ["11:30", "12:00", "12:30", "13:00", "Jan 01"] {
        assert!(texts.contains(&label), "{label} in {texts:?}");
    }
    assert!(
        doc.descendants()
            .any(|n| n.has_tag_name("title") && n.text() == Some("GitHub events per 5 minutes"))
    );

    // One line per type, in distinct colours, one point per bucket, heights following counts.
    let lines: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("line"))
        .collect();
    assert_eq!(lines.len(), 3);
    let colours: HashSet<&str> = lines
        .iter()
        .map(|n| n.attribute("stroke").unwrap())
        .collect();
    assert_eq!(colours.len(), 3);
    let mut all_points = Vec::new();
    for (line, series) in lines.iter().zip(timeline["series"].as_array().unwrap()) {
        assert_eq!(
            line.attribute("data-event-type"),
            series["event_type"].as_str()
        );
        assert_eq!(
            line.attribute("data-total").unwrap(),
            series["total"].to_string()
        );
        let polyline = line
            .children()
            .find(|n| n.has_tag_name("polyline"))
            .unwrap();
        let points = polyline_points(polyline);
        let counts: Vec<u64> = series["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["count"].as_u64().unwrap())
            .collect();
        assert_eq!(points.len(), counts.len());
        assert_eq!(points.len(), 18);
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "x ascending");
        // Circles with a tooltip at the same places.
        assert_eq!(
            line.children().filter(|n| n.has_tag_name("circle")).count(),
            counts.len()
        );
        for (p, c) in points.iter().zip(counts) {
            all_points.push((p.1, c));
        }
    }
    // A higher count is drawn higher (smaller y), equal counts at the same height.
    for &(y1, c1) in &all_points {
        for &(y2, c2) in &all_points {
            match c1.cmp(&c2) {
                std::cmp::Ordering::Less => assert!(y1 > y2, "{c1}@{y1} vs {c2}@{y2}"),
                std::cmp::Ordering::Equal => assert!((y1 - y2).abs() < 0.01),
                std::cmp::Ordering::Greater => assert!(y1 < y2),
            }
        }
    }
    assert!(!svg.contains("<script"));
}

#[tokio::test]
async fn the_dashboard_and_its_files_are_served_without_anything_external() {
    let client = TestClient::new(app_over(&[]));
    let (status, content_type, html) = get_text(&client, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(html.contains(r#"src="/assets/dashboard.js""#));
    assert!(html.contains(r#"href="/assets/dashboard.css""#));
    let (status, content_type, js) = get_text(&client, "/assets/dashboard.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        content_type.starts_with("text/javascript"),
        "{content_type}"
    );
    let (status, content_type, css) = get_text(&client, "/assets/dashboard.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/css"), "{content_type}");
    for (name, text) in [("html", &html), ("js", &js), ("css", &css)] {
        assert!(!text.contains("http://"), "{name} loads from the network");
        assert!(!text.contains("https://"), "{name} loads from the network");
        assert!(!text.contains("//cdn"), "{name} loads from the network");
    }
    // Every address the page uses is its own.
    for attribute in ["src=\"", "href=\""] {
        for part in html.split(attribute).skip(1) {
            assert!(
                part.starts_with('/') || part.starts_with("data:"),
                "{attribute}{}",
                &part[..part.len().min(40)]
            );
        }
    }
    // Unknown assets are JSON 404s like every unknown path.
    let (status, body) = get_json(&client, "/assets/nope.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_spec_documents_the_timeline_and_the_chart() {
    let spec: Value = serde_json::from_str(&api::spec_json()).unwrap();
    let paths = &spec["paths"];
    for path in ["/metrics/visualization", "/metrics/visualization.svg", "/"] {
        assert!(paths[path]["get"].is_object(), "{path} in the spec");
    }
    assert!(paths["/assets/dashboard.js"].is_null());
    let params = paths["/metrics/visualization"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["offset", "bucket_minutes", "until"]);
    assert!(
        spec["paths"]["/metrics/visualization.svg"]["get"]["responses"]["200"]["content"]
            ["image/svg+xml; charset=utf-8"]
            .is_object()
    );
    let schema = &spec["components"]["schemas"]["TimelineBody"];
    for field in [
        "offset_minutes",
        "bucket_minutes",
        "since",
        "until",
        "series",
        "event_counts",
        "total_events",
    ] {
        assert!(
            schema["properties"][field]["description"].is_string()
                || schema["properties"][field]["$ref"].is_string()
                || schema["properties"][field]["allOf"].is_array(),
            "{field} documented: {}",
            schema["properties"][field]
        );
    }
}

/// Helper for the browser test: the repository with the most opened pull requests in `raw`.
pub fn busiest_pr_repository(raw: &[RawEvent]) -> (String, u64) {
    let mut opened: BTreeMap<&str, HashSet<&str>> = BTreeMap::new();
    for e in raw {
        if e.event_type == "PullRequestEvent" && e.action == "opened" {
            opened.entry(&e.repo).or_default().insert(&e.id);
        }
    }
    opened
        .into_iter()
        .map(|(repo, ids)| (repo.to_owned(), ids.len() as u64))
        .max_by_key(|(repo, n)| (*n, std::cmp::Reverse(repo.clone())))
        .unwrap()
}
