//! The connection layer between the listening socket and poem's [`Server`](poem::Server).
//!
//! poem 3's server has an idle timeout (no traffic for a while: the connection is closed) and
//! nothing else: no limit on open connections, no deadline for a request's head, and an accept
//! loop that retries a failed `accept` at once, so that running out of file descriptors spins a
//! core at 100%. [`GuardedAcceptor`] wraps the listener's acceptor and fills those gaps:
//!
//! - **a connection cap**: a slot (a semaphore permit living as long as the connection) is taken
//!   before accepting; at the cap, new connections wait in the kernel's listen backlog and are
//!   accepted as soon as one closes;
//! - **accept errors backed off**: `EMFILE`, `ENFILE`, `ENOBUFS`… are retried after a delay
//!   doubling from [`AcceptBackoff::first`] up to [`AcceptBackoff::max`], or at once when a
//!   connection closes (which frees a descriptor), and logged once per episode, not per retry;
//! - **a request head deadline** ([`GuardedStream`]): from the connection's opening, and from the
//!   first byte of each later request, the whole head (request line and headers) must arrive
//!   within the header read timeout, or the connection is closed. This is what stops a client
//!   sending one header byte at a time (the idle timeout only sees that traffic goes on);
//! - **a write deadline** ([`GuardedStream`], nginx's `send_timeout`): a write that cannot go on
//!   for the write timeout (the client reads nothing, its window stays shut) fails, and the
//!   connection is closed, its slot freed. poem's idle timeout cannot do this: every attempt to
//!   write counts as traffic for it, and it lets a request in progress finish, so clients that
//!   pipeline requests and never read their answers would hold their slots for ever;
//! - **JSON for hyper's own answers**: hyper answers a request it cannot parse (a bad request
//!   line, a URI over 65534 bytes, a head over its buffer or with more than 100 headers) itself,
//!   before any handler runs, with an empty body. [`GuardedStream`] recognises those three fixed
//!   answers on their way out and gives them the API's `{"error": "..."}` body.

use std::io;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// hyper's longest URI (`MAX_URI_LEN`): a longer one is answered 414 by hyper itself.
pub const HYPER_MAX_URI_BYTES: usize = 65_534;
/// hyper's most headers in a request (`DEFAULT_MAX_HEADERS`): more are answered 431.
pub const HYPER_MAX_HEADERS: usize = 100;
/// hyper's read buffer (`DEFAULT_MAX_BUFFER_SIZE`, 408 KiB): a longer head is answered 431.
pub const HYPER_MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;
/// The most a connection's read hands hyper at once (see `GuardedStream::poll_read`).
const MAX_READ_BYTES: usize = 16 * 1024;

/// The limits on connections: the cap and the three timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// How long a request head may take to arrive, from the connection's opening or from the
    /// request's first byte.
    pub header_read_timeout: Duration,
    /// How long a connection may stay without any traffic (poem's idle timeout), typically
    /// between keep-alive requests.
    pub idle_timeout: Duration,
    /// How long a write may stay blocked (the client reading nothing) before the connection is
    /// closed: nginx's `send_timeout`, measured between two writes that make progress.
    pub write_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// How long to wait before retrying after an accept error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptBackoff {
    /// The first delay.
    pub first: Duration,
    /// The delay doubles up to this.
    pub max: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> AcceptBackoff {
        AcceptBackoff {
            first: Duration::from_millis(10),
            max: Duration::from_secs(1),
        }
    }
}

/// The open connections of a [`GuardedAcceptor`], read from anywhere.
#[derive(Debug, Clone)]
pub struct OpenConnections {
    slots: Arc<Semaphore>,
    max: usize,
}

impl OpenConnections {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// The cap (`MAX_CONNECTIONS`).
    pub fn max(&self) -> usize {
        self.max
    }
}

/// An [`Acceptor`] with a connection cap, backed-off accept errors, a request head deadline and
/// JSON bodies for hyper's own error answers (see the [module](self) documentation).
pub struct GuardedAcceptor<A> {
    inner: A,
    limits: ConnectionLimits,
    backoff: AcceptBackoff,
    slots: Arc<Semaphore>,
    /// Signalled when a connection closes: a descriptor is free again.
    closed: Arc<Notify>,
    /// Whether the cap was reached and not yet left (to log it once).
    at_cap: bool,
}

impl<A: Acceptor> GuardedAcceptor<A> {
    /// Wraps `inner` with `limits`.
    pub fn new(inner: A, limits: ConnectionLimits) -> GuardedAcceptor<A> {
        GuardedAcceptor {
            inner,
            limits,
            backoff: AcceptBackoff::default(),
            slots: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            closed: Arc::new(Notify::new()),
            at_cap: false,
        }
    }

    /// With another backoff after accept errors.
    pub fn with_backoff(mut self, backoff: AcceptBackoff) -> GuardedAcceptor<A> {
        self.backoff = backoff;
        self
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.connections().open()
    }

    /// A handle that counts the open connections after the acceptor has gone to the server
    /// (for `/metrics`).
    pub fn connections(&self) -> OpenConnections {
        OpenConnections {
            slots: self.slots.clone(),
            max: self.limits.max_connections.max(1),
        }
    }

    async fn take_slot(&mut self) -> io::Result<Slot> {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.at_cap = false;
                permit
            }
            Err(_) => {
                if !self.at_cap {
                    self.at_cap = true;
                    tracing::warn!(
                        max_connections = self.limits.max_connections,
                        "connection limit reached: new connections wait until one closes"
                    );
                }
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| io::Error::other("the connection slots were closed"))?
            }
        };
        Ok(Slot {
            _permit: permit,
            closed: self.closed.clone(),
        })
    }
}

impl<A: Acceptor> Acceptor for GuardedAcceptor<A> {
    type Io = GuardedStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        // Cancel-safe, as poem's accept loop needs: dropping this future releases the slot,
        // and tokio's accept loses no connection when dropped.
        let slot = self.take_slot().await?;
        let mut delay = self.backoff.first;
        let mut failures: u64 = 0;
        loop {
            match self.inner.accept().await {
                Ok((io, local, remote, scheme)) => {
                    if failures > 0 {
                        tracing::info!(failures, "accepting connections again");
                    }
                    let stream = GuardedStream::new(io, slot, &self.limits);
                    return Ok((stream, local, remote, scheme));
                }
                Err(e) if is_connection_error(&e) => {
                    // That connection went away before it was accepted; the next one is fine.
                    tracing::debug!(error = %e, "connection lost before accept");
                }
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(100) {
                        tracing::warn!(
                            error = %e,
                            failures,
                            open_connections = self.open_connections(),
                            retry_in_ms = delay.as_millis() as u64,
                            "cannot accept connections, backing off"
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = self.closed.notified() => {}
                    }
                    delay = (delay * 2).min(self.backoff.max);
                }
            }
        }
    }
}

/// Errors of one connection that failed before it was accepted: retried at once.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// A connection's slot under the cap: freed, and the acceptor told, when the connection drops.
struct Slot {
    _permit: OwnedSemaphorePermit,
    closed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.closed.notify_one();
    }
}

/// The connection preface of HTTP/2 with prior knowledge: after it, frames, not heads.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The deadline of the request head being read, found by looking in the bytes read for the
/// blank line that ends a head (with `memchr`: never a step per byte, see [`HeadDeadline::read`]).
struct HeadDeadline {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// A head is being read and must be complete by `sleep`.
    armed: bool,
    /// The deadline passed: the connection is being closed.
    expired: bool,
    /// Where the bytes read stand in a blank line: 0 inside a line, 1 after `\n`, 2 after `\n\r`.
    line_end: u8,
    /// `Some(n)` while the first `n` bytes read match [`HTTP2_PREFACE`].
    preface: Option<usize>,
    /// HTTP/2: the deadline no longer applies (hyper's HTTP/2 has its own limits).
    http2: bool,
}

impl HeadDeadline {
    fn new(timeout: Duration) -> HeadDeadline {
        HeadDeadline {
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            armed: true,
            expired: false,
            line_end: 0,
            preface: Some(0),
            http2: false,
        }
    }

    fn arm(&mut self) {
        self.armed = true;
        self.sleep.as_mut().reset(Instant::now() + self.timeout);
    }

    /// Bytes were read from the client. The work is O(1) for a read that ends with a blank line
    /// (a whole request head, or pipelined ones: the usual read), otherwise one `memrchr` scan
    /// back to the last blank line of the read, and the HTTP/2 preface is compared once, over
    /// its first 24 bytes: never a step per byte.
    fn read(&mut self, bytes: &[u8]) {
        if self.http2 || bytes.is_empty() {
            return;
        }
        if let Some(matched) = self.preface {
            let n = bytes.len().min(HTTP2_PREFACE.len() - matched);
            if bytes[..n] == HTTP2_PREFACE[matched..matched + n] {
                if matched + n == HTTP2_PREFACE.len() {
                    self.http2 = true;
                    self.armed = false;
                    return;
                }
                self.preface = Some(matched + n);
            } else {
                self.preface = None;
            }
        }
        match self.last_head_end(bytes) {
            // The read ends with a head: none is being read.
            Some(end) if end == bytes.len() => self.armed = false,
            // A head ended, and the next one began in these bytes.
            Some(_) => self.arm(),
            None if !self.armed => self.arm(),
            // The head being read goes on: its deadline stays.
            None => {}
        }
        self.line_end = match bytes {
            [.., b'\n'] => 1,
            [.., b'\n', b'\r'] => 2,
            [b'\r'] if self.line_end == 1 => 2,
            _ => 0,
        };
    }

    /// Where the last blank line of `bytes` (a `\n` after `\n` or `\n\r`, those of the previous
    /// read included) ends, if there is one. A run of empty lines counts as one end of a head
    /// (hyper skips empty lines before a request line).
    fn last_head_end(&self, bytes: &[u8]) -> Option<usize> {
        memchr::memrchr_iter(b'\n', bytes)
            .find(|&at| match (at, self.line_end) {
                (0, 1 | 2) => true,
                (1, 1) if bytes[0] == b'\r' => true,
                (0, _) => false,
                _ => {
                    bytes[at - 1] == b'\n'
                        || (at >= 2 && bytes[at - 1] == b'\r' && bytes[at - 2] == b'\n')
                }
            })
            .map(|at| at + 1)
    }

    /// The server writes: the request being answered had its whole head; bytes read since were
    /// its body, and the next head starts with the next byte.
    fn answering(&mut self) {
        if !self.http2 && self.preface.is_none() {
            self.armed = false;
            self.line_end = 0;
        }
    }

    /// Whether the deadline has passed while a head is being read (registers the waker).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.armed && !self.expired && self.sleep.as_mut().poll(cx).is_ready() {
            self.expired = true;
            tracing::debug!(
                timeout_s = self.timeout.as_secs_f64(),
                "request head not received in time, closing the connection"
            );
        }
        self.expired
    }
}

/// The deadline of a write the client does not take (nginx's `send_timeout`): set when a write
/// first cannot go on, cleared by the next one that makes progress, so a slow reader that keeps
/// reading is never cut off, and one that stops is after `timeout`.
struct WriteDeadline {
    timeout: Duration,
    /// Made at the first blocked write: most connections never block.
    sleep: Option<Pin<Box<Sleep>>>,
    /// A write is blocked and must go on by `sleep`.
    armed: bool,
    /// The deadline passed: the connection is being closed.
    expired: bool,
}

impl WriteDeadline {
    fn new(timeout: Duration) -> WriteDeadline {
        WriteDeadline {
            timeout,
            sleep: None,
            armed: false,
            expired: false,
        }
    }

    /// Passes on the inner stream's answer to a write, flush or shutdown: a blocked one arms the
    /// deadline (registering the waker) and becomes an error once it has passed; any other
    /// answer disarms it.
    fn watch<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if !poll.is_pending() {
            self.armed = false;
            return poll;
        }
        if !self.armed {
            self.armed = true;
            let at = Instant::now() + self.timeout;
            match &mut self.sleep {
                Some(sleep) => sleep.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        if let Some(sleep) = &mut self.sleep
            && sleep.as_mut().poll(cx).is_ready()
        {
            self.expired = true;
            tracing::debug!(
                timeout_s = self.timeout.as_secs_f64(),
                "the client did not read its answer in time, closing the connection"
            );
            return Poll::Ready(Err(write_timeout()));
        }
        Poll::Pending
    }
}

fn write_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the client did not read its answer in time",
    )
}

/// A hyper answer being replaced by one with a JSON body.
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
}

/// An accepted connection: the inner stream with its slot under the cap, the request head
/// deadline, the write deadline, and hyper's own error answers given a JSON body (see the [module](self)
/// documentation).
pub struct GuardedStream<T> {
    inner: T,
    _slot: Slot,
    head: HeadDeadline,
    write: WriteDeadline,
    replacement: Option<Replacement>,
}

impl<T> GuardedStream<T> {
    fn new(inner: T, slot: Slot, limits: &ConnectionLimits) -> GuardedStream<T> {
        GuardedStream {
            inner,
            _slot: slot,
            head: HeadDeadline::new(limits.header_read_timeout),
            write: WriteDeadline::new(limits.write_timeout),
            replacement: None,
        }
    }
}

impl<T: AsyncWrite + Unpin> GuardedStream<T> {
    /// Writes out the replacement answer, if one is pending: `Ready(Ok(()))` when there is none
    /// (left).
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(replacement) = &mut self.replacement else {
            return Poll::Ready(Ok(()));
        };
        while replacement.written < replacement.bytes.len() {
            let rest = &replacement.bytes[replacement.written..];
            let poll = Pin::new(&mut self.inner).poll_write(cx, rest);
            match self.write.watch(cx, poll) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => replacement.written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.replacement = None;
        Poll::Ready(Ok(()))
    }

    /// Writes `buf` (all of `total` bytes hyper gave), replacing it when it is one of hyper's
    /// own error answers.
    fn poll_write_answer(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        total: usize,
    ) -> Option<Poll<io::Result<usize>>> {
        if self.replacement.is_none() {
            let (status, bytes) = json_for_automatic_answer(buf)?;
            tracing::info!(status, "request refused by the HTTP parser");
            self.replacement = Some(Replacement { bytes, written: 0 });
        }
        // hyper gives the same bytes again after a `Pending`: they count as written once the
        // replacement is.
        Some(self.poll_replacement(cx).map_ok(|()| total))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.head.expired {
            return Poll::Ready(Err(head_timeout()));
        }
        if this.write.expired {
            return Poll::Ready(Err(write_timeout()));
        }
        let before = buf.filled().len();
        // hyper reads into all the spare room of its buffer, which can be larger than its
        // limit on a head (HYPER_MAX_HEAD_BYTES): a head over the limit that arrived whole
        // before hyper read would be taken in one read and accepted. Reads of at most
        // MAX_READ_BYTES keep its check between two reads, so the limit holds to within one.
        let mut limited = buf.take(MAX_READ_BYTES);
        let read = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        // SAFETY: the inner reader filled the first `n` bytes of `limited`, which are the first
        // `n` unfilled bytes of `buf`.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        match read {
            Poll::Ready(Ok(())) => {
                this.head.read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.head.poll_expired(cx) {
                    Poll::Ready(Err(head_timeout()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

fn head_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request head did not arrive in time",
    )
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.expired {
            return Poll::Ready(Err(write_timeout()));
        }
        this.head.answering();
        if let Some(poll) = this.poll_write_answer(cx, buf, buf.len()) {
            return poll;
        }
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.write.watch(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.expired {
            return Poll::Ready(Err(write_timeout()));
        }
        this.head.answering();
        let mut non_empty = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (non_empty.next(), non_empty.next()) {
            let total = only.len();
            if let Some(poll) = this.poll_write_answer(cx, only, total) {
                return poll;
            }
        }
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.write.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write.expired {
            return Poll::Ready(Err(write_timeout()));
        }
        std::task::ready!(this.poll_replacement(cx))?;
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.write.watch(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.write.expired {
            return Poll::Ready(Err(write_timeout()));
        }
        std::task::ready!(this.poll_replacement(cx))?;
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.write.watch(cx, poll)
    }
}

/// When `written` is one of hyper's own error answers (a head alone, status 400, 414 or 431,
/// `content-length: 0`: the API's own errors always have a body), its status and the same
/// answer with a JSON body saying what is wrong.
pub fn json_for_automatic_answer(written: &[u8]) -> Option<(u16, Vec<u8>)> {
    let (status, message) = match written.strip_prefix(b"HTTP/1.1 ")?.get(..4)? {
        b"400 " => (
            400,
            "malformed request: the request line or a header is not valid HTTP/1.1; send a \
             request such as GET /health HTTP/1.1 followed by Name: value headers"
                .to_owned(),
        ),
        b"414 " => (
            414,
            format!("URI too long: at most {HYPER_MAX_URI_BYTES} bytes are accepted"),
        ),
        b"431 " => (
            431,
            format!(
                "request head too large: at most {HYPER_MAX_HEADERS} headers and {} KiB in all \
                 are accepted",
                HYPER_MAX_HEAD_BYTES / 1024
            ),
        ),
        _ => return None,
    };
    // The whole write is the head: no body follows an automatic answer.
    const END: &[u8] = b"\r\n\r\n";
    if written.windows(END.len()).position(|w| w == END) != Some(written.len() - END.len()) {
        return None;
    }
    const EMPTY: &[u8] = b"\r\ncontent-length: 0\r\n";
    let at = written
        .windows(EMPTY.len())
        .position(|w| w.eq_ignore_ascii_case(EMPTY))?;
    let body = serde_json::json!({ "error": message }).to_string();
    let mut out = Vec::with_capacity(written.len() + body.len() + 64);
    out.extend_from_slice(&written[..at]);
    out.extend_from_slice(b"\r\ncontent-type: application/json; charset=utf-8");
    out.extend_from_slice(format!("\r\ncontent-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(&written[at + EMPTY.len()..]);
    out.extend_from_slice(body.as_bytes());
    Some((status, out))
}

/// The soft limit on open files of this process (Linux: `/proc/self/limits`), to warn when the
/// connection cap cannot be reached before descriptors run out.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// An acceptor that fails with `EMFILE` while `exhausted` is set, and hands out in-memory
    /// connections otherwise.
    struct FakeAcceptor {
        calls: Arc<AtomicUsize>,
        exhausted: Arc<AtomicBool>,
        peers: Vec<DuplexStream>,
    }

    impl Acceptor for FakeAcceptor {
        type Io = DuplexStream;

        fn local_addr(&self) -> Vec<LocalAddr> {
            vec![LocalAddr::default()]
        }

        async fn accept(&mut self) -> io::Result<(DuplexStream, LocalAddr, RemoteAddr, Scheme)> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.exhausted.load(Ordering::SeqCst) {
                // EMFILE: what accept(2) says when the process has no descriptor left.
                return Err(io::Error::from_raw_os_error(24));
            }
            let (ours, theirs) = tokio::io::duplex(1024);
            self.peers.push(theirs);
            Ok((
                ours,
                LocalAddr::default(),
                RemoteAddr::default(),
                Scheme::HTTP,
            ))
        }
    }

    fn fake(
        limits: ConnectionLimits,
    ) -> (
        GuardedAcceptor<FakeAcceptor>,
        Arc<AtomicUsize>,
        Arc<AtomicBool>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let exhausted = Arc::new(AtomicBool::new(false));
        let inner = FakeAcceptor {
            calls: calls.clone(),
            exhausted: exhausted.clone(),
            peers: Vec::new(),
        };
        (GuardedAcceptor::new(inner, limits), calls, exhausted)
    }

    #[tokio::test]
    async fn accept_errors_are_backed_off_not_spun_on() {
        let (mut acceptor, calls, exhausted) = fake(ConnectionLimits::default());
        exhausted.store(true, Ordering::SeqCst);
        let accepting = tokio::time::timeout(Duration::from_millis(500), acceptor.accept()).await;
        assert!(accepting.is_err(), "accepted while out of descriptors");
        // A spinning loop retries hundreds of thousands of times in half a second; the backoff
        // (10, 20, 40 ms… up to 1 s) about six times.
        let retries = calls.load(Ordering::SeqCst);
        assert!(
            (2..=20).contains(&retries),
            "{retries} accept calls in 500 ms"
        );
    }

    #[tokio::test]
    async fn a_closing_connection_ends_the_backoff_at_once() {
        let (acceptor, calls, exhausted) = fake(ConnectionLimits::default());
        // A backoff far longer than the test: only a closing connection can end it.
        let mut acceptor = acceptor.with_backoff(AcceptBackoff {
            first: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
        });
        let (first, ..) = acceptor.accept().await.unwrap();
        exhausted.store(true, Ordering::SeqCst);
        let waiting = tokio::spawn(async move {
            let accepted = acceptor.accept().await.map(|(stream, ..)| stream);
            (accepted, acceptor)
        });
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        exhausted.store(false, Ordering::SeqCst);
        drop(first);
        let (accepted, acceptor) = tokio::time::timeout(Duration::from_secs(30), waiting)
            .await
            .expect("still backing off after a connection closed")
            .unwrap();
        let _second = accepted.unwrap();
        assert_eq!(acceptor.open_connections(), 1);
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_slot() {
        let limits = ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        };
        let (mut acceptor, calls, _) = fake(limits);
        let (a, ..) = acceptor.accept().await.unwrap();
        let (_b, ..) = acceptor.accept().await.unwrap();
        assert_eq!(acceptor.open_connections(), 2);
        let third = tokio::time::timeout(Duration::from_millis(100), acceptor.accept()).await;
        assert!(
            third.is_err(),
            "a third connection was accepted over a cap of 2"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "accept was called at the cap"
        );
        drop(a);
        let (_c, ..) = tokio::time::timeout(Duration::from_secs(30), acceptor.accept())
            .await
            .expect("no slot after a connection closed")
            .unwrap();
        assert_eq!(acceptor.open_connections(), 2);
    }

    #[tokio::test]
    async fn the_deadline_covers_each_head_and_nothing_else() {
        let mut d = HeadDeadline::new(Duration::from_secs(10));
        assert!(d.armed, "armed from the connection's opening");
        d.read(b"GET /health HTTP/1.1\r\nHost: a\r\n");
        assert!(d.armed);
        d.read(b"\r");
        assert!(d.armed);
        d.read(b"\n");
        assert!(!d.armed, "a complete head");
        // The next request, split anyhow, with bare line feeds.
        d.read(b"G");
        assert!(d.armed);
        d.read(b"ET / HTTP/1.1\nHost: a\n");
        assert!(d.armed);
        d.read(b"\n");
        assert!(!d.armed);
        // A body, then the answer: the next head starts with the next byte.
        d.read(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        assert!(d.armed, "body bytes look like a head until the answer");
        d.answering();
        assert!(!d.armed);
        d.read(b"GET");
        assert!(d.armed);

        let mut h2 = HeadDeadline::new(Duration::from_secs(10));
        h2.read(&HTTP2_PREFACE[..10]);
        assert!(h2.armed && !h2.http2);
        h2.read(&HTTP2_PREFACE[10..]);
        assert!(!h2.armed && h2.http2);
        h2.read(b"\x00\x00\x12\x04frames");
        assert!(!h2.armed, "no head deadline on HTTP/2 frames");
    }

    /// The byte-at-a-time state machine the deadline used to run, as a reference: whether a
    /// head is being read after each chunk.
    fn armed_byte_by_byte(chunks: &[&[u8]]) -> Vec<bool> {
        let (mut armed, mut line_end) = (true, 0u8);
        let mut out = Vec::new();
        for chunk in chunks {
            for &byte in *chunk {
                armed = true;
                line_end = match (byte, line_end) {
                    (b'\n', 1 | 2) => {
                        armed = false;
                        0
                    }
                    (b'\n', _) => 1,
                    (b'\r', 1) => 2,
                    _ => 0,
                };
            }
            out.push(armed);
        }
        out
    }

    #[tokio::test]
    async fn the_deadline_agrees_with_a_byte_by_byte_reading_however_the_bytes_are_split() {
        let stream: &[u8] = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\nHost: b\n\n\
                              GET /c HTTP/1.1\r\nX-A: \r\nX-B: y\r\n\r\nGET /d HTTP/1.1\r\n";
        for first in 1..stream.len() {
            for second in first + 1..stream.len() {
                let chunks = [&stream[..first], &stream[first..second], &stream[second..]];
                let mut d = HeadDeadline::new(Duration::from_secs(10));
                let armed: Vec<bool> = chunks
                    .iter()
                    .map(|chunk| {
                        d.read(chunk);
                        d.armed
                    })
                    .collect();
                assert_eq!(
                    armed,
                    armed_byte_by_byte(&chunks),
                    "split at {first} and {second}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_head_that_does_not_arrive_in_time_closes_the_stream() {
        let (mut acceptor, ..) = fake(ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            ..ConnectionLimits::default()
        });
        let (mut stream, ..) = acceptor.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let err = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("the deadline never fired")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // And it stays closed.
        assert!(stream.read(&mut buf).await.is_err());
    }

    #[tokio::test]
    async fn a_write_the_client_does_not_take_fails_after_the_write_timeout() {
        let (mut acceptor, ..) = fake(ConnectionLimits {
            write_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        });
        let (mut stream, ..) = acceptor.accept().await.unwrap();
        let mut peer = acceptor.inner.peers.pop().unwrap();
        // A reader that keeps taking bytes, slower than the writer but well within the timeout
        // each time, for three times the timeout: never cut off.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            for _ in 0..9 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                peer.read_exact(&mut buf).await.unwrap();
            }
            peer
        });
        let chunk = [b'x'; 256];
        // The duplex buffer (1 KiB) plus what the reader takes: the writer blocks between reads.
        for _ in 0..13 {
            tokio::time::timeout(Duration::from_secs(30), stream.write_all(&chunk))
                .await
                .expect("a write waited for ever")
                .expect("a reader that reads was cut off");
        }
        let peer = reader.await.unwrap();
        // Now the reader stops: the write that cannot go on fails once the timeout has passed.
        let started = Instant::now();
        let err = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Err(e) = stream.write_all(&chunk).await {
                    return e;
                }
            }
        })
        .await
        .expect("the write deadline never fired");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        // And the stream stays failed, both ways.
        assert!(stream.write_all(b"x").await.is_err());
        let mut buf = [0u8; 8];
        assert!(stream.read(&mut buf).await.is_err());
        drop(peer);
    }

    #[test]
    fn hypers_own_answers_get_a_json_body() {
        for (status, reason, words) in [
            (400, "Bad Request", "malformed request"),
            (414, "URI Too Long", "65534 bytes"),
            (431, "Request Header Fields Too Large", "100 headers"),
        ] {
            let head = format!(
                "HTTP/1.1 {status} {reason}\r\nconnection: close\r\ncontent-length: 0\r\ndate: \
                 Wed, 02 Dec 2026 09:51:13 GMT\r\n\r\n"
            );
            let (found, answer) = json_for_automatic_answer(head.as_bytes()).unwrap();
            assert_eq!(found, status);
            let answer = String::from_utf8(answer).unwrap();
            let (new_head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(new_head.starts_with(&format!("HTTP/1.1 {status} {reason}\r\n")));
            assert!(new_head.contains("\r\nconnection: close"), "{new_head}");
            assert!(new_head.contains("\r\ndate: Wed"), "{new_head}");
            assert!(
                new_head.contains("content-type: application/json"),
                "{new_head}"
            );
            assert!(
                new_head.contains(&format!("content-length: {}", body.len())),
                "{new_head}"
            );
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(json["error"].as_str().unwrap().contains(words), "{body}");
        }
        // The API's own answers, and anything with a body, pass untouched.
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 20\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"{\"error\":\"HTTP/1.1 400 \"}",
            b"",
        ] {
            assert!(json_for_automatic_answer(other).is_none(), "{other:?}");
        }
    }

    #[tokio::test]
    async fn a_replaced_answer_is_written_whole_through_a_slow_socket() {
        let (mut acceptor, ..) = fake(ConnectionLimits::default());
        let (stream, ..) = acceptor.accept().await.unwrap();
        let mut peer = acceptor.inner.peers.pop().unwrap();
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\n\r\n";
        let mut stream = stream;
        let writer = tokio::spawn(async move {
            // The duplex buffer is 1 KiB: the write goes through in pieces.
            stream.write_all(head).await.unwrap();
            stream.flush().await.unwrap();
            stream.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        peer.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap();
        let received = String::from_utf8(received).unwrap();
        let (_, body) = received.split_once("\r\n\r\n").unwrap();
        assert!(
            body.starts_with("{\"error\":\"request head too large"),
            "{received}"
        );
    }
}
