//! Helpers: an independent count of what a set of files holds, made with `serde_json::Value`
//! (never with the parser under test), and ways to run an import.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use github_stats_backfill::{Config, StoreConfig, Summary};
use github_stats_core::EventType;
use tokio_util::sync::CancellationToken;

/// A recorded file of `testdata/`.
pub fn data(relative: &str) -> PathBuf {
    github_stats_core::conformance::fixtures::path(relative)
}

/// The bytes of a file, gunzipped when it is gzip (by its magic).
pub fn plain_bytes(path: &Path) -> Vec<u8> {
    let raw = std::fs::read(path).unwrap();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        raw
    }
}

/// What the files hold, counted from JSON values.
#[derive(Debug, Default, Clone)]
pub struct Expected {
    pub records: u64,
    pub malformed: u64,
    pub other_types: u64,
    pub unsupported: u64,
    /// Kept records by type (repeats included).
    pub kept: [u64; 3],
    /// Distinct kept event ids, with their type.
    pub distinct: HashMap<u64, EventType>,
    /// Per repository, the distinct opened pull requests: id -> created_at (seconds).
    pub opened_prs: BTreeMap<String, HashMap<u64, i64>>,
    /// Per repository, distinct kept events by type.
    pub by_repo: BTreeMap<String, HashMap<u64, EventType>>,
}

impl Expected {
    pub fn kept_total(&self) -> u64 {
        self.kept.iter().sum()
    }

    pub fn distinct_by_type(&self) -> [u64; 3] {
        let mut out = [0; 3];
        for t in self.distinct.values() {
            out[t.index()] += 1;
        }
        out
    }

    /// Adds the records of a JSON array or JSON-lines document.
    pub fn add_document(&mut self, bytes: &[u8]) {
        if bytes.trim_ascii_start().first() == Some(&b'[') {
            let values: Vec<serde_json::Value> = serde_json::from_slice(bytes).unwrap();
            for v in values {
                self.add_record(Some(v));
            }
        } else {
            for line in bytes.split(|&b| b == b'\n') {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                self.add_record(serde_json::from_slice(line).ok());
            }
        }
    }

    pub fn add_file(&mut self, path: &Path) {
        self.add_document(&plain_bytes(path));
    }

    fn add_record(&mut self, value: Option<serde_json::Value>) {
        self.records += 1;
        let Some(v) = value.filter(|v| v.is_object()) else {
            self.malformed += 1;
            return;
        };
        let Some(t) = v["type"].as_str().and_then(EventType::from_name) else {
            self.other_types += 1;
            return;
        };
        let id = v["id"].as_str().and_then(|s| s.parse::<u64>().ok());
        let repo = v["repo"]["name"].as_str();
        let repo_id = v["repo"]["id"].as_u64();
        let at = v["created_at"]
            .as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let (Some(id), Some(repo), Some(_), Some(at)) = (id, repo, repo_id, at) else {
            self.unsupported += 1;
            return;
        };
        self.kept[t.index()] += 1;
        self.distinct.insert(id, t);
        self.by_repo
            .entry(repo.to_string())
            .or_default()
            .insert(id, t);
        if t == EventType::PullRequestEvent && v["payload"]["action"] == "opened" {
            self.opened_prs
                .entry(repo.to_string())
                .or_default()
                .insert(id, at.timestamp());
        }
    }
}

/// The configuration of an import of `inputs` into the memory store in `data_dir`, with small
/// chunks and batches so that even small inputs go through many of them.
pub fn memory_config(inputs: Vec<PathBuf>, data_dir: &Path) -> Config {
    let mut config = Config::new(inputs, StoreConfig::memory(data_dir));
    config.chunk_bytes = 64 * 1024;
    config.batch_size = 1000;
    config.jobs = 3;
    config
}

pub async fn run(config: Config) -> Summary {
    github_stats_backfill::run(config, CancellationToken::new())
        .await
        .expect("the import runs")
}

/// Asserts that the parse counts of `summary` are those of `expected`.
pub fn assert_counts(summary: &Summary, expected: &Expected) {
    let s = &summary.stats;
    assert_eq!(s.records, expected.records, "records");
    assert_eq!(s.malformed, expected.malformed, "bad lines");
    assert_eq!(s.other_types, expected.other_types, "other types");
    assert_eq!(s.unsupported, expected.unsupported, "unsupported");
    assert_eq!(s.kept, expected.kept, "kept by type");
}
