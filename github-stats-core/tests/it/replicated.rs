//! Upgrades of a replicated cluster (`scripts/clickhouse-replicated.sh`): a database of schema
//! version 1, holding events, upgraded at connect by two stores at once, fills the tables that
//! later versions derive from `events` exactly once per shard, with no statement run by hand.
//! Its failures (a replica, ZooKeeper, a whole shard) are tested through the server, in
//! `github-stats-server/tests/api/replicated.rs`.

use std::time::Duration;

use github_stats_core::conformance::clickhouse::version_1_cluster_statements;
use github_stats_core::conformance::event;
use github_stats_core::{ClickHouseStore, EventStore, EventType, MemoryStore};

use crate::clickhouse::{recorded_events, snapshot};
use crate::clickhouse_process::sql;
use crate::cluster::{
    config, drop_everywhere, fresh_store, replicated_cluster, sql_u64, sync_replicas,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_replicated_database_is_upgraded_filling_each_shard_once() {
    let name = "version_1_replicated_upgrade";
    let Some(cluster) = replicated_cluster(name) else {
        return;
    };
    let events = recorded_events();
    let one = MemoryStore::new();
    one.insert_events(&events).await.unwrap();
    let expected = snapshot(&one, &events).await;
    // The events, in a database of the current version, to copy from.
    let reference = fresh_store(&cluster, &format!("{name}_reference")).await;
    reference.insert_events(&events).await.unwrap();
    sync_replicas(&cluster, reference.database()).await;
    assert_eq!(snapshot(&reference, &events).await, expected);

    // A replicated database as version 1 left it on every node, holding the events (inserted
    // through its `Distributed` table in two statements, feeding version 1's views).
    let database = format!("gs_cl_{name}");
    drop_everywhere(&cluster, &database).await;
    for url in &cluster.urls {
        for statement in version_1_cluster_statements(&database, &cluster.name, true).unwrap() {
            sql(url, &statement).await;
        }
        sql(
            url,
            &format!("INSERT INTO {database}.schema_migrations VALUES (1, 'v1', now())"),
        )
        .await;
    }
    let from = format!("{}.events", reference.database());
    for half in ["id % 2 = 0", "id % 2 = 1"] {
        sql(
            &format!("{}/?insert_distributed_sync=1", cluster.urls[0]),
            &format!(
                "INSERT INTO {database}.events SELECT id, event_type, repo_id, repo_name, \
                 created_at, action FROM {from} WHERE {half}"
            ),
        )
        .await;
    }

    // Two stores connecting at once (two servers restarted with the new version) both apply
    // the pending versions on every node.
    let timeout = Duration::from_secs(120);
    let (a, b) = tokio::join!(
        ClickHouseStore::connect(config(&cluster, &database, timeout)),
        ClickHouseStore::connect(config(&cluster, &database, timeout)),
    );
    let (upgraded, other) = (a.unwrap(), b.unwrap());
    // The other replicas receive the filled rows by replication.
    sync_replicas(&cluster, &database).await;
    assert_eq!(snapshot(&upgraded, &events).await, expected);
    assert_eq!(snapshot(&other, &events).await, expected);

    // Per shard, on each replica: the derived tables count that shard's events once.
    for url in &cluster.urls {
        let versions = sql(
            url,
            &format!("SELECT DISTINCT version FROM {database}.schema_migrations ORDER BY version"),
        )
        .await;
        assert_eq!(versions.trim(), "1\n2\n3\n4\n5", "on {url}");
        for table in [
            "events_local",
            "hourly_type_counts_local",
            "repo_type_counts_local",
            "repo_opened_prs_local",
            "repo_hourly_opened_prs_local",
        ] {
            sql(url, &format!("SYSTEM SYNC REPLICA {database}.{table}")).await;
        }
        let stored = sql_u64(
            url,
            &format!("SELECT count() FROM {database}.events_local FINAL"),
        )
        .await;
        assert!(stored > 0, "no events on {url}");
        for table in ["hourly_type_counts_local", "repo_type_counts_local"] {
            assert_eq!(
                sql_u64(
                    url,
                    &format!("SELECT toUInt64(sum(n)) FROM {database}.{table}")
                )
                .await,
                stored,
                "{table} on {url}"
            );
        }
        let opened = sql_u64(
            url,
            &format!(
                "SELECT count() FROM {database}.events_local FINAL \
                 WHERE event_type = 'PullRequestEvent' AND action = 'opened'"
            ),
        )
        .await;
        assert!(opened > 0, "no opened pull requests on {url}");
        // Each repository's id set (version 2) and each repository's and hour's (version 4).
        for (table, group) in [
            ("repo_opened_prs_local", "repo_name"),
            ("repo_hourly_opened_prs_local", "repo_name, hour"),
        ] {
            assert_eq!(
                sql_u64(
                    url,
                    &format!(
                        "SELECT toUInt64(sum(n)) FROM (SELECT uniqExactMerge(opened_ids) AS n \
                         FROM {database}.{table} GROUP BY {group})"
                    ),
                )
                .await,
                opened,
                "{table} on {url}"
            );
        }
    }

    // Later inserts reach the new tables through their views, once.
    let late = event(
        9_999_999_999,
        EventType::WatchEvent,
        "late/comer",
        1_420_113_600,
        "started",
    );
    upgraded
        .insert_events(std::slice::from_ref(&late))
        .await
        .unwrap();
    one.insert_events(std::slice::from_ref(&late))
        .await
        .unwrap();
    sync_replicas(&cluster, &database).await;
    let mut all = events.clone();
    all.push(late);
    assert_eq!(snapshot(&other, &all).await, snapshot(&one, &all).await);
    drop_everywhere(&cluster, reference.database()).await;
}
