//! Inputs for the benches, built at bench time from the recorded GitHub events in
//! `testdata/` (nothing generated is committed).
//!
//! Events are repeated with fresh ids (and, for store inputs, shifted times), so that the
//! volume grows while the shapes stay GitHub's own.

use github_stats_core::Event;
use github_stats_core::conformance::fixtures;
use github_stats_core::parse::{self, ParseStats};

/// The two recorded GH Archive hours, as JSON lines (about 40 MB uncompressed).
pub fn recorded_gharchive_lines() -> Vec<u8> {
    let mut data = fixtures::read("gharchive/2015-01-01-12.json.gz");
    if data.last() != Some(&b'\n') {
        data.push(b'\n');
    }
    data.extend(fixtures::read("gharchive/2015-01-01-0.json.gz"));
    if data.last() != Some(&b'\n') {
        data.push(b'\n');
    }
    data
}

/// GH Archive-style JSON lines of at least `target_bytes`: the recorded hours repeated, each
/// repetition with fresh ids (`"id":"<n>"` at the start of each line rewritten).
pub fn gharchive_lines(target_bytes: usize) -> Vec<u8> {
    let source = recorded_gharchive_lines();
    let mut out = Vec::with_capacity(target_bytes + source.len());
    let mut round: u64 = 0;
    while out.len() < target_bytes {
        for line in source.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            rewrite_id(line, round, &mut out);
            out.push(b'\n');
        }
        round += 1;
    }
    out
}

/// Copies `line` to `out` with its leading `{"id":"N"` replaced by `N + round * 10^11`.
fn rewrite_id(line: &[u8], round: u64, out: &mut Vec<u8>) {
    const PREFIX: &[u8] = b"{\"id\":\"";
    if round > 0
        && line.starts_with(PREFIX)
        && let Some(len) = line[PREFIX.len()..].iter().position(|&b| b == b'"')
        && let Ok(id) = std::str::from_utf8(&line[PREFIX.len()..PREFIX.len() + len])
            .unwrap_or("")
            .parse::<u64>()
    {
        out.extend_from_slice(PREFIX);
        out.extend_from_slice((id + round * 100_000_000_000).to_string().as_bytes());
        out.extend_from_slice(&line[PREFIX.len() + len..]);
        return;
    }
    out.extend_from_slice(line);
}

/// The kept events of the recorded hours.
pub fn recorded_kept_events() -> Vec<Event> {
    let mut stats = ParseStats::default();
    let mut events = Vec::new();
    parse::parse_json_lines(&recorded_gharchive_lines(), &mut stats, &mut events);
    events
}

/// `n` kept events: the recorded ones repeated, each repetition with fresh ids and times
/// shifted by two hours, so that windows and repositories look like a long real history.
pub fn kept_events(n: usize) -> Vec<Event> {
    kept_events_with(n, false)
}

/// Like [`kept_events`], and with `fresh_repos` each repetition also renames every repository
/// (`owner/name-<round>`): the worst case for the per-repository indexes, about 1.4 kept events
/// per repository, as in the recorded two hours.
pub fn kept_events_with(n: usize, fresh_repos: bool) -> Vec<Event> {
    let base = recorded_kept_events();
    let mut out = Vec::with_capacity(n);
    let mut round: i64 = 0;
    while out.len() < n {
        for e in &base {
            if out.len() == n {
                break;
            }
            let mut e = e.clone();
            e.id += round as u64 * 100_000_000_000;
            e.created_at += chrono::Duration::hours(2 * round);
            if fresh_repos && round > 0 {
                e.repo_name = format!("{}-{round}", e.repo_name);
            }
            out.push(e);
        }
        round += 1;
    }
    out
}
