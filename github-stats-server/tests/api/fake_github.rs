//! A fake GitHub Events API for the end-to-end tests: `GET /events` answers recorded events with
//! GitHub's headers (ETag, `X-Poll-Interval`, rate limits) and 304 to a matching
//! `If-None-Match`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use github_stats_core::conformance::fixtures;
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
