//! Health: whether the server answers, what it holds, and in cluster mode every node.

use chrono::Utc;
use serde::Deserialize;

use super::ClickHouseStore;
use crate::answers::StoreHealth;
use crate::event::utc_from_timestamp;
use crate::store::{EventStore, StoreError};

#[derive(clickhouse::Row, Deserialize)]
struct TotalsRow {
    n: u64,
    last_hour: u32,
}

impl ClickHouseStore {
    /// What [`EventStore::health`] answers: whether the server answers, its totals, and in
    /// cluster mode every node and whether the store is degraded.
    pub(super) async fn health_report(&self) -> StoreHealth {
        let mut health = self.server_health().await;
        if let Some(cluster) = self.schema.cluster() {
            self.add_cluster_health(&mut health, cluster).await;
        }
        self.add_store_details(&mut health);
        health
    }

    /// Whether the server the store talks to answers, its version and the store's totals.
    async fn server_health(&self) -> StoreHealth {
        let probe = async {
            self.restore_schema_if_lost().await?;
            let version = self.server_version().await?;
            Ok::<_, StoreError>((version, self.totals().await))
        };
        match probe.await {
            // In cluster mode the node the store talks to answers but a shard does not: the
            // store is up, degraded; queries needing that shard give `Unavailable`.
            Ok((version, Err(e))) if self.schema.is_clustered() => {
                let mut health = StoreHealth::new(self.backend_name(), true, 0, None);
                health
                    .details
                    .insert("server_version".into(), version.into());
                health.degraded = true;
                health.error = Some(e.public_message());
                health
            }
            Ok((_, Err(e))) | Err(e) => {
                StoreHealth::unreachable(self.backend_name(), e.public_message())
            }
            Ok((version, Ok((total, last)))) => {
                let mut health = StoreHealth::new(self.backend_name(), true, total, last);
                health
                    .details
                    .insert("server_version".into(), version.into());
                health
            }
        }
    }

    /// Cluster mode: every node's health in the details, and the store degraded, naming the
    /// nodes down, when one is.
    async fn add_cluster_health(&self, health: &mut StoreHealth, cluster: &str) {
        let nodes = self.node_health().await;
        let up = nodes.iter().filter(|n| n["up"] == true).count();
        if health.connected && up < nodes.len() {
            // Queries still answer while every shard has a replica up; say which node is
            // down either way.
            health.degraded = true;
            let down: Vec<String> = nodes
                .iter()
                .filter(|n| n["up"] != true)
                .map(|n| {
                    format!(
                        "shard {} replica {} ({}) is down",
                        n["shard"],
                        n["replica"],
                        n["url"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let summary = format!(
                "{} of {} nodes down: {}",
                down.len(),
                nodes.len(),
                down.join("; ")
            );
            health.error = Some(match health.error.take() {
                Some(error) => format!("{summary}; {error}"),
                None => summary,
            });
        }
        health.details.insert("cluster".into(), cluster.into());
        health
            .details
            .insert("replicated".into(), self.schema.is_replicated().into());
        health.details.insert("nodes_up".into(), up.into());
        health
            .details
            .insert("nodes_total".into(), nodes.len().into());
        health.details.insert("nodes".into(), nodes.into());
    }

    /// What the store itself keeps: its race checks, its partly stored events and their
    /// repairs, where it writes.
    fn add_store_details(&self, health: &mut StoreHealth) {
        health
            .details
            .insert("race_checks".into(), self.race_checks.details());
        health.details.insert(
            "partly_stored_events".into(),
            self.partial.partly_stored().into(),
        );
        let (repairs, waiting) = self.partial.repairs();
        health
            .details
            .insert("partly_stored_repairs".into(), repairs.into());
        health
            .details
            .insert("partly_stored_waiting".into(), waiting.into());
        health
            .details
            .insert("url".into(), self.origin.clone().into());
        health
            .details
            .insert("database".into(), self.schema.database().into());
    }

    /// Stored events and the newest event time: the total and the newest hour from the hourly
    /// counts, then the newest time within that hour from `events` (one hour read, not all).
    async fn totals(&self) -> Result<(u64, Option<chrono::DateTime<Utc>>), StoreError> {
        let totals = self
            .run(
                self.schema
                    .q_health_totals(&self.client)
                    .fetch_one::<TotalsRow>(),
            )
            .await?;
        if totals.n == 0 {
            return Ok((0, None));
        }
        let last = self
            .run(
                self.schema
                    .q_last_event_since(&self.client, totals.last_hour)
                    .fetch_one::<u32>(),
            )
            .await?;
        Ok((totals.n, utc_from_timestamp(i64::from(last))))
    }
}
