//! The versioned migrations of the schema, and the statements that fill, recount and repair
//! the tables derived from `events`.

use super::*;

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

    pub(super) fn name(self) -> &'static str {
        match self {
            DerivedTable::OpenedPullRequests => "repo_opened_prs",
            DerivedTable::HourlyCounts => "hourly_type_counts",
            DerivedTable::RepositoryCounts => "repo_type_counts",
            DerivedTable::HourlyOpenedPullRequests => "repo_hourly_opened_prs",
        }
    }

    pub(super) fn engine_kind(self) -> &'static str {
        match self {
            DerivedTable::OpenedPullRequests | DerivedTable::HourlyOpenedPullRequests => {
                "AggregatingMergeTree"
            }
            DerivedTable::HourlyCounts | DerivedTable::RepositoryCounts => "SummingMergeTree",
        }
    }

    /// The column list, for a table created empty (18.16 takes no column list with
    /// `AS SELECT`, which infers the same types).
    pub(super) fn columns(self) -> String {
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
    pub(super) fn keys(self) -> String {
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
    pub(super) fn group(self) -> &'static str {
        match self {
            DerivedTable::OpenedPullRequests => "repo_name",
            DerivedTable::HourlyCounts => "hour, event_type",
            DerivedTable::RepositoryCounts => "repo_name, event_type",
            DerivedTable::HourlyOpenedPullRequests => "repo_name, hour",
        }
    }

    /// The rows a correction inserted into `count_corrections` (`created_at`, `event_type`,
    /// `repo_name`, `n`) adds to this count table.
    pub(super) fn correction_select(self, corrections: &str) -> String {
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
    pub(super) fn select(self, events: &str) -> String {
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

/// The versioned migrations, and the statements that rebuild or repair what they derive.
impl Schema {
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
    pub(super) fn migration_1(&self, current: bool) -> Migration {
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
    pub(super) fn migration_4(&self) -> Migration {
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
    pub(super) fn migration_5(&self) -> Migration {
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
    pub(super) fn add_column(&self, table: &str, column: &str, ty: &str) -> Step {
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
    pub(super) fn migration_3(&self) -> Migration {
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
    pub(super) fn migration_2(&self) -> Migration {
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
}
