//! Real files into ClickHouse, when `CLICKHOUSE_URL` is set (`scripts/test.sh` starts a
//! throwaway server and sets it). Each test works in a fresh database named after it. With the
//! variable set, a server that does not answer fails the tests.

use github_stats_backfill::Config;
use github_stats_core::MetricsQuery;
use github_stats_core::{ClickHouseConfig, ClickHouseStore};

use crate::common::{assert_counts, run};
use crate::real_data::{assert_metrics, expected_of_real_inputs, real_inputs};

fn url() -> Option<String> {
    let url = std::env::var("CLICKHOUSE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!("CLICKHOUSE_URL is not set: the ClickHouse import is tested by scripts/test.sh");
    }
    url
}

/// Connects to `database` after dropping whatever a previous run left there.
async fn fresh_database(url: &str, database: &str) -> ClickHouseStore {
    let config = || ClickHouseConfig::new(url).with_database(database);
    ClickHouseStore::connect(config())
        .await
        .expect("ClickHouse answers at CLICKHOUSE_URL")
        .drop_database()
        .await
        .unwrap();
    ClickHouseStore::connect(config()).await.unwrap()
}

fn clickhouse_config(url: &str, database: &str) -> Config {
    let mut config = Config::new(
        real_inputs(),
        ClickHouseConfig::new(url).with_database(database).into(),
    );
    config.chunk_bytes = 256 * 1024;
    config.batch_size = 2000;
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn real_files_into_clickhouse_match_an_independent_count_and_a_rerun_adds_nothing() {
    let Some(url) = url() else { return };
    let database = "gs_backfill_real_files";
    let store = fresh_database(&url, database).await;
    let expected = expected_of_real_inputs();

    let summary = run(clickhouse_config(&url, database)).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert_eq!(summary.backend, "clickhouse");
    assert_counts(&summary, &expected);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
    assert!(summary.batches > 1);

    let again = run(clickhouse_config(&url, database)).await;
    assert_eq!(again.inserted, 0, "{again}");
    assert_eq!(again.duplicates, expected.kept_total());

    assert_metrics(&store, &expected).await;
    store.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_with_the_clickhouse_backend_creates_nothing() {
    let Some(url) = url() else { return };
    let database = "gs_backfill_dry_run";
    fresh_database(&url, database)
        .await
        .drop_database()
        .await
        .unwrap();
    let mut config = clickhouse_config(&url, database);
    config.dry_run = true;
    let summary = run(config).await;
    assert_eq!(summary.exit_code(), 0);
    assert!(summary.dry_run);
    let exists: String = http_query(
        &url,
        &format!("SELECT count() FROM system.databases WHERE name = '{database}'"),
    );
    assert_eq!(exists.trim(), "0", "a dry run creates no database");
}

/// A query over ClickHouse's HTTP interface with nothing but std (the answer as text).
fn http_query(url: &str, sql: &str) -> String {
    use std::io::{Read, Write};
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{sql}",
        sql.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn recount_makes_counts_exact_after_two_writers_raced() {
    let Some(url) = url() else { return };
    let database = "gs_backfill_recount";
    let store = fresh_database(&url, database).await;
    let expected = expected_of_real_inputs();
    let summary = run(clickhouse_config(&url, database)).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert!(!summary.recounted);
    // What two writers inserting the same events at the same moment leave: every row twice,
    // counted twice by the views.
    http_query(
        &url,
        &format!("INSERT INTO {database}.events SELECT * FROM {database}.events"),
    );
    assert_eq!(
        store.total_events().await.unwrap(),
        2 * expected.distinct.len() as u64
    );

    // `--recount` alone: no input, the count tables rebuilt from the merged events.
    let mut config = clickhouse_config(&url, database);
    config.inputs.clear();
    config.recount = true;
    let summary = run(config).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert!(summary.recounted);
    assert!(summary.to_string().contains("recounted"), "{summary}");
    assert_eq!(summary.inserted, 0);
    assert_metrics(&store, &expected).await;
}
