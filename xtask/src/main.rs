//! `cargo xtask TASK`: the project's own tasks, run by its scripts.
//!
//! - `chdb-statements FILE`: writes the statements of the chDB check (`scripts/chdb_check.sh`):
//!   the ClickHouse store's DDL, the recorded events of `testdata/` as `INSERT … VALUES`, and
//!   every query the store sends, filled with values from those events, as JSON.

use std::path::PathBuf;

use anyhow::{Context, bail};
use github_stats_core::conformance::{clickhouse, fixtures};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let task = args.next().and_then(|t| t.into_string().ok());
    match task.as_deref() {
        Some("chdb-statements") => {
            let Some(out) = args.next().map(PathBuf::from) else {
                bail!("usage: cargo xtask chdb-statements FILE");
            };
            let events = fixtures::recorded_kept_events();
            let doc = clickhouse::chdb_check_statements(&events);
            let bytes = serde_json::to_vec_pretty(&doc)?;
            std::fs::write(&out, bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote the chDB check's statements over {} events to {}",
                events.len(),
                out.display()
            );
            Ok(())
        }
        Some("help") | None => {
            eprintln!("usage: cargo xtask chdb-statements FILE");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}: cargo xtask help"),
    }
}
