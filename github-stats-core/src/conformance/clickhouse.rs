//! What the ClickHouse store's own tests and checks need beyond the suite: the statements of a
//! database left at schema version 1 (the upgrade test), and the statements of the chDB check.

use clickhouse::Client;
use clickhouse::query::Query;
use serde_json::json;

use crate::coverage::{ArchiveHour, ArchiveStatus};
use crate::event::Event;
use crate::store::clickhouse::schema::Schema;

/// The statements that leave `database` as schema version 1 made it (on one server), empty:
/// dropped first, then created with version 1's tables and views, without recording the
/// version. Fails on a database name that is not a plain identifier.
pub fn version_1_statements(database: &str) -> Result<Vec<String>, crate::StoreError> {
    let schema = Schema::new(database, None, false)?;
    let mut statements = vec![
        schema.drop_database(),
        schema.create_database(),
        schema.create_migrations_table(),
    ];
    statements.extend(schema.version_1_as_released().statements());
    Ok(statements)
}

/// The same for a node of `cluster` (replicated or not): what each node of a cluster of schema
/// version 1 ran, its local tables, views and `Distributed` tables, the database created
/// first. The caller drops the database on every node before (a replicated table's ZooKeeper
/// path goes with its last replica). Fails on a database or cluster name that is not a plain
/// identifier.
pub fn version_1_cluster_statements(
    database: &str,
    cluster: &str,
    replicated: bool,
) -> Result<Vec<String>, crate::StoreError> {
    let schema = Schema::new(database, Some(cluster), replicated)?;
    let mut statements = vec![schema.create_database(), schema.create_migrations_table()];
    statements.extend(schema.version_1_as_released().statements());
    Ok(statements)
}

/// The statements of the chDB check (`scripts/chdb_check.sh`, written by
/// `cargo xtask chdb-statements`), as the JSON document `scripts/chdb_check.py` reads: the DDL
/// of every migration, `events` as `INSERT … VALUES`, every query the store sends filled with
/// values from those events, the merges and recount, and the race (every event inserted twice)
/// they must undo. Each value is bound by the store's own binders, as the store sends it.
pub fn chdb_check_statements(events: &[Event]) -> serde_json::Value {
    assert!(!events.is_empty(), "the chDB check needs events");
    let schema = Schema::new("gs_chdb_check", None, false).expect("a valid database name");
    let client = Client::default();
    let sql = |q: Query| q.sql_display().to_string();

    let mut setup = vec![
        schema.drop_database(),
        schema.create_database(),
        schema.create_migrations_table(),
    ];
    for m in schema.migrations() {
        setup.extend(m.statements());
        setup.push(sql(schema.q_record_migration(&client, &m, 1_700_000_000)));
    }
    let mut load = Vec::new();
    for chunk in events.chunks(1000) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|e| {
                sql(client
                    .query("(?, ?, ?, ?, ?, ?)")
                    .bind(e.id)
                    .bind(e.event_type.as_str())
                    .bind(e.repo_id)
                    .bind(e.repo_name.as_str())
                    .bind(e.timestamp() as u32)
                    .bind(e.action.as_str()))
            })
            .collect();
        load.push(format!(
            "INSERT INTO {} (id, event_type, repo_id, repo_name, created_at, action) VALUES {}",
            schema.events_table(),
            rows.join(", ")
        ));
    }

    let min = events.iter().map(Event::timestamp).min().unwrap_or(0) as u32;
    let max = events.iter().map(Event::timestamp).max().unwrap_or(0) as u32;
    let span = max - min;
    // Archive records: an hour imported, replaced by a later record, a hole, a damaged hour.
    let hour = |i: u32| {
        let h = min / 3600 * 3600 + i * 3600;
        chrono::DateTime::from_timestamp(i64::from(h), 0).expect("a valid hour")
    };
    let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time");
    for (i, (h, status, version)) in [
        (0, ArchiveStatus::Damaged, 1),
        (0, ArchiveStatus::Imported, 2),
        (1, ArchiveStatus::Imported, 1),
        (2, ArchiveStatus::Missing, 1),
        (3, ArchiveStatus::Imported, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let record = ArchiveHour::new(hour(h), status, 100 + i as u64, 7, at);
        load.push(sql(schema.q_record_archive_hour(&client, &record, version)));
    }
    let mut queries = vec![
        json!({"name": "server_version", "sql": sql(schema.q_server_version(&client)), "compare": false}),
        json!({"name": "applied_versions", "sql": sql(schema.q_applied_versions(&client))}),
        json!({"name": "total_events", "sql": sql(schema.q_total_events(&client))}),
        json!({"name": "health_totals", "sql": sql(schema.q_health_totals(&client))}),
        json!({"name": "top_repositories_10", "sql": sql(schema.q_top_repositories(&client, 10))}),
        json!({"name": "top_repositories_1000", "sql": sql(schema.q_top_repositories(&client, 1000))}),
    ];
    queries.push(json!({
        "name": "archive_hours",
        "sql": sql(schema.q_archive_hours(&client, min / 3600 * 3600, min / 3600 * 3600 + 5 * 3600)),
    }));
    queries.push(json!({"name": "imported_hours", "sql": sql(schema.q_imported_hours(&client))}));
    let mut ids: Vec<u64> = events.iter().take(500).map(|e| e.id).collect();
    ids.extend([1, 2, u64::MAX]);
    queries.push(json!({
        "name": "ids_in_range",
        "sql": sql(schema.q_ids_in_range(&client, min + span / 2, min + span / 2 + 3600, 100_000)),
        "unordered": true,
    }));
    queries.push(json!({
        "name": "existing_ids",
        "sql": sql(schema.q_existing_ids(&client, min, max, &ids)),
        "unordered": true,
    }));
    for (i, (since, until)) in [
        (min, max + 1),
        (min + span / 3, max - span / 3),
        (min + 1, min + 61),
        (max, max + 60),
    ]
    .into_iter()
    .enumerate()
    {
        queries.push(json!({
            "name": format!("event_counts_{i}"),
            "sql": sql(schema.q_event_counts(&client, since, until)),
        }));
        let bucket = i64::from((until.saturating_sub(since)) / 7).max(1);
        let first = i64::from(since).div_euclid(bucket) * bucket;
        queries.push(json!({
            "name": format!("timeline_{i}"),
            "sql": sql(schema.q_timeline(&client, first, bucket, since, until)),
        }));
        // Buckets of whole hours: the union with the hourly counts where hours fit.
        let bucket = (bucket + 3599) / 3600 * 3600;
        let first = i64::from(since).div_euclid(bucket) * bucket;
        queries.push(json!({
            "name": format!("timeline_hours_{i}"),
            "sql": sql(schema.q_timeline(&client, first, bucket, since, until)),
        }));
    }
    let mut repos: Vec<&str> = events
        .iter()
        .filter(|e| e.is_pull_request_opened())
        .map(|e| e.repo_name.as_str())
        .collect();
    repos.sort_unstable();
    repos.dedup();
    repos.truncate(25);
    repos.push("nobody/nothing");
    for repo in repos {
        queries.push(json!({
            "name": format!("pr_average {repo}"),
            "sql": sql(schema.q_pr_average(&client, repo)),
        }));
        queries.push(json!({
            "name": format!("pr_average_in {repo}"),
            "sql": sql(schema.q_pr_average_in(&client, repo, min + span / 4, max - span / 4)),
        }));
        queries.push(json!({
            "name": format!("repo_event_counts {repo}"),
            "sql": sql(schema.q_repo_event_counts(&client, repo)),
        }));
    }
    // Merges, then a recount: after a race (below), they bring every answer back.
    let mut maintenance = schema.optimize_final();
    maintenance.extend(schema.recount());
    json!({
        "database": schema.database(),
        "events": events.len(),
        "setup": setup,
        "load": load,
        "queries": queries,
        "optimize": maintenance,
        // Two writers racing on every event: merges and a recount must undo it.
        "race": [format!(
            "INSERT INTO {0} SELECT * FROM {0}",
            schema.events_table()
        )],
    })
}
