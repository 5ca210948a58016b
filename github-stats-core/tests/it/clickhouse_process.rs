//! What the ClickHouse and cluster tests share: SQL over HTTP outside the store, and
//! clickhouse-server processes of a test's own, which it may stop and restart.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Runs one SQL statement on one server over HTTP, outside the store; returns the answer's text.
pub async fn sql(url: &str, query: &str) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .body(query.to_owned())
        .send()
        .await
        .expect("clickhouse answers");
    let status = response.status();
    let text = response.text().await.expect("answer body");
    assert!(status.is_success(), "{query}: {status} {text}");
    text
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A throwaway clickhouse-server on free loopback ports.
pub struct ClickHouseProcess {
    dir: tempfile::TempDir,
    pub http: u16,
    pub tcp: u16,
    inter: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl ClickHouseProcess {
    /// A server with the packaged configuration.
    pub fn new() -> ClickHouseProcess {
        ClickHouseProcess::in_dir(
            tempfile::tempdir().unwrap(),
            PathBuf::from("/etc/clickhouse-server/config.xml"),
        )
    }

    /// A server with a copy of the packaged configuration and a `config.d` of its own, where
    /// [`ClickHouseProcess::declare_cluster`] writes.
    pub fn with_own_config() -> ClickHouseProcess {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc/config.d")).unwrap();
        for file in ["config.xml", "users.xml"] {
            std::fs::copy(
                Path::new("/etc/clickhouse-server").join(file),
                dir.path().join("etc").join(file),
            )
            .expect("clickhouse-server's packaged configuration in /etc/clickhouse-server");
        }
        let config = dir.path().join("etc/config.xml");
        ClickHouseProcess::in_dir(dir, config)
    }

    fn in_dir(dir: tempfile::TempDir, config: PathBuf) -> ClickHouseProcess {
        for sub in ["data", "tmp", "uf", "fs"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        ClickHouseProcess {
            dir,
            http: free_port(),
            tcp: free_port(),
            inter: free_port(),
            config,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Declares the cluster `name` of one shard per native port (needs
    /// [`ClickHouseProcess::with_own_config`]).
    pub fn declare_cluster(&self, name: &str, tcp_ports: &[u16]) {
        let shards: String = tcp_ports
            .iter()
            .map(|p| {
                format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>")
            })
            .collect();
        std::fs::write(
            self.path("etc/config.d/cluster.xml"),
            format!("<yandex><remote_servers><{name}>{shards}</{name}></remote_servers></yandex>"),
        )
        .unwrap();
    }

    /// Starts the process without waiting for it to answer.
    pub fn spawn(&mut self) {
        let arg = |name: &str, value: &Path| format!("--{name}={}/", value.display());
        let child = Command::new("clickhouse-server")
            .arg(format!("--config-file={}", self.config.display()))
            .arg("--")
            .arg(arg("path", &self.path("data")))
            .arg(arg("tmp_path", &self.path("tmp")))
            .arg(arg("user_files_path", &self.path("uf")))
            .arg(arg("format_schema_path", &self.path("fs")))
            .arg(format!("--http_port={}", self.http))
            .arg(format!("--tcp_port={}", self.tcp))
            .arg(format!("--interserver_http_port={}", self.inter))
            .arg("--listen_host=127.0.0.1")
            .arg(format!("--logger.log={}", self.path("log").display()))
            .arg(format!(
                "--logger.errorlog={}",
                self.path("err.log").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server starts (is it installed?)");
        self.child = Some(child);
    }

    /// Waits until the server answers `/ping` (30 s at most).
    pub async fn wait_ready(&self) {
        let ping = format!("{}/ping", self.url());
        for _ in 0..300 {
            if let Ok(r) = reqwest::get(&ping).await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "own clickhouse-server did not answer on {ping}; see {}",
            self.path("err.log").display()
        );
    }

    /// Starts the process and waits for it to answer.
    pub async fn start(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill own clickhouse-server");
            child.wait().expect("reap own clickhouse-server");
        }
    }
}

impl Drop for ClickHouseProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The replicated cluster of `scripts/clickhouse-replicated.sh` (ZooKeeper, two shards of two
/// replicas): `CLICKHOUSE_REPLICATED_CLUSTER_NAME` and `CLICKHOUSE_REPLICATED_CLUSTER_URLS`
/// (s1r1, s1r2, s2r1, s2r2). These tests leave every process running; the ones that stop some
/// (with `CLICKHOUSE_REPLICATED_CTL`) are the server's, in another test binary, which cargo runs
/// after this one.
pub struct Replicated {
    pub name: String,
    pub urls: Vec<String>,
}

/// The replicated cluster, or `None` (with a notice) when `scripts/test.sh` did not start one.
pub fn replicated(test: &str) -> Option<Replicated> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(name), Some(urls)) = (
        var("CLICKHOUSE_REPLICATED_CLUSTER_NAME"),
        var("CLICKHOUSE_REPLICATED_CLUSTER_URLS"),
    ) else {
        eprintln!(
            "notice: CLICKHOUSE_REPLICATED_CLUSTER_NAME/_URLS are not set, skipping the \
             replicated ClickHouse cluster test {test}"
        );
        return None;
    };
    let urls: Vec<String> = urls.split(',').map(|u| u.trim().to_owned()).collect();
    assert_eq!(
        urls.len(),
        4,
        "CLICKHOUSE_REPLICATED_CLUSTER_URLS: two shards of two replicas expected"
    );
    Some(Replicated { name, urls })
}
