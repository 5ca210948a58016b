//! The dashboard in a real browser: Debian's `chromium`, headless, loads the page from the real
//! application on a loopback port (memory store holding a recorded GH Archive hour), runs its
//! script for a few seconds of virtual time, and the DOM it leaves must show the API's numbers,
//! the chart, and no console message. A screenshot is written to `target/dashboard.png`.
//!
//! `scripts/test.sh` installs chromium when missing; `CHROMIUM` may name another binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use github_stats_core::{ArchiveHour, ArchiveStatus, EventStore, MemoryStore};
use github_stats_server::{Application, Config};
use serde_json::Value;

use super::visualization::{HOUR_FILE, busiest_pr_repository, parsed_events, raw_events};

/// The headless browser: `CHROMIUM`, else the first of the usual names on `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "the dashboard test needs a headless chromium: `apt-get install -y chromium` \
         (scripts/test.sh does it), or set CHROMIUM to the browser's path"
    );
}

/// Runs chromium headless on `url` with `extra` flags and a fresh profile; its stdout (the DOM
/// with `--dump-dom`) and stderr (the console, with `--enable-logging=stderr`).
fn run_chromium(profile: &Path, extra: &[String], url: &str) -> (String, String) {
    let stdout_path = profile.with_extension("stdout");
    let stderr_path = profile.with_extension("stderr");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium().display()));
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within 120 s; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "chromium failed: {status}\n{stderr}");
    (stdout, stderr)
}

/// The opening tag of the element with `id` in serialized HTML.
fn opening_tag<'a>(dom: &'a str, id: &str) -> &'a str {
    let marker = format!(" id=\"{id}\"");
    let at = dom
        .find(&marker)
        .unwrap_or_else(|| panic!("no element #{id} in the DOM"));
    let start = dom[..at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!(" {name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}

/// The text right after the opening tag of `#id` (up to the next tag).
fn text_of(dom: &str, id: &str) -> String {
    let tag = opening_tag(dom, id);
    let start = dom.find(tag).unwrap() + tag.len();
    let end = start + dom[start..].find('<').unwrap();
    dom[start..end].replace("&amp;", "&")
}

/// The markup inside `#chart`.
fn chart_markup(dom: &str) -> &str {
    let tag = opening_tag(dom, "chart");
    let start = dom.find(tag).unwrap() + tag.len();
    let end = start + dom[start..].find("</svg>").expect("an svg in #chart");
    &dom[start..end]
}

async fn get(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_api_numbers_in_a_real_browser() {
    // A data directory holding the recorded hour, served by the real application.
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let hour = |h: &str| chrono::DateTime::parse_from_rfc3339(h).unwrap().to_utc();
    let kept = parsed_events(&[HOUR_FILE]);
    {
        let store = MemoryStore::open(&data_dir).unwrap();
        store.insert_blocking(&kept).unwrap();
        // The hour of the recorded file imported from the archive, the one before it missing,
        // and the one before that damaged: the strip under the chart shows all three.
        let recorded = hour("2015-01-02T00:00:00Z");
        for (at, status, archived, polled) in [
            ("2015-01-01T10:00:00Z", ArchiveStatus::Damaged, 10, 2),
            ("2015-01-01T11:00:00Z", ArchiveStatus::Missing, 0, 0),
            (
                "2015-01-01T12:00:00Z",
                ArchiveStatus::Imported,
                kept.len() as u64,
                100,
            ),
        ] {
            let record = ArchiveHour::new(hour(at), status, archived, polled, recorded);
            store.record_archive_hour(&record).await.unwrap();
        }
        store.flush().await.unwrap();
    }
    let config = Config::load_from([
        "github-stats-server".as_ref(),
        "--no-poll".as_ref(),
        "--database-backend=memory".as_ref(),
        "--bind-address=127.0.0.1:0".as_ref(),
        std::ffi::OsStr::new("--data-dir"),
        data_dir.as_os_str(),
    ])
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let (repo, opened) = busiest_pr_repository(&raw_events(&[HOUR_FILE]));
    assert!(opened >= 2, "{repo} has {opened} opened pull requests");
    let until = "2015-01-01T13:00:00Z";
    let url = format!("{base}/?offset=180&until={until}&refresh=2&repo={repo}&pr_days=7");

    // Ten seconds of virtual time: the first load and four refreshes.
    let profile = dir.path().join("profile-dom");
    let (dom, stderr) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run_chromium(
                &profile,
                &[
                    "--dump-dom".to_owned(),
                    "--virtual-time-budget=10000".to_owned(),
                ],
                &url,
            )
        }
    })
    .await
    .unwrap();

    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "the page wrote to the console:\n{}",
        console.join("\n")
    );
    let body = opening_tag(&dom, "status-pill"); // the DOM is there at all
    assert!(!body.is_empty());
    let body_tag = &dom[dom.find("<body").unwrap()..];
    let body_tag = &body_tag[..=body_tag.find('>').unwrap()];
    assert_eq!(
        attribute(body_tag, "data-state").as_deref(),
        Some("ready"),
        "{body_tag}"
    );
    assert_eq!(attribute(body_tag, "data-js-errors"), None, "{body_tag}");

    // The counts shown are the API's, for the same window.
    let client = reqwest::Client::new();
    let counts = get(
        &client,
        &base,
        &format!("/metrics/events?offset=180&until={until}"),
    )
    .await;
    for (event_type, readme) in [
        ("WatchEvent", 994),
        ("PullRequestEvent", 367),
        ("IssuesEvent", 361),
    ] {
        let id = format!("count-{event_type}");
        let api = counts["event_counts"][event_type].as_u64().unwrap();
        assert_eq!(api, readme, "testdata/README.md's count of {event_type}");
        assert_eq!(
            attribute(opening_tag(&dom, &id), "data-value"),
            Some(api.to_string())
        );
        assert_eq!(text_of(&dom, &id).replace(',', ""), api.to_string());
    }
    let total = counts["total_events"].as_u64().unwrap();
    assert_eq!(
        text_of(&dom, "count-total").replace(',', ""),
        total.to_string()
    );

    // The chart is there, inline, for that window, and was refreshed.
    let chart_tag = opening_tag(&dom, "chart");
    assert_eq!(attribute(chart_tag, "data-loaded").as_deref(), Some("true"));
    assert_eq!(attribute(chart_tag, "data-until").as_deref(), Some(until));
    assert_eq!(attribute(chart_tag, "data-offset").as_deref(), Some("180"));
    let renders: u32 = attribute(chart_tag, "data-renders")
        .unwrap()
        .parse()
        .unwrap();
    assert!(renders >= 2, "the chart was drawn {renders} times in 10 s");
    let chart = chart_markup(&dom);
    assert!(chart.contains("class=\"timeline-chart\""));
    assert_eq!(chart.matches("<polyline").count(), 3);
    for legend in [
        format!("WatchEvent ({})", counts["event_counts"]["WatchEvent"]),
        format!(
            "PullRequestEvent ({})",
            counts["event_counts"]["PullRequestEvent"]
        ),
        format!("IssuesEvent ({})", counts["event_counts"]["IssuesEvent"]),
    ] {
        assert!(chart.contains(&legend), "{legend} in the chart");
    }

    // What the window rests on: one hour of three from the archive, one missing, one damaged.
    let label = opening_tag(&dom, "window-label");
    assert_eq!(attribute(label, "data-complete").as_deref(), Some("false"));
    let share: f64 = attribute(label, "data-archived-share")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(share, counts["archived_share"].as_f64().unwrap());
    assert!((share - 1.0 / 3.0).abs() < 1e-9, "{share}");
    let strip = opening_tag(&dom, "coverage-strip");
    assert_eq!(attribute(strip, "data-loaded").as_deref(), Some("true"));
    assert_eq!(attribute(strip, "data-hours").as_deref(), Some("3"));
    let strip_start = dom.find(strip).unwrap();
    let strip_markup = &dom[strip_start..strip_start + dom[strip_start..].find("</div>").unwrap()];
    let states: Vec<&str> = strip_markup
        .split("data-archive=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(states, ["damaged", "missing", "imported"]);
    assert_eq!(
        attribute(strip, "data-poller-coverage")
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        100.0 / kept.len() as f64
    );
    let summary = text_of(&dom, "coverage-summary");
    assert!(
        summary.contains("1 of 3 hours from GH Archive"),
        "{summary}"
    );
    assert!(summary.contains("1 missing from the archive"), "{summary}");

    // The PR average of the repository in the address, over the 7 days before the window's end
    // (the address says pr_days=7).
    let (owner, name) = repo.split_once('/').unwrap();
    let average = get(
        &client,
        &base,
        &format!("/metrics/pr-average/{owner}/{name}?since=2014-12-25T13:00:00Z&until={until}"),
    )
    .await;
    let basis = opening_tag(&dom, "pr-basis");
    assert_eq!(attribute(basis, "data-complete").as_deref(), Some("false"));
    assert_eq!(
        attribute(basis, "data-archived-share")
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        average["archived_share"].as_f64().unwrap()
    );
    assert!(text_of(&dom, "pr-basis").starts_with("2014-12-25 13:00:00 UTC to"));
    assert_eq!(text_of(&dom, "pr-repository"), repo);
    assert_eq!(
        attribute(opening_tag(&dom, "pr-total"), "data-value"),
        Some(average["total_pull_requests"].to_string())
    );
    assert_eq!(average["total_pull_requests"].as_u64(), Some(opened));
    let shown: f64 = attribute(opening_tag(&dom, "pr-average"), "data-value")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown, average["average_time_seconds"].as_f64().unwrap());
    assert!(!opening_tag(&dom, "pr-result").contains(" hidden"));

    // The status from /health.
    let health = get(&client, &base, "/health").await;
    assert_eq!(
        text_of(&dom, "status-pill"),
        health["status"].as_str().unwrap()
    );
    assert_eq!(
        attribute(opening_tag(&dom, "status-pill"), "data-status").as_deref(),
        health["status"].as_str()
    );
    // No poller (--no-poll): no share of the stream to show.
    assert!(health.get("poller").is_none());
    assert!(opening_tag(&dom, "stream-share").contains(" hidden"));

    // The live view (no `until`): a window ending now, empty here, still without a console
    // message.
    let profile = dir.path().join("profile-live");
    let live_url = format!("{base}/");
    let before = chrono::Utc::now().timestamp();
    let (live, stderr) = tokio::task::spawn_blocking(move || {
        run_chromium(
            &profile,
            &[
                "--dump-dom".to_owned(),
                "--virtual-time-budget=3000".to_owned(),
            ],
            &live_url,
        )
    })
    .await
    .unwrap();
    let after = chrono::Utc::now().timestamp();
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "live view console:\n{}",
        console.join("\n")
    );
    let chart_tag = opening_tag(&live, "chart");
    assert_eq!(attribute(chart_tag, "data-loaded").as_deref(), Some("true"));
    let live_until =
        chrono::DateTime::parse_from_rfc3339(&attribute(chart_tag, "data-until").unwrap())
            .unwrap()
            .timestamp();
    assert!(
        before - 1 <= live_until && live_until <= after + 1,
        "{live_until}"
    );
    assert_eq!(text_of(&live, "count-total"), "0");
    assert!(live.contains("no events in this window"));

    // A screenshot for people to look at: target/dashboard.png.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let screenshot = target.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = dir.path().join("profile-screenshot");
    tokio::task::spawn_blocking({
        let screenshot = screenshot.clone();
        move || {
            run_chromium(
                &profile,
                &[
                    format!("--screenshot={}", screenshot.display()),
                    "--window-size=1280,1000".to_owned(),
                    "--hide-scrollbars".to_owned(),
                    "--virtual-time-budget=5000".to_owned(),
                ],
                &url,
            )
        }
    })
    .await
    .unwrap();
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(png.len() > 20_000, "a {} byte screenshot", png.len());

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// The share of the stream the poller reads, from `/health`, in the browser: two polls of a
/// fake GitHub that overlap measure the stream's rate, so the share is known.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_share_of_the_stream_the_poller_reads() {
    use crate::helpers::SERVED_BODIES;
    use github_stats_core::fake_github::{FakeGitHub, Reply};
    let events = github_stats_core::conformance::fixtures::json_records(SERVED_BODIES[0]);
    let answer = |from: usize, etag: &str| {
        Reply::events(&events[from..from + 20], etag)
            .rate(5000, 4990)
            .header("X-Poll-Interval", 1)
    };
    // The second answer shares 15 events with the first; then nothing new for an hour.
    let nothing_new = Reply::new(304)
        .rate(5000, 4321)
        .header("X-Poll-Interval", 3600);
    let fake = FakeGitHub::start(vec![answer(5, "\"first\""), answer(0, "\"second\"")]).await;
    fake.set_fallback(nothing_new);
    let fake_url = fake.url();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let state_file = dir.path().join("state.json");
    let config = Config::load_from([
        "github-stats-server".as_ref(),
        "--database-backend=memory".as_ref(),
        "--bind-address=127.0.0.1:0".as_ref(),
        std::ffi::OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        std::ffi::OsStr::new("--client-state-file"),
        state_file.as_os_str(),
        std::ffi::OsStr::new("--github-api-url"),
        fake_url.as_ref(),
    ])
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let capture = loop {
        let health = get(&client, &base, "/health").await;
        let capture = health["poller"]["capture"].clone();
        if capture["seen_share"].is_number() {
            break capture;
        }
        assert!(Instant::now() < deadline, "no share measured: {health}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(capture["mode"], "interval");

    let profile = dir.path().join("profile-share");
    let url = format!("{base}/");
    let (dom, stderr) = tokio::task::spawn_blocking(move || {
        run_chromium(
            &profile,
            &[
                "--dump-dom".to_owned(),
                "--virtual-time-budget=3000".to_owned(),
            ],
            &url,
        )
    })
    .await
    .unwrap();
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "{}", console.join("\n"));
    let tag = opening_tag(&dom, "stream-share");
    assert!(!tag.contains(" hidden"), "{tag}");
    let shown: f64 = attribute(tag, "data-seen-share").unwrap().parse().unwrap();
    assert_eq!(shown, capture["seen_share"].as_f64().unwrap());
    let text = text_of(&dom, "stream-share");
    let percent = format!("{}%", (shown * 1000.0).round() / 10.0);
    assert!(
        text.starts_with("The poller reads about ") && text.contains(&percent),
        "{text}"
    );
    assert!(text.contains("interval mode"), "{text}");
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
