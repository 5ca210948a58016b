//! The ClickHouse schema and every SQL statement of the store, in one module: the names
//! ([`Schema`], here), the versioned migrations (`migrations.rs`), and each query's template
//! right above the function that binds its values (`statements.rs`). Nothing outside this module
//! writes SQL, and the chDB check
//! (`scripts/chdb_check.py`) runs exactly these statements on current ClickHouse. The tables,
//! their engines and why, the versions, and where each metric reads are in
//! `docs/clickhouse.md`.
//!
//! Every statement runs on ClickHouse 18.16 (Debian's package, what CI has) and on current
//! releases: `DateTime` (not `DateTime64`), `Enum8` (not `LowCardinality`), the
//! `ENGINE = …() PARTITION BY … ORDER BY …` syntax, no setting 18.16 lacks, no `IN [array]`
//! (18.16 refuses it). Values are never spliced into the text: templates hold `?`
//! placeholders that the `clickhouse` crate fills with escaped literals (`Query::bind`).
//! Database and table names are validated identifiers.

use crate::event::EventType;
use crate::store::StoreError;

mod migrations;
mod statements;

pub use migrations::{Migration, Step};

/// Longest database or table name accepted.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Checks that `name` is a plain identifier: ASCII letters, digits and `_`, not starting with a
/// digit, at most [`MAX_IDENTIFIER_LEN`] characters. Such a name needs no quoting in SQL.
pub fn validate_identifier(kind: &str, name: &str) -> Result<(), StoreError> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "{kind} {name:?} is not a valid identifier: use ASCII letters, digits and '_', \
             not starting with a digit, at most {MAX_IDENTIFIER_LEN} characters"
        )))
    }
}

/// Whether `name` is a plain identifier (see [`validate_identifier`]).
pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IDENTIFIER_LEN
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How inserts into the `Distributed` `events` table pick a shard: a hash of the repository
/// name, so that all events of a repository are on one shard (`cityHash64` exists in 18.16 and
/// current releases).
pub const SHARDING_KEY: &str = "cityHash64(repo_name)";

/// How records of the `Distributed` `archive_hours` table pick a shard: by hour, so that every
/// record of an hour is on one shard.
pub const ARCHIVE_SHARDING_KEY: &str = "toUInt32(hour)";

/// The part of a window that `events` answers: two `[since, until)` ranges (either may be
/// empty), each bound as two seconds values. Both are ranges of the primary key's first column,
/// so ClickHouse reads only their granules. What they hold is counted as distinct ids
/// (`uniqExact(id)`), so a copy two racing writers left in `events` counts once even before
/// parts merge: at most two hours of events, a few milliseconds at 10M events.
const EDGES: &str = "((created_at >= toDateTime(?) AND created_at < toDateTime(?)) \
     OR (created_at >= toDateTime(?) AND created_at < toDateTime(?)))";

/// How a window `[since, until)` is answered when it holds whole hours: those from the hourly
/// counts, the partial hours at each end from `events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourSplit {
    /// Whole hours read from `hourly_type_counts`: `[from, to)`, hour-aligned, not empty.
    pub hours: (u32, u32),
    /// The ranges read from `events`: the head `[since, first whole hour)` and the tail
    /// `[end of the last whole hour, until)` (either may be empty).
    pub edges: [(u32, u32); 2],
}

impl HourSplit {
    /// The split of `[since, until)` (seconds); `None` when `events` answers alone (one range
    /// scan, cheaper than the union): the window holds no whole hour, or the buckets of a
    /// timeline (`bucket_seconds`; `None` for plain counts) are not whole hours, so hourly rows
    /// would not fall into one bucket each.
    pub fn new(since: u32, until: u32, bucket_seconds: Option<i64>) -> Option<HourSplit> {
        const HOUR: u32 = 3600;
        let whole_hours_buckets = bucket_seconds.is_none_or(|b| b > 0 && b % i64::from(HOUR) == 0);
        let first = since.div_ceil(HOUR).saturating_mul(HOUR);
        let last = until / HOUR * HOUR;
        (whole_hours_buckets && first < last).then_some(HourSplit {
            hours: (first, last),
            edges: [(since, first), (last, until)],
        })
    }
}

/// The start of an event's hour (UTC), in seconds: not `toStartOfHour`, which follows the
/// server's time zone (some are not whole hours from UTC).
const HOUR_OF_EVENT: &str = "toDateTime(intDiv(toUInt32(created_at), 3600) * 3600)";

/// Rows per granule of `repo_opened_prs`. A lookup of one repository deserialises the id sets
/// of every row of the granules it reads, neighbours included: with version 1's 256 that was a
/// quarter of a million ids for one answer at 10M events (70 ms for the repository with the
/// most pull requests); with 16, a few thousand.
const PR_STATE_GRANULARITY: u32 = 16;

/// Rows per granule of `repo_hourly_opened_prs`: a repository's rows are one per hour with an
/// opening, so a lookup reads its own rows and few neighbours' (each a tiny id set).
const HOURLY_PR_STATE_GRANULARITY: u32 = 64;

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

/// Rows per granule of version 1's aggregate tables (kept as it was: migrations do not change).
const STATE_GRANULARITY: u32 = 256;

/// The names the store's SQL uses, and the statements built from them.
///
/// On one server the tables are `events`, `repo_opened_prs`, `hourly_type_counts`,
/// `repo_type_counts`, `archive_hours` and `schema_migrations`. In cluster mode every node holds
/// `_local` tables (replicated or not) with the views between them, and `Distributed` tables of
/// the plain names over them, which every query reads; the store applies the DDL on each node
/// itself, without `ON CLUSTER` (`docs/clickhouse.md`, "Cluster mode").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    database: String,
    cluster: Option<String>,
    replicated: bool,
}

impl Schema {
    /// The schema in `database`, on one server (`cluster` `None`) or on the cluster of that
    /// name in `remote_servers`; `replicated` (cluster only) makes the local tables
    /// `Replicated…MergeTree`, which needs ZooKeeper (ClickHouse Keeper) and the `{shard}` and
    /// `{replica}` macros on every node.
    pub fn new(
        database: &str,
        cluster: Option<&str>,
        replicated: bool,
    ) -> Result<Schema, StoreError> {
        validate_identifier("database", database)?;
        if let Some(cluster) = cluster {
            validate_identifier("cluster", cluster)?;
        } else if replicated {
            return Err(StoreError::Config(
                "CLICKHOUSE_REPLICATED needs CLICKHOUSE_CLUSTER: replicated tables are a \
                 cluster layout"
                    .into(),
            ));
        }
        Ok(Schema {
            database: database.to_owned(),
            cluster: cluster.map(str::to_owned),
            replicated,
        })
    }

    /// The database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The cluster name, in cluster mode.
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Whether the local tables are replicated (cluster mode only).
    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.database)
    }

    /// The name of the table holding the rows of `name` on each node: `name_local` in cluster
    /// mode, `name` itself on one server.
    fn local_name(&self, name: &str) -> String {
        if self.cluster.is_some() {
            format!("{name}_local")
        } else {
            name.to_owned()
        }
    }

    /// The table events are inserted into (`database.events`; `Distributed` in cluster mode).
    pub fn events_table(&self) -> String {
        self.table("events")
    }

    /// The table corrections are inserted into (`database.count_corrections`; `Distributed`
    /// in cluster mode, sharded like `events`).
    pub fn corrections_table(&self) -> String {
        self.table("count_corrections")
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
    /// engine collapses the copies and readers use `DISTINCT`. In cluster mode each node has
    /// its own: the store migrates each node.
    pub fn create_migrations_table(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (version UInt32, name String, applied_at DateTime) \
             ENGINE = ReplacingMergeTree() ORDER BY version",
            self.table("schema_migrations")
        )
    }

    /// `ENGINE = …` of a local table of the `MergeTree` family `kind` (`ReplacingMergeTree`,
    /// `AggregatingMergeTree`): replicated in a replicated cluster, with one ZooKeeper path per
    /// shard, database and table.
    fn engine(&self, kind: &str, local_table: &str) -> String {
        if self.replicated {
            format!(
                "ENGINE = Replicated{kind}('/clickhouse/tables/{{shard}}/{}/{local_table}', \
                 '{{replica}}')",
                self.database
            )
        } else {
            format!("ENGINE = {kind}()")
        }
    }

    /// `CREATE TABLE` of the `Distributed` table `name` over `name_local` (cluster mode).
    fn create_distributed(&self, cluster: &str, name: &str, sharding_key: Option<&str>) -> String {
        let key = sharding_key.map(|k| format!(", {k}")).unwrap_or_default();
        format!(
            "CREATE TABLE IF NOT EXISTS {} AS {} ENGINE = Distributed({cluster}, {}, {}{key})",
            self.table(name),
            self.table(&self.local_name(name)),
            self.database,
            self.local_name(name),
        )
    }

    /// Whether a cluster is configured.
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
        assert!(Schema::new("db; DROP TABLE x", None, false).is_err());
        assert!(Schema::new("db", Some("c-1"), false).is_err());
        assert!(Schema::new("db", Some("c'1"), true).is_err());
        assert!(
            Schema::new("db", None, true).is_err(),
            "replicated needs a cluster"
        );
        Schema::new("db", Some("c_1"), true).unwrap();
    }

    #[test]
    fn one_server_has_no_distributed_table() {
        let schema = Schema::new("db", None, false).unwrap();
        assert!(!schema.is_clustered());
        assert_eq!(schema.events_table(), "db.events");
        assert_eq!(schema.table(&schema.local_name("events")), "db.events");
        let ddl = schema.migrations()[0].statements().join("\n");
        assert!(!ddl.contains("Distributed"), "{ddl}");
        assert!(!ddl.contains("_local"), "{ddl}");
        assert!(!ddl.contains("Replicated"), "{ddl}");
        assert!(ddl.contains("CREATE TABLE IF NOT EXISTS db.events (id UInt64"));
        assert!(ddl.contains("ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(created_at)"));
        assert!(ddl.contains("TO db.pr_opened AS SELECT"));
        assert!(ddl.contains("FROM db.events WHERE"));
    }

    #[test]
    fn cluster_mode_has_local_tables_and_distributed_ones_over_them() {
        let schema = Schema::new("db", Some("two"), false).unwrap();
        assert!(schema.is_clustered());
        assert_eq!(schema.cluster(), Some("two"));
        assert_eq!(schema.events_table(), "db.events");
        assert_eq!(
            schema.table(&schema.local_name("events")),
            "db.events_local"
        );
        let statements = &schema.migrations()[0].statements();
        let ddl = statements.join("\n");
        for local in ["events_local", "pr_opened_local", "repo_counts_local"] {
            assert!(
                ddl.contains(&format!("CREATE TABLE IF NOT EXISTS db.{local} (")),
                "{local}: {ddl}"
            );
        }
        // The views read and feed the local tables: each shard aggregates its own rows.
        assert!(ddl.contains(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS db.pr_opened_mv TO db.pr_opened_local"
        ));
        assert!(ddl.contains(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS db.repo_counts_mv TO db.repo_counts_local"
        ));
        assert_eq!(ddl.matches("FROM db.events_local").count(), 2, "{ddl}");
        assert!(!ddl.contains("FROM db.events "), "{ddl}");
        // Distributed tables last (they need the local ones), events sharded by repository.
        let tail: Vec<&str> = statements[statements.len() - 3..]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(
            tail,
            [
                "CREATE TABLE IF NOT EXISTS db.events AS db.events_local \
                 ENGINE = Distributed(two, db, events_local, cityHash64(repo_name))",
                "CREATE TABLE IF NOT EXISTS db.pr_opened AS db.pr_opened_local \
                 ENGINE = Distributed(two, db, pr_opened_local)",
                "CREATE TABLE IF NOT EXISTS db.repo_counts AS db.repo_counts_local \
                 ENGINE = Distributed(two, db, repo_counts_local)",
            ]
        );
        assert!(!ddl.contains("Replicated"), "{ddl}");
        assert!(!ddl.contains("ON CLUSTER"), "applied per node: {ddl}");
        // Queries read the Distributed tables; OPTIMIZE goes to the local ones.
        assert!(schema.event_counts().contains("FROM db.events WHERE"));
        assert!(
            schema
                .pr_average()
                .contains("FROM db.repo_opened_prs WHERE")
        );
        assert!(
            schema
                .repo_event_counts()
                .contains("FROM db.repo_type_counts WHERE")
        );
        assert!(
            schema
                .optimize_final()
                .iter()
                .all(|s| s.ends_with("_local FINAL"))
        );
    }

    #[test]
    fn replicated_cluster_mode_uses_replicated_engines_per_shard() {
        let schema = Schema::new("db", Some("two"), true).unwrap();
        assert!(schema.is_replicated());
        let ddl = schema.migrations()[0].statements().join("\n");
        assert!(ddl.contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/events_local', \
             '{replica}') PARTITION BY toYYYYMM(created_at)"
        ));
        assert!(ddl.contains(
            "ENGINE = ReplicatedAggregatingMergeTree(\
             '/clickhouse/tables/{shard}/db/pr_opened_local', '{replica}') ORDER BY repo_name"
        ));
        assert!(ddl.contains(
            "ENGINE = ReplicatedAggregatingMergeTree(\
             '/clickhouse/tables/{shard}/db/repo_counts_local', '{replica}')"
        ));
        assert_eq!(ddl.matches("ENGINE = Distributed(two, db,").count(), 3);
        // The migrations table is per node, never replicated.
        assert!(
            schema
                .create_migrations_table()
                .contains("ENGINE = ReplacingMergeTree()")
        );
    }

    #[test]
    fn migration_2_fills_the_count_tables_then_feeds_them_by_views() {
        let schema = Schema::new("db", None, false).unwrap();
        let migrations = schema.migrations();
        assert_eq!(
            migrations.iter().map(|m| m.version).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let statements = &migrations[1].statements();
        // Each table is created filled, before the view that feeds it from then on.
        let position = |prefix: &str| {
            statements
                .iter()
                .position(|s| s.starts_with(prefix))
                .unwrap_or_else(|| panic!("no statement starts with {prefix}: {statements:#?}"))
        };
        for (table, engine, group) in [
            ("repo_opened_prs", "AggregatingMergeTree()", "repo_name"),
            (
                "hourly_type_counts",
                "SummingMergeTree()",
                "hour, event_type",
            ),
            (
                "repo_type_counts",
                "SummingMergeTree()",
                "repo_name, event_type",
            ),
        ] {
            let create = position(&format!("CREATE TABLE IF NOT EXISTS db.{table} ENGINE"));
            let view = position(&format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS db.{table}_mv TO db.{table} AS SELECT"
            ));
            assert!(create < view, "{table}");
            assert!(statements[create].contains(engine), "{table}");
            assert!(statements[create].contains(" AS SELECT "));
            assert!(
                statements[create].ends_with(&format!("FROM db.events GROUP BY {group}"))
                    || statements[create].contains(&format!(
                        "FROM db.events WHERE event_type = 'PullRequestEvent' AND action = \
                         'opened' GROUP BY {group}"
                    )),
                "{}",
                statements[create]
            );
        }
        assert!(
            statements[position("CREATE TABLE IF NOT EXISTS db.repo_opened_prs")]
                .contains("SETTINGS index_granularity = 16 AS SELECT")
        );
        for old in ["pr_opened", "repo_counts"] {
            let drop_view = position(&format!("DROP TABLE IF EXISTS db.{old}_mv"));
            let drop_table = statements
                .iter()
                .position(|s| s == &format!("DROP TABLE IF EXISTS db.{old}"))
                .unwrap();
            assert!(
                drop_view < drop_table,
                "the view first: it writes into the table"
            );
        }
        let ddl = statements.join("\n");
        assert!(
            !ddl.contains("toStartOfHour"),
            "time-zone free hours: {ddl}"
        );
        assert!(!ddl.contains("Distributed"), "{ddl}");

        let cluster = Schema::new("db", Some("two"), false).unwrap();
        let ddl = cluster.migrations()[1].statements().join("\n");
        assert!(ddl.contains("CREATE TABLE IF NOT EXISTS db.hourly_type_counts_local ENGINE"));
        assert!(ddl.contains("FROM db.events_local GROUP BY"));
        assert!(ddl.contains(
            "CREATE TABLE IF NOT EXISTS db.hourly_type_counts AS db.hourly_type_counts_local \
             ENGINE = Distributed(two, db, hourly_type_counts_local)"
        ));
        for dropped in ["repo_counts", "pr_opened"] {
            assert!(
                ddl.contains(&format!("DROP TABLE IF EXISTS db.{dropped}\n")),
                "{ddl}"
            );
            assert!(
                ddl.contains(&format!("DROP TABLE IF EXISTS db.{dropped}_local")),
                "{ddl}"
            );
        }
        assert!(ddl.contains(
            "CREATE TABLE IF NOT EXISTS db.repo_opened_prs AS db.repo_opened_prs_local \
             ENGINE = Distributed(two, db, repo_opened_prs_local)"
        ));
        assert!(
            ddl.contains("DROP TABLE IF EXISTS db.repo_counts_local"),
            "{ddl}"
        );

        // Without replication every node fills its own tables from its own events.
        let derived_steps = |schema: &Schema| {
            schema
                .migrations()
                .into_iter()
                .flat_map(|m| m.steps)
                .filter(|s| matches!(s, Step::CreateDerived { .. }))
                .collect::<Vec<_>>()
        };
        assert_eq!(derived_steps(&cluster).len(), 4);
        for step in &derived_steps(&cluster) {
            if let Step::CreateDerived { filled, sync, .. } = step {
                assert!(filled.contains(" AS SELECT "), "{filled}");
                assert!(filled.contains("FROM db.events_local"), "{filled}");
                assert_eq!(*sync, None);
            }
        }

        // Replicated: the first replica of each shard fills each table, once it holds every
        // event of the shard; the other replicas create it empty, replication fills them. The
        // recount is the same INSERTs, run on one replica of each shard.
        let replicated = Schema::new("db", Some("two"), true).unwrap();
        // Every derived table (version 2's three, version 4's `repo_hourly_opened_prs`).
        let mut derived = 0;
        for step in &derived_steps(&replicated) {
            if let Step::CreateDerived {
                filled,
                empty,
                sync,
            } = step
            {
                derived += 1;
                assert!(filled.contains(" AS SELECT "), "{filled}");
                assert!(filled.contains("ENGINE = Replicated"), "{filled}");
                assert!(!empty.contains(" AS SELECT "), "{empty}");
                assert!(empty.contains("ENGINE = Replicated"), "{empty}");
                assert_eq!(sync.as_deref(), Some("SYSTEM SYNC REPLICA db.events_local"));
                assert_eq!(step.sql(true), filled);
                assert_eq!(step.sql(false), empty);
            }
        }
        assert_eq!(derived, 4);
        let ddl = replicated.migrations()[1]
            .steps
            .iter()
            .map(|s| s.sql(false))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(ddl.contains(
            "CREATE TABLE IF NOT EXISTS db.repo_type_counts_local (repo_name String, event_type \
             Enum8"
        ));
        assert!(ddl.contains("ReplicatedSummingMergeTree("));
        assert!(
            !ddl.contains("ENGINE = ReplicatedSummingMergeTree() "),
            "{ddl}"
        );
        assert_eq!(replicated.recount(), cluster.recount());
        let recount = schema.recount();
        assert_eq!(recount.len(), 2);
        assert!(recount[0].starts_with("INSERT INTO db.hourly_type_counts (hour, event_type, n)"));
        assert!(recount[0].contains("FROM db.events FINAL"));
        assert!(recount[1].contains("FROM db.repo_type_counts GROUP BY repo_name, event_type"));
    }

    #[test]
    fn migration_5_adds_the_writer_and_the_corrections_feeding_every_count_table() {
        let one = Schema::new("db", None, false).unwrap();
        let migrations = one.migrations();
        let v5 = &migrations[4];
        assert_eq!(v5.version, 5);
        // A database of version 1 gains the column; a fresh one has it from version 1 on.
        assert!(matches!(
            &v5.steps[0],
            Step::AddColumn { table, column, sql, .. }
                if table == "events" && column == "writer"
                    && sql == "ALTER TABLE db.events ADD COLUMN writer UInt64"
        ));
        assert!(migrations[0].statements()[0].contains("action String, writer UInt64)"));
        assert!(!one.version_1_as_released().statements()[0].contains("writer"));
        let ddl = v5.statements().join("\n");
        assert!(!ddl.contains("ALTER TABLE"), "{ddl}");
        assert!(
            ddl.contains("CREATE TABLE IF NOT EXISTS db.count_corrections ("),
            "{ddl}"
        );
        assert!(ddl.contains(") ENGINE = Null"), "{ddl}");
        for counts in ["hourly_type_counts", "repo_type_counts"] {
            assert!(
                ddl.contains(&format!(
                    "CREATE MATERIALIZED VIEW IF NOT EXISTS db.{counts}_corrections_mv TO \
                     db.{counts} AS SELECT"
                )),
                "{ddl}"
            );
        }

        // On a cluster: the column on the local table and on the `Distributed` one, the
        // corrections local and sharded like `events` (a correction lands on its event's shard).
        let replicated = Schema::new("db", Some("two"), true).unwrap();
        let v5 = &replicated.migrations()[4];
        let added: Vec<&str> = v5
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::AddColumn { table, .. } => Some(table.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(added, ["events_local", "events"]);
        let ddl = v5.statements().join("\n");
        assert!(
            ddl.contains("TO db.hourly_type_counts_local AS SELECT"),
            "{ddl}"
        );
        assert!(
            ddl.contains("FROM db.count_corrections_local GROUP BY"),
            "{ddl}"
        );
        assert!(
            ddl.contains(&format!(
                "CREATE TABLE IF NOT EXISTS db.count_corrections AS db.count_corrections_local \
                 ENGINE = Distributed(two, db, count_corrections_local, {SHARDING_KEY})"
            )),
            "{ddl}"
        );
    }

    #[test]
    fn windows_split_into_whole_hours_and_edges() {
        const H: u32 = 3600;
        let base = 470_000 * H;
        // Partial hours at both ends.
        assert_eq!(
            HourSplit::new(base + 10, base + 5 * H + 20, None),
            Some(HourSplit {
                hours: (base + H, base + 5 * H),
                edges: [(base + 10, base + H), (base + 5 * H, base + 5 * H + 20)],
            })
        );
        // Aligned: the edges are empty.
        assert_eq!(
            HourSplit::new(base, base + 2 * H, Some(7200)),
            Some(HourSplit {
                hours: (base, base + 2 * H),
                edges: [(base, base), (base + 2 * H, base + 2 * H)],
            })
        );
        assert!(HourSplit::new(base, base + H, None).is_some());
        // No whole hour, or buckets that are not whole hours: all from events.
        for (since, until, bucket) in [
            (base + 10, base + H + 10, None),
            (base + 1, base + H + 1, None),
            (base, base + 3 * H, Some(5400)),
            (base, base + 3 * H, Some(60)),
            (base + 5, base + 6, None),
        ] {
            assert_eq!(
                HourSplit::new(since, until, bucket),
                None,
                "[{since}, {until}) by {bucket:?}"
            );
        }
        // The end of DateTime's range does not overflow.
        assert_eq!(HourSplit::new(u32::MAX - 10, u32::MAX, None), None);
    }

    #[test]
    fn type_codes_round_trip() {
        for t in EventType::ALL {
            assert_eq!(type_from_code(type_code(t)), Some(t));
            assert!(EVENT_TYPE_ENUM.contains(&format!("'{}' = {}", t.as_str(), type_code(t))));
        }
        assert_eq!(type_from_code(0), None);
    }

    /// The statements of the chDB check (`cargo xtask chdb-statements`, run by
    /// `scripts/chdb_check.sh`) are complete: every placeholder of every query is bound, also
    /// with values that need escaping.
    #[test]
    fn chdb_check_statements_are_bound() {
        use crate::conformance::{self, clickhouse::chdb_check_statements};

        let at = 1_700_000_000;
        let events = vec![
            conformance::event(1, EventType::PullRequestEvent, "o/r", at, "opened"),
            conformance::event(2, EventType::WatchEvent, "o'q/r?", at + 9, "started"),
        ];
        let doc = chdb_check_statements(&events);
        let queries = doc["queries"].as_array().unwrap();
        assert!(queries.len() > 20, "{}", queries.len());
        for q in queries {
            let text = q["sql"].as_str().unwrap();
            assert!(
                !text.contains('?') || text.contains("'o\\'q/r?'"),
                "unbound placeholder in {text}"
            );
        }
        assert_eq!(doc["events"], 2);
        assert!(doc["load"][0].as_str().unwrap().contains("'o\\'q/r?'"));
    }
}
