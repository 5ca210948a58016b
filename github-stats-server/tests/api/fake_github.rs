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
