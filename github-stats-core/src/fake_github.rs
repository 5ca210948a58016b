//! A fake GitHub Events API for tests (feature `testsuite`): an HTTP/1.1 server on 127.0.0.1
//! that plays a script of answers, often built from the recorded answers in
//! `testdata/api-responses`, then a fallback, and records every request it gets.
//!
//! ```no_run
//! # async fn demo() {
//! use github_stats_core::fake_github::{FakeGitHub, Reply};
//! let fake = FakeGitHub::start(vec![]).await;
//! fake.push(Reply::recorded("events-2020-04-25", 1, &fake.url()).without_header("Link"));
//! fake.push(Reply::new(500));
//! // Once the script is played: the same events, and 304 to a poll sending their ETag.
//! fake.set_fallback(Reply::recorded("events-2017-12-29", 1, &fake.url()).conditional());
//! // GITHUB_API_URL = fake.url(); after the run:
//! assert_eq!(fake.answered(500), 1);
//! # }
//! ```
//!
//! Three ways to feed it: a script ([`FakeGitHub::start`], [`FakeGitHub::push`]) played one
//! reply per request, whatever the path; a fallback for every request after it
//! ([`FakeGitHub::set_fallback`]; by default a 304 asking for a minute's wait, which keeps a
//! poller quiet); or, in place of the fallback, events replayed a page at a time
//! ([`FakeGitHub::start_replaying`]). Each answer closes its connection, so a client opens one
//! per request.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::conformance::fixtures;
use crate::fake_gharchive::KeptEvent;

/// GitHub's largest `per_page`: a page size for [`FakeGitHub::start_replaying`].
pub const MAX_PER_PAGE: usize = 100;

/// A request head larger than this is dropped unanswered (GitHub's clients send a few hundred
/// bytes; the bound keeps a broken client from growing the fake's memory).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One answer of the fake.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers, in order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The body (sent with its `Content-Length`, unless a header names one already).
    pub body: Vec<u8>,
    /// Wait this long before answering (a slow GitHub).
    pub delay: Duration,
    /// Instead of `body`: this many bytes, a `[` and spaces, sent chunked (no
    /// `Content-Length`) as the client reads them, and a count of the bytes sent so far.
    pub endless: Option<(u64, Arc<AtomicU64>)>,
    /// Answer 304 (these headers, no body) to a request whose `If-None-Match` is this reply's
    /// `ETag`, as GitHub does.
    pub conditional: bool,
}

impl Reply {
    /// `status`, no header, no body.
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            endless: None,
            conditional: false,
        }
    }

    /// A recorded answer (`testdata/api-responses/{dir}/{page:02}.*`): its body and its
    /// headers (minus those describing the recorded transfer: gzip, chunking, length), with
    /// `https://api.github.com` links pointing at `base`.
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
            headers,
            body,
            ..Reply::new(200)
        }
    }

    /// A 200 with `events` as a JSON array, and `etag`.
    pub fn events(events: &[Value], etag: &str) -> Reply {
        Reply::new(200)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("ETag", etag)
            .body(serde_json::to_vec(events).expect("JSON values serialize"))
    }

    /// A 304, no header.
    pub fn not_modified() -> Reply {
        Reply::new(304)
    }

    /// Sets the header `name` (replacing any of that name).
    pub fn header(mut self, name: &str, value: impl ToString) -> Reply {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_string()));
        self
    }

    /// Removes the header `name`.
    pub fn without_header(mut self, name: &str) -> Reply {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self
    }

    /// GitHub's rate limit headers: `remaining` of `limit` left, the window resetting in an
    /// hour from now.
    pub fn rate(self, limit: u64, remaining: u64) -> Reply {
        let reset = chrono::Utc::now().timestamp() + 3600;
        self.header("X-RateLimit-Limit", limit)
            .header("X-RateLimit-Remaining", remaining)
            .header("X-RateLimit-Reset", reset)
    }

    /// Sets the body.
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

    /// Waits `delay` before answering.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// Answers 304 to a request sending this reply's `ETag` back in `If-None-Match`.
    pub fn conditional(mut self) -> Reply {
        self.conditional = true;
        self
    }

    /// The value of the header `name`, if set.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// What this reply answers to a request sending `if_none_match`.
    fn answer_to(&self, if_none_match: Option<&str>) -> Reply {
        let revalidated = self.conditional
            && if_none_match.is_some_and(|sent| self.get_header("ETag") == Some(sent));
        if !revalidated {
            return self.clone();
        }
        Reply {
            status: 304,
            headers: self.headers.clone(),
            body: Vec::new(),
            delay: self.delay,
            endless: None,
            conditional: true,
        }
        .without_header("Content-Type")
    }
}

/// The headers of a recorded answer (`relative` to `testdata/`); both recorders' shapes (an
/// object, a list of pairs).
pub fn recorded_headers(relative: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_slice(&fixtures::read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"));
    let text = |v: &Value| {
        v.as_str()
            .unwrap_or_else(|| panic!("a header in {relative} is not a string: {v}"))
            .to_owned()
    };
    match &doc["headers"] {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(pairs) => pairs.iter().map(|p| (text(&p[0]), text(&p[1]))).collect(),
        other => panic!("unexpected headers in {relative}: {other}"),
    }
}

/// The events of a recorded answer (`testdata/api-responses/{dir}/{page:02}.body.json`), as
/// JSON values.
pub fn recorded_events(dir: &str, page: u32) -> Vec<Value> {
    fixtures::json_records(&format!("api-responses/{dir}/{page:02}.body.json"))
}

/// Distinct ids of the events of the kept types, computed from the JSON alone (not with the
/// parser under test).
pub fn kept_ids(events: &[Value]) -> HashSet<u64> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["type"].as_str(),
                Some("WatchEvent" | "PullRequestEvent" | "IssuesEvent")
            )
        })
        .map(|e| {
            e["id"]
                .as_str()
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("a kept event without a numeric id: {}", e["id"]))
        })
        .collect()
}

/// A request the fake received, and the status it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// The request target (`/events?per_page=100`).
    pub uri: String,
    /// Its `page` query parameter (1 when absent).
    pub page: u32,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// The status answered (304 for a conditional reply revalidated).
    pub status: u16,
}

/// Events replayed a page at a time, in place of the fallback.
struct Replay {
    events: Vec<KeptEvent>,
    per_page: usize,
    /// The next event to serve (wrapping around).
    cursor: usize,
    served: HashSet<u64>,
}

impl Replay {
    /// The next `per_page` events, as page `page` of a poll: pages 1 and 2 link to the next.
    fn next_page(&mut self, page: u32, base: &str) -> Reply {
        let mut chunk = Vec::with_capacity(self.per_page);
        for _ in 0..self.per_page.min(self.events.len()) {
            let event = &self.events[self.cursor % self.events.len()];
            self.served.insert(event.id);
            chunk.push(event.json.as_str());
            self.cursor += 1;
        }
        let reply = Reply::new(200)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("X-Poll-Interval", 1)
            .rate(5000, 4990)
            .body(format!("[{}]", chunk.join(",")).into_bytes());
        if page < 3 {
            reply.header(
                "Link",
                format!(
                    "<{base}/events?per_page={}&page={}>; rel=\"next\"",
                    self.per_page,
                    page + 1
                ),
            )
        } else {
            reply
        }
    }
}

enum Fallback {
    Reply(Reply),
    Replay(Replay),
}

struct Shared {
    base: String,
    script: VecDeque<Reply>,
    /// Played when the script is over.
    fallback: Fallback,
    seen: Vec<Seen>,
}

impl Shared {
    /// The reply to `seen`, recorded with the status it gets.
    fn answer(&mut self, mut seen: Seen) -> Reply {
        let reply = match self.script.pop_front() {
            Some(reply) => reply.answer_to(seen.if_none_match.as_deref()),
            None => match &mut self.fallback {
                Fallback::Reply(reply) => reply.answer_to(seen.if_none_match.as_deref()),
                Fallback::Replay(replay) => replay.next_page(seen.page, &self.base),
            },
        };
        seen.status = reply.status;
        self.seen.push(seen);
        reply
    }
}

/// The running fake, on 127.0.0.1; stops when dropped.
pub struct FakeGitHub {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGitHub {
    /// Starts a fake playing `script` on a free port, in the current runtime.
    pub async fn start(script: Vec<Reply>) -> FakeGitHub {
        FakeGitHub::start_on("127.0.0.1:0".parse().expect("an address"), script).await
    }

    /// Starts on `addr` (port 0 for any).
    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>) -> FakeGitHub {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the fake GitHub on {addr}: {e}"));
        let addr = listener.local_addr().expect("a local address");
        let shared = Arc::new(Mutex::new(Shared {
            base: format!("http://{addr}"),
            script: script.into(),
            // Nothing new, and come back in a minute: keeps a poller quietly waiting.
            fallback: Fallback::Reply(Reply::not_modified().header("X-Poll-Interval", 60)),
            seen: Vec::new(),
        }));
        let accepting = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            // Dropped with the task, the set aborts the connections still open.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(handle(stream, Arc::clone(&accepting)));
                while connections.try_join_next().is_some() {}
            }
        });
        FakeGitHub { addr, shared, task }
    }

    /// Starts a fake replaying `events` `per_page` at a time: every request gets the next
    /// page of them (pages 1 to 3 of a poll linked by `Link: rel="next"`), wrapping around once
    /// all were served, so every event is served again (duplicates the stores must absorb).
    pub async fn start_replaying(events: Vec<KeptEvent>, per_page: usize) -> FakeGitHub {
        assert!(!events.is_empty(), "nothing to replay");
        let fake = FakeGitHub::start(vec![]).await;
        fake.lock().fallback = Fallback::Replay(Replay {
            events,
            per_page: per_page.max(1),
            cursor: 0,
            served: HashSet::new(),
        });
        fake
    }

    /// The base URL (`http://127.0.0.1:PORT`): what `GITHUB_API_URL` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `reply` to the end of the script.
    pub fn push(&self, reply: Reply) {
        self.lock().script.push_back(reply);
    }

    /// Answers every request after the script with `reply` (replacing a replay).
    pub fn set_fallback(&self, reply: Reply) {
        self.lock().fallback = Fallback::Reply(reply);
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// The page-1 requests (polls), in order.
    pub fn polls(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.page == 1).collect()
    }

    /// How many requests were answered with `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.lock()
            .seen
            .iter()
            .filter(|s| s.status == status)
            .count()
    }

    /// The ids of the events a [`start_replaying`](FakeGitHub::start_replaying) fake served so
    /// far (empty for others).
    pub fn served_ids(&self) -> HashSet<u64> {
        match &self.lock().fallback {
            Fallback::Replay(replay) => replay.served.clone(),
            Fallback::Reply(_) => HashSet::new(),
        }
    }
}

/// A request head's fields the fake records.
struct Head {
    uri: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// Reads the request head; `None` for a closed connection or anything but HTTP.
async fn read_head(stream: &mut TcpStream) -> Option<Head> {
    let mut head = Vec::new();
    let mut block = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut block).await.ok()?;
        if n == 0 || head.len() > MAX_HEAD_BYTES {
            return None;
        }
        head.extend_from_slice(&block[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (_method, uri) = (request_line.next()?, request_line.next()?.to_owned());
    let headers = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    Some(Head { uri, headers })
}

async fn handle(mut stream: TcpStream, shared: Arc<Mutex<Shared>>) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let page = head
        .uri
        .split_once('?')
        .map_or("", |(_, query)| query)
        .split('&')
        .find_map(|kv| kv.strip_prefix("page="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(1);
    let seen = Seen {
        at: Instant::now(),
        page,
        if_none_match: head.get("if-none-match"),
        authorization: head.get("authorization"),
        user_agent: head.get("user-agent"),
        accept: head.get("accept"),
        uri: head.uri,
        status: 0,
    };
    let reply = shared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .answer(seen);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let _ = respond(&mut stream, &reply).await;
}

async fn respond(stream: &mut TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} Fake\r\nConnection: close\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    // 1xx, 204 and 304 answers have no body.
    let bodiless = reply.status < 200 || reply.status == 204 || reply.status == 304;
    match &reply.endless {
        Some(_) if !bodiless => head.push_str("Transfer-Encoding: chunked\r\n"),
        None if !bodiless && reply.get_header("Content-Length").is_none() => {
            head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        }
        _ => {}
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    if !bodiless {
        match &reply.endless {
            Some((bytes, sent)) => send_spaces(stream, *bytes, sent).await?,
            None => stream.write_all(&reply.body).await?,
        }
    }
    stream.flush().await?;
    stream.shutdown().await
}

/// A chunked body of `bytes` bytes, `[` then spaces, counted in `sent` as the socket takes
/// them (a client that stops reading stops the count within the sockets' buffers).
async fn send_spaces(stream: &mut TcpStream, bytes: u64, sent: &AtomicU64) -> std::io::Result<()> {
    const PIECE: u64 = 64 * 1024;
    let spaces = vec![b' '; PIECE as usize];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(PIECE) as usize;
        let mut chunk = format!("{n:x}\r\n").into_bytes();
        chunk.extend_from_slice(&spaces[..n]);
        if left == bytes {
            let at = chunk.len() - n;
            chunk[at] = b'[';
        }
        chunk.extend_from_slice(b"\r\n");
        stream.write_all(&chunk).await?;
        sent.fetch_add(n as u64, Ordering::SeqCst);
        left -= n as u64;
    }
    stream.write_all(b"0\r\n\r\n").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_gharchive::{FakeHour, RecordedHour};

    async fn get(url: &str, if_none_match: Option<&str>) -> (u16, Option<String>, String) {
        let mut request = reqwest::Client::new().get(url);
        if let Some(etag) = if_none_match {
            request = request.header("If-None-Match", etag);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let link = response
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, link, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn a_conditional_reply_answers_304_to_its_own_etag_only() {
        let events = recorded_events("events-2020-04-25", 1);
        let fake = FakeGitHub::start(vec![Reply::new(500)]).await;
        fake.set_fallback(Reply::events(&events, "W/\"mine\"").conditional());
        let url = format!("{}/events", fake.url());

        assert_eq!(get(&url, None).await.0, 500, "the script first");
        let (status, _, body) = get(&url, None).await;
        assert_eq!(status, 200);
        assert_eq!(serde_json::from_str::<Vec<Value>>(&body).unwrap(), events);
        let (status, _, body) = get(&url, Some("W/\"mine\"")).await;
        assert_eq!((status, body.as_str()), (304, ""));
        assert_eq!(get(&url, Some("W/\"other\"")).await.0, 200);

        assert_eq!(
            (fake.answered(500), fake.answered(200), fake.answered(304)),
            (1, 2, 1)
        );
        let seen = fake.seen();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[2].if_none_match.as_deref(), Some("W/\"mine\""));
        assert!(seen.iter().all(|s| s.uri == "/events" && s.page == 1));
    }

    #[tokio::test]
    async fn a_replaying_fake_serves_pages_of_its_events_linked_up_to_page_three() {
        let hour = FakeHour::build(RecordedHour::Noon, "2026-11-30T05:00:00Z".parse().unwrap());
        let events = hour.kept()[..5].to_vec();
        let fake = FakeGitHub::start_replaying(events.clone(), 2).await;
        let id = |e: &Value| e["id"].as_str().unwrap().parse::<u64>().unwrap();

        let mut served = Vec::new();
        for page in 1..=3 {
            let (status, link, body) =
                get(&format!("{}/events?page={page}", fake.url()), None).await;
            assert_eq!(status, 200);
            let next = format!(
                "<{}/events?per_page=2&page={}>; rel=\"next\"",
                fake.url(),
                page + 1
            );
            assert_eq!(link, (page < 3).then_some(next), "page {page}");
            let page: Vec<Value> = serde_json::from_str(&body).unwrap();
            assert_eq!(page.len(), 2);
            served.extend(page.iter().map(id));
        }
        // Five events, two a page: the third page wraps around to the first.
        let ids: Vec<u64> = events.iter().map(|e| e.id).collect();
        assert_eq!(served[..5], ids[..]);
        assert_eq!(served[5], ids[0]);
        assert_eq!(fake.served_ids(), ids.iter().copied().collect());
    }

    #[tokio::test]
    async fn an_endless_body_is_counted_as_sent() {
        let (endless, sent) = Reply::new(200).endless(200_000);
        let fake = FakeGitHub::start(vec![endless]).await;
        let (status, _, body) = get(&fake.url(), None).await;
        assert_eq!((status, body.len()), (200, 200_000));
        assert!(body.starts_with('[') && body[1..].bytes().all(|b| b == b' '));
        assert_eq!(sent.load(Ordering::SeqCst), 200_000);
    }
}
