//! Fetching one hour: a task per hour in flight that waits until the hour is due, downloads
//! it (or opens it in a local mirror), retries what fails, and hands the hour's kept events
//! over a bounded channel, ending with what became of the hour.
//!
//! Bytes go from the HTTP body (the task) through a small channel to a blocking thread that
//! gunzips and parses them with the file reader and the fast parser; parsed events go through
//! the hour's channel to the source. When nobody takes them (an hour fetched ahead of its
//! turn), the channels fill, the parser stops reading, the task stops receiving, and TCP's
//! window stops the server: memory stays bounded however large the hour.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use chrono::{DateTime, Utc};
use reqwest::{StatusCode, Url};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::config::GhArchiveConfig;
use super::hours::archive_file_name;
use super::status::{ArchiveFollowerStatus, FetchState};
use crate::backoff::Backoff;
use crate::coverage::{ArchiveStatus, HOUR_SECONDS};
use crate::event::Event;
use crate::parse::ParseStats;
use crate::source::file::{EventFileReader, GzipMembers, read_up_to};
use crate::source::{SourceError, describe_http_error};

/// Body chunks buffered between the download and the parser (a chunk is at most a few tens of
/// kilobytes).
const BYTE_CHANNEL_CHUNKS: usize = 16;

/// Received bytes are reported to the status every this many.
const STATUS_EVERY_BYTES: u64 = 1 << 20;

/// What an hour's task hands over, in order.
#[derive(Debug)]
pub(super) enum HourItem {
    /// Kept events read, in file order, with the counts of what was read for them.
    Events {
        events: Vec<Event>,
        stats: ParseStats,
        bytes: u64,
    },
    /// The attempt failed: the events of the next attempt start from the file's beginning
    /// again.
    Restart,
    /// The hour is finished: nothing follows.
    Done(HourEnd),
}

/// What became of an hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HourEnd {
    /// Read whole.
    Complete,
    /// Still not published long after its end: a hole in the archive.
    Missing,
    /// Could not be read whole after many tries, past the grace period.
    Damaged { error: String },
    /// The store already records it (another process, an earlier run): not downloaded.
    Recorded(ArchiveStatus),
    /// Not published yet, or failing (`failed`), and not waited for (a backfill): nothing
    /// recorded.
    Pending { reason: String, failed: bool },
}

/// Why one attempt did not read the hour.
#[derive(Debug)]
enum AttemptError {
    /// 404 or 403 (what object stores answer for a missing key), or no file in the mirror.
    NotPublished(String),
    /// A file that reads whole but holds no event (a valid empty gzip, an error page gzipped):
    /// not the hour; retried like an unpublished one, and damaged past the grace period.
    Empty(String),
    /// Anything else: retried with backoff.
    Failed(String),
    /// Nobody takes the events any more (the source was dropped).
    Gone,
}

/// Why an attempt found no hour to import.
enum NoHour {
    /// No file (404, 403, none in the mirror).
    NotPublished(String),
    /// A file without a readable event.
    Empty(String),
}

/// What follows an attempt that did not read the hour.
enum AfterAttempt {
    /// Another attempt, after this wait.
    RetryIn(Duration),
    /// The hour ends so; `None` when nobody takes its events any more.
    End(Option<HourEnd>),
}

/// The attempts at one hour so far.
#[derive(Debug, Default)]
struct Tries {
    /// Attempts made, the current one included.
    attempt: u32,
    /// Attempts that failed.
    failures: u32,
    /// Attempts that found no file, or one holding no event.
    unpublished: u32,
}

enum Location {
    Http(Url),
    Dir(PathBuf),
}

/// What every hour's task shares.
pub(super) struct Fetcher {
    pub(super) config: GhArchiveConfig,
    client: reqwest::Client,
    location: Location,
    /// The store's records when the follower started: hours recorded are not fetched again.
    recorded: HashMap<DateTime<Utc>, ArchiveStatus>,
    status: ArchiveFollowerStatus,
}

/// `t + d`, saturating.
fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn at_utc(at: Instant) -> DateTime<Utc> {
    let wait = at.saturating_duration_since(Instant::now());
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|d| Utc::now().checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn instant_at(at: DateTime<Utc>) -> Instant {
    let wait = (at - Utc::now()).to_std().unwrap_or_default();
    Instant::now() + wait
}

/// `2026-11-30-5`, how hours are named in logs.
pub(super) fn hour_name(hour: DateTime<Utc>) -> String {
    archive_file_name(hour)
        .trim_end_matches(".json.gz")
        .to_owned()
}

impl Fetcher {
    pub(super) fn new(
        config: GhArchiveConfig,
        recorded: HashMap<DateTime<Utc>, ArchiveStatus>,
        status: ArchiveFollowerStatus,
    ) -> Result<Fetcher, SourceError> {
        let trimmed = config.base_url.expose_secret().trim().trim_end_matches('/');
        let url = Url::parse(&format!("{trimmed}/"))
            .map_err(|e| SourceError::Config(format!("invalid GH Archive URL: {e}")))?;
        let location = match url.scheme() {
            "http" | "https" => Location::Http(url.clone()),
            "file" => {
                let dir = url.to_file_path().map_err(|()| {
                    SourceError::Config("GH Archive file URL must name a local directory".into())
                })?;
                if !dir.is_dir() {
                    return Err(SourceError::Config(format!(
                        "GH Archive mirror directory {} does not exist",
                        dir.display()
                    )));
                }
                Location::Dir(dir)
            }
            other => {
                return Err(SourceError::Config(format!(
                    "GH Archive URL must be http, https or file, not {other}"
                )));
            }
        };
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .redirect(crate::source::same_host_redirects())
            .build()
            .map_err(|e| SourceError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(Fetcher {
            config,
            client,
            location,
            recorded,
            status,
        })
    }

    /// Fetches `hour` into `tx`, then says what became of it. Ends early when `tx`'s receiver
    /// is gone.
    pub(super) async fn run_hour(self: Arc<Self>, hour: DateTime<Utc>, tx: mpsc::Sender<HourItem>) {
        let Some(end) = self.fetch_hour(hour, &tx).await else {
            return;
        };
        if end == HourEnd::Complete {
            self.status.fetch(hour, |f| {
                f.state = FetchState::Downloaded;
                f.next_attempt_at = None;
            });
        }
        let _ = tx.send(HourItem::Done(end)).await;
    }

    async fn fetch_hour(
        &self,
        hour: DateTime<Utc>,
        tx: &mpsc::Sender<HourItem>,
    ) -> Option<HourEnd> {
        let name = hour_name(hour);
        self.status.fetch(hour, |f| f.state = FetchState::Checking);
        if let Some(end) = self.skip_if_recorded(hour, &name) {
            return Some(end);
        }
        let hour_end = hour + chrono::Duration::seconds(HOUR_SECONDS);
        let due = after(hour_end, self.config.publish_delay);
        let grace_end = after(hour_end, self.config.missing_after);
        if Utc::now() < due {
            if !self.config.wait_for_publication {
                return Some(HourEnd::Pending {
                    reason: "not published yet".into(),
                    failed: false,
                });
            }
            self.wait(hour, instant_at(due)).await;
        }

        let mut tries = Tries::default();
        loop {
            tries.attempt += 1;
            self.status.fetch(hour, |f| {
                f.state = FetchState::Downloading;
                f.attempts = tries.attempt;
                f.bytes_received = 0;
                f.next_attempt_at = None;
            });
            let result = self.attempt(hour, tx).await;
            let past_grace = Utc::now() >= grace_end;
            let next = match result {
                Ok(()) => {
                    self.status.update(|s| s.consecutive_failures = 0);
                    return Some(HourEnd::Complete);
                }
                Err(AttemptError::Gone) => return None,
                Err(AttemptError::NotPublished(reason)) => {
                    self.after_no_hour(&name, &mut tries, past_grace, NoHour::NotPublished(reason))
                }
                Err(AttemptError::Empty(error)) => {
                    self.after_no_hour(&name, &mut tries, past_grace, NoHour::Empty(error))
                }
                Err(AttemptError::Failed(error)) => {
                    self.after_failure(hour, &name, &mut tries, past_grace, error, tx)
                        .await
                }
            };
            match next {
                AfterAttempt::RetryIn(wait) => self.wait(hour, Instant::now() + wait).await,
                AfterAttempt::End(end) => return end,
            }
        }
    }

    /// How the hour ends without a download when the store records it already (a damaged
    /// hour is fetched again when `retry_damaged`).
    fn skip_if_recorded(&self, hour: DateTime<Utc>, name: &str) -> Option<HourEnd> {
        let status = self.recorded(hour)?;
        let skip = match status {
            ArchiveStatus::Imported | ArchiveStatus::Missing => true,
            ArchiveStatus::Damaged => !self.config.retry_damaged,
        };
        if !skip {
            return None;
        }
        debug!(hour = %name, status = %status, "gh archive hour already recorded, skipped");
        Some(HourEnd::Recorded(status))
    }

    /// An attempt found no file, or a file holding no event: confirmed past the grace period
    /// by a second such answer (then missing, or damaged for an empty file), pending for a
    /// backfill before it, else asked again.
    fn after_no_hour(
        &self,
        name: &str,
        tries: &mut Tries,
        past_grace: bool,
        why: NoHour,
    ) -> AfterAttempt {
        tries.unpublished += 1;
        let attempt = tries.attempt;
        if let NoHour::Empty(error) = &why {
            self.status.error(format!("{name}: {error}"));
        }
        // Past the grace period, a second answer a few seconds later confirms it: a missing or
        // damaged record is not fetched again by the follower.
        if past_grace && tries.unpublished >= 2 {
            return AfterAttempt::End(Some(match why {
                NoHour::NotPublished(reason) => {
                    info!(hour = %name, attempt, reason = %reason, "gh archive hour missing, skipped");
                    HourEnd::Missing
                }
                NoHour::Empty(error) => {
                    warn!(hour = %name, attempt, error = %error, "gh archive hour holds no event, recorded as damaged");
                    HourEnd::Damaged { error }
                }
            }));
        }
        if !past_grace && !self.config.wait_for_publication {
            let reason = match why {
                NoHour::NotPublished(reason) => format!("not published yet ({reason})"),
                NoHour::Empty(error) => format!("no event in the file yet ({error})"),
            };
            return AfterAttempt::End(Some(HourEnd::Pending {
                reason,
                failed: false,
            }));
        }
        let wait = self.unpublished_retry(past_grace, tries.unpublished);
        let retry_in_s = wait.as_secs();
        match why {
            NoHour::NotPublished(reason) => {
                info!(hour = %name, attempt, retry_in_s, reason = %reason, "gh archive hour not published yet")
            }
            NoHour::Empty(error) => {
                info!(hour = %name, attempt, retry_in_s, error = %error, "gh archive hour holds no event, retrying")
            }
        }
        AfterAttempt::RetryIn(wait)
    }

    /// An attempt failed: the events sent so far are taken back, and after
    /// `failures_before_damaged` failures the hour is damaged (past the grace period) or
    /// pending (a backfill); else tried again with backoff.
    async fn after_failure(
        &self,
        hour: DateTime<Utc>,
        name: &str,
        tries: &mut Tries,
        past_grace: bool,
        error: String,
        tx: &mpsc::Sender<HourItem>,
    ) -> AfterAttempt {
        tries.failures += 1;
        let (attempt, failures) = (tries.attempt, tries.failures);
        self.status.update(|s| {
            s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            s.failed_downloads += 1;
        });
        self.status.fetch(hour, |f| f.failures = failures);
        self.status.error(format!("{name}: {error}"));
        if tx.send(HourItem::Restart).await.is_err() {
            return AfterAttempt::End(None);
        }
        if failures >= self.config.failures_before_damaged.max(1) {
            if past_grace {
                warn!(hour = %name, attempt, error = %error, "gh archive hour damaged, keeping what was read");
                return AfterAttempt::End(Some(HourEnd::Damaged { error }));
            }
            if !self.config.wait_for_publication {
                return AfterAttempt::End(Some(HourEnd::Pending {
                    reason: format!("failed {failures} times: {error}"),
                    failed: true,
                }));
            }
        }
        let wait = Backoff::new(self.config.min_retry, self.config.max_retry).wait(failures);
        warn!(
            hour = %name,
            attempt,
            retry_in_s = wait.as_secs(),
            error = %error,
            "gh archive download failed, retrying"
        );
        AfterAttempt::RetryIn(wait)
    }

    /// The wait before asking again for an hour not there (or empty): short past the grace
    /// period, where only a confirmation is wanted; growing before it.
    fn unpublished_retry(&self, past_grace: bool, unpublished: u32) -> Duration {
        if past_grace {
            self.config.min_retry
        } else {
            Backoff::new(
                self.config.unpublished_retry,
                self.config.max_unpublished_retry,
            )
            .wait(unpublished)
        }
    }

    async fn wait(&self, hour: DateTime<Utc>, until: Instant) {
        self.status.fetch(hour, |f| {
            f.state = FetchState::Waiting;
            f.next_attempt_at = Some(at_utc(until));
        });
        tokio::time::sleep_until(until).await;
    }

    /// What the store recorded for `hour` when the follower started, if anything.
    fn recorded(&self, hour: DateTime<Utc>) -> Option<ArchiveStatus> {
        self.recorded.get(&hour).copied()
    }

    /// One download (or opening) of `hour`, its events sent to `tx` as they are parsed.
    async fn attempt(
        &self,
        hour: DateTime<Utc>,
        tx: &mpsc::Sender<HourItem>,
    ) -> Result<(), AttemptError> {
        let name = archive_file_name(hour);
        let settings = Decode {
            name: name.clone(),
            batch_size: self.config.batch_size.max(1),
            chunk_bytes: self.config.chunk_bytes,
            max_record_bytes: self.config.max_record_bytes,
            tx: tx.clone(),
        };
        match &self.location {
            Location::Dir(dir) => {
                let path = dir.join(&name);
                tokio::task::spawn_blocking(move || {
                    // Only a regular file: a FIFO in the mirror would block this thread forever.
                    let file = match crate::source::file::open_regular_file(&path) {
                        Ok(file) => file,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            return Err(AttemptError::NotPublished(format!(
                                "no file {}",
                                path.display()
                            )));
                        }
                        Err(e) => {
                            return Err(AttemptError::Failed(format!(
                                "cannot open {}: {e}",
                                path.display()
                            )));
                        }
                    };
                    settings.run(file)
                })
                .await
                .unwrap_or_else(|e| Err(AttemptError::Failed(format!("reader task failed: {e}"))))
            }
            Location::Http(base) => {
                let url = base
                    .join(&name)
                    .map_err(|e| AttemptError::Failed(format!("bad URL: {e}")))?;
                self.download(url, hour, settings).await
            }
        }
    }

    async fn download(
        &self,
        url: Url,
        hour: DateTime<Utc>,
        settings: Decode,
    ) -> Result<(), AttemptError> {
        let response = self.request(url).await?;
        let (byte_tx, byte_rx) = mpsc::channel::<Result<Bytes, String>>(BYTE_CHANNEL_CHUNKS);
        let parser = tokio::task::spawn_blocking(move || {
            settings.run(ChannelReader {
                rx: byte_rx,
                current: Bytes::new(),
            })
        });
        let transfer_error = self.receive_body(response, hour, &byte_tx).await;
        if let Some(error) = &transfer_error {
            // The parser must see a failure, not an end: a file cut between two gzip members
            // would otherwise look whole.
            let _ = byte_tx.send(Err(error.clone())).await;
        }
        drop(byte_tx);
        let parsed = parser
            .await
            .unwrap_or_else(|e| Err(AttemptError::Failed(format!("parser task failed: {e}"))));
        match (parsed, transfer_error) {
            (Err(AttemptError::Gone), _) => Err(AttemptError::Gone),
            (_, Some(error)) => Err(AttemptError::Failed(error)),
            (parsed, None) => parsed,
        }
    }

    /// The answer to a GET of `url` when it is `200 OK`, its body not read yet.
    async fn request(&self, url: Url) -> Result<reqwest::Response, AttemptError> {
        let stall = self.config.stall_timeout;
        let response = match tokio::time::timeout(stall, self.client.get(url).send()).await {
            Err(_) => {
                return Err(AttemptError::Failed(format!(
                    "no answer within {} s",
                    stall.as_secs()
                )));
            }
            Ok(Err(e)) => {
                return Err(AttemptError::Failed(describe_http_error(
                    &e,
                    "GH Archive",
                    None,
                )));
            }
            Ok(Ok(response)) => response,
        };
        match response.status() {
            StatusCode::OK => Ok(response),
            s @ (StatusCode::NOT_FOUND | StatusCode::FORBIDDEN) => {
                Err(AttemptError::NotPublished(format!("HTTP {}", s.as_u16())))
            }
            s if s.is_redirection() => Err(AttemptError::Failed(format!(
                "HTTP {} redirecting to another host, not followed",
                s.as_u16()
            ))),
            s => Err(AttemptError::Failed(format!("HTTP {}", s.as_u16()))),
        }
    }

    /// Passes the body's chunks to the parser as they arrive (waiting while it is paused),
    /// counting them in the hour's status, until the end, a parser that stopped, or a transfer
    /// error, which it returns. The response is closed when it returns.
    async fn receive_body(
        &self,
        mut response: reqwest::Response,
        hour: DateTime<Utc>,
        byte_tx: &mpsc::Sender<Result<Bytes, String>>,
    ) -> Option<String> {
        let stall = self.config.stall_timeout;
        let mut transfer_error = None;
        let mut unreported = 0u64;
        loop {
            match tokio::time::timeout(stall, response.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    unreported += bytes.len() as u64;
                    if unreported >= STATUS_EVERY_BYTES {
                        let n = std::mem::take(&mut unreported);
                        self.status.fetch(hour, |f| f.bytes_received += n);
                    }
                    // Waits while the parser is paused: that is the backpressure.
                    if byte_tx.send(Ok(bytes)).await.is_err() {
                        break;
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    transfer_error = Some(describe_http_error(&e, "GH Archive", None));
                    break;
                }
                Err(_) => {
                    transfer_error = Some(format!(
                        "download stalled: nothing received for {} s",
                        stall.as_secs()
                    ));
                    break;
                }
            }
        }
        self.status.fetch(hour, |f| f.bytes_received += unreported);
        drop(response);
        transfer_error
    }
}

/// The body's chunks as a blocking reader, for the parser thread.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(message)) => return Err(io::Error::other(message)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Gunzipping and parsing one hour file (on a blocking thread).
struct Decode {
    name: String,
    batch_size: usize,
    chunk_bytes: usize,
    max_record_bytes: usize,
    tx: mpsc::Sender<HourItem>,
}

impl Decode {
    fn run(self, input: impl Read + Send + 'static) -> Result<(), AttemptError> {
        let failed = |e: io::Error| AttemptError::Failed(format!("cannot read the file: {e}"));
        let mut input = input;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut input, &mut magic).map_err(failed)?;
        if n < 2 {
            return Err(AttemptError::Failed(
                "empty file: no gzip header".to_owned(),
            ));
        }
        if magic != [0x1f, 0x8b] {
            return Err(AttemptError::Failed(
                "invalid gzip header: not a gzip file".to_owned(),
            ));
        }
        // Every member, and an error for what follows the last one that is not a member (zero
        // padding included), after the members' records were all handed on.
        let gzip = GzipMembers::new(io::BufReader::with_capacity(
            64 * 1024,
            Read::chain(io::Cursor::new(magic), input),
        ));
        let mut reader = EventFileReader::from_reader(self.name, Box::new(gzip), self.chunk_bytes)
            .json_lines()
            .with_max_record_bytes(self.max_record_bytes);
        let mut events = Vec::new();
        let mut stats = ParseStats::default();
        let mut bytes = 0u64;
        // Records that read as events of any type: a file with none is not an hour of GitHub.
        let mut readable = 0u64;
        let mut records = 0u64;
        loop {
            let chunk = match reader.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) if readable == 0 => {
                    return Err(AttemptError::Empty(format!(
                        "the file holds no event ({records} records, none readable)"
                    )));
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    // What was read before the break is handed on: a damaged hour keeps it.
                    if !events.is_empty() {
                        let item = HourItem::Events {
                            events,
                            stats,
                            bytes,
                        };
                        if self.tx.blocking_send(item).is_err() {
                            return Err(AttemptError::Gone);
                        }
                    }
                    return Err(failed(e));
                }
            };
            readable += chunk.stats.kept_total() + chunk.stats.other_types + chunk.stats.invalid;
            records += chunk.stats.records;
            stats.merge(&chunk.stats);
            bytes += chunk.bytes;
            events.extend(chunk.events);
            if events.len() >= self.batch_size || (chunk.last && stats.records > 0) {
                let item = HourItem::Events {
                    events: std::mem::take(&mut events),
                    stats: std::mem::take(&mut stats),
                    bytes: std::mem::take(&mut bytes),
                };
                if self.tx.blocking_send(item).is_err() {
                    return Err(AttemptError::Gone);
                }
            }
        }
    }
}
