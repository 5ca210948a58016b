//! The ClickHouse schema and every SQL statement of the store, in one place: the names
//! ([`Schema`]), the versioned migrations, and each query's template right above the function
//! that binds its values. Nothing outside this module writes SQL, and the chDB check
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

use clickhouse::Client;
use clickhouse::query::Query;

use crate::event::EventType;
use crate::store::StoreError;

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

/// The tables of migration 2 derived from `events`: each filled from it when created, then fed
/// by a materialized view on every insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DerivedTable {
    /// `repo_opened_prs`: per repository, the id set and first and last time of its opened pull
    /// requests (aggregate states).
    OpenedPullRequests,
    /// `hourly_type_counts`: rows per hour (start, UTC) and type.
    HourlyCounts,
    /// `repo_type_counts`: rows per repository and type.
    RepositoryCounts,
    /// `repo_hourly_opened_prs` (migration 4): per repository and hour (start, UTC), the id
    /// set and first and last time of its opened pull requests: the PR average over a window.
    HourlyOpenedPullRequests,
}

impl DerivedTable {
    const ALL: [DerivedTable; 3] = [
        DerivedTable::OpenedPullRequests,
        DerivedTable::HourlyCounts,
        DerivedTable::RepositoryCounts,
    ];

    /// The row counts, which a recount corrects.
    const COUNTS: [DerivedTable; 2] = [DerivedTable::HourlyCounts, DerivedTable::RepositoryCounts];

    fn name(self) -> &'static str {
        match self {
            DerivedTable::OpenedPullRequests => "repo_opened_prs",
            DerivedTable::HourlyCounts => "hourly_type_counts",
            DerivedTable::RepositoryCounts => "repo_type_counts",
            DerivedTable::HourlyOpenedPullRequests => "repo_hourly_opened_prs",
        }
    }

    fn engine_kind(self) -> &'static str {
        match self {
            DerivedTable::OpenedPullRequests | DerivedTable::HourlyOpenedPullRequests => {
                "AggregatingMergeTree"
            }
            DerivedTable::HourlyCounts | DerivedTable::RepositoryCounts => "SummingMergeTree",
        }
    }

    /// The column list, for a table created empty (18.16 takes no column list with
    /// `AS SELECT`, which infers the same types).
    fn columns(self) -> String {
        match self {
            DerivedTable::OpenedPullRequests => "repo_name String, \
                 opened_ids AggregateFunction(uniqExact, UInt64), \
                 first_opened AggregateFunction(min, DateTime), \
                 last_opened AggregateFunction(max, DateTime)"
                .to_owned(),
            DerivedTable::HourlyCounts => {
                format!("hour DateTime, event_type {EVENT_TYPE_ENUM}, n Int64")
            }
            DerivedTable::RepositoryCounts => {
                format!("repo_name String, event_type {EVENT_TYPE_ENUM}, n Int64")
            }
            DerivedTable::HourlyOpenedPullRequests => "repo_name String, hour DateTime, \
                 opened_ids AggregateFunction(uniqExact, UInt64), \
                 first_opened AggregateFunction(min, DateTime), \
                 last_opened AggregateFunction(max, DateTime)"
                .to_owned(),
        }
    }

    /// Partitioning, sorting key and settings.
    fn keys(self) -> String {
        match self {
            DerivedTable::OpenedPullRequests => {
                format!("ORDER BY repo_name SETTINGS index_granularity = {PR_STATE_GRANULARITY}")
            }
            DerivedTable::HourlyCounts => {
                "PARTITION BY toYYYYMM(hour) ORDER BY (hour, event_type)".to_owned()
            }
            DerivedTable::RepositoryCounts => "ORDER BY (repo_name, event_type)".to_owned(),
            DerivedTable::HourlyOpenedPullRequests => format!(
                "ORDER BY (repo_name, hour) SETTINGS index_granularity = \
                 {HOURLY_PR_STATE_GRANULARITY}"
            ),
        }
    }

    /// The grouping columns of a count table.
    fn group(self) -> &'static str {
        match self {
            DerivedTable::OpenedPullRequests => "repo_name",
            DerivedTable::HourlyCounts => "hour, event_type",
            DerivedTable::RepositoryCounts => "repo_name, event_type",
            DerivedTable::HourlyOpenedPullRequests => "repo_name, hour",
        }
    }

    /// The rows a correction inserted into `count_corrections` (`created_at`, `event_type`,
    /// `repo_name`, `n`) adds to this count table.
    fn correction_select(self, corrections: &str) -> String {
        match self {
            DerivedTable::OpenedPullRequests | DerivedTable::HourlyOpenedPullRequests => {
                unreachable!("the opened pull requests are id sets, which need no correction")
            }
            DerivedTable::HourlyCounts => format!(
                "SELECT {HOUR_OF_EVENT} AS hour, event_type, sum(n) AS n FROM {corrections} \
                 GROUP BY hour, event_type"
            ),
            DerivedTable::RepositoryCounts => format!(
                "SELECT repo_name, event_type, sum(n) AS n FROM {corrections} \
                 GROUP BY repo_name, event_type"
            ),
        }
    }

    /// The rows of this table computed from `events` (a table name, maybe with `FINAL`). Counts
    /// are `Int64` so that a recount can insert negative corrections (`SummingMergeTree` adds
    /// them up, and drops a row whose sum is zero).
    fn select(self, events: &str) -> String {
        match self {
            DerivedTable::OpenedPullRequests => format!(
                "SELECT repo_name, uniqExactState(id) AS opened_ids, \
                 minState(created_at) AS first_opened, maxState(created_at) AS last_opened \
                 FROM {events} WHERE event_type = 'PullRequestEvent' AND action = 'opened' \
                 GROUP BY repo_name"
            ),
            DerivedTable::HourlyCounts => format!(
                "SELECT {HOUR_OF_EVENT} AS hour, event_type, toInt64(count()) AS n \
                 FROM {events} GROUP BY hour, event_type"
            ),
            DerivedTable::RepositoryCounts => format!(
                "SELECT repo_name, event_type, toInt64(count()) AS n FROM {events} \
                 GROUP BY repo_name, event_type"
            ),
            DerivedTable::HourlyOpenedPullRequests => format!(
                "SELECT repo_name, {HOUR_OF_EVENT} AS hour, uniqExactState(id) AS opened_ids, \
                 minState(created_at) AS first_opened, maxState(created_at) AS last_opened \
                 FROM {events} WHERE event_type = 'PullRequestEvent' AND action = 'opened' \
                 GROUP BY repo_name, hour"
            ),
        }
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

/// One schema migration: steps that are each idempotent (`IF NOT EXISTS`, or skipped when done),
/// so a migration interrupted half-way, or run by two processes at once, is simply run again.
#[derive(Debug, Clone)]
pub struct Migration {
    /// Increasing version number, recorded in `schema_migrations`.
    pub version: u32,
    /// What it does.
    pub name: &'static str,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl Migration {
    /// The statements as one server runs them (and the first replica of each shard) on a
    /// database created by this version: a column a later version adds is already in the table
    /// [`Schema::migrations`]' version 1 creates, so its `ADD COLUMN` is left out (as the store
    /// skips it where the column exists; 18.16 has no `ADD COLUMN IF NOT EXISTS`).
    #[cfg(any(test, feature = "testsuite"))]
    pub fn statements(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| !matches!(s, Step::AddColumn { .. }))
            .map(|s| s.sql(true).to_owned())
            .collect()
    }
}

/// One step of a migration, run on every node of a cluster in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A statement every node runs.
    Run(String),
    /// Creates a table derived from `events`, filled with what `events` holds. On one server
    /// and on every node of a cluster without replication, `filled` (`CREATE TABLE IF NOT
    /// EXISTS … AS SELECT`: the process that creates the table fills it, one starting at the
    /// same moment finds it and does nothing). In a replicated cluster, the first replica of
    /// each shard runs `sync` (`SYSTEM SYNC REPLICA` of its `events`, so that it holds every
    /// event of the shard) then `filled`, the other replicas `empty`: replication brings them
    /// the rows, so each shard's rows are counted once (`docs/clickhouse.md`, "Versions").
    CreateDerived {
        /// `CREATE TABLE IF NOT EXISTS … AS SELECT … FROM events`.
        filled: String,
        /// The same table created empty.
        empty: String,
        /// Replicated: what the filling replica runs first.
        sync: Option<String>,
    },
    /// `ALTER TABLE … ADD COLUMN`, skipped where the column exists (18.16 has no `ADD COLUMN
    /// IF NOT EXISTS`). On a replicated table, ClickHouse passes it on to the other replicas.
    AddColumn {
        /// The database.
        database: String,
        /// The table, without its database.
        table: String,
        /// The new column.
        column: String,
        /// The `ALTER TABLE` statement.
        sql: String,
    },
}

impl Step {
    /// The statement this step runs on a node that fills derived tables (`filler`: one server,
    /// any node without replication, the first replica of a shard) or on another replica.
    pub fn sql(&self, filler: bool) -> &str {
        match self {
            Step::Run(sql) | Step::AddColumn { sql, .. } => sql,
            Step::CreateDerived { filled, empty, .. } => {
                if filler {
                    filled
                } else {
                    empty
                }
            }
        }
    }
}

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

    /// Every migration, oldest first. In cluster mode these run on every node.
    pub fn migrations(&self) -> Vec<Migration> {
        vec![
            self.migration_1(true),
            self.migration_2(),
            self.migration_3(),
            self.migration_4(),
            self.migration_5(),
        ]
    }

    /// Version 1 as it was released: `events` without the columns later versions added (tests
    /// of upgrades build databases of version 1 with it).
    #[cfg(any(test, feature = "testsuite"))]
    pub fn version_1_as_released(&self) -> Migration {
        self.migration_1(false)
    }

    /// Version 1: `events`, and the aggregate tables version 2 replaced. `events` is created
    /// with every column of the current version (`current`), which later versions add to
    /// older tables: a replicated table is created with the structure its ZooKeeper path holds,
    /// so a replica created after an upgrade (a new node, or the next node of the same
    /// migration) must have the columns the upgrade added.
    fn migration_1(&self, current: bool) -> Migration {
        let (events_name, pr_name, counts_name) = (
            self.local_name("events"),
            self.local_name("pr_opened"),
            self.local_name("repo_counts"),
        );
        let events = self.table(&events_name);
        let pr_opened = self.table(&pr_name);
        let repo_counts = self.table(&counts_name);
        // Added by version 5 (see `migration_5`).
        let later_columns = if current { ", writer UInt64" } else { "" };
        let mut statements = vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {events} (\
                 id UInt64, \
                 event_type {EVENT_TYPE_ENUM}, \
                 repo_id UInt64, \
                 repo_name String, \
                 created_at DateTime, \
                 action String\
                 {later_columns}) {} \
                 PARTITION BY toYYYYMM(created_at) \
                 ORDER BY (created_at, id)",
                self.engine("ReplacingMergeTree", &events_name)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {pr_opened} (\
                 repo_name String, \
                 opened_ids AggregateFunction(uniqExact, UInt64), \
                 first_opened AggregateFunction(min, DateTime), \
                 last_opened AggregateFunction(max, DateTime)\
                 ) {} ORDER BY repo_name \
                 SETTINGS index_granularity = {STATE_GRANULARITY}",
                self.engine("AggregatingMergeTree", &pr_name)
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {} TO {pr_opened} AS \
                 SELECT repo_name, \
                 uniqExactState(id) AS opened_ids, \
                 minState(created_at) AS first_opened, \
                 maxState(created_at) AS last_opened \
                 FROM {events} \
                 WHERE event_type = 'PullRequestEvent' AND action = 'opened' \
                 GROUP BY repo_name",
                self.table("pr_opened_mv")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {repo_counts} (\
                 repo_name String, \
                 event_type {EVENT_TYPE_ENUM}, \
                 ids AggregateFunction(uniqExact, UInt64)\
                 ) {} ORDER BY (repo_name, event_type) \
                 SETTINGS index_granularity = {STATE_GRANULARITY}",
                self.engine("AggregatingMergeTree", &counts_name)
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {} TO {repo_counts} AS \
                 SELECT repo_name, event_type, uniqExactState(id) AS ids \
                 FROM {events} GROUP BY repo_name, event_type",
                self.table("repo_counts_mv")
            ),
        ];
        if let Some(cluster) = &self.cluster {
            statements.extend([
                self.create_distributed(cluster, "events", Some(SHARDING_KEY)),
                self.create_distributed(cluster, "pr_opened", None),
                self.create_distributed(cluster, "repo_counts", None),
            ]);
        }
        Migration {
            version: 1,
            name: "events, pr_opened and repo_counts with their materialized views",
            steps: statements.into_iter().map(Step::Run).collect(),
        }
    }

    /// Version 4: `repo_hourly_opened_prs`, the opened pull requests per repository and hour
    /// (aggregate states, like `repo_opened_prs`), so that the PR average over a window reads
    /// the window's whole hours here and only its partial hours at the ends from `events`.
    /// Created filled from `events` (once per shard, see [`Step::CreateDerived`]), then fed by
    /// its view, as version 2's tables are (see `docs/clickhouse.md`).
    fn migration_4(&self) -> Migration {
        let derived = DerivedTable::HourlyOpenedPullRequests;
        let mut steps = self.derived_table_steps(derived);
        if let Some(cluster) = &self.cluster {
            steps.push(Step::Run(self.create_distributed(
                cluster,
                derived.name(),
                None,
            )));
        }
        Migration {
            version: 4,
            name: "repo_hourly_opened_prs: opened pull requests per repository and hour",
            steps,
        }
    }

    /// Version 5: racing writers exact by design (`docs/clickhouse.md`, "Two writers racing").
    /// `events` gets `writer`, the id of the store instance that inserted each row; a writer
    /// whose copy of an event is not the one a merge keeps takes its copy back from the count
    /// tables by inserting a correction of -1 into `count_corrections`, a `Null` table whose
    /// views add it to every count table. On a cluster, `count_corrections` is `Distributed`
    /// and sharded like `events`, so a correction lands on its event's shard.
    fn migration_5(&self) -> Migration {
        let events_local = self.local_name("events");
        let corrections = self.table(&self.local_name("count_corrections"));
        let mut steps = vec![self.add_column(&events_local, "writer", "UInt64")];
        if self.cluster.is_some() {
            steps.push(self.add_column("events", "writer", "UInt64"));
        }
        steps.push(Step::Run(format!(
            "CREATE TABLE IF NOT EXISTS {corrections} (\
             created_at DateTime, \
             event_type {EVENT_TYPE_ENUM}, \
             repo_name String, \
             n Int64\
             ) ENGINE = Null"
        )));
        for counts in DerivedTable::COUNTS {
            steps.push(Step::Run(format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {}_corrections_mv TO {} AS {}",
                self.table(counts.name()),
                self.table(&self.local_name(counts.name())),
                counts.correction_select(&corrections),
            )));
        }
        if let Some(cluster) = &self.cluster {
            steps.push(Step::Run(self.create_distributed(
                cluster,
                "count_corrections",
                Some(SHARDING_KEY),
            )));
        }
        Migration {
            version: 5,
            name: "events.writer and count_corrections: racing copies taken back by their writers",
            steps,
        }
    }

    /// A step adding `column` of `ty` to `table` (a name in the database) where it is missing.
    fn add_column(&self, table: &str, column: &str, ty: &str) -> Step {
        Step::AddColumn {
            database: self.database.clone(),
            table: table.to_owned(),
            column: column.to_owned(),
            sql: format!("ALTER TABLE {} ADD COLUMN {column} {ty}", self.table(table)),
        }
    }

    /// The steps of a table derived from `events` and of the view that feeds it from then on:
    /// the table created filled where [`Step::CreateDerived`] says, then the view. Every table
    /// derived from `events` is made this way, so that an upgrade counts what `events` holds
    /// exactly once per shard, replicated or not.
    fn derived_table_steps(&self, derived: DerivedTable) -> Vec<Step> {
        let events = self.table(&self.local_name("events"));
        let local = self.local_name(derived.name());
        let engine = self.engine(derived.engine_kind(), &local);
        let table = self.table(&local);
        let keys = derived.keys();
        let filled = format!(
            "CREATE TABLE IF NOT EXISTS {table} {engine} {keys} AS {}",
            derived.select(&events)
        );
        let empty = format!(
            "CREATE TABLE IF NOT EXISTS {table} ({}) {engine} {keys}",
            derived.columns()
        );
        vec![
            Step::CreateDerived {
                filled,
                empty,
                sync: self
                    .replicated
                    .then(|| format!("SYSTEM SYNC REPLICA {events}")),
            },
            Step::Run(format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {}_mv TO {table} AS {}",
                self.table(derived.name()),
                derived.select(&events),
            )),
        ]
    }

    /// Version 3: `archive_hours`, what importing each GH Archive hour found (status, its
    /// distinct kept events, how many the poller had stored first). A record replaces the
    /// hour's earlier ones: readers take the values of the highest `version` (milliseconds
    /// since the epoch at recording) with `argMax`, so the answer is right before and after
    /// merges, on one server and through a `Distributed` table (sharded by hour, so an hour's
    /// records sit on one shard).
    fn migration_3(&self) -> Migration {
        let local = self.local_name("archive_hours");
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {} (\
             hour DateTime, \
             status UInt8, \
             archive_events UInt64, \
             polled_before_archive UInt64, \
             recorded_at DateTime, \
             version UInt64\
             ) {} ORDER BY hour",
            self.table(&local),
            self.engine("ReplacingMergeTree", &local)
        )];
        if let Some(cluster) = &self.cluster {
            statements.push(self.create_distributed(
                cluster,
                "archive_hours",
                Some(ARCHIVE_SHARDING_KEY),
            ));
        }
        Migration {
            version: 3,
            name: "archive_hours: the GH Archive hours imported, missing or damaged",
            steps: statements.into_iter().map(Step::Run).collect(),
        }
    }

    /// Version 2: row counts per hour and type and per repository and type, and the opened
    /// pull requests per repository in small granules, replacing version 1's `pr_opened` and
    /// `repo_counts`. Each table is created filled from `events` (once per shard, see
    /// [`Step::CreateDerived`]), then its view. Why, and what upgrading takes:
    /// `docs/clickhouse.md`.
    fn migration_2(&self) -> Migration {
        let mut steps = Vec::new();
        for derived in DerivedTable::ALL {
            steps.extend(self.derived_table_steps(derived));
        }
        for old in ["pr_opened", "repo_counts"] {
            if self.cluster.is_some() {
                steps.push(Step::Run(format!(
                    "DROP TABLE IF EXISTS {}",
                    self.table(old)
                )));
            }
            steps.extend([
                Step::Run(format!("DROP TABLE IF EXISTS {}_mv", self.table(old))),
                Step::Run(format!(
                    "DROP TABLE IF EXISTS {}",
                    self.table(&self.local_name(old))
                )),
            ]);
        }
        if let Some(cluster) = &self.cluster {
            for derived in DerivedTable::ALL {
                steps.push(Step::Run(self.create_distributed(
                    cluster,
                    derived.name(),
                    None,
                )));
            }
        }
        Migration {
            version: 2,
            name: "repo_opened_prs, hourly_type_counts and repo_type_counts replace pr_opened \
                   and repo_counts",
            steps,
        }
    }

    /// The statements of a recount (see `ClickHouseStore::recount`), to run on one replica of
    /// each shard (the one server, or every shard's first replica): for each count table, one
    /// `INSERT` of the difference between the counts of `events` read with `FINAL` (copies left
    /// by two writers racing count once) and the table's current sums, where they differ. No
    /// table is renamed or emptied, so inserts and queries go on meanwhile, and a recount run
    /// twice inserts nothing the second time.
    pub fn recount(&self) -> Vec<String> {
        let events = format!("{} FINAL", self.table(&self.local_name("events")));
        DerivedTable::COUNTS
            .iter()
            .map(|counts| {
                let table = self.table(&self.local_name(counts.name()));
                let group = counts.group();
                format!(
                    "INSERT INTO {table} ({group}, n) \
                     SELECT {group}, sum(exact) - sum(current) AS n FROM (\
                     SELECT {group}, n AS exact, toInt64(0) AS current FROM ({}) \
                     UNION ALL \
                     SELECT {group}, toInt64(0) AS exact, sum(n) AS current FROM {table} \
                     GROUP BY {group}\
                     ) GROUP BY {group} HAVING n != 0",
                    counts.select(&events)
                )
            })
            .collect()
    }

    /// What repairs the derived tables after an insert stored in part (`write.rs`) before the
    /// [`recount`](Self::recount), to run on the one server or on the first replica of each
    /// shard: on a replicated cluster first `SYSTEM SYNC REPLICA` of every table it reads, so
    /// that the replica holds every part the other one stored; then, one statement per id-set
    /// table binding the events' ids, the opened pull requests among them fed again (aggregate
    /// states: feeding an id twice changes nothing).
    pub fn repair_partly_stored(&self) -> (Vec<String>, Vec<String>) {
        let sync = if self.replicated {
            [
                "events",
                "hourly_type_counts",
                "repo_type_counts",
                "repo_opened_prs",
                "repo_hourly_opened_prs",
            ]
            .iter()
            .map(|t| format!("SYSTEM SYNC REPLICA {}", self.table(&self.local_name(t))))
            .collect()
        } else {
            Vec::new()
        };
        let events = format!(
            "(SELECT * FROM {} WHERE id IN (SELECT toUInt64(arrayJoin(?))))",
            self.table(&self.local_name("events"))
        );
        let refeed = [
            DerivedTable::OpenedPullRequests,
            DerivedTable::HourlyOpenedPullRequests,
        ]
        .iter()
        .map(|t| {
            format!(
                "INSERT INTO {} {}",
                self.table(&self.local_name(t.name())),
                t.select(&events)
            )
        })
        .collect();
        (sync, refeed)
    }

    /// `OPTIMIZE TABLE … FINAL` of every table holding rows (tests: merges must change no
    /// metric); in cluster mode the local tables, to run on every node.
    pub fn optimize_final(&self) -> Vec<String> {
        [
            "events",
            "repo_opened_prs",
            "hourly_type_counts",
            "repo_type_counts",
            "archive_hours",
            "repo_hourly_opened_prs",
        ]
        .iter()
        .map(|t| format!("OPTIMIZE TABLE {} FINAL", self.table(&self.local_name(t))))
        .collect()
    }

    /// Whether a cluster is configured.
    pub fn is_clustered(&self) -> bool {
        self.cluster.is_some()
    }
}

/// Every statement the store sends, its template right above the function that binds its values
/// in the template's order: the store runs these, and the chDB check prints them.
impl Schema {
    /// The server version. Returns one `String`.
    fn server_version(&self) -> String {
        "SELECT version()".to_owned()
    }

    pub(crate) fn q_server_version(&self, client: &Client) -> Query {
        client.query(&self.server_version())
    }

    /// The nodes of the configured cluster, from the `system.clusters` of any node; binds: the
    /// cluster name. Returns `(shard UInt32, replica UInt32, host String, port UInt16)` rows,
    /// `port` being the native protocol's.
    fn cluster_nodes(&self) -> String {
        "SELECT toUInt32(shard_num) AS shard, toUInt32(replica_num) AS replica, \
         host_name AS host, toUInt16(port) AS port FROM system.clusters \
         WHERE cluster = ? ORDER BY shard, replica"
            .to_owned()
    }

    pub(crate) fn q_cluster_nodes(&self, client: &Client, cluster: &str) -> Query {
        client.query(&self.cluster_nodes()).bind(cluster)
    }

    /// Whether the server knows a setting; binds: its name. Returns one `UInt64` (0 or 1).
    fn setting_exists(&self) -> String {
        "SELECT count() FROM system.settings WHERE name = ?".to_owned()
    }

    pub(crate) fn q_setting_exists(&self, client: &Client, setting: &str) -> Query {
        client.query(&self.setting_exists()).bind(setting)
    }

    /// A trivial query, to see that a node answers. Returns one `UInt8`.
    fn ping(&self) -> String {
        "SELECT toUInt8(1)".to_owned()
    }

    pub(crate) fn q_ping(&self, client: &Client) -> Query {
        client.query(&self.ping())
    }

    /// Whether a table has a column; binds: database, table, column. Returns one `UInt64`.
    fn column_exists(&self) -> String {
        "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?"
            .to_owned()
    }

    pub(crate) fn q_column_exists(
        &self,
        client: &Client,
        database: &str,
        table: &str,
        column: &str,
    ) -> Query {
        client
            .query(&self.column_exists())
            .bind(database)
            .bind(table)
            .bind(column)
    }

    /// The copy of each of some events that a merge keeps (the last inserted: what `FINAL`
    /// reads, merged or not), with its writer; binds: since (seconds), until (seconds,
    /// inclusive), the ids as an array. Returns `(writer UInt64, created_at UInt32, code Int8,
    /// repo_name String)` rows, one per event found. A writer that finds another writer's copy kept takes
    /// its own copy back (`docs/clickhouse.md`, "Two writers racing").
    fn kept_copies(&self) -> String {
        format!(
            "SELECT writer, toUInt32(created_at) AS t, toInt8(event_type) AS code, repo_name \
             FROM {} FINAL \
             WHERE created_at >= toDateTime(?) AND created_at <= toDateTime(?) \
             AND id IN (SELECT toUInt64(arrayJoin(?)))",
            self.table("events")
        )
    }

    pub(crate) fn q_kept_copies(&self, client: &Client, min: u32, max: u32, ids: &[u64]) -> Query {
        client
            .query(&self.kept_copies())
            .bind(min)
            .bind(max)
            .bind(ids)
    }

    /// Versions applied so far; returns `version UInt32` rows.
    fn applied_versions(&self) -> String {
        format!(
            "SELECT DISTINCT version FROM {} ORDER BY version",
            self.table("schema_migrations")
        )
    }

    pub(crate) fn q_applied_versions(&self, client: &Client) -> Query {
        client.query(&self.applied_versions())
    }

    /// Records a migration; binds: version (UInt32), name, applied_at (seconds).
    fn record_migration(&self) -> String {
        format!(
            "INSERT INTO {} (version, name, applied_at) VALUES (?, ?, toDateTime(?))",
            self.table("schema_migrations")
        )
    }

    pub(crate) fn q_record_migration(
        &self,
        client: &Client,
        migration: &Migration,
        applied_at: u32,
    ) -> Query {
        client
            .query(&self.record_migration())
            .bind(migration.version)
            .bind(migration.name)
            .bind(applied_at)
    }

    /// Every id stored in a time range, up to a limit; binds: since (seconds), until (seconds,
    /// inclusive), limit. Returns `UInt64` rows. The first level of the existence check: when
    /// fewer than the limit come back, they are all the ids a batch of that range can collide
    /// with, in one round trip (none at all for a backfill of new hours).
    fn ids_in_range(&self) -> String {
        format!(
            "SELECT id FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at <= toDateTime(?) LIMIT ?",
            self.table("events")
        )
    }

    pub(crate) fn q_ids_in_range(&self, client: &Client, min: u32, max: u32, limit: u64) -> Query {
        client
            .query(&self.ids_in_range())
            .bind(min)
            .bind(max)
            .bind(limit)
    }

    /// Ids already stored among some; binds: since (seconds), until (seconds, inclusive), the
    /// ids as an array. Reads one time range of `events`. (The ids go through `arrayJoin`:
    /// 18.16 refuses `IN [array]`, and parses a long `IN (tuple)` several times slower.)
    fn existing_ids(&self) -> String {
        format!(
            "SELECT DISTINCT id FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at <= toDateTime(?) \
             AND id IN (SELECT toUInt64(arrayJoin(?)))",
            self.table("events")
        )
    }

    pub(crate) fn q_existing_ids(&self, client: &Client, min: u32, max: u32, ids: &[u64]) -> Query {
        client
            .query(&self.existing_ids())
            .bind(min)
            .bind(max)
            .bind(ids)
    }

    /// Events per type in `[since, until)`, whole hours from `hourly_type_counts` and the rest
    /// from `events`; binds: the whole hours `[from, to)`, then two ranges `[since, until)` of
    /// `events` (see [`HourSplit`]), all in seconds. Returns `(code Int8, n UInt64)` rows.
    fn event_counts(&self) -> String {
        format!(
            "SELECT code, sum(c) AS n FROM (\
             SELECT toInt8(event_type) AS code, toUInt64(sum(n)) AS c FROM {} \
             WHERE hour >= toDateTime(?) AND hour < toDateTime(?) GROUP BY code \
             UNION ALL \
             SELECT toInt8(event_type) AS code, uniqExact(id) AS c FROM {} WHERE {EDGES} \
             GROUP BY code\
             ) GROUP BY code ORDER BY code",
            self.table("hourly_type_counts"),
            self.table("events"),
        )
    }

    /// Events per type in `[since, until)` read from `events` alone, for windows without a
    /// whole hour (the common "last N minutes"); binds: since, until (seconds). Returns
    /// `(code Int8, n UInt64)` rows.
    fn event_counts_in_events(&self) -> String {
        format!(
            "SELECT toInt8(event_type) AS code, uniqExact(id) AS n FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) \
             GROUP BY code ORDER BY code",
            self.table("events")
        )
    }

    pub(crate) fn q_event_counts(&self, client: &Client, since: u32, until: u32) -> Query {
        let Some(split) = HourSplit::new(since, until, None) else {
            return client
                .query(&self.event_counts_in_events())
                .bind(since)
                .bind(until);
        };
        bind_edges(
            client
                .query(&self.event_counts())
                .bind(split.hours.0)
                .bind(split.hours.1),
            &split,
        )
    }

    /// Events per type per bucket in `[since, until)`, as [`Schema::event_counts`] splits it;
    /// binds: first bucket start, bucket seconds, the whole hours `[from, to)`, first bucket
    /// start and bucket seconds again, then the two ranges of `events`. Returns
    /// `(code Int8, bucket UInt64, n UInt64)` rows, the bucket as an index from the first.
    fn timeline(&self) -> String {
        format!(
            "SELECT code, bucket, sum(c) AS n FROM (\
             SELECT toInt8(event_type) AS code, \
             toUInt64(intDiv(toInt64(toUInt32(hour)) - ?, ?)) AS bucket, \
             toUInt64(sum(n)) AS c FROM {} \
             WHERE hour >= toDateTime(?) AND hour < toDateTime(?) GROUP BY code, bucket \
             UNION ALL \
             SELECT toInt8(event_type) AS code, \
             toUInt64(intDiv(toInt64(toUInt32(created_at)) - ?, ?)) AS bucket, \
             uniqExact(id) AS c FROM {} WHERE {EDGES} GROUP BY code, bucket\
             ) GROUP BY code, bucket ORDER BY code, bucket",
            self.table("hourly_type_counts"),
            self.table("events"),
        )
    }

    /// Events per type per bucket in `[since, until)` read from `events` alone (no whole hour
    /// in the window, or buckets that are not whole hours); binds: first bucket start, bucket
    /// seconds, since, until. Returns `(code Int8, bucket UInt64, n UInt64)` rows.
    fn timeline_in_events(&self) -> String {
        format!(
            "SELECT toInt8(event_type) AS code, \
             toUInt64(intDiv(toInt64(toUInt32(created_at)) - ?, ?)) AS bucket, \
             uniqExact(id) AS n FROM {} \
             WHERE created_at >= toDateTime(?) AND created_at < toDateTime(?) \
             GROUP BY code, bucket ORDER BY code, bucket",
            self.table("events")
        )
    }

    pub(crate) fn q_timeline(
        &self,
        client: &Client,
        first_bucket: i64,
        bucket_seconds: i64,
        since: u32,
        until: u32,
    ) -> Query {
        let Some(split) = HourSplit::new(since, until, Some(bucket_seconds)) else {
            return client
                .query(&self.timeline_in_events())
                .bind(first_bucket)
                .bind(bucket_seconds)
                .bind(since)
                .bind(until);
        };
        bind_edges(
            client
                .query(&self.timeline())
                .bind(first_bucket)
                .bind(bucket_seconds)
                .bind(split.hours.0)
                .bind(split.hours.1)
                .bind(first_bucket)
                .bind(bucket_seconds),
            &split,
        )
    }

    /// The newest event time from some time on; binds: that time (seconds). Returns one
    /// `UInt32` (0 when none). With [`Schema::health_totals`]' newest hour, it reads one hour.
    fn last_event_since(&self) -> String {
        format!(
            "SELECT toUInt32(max(created_at)) AS last FROM {} WHERE created_at >= toDateTime(?)",
            self.table("events")
        )
    }

    pub(crate) fn q_last_event_since(&self, client: &Client, since: u32) -> Query {
        client.query(&self.last_event_since()).bind(since)
    }

    /// Opened pull requests of one repository; binds: repo name. Returns one
    /// `(opened UInt64, first UInt32, last UInt32)` row, times in seconds (zeros when none:
    /// 18.16 and current releases print a zero `DateTime` differently).
    fn pr_average(&self) -> String {
        format!(
            "SELECT uniqExactMerge(opened_ids) AS opened, \
             toUInt32(minMerge(first_opened)) AS first, \
             toUInt32(maxMerge(last_opened)) AS last FROM {} WHERE repo_name = ?",
            self.table("repo_opened_prs")
        )
    }

    pub(crate) fn q_pr_average(&self, client: &Client, repo: &str) -> Query {
        client.query(&self.pr_average()).bind(repo)
    }

    /// Opened pull requests of one repository in `[since, until)`: the window's whole hours
    /// from `repo_hourly_opened_prs`, its partial hours at the ends from `events` (disjoint
    /// times, so the counts add up and the extremes combine; a part without openings is left
    /// out of the extremes). Binds: repo name, the whole hours `[from, to)` (maybe empty), the
    /// two ranges of `events` (see [`HourSplit`]), repo name. Returns one
    /// `(opened UInt64, first UInt32, last UInt32)` row, zeros when none.
    fn pr_average_in(&self) -> String {
        format!(
            "SELECT toUInt64(sum(opened)) AS n, toUInt32(minIf(first, opened > 0)) AS f, \
             toUInt32(maxIf(last, opened > 0)) AS l FROM (\
             SELECT uniqExactMerge(opened_ids) AS opened, \
             toUInt32(minMerge(first_opened)) AS first, \
             toUInt32(maxMerge(last_opened)) AS last FROM {} \
             WHERE repo_name = ? AND hour >= toDateTime(?) AND hour < toDateTime(?) \
             UNION ALL \
             SELECT uniqExact(id) AS opened, toUInt32(min(created_at)) AS first, \
             toUInt32(max(created_at)) AS last FROM {} WHERE {EDGES} AND repo_name = ? \
             AND event_type = 'PullRequestEvent' AND action = 'opened')",
            self.table("repo_hourly_opened_prs"),
            self.table("events"),
        )
    }

    pub(crate) fn q_pr_average_in(
        &self,
        client: &Client,
        repo: &str,
        since: u32,
        until: u32,
    ) -> Query {
        // Without a whole hour, `events` answers for the whole window.
        let split = HourSplit::new(since, until, None).unwrap_or(HourSplit {
            hours: (0, 0),
            edges: [(since, until), (0, 0)],
        });
        bind_edges(
            client
                .query(&self.pr_average_in())
                .bind(repo)
                .bind(split.hours.0)
                .bind(split.hours.1),
            &split,
        )
        .bind(repo)
    }

    /// Records an archive hour; binds: hour (seconds), status code, archive events, polled
    /// before the archive, recorded at (seconds), version (milliseconds).
    fn record_archive_hour(&self) -> String {
        format!(
            "INSERT INTO {} (hour, status, archive_events, polled_before_archive, recorded_at, \
             version) VALUES (toDateTime(?), ?, ?, ?, toDateTime(?), ?)",
            self.table("archive_hours")
        )
    }

    pub(crate) fn q_record_archive_hour(
        &self,
        client: &Client,
        record: &crate::coverage::ArchiveHour,
        version: u64,
    ) -> Query {
        client
            .query(&self.record_archive_hour())
            .bind(record.hour.timestamp().clamp(0, i64::from(u32::MAX)) as u32)
            .bind(record.status.code())
            .bind(record.archive_events)
            .bind(record.polled_before_archive)
            .bind(record.recorded_at.timestamp().clamp(0, i64::from(u32::MAX)) as u32)
            .bind(version)
    }

    /// The latest record of each archive hour in `[since, until)`; binds: since, until
    /// (seconds). Returns `(hour UInt32, status UInt8, archive_events UInt64,
    /// polled_before_archive UInt64, recorded_at UInt32)` rows by hour.
    fn archive_hours(&self) -> String {
        format!(
            "SELECT toUInt32(hour) AS h, argMax(status, version) AS s, \
             argMax(archive_events, version) AS a, argMax(polled_before_archive, version) AS p, \
             toUInt32(argMax(recorded_at, version)) AS r FROM {} \
             WHERE hour >= toDateTime(?) AND hour < toDateTime(?) GROUP BY hour ORDER BY h",
            self.table("archive_hours")
        )
    }

    pub(crate) fn q_archive_hours(&self, client: &Client, since: u32, until: u32) -> Query {
        client.query(&self.archive_hours()).bind(since).bind(until)
    }

    /// The hours whose latest record says imported, ascending. Returns `UInt32` rows.
    fn imported_hours(&self) -> String {
        format!(
            "SELECT h FROM (SELECT toUInt32(hour) AS h, argMax(status, version) AS s FROM {} \
             GROUP BY hour) WHERE s = {} ORDER BY h",
            self.table("archive_hours"),
            crate::coverage::ArchiveStatus::Imported.code(),
        )
    }

    pub(crate) fn q_imported_hours(&self, client: &Client) -> Query {
        client.query(&self.imported_hours())
    }

    /// Events of one repository per type; binds: repo name. Returns `(code Int8, n UInt64)`.
    fn repo_event_counts(&self) -> String {
        format!(
            "SELECT toInt8(event_type) AS code, toUInt64(sum(n)) AS c FROM {} \
             WHERE repo_name = ? GROUP BY code ORDER BY code",
            self.table("repo_type_counts")
        )
    }

    pub(crate) fn q_repo_event_counts(&self, client: &Client, repo: &str) -> Query {
        client.query(&self.repo_event_counts()).bind(repo)
    }

    /// Stored events. Returns one `UInt64`.
    fn total_events(&self) -> String {
        format!(
            "SELECT toUInt64(sum(n)) AS c FROM {}",
            self.table("hourly_type_counts")
        )
    }

    pub(crate) fn q_total_events(&self, client: &Client) -> Query {
        client.query(&self.total_events())
    }

    /// Stored events and the start of the newest hour holding any, for health. Returns one
    /// `(n UInt64, last_hour UInt32)` row.
    fn health_totals(&self) -> String {
        format!(
            "SELECT toUInt64(sum(n)) AS c, toUInt32(max(hour)) AS last_hour FROM {}",
            self.table("hourly_type_counts")
        )
    }

    pub(crate) fn q_health_totals(&self, client: &Client) -> Query {
        client.query(&self.health_totals())
    }

    /// The most active repositories; binds: limit. Returns `(repo_name String, n UInt64)`.
    fn top_repositories(&self) -> String {
        format!(
            "SELECT repo_name, toUInt64(sum(n)) AS c FROM {} GROUP BY repo_name \
             ORDER BY c DESC, repo_name ASC LIMIT ?",
            self.table("repo_type_counts")
        )
    }

    pub(crate) fn q_top_repositories(&self, client: &Client, limit: u64) -> Query {
        client.query(&self.top_repositories()).bind(limit)
    }
}

/// Binds the two `events` ranges of [`EDGES`].
fn bind_edges(query: Query, split: &HourSplit) -> Query {
    let [(a, b), (c, d)] = split.edges;
    query.bind(a).bind(b).bind(c).bind(d)
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
