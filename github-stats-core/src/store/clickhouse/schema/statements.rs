//! Every statement the store sends, its template right above the function that binds its
//! values.

use clickhouse::Client;
use clickhouse::query::Query;

use super::*;

/// Every statement the store sends, its template right above the function that binds its values
/// in the template's order: the store runs these, and the chDB check prints them.
impl Schema {
    /// The server version. Returns one `String`.
    pub(super) fn server_version(&self) -> String {
        "SELECT version()".to_owned()
    }

    pub(crate) fn q_server_version(&self, client: &Client) -> Query {
        client.query(&self.server_version())
    }

    /// The nodes of the configured cluster, from the `system.clusters` of any node; binds: the
    /// cluster name. Returns `(shard UInt32, replica UInt32, host String, port UInt16)` rows,
    /// `port` being the native protocol's.
    pub(super) fn cluster_nodes(&self) -> String {
        "SELECT toUInt32(shard_num) AS shard, toUInt32(replica_num) AS replica, \
         host_name AS host, toUInt16(port) AS port FROM system.clusters \
         WHERE cluster = ? ORDER BY shard, replica"
            .to_owned()
    }

    pub(crate) fn q_cluster_nodes(&self, client: &Client, cluster: &str) -> Query {
        client.query(&self.cluster_nodes()).bind(cluster)
    }

    /// Whether the server knows a setting; binds: its name. Returns one `UInt64` (0 or 1).
    pub(super) fn setting_exists(&self) -> String {
        "SELECT count() FROM system.settings WHERE name = ?".to_owned()
    }

    pub(crate) fn q_setting_exists(&self, client: &Client, setting: &str) -> Query {
        client.query(&self.setting_exists()).bind(setting)
    }

    /// A trivial query, to see that a node answers. Returns one `UInt8`.
    pub(super) fn ping(&self) -> String {
        "SELECT toUInt8(1)".to_owned()
    }

    pub(crate) fn q_ping(&self, client: &Client) -> Query {
        client.query(&self.ping())
    }

    /// Whether a table has a column; binds: database, table, column. Returns one `UInt64`.
    pub(super) fn column_exists(&self) -> String {
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
    pub(super) fn kept_copies(&self) -> String {
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
    pub(super) fn applied_versions(&self) -> String {
        format!(
            "SELECT DISTINCT version FROM {} ORDER BY version",
            self.table("schema_migrations")
        )
    }

    pub(crate) fn q_applied_versions(&self, client: &Client) -> Query {
        client.query(&self.applied_versions())
    }

    /// Records a migration; binds: version (UInt32), name, applied_at (seconds).
    pub(super) fn record_migration(&self) -> String {
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
    pub(super) fn ids_in_range(&self) -> String {
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
    pub(super) fn existing_ids(&self) -> String {
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
    pub(super) fn event_counts(&self) -> String {
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
    pub(super) fn event_counts_in_events(&self) -> String {
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
    pub(super) fn timeline(&self) -> String {
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
    pub(super) fn timeline_in_events(&self) -> String {
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
    pub(super) fn last_event_since(&self) -> String {
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
    pub(super) fn pr_average(&self) -> String {
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
    pub(super) fn pr_average_in(&self) -> String {
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
    pub(super) fn record_archive_hour(&self) -> String {
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
    pub(super) fn archive_hours(&self) -> String {
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
    pub(super) fn imported_hours(&self) -> String {
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
    pub(super) fn repo_event_counts(&self) -> String {
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
    pub(super) fn total_events(&self) -> String {
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
    pub(super) fn health_totals(&self) -> String {
        format!(
            "SELECT toUInt64(sum(n)) AS c, toUInt32(max(hour)) AS last_hour FROM {}",
            self.table("hourly_type_counts")
        )
    }

    pub(crate) fn q_health_totals(&self, client: &Client) -> Query {
        client.query(&self.health_totals())
    }

    /// The most active repositories; binds: limit. Returns `(repo_name String, n UInt64)`.
    pub(super) fn top_repositories(&self) -> String {
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
pub(super) fn bind_edges(query: Query, split: &HourSplit) -> Query {
    let [(a, b), (c, d)] = split.edges;
    query.bind(a).bind(b).bind(c).bind(d)
}
