//! A fake GH Archive for tests (feature `testsuite`): an HTTP/1.1 server on 127.0.0.1 that
//! serves hour files built from the recorded GH Archive hours in `testdata/gharchive/`, and
//! answers what each test scripts (not published yet, server errors, cut or corrupt files, slow
//! and stalled downloads, redirects), recording every request.
//!
//! ```no_run
//! # async fn demo() {
//! use github_stats_core::fake_gharchive::{Answer, FakeArchive, FakeHour, RecordedHour};
//! let hour = FakeHour::build(RecordedHour::Noon, "2026-11-30T05:00:00Z".parse().unwrap());
//! let archive = FakeArchive::start().await;
//! archive.put_hour(&hour);
//! archive.script(&hour.file_name(), [Answer::Status(404), Answer::CutAfter(100_000)]);
//! // GHARCHIVE_URL = archive.url(); after the run:
//! assert_eq!(archive.requests_for(&hour.file_name()), 3);
//! # }
//! ```
//!
//! Hour files are real data moved in time: each line of a recorded hour gets the new hour in
//! place of the old one in its times (minutes and seconds kept) and its id offset by an amount
//! derived from the new hour, so different hours never share ids. What a test expects of an
//! hour ([`FakeHour::kept`]) is computed from the lines with `serde_json`, not with the parser
//! under test.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::event::{Event, EventType};
use crate::source::gharchive::archive_file_name;

/// A recorded GH Archive hour of `testdata/gharchive/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordedHour {
    /// `2015-01-01-0.json.gz`: 7,702 events.
    Midnight,
    /// `2015-01-01-12.json.gz`: 8,273 events.
    Noon,
}

impl RecordedHour {
    fn relative(self) -> &'static str {
        match self {
            RecordedHour::Midnight => "gharchive/2015-01-01-0.json.gz",
            RecordedHour::Noon => "gharchive/2015-01-01-12.json.gz",
        }
    }

    /// `"2015-01-01T00:` or `"2015-01-01T12:`: the start of every time of the hour.
    fn time_prefix(self) -> &'static str {
        match self {
            RecordedHour::Midnight => "\"2015-01-01T00:",
            RecordedHour::Noon => "\"2015-01-01T12:",
        }
    }

    /// The file as GH Archive served it.
    pub fn raw_gzip(self) -> Vec<u8> {
        let path = crate::conformance::fixtures::path(self.relative());
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The file's JSON lines, decompressed once per process.
    fn plain(self) -> Arc<Vec<u8>> {
        static CACHE: OnceLock<Mutex<HashMap<RecordedHour, Arc<Vec<u8>>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(cache.entry(self).or_insert_with(|| {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&self.raw_gzip()[..])
                .read_to_end(&mut plain)
                .expect("a recorded hour gunzips");
            Arc::new(plain)
        }))
    }
}

/// A kept event of a fake hour, as read from its JSON with `serde_json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptEvent {
    /// The event id (offset).
    pub id: u64,
    /// Its type.
    pub event_type: EventType,
    /// `repo.id`.
    pub repo_id: u64,
    /// `repo.name`.
    pub repo_name: String,
    /// `created_at` (moved to the fake hour).
    pub created_at: DateTime<Utc>,
    /// `payload.action`.
    pub action: String,
    /// The whole event, one line of JSON (for a fake Events API replaying part of the hour).
    pub json: String,
}

impl KeptEvent {
    /// The event as stores take it.
    pub fn to_event(&self) -> Event {
        Event {
            id: self.id,
            event_type: self.event_type,
            repo_id: self.repo_id,
            repo_name: self.repo_name.clone(),
            created_at: self.created_at,
            action: self.action.clone(),
        }
    }
}

/// One hour file of the fake archive: a recorded hour moved to `hour`.
#[derive(Debug, Clone)]
pub struct FakeHour {
    /// The hour (a whole hour).
    pub hour: DateTime<Utc>,
    /// The recorded hour it was built from.
    pub recorded: RecordedHour,
    /// The file as served: JSON lines, gzip.
    pub gzip: Vec<u8>,
    /// Lines in the file.
    pub lines: u64,
    kept: Vec<KeptEvent>,
}

impl FakeHour {
    /// `recorded` moved to `hour`: every time of the recorded hour moved to the same minute and
    /// second of `hour`, and every id offset by `hour`'s number of hours since 1970 × 10^10.
    pub fn build(recorded: RecordedHour, hour: DateTime<Utc>) -> FakeHour {
        let hour = crate::coverage::hour_floor(hour);
        let offset = (hour.timestamp() / 3600) as u64 * 10_000_000_000;
        let new_prefix = format!("\"{}:", hour.format("%Y-%m-%dT%H"));
        let plain = recorded.plain();
        let mut out = Vec::with_capacity(plain.len() + plain.len() / 50);
        let mut kept = Vec::new();
        let mut ids = HashSet::new();
        let mut lines = 0;
        for line in plain.split(|&b| b == b'\n') {
            if line.trim_ascii().is_empty() {
                continue;
            }
            lines += 1;
            let line = std::str::from_utf8(line).expect("recorded lines are UTF-8");
            let rest = line
                .strip_prefix("{\"id\":\"")
                .expect("recorded hour lines start with their id");
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let id: u64 = rest[..digits].parse().expect("a numeric id");
            let moved = format!("{{\"id\":\"{}{}", id + offset, &rest[digits..])
                .replace(recorded.time_prefix(), &new_prefix);
            out.extend_from_slice(moved.as_bytes());
            out.push(b'\n');
            if let Some(event) = kept_event(&moved) {
                assert!(
                    ids.insert(event.id),
                    "a recorded hour repeats id {}",
                    event.id
                );
                kept.push(event);
            }
        }
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(out.len() / 6),
            flate2::Compression::fast(),
        );
        encoder.write_all(&out).expect("gzip in memory");
        FakeHour {
            hour,
            recorded,
            gzip: encoder.finish().expect("gzip in memory"),
            lines,
            kept,
        }
    }

    /// GH Archive's name of the file (`2026-11-30-5.json.gz`).
    pub fn file_name(&self) -> String {
        archive_file_name(self.hour)
    }

    /// The kept events (`WatchEvent`, `PullRequestEvent`, `IssuesEvent` with an id, a
    /// repository and a time), in file order; recorded hours hold no repeated id, so these are
    /// the hour's distinct kept events.
    pub fn kept(&self) -> &[KeptEvent] {
        &self.kept
    }

    /// Distinct kept events of each type (index: [`EventType::index`]).
    pub fn kept_by_type(&self) -> [u64; 3] {
        let mut counts = [0; 3];
        for e in &self.kept {
            counts[e.event_type.index()] += 1;
        }
        counts
    }

    /// Every `step`th kept event from `first`: a part of the hour, as a poller might have seen.
    pub fn sample(&self, first: usize, step: usize) -> Vec<Event> {
        self.kept
            .iter()
            .skip(first)
            .step_by(step.max(1))
            .map(KeptEvent::to_event)
            .collect()
    }

    /// Writes the file into `dir` under its GH Archive name (a `file://` mirror).
    pub fn write_to(&self, dir: &Path) {
        std::fs::write(dir.join(self.file_name()), &self.gzip).expect("write a mirror file");
    }
}

/// The kept event a line holds, read with `serde_json`; `None` for other types and events
/// that cannot be stored.
fn kept_event(line: &str) -> Option<KeptEvent> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let event_type = EventType::from_name(v["type"].as_str()?)?;
    Some(KeptEvent {
        id: v["id"].as_str()?.parse().ok()?,
        event_type,
        repo_id: v["repo"]["id"].as_u64()?,
        repo_name: v["repo"]["name"].as_str()?.to_owned(),
        created_at: DateTime::parse_from_rfc3339(v["created_at"].as_str()?)
            .ok()?
            .with_timezone(&Utc),
        action: v["payload"]["action"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        json: line.to_owned(),
    })
}

/// One scripted answer of the fake archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the whole file; 404 when the archive has no such file.
    File,
    /// This status with a short body (404 and 403: not published; 500, 503: errors).
    Status(u16),
    /// 200 announcing the whole file, the first N bytes sent, then the connection closed: a
    /// download cut.
    CutAfter(usize),
    /// 200 with a complete body of the first N bytes only: a gzip stream that ends early (a
    /// file caught while being written).
    Truncated(usize),
    /// 200 with the file, its gzip header broken.
    BadGzipHeader,
    /// 200 with the whole file in pieces of `piece` bytes, `pause` between them.
    Slow {
        /// Bytes per piece.
        piece: usize,
        /// The pause after each piece.
        pause: Duration,
    },
    /// 200 announcing the whole file, the first N bytes sent, then nothing, the connection
    /// kept open.
    Stall(usize),
    /// 302 to this location.
    Redirect(String),
}

/// A request the fake archive received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The path asked for (`/2026-11-30-5.json.gz`).
    pub path: String,
    /// Its `User-Agent`.
    pub user_agent: Option<String>,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    files: HashMap<String, Arc<Vec<u8>>>,
    scripts: HashMap<String, VecDeque<Answer>>,
    requests: Vec<Request>,
    served: HashMap<String, u64>,
}

/// The fake archive: a server on 127.0.0.1, stopped when dropped.
pub struct FakeArchive {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeArchive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeArchive {
    /// Starts a fake archive with no files, on a free port.
    pub async fn start() -> FakeArchive {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a local address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(handle(stream, Arc::clone(&shared)));
                while connections.try_join_next().is_some() {}
            }
        });
        FakeArchive { addr, state, task }
    }

    /// The base URL (`http://127.0.0.1:PORT`): what `GHARCHIVE_URL` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `bytes` as the file `name` (`2026-11-30-5.json.gz`).
    pub fn put(&self, name: &str, bytes: Vec<u8>) {
        self.lock().files.insert(name.to_owned(), Arc::new(bytes));
    }

    /// Serves `hour`'s file.
    pub fn put_hour(&self, hour: &FakeHour) {
        self.put(&hour.file_name(), hour.gzip.clone());
    }

    /// Answers the next requests of `name` with `answers`, in order, before the default
    /// ([`Answer::File`]).
    pub fn script(&self, name: &str, answers: impl IntoIterator<Item = Answer>) {
        self.lock()
            .scripts
            .entry(name.to_owned())
            .or_default()
            .extend(answers);
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// How many requests asked for `name`.
    pub fn requests_for(&self, name: &str) -> usize {
        let path = format!("/{name}");
        self.lock()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    /// Body bytes of `name` written to sockets so far (accepted by the kernel: a reader that
    /// stops reading stops this within the sockets' buffers).
    pub fn bytes_served(&self, name: &str) -> u64 {
        self.lock().served.get(name).copied().unwrap_or(0)
    }
}

/// Reads the request head: `(path, user agent)`; `None` for anything else.
async fn read_head(stream: &mut TcpStream) -> Option<(String, Option<String>)> {
    let mut head = Vec::new();
    let mut block = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut block).await.ok()?;
        if n == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.extend_from_slice(&block[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (_method, path) = (request_line.next()?, request_line.next()?.to_owned());
    let user_agent = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("user-agent")
            .then(|| value.trim().to_owned())
    });
    Some((path, user_agent))
}

async fn handle(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let Some((path, user_agent)) = read_head(&mut stream).await else {
        return;
    };
    let name = path.trim_start_matches('/').to_owned();
    let (answer, file) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(Request {
            path: path.clone(),
            user_agent,
            at: Instant::now(),
        });
        let answer = state
            .scripts
            .get_mut(&name)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Answer::File);
        (answer, state.files.get(&name).cloned())
    };
    let served = |n: usize| {
        *state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .served
            .entry(name.clone())
            .or_default() += n as u64;
    };
    let file = match (answer.clone(), file) {
        (Answer::Status(code), _) => {
            let _ = respond_status(&mut stream, code, &[]).await;
            return;
        }
        (Answer::Redirect(location), _) => {
            let _ = respond_status(&mut stream, 302, &[("Location", &location)]).await;
            return;
        }
        (_, None) => {
            let _ = respond_status(&mut stream, 404, &[]).await;
            return;
        }
        (_, Some(file)) => file,
    };
    let (length, body): (usize, Vec<u8>) = match &answer {
        Answer::Truncated(n) => (*n.min(&file.len()), file[..*n.min(&file.len())].to_vec()),
        Answer::BadGzipHeader => {
            let mut broken = file.to_vec();
            broken[0] = b'<';
            broken[1] = b'!';
            (broken.len(), broken)
        }
        _ => (file.len(), Vec::new()),
    };
    let body: &[u8] = if body.is_empty() { &file } else { &body };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let (send, piece, pause) = match &answer {
        Answer::CutAfter(n) | Answer::Stall(n) => ((*n).min(length), 64 * 1024, None),
        Answer::Slow { piece, pause } => (length, (*piece).max(1), Some(*pause)),
        _ => (length, 64 * 1024, None),
    };
    for chunk in body[..send].chunks(piece) {
        if stream.write_all(chunk).await.is_err() {
            return;
        }
        served(chunk.len());
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    let _ = stream.flush().await;
    if let Answer::Stall(_) = answer {
        // Hold the connection until the client gives up.
        let mut block = [0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(300), stream.read(&mut block)).await;
    }
    let _ = stream.shutdown().await;
}

async fn respond_status(
    stream: &mut TcpStream,
    code: u16,
    headers: &[(&str, &str)],
) -> std::io::Result<()> {
    let body = format!("fake archive: {code}\n");
    let mut head = format!(
        "HTTP/1.1 {code} Fake\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
