//! `--gharchive FROM..UNTIL`: GH Archive hours downloaded and imported by core's archive
//! follower ([`GhArchiveSource`]) through the ingest loop, with progress and a summary listing
//! the hours that were missing, damaged or not available yet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use github_stats_core::coverage::ArchiveStatus;
use github_stats_core::ingest::{Ingest, IngestConfig, IngestError, IngestReport};
use github_stats_core::source::gharchive::{
    ArchiveFollowerStatus, DEFAULT_GHARCHIVE_URL, DEFAULT_MISSING_AFTER, GhArchiveConfig,
    GhArchiveSource, HourRange,
};
use github_stats_core::{EventSource, EventStore, SecretUrl, SharedStore, TimeWindow};
use tokio_util::sync::CancellationToken;

use crate::progress::ArchiveProgress;
use crate::summary::ArchiveSummary;
use crate::{Config, Summary, open_store, recount_if_asked};

/// Most hours downloaded at once, whatever `--jobs` says: GH Archive is one person's service.
pub const MAX_PARALLEL_DOWNLOADS: usize = 8;

/// GH Archive hours to import: `[from, until)`, from `base_url`.
///
/// A re-run skips the hours the store records as imported or missing without downloading them,
/// and fetches again those recorded as damaged. Hours not published yet (or failing, within
/// their grace period) are left for a later run, listed as pending.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ArchiveImport {
    /// The first hour.
    pub from: DateTime<Utc>,
    /// The end (exclusive).
    pub until: DateTime<Utc>,
    /// `GHARCHIVE_URL`: `https://data.gharchive.org`, a mirror, or `file:///dir`.
    pub base_url: SecretUrl,
    /// `GHARCHIVE_MISSING_AFTER`: an hour still not published this long after its end is a
    /// hole (missing); also the grace period before a failing hour is recorded as damaged.
    pub missing_after: Duration,
    /// The first wait after a failed download (2 s), doubling.
    pub min_retry: Duration,
    /// The longest wait between failed downloads (5 minutes).
    pub max_retry: Duration,
    /// Failed downloads of an hour before it is given up (damaged past its grace period,
    /// pending before) (5).
    pub failures_before_damaged: u32,
}

impl ArchiveImport {
    /// `[from, until)` from GH Archive, with the defaults.
    pub fn new(from: DateTime<Utc>, until: DateTime<Utc>) -> ArchiveImport {
        let defaults = GhArchiveConfig::backfill(from, until);
        ArchiveImport {
            from,
            until,
            base_url: SecretUrl::from(DEFAULT_GHARCHIVE_URL),
            missing_after: DEFAULT_MISSING_AFTER,
            min_retry: defaults.min_retry,
            max_retry: defaults.max_retry,
            failures_before_damaged: defaults.failures_before_damaged,
        }
    }

    /// The range, as hours.
    pub fn range(&self) -> HourRange {
        HourRange {
            from: self.from,
            until: Some(self.until),
        }
    }
}

pub(crate) async fn run(
    config: &Config,
    archive: &ArchiveImport,
    cancel: CancellationToken,
) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let mut summary = Summary::new(config.dry_run);
    let (store, clickhouse) = open_store(config).await?;
    summary.backend = store.backend_name();

    let follow = follower_config(config, archive);
    let parallel = follow.parallel;
    let source = GhArchiveSource::open(follow, &*store)
        .await
        .map_err(anyhow::Error::new)
        .context("cannot read GH Archive")?;
    let status = source.status();
    let range = archive.range();
    let hours = range.hours().unwrap_or(0).max(0) as u64;
    tracing::info!(
        range = %range,
        hours,
        url = %status.snapshot().base_url,
        backend = summary.backend,
        dry_run = config.dry_run,
        parallel,
        "backfill of gh archive hours starting"
    );

    let report = follow_hours(config, source, &status, &store, &cancel, hours).await;
    let flushed = store.flush().await;
    let report = report.context("the import loop")?;
    record_ingest_report(&mut summary, &report, &cancel);
    flushed.context("cannot flush the store")?;
    if !report.completed && !summary.interrupted {
        anyhow::bail!(
            "the import stopped: {}",
            report
                .source_error_messages
                .last()
                .map_or("", String::as_str)
        );
    }

    summary.archive = Some(hour_outcomes(&store, archive, &status, hours).await?);
    summary.elapsed = started.elapsed();
    recount_if_asked(config, clickhouse, &mut summary, started).await?;
    Ok(summary)
}

/// The archive follower's settings: the command line's, over the backfill's defaults.
fn follower_config(config: &Config, archive: &ArchiveImport) -> GhArchiveConfig {
    let mut follow = GhArchiveConfig::backfill(archive.from, archive.until);
    follow.base_url = archive.base_url.clone();
    follow.missing_after = archive.missing_after;
    follow.min_retry = archive.min_retry;
    follow.max_retry = archive.max_retry;
    follow.failures_before_damaged = archive.failures_before_damaged;
    follow.parallel = config.jobs.clamp(1, MAX_PARALLEL_DOWNLOADS);
    follow.chunk_bytes = config.chunk_bytes;
    follow
}

/// Runs the follower through the ingest loop until the range is done or `cancel` fires,
/// showing progress meanwhile; the loop's report.
async fn follow_hours(
    config: &Config,
    source: GhArchiveSource,
    status: &ArchiveFollowerStatus,
    store: &SharedStore,
    cancel: &CancellationToken,
    hours: u64,
) -> Result<IngestReport, IngestError> {
    let mut ingest = IngestConfig::default();
    ingest.max_insert_events = config.batch_size.max(1);
    ingest.buffer_capacity = config.batch_size.max(1).saturating_mul(2);
    ingest.warn_when_paused = false;
    let handle = Ingest::spawn(
        Arc::new(source) as Arc<dyn EventSource>,
        Arc::clone(store) as Arc<dyn EventStore>,
        ingest,
        cancel.clone(),
    );
    let ingest_status = handle.status();
    let mut progress = ArchiveProgress::new(config.progress, hours);
    let mut ticks = tokio::time::interval(progress.tick_every());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let join = handle.join();
    tokio::pin!(join);
    let report = loop {
        tokio::select! {
            report = &mut join => break report,
            _ = ticks.tick() => progress.update(&status.snapshot(), &ingest_status.snapshot()),
        }
    };
    progress.finish();
    report
}

/// What the ingest loop parsed and stored, and whether Ctrl-C stopped it.
fn record_ingest_report(summary: &mut Summary, report: &IngestReport, cancel: &CancellationToken) {
    summary.stats = report.stats;
    summary.bytes = report.bytes;
    summary.inserted = report.inserted;
    summary.duplicates = report.duplicates;
    summary.rejected = report.rejected;
    summary.batches = report.batches;
    summary.interrupted = !report.completed && cancel.is_cancelled();
}

/// What became of the range's hours: the store's records (so hours done by earlier runs count
/// too), and the follower's counts and pending hours of this run.
async fn hour_outcomes(
    store: &SharedStore,
    archive: &ArchiveImport,
    status: &ArchiveFollowerStatus,
    hours: u64,
) -> anyhow::Result<ArchiveSummary> {
    let follower = status.snapshot();
    let records = store
        .archive_hours(TimeWindow::new(archive.from, archive.until).context("an empty range")?)
        .await
        .context("cannot read the archive records")?;
    let of = |status: ArchiveStatus| -> Vec<DateTime<Utc>> {
        records
            .iter()
            .filter(|r| r.status == status)
            .map(|r| r.hour)
            .collect()
    };
    Ok(ArchiveSummary {
        range: archive.range(),
        hours,
        imported: of(ArchiveStatus::Imported).len() as u64,
        imported_now: follower.counters.imported,
        skipped: follower.counters.skipped,
        missing: of(ArchiveStatus::Missing),
        damaged: of(ArchiveStatus::Damaged),
        pending: follower
            .pending_hours
            .iter()
            .map(|p| (p.hour, p.reason.clone(), p.failed))
            .collect(),
        unfinished: hours
            .saturating_sub(records.len() as u64 + follower.pending_hours.len() as u64),
    })
}
