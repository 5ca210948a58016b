//! Cluster mode (`docs/clickhouse.md`, "Cluster mode"): the nodes of the cluster, read from
//! `system.clusters` at connect, and what the store asks of each.

use std::collections::HashSet;
use std::time::Duration;

use clickhouse::Client;
use serde::Deserialize;

use super::{ClickHouseConfig, ClickHouseStore};
use crate::SecretUrl;
use crate::store::StoreError;

#[derive(clickhouse::Row, Deserialize)]
struct ClusterRow {
    shard: u32,
    replica: u32,
    host: String,
    port: u16,
}

/// One node of the cluster (cluster mode).
pub(super) struct Node {
    shard: u32,
    replica: u32,
    /// Host and native port, as in `system.clusters`.
    host: String,
    port: u16,
    /// Its HTTP interface, without credentials.
    pub(super) origin: String,
    pub(super) client: Client,
}

impl Node {
    /// Whether this node is the first replica of its shard (`system.clusters` numbers
    /// replicas from 1): the one that fills derived tables in a replicated cluster.
    pub(super) fn is_first_replica(&self) -> bool {
        self.replica <= 1
    }
}

/// Replicated: how far behind its shard a replica may be and still answer the store's reads
/// (`max_replica_delay_for_distributed_queries`, which 18.16 and current releases have).
const MAX_REPLICA_DELAY: Duration = Duration::from_secs(5);

/// How long health waits for one node of the cluster.
const NODE_PING_TIMEOUT: Duration = Duration::from_secs(5);

impl ClickHouseStore {
    /// Cluster mode: reads the cluster's nodes from `system.clusters`, pairs them with their
    /// HTTP URLs, and sets the query settings that bound a shard's failure (and make inserts
    /// through `Distributed` synchronous where the server supports it).
    pub(super) async fn join_cluster(
        &mut self,
        cluster: &str,
        config: &ClickHouseConfig,
    ) -> Result<(), StoreError> {
        let rows = self.cluster_rows(cluster).await?;
        let urls = node_http_urls(&rows, cluster, config)?;
        let (settings, sync) = self.cluster_settings().await?;
        for (name, value) in &settings {
            self.client = self.client.clone().with_setting(*name, value.as_str());
        }
        self.add_nodes(rows, urls)?;
        tracing::info!(
            cluster,
            nodes = self.nodes.len(),
            insert_distributed_sync = sync,
            replicated = self.schema.is_replicated(),
            "clickhouse cluster mode"
        );
        Ok(())
    }

    /// The cluster's nodes as `system.clusters` lists them; an error when it lists none.
    async fn cluster_rows(&self, cluster: &str) -> Result<Vec<ClusterRow>, StoreError> {
        let rows = self
            .run(
                self.schema
                    .q_cluster_nodes(&self.client, cluster)
                    .fetch_all::<ClusterRow>(),
            )
            .await?;
        if rows.is_empty() {
            return Err(StoreError::Config(format!(
                "CLICKHOUSE_CLUSTER {cluster:?} is not a cluster of {}: declare it in the \
                 servers' remote_servers configuration (see system.clusters)",
                self.origin
            )));
        }
        Ok(rows)
    }

    /// The query settings of cluster mode, and whether inserts through `Distributed` are
    /// synchronous (the server has `insert_distributed_sync`).
    async fn cluster_settings(&self) -> Result<(Vec<(&'static str, String)>, bool), StoreError> {
        // Bounded failures: a shard that does not answer fails a query within about the
        // request timeout instead of the default five minutes. Both settings exist in 18.16
        // and current releases.
        let seconds = self.timeout.as_secs().max(1).to_string();
        let mut settings = vec![
            ("receive_timeout", seconds.clone()),
            ("send_timeout", seconds),
        ];
        // Inserts through `Distributed` are queued and sent in the background by default:
        // make them synchronous so that an insert that succeeds is stored on its shard (and a
        // shard that is down fails the insert instead of piling up a queue).
        let sync = self
            .run(
                self.schema
                    .q_setting_exists(&self.client, "insert_distributed_sync")
                    .fetch_one::<u64>(),
            )
            .await?
            > 0;
        if sync {
            settings.push(("insert_distributed_sync", "1".to_owned()));
        } else {
            tracing::warn!(
                origin = %self.origin,
                "clickhouse lacks insert_distributed_sync: inserts reach the shards asynchronously"
            );
        }
        if self.schema.is_replicated() {
            // Replication is asynchronous: reads must go where the store's own inserts went,
            // or an event just stored may be missing from the next answer (and from the next
            // existence check). Both go to the first replica of each shard that answers
            // (`in_order`; the node the store talks to uses its own replica for its shard),
            // and reads avoid a replica more than a few seconds behind its shard (one that
            // was down and is catching up) while another one is up to date.
            settings.push(("load_balancing", "in_order".to_owned()));
            settings.push((
                "max_replica_delay_for_distributed_queries",
                MAX_REPLICA_DELAY.as_secs().to_string(),
            ));
        }
        Ok((settings, sync))
    }

    /// One [`Node`] per row, each with a copy of the main client (credentials, settings) for
    /// its URL.
    fn add_nodes(&mut self, rows: Vec<ClusterRow>, urls: Vec<SecretUrl>) -> Result<(), StoreError> {
        for (row, url) in rows.into_iter().zip(urls) {
            let parsed = reqwest::Url::parse(url.expose_secret()).map_err(|e| {
                StoreError::Config(format!(
                    "CLICKHOUSE_CLUSTER_NODES entry '{url}' is not a URL: {e}"
                ))
            })?;
            let client = self.client.clone().with_url(url.expose_secret());
            self.nodes.push(Node {
                shard: row.shard,
                replica: row.replica,
                host: row.host,
                port: row.port,
                origin: parsed.origin().ascii_serialization(),
                client,
            });
        }
        Ok(())
    }

    /// Clients of every node holding tables: the cluster's nodes, or the one server.
    pub(super) fn table_holders(&self) -> Vec<(&Client, &str)> {
        if self.nodes.is_empty() {
            vec![(&self.client, self.origin.as_str())]
        } else {
            self.nodes
                .iter()
                .map(|n| (&n.client, n.origin.as_str()))
                .collect()
        }
    }

    /// One node per shard (its first replica, whose inserts replicate to the others), or the
    /// one server.
    pub(super) fn shard_leaders(&self) -> Vec<(&Client, &str)> {
        if self.nodes.is_empty() {
            return vec![(&self.client, self.origin.as_str())];
        }
        let mut seen = HashSet::new();
        self.nodes
            .iter()
            .filter(|n| seen.insert(n.shard))
            .map(|n| (&n.client, n.origin.as_str()))
            .collect()
    }

    /// Cluster mode: which shards an error of the server says it could not reach, from the
    /// native addresses it lists (`All connection tries failed … Connection refused
    /// (HOST:PORT)`, one line per replica tried): `shard 2 (h:p, h:p) has no replica
    /// answering` for a shard whose every replica is listed, else the nodes listed; `None` when
    /// it names none of the cluster's nodes.
    pub(super) fn unreachable_shards(&self, message: &str) -> Option<String> {
        let named = |n: &Node| {
            let address = format!("{}:{}", n.host, n.port);
            message.contains(&format!("({address})")) || message.contains(&format!(" {address}"))
        };
        let mut shards: Vec<u32> = self.nodes.iter().map(|n| n.shard).collect();
        shards.dedup();
        let mut down = Vec::new();
        for shard in shards {
            let nodes: Vec<&Node> = self.nodes.iter().filter(|n| n.shard == shard).collect();
            if nodes.iter().all(|n| named(n)) {
                let addresses: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("{}:{}", n.host, n.port))
                    .collect();
                down.push(format!(
                    "shard {shard} ({}) has no replica answering",
                    addresses.join(", ")
                ));
            }
        }
        if !down.is_empty() {
            return Some(down.join("; "));
        }
        let listed: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| named(n))
            .map(|n| {
                format!(
                    "shard {} replica {} ({}:{})",
                    n.shard, n.replica, n.host, n.port
                )
            })
            .collect();
        (!listed.is_empty()).then(|| format!("{} did not answer", listed.join(", ")))
    }

    /// Cluster mode: the HTTP URLs (without credentials) of the cluster's nodes, in
    /// `system.clusters` order; empty on one server.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.origin.clone()).collect()
    }

    /// Cluster mode: pings every node at once; one JSON object per node, in `system.clusters`
    /// order: `shard`, `replica`, `host`, `port` (native), `url` (HTTP), `up`, and `error`
    /// when down.
    pub(super) async fn node_health(&self) -> Vec<serde_json::Value> {
        let limit = self.timeout.min(NODE_PING_TIMEOUT);
        let pings: Vec<_> = self
            .nodes
            .iter()
            .map(|node| {
                let query = self.schema.q_ping(&node.client);
                tokio::spawn(async move {
                    match tokio::time::timeout(limit, query.fetch_one::<u8>()).await {
                        Ok(Ok(_)) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(_) => Some(format!("no answer within {limit:?}")),
                    }
                })
            })
            .collect();
        let mut out = Vec::with_capacity(pings.len());
        for (node, ping) in self.nodes.iter().zip(pings) {
            let error = ping
                .await
                .unwrap_or_else(|e| Some(format!("health probe failed: {e}")));
            let mut entry = serde_json::json!({
                "shard": node.shard,
                "replica": node.replica,
                "host": node.host,
                "port": node.port,
                "url": node.origin,
                "up": error.is_none(),
            });
            if let Some(error) = error {
                entry["error"] = error.into();
            }
            out.push(entry);
        }
        out
    }
}

/// The HTTP URL of each node of `rows`: `CLICKHOUSE_CLUSTER_NODES` when given (one per node),
/// else each node's host on port 8123 with the main URL's scheme.
fn node_http_urls(
    rows: &[ClusterRow],
    cluster: &str,
    config: &ClickHouseConfig,
) -> Result<Vec<SecretUrl>, StoreError> {
    if config.cluster_nodes.is_empty() {
        let scheme = reqwest::Url::parse(config.url.expose_secret())
            .map(|u| u.scheme().to_owned())
            .unwrap_or_else(|_| "http".to_owned());
        Ok(rows
            .iter()
            .map(|r| {
                SecretUrl::from(if r.host.contains(':') {
                    format!("{scheme}://[{}]:8123", r.host)
                } else {
                    format!("{scheme}://{}:8123", r.host)
                })
            })
            .collect())
    } else if config.cluster_nodes.len() == rows.len() {
        Ok(config.cluster_nodes.clone())
    } else {
        Err(StoreError::Config(format!(
            "CLICKHOUSE_CLUSTER_NODES lists {} URLs but cluster {cluster:?} has {} nodes \
             in system.clusters: give one HTTP URL per node, by shard then replica",
            config.cluster_nodes.len(),
            rows.len()
        )))
    }
}
