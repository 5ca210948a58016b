//! Issue #25, finding 8: the ClickHouse database dropped under a running server. Meanwhile the
//! API answers 503 with a plain JSON message (never ClickHouse's own text); the store creates
//! the schema again, the events polled since are stored, and the API answers their numbers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use github_stats_core::conformance::fixtures;
use github_stats_core::parse::parse_document;
use github_stats_core::{Event, ParseStats};
use github_stats_server::{Application, Config};
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::Value;

/// A fake Events API answering whatever page it is given, with an ETag of its own (so that
/// the same page again is a 304, as GitHub does).
struct SwitchableGitHub {
    url: String,
    page: Arc<Mutex<(u32, Vec<u8>)>>,
}

impl SwitchableGitHub {
    async fn start(body: Vec<u8>) -> SwitchableGitHub {
        let page = Arc::new(Mutex::new((1, body)));
        let endpoint = poem::endpoint::make({
            let page = page.clone();
            move |req: Request| {
                let page = page.clone();
                async move {
                    let (version, body) = page.lock().unwrap().clone();
                    let etag = format!("W/\"page-{version}\"");
                    let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
                    let builder = Response::builder()
                        .header("ETag", etag.as_str())
                        .header("X-Poll-Interval", "1")
                        .header("X-RateLimit-Limit", "5000")
                        .header("X-RateLimit-Remaining", "4990")
                        .header("X-RateLimit-Reset", reset);
                    let same = req
                        .headers()
                        .get("if-none-match")
                        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
                    if same {
                        builder.status(StatusCode::NOT_MODIFIED).finish()
                    } else {
                        builder.content_type("application/json").body(body)
                    }
                }
            }
        });
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
        SwitchableGitHub {
            url: format!("http://{address}"),
            page,
        }
    }

    fn serve(&self, body: Vec<u8>) {
        let mut page = self.page.lock().unwrap();
        *page = (page.0 + 1, body);
    }
}

/// A recorded Events API page, and its kept events (distinct ids) as core's parser reads them.
fn recorded_page(file: &str) -> (Vec<u8>, Vec<Event>) {
    let body = fixtures::read(file);
    let mut events = Vec::new();
    parse_document(&body, &mut ParseStats::default(), &mut events);
    let mut seen = std::collections::HashSet::new();
    events.retain(|e| seen.insert(e.id));
    (body, events)
}

async fn get(base: &str, path: &str) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{base}{path}")).await.unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    (status, response.json().await.unwrap())
}

async fn sql(url: &str, query: &str) {
    let response = reqwest::Client::new()
        .post(url)
        .body(query.to_owned())
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{query}: {}",
        response.text().await.unwrap()
    );
}

/// Asks `path` until it answers 200 with `want` at `field`, for a minute at most.
async fn wait_for(base: &str, path: &str, field: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = get(base, path).await;
        if status == StatusCode::OK && body[field] == want {
            return;
        }
        let (_, health) = get(base, "/health").await;
        assert!(
            Instant::now() < deadline,
            "{path}: {status} {body}, not {field} = {want}; /health: {health:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_database_answers_503_meanwhile_then_the_numbers_of_what_came_after() {
    let Ok(url) = std::env::var("CLICKHOUSE_URL") else {
        eprintln!("CLICKHOUSE_URL is not set: scripts/test.sh runs this test against ClickHouse");
        return;
    };
    let database = "gs_server_dropped_database";
    sql(&url, &format!("DROP DATABASE IF EXISTS {database}")).await;
    let (first_page, first) = recorded_page("api-responses/events-2020-04-25/01.body.json");
    let (second_page, second) = recorded_page("api-responses/events-2017-12-29/01.body.json");
    assert!(!first.is_empty() && !second.is_empty());
    let github = SwitchableGitHub::start(first_page).await;
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load_from([
        "github-stats-server".to_owned(),
        "--bind-address=127.0.0.1:0".to_owned(),
        format!("--github-api-url={}", github.url),
        format!(
            "--client-state-file={}",
            dir.path().join("client.json").display()
        ),
        "--database-backend=clickhouse".to_owned(),
        format!("--clickhouse-url={url}"),
        format!("--clickhouse-database={database}"),
    ])
    .unwrap();
    let app = Application::build(config).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    wait_for(
        &base,
        "/debug/total-events",
        "total_events",
        first.len() as u64,
    )
    .await;

    // The poller has nothing new (304s): the API's request is the first to meet the loss.
    sql(&url, &format!("DROP DATABASE {database}")).await;
    let (status, body) = get(&base, "/debug/total-events").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let object = body.as_object().unwrap();
    assert_eq!(object.len(), 1, "{body}");
    let message = body["error"].as_str().unwrap();
    for raw in ["Code:", "Exception", "displayText", "doesn't exist"] {
        assert!(!message.contains(raw), "ClickHouse's text in {message:?}");
    }
    assert!(
        message.contains("missing the store's database"),
        "{message}"
    );

    // New events: stored into the schema created again, with the right numbers.
    github.serve(second_page);
    wait_for(
        &base,
        "/debug/total-events",
        "total_events",
        second.len() as u64,
    )
    .await;
    let repo = &second[0].repo_name;
    let in_repo: Vec<&Event> = second.iter().filter(|e| &e.repo_name == repo).collect();
    let (status, counts) = get(&base, &format!("/debug/repo-events/{repo}")).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts["event_count"], in_repo.len() as u64, "{counts}");
    let (status, health) = get(&base, "/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["total_events"], second.len() as u64, "{health}");
    shutdown.cancel();
    task.await.unwrap().unwrap();
    sql(&url, &format!("DROP DATABASE IF EXISTS {database}")).await;
}
