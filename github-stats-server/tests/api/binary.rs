//! The real binary, end to end: exit code 2 on bad configuration, serving over a socket with the
//! address read from its log, SIGTERM within 10 s, and a restart with the same `DATA_DIR`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use github_stats_core::fake_github::{FakeGitHub, Reply};

use crate::helpers::{KEPT, at, fake_github_serving_recorded_events, served_events};
use crate::lifecycle::{prepare_data_dir, probe_all};

const BIN: &str = env!("CARGO_BIN_EXE_github-stats-server");

/// The binary with a clean environment: only what the test sets.
fn command() -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().env("LOG_LEVEL", "info");
    command
}

/// A running server and everything it logged.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts the binary on port 0 and waits for its `listening address=…` line.
    pub(crate) fn start(mut command: Command) -> Server {
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
                if let Some(address) = listening_address(&line) {
                    let _ = tx.send(address);
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
    pub(crate) fn stop(mut self) -> String {
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

    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// The address of the server's `listening` line, in either log format.
fn listening_address(line: &str) -> Option<String> {
    if line.starts_with('{') {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        if event["message"] != "listening" {
            return None;
        }
        return event["address"].as_str().map(str::to_owned);
    }
    let rest = line.split("listening address=").nth(1)?;
    Some(rest.split_whitespace().next().unwrap_or("").to_owned())
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

/// The kept events the fake GitHub serves, distinct by id: `(type, repo, created_at)`.
pub(crate) fn served_kept() -> Vec<(String, String, chrono::DateTime<chrono::Utc>)> {
    let mut seen = std::collections::HashSet::new();
    served_events()
        .into_iter()
        .filter(|e| KEPT.contains(&e["type"].as_str().unwrap_or_default()))
        .filter(|e| seen.insert(e["id"].as_str().unwrap().to_owned()))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["repo"]["name"].as_str().unwrap().to_owned(),
                at(e["created_at"].as_str().unwrap()),
            )
        })
        .collect()
}

pub(crate) async fn get_json(url: &str) -> serde_json::Value {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().await.unwrap()
}

/// Waits until `GET url` gives `expected` at the JSON pointer `field`, for at most 20 s.
pub(crate) async fn wait_for(url: &str, field: &str, expected: u64, server: &Server) {
    let started = Instant::now();
    loop {
        let body = get_json(url).await;
        if body.pointer(field) == Some(&expected.into()) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url}: {field} is {:?} not {expected}: {}",
            body.pointer(field),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts the binary polling a fake GitHub into `backend`, checks the metrics of what it
/// stored, restarts it, and checks that the answers stay and the ETag is reused.
async fn polls_fake_github_into(backend_env: &[(&str, String)]) {
    let fake = fake_github_serving_recorded_events().await;
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut command = command();
        command
            .env("GITHUB_API_URL", fake.url())
            .env("DATA_DIR", dir.path().join("data"))
            .env(
                "CLIENT_STATE_FILE",
                dir.path().join("state/client-state.json"),
            )
            .env("SAVE_EVENTS_TO_FILES", "true")
            .env("EVENTS_DIRECTORY", dir.path().join("raw"));
        for (name, value) in backend_env {
            command.env(name, value);
        }
        Server::start(command)
    };
    let kept = served_kept();
    assert!(kept.len() >= 5, "the fake serves kept events");

    let server = start();
    let base = server.base.clone();
    // Stored once the ingest loop's insert has returned (ClickHouse makes the events table
    // visible a moment before the aggregates its materialized views feed).
    wait_for(
        &format!("{base}/health"),
        "/ingest/inserted",
        kept.len() as u64,
        &server,
    )
    .await;

    // Events by type in the hour before the newest event (inclusive of it).
    let newest = kept.iter().map(|e| e.2).max().unwrap();
    let until = newest + chrono::Duration::seconds(1);
    let since = until - chrono::Duration::minutes(60);
    let query = format!(
        "{base}/metrics/events?offset=60&until={}",
        until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let events = get_json(&query).await;
    let mut in_window = 0;
    for t in KEPT {
        let expected = kept
            .iter()
            .filter(|e| e.0 == t && since <= e.2 && e.2 < until)
            .count() as u64;
        in_window += expected;
        assert_eq!(events["event_counts"][t], expected, "{t}: {events}");
    }
    assert!(in_window > 0);
    // Per repository.
    let repo = &kept.iter().find(|e| e.0 == "PullRequestEvent").unwrap().1;
    let repo_events = get_json(&format!("{base}/debug/repo-events/{repo}")).await;
    let expected = kept.iter().filter(|e| &e.1 == repo).count() as u64;
    assert_eq!(repo_events["event_count"], expected, "{repo_events}");

    // The ingest loop's count was waited for above.
    let health = get_json(&format!("{base}/health")).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert!(
        health["poller"]["counters"]["polls"].as_u64().unwrap() >= 1,
        "{health}"
    );
    assert_eq!(health["ingest"]["inserted"], kept.len() as u64, "{health}");
    let first = probe_fake(&base, &query, repo).await;
    let log = server.stop();
    // SAVE_EVENTS_TO_FILES: the raw answer, every event of it, as a JSON array.
    let saved: Vec<_> = std::fs::read_dir(dir.path().join("raw"))
        .unwrap_or_else(|e| panic!("no raw poll directory ({e}): {log}"))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!saved.is_empty(), "no raw poll file");
    let raw: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
    assert_eq!(raw.len(), served_events().len());
    assert!(
        dir.path().join("state/client-state.json").exists(),
        "no poller state file"
    );
    assert!(fake.answered(200) >= 1);

    // A restart keeps the answers, and polls with the saved ETag (a 304: nothing new).
    let server = start();
    let base = server.base.clone();
    let query = query.replace(&first.0, &base);
    assert_eq!(probe_fake(&base, &query, repo).await.1, first.1);
    let started = Instant::now();
    while fake.answered(304) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no conditional poll after the restart: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(
        &format!("{base}/debug/total-events"),
        "/total_events",
        kept.len() as u64,
        &server,
    )
    .await;
    server.stop();
}

async fn probe_fake(base: &str, query: &str, repo: &str) -> (String, Vec<serde_json::Value>) {
    let mut answers = Vec::new();
    for url in [
        format!("{base}/debug/total-events"),
        query.to_owned(),
        format!("{base}/debug/repo-events/{repo}"),
        format!("{base}/metrics/pr-average/{repo}"),
        format!("{base}/debug/repos-by-event-count?limit=5"),
    ] {
        answers.push(get_json(&url).await);
    }
    (base.to_owned(), answers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_polls_a_fake_github_into_the_memory_store() {
    polls_fake_github_into(&[("DATABASE_BACKEND", "memory".to_owned())]).await;
}

/// The same against the ClickHouse of `scripts/test.sh` (`CLICKHOUSE_URL`); without that
/// variable there is no server to use and the test has nothing to check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_polls_a_fake_github_into_clickhouse() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("CLICKHOUSE_URL is not set: scripts/test.sh runs this test against ClickHouse");
        return;
    };
    let database = format!("github_stats_server_e2e_{}", std::process::id());
    polls_fake_github_into(&[
        ("DATABASE_BACKEND", "clickhouse".to_owned()),
        ("CLICKHOUSE_URL", url.clone()),
        ("CLICKHOUSE_DATABASE", database.clone()),
    ])
    .await;
    let dropped = reqwest::Client::new()
        .post(&url)
        .body(format!("DROP DATABASE IF EXISTS {database}"))
        .send()
        .await
        .unwrap();
    assert!(dropped.status().is_success());
}

/// The same through the two-shard ClickHouse cluster of `scripts/test.sh`
/// (`CLICKHOUSE_CLUSTER_NAME`, `CLICKHOUSE_CLUSTER_URLS`), in cluster mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_polls_a_fake_github_into_a_clickhouse_cluster() {
    let (Ok(cluster), Ok(urls)) = (
        std::env::var("CLICKHOUSE_CLUSTER_NAME"),
        std::env::var("CLICKHOUSE_CLUSTER_URLS"),
    ) else {
        eprintln!(
            "CLICKHOUSE_CLUSTER_NAME/CLICKHOUSE_CLUSTER_URLS are not set: scripts/test.sh runs \
             this test against a ClickHouse cluster"
        );
        return;
    };
    let database = format!("github_stats_server_cluster_e2e_{}", std::process::id());
    let first = urls.split(',').next().unwrap().to_owned();
    polls_fake_github_into(&[
        ("DATABASE_BACKEND", "clickhouse".to_owned()),
        ("CLICKHOUSE_URL", first),
        ("CLICKHOUSE_DATABASE", database.clone()),
        ("CLICKHOUSE_CLUSTER", cluster),
        ("CLICKHOUSE_CLUSTER_NODES", urls.clone()),
    ])
    .await;
    for url in urls.split(',') {
        let counted = reqwest::Client::new()
            .post(url)
            .body(format!("SELECT count() FROM {database}.events_local"))
            .send()
            .await
            .unwrap();
        assert!(counted.status().is_success(), "{database} on {url}");
        let dropped = reqwest::Client::new()
            .post(url)
            .body(format!("DROP DATABASE IF EXISTS {database}"))
            .send()
            .await
            .unwrap();
        assert!(dropped.status().is_success());
    }
}

#[test]
fn an_unreachable_clickhouse_at_start_is_waited_for_not_fatal() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = command()
        .env("DATABASE_BACKEND", "clickhouse")
        .env("CLICKHOUSE_URL", format!("http://127.0.0.1:{port}"))
        .env("CLICKHOUSE_PASSWORD", "s3cret-pw")
        .args(["--no-poll", "--bind-address", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut retries = Vec::new();
    while retries.len() < 2 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200))
            && line.contains("clickhouse unreachable at start, retrying")
        {
            retries.push(line);
        }
    }
    assert_eq!(retries.len(), 2, "two retries logged: {retries:?}");
    assert!(
        retries.iter().all(|l| !l.contains("s3cret-pw")),
        "{retries:?}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the server gave up instead of waiting for ClickHouse"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// CPU time (user + system) the process `pid` has used so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let output = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    let per_second: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// Issue #15, item 3: idle connections exhaust the server's file descriptors (a shell lowers
/// its limit to 40 before becoming the server); accepting then fails with `EMFILE`. The server
/// backs off instead of spinning, and answers as soon as the connections go away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_neither_spins_nor_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("/bin/sh");
    command
        .env_clear()
        .env("LOG_LEVEL", "info")
        .env("DATA_DIR", dir.path())
        // Caps and timeouts far away: only the descriptors run out.
        .env("MAX_CONNECTIONS", "1000")
        .env("HEADER_READ_TIMEOUT_SECS", "600")
        .env("IDLE_TIMEOUT_SECS", "600")
        .args(["-c", "ulimit -n 40 && exec \"$0\" \"$@\"", BIN, "--no-poll"]);
    let server = Server::start(command);
    let pid = server.child.id();
    let address = server.base.trim_start_matches("http://").to_owned();
    assert!(
        server.log().contains("near the open-file limit"),
        "no warning about MAX_CONNECTIONS over ulimit -n: {}",
        server.log()
    );

    let mut flood = Vec::new();
    for _ in 0..80 {
        flood.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let started = Instant::now();
    while !server
        .log()
        .contains("cannot accept connections, backing off")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "descriptors never ran out: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Out of descriptors, for two seconds: a loop retrying accept at once burns a whole core.
    let (cpu_before, wall_before) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu, wall) = (cpu_time(pid) - cpu_before, wall_before.elapsed());
    assert!(
        cpu < wall / 4,
        "the server used {cpu:?} of CPU in {wall:?} while out of descriptors"
    );

    // The flood ends: the next request is answered.
    drop(flood);
    let health = reqwest::Client::new()
        .get(format!("{}/health", server.base))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no answer after the flood ({e}): {}", server.log()));
    assert_eq!(health.status(), 200);
    let log = server.stop();
    assert!(log.contains("accepting connections again"), "{log}");
}

#[test]
fn a_bad_log_format_or_cors_origin_exits_2_with_one_line_each() {
    let output = command()
        .env("LOG_FORMAT", "xml")
        .env(
            "CORS_ALLOW_ORIGINS",
            "https://ok.example,dashboard.example.com",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.ends_with("invalid LOG_FORMAT 'xml', expected text or json")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("CORS_ALLOW_ORIGINS entry 'dashboard.example.com'")),
        "{stderr}"
    );
}

/// Issue #14: with `LOG_FORMAT=json` every line is one JSON object with the time, the level,
/// the target, the message and the event's fields; scrapes of `/metrics` are logged at `debug`,
/// other requests at `info`; and secrets planted in the configuration (the token, the
/// ClickHouse password, credentials in URLs) appear in no line, in either format, even at
/// `debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_fields_and_neither_format_logs_a_secret() {
    const SECRETS: [&str; 4] = [
        "ghp_PlantedToken1234567890",
        "planted-clickhouse-password",
        "planted-url-user",
        "planted-url-password",
    ];
    let fake = fake_github_serving_recorded_events().await;
    let kept = served_kept();
    for format in ["json", "text"] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = command();
        command
            .env("LOG_FORMAT", format)
            .env("LOG_LEVEL", "debug")
            .env("GITHUB_TOKEN", SECRETS[0])
            .env("CLICKHOUSE_PASSWORD", SECRETS[1])
            .env(
                "CLICKHOUSE_URL",
                format!("http://reader:{}@127.0.0.1:9", SECRETS[1]),
            )
            .env(
                "GITHUB_API_URL",
                fake.url()
                    .replace("http://", &format!("http://{}:{}@", SECRETS[2], SECRETS[3])),
            )
            .env("DATA_DIR", dir.path().join("data"))
            .env("CLIENT_STATE_FILE", dir.path().join("state.json"));
        let server = Server::start(command);
        let base = server.base.clone();
        wait_for(
            &format!("{base}/health"),
            "/ingest/inserted",
            kept.len() as u64,
            &server,
        )
        .await;
        let scrape = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(scrape.status(), 200);
        let log = server.stop();

        for secret in SECRETS {
            assert!(!log.contains(secret), "{format} log shows {secret}: {log}");
        }
        if format == "text" {
            let scrapes: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("request") && l.contains("path=/metrics "))
                .collect();
            assert_eq!(scrapes.len(), 1, "{log}");
            assert!(scrapes[0].contains("DEBUG"), "{}", scrapes[0]);
            continue;
        }

        let events: Vec<serde_json::Value> = log
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
            })
            .collect();
        assert!(events.len() > 5, "{log}");
        for event in &events {
            let time = event["timestamp"].as_str().unwrap_or_default();
            assert!(
                chrono::DateTime::parse_from_rfc3339(time).is_ok(),
                "timestamp: {event}"
            );
            assert!(
                ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
                    .contains(&event["level"].as_str().unwrap_or_default()),
                "level: {event}"
            );
            assert!(event["target"].is_string(), "target: {event}");
            assert!(event["message"].is_string(), "message: {event}");
        }
        let find = |message: &str, path: Option<&str>| -> Vec<&serde_json::Value> {
            events
                .iter()
                .filter(|e| e["message"] == message)
                .filter(|e| path.is_none_or(|p| e["path"] == p))
                .collect()
        };
        // Structured fields beside the message, with their types.
        let listening = find("listening", None)
            .into_iter()
            .find(|e| e["target"] == "github_stats_server::startup")
            .expect("a listening line");
        assert_eq!(
            format!("http://{}", listening["address"].as_str().unwrap()),
            base
        );
        assert_eq!(listening["max_connections"], 512);
        let polled = find("polled github events", None);
        assert!(!polled.is_empty(), "{log}");
        assert_eq!(polled[0]["level"], "INFO");
        assert_eq!(polled[0]["events"], served_events().len() as u64);
        assert_eq!(polled[0]["kept"], kept.len() as u64);
        let health = find("request", Some("/health"));
        assert!(!health.is_empty(), "{log}");
        for line in &health {
            assert_eq!(line["level"], "INFO", "{line}");
            assert_eq!(line["method"], "GET", "{line}");
            assert_eq!(line["route"], "/health", "{line}");
            assert_eq!(line["status"], 200, "{line}");
            assert!(line["latency_us"].is_u64(), "{line}");
        }
        // The scrape: at debug only.
        let scrapes = find("request", Some("/metrics"));
        assert_eq!(scrapes.len(), 1, "{log}");
        assert_eq!(scrapes[0]["level"], "DEBUG");
        assert_eq!(scrapes[0]["status"], 200);
        // The configuration was logged (at debug), redacted.
        let configuration = find("configuration", None);
        assert_eq!(configuration.len(), 1, "{log}");
        let shown = configuration[0]["config"].as_str().unwrap();
        assert!(shown.contains("<redacted>"), "{shown}");
        let fake_url = fake.url();
        let fake_host = fake_url.trim_start_matches("http://");
        assert!(
            shown.contains(&format!("http://<redacted>@{fake_host}")),
            "{shown}"
        );
    }
}

/// Secrets planted in every secret-bearing variable: none may appear in `--help`, which shows
/// the environment's values of the other settings.
const PLANTED: [(&str, &str); 8] = [
    ("GITHUB_TOKEN", "ghp_PlantedHelpToken"),
    ("GITHUB_READ_TOKEN", "ghp_PlantedHelpAlias"),
    ("CLICKHOUSE_PASSWORD", "planted-help-password"),
    (
        "GITHUB_API_URL",
        "https://bot:planted-gh-url@ghe.example/api/v3",
    ),
    ("CLICKHOUSE_URL", "http://reader:planted-ch-url@db:8123"),
    (
        "CLICKHOUSE_CLUSTER_NODES",
        "http://reader:planted-node-a@a:8123,http://reader:planted-node-b@b:8123",
    ),
    (
        "GHARCHIVE_URL",
        "https://mirror:planted-archive-url@mirror.example",
    ),
    ("CLICKHOUSE_USER", "shown-user"),
];

/// Issue #15: `--help` printed the environment's values, credentials in URLs included.
#[test]
fn help_shows_no_secret_from_the_environment() {
    let output = command().envs(PLANTED).arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for (name, value) in &PLANTED[..7] {
        // GITHUB_READ_TOKEN is read by the server itself, not by the command line.
        if *name != "GITHUB_READ_TOKEN" {
            assert!(help.contains(&format!("[env: {name}]")), "{name}: {help}");
        }
        for part in value.split([':', '@', ',']) {
            if part.starts_with("planted") || part.starts_with("ghp_") {
                assert!(!help.contains(part), "--help shows {part}: {help}");
            }
        }
    }
    // The other settings still show what the environment says.
    assert!(help.contains("[env: CLICKHOUSE_USER=shown-user]"), "{help}");
}

/// Issue #13: `CLICKHOUSE_DATABASE=1db` passed the server's check and then failed at start
/// (exit 1), and `--clickhouse-replicated` was a switch here but took a value in the backfill.
/// Both binaries now check the same way (github-stats-cli): exit 2, one line each.
#[test]
fn clickhouse_settings_are_checked_before_starting_one_line_each() {
    let run = |command: &mut Command| {
        let output = command
            .env("DATABASE_BACKEND", "clickhouse")
            .arg("--no-poll")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        stderr.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let lines = run(command().env("CLICKHOUSE_DATABASE", "1db"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("github-stats-server: invalid CLICKHOUSE_DATABASE '1db', expected"),
        "{lines:?}"
    );
    for replicated in [
        command().arg("--clickhouse-replicated"),
        command().env("CLICKHOUSE_REPLICATED", "true"),
    ] {
        let lines = run(replicated);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("invalid CLICKHOUSE_REPLICATED")
                && lines[0].contains("only with CLICKHOUSE_CLUSTER"),
            "{lines:?}"
        );
    }
    // `=false` turns off what the environment turned on: only the database is wrong then.
    let lines = run(command()
        .env("CLICKHOUSE_REPLICATED", "true")
        .env("CLICKHOUSE_DATABASE", "x-y")
        .arg("--clickhouse-replicated=false"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("CLICKHOUSE_DATABASE 'x-y'"), "{lines:?}");
}

/// Issue #13: `CLICKHOUSE_PORT` without `CLICKHOUSE_HOST` was ignored by the server, which
/// connected to 8123 (the backfill honoured it). Now: that port on localhost.
#[test]
fn a_clickhouse_port_alone_is_honoured_on_localhost() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = command()
        .env("DATABASE_BACKEND", "clickhouse")
        .env("CLICKHOUSE_PORT", port.to_string())
        .args(["--no-poll", "--bind-address", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let retry = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(15))
            .expect("a retry line within 15 s");
        if line.contains("clickhouse unreachable at start, retrying") {
            break line;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        retry.contains(&format!("http://localhost:{port}")),
        "{retry}"
    );
}

/// An error body from GitHub holding a line break, a carriage return and an escape sequence is
/// logged on one line, escaped: nothing forges a log line or reaches the terminal raw.
#[tokio::test(flavor = "multi_thread")]
async fn a_github_error_body_forges_no_log_line() {
    let forged = "boom\nFORGED 2026-01-01T00:00:00Z  INFO listening\r\u{1b}[31mred";
    let body = serde_json::to_vec(&serde_json::json!({ "message": forged })).unwrap();
    // The same error for every poll.
    let fake = FakeGitHub::start(vec![]).await;
    fake.set_fallback(
        Reply::new(500)
            .header("Content-Type", "application/json")
            .body(body),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut command = command();
    command
        .env("GITHUB_API_URL", fake.url())
        .env("DATA_DIR", dir.path().join("data"))
        .env("CLIENT_STATE_FILE", dir.path().join("state.json"));
    let server = Server::start(command);
    let started = Instant::now();
    while !server.log().contains("poll failed") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no failed poll logged: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Serving, so SIGTERM is handled (the failed poll can be logged before that).
    reqwest::get(format!("{}/health", server.base))
        .await
        .unwrap();
    let log = server.stop();
    assert!(!log.contains('\u{1b}'), "raw ESC in the log: {log:?}");
    assert!(!log.contains('\r'), "raw CR in the log: {log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")),
        "a forged line: {log}"
    );
    assert!(
        log.lines().any(|l| l.contains("poll failed")
            && l.contains("boom\\nFORGED 2026-01-01T00:00:00Z  INFO listening\\r\\u{1b}[31mred")),
        "the error, escaped on its line: {log}"
    );
}

/// A data file that is a symbolic link (to a file outside `DATA_DIR`, or dangling) is refused
/// at start with exit code 1 and a line naming it; nothing is written through it.
#[test]
fn a_data_file_that_is_a_link_is_refused_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for (file, target_exists) in [("events.log", true), ("archive-hours.jsonl", false)] {
        let data = dir.path().join(format!("data-{file}"));
        std::fs::create_dir(&data).unwrap();
        let target = dir.path().join(format!("outside-{file}"));
        if target_exists {
            std::fs::write(&target, b"a file outside DATA_DIR\n").unwrap();
        }
        let link = data.join(file);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut child = command()
            .env("DATA_DIR", &data)
            .args(["--no-poll", "--bind-address", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("{file}: the server started through the link");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{file}: {stderr}");
        assert!(
            stderr.contains(&format!("{} is a symbolic link", link.display())),
            "{file}: {stderr}"
        );
        if target_exists {
            assert_eq!(
                std::fs::read(&target).unwrap(),
                b"a file outside DATA_DIR\n",
                "{file}: written through the link"
            );
        } else {
            assert!(!target.exists(), "{file}: created outside DATA_DIR");
        }
    }
}

/// With neither state file set, both live beside the store's data (DATA_DIR), not in the
/// working directory: a new DATA_DIR starts with new state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_live_beside_the_store_by_default() {
    let fake = fake_github_serving_recorded_events().await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = command();
    command
        .current_dir(dir.path())
        .env("GITHUB_API_URL", fake.url())
        .env("DATA_DIR", dir.path().join("data"));
    let server = Server::start(command);
    let base = server.base.clone();
    wait_for(
        &format!("{base}/health"),
        "/ingest/inserted",
        served_kept().len() as u64,
        &server,
    )
    .await;
    let log = server.stop();
    assert!(dir.path().join("data/client-state.json").is_file(), "{log}");
    assert!(!dir.path().join("state").exists(), "{log}");
}
