//! A fake GitHub Events API (poem on 127.0.0.1) that plays a script of answers built from the
//! recorded answers in `testdata/api-responses`, and records every request it gets.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use github_stats_core::conformance::fixtures;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Server};
use serde_json::Value;

/// One answer of the fake.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow GitHub).
    pub delay: Duration,
    /// Instead of `body`: this many spaces after a `[`, sent chunked (no `Content-Length`) as
    /// they are read, and a count of the bytes read so far.
    pub endless: Option<(u64, Arc<AtomicU64>)>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            endless: None,
        }
    }

    /// A recorded answer: its body and its headers (minus those describing the recorded
    /// transfer: gzip, chunking), with `https://api.github.com` links pointing at `base`.
    pub fn recorded(dir: &str, page: u32, base: &str) -> Reply {
        let body = fixtures::read(&format!("api-responses/{dir}/{page:02}.body.json"));
        let headers = recorded_headers(&format!("api-responses/{dir}/{page:02}.headers.json"))
            .into_iter()
            .filter(|(k, _)| {
                !matches!(
                    k.to_ascii_lowercase().as_str(),
                    "content-encoding" | "transfer-encoding" | "content-length" | "status"
                )
            })
            .map(|(k, v)| (k, v.replace("https://api.github.com", base)))
            .collect();
        Reply {
            status: 200,
            headers,
            body,
            delay: Duration::ZERO,
            endless: None,
        }
    }

    /// A 200 with `events` as a JSON array.
    pub fn events(events: &[Value], etag: &str) -> Reply {
        Reply::new(200)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("ETag", etag)
            .body(serde_json::to_vec(events).unwrap())
    }

    pub fn not_modified() -> Reply {
        Reply::new(304)
    }

    pub fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn without_header(mut self, name: &str) -> Reply {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Reply {
        self.body = body;
        self
    }

    /// A chunked body of `bytes` bytes, made as it is sent; returns the count of bytes sent.
    pub fn endless(mut self, bytes: u64) -> (Reply, Arc<AtomicU64>) {
        let sent = Arc::new(AtomicU64::new(0));
        self.endless = Some((bytes, Arc::clone(&sent)));
        (self, sent)
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The headers of a recorded answer; both recorders' shapes (an object, a list of pairs).
pub fn recorded_headers(relative: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_slice(&fixtures::read(relative)).unwrap();
    match &doc["headers"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
        Value::Array(pairs) => pairs
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().to_owned(),
                    p[1].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        other => panic!("unexpected headers in {relative}: {other}"),
    }
}

/// The events of a recorded answer, as JSON values.
pub fn recorded_events(dir: &str, page: u32) -> Vec<Value> {
    fixtures::json_records(&format!("api-responses/{dir}/{page:02}.body.json"))
}

/// Distinct ids of the events of the kept types, computed from the JSON alone.
pub fn kept_ids(events: &[Value]) -> HashSet<u64> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["type"].as_str(),
                Some("WatchEvent" | "PullRequestEvent" | "IssuesEvent")
            )
        })
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub uri: String,
    pub page: u32,
    pub if_none_match: Option<String>,
    pub authorization: Option<String>,
    pub user_agent: Option<String>,
    pub accept: Option<String>,
}

struct Shared {
    script: VecDeque<Reply>,
    /// Played when the script is over.
    fallback: Reply,
    seen: Vec<Seen>,
}

/// The running fake; stops when dropped.
pub struct FakeGitHub {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FakeGitHub {
    pub async fn start(script: Vec<Reply>) -> FakeGitHub {
        FakeGitHub::start_on("127.0.0.1:0".parse().unwrap(), script).await
    }

    /// Starts on `addr` (port 0 for any).
    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>) -> FakeGitHub {
        let acceptor = TcpListener::bind(addr.to_string())
            .into_acceptor()
            .await
            .expect("bind the fake GitHub");
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            script: script.into(),
            // Nothing new, and come back in a minute: keeps a poller quietly waiting.
            fallback: Reply::not_modified().header("X-Poll-Interval", 60),
            seen: Vec::new(),
        }));
        let endpoint_shared = Arc::clone(&shared);
        let endpoint = poem::endpoint::make(move |req: Request| {
            let shared = Arc::clone(&endpoint_shared);
            async move { answer(&shared, req).await }
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    endpoint,
                    async {
                        let _ = stopped.await;
                    },
                    Some(Duration::from_millis(100)),
                )
                .await;
        });
        FakeGitHub {
            url: format!("http://{addr}"),
            shared,
            stop: Some(stop),
        }
    }

    pub fn push(&self, reply: Reply) {
        self.shared.lock().unwrap().script.push_back(reply);
    }

    pub fn set_fallback(&self, reply: Reply) {
        self.shared.lock().unwrap().fallback = reply;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.lock().unwrap().seen.clone()
    }

    /// The page-1 requests (polls), in order.
    pub fn polls(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.page == 1).collect()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn answer(shared: &Mutex<Shared>, req: Request) -> Response {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let page = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let seen = Seen {
        at: Instant::now(),
        uri: req.uri().to_string(),
        page,
        if_none_match: header("if-none-match"),
        authorization: header("authorization"),
        user_agent: header("user-agent"),
        accept: header("accept"),
    };
    let reply = {
        let mut shared = shared.lock().unwrap();
        shared.seen.push(seen);
        match shared.script.pop_front() {
            Some(reply) => reply,
            None => shared.fallback.clone(),
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut builder = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    match reply.endless {
        Some((bytes, sent)) => {
            builder.body(poem::Body::from_async_read(Spaces { left: bytes, sent }))
        }
        None => builder.body(reply.body),
    }
}

/// `[` and spaces, counted as they are read.
struct Spaces {
    left: u64,
    sent: Arc<AtomicU64>,
}

impl tokio::io::AsyncRead for Spaces {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(64 * 1024) as usize;
        if n > 0 {
            let first = self.sent.fetch_add(n as u64, Ordering::SeqCst) == 0;
            let at = buf.filled().len();
            buf.put_slice(&vec![b' '; n]);
            if first {
                buf.filled_mut()[at] = b'[';
            }
            self.left -= n as u64;
        }
        std::task::Poll::Ready(Ok(()))
    }
}
