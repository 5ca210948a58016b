//! The parser against every recorded file, checked against an independent count made with
//! `serde_json::Value`.

use github_stats_core::conformance::fixtures;
use github_stats_core::parse::{self, ParseStats};
use github_stats_core::{Event, EventType};

/// Brute-force counts from JSON values: (kept per type, pre-2015 kept-type events without id).
fn expected(records: &[serde_json::Value]) -> ([u64; 3], u64, u64) {
    let mut kept = [0u64; 3];
    let (mut unsupported, mut other) = (0, 0);
    for v in records {
        match v["type"].as_str().and_then(EventType::from_name) {
            Some(t) if v["id"].is_string() && v["repo"]["name"].is_string() => kept[t.index()] += 1,
            Some(_) => unsupported += 1,
            None => other += 1,
        }
    }
    (kept, unsupported, other)
}

fn parse_file(relative: &str) -> (ParseStats, Vec<Event>) {
    let bytes = fixtures::read(relative);
    let mut stats = ParseStats::default();
    let mut events = Vec::new();
    parse::parse_document(&bytes, &mut stats, &mut events);
    (stats, events)
}

#[test]
fn every_recorded_file_parses_to_the_independent_counts() {
    for file in [
        "gharchive/2015-01-01-12.json.gz",
        "gharchive/2015-01-01-0.json.gz",
        "samples/2021-07-21-few-hours.jsonl",
        "samples/2011-2021-sampled.jsonl",
        "api-responses/events-2026-01-25.json",
        "api-responses/events-2020-04-25/01.body.json",
        "api-responses/events-2017-12-29/01.body.json",
    ] {
        let records = fixtures::json_records(file);
        let (kept, unsupported, other) = expected(&records);
        let (stats, events) = parse_file(file);
        assert_eq!(stats.records, records.len() as u64, "{file}: records");
        assert_eq!(stats.kept, kept, "{file}: kept by type");
        assert_eq!(stats.unsupported, unsupported, "{file}: unsupported");
        assert_eq!(stats.other_types, other, "{file}: other types");
        assert_eq!(stats.malformed, 0, "{file}: malformed");
        assert_eq!(events.len() as u64, stats.kept_total());
    }
}

#[test]
fn the_2015_hour_matches_the_data_readme() {
    // The data README states 994 / 367 / 361 kept and 189 PRs opened for this hour.
    let (stats, events) = parse_file("gharchive/2015-01-01-12.json.gz");
    let records = fixtures::json_records("gharchive/2015-01-01-12.json.gz");
    assert_eq!(stats.records, records.len() as u64);
    let opened_expected = records
        .iter()
        .filter(|v| v["type"] == "PullRequestEvent" && v["payload"]["action"] == "opened")
        .count();
    let opened = events.iter().filter(|e| e.is_pull_request_opened()).count();
    assert_eq!(opened, opened_expected);
    assert_eq!(
        (stats.records, stats.kept, opened),
        (8273, [994, 367, 361], 189)
    );
}

#[test]
fn fields_are_taken_from_the_json() {
    let records = fixtures::json_records("samples/2021-07-21-few-hours.jsonl");
    let (_, events) = parse_file("samples/2021-07-21-few-hours.jsonl");
    for e in &events {
        let v = records
            .iter()
            .find(|v| v["id"].as_str() == Some(&e.id.to_string()))
            .expect("event in the file");
        assert_eq!(v["type"].as_str(), Some(e.event_type.as_str()));
        assert_eq!(v["repo"]["id"].as_u64(), Some(e.repo_id));
        assert_eq!(v["repo"]["name"].as_str(), Some(e.repo_name.as_str()));
        assert_eq!(v["payload"]["action"].as_str().unwrap_or(""), e.action);
        assert_eq!(
            v["created_at"].as_str().unwrap(),
            e.created_at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
        );
    }
}

#[test]
fn broken_lines_are_counted_and_the_rest_is_kept() {
    let mut bytes = fixtures::read("samples/2021-07-21-few-hours.jsonl");
    let (clean, _) = parse_file("samples/2021-07-21-few-hours.jsonl");
    // A truncated line in the middle and garbage at the end.
    let cut = bytes.iter().position(|&b| b == b'\n').unwrap();
    bytes.splice(
        cut..cut,
        b"\n{\"id\":\"9\",\"type\":\"WatchEv".iter().copied(),
    );
    bytes.extend_from_slice(b"\n\x00\x01 not json\n");
    let mut stats = ParseStats::default();
    let mut events = Vec::new();
    parse::parse_json_lines(&bytes, &mut stats, &mut events);
    assert_eq!(stats.malformed, 2);
    assert_eq!(stats.kept, clean.kept);
}

#[test]
fn the_fast_path_and_the_serde_path_agree_on_every_recorded_line() {
    // Re-serialising a record with serde_json changes its layout (key order is kept, but the
    // fast path only knows GitHub's exact bytes), so compare on the original lines: the parser
    // result for each line must equal a field-by-field read of the JSON value.
    for file in [
        "gharchive/2015-01-01-12.json.gz",
        "gharchive/2015-01-01-0.json.gz",
        "samples/2021-07-21-few-hours.jsonl",
        "samples/2011-2021-sampled.jsonl",
    ] {
        let bytes = fixtures::read(file);
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line).unwrap();
            let outcome = parse::parse_record(line);
            let kept_type = v["type"].as_str().and_then(EventType::from_name);
            match (kept_type, outcome) {
                (Some(t), parse::RecordOutcome::Kept(e)) => {
                    assert_eq!(e.event_type, t);
                    assert_eq!(e.id.to_string(), v["id"].as_str().unwrap());
                    assert_eq!(Some(e.repo_id), v["repo"]["id"].as_u64());
                    assert_eq!(Some(e.repo_name.as_str()), v["repo"]["name"].as_str());
                    assert_eq!(e.action, v["payload"]["action"].as_str().unwrap_or(""));
                    let t = chrono::DateTime::parse_from_rfc3339(v["created_at"].as_str().unwrap())
                        .unwrap();
                    assert_eq!(e.created_at, t);
                }
                (Some(_), parse::RecordOutcome::Unsupported) => assert!(v["id"].is_null()),
                (None, parse::RecordOutcome::OtherType) => {}
                (t, o) => panic!("{file}: type {t:?} gave {o:?}"),
            }
        }
    }
}
