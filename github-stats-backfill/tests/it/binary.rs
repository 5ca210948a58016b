//! The real binary: exit codes, the dotenv file, and Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use github_stats_core::{MemoryStore, MetricsQuery};

use crate::common::{Expected, data};

/// The binary, run in `cwd`, with none of the variables it reads inherited from the test's
/// environment.
fn backfill(cwd: &Path) -> Command {
    without_settings(Command::new(BIN), cwd)
}

const BIN: &str = env!("CARGO_BIN_EXE_github-stats-backfill");

/// `cmd`, run in `cwd`, without the variables the binary reads.
fn without_settings(mut cmd: Command, cwd: &Path) -> Command {
    cmd.current_dir(cwd);
    for var in [
        "DATABASE_BACKEND",
        "DATA_DIR",
        "EVENTS_DIRECTORY",
        "RUST_LOG",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "CLICKHOUSE_URL",
        "CLICKHOUSE_HOST",
        "CLICKHOUSE_PORT",
        "CLICKHOUSE_DATABASE",
        "CLICKHOUSE_USER",
        "CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_CLUSTER",
        "CLICKHOUSE_CLUSTER_NODES",
        "CLICKHOUSE_REPLICATED",
        "REQUEST_TIMEOUT_SECS",
        "GHARCHIVE_URL",
        "GHARCHIVE_MISSING_AFTER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn stored_events(data_dir: &Path) -> u64 {
    MemoryStore::open(data_dir)
        .unwrap()
        .total_events()
        .await
        .unwrap()
}

#[test]
fn usage_errors_exit_with_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--no-such-flag"][..],
        &["--batch-size", "0"],
        &["--batch-size", "many"],
        &["--jobs", "0"],
        &["--backend", "nosql"],
        &["--log-format", "xml"],
        &["--dotenv", "missing.env"],
        &["--recount"], // a ClickHouse operation, with the memory backend
    ] {
        let out = output(backfill(dir.path()).args(args));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!out.stderr.is_empty(), "{args:?} says what is wrong");
    }
    let out = output(backfill(dir.path()).env("DATABASE_BACKEND", "nosql"));
    assert_eq!(out.status.code(), Some(2), "a bad DATABASE_BACKEND");
    let out = output(backfill(dir.path()).arg("--help"));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--dry-run"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// `LOG_FORMAT=json`: every line of stderr is a JSON object with the time, level, target,
/// message and fields (no progress bar), and the ClickHouse password is in none.
#[tokio::test(flavor = "multi_thread")]
async fn json_log_lines_carry_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Expected::default();
    expected.add_file(&data("gharchive/2015-01-01-12.json.gz"));
    let out = output(
        backfill(dir.path())
            .env("LOG_FORMAT", "json")
            .env("CLICKHOUSE_PASSWORD", "planted-backfill-password")
            .env("DATA_DIR", "store")
            .arg(data("gharchive/2015-01-01-12.json.gz")),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("planted-backfill-password"), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for event in &events {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(event[field].is_string(), "{field}: {event}");
        }
    }
    let done = events
        .iter()
        .find(|e| e["message"] == "backfill done")
        .unwrap_or_else(|| panic!("no summary line: {stderr}"));
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["inserted"], expected.distinct.len() as u64);
    assert_eq!(done["files"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_code_0_when_every_file_is_read_and_1_when_some_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Expected::default();
    expected.add_file(&data("gharchive/2015-01-01-0.json.gz"));
    expected.add_file(&data("gharchive/2015-01-01-12.json.gz"));

    let out = output(
        backfill(dir.path())
            .env("DATA_DIR", "store")
            .arg(data("gharchive")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("backfill finished"));
    assert_eq!(
        stored_events(&dir.path().join("store")).await,
        expected.distinct.len() as u64
    );

    let missing = dir.path().join("2015-01-01-13.json.gz");
    let out = output(
        backfill(dir.path())
            .args(["--data-dir", "store"])
            .arg(data("gharchive"))
            .arg(&missing),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&missing.display().to_string()), "{stdout}");
    assert_eq!(
        stored_events(&dir.path().join("store")).await,
        expected.distinct.len() as u64,
        "the re-run added nothing"
    );

    // No FILES and no events directory: nothing to import is an error, not a success.
    let out = output(backfill(dir.path()).env("DATA_DIR", "store"));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("downloaded-events"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dotenv_file_supplies_the_environment_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("saved");
    std::fs::create_dir(&events).unwrap();
    std::fs::copy(
        data("api-responses/events-2020-04-25/01.body.json"),
        events.join("2020-04-25T10-00-00.json"),
    )
    .unwrap();
    let mut expected = Expected::default();
    expected.add_file(&events.join("2020-04-25T10-00-00.json"));
    assert!(!expected.distinct.is_empty());

    // The default gh.env: its EVENTS_DIRECTORY and DATA_DIR are used.
    std::fs::write(
        dir.path().join("gh.env"),
        "EVENTS_DIRECTORY=saved\nDATA_DIR=from-default-dotenv\n",
    )
    .unwrap();
    let out = output(&mut backfill(dir.path()));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        stored_events(&dir.path().join("from-default-dotenv")).await,
        expected.distinct.len() as u64
    );

    // A named dotenv file; a variable already in the environment wins over it.
    std::fs::write(
        dir.path().join("other.env"),
        "EVENTS_DIRECTORY=saved\nDATA_DIR=from-named-dotenv\n",
    )
    .unwrap();
    let out = output(backfill(dir.path()).args(["--dotenv", "other.env"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        dir.path()
            .join("from-named-dotenv")
            .join("events.log")
            .exists()
    );
    let out = output(
        backfill(dir.path())
            .args(["--dotenv", "other.env"])
            .env("DATA_DIR", "from-environment"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        dir.path()
            .join("from-environment")
            .join("events.log")
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_after_the_current_batch_and_a_rerun_completes_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let hour = crate::common::plain_bytes(&data("gharchive/2015-01-01-12.json.gz"));
    let mut expected = Expected::default();
    expected.add_document(&hour);

    // The first run reads a named pipe that the test feeds with half the hour and then keeps
    // open: the import is certainly in the middle when Ctrl-C arrives.
    let fifo = dir.path().join("2015-01-01-12.json");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let mut child = backfill(dir.path())
        .args([
            "--batch-size",
            "100",
            "--chunk-bytes",
            "4096",
            "--jobs",
            "1",
        ])
        .arg(&fifo)
        .env("LOG_LEVEL", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stderr_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut pipe = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let half = hour.len() / 2;
    pipe.write_all(&hour[..half]).unwrap();
    loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a batch is stored within a minute");
        if line.contains("batch stored") {
            break;
        }
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    drop(pipe);
    let stderr = stderr_reader.join().unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        text(&out.stdout).contains("interrupted"),
        "{}",
        text(&out.stdout)
    );
    assert!(stderr.contains("interrupt"), "{stderr}");

    let data_dir = dir.path().join("data");
    let partial = stored_events(&data_dir).await;
    assert!(partial > 0, "the batches before Ctrl-C are stored");
    assert!(
        partial < expected.distinct.len() as u64,
        "only part of the hour was fed: {partial}"
    );

    // The re-run, on the whole hour, completes the work.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(&fifo, &hour).unwrap();
    let out = output(backfill(dir.path()).arg(&fifo));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        stored_events(&data_dir).await,
        expected.distinct.len() as u64
    );
}

/// Issue #15: `--help` must not print the environment's values of the settings that carry
/// secrets (the password, credentials in URLs), while it still shows the others'.
#[test]
fn help_shows_no_secret_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(
        backfill(dir.path())
            .env("CLICKHOUSE_PASSWORD", "planted-help-password")
            .env("CLICKHOUSE_URL", "http://reader:planted-ch-url@db:8123")
            .env(
                "CLICKHOUSE_CLUSTER_NODES",
                "http://r:planted-node-a@a:8123,http://r:planted-node-b@b:8123",
            )
            .env(
                "GHARCHIVE_URL",
                "https://m:planted-archive-url@mirror.example",
            )
            .env("CLICKHOUSE_USER", "shown-user")
            .arg("--help"),
    );
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for name in [
        "CLICKHOUSE_PASSWORD",
        "CLICKHOUSE_URL",
        "CLICKHOUSE_CLUSTER_NODES",
        "GHARCHIVE_URL",
    ] {
        assert!(help.contains(&format!("[env: {name}]")), "{name}: {help}");
    }
    assert!(!help.contains("planted"), "{help}");
    assert!(help.contains("[env: CLICKHOUSE_USER=shown-user]"), "{help}");
}

/// Issue #13: the settings the server and the backfill share are read and checked the same
/// way (github-stats-cli): a bad `CLICKHOUSE_DATABASE` and replication without a cluster are
/// usage errors (exit 2, one line each) before anything is opened, and `--clickhouse-replicated`
/// is a switch in both binaries (it used to take a value here, which swallowed the next
/// argument).
#[test]
fn clickhouse_settings_are_checked_before_starting_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let run = |command: &mut Command| {
        let out = output(command.args(["--backend", "clickhouse"]));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        stderr.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let lines = run(backfill(dir.path()).env("CLICKHOUSE_DATABASE", "1db"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("github-stats-backfill: invalid CLICKHOUSE_DATABASE '1db', expected"),
        "{lines:?}"
    );
    let file = data("gharchive/2015-01-01-12.json.gz");
    for replicated in [
        backfill(dir.path())
            .arg("--clickhouse-replicated")
            .arg(&file),
        backfill(dir.path())
            .env("CLICKHOUSE_REPLICATED", "true")
            .arg(&file),
    ] {
        let lines = run(replicated);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("invalid CLICKHOUSE_REPLICATED")
                && lines[0].contains("only with CLICKHOUSE_CLUSTER"),
            "{lines:?}"
        );
    }
    let lines = run(backfill(dir.path())
        .env("CLICKHOUSE_REPLICATED", "true")
        .env("CLICKHOUSE_DATABASE", "x-y")
        .arg("--clickhouse-replicated=false")
        .arg(&file));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("CLICKHOUSE_DATABASE 'x-y'"), "{lines:?}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// Issue #13: `CLICKHOUSE_PORT` alone means that port on localhost, in the server as here.
#[test]
fn a_clickhouse_port_alone_is_honoured_on_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = output(
        backfill(dir.path())
            .env("CLICKHOUSE_PORT", port.to_string())
            .args(["--backend", "clickhouse"])
            .arg(data("gharchive/2015-01-01-12.json.gz")),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("http://localhost:{port}")),
        "{stderr}"
    );
}

/// A store that keeps failing is retried for about half a minute (7 inserts in a row), then
/// the import stops: exit 1, the store's error, and what to do. Here the memory store's disk
/// fails: a file size limit makes every append of events.log fail. A re-run without the
/// fault completes the work.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_keeps_failing_is_given_up_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = data("gharchive/2015-01-01-12.json.gz");
    let mut expected = Expected::default();
    expected.add_document(&crate::common::plain_bytes(&file));
    let mut limited = without_settings(Command::new("sh"), dir.path());
    limited
        .args(["-c", "trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\"", BIN])
        .args(["--batch-size", "500"])
        .arg(&file);
    let out = output(&mut limited);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("the store keeps failing, giving up") && l.contains("failures=7")),
        "{stderr}"
    );
    assert!(
        stderr.contains("run the same command again to complete the import"),
        "{stderr}"
    );

    let out = output(backfill(dir.path()).arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        stored_events(&dir.path().join("data")).await,
        expected.distinct.len() as u64
    );
}

/// File names come from outside: a name holding a line break and an escape sequence stays on
/// its line, escaped, in the log (text, the default) and in the summary.
#[tokio::test(flavor = "multi_thread")]
async fn file_names_with_control_characters_forge_no_lines() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("inputs");
    std::fs::create_dir(&inputs).unwrap();
    let forged = "\nFORGED 2026-01-01T00:00:00Z  INFO done\r\u{1b}[31m";
    // A file with a bad line (listed in the summary), and a `.gz` that is not gzip (warned
    // about, and listed as failed).
    let with_bad_line = inputs.join(format!("bad{forged}.json"));
    let good = r#"{"id":"1","type":"WatchEvent","repo":{"id":1,"name":"a/b"},"payload":{"action":"started"},"created_at":"2020-01-01T00:00:00Z"}"#;
    std::fs::write(&with_bad_line, format!("{good}\nnot json\n")).unwrap();
    let not_gzip = inputs.join(format!("cut{forged}.json.gz"));
    std::fs::write(&not_gzip, b"plain text").unwrap();

    let out = output(
        backfill(dir.path())
            .env("DATA_DIR", "store")
            .arg(&with_bad_line)
            .arg(&not_gzip),
    );
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (name, output) in [("stderr", &stderr), ("stdout", &stdout)] {
        assert!(!output.contains('\u{1b}'), "raw ESC in {name}: {output:?}");
        assert!(!output.contains('\r'), "raw CR in {name}: {output:?}");
        assert!(
            !output.lines().any(|l| l.starts_with("FORGED")),
            "a forged line in {name}: {output}"
        );
    }
    let escaped = "\\nFORGED 2026-01-01T00:00:00Z  INFO done\\r\\u{1b}[31m";
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("cannot read file, skipped") && l.contains(escaped)),
        "the warning names the file, escaped: {stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&format!("cut{escaped}.json.gz: "))),
        "the failed file, escaped: {stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&format!("bad{escaped}.json: 1 bad lines"))),
        "the file with a bad line, escaped: {stdout}"
    );
    assert_eq!(stored_events(&dir.path().join("store")).await, 1);
}
