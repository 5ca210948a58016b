//! The real binary, end to end: exit code 2 on bad configuration, serving over a socket with the
//! address read from its log, SIGTERM within 10 s, and a restart with the same `DATA_DIR`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::lifecycle::{prepare_data_dir, probe_all};

const BIN: &str = env!("CARGO_BIN_EXE_github-stats-server");

/// The binary with a clean environment: only what the test sets.
fn command() -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().env("LOG_LEVEL", "info");
    command
}

/// A running server and everything it logged.
struct Server {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary on port 0 and waits for its `listening address=…` line.
    fn start(mut command: Command) -> Server {
        let mut child = command
            .args(["--bind-address", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening address=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let address = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no listening line: {}", log.lock().unwrap()));
        Server {
            child,
            base: format!("http://{address}"),
            log,
        }
    }

    /// SIGTERM, then waits; fails unless it exits 0 within 10 s.
    fn stop(mut self) -> String {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit {status}: {}", self.log());
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "not stopped within 10 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let the reader thread drain the last lines.
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path) -> Server {
    let mut command = command();
    command.env("DATA_DIR", data_dir).arg("--no-poll");
    Server::start(command)
}

#[test]
fn bad_configuration_exits_2_with_one_line_per_problem() {
    let output = command()
        .env("DATABASE_BACKEND", "postgres")
        .env("BIND_ADDRESS", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.ends_with("unknown backend 'postgres', expected memory or clickhouse")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("BIND_ADDRESS 'not-an-address'")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 2, "{stderr}");

    let output = command().arg("--no-such-flag").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = command()
        .args(["--dotenv", "/nonexistent.env"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn dotenv_file_configures_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("gh.env");
    std::fs::write(&env_file, "DATABASE_BACKEND=postgres\n").unwrap();
    let output = command().arg("--dotenv").arg(&env_file).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown backend 'postgres'"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_stops_on_sigterm_and_restarts_with_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    prepare_data_dir(dir.path()).await;

    let server = serve(dir.path());
    let base = server.base.clone();
    let first = probe_all(&base).await;
    assert!(first[0]["total_events"].as_u64().unwrap() > 1000);
    let missing = reqwest::get(format!("{base}/no/such/path")).await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].is_string());
    let health: serde_json::Value = reqwest::get(format!("{base}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["total_events"], first[0]["total_events"]);

    let log = server.stop();
    // The access log: method, path, status and latency of each request.
    assert!(
        log.lines().any(|l| l.contains("request")
            && l.contains("method=GET")
            && l.contains("path=/no/such/path")
            && l.contains("status=404")
            && l.contains("latency_us=")),
        "{log}"
    );
    assert!(log.contains("shutdown requested"), "{log}");

    let server = serve(dir.path());
    assert_eq!(
        probe_all(&server.base).await,
        first,
        "restart changed the answers"
    );
    server.stop();
}
