//! The connection layer over a real socket (issue #15, item 3 and item 10; issue #25, finding
//! 1): a client that never sends a request, or sends its head a byte at a time, is disconnected
//! after the header read timeout; an idle keep-alive connection after the idle timeout; one
//! that never reads its answers after the write timeout; idle connections beyond the cap wait
//! without stopping `/health`; and what hyper refuses before any handler runs is JSON.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use github_stats_server::{Application, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Far longer than any timeout the tests configure: an answer not there by then never comes.
const PATIENCE: Duration = Duration::from_secs(30);

/// The application over an empty memory store in `data_dir`, on port 0, with `limits` flags.
struct Running {
    address: SocketAddr,
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn start(data_dir: &Path, limits: &[&str]) -> Running {
        let mut args = vec![
            "github-stats-server",
            "--no-poll",
            "--bind-address",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(limits);
        let config = Config::try_parse_from(args).unwrap();
        let app = Application::build(config).await.unwrap();
        let address = app.address();
        let token = app.shutdown_token();
        let task = tokio::spawn(async move { app.run_until_stopped().await.unwrap() });
        Running {
            address,
            token,
            task,
        }
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("stopped")
            .unwrap();
    }
}

/// Reads until the peer closes the connection (or resets it): fails if it is still open after
/// [`PATIENCE`]. Returns what was read.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let result = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(result.is_ok(), "the server kept the connection open");
    received
}

/// One answer read from a raw connection: status, head, body (by `content-length`).
async fn read_answer(stream: &mut TcpStream) -> (u16, String, Vec<u8>) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before a whole head: {:?}",
            String::from_utf8_lossy(&data)
        );
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("content-length");
    while data.len() < head_end + length {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no body")
            .unwrap();
        assert!(n > 0, "closed inside the body");
        data.extend_from_slice(&buf[..n]);
    }
    (status, head, data[head_end..head_end + length].to_vec())
}

/// The body lengths of `count` pipelined answers read from `stream`, each checked to be a 200.
async fn read_pipelined_answers(stream: &mut TcpStream, count: usize) -> Vec<usize> {
    let mut data = Vec::new();
    let mut lengths = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while lengths.len() < count {
        let whole = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .and_then(|at| {
                let head = std::str::from_utf8(&data[..at]).unwrap();
                assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
                let length: usize = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })?;
                (data.len() >= at + 4 + length).then_some((at + 4 + length, length))
            });
        if let Some((end, length)) = whole {
            lengths.push(length);
            data.drain(..end);
            continue;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("no answer")
            .unwrap();
        assert!(n > 0, "closed after {} answers", lengths.len());
        data.extend_from_slice(&buf[..n]);
    }
    lengths
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

/// A request for the spec: a large answer (about 43 KB).
const SPEC: &[u8] = b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n\r\n";

#[tokio::test]
async fn a_connection_that_never_sends_a_request_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The idle timeout is far away: only the header read timeout can close these.
    let server = Running::start(
        dir.path(),
        &[
            "--header-read-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "600",
        ],
    )
    .await;
    let mut silent = TcpStream::connect(server.address).await.unwrap();
    assert!(closed_by_server(&mut silent).await.is_empty());

    // A head sent one byte every 100 ms: traffic never stops, the head never ends.
    let mut slow = TcpStream::connect(server.address).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..600 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if writer.write_all(b"a").await.is_err() {
                return true;
            }
        }
        false
    });
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(PATIENCE, reader.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a head trickling in was not cut off: {read:?}"
    );
    trickle.abort();

    // The same head sent at once is answered, on a connection older than the timeout too.
    let mut prompt = TcpStream::connect(server.address).await.unwrap();
    prompt.write_all(HEALTH).await.unwrap();
    let (status, _, body) = read_answer(&mut prompt).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    prompt.write_all(HEALTH).await.unwrap();
    assert_eq!(
        read_answer(&mut prompt).await.0,
        200,
        "keep-alive after a pause"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(
        dir.path(),
        &[
            "--idle-timeout-secs",
            "1",
            "--header-read-timeout-secs",
            "600",
        ],
    )
    .await;
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.0, 200);
    // Nothing more: the server closes the connection.
    assert!(closed_by_server(&mut stream).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn the_connection_cap_holds_and_a_leaving_client_frees_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(
        dir.path(),
        &[
            "--max-connections",
            "3",
            "--header-read-timeout-secs",
            "600",
            "--idle-timeout-secs",
            "600",
        ],
    )
    .await;
    // Three keep-alive connections, each answered once: they hold the three slots.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        stream.write_all(HEALTH).await.unwrap();
        assert_eq!(read_answer(&mut stream).await.0, 200);
        held.push(stream);
    }
    let url = format!("http://{}/health", server.address);
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .timeout(PATIENCE)
            .send()
            .await
            .map(|r| r.status())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection was served over a cap of three"
    );
    drop(held.pop());
    let status = waiting.await.unwrap().expect("served once a slot was free");
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_beyond_the_cap_time_out_and_health_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(
        dir.path(),
        &[
            "--max-connections",
            "4",
            "--header-read-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "600",
        ],
    )
    .await;
    // Three times the cap, all silent and all kept open by the client.
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(server.address).await.unwrap());
    }
    let health = reqwest::Client::new()
        .get(format!("http://{}/health", server.address))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("/health answers while idle connections are open");
    assert_eq!(health.status(), 200);
    // Each idle connection was closed by the server, none was answered.
    for stream in &mut idle {
        assert!(closed_by_server(stream).await.is_empty());
    }
    // And a flood that ends lets the next request through at once.
    let mut flood = Vec::new();
    for _ in 0..12 {
        flood.push(TcpStream::connect(server.address).await.unwrap());
    }
    drop(flood);
    let health = reqwest::Client::new()
        .get(format!("http://{}/health", server.address))
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    server.stop().await;
}

/// Issue #25, finding 1: clients that fill every slot with pipelined requests for a large answer
/// and never read it held their slots for as long as they liked (the idle timeout counts a
/// blocked write as traffic and lets a request in progress finish). Each is closed once its
/// answer has been stuck for the write timeout, and `/health` is answered meanwhile.
#[tokio::test]
async fn clients_that_never_read_their_answers_are_closed_after_the_write_timeout() {
    const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    // The other timeouts are far away: only the write timeout can free these slots.
    let server = Running::start(
        dir.path(),
        &[
            "--max-connections",
            "32",
            "--write-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "600",
            "--header-read-timeout-secs",
            "600",
        ],
    )
    .await;
    // 400 pipelined requests: 17 MB of answers per connection, more than the socket buffers of
    // both ends hold (the server's send buffer grows to 4 MiB), so every connection's answer
    // gets stuck.
    let pipelined = SPEC.repeat(400);
    let mut stuck = Vec::new();
    for _ in 0..32 {
        let socket = TcpSocket::new_v4().unwrap();
        // A small window, so that the client's side holds almost nothing.
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(server.address).await.unwrap();
        stream.write_all(&pipelined).await.unwrap();
        stuck.push(stream);
    }
    let started = std::time::Instant::now();
    let health = reqwest::Client::new()
        .get(format!("http://{}/health", server.address))
        .timeout(PATIENCE)
        .send()
        .await
        .expect("/health answers while every slot holds a client that never reads");
    let waited = started.elapsed();
    assert_eq!(health.status(), 200);
    // The write timeout, then a second at most (slack for a loaded machine).
    assert!(
        waited < WRITE_TIMEOUT + Duration::from_secs(2),
        "/health waited {waited:?} for a slot"
    );
    // Every one of them was closed by the server, by now (reading them earlier would let their
    // answers go on): what they can still read is what the kernel had buffered, then the end.
    tokio::time::sleep(WRITE_TIMEOUT * 2).await;
    for stream in &mut stuck {
        let unread = closed_by_server(stream).await;
        assert!(unread.len() < 8 << 20, "{} bytes", unread.len());
    }
    // A client that reads is not cut off: its pipelined answers all arrive, whole.
    let mut reading = TcpStream::connect(server.address).await.unwrap();
    reading.write_all(&SPEC.repeat(50)).await.unwrap();
    let lengths = read_pipelined_answers(&mut reading, 50).await;
    assert!(lengths.iter().all(|&n| n > 40_000), "{lengths:?}");
    server.stop().await;
}

/// What hyper refuses itself, before any handler runs: same status as before, now with the
/// API's JSON body.
#[tokio::test]
async fn what_the_http_parser_refuses_is_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::start(dir.path(), &[]).await;
    let long_query = format!(
        "GET /metrics/events?offset=5&x={} HTTP/1.1\r\nHost: test\r\n\r\n",
        "a".repeat(70_000)
    );
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(500_000)
    );
    let many_headers = format!(
        "GET /health HTTP/1.1\r\nHost: test\r\n{}\r\n",
        (0..120)
            .map(|i| format!("X-{i}: a\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"GARBAGE\r\n\r\n".to_vec(), 400, "malformed request"),
        (
            b"GET /health HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "malformed request",
        ),
        (
            b"GET /he alth HTTP/1.1\r\nHost: test\r\n\r\n".to_vec(),
            400,
            "malformed request",
        ),
        (long_query.into_bytes(), 414, "URI too long"),
        (huge_header.into_bytes(), 431, "request head too large"),
        (many_headers.into_bytes(), 431, "100 headers"),
    ];
    for (request, status, words) in cases {
        let mut stream = TcpStream::connect(server.address).await.unwrap();
        // The server may answer and close before reading everything: a failed write is fine.
        let _ = stream.write_all(&request).await;
        let (got, head, body) = read_answer(&mut stream).await;
        let shown = String::from_utf8_lossy(&request[..40.min(request.len())]).into_owned();
        assert_eq!(got, status, "{shown}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{shown}: {head}"
        );
        let body: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{shown}: not JSON ({e}): {head}"));
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(words), "{shown}: {message}");
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    }
    // A good request on a fresh connection is still answered as usual.
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(HEALTH).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.0, 200);
    server.stop().await;
}
