//! Real files through a two-shard ClickHouse cluster, when `CLICKHOUSE_CLUSTER_NAME` and
//! `CLICKHOUSE_CLUSTER_URLS` are set (`scripts/test.sh` starts the cluster with
//! `scripts/clickhouse-cluster.sh`). With them set, a cluster that does not answer fails.

use github_stats_backfill::Config;
use github_stats_core::{ClickHouseConfig, ClickHouseStore};

use crate::common::{assert_counts, run};
use crate::real_data::{assert_metrics, expected_of_real_inputs, real_inputs};

fn cluster() -> Option<(String, Vec<String>)> {
    let name = std::env::var("CLICKHOUSE_CLUSTER_NAME")
        .ok()
        .filter(|n| !n.is_empty());
    let urls = std::env::var("CLICKHOUSE_CLUSTER_URLS")
        .ok()
        .filter(|u| !u.is_empty());
    match (name, urls) {
        (Some(name), Some(urls)) => Some((name, urls.split(',').map(str::to_owned).collect())),
        _ => {
            eprintln!(
                "CLICKHOUSE_CLUSTER_NAME/CLICKHOUSE_CLUSTER_URLS are not set: the cluster import is tested by scripts/test.sh"
            );
            None
        }
    }
}

/// Rows of `table` on one node, through its HTTP interface.
fn count_on_node(url: &str, table: &str) -> u64 {
    let output = std::process::Command::new("curl")
        .args(["-fsS", url, "--data-binary"])
        .arg(format!("SELECT count() FROM {table}"))
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("a count")
}

#[tokio::test(flavor = "multi_thread")]
async fn real_files_through_a_two_shard_cluster_match_an_independent_count() {
    let Some((name, urls)) = cluster() else {
        return;
    };
    let database = "gs_backfill_cluster";
    let store_config = || {
        ClickHouseConfig::new(&urls[0])
            .with_database(database)
            .with_cluster(&name, urls.clone())
    };
    ClickHouseStore::connect(store_config())
        .await
        .expect("the cluster answers at CLICKHOUSE_CLUSTER_URLS")
        .drop_database()
        .await
        .unwrap();
    let store = ClickHouseStore::connect(store_config()).await.unwrap();
    let expected = expected_of_real_inputs();

    let mut config = Config::new(real_inputs(), store_config().into());
    config.batch_size = 5000;
    let summary = run(config.clone()).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert_counts(&summary, &expected);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
    let again = run(config).await;
    assert_eq!(again.inserted, 0, "{again}");

    assert_metrics(&store, &expected).await;
    // Sharded by repository: both shards hold events, and together exactly the distinct ones.
    let per_node: Vec<u64> = urls
        .iter()
        .map(|url| count_on_node(url, &format!("{database}.events_local")))
        .collect();
    assert!(per_node.iter().all(|&n| n > 0), "{per_node:?}");
    assert_eq!(per_node.iter().sum::<u64>(), expected.distinct.len() as u64);
    store.drop_database().await.unwrap();
}
