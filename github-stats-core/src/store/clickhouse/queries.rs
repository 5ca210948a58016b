//! The metric queries: [`MetricsQuery`] for the ClickHouse store. Where each reads is in
//! `docs/clickhouse.md` ("Where each metric reads"); the SQL is in `schema/statements.rs`.

use async_trait::async_trait;
use serde::Deserialize;

use super::schema::type_from_code;
use super::{ClickHouseStore, clamp_ts};
use crate::answers::{
    EventCounts, PrAverage, RepoEventCount, RepoEventCounts, TimeWindow, Timeline, TypeCounts,
    timeline_buckets,
};
use crate::coverage::{ArchiveHour, ArchiveStatus, CompleteRun};
use crate::event::{RepoName, utc_from_timestamp};
use crate::store::{MetricsQuery, StoreError};

#[derive(clickhouse::Row, Deserialize)]
struct CodeCount {
    code: i8,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct BucketCount {
    code: i8,
    bucket: u64,
    n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct PrRow {
    opened: u64,
    first: u32,
    last: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct ArchiveHourRow {
    hour: u32,
    status: u8,
    archive_events: u64,
    polled_before_archive: u64,
    recorded_at: u32,
}

#[derive(clickhouse::Row, Deserialize)]
struct RepoCountRow {
    repo_name: String,
    n: u64,
}

#[async_trait]
impl MetricsQuery for ClickHouseStore {
    async fn pr_average(&self, repo: &RepoName) -> Result<PrAverage, StoreError> {
        self.restore_schema_if_lost().await?;
        let row = self
            .run(
                self.schema
                    .q_pr_average(&self.client, repo.as_str())
                    .fetch_one::<PrRow>(),
            )
            .await?;
        Ok(PrAverage::from_extremes(
            repo.as_str(),
            row.opened,
            utc_from_timestamp(i64::from(row.first)),
            utc_from_timestamp(i64::from(row.last)),
        ))
    }

    async fn event_counts(&self, window: TimeWindow) -> Result<EventCounts, StoreError> {
        self.restore_schema_if_lost().await?;
        let rows = self
            .run(
                self.schema
                    .q_event_counts(
                        &self.client,
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_all::<CodeCount>(),
            )
            .await?;
        Ok(EventCounts {
            window,
            counts: counts_from(rows),
        })
    }

    async fn timeline(
        &self,
        window: TimeWindow,
        bucket_seconds: i64,
    ) -> Result<Timeline, StoreError> {
        self.restore_schema_if_lost().await?;
        let starts = timeline_buckets(&window, bucket_seconds)?;
        let first = starts.first().copied().unwrap_or(window.since_ts());
        let rows = self
            .run(
                self.schema
                    .q_timeline(
                        &self.client,
                        first,
                        bucket_seconds,
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_all::<BucketCount>(),
            )
            .await?;
        let mut counts: [Vec<u64>; 3] = std::array::from_fn(|_| vec![0; starts.len()]);
        for row in rows {
            if let Some(t) = type_from_code(row.code)
                && let Some(slot) = counts[t.index()].get_mut(row.bucket as usize)
            {
                *slot += row.n;
            }
        }
        Ok(Timeline {
            window,
            bucket_seconds,
            bucket_starts: starts.into_iter().filter_map(utc_from_timestamp).collect(),
            counts,
        })
    }

    async fn repo_event_counts(&self, repo: &RepoName) -> Result<RepoEventCounts, StoreError> {
        self.restore_schema_if_lost().await?;
        let rows = self
            .run(
                self.schema
                    .q_repo_event_counts(&self.client, repo.as_str())
                    .fetch_all::<CodeCount>(),
            )
            .await?;
        Ok(RepoEventCounts {
            repository: repo.as_str().to_owned(),
            counts: counts_from(rows),
        })
    }

    async fn total_events(&self) -> Result<u64, StoreError> {
        self.restore_schema_if_lost().await?;
        self.run(self.schema.q_total_events(&self.client).fetch_one::<u64>())
            .await
    }

    async fn pr_average_in(
        &self,
        repo: &RepoName,
        window: TimeWindow,
    ) -> Result<PrAverage, StoreError> {
        self.restore_schema_if_lost().await?;
        let row = self
            .run(
                self.schema
                    .q_pr_average_in(
                        &self.client,
                        repo.as_str(),
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_one::<PrRow>(),
            )
            .await?;
        Ok(PrAverage::from_extremes(
            repo.as_str(),
            row.opened,
            utc_from_timestamp(i64::from(row.first)),
            utc_from_timestamp(i64::from(row.last)),
        ))
    }

    async fn archive_hours(&self, window: TimeWindow) -> Result<Vec<ArchiveHour>, StoreError> {
        self.restore_schema_if_lost().await?;
        let rows = self
            .run(
                self.schema
                    .q_archive_hours(
                        &self.client,
                        clamp_ts(window.since_ts()),
                        clamp_ts(window.until_ts()),
                    )
                    .fetch_all::<ArchiveHourRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                Some(ArchiveHour::new(
                    utc_from_timestamp(i64::from(r.hour))?,
                    ArchiveStatus::from_code(r.status)?,
                    r.archive_events,
                    r.polled_before_archive,
                    utc_from_timestamp(i64::from(r.recorded_at))?,
                ))
            })
            .collect())
    }

    async fn complete_run(&self) -> Result<Option<CompleteRun>, StoreError> {
        self.restore_schema_if_lost().await?;
        let hours = self
            .run(
                self.schema
                    .q_imported_hours(&self.client)
                    .fetch_all::<u32>(),
            )
            .await?;
        Ok(CompleteRun::latest(hours.into_iter().map(i64::from)))
    }

    async fn top_repositories(&self, limit: usize) -> Result<Vec<RepoEventCount>, StoreError> {
        self.restore_schema_if_lost().await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .run(
                self.schema
                    .q_top_repositories(&self.client, limit as u64)
                    .fetch_all::<RepoCountRow>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| RepoEventCount {
                repository: r.repo_name,
                event_count: r.n,
            })
            .collect())
    }
}

fn counts_from(rows: Vec<CodeCount>) -> TypeCounts {
    let mut counts = TypeCounts::default();
    for row in rows {
        if let Some(t) = type_from_code(row.code) {
            counts[t] += row.n;
        }
    }
    counts
}
