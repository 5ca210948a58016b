//! A fake GitHub Events API for the end-to-end tests: `GET /events` answers recorded events with
//! GitHub's headers (ETag, `X-Poll-Interval`, rate limits) and 304 to a matching
//! `If-None-Match`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use github_stats_core::conformance::fixtures;
use github_stats_core::fake_gharchive::KeptEvent;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};

/// The recorded answers the fake serves, as one page.
pub const BODIES: &[&str] = &[
    "api-responses/events-2020-04-25/01.body.json",
    "api-responses/events-2017-12-29/01.body.json",
];

const ETAG: &str = "W/\"fake-etag-1\"";

/// A running fake: its base URL and how many requests it answered with events and with 304.
pub struct FakeGitHub {
    pub url: String,
    pub full_answers: Arc<AtomicUsize>,
    pub not_modified: Arc<AtomicUsize>,
}

/// Every event the fake serves, as JSON.
pub fn served_events() -> Vec<serde_json::Value> {
    BODIES
        .iter()
        .flat_map(|b| fixtures::json_records(b))
        .collect()
}

/// Starts the fake on a free loopback port, in the current runtime.
pub async fn start() -> FakeGitHub {
    let body = serde_json::to_vec(&served_events()).unwrap();
    let full_answers = Arc::new(AtomicUsize::new(0));
    let not_modified = Arc::new(AtomicUsize::new(0));
    let (full, none) = (full_answers.clone(), not_modified.clone());
    let endpoint = poem::endpoint::make(move |req: Request| {
        let body = body.clone();
        let (full, none) = (full.clone(), none.clone());
        async move {
            if req.uri().path() != "/events" {
                return Response::builder().status(StatusCode::NOT_FOUND).finish();
            }
            let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
            let builder = Response::builder()
                .header("ETag", ETAG)
                .header("X-Poll-Interval", "1")
                .header("X-RateLimit-Limit", "5000")
                .header("X-RateLimit-Remaining", "4990")
                .header("X-RateLimit-Reset", reset);
            let matches = req
                .headers()
                .get("if-none-match")
                .is_some_and(|v| v.as_bytes() == ETAG.as_bytes());
            if matches {
                none.fetch_add(1, Ordering::SeqCst);
                builder.status(StatusCode::NOT_MODIFIED).finish()
            } else {
                full.fetch_add(1, Ordering::SeqCst);
                builder
                    .content_type("application/json; charset=utf-8")
                    .body(body)
            }
        }
    });
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
    FakeGitHub {
        url: format!("http://{address}"),
        full_answers,
        not_modified,
    }
}

/// One answer of a [`start_scripted`] fake.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 with the events of the recorded answer `body` (one of [`BODIES`]), `etag`, a poll
    /// interval of 1 s and `remaining` requests of 5000 left.
    pub fn events(body: &str, etag: &str, remaining: u64) -> Reply {
        let events = fixtures::json_records(body);
        Reply {
            status: 200,
            headers: vec![
                ("Content-Type", "application/json; charset=utf-8".to_owned()),
                ("ETag", etag.to_owned()),
            ],
            body: serde_json::to_vec(&events).unwrap(),
        }
        .rate(5000, remaining)
        .header("X-Poll-Interval", "1")
    }

    /// An answer with `status` and no body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl ToString) -> Reply {
        self.headers.push((name, value.to_string()));
        self
    }

    /// GitHub's rate limit headers, the window resetting in an hour.
    pub fn rate(self, limit: u64, remaining: u64) -> Reply {
        let reset = chrono::Utc::now().timestamp() + 3600;
        self.header("X-RateLimit-Limit", limit)
            .header("X-RateLimit-Remaining", remaining)
            .header("X-RateLimit-Reset", reset)
    }
}

/// A fake that answers `GET /events` with `script`, one reply per request, repeating the last
/// one once the script is played; `requests` counts the requests answered.
pub struct ScriptedGitHub {
    pub url: String,
    pub requests: Arc<AtomicUsize>,
}

/// Starts a scripted fake on a free loopback port, in the current runtime.
pub async fn start_scripted(script: Vec<Reply>) -> ScriptedGitHub {
    assert!(!script.is_empty());
    let script = Arc::new(script);
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let endpoint = poem::endpoint::make(move |req: Request| {
        let script = script.clone();
        let counter = counter.clone();
        async move {
            if req.uri().path() != "/events" {
                return Response::builder().status(StatusCode::NOT_FOUND).finish();
            }
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let reply = &script[n.min(script.len() - 1)];
            let mut builder =
                Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
            for (name, value) in &reply.headers {
                builder = builder.header(*name, value.as_str());
            }
            builder.body(reply.body.clone())
        }
    });
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
    ScriptedGitHub {
        url: format!("http://{address}"),
        requests,
    }
}

/// Events per page of [`replaying_events_api`] by default (GitHub's `per_page` maximum).
pub const PER_PAGE: usize = 100;

/// A fake Events API replaying `events` `per_page` at a time: every request answers the next
/// page of them (pages 1 to 3 of a poll linked by `Link: rel="next"`), wrapping around once all
/// were served, so every event is served again (duplicates the stores must absorb).
pub struct ReplayingEventsApi {
    pub url: String,
    /// The ids served so far.
    pub served: Arc<Mutex<HashSet<u64>>>,
}

pub async fn replaying_events_api(events: Vec<KeptEvent>, per_page: usize) -> ReplayingEventsApi {
    let served = Arc::new(Mutex::new(HashSet::new()));
    let cursor = Arc::new(Mutex::new(0usize));
    let events = Arc::new(events);
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let address = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let base = format!("http://{address}");
    let endpoint = poem::endpoint::make({
        let served = served.clone();
        let base = base.clone();
        move |req: Request| {
            let (events, cursor, served, base) =
                (events.clone(), cursor.clone(), served.clone(), base.clone());
            async move {
                if req.uri().path() != "/events" {
                    return Response::builder().status(StatusCode::NOT_FOUND).finish();
                }
                let page: usize = req
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("page=")))
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                let mut chunk = Vec::with_capacity(per_page);
                {
                    let mut at = cursor.lock().unwrap();
                    let mut served = served.lock().unwrap();
                    for _ in 0..per_page.min(events.len()) {
                        let e: &KeptEvent = &events[*at % events.len()];
                        served.insert(e.id);
                        chunk.push(e.json.as_str());
                        *at += 1;
                    }
                }
                let body = format!("[{}]", chunk.join(","));
                let reset = (chrono::Utc::now().timestamp() + 3600).to_string();
                let mut builder = Response::builder()
                    .header("X-Poll-Interval", "1")
                    .header("X-RateLimit-Limit", "5000")
                    .header("X-RateLimit-Remaining", "4990")
                    .header("X-RateLimit-Reset", reset)
                    .content_type("application/json; charset=utf-8");
                if page < 3 {
                    builder = builder.header(
                        "Link",
                        format!(
                            "<{base}/events?per_page={per_page}&page={}>; rel=\"next\"",
                            page + 1
                        ),
                    );
                }
                builder.body(body)
            }
        }
    });
    tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint));
    ReplayingEventsApi { url: base, served }
}
