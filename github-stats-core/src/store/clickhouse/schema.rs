//! The ClickHouse schema and every SQL statement of the store, in one place.
//!
//! Nothing outside this module writes SQL: the cluster mode (DESIGN.md §8) switches engines and
//! adds `ON CLUSTER` here, and the chDB check (`scripts/chdb_check.py`) runs exactly these
//! statements on current ClickHouse.
//!
//! Every statement runs on ClickHouse 18.16 (Debian's package, what CI has) and on current
//! releases: `DateTime` (not `DateTime64`), `Enum8` (not `LowCardinality`), the
//! `ENGINE = …() PARTITION BY … ORDER BY …` syntax, no setting 18.16 lacks, no `IN [array]`
//! (18.16 wants a tuple). Values are never spliced into the text: templates hold `?`
//! placeholders that the `clickhouse` crate fills with escaped literals (`Query::bind`).
//! Database and table names are validated identifiers.
//!
//! # Tables
//!
//! - `events`: one row per stored event. `ReplacingMergeTree` ordered by `(created_at, id)` and
//!   partitioned by month: a time window prunes partitions and primary-key ranges, and copies of
//!   one event (two writers racing) collapse when parts merge. Queries never rely on merges:
//!   they count `uniqExact(id)`.
//! - `pr_opened`: per repository, an `AggregatingMergeTree` of `uniqExactState(id)`,
//!   `minState(created_at)` and `maxState(created_at)` of its opened pull requests, fed by the
//!   materialized view `pr_opened_mv` on inserts into `events`. The states merge exactly (min and
//!   max survive merges, the id set absorbs a second copy of an event), and the PR average reads
//!   one primary-key range of it with `-Merge`.
//! - `repo_counts`: per repository and type, `uniqExactState(id)`, fed by `repo_counts_mv`: the
//!   per-repository counts without scanning `events`.
//! - `schema_migrations`: the migration versions applied.

use crate::event::EventType;
use crate::store::StoreError;

/// Longest database or table name accepted.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Checks that `name` is a plain identifier: ASCII letters, digits and `_`, not starting with a
/// digit, at most [`MAX_IDENTIFIER_LEN`] characters. Such a name needs no quoting in SQL.
pub fn validate_identifier(kind: &str, name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IDENTIFIER_LEN
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "{kind} {name:?} is not a valid identifier: use ASCII letters, digits and '_', \
             not starting with a digit, at most {MAX_IDENTIFIER_LEN} characters"
        )))
    }
}

/// The `Enum8` of event types: codes match [`type_code`].
const EVENT_TYPE_ENUM: &str = "Enum8('WatchEvent' = 1, 'PullRequestEvent' = 2, 'IssuesEvent' = 3)";

/// The `Enum8` code of an event type, as written in RowBinary and read back by the queries.
pub fn type_code(t: EventType) -> i8 {
    match t {
        EventType::WatchEvent => 1,
        EventType::PullRequestEvent => 2,
        EventType::IssuesEvent => 3,
    }
}

/// Inverse of [`type_code`].
pub fn type_from_code(code: i8) -> Option<EventType> {
    match code {
        1 => Some(EventType::WatchEvent),
        2 => Some(EventType::PullRequestEvent),
        3 => Some(EventType::IssuesEvent),
        _ => None,
    }
}

/// One schema migration: statements that are each idempotent (`IF NOT EXISTS`), so a migration
/// interrupted half-way, or run by two processes at once, is simply run again.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Increasing version number, recorded in `schema_migrations`.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// The statements, in order.
    pub statements: Vec<String>,
}

/// The names the store's SQL uses, and the statements built from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    database: String,
    cluster: Option<String>,
}

impl Schema {
    /// The schema in `database`. `cluster` is reserved for the cluster mode and must be `None`
    /// for now.
    pub fn new(database: &str, cluster: Option<&str>) -> Result<Schema, StoreError> {
        validate_identifier("database", database)?;
        if let Some(cluster) = cluster {
            validate_identifier("cluster", cluster)?;
            return Err(StoreError::Config(
                "cluster mode is not implemented yet: leave CLICKHOUSE_CLUSTER unset".into(),
            ));
        }
        Ok(Schema {
            database: database.to_owned(),
            cluster: None,
        })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.database)
    }

    /// The table events are inserted into (`database.events`).
    pub fn events_table(&self) -> String {
        self.table("events")
    }

    /// `CREATE DATABASE IF NOT EXISTS`.
    pub fn create_database(&self) -> String {
        format!("CREATE DATABASE IF NOT EXISTS {}", self.database)
    }

    /// `DROP DATABASE IF EXISTS` (tests and benches).
    pub fn drop_database(&self) -> String {
        format!("DROP DATABASE IF EXISTS {}", self.database)
    }

    /// The table that records applied migrations. Two processes may both record a version: the
    /// engine collapses the copies and readers use `DISTINCT`.
    pub fn create_migrations_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (version UInt32, name String, applied_at DateTime) \
             ENGINE = ReplacingMergeTree() ORDER BY version",
            self.table("schema_migrations")
        )
    }

    /// Versions applied so far; returns `version UInt32` rows.
    pub fn applied_versions(&self) -> String {
        format!(
            "SELECT DISTINCT version FROM {} ORDER BY version",
            self.table("schema_migrations")
        )
    }

    /// Records a migration; binds: version (UInt32), name, applied_at (seconds).
    pub fn record_migration(&self) -> String {
        format!(
            "INSERT INTO {} (version, name, applied_at) VALUES (?, ?, toDateTime(?))",
            self.table("schema_migrations")
        )
    }

    /// Every migration, oldest first.
    pub fn migrations(&self) -> Vec<Migration> {
        let events = self.table("events");
        let pr_opened = self.table("pr_opened");
        let repo_counts = self.table("repo_counts");
        vec![Migration {
            version: 1,
            name: "events, pr_opened and repo_counts with their materialized views",
            statements: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {events} (\
                     id UInt64, \
                     event_type {EVENT_TYPE_ENUM}, \
                     repo_id UInt64, \
                     repo_name String, \
                     created_at DateTime, \
                     action String\
                     ) ENGINE = ReplacingMergeTree() \
                     PARTITION BY toYYYYMM(created_at) \
                     ORDER BY (created_at, id)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {pr_opened} (\
                     repo_name String, \
                     opened_ids AggregateFunction(uniqExact, UInt64), \
                     first_opened AggregateFunction(min, DateTime), \
                     last_opened AggregateFunction(max, DateTime)\
                     ) ENGINE = AggregatingMergeTree() ORDER BY repo_name"
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {}_mv TO {pr_opened} AS \
                     SELECT repo_name, \
                     uniqExactState(id) AS opened_ids, \
                     minState(created_at) AS first_opened, \
                     maxState(created_at) AS last_opened \
                     FROM {events} \
                     WHERE event_type = 'PullRequestEvent' AND action = 'opened' \
                     GROUP BY repo_name",
                    pr_opened
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {repo_counts} (\
                     repo_name String, \
                     event_type {EVENT_TYPE_ENUM}, \
                     ids AggregateFunction(uniqExact, UInt64)\
                     ) ENGINE = AggregatingMergeTree() ORDER BY (repo_name, event_type)"
                ),
                format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS {}_mv TO {repo_counts} AS \
                     SELECT repo_name, event_type, uniqExactState(id) AS ids \
                     FROM {events} GROUP BY repo_name, event_type",
                    repo_counts
                ),
            ],
        }]
    }

    /// Ids already stored among some; binds: since (seconds), until (seconds, inclusive), the
    /// ids as a tuple. Reads one time range of `events`.
    pub fn existing_ids(&self) -> String {
        format!(
            "SELECT DISTINCT id FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at <= toDateTime(?) AND id IN ?",
            self.table("events")
        )
    }

    /// Distinct events per type in `[since, until)`; binds: since, until (seconds). Returns
    /// `(code Int8, n UInt64)` rows.
    pub fn event_counts(&self) -> String {
        format!(
            "SELECT toInt8(event_type) AS code, uniqExact(id) AS n FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) \
             GROUP BY code ORDER BY code",
            self.table("events")
        )
    }

    /// Distinct events per type per bucket in `[since, until)`; binds: first bucket start,
    /// bucket seconds, since, until. Returns `(code Int8, bucket UInt64, n UInt64)` rows, the
    /// bucket as an index from the first.
    pub fn timeline(&self) -> String {
        format!(
            "SELECT toInt8(event_type) AS code, \
             toUInt64(intDiv(toInt64(toUInt32(created_at)) - ?, ?)) AS bucket, \
             uniqExact(id) AS n FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) \
             GROUP BY code, bucket ORDER BY code, bucket",
            self.table("events")
        )
    }

    /// Opened pull requests of one repository; binds: repo name. Returns one
    /// `(opened UInt64, first DateTime, last DateTime)` row (zeros when none).
    pub fn pr_average(&self) -> String {
        format!(
            "SELECT uniqExactMerge(opened_ids) AS opened, minMerge(first_opened) AS first, \
             maxMerge(last_opened) AS last FROM {} WHERE repo_name = ?",
            self.table("pr_opened")
        )
    }

    /// Events of one repository per type; binds: repo name. Returns `(code Int8, n UInt64)`.
    pub fn repo_event_counts(&self) -> String {
        format!(
            "SELECT toInt8(event_type) AS code, uniqExactMerge(ids) AS n FROM {} \
             WHERE repo_name = ? GROUP BY code ORDER BY code",
            self.table("repo_counts")
        )
    }

    /// Distinct stored events. Returns one `UInt64`.
    pub fn total_events(&self) -> String {
        format!("SELECT uniqExact(id) FROM {}", self.table("events"))
    }

    /// Total and newest time, for health. Returns one `(n UInt64, last DateTime)` row.
    pub fn health_totals(&self) -> String {
        format!(
            "SELECT uniqExact(id) AS n, max(created_at) AS last FROM {}",
            self.table("events")
        )
    }

    /// The most active repositories; binds: limit. Returns `(repo_name String, n UInt64)`.
    pub fn top_repositories(&self) -> String {
        format!(
            "SELECT repo_name, uniqExact(id) AS n FROM {} GROUP BY repo_name \
             ORDER BY n DESC, repo_name ASC LIMIT ?",
            self.table("events")
        )
    }

    /// The server version. Returns one `String`.
    pub fn server_version(&self) -> String {
        "SELECT version()".to_owned()
    }

    /// `OPTIMIZE TABLE … FINAL` of every table (tests: merges must change no metric).
    pub fn optimize_final(&self) -> Vec<String> {
        ["events", "pr_opened", "repo_counts"]
            .iter()
            .map(|t| format!("OPTIMIZE TABLE {} FINAL", self.table(t)))
            .collect()
    }

    /// Whether a cluster is configured (reserved: always `false` for now).
    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_validated() {
        for ok in ["github_stats", "a", "_x1", "T_2"] {
            validate_identifier("database", ok).unwrap();
        }
        for bad in ["", "1abc", "a-b", "a.b", "a b", "a`b", "é", &"x".repeat(65)] {
            assert!(validate_identifier("database", bad).is_err(), "{bad:?}");
        }
        assert!(Schema::new("db; DROP TABLE x", None).is_err());
        assert!(Schema::new("db", Some("c")).is_err());
    }

    #[test]
    fn type_codes_round_trip() {
        for t in EventType::ALL {
            assert_eq!(type_from_code(type_code(t)), Some(t));
            assert!(EVENT_TYPE_ENUM.contains(&format!("'{}' = {}", t.as_str(), type_code(t))));
        }
        assert_eq!(type_from_code(0), None);
    }
}
