//! A directory mixing every format, with a corrupt gzip, a truncated line and an empty file.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use github_stats_core::{MemoryStore, MetricsQuery};

use crate::common::{Expected, assert_counts, data, memory_config, plain_bytes, run};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Builds the directory; returns what its readable files hold and the corrupt file's path.
fn mixed_directory(dir: &Path) -> (Expected, std::path::PathBuf) {
    let poll = plain_bytes(&data("api-responses/events-2020-04-25/01.body.json"));
    let poll_2017 = plain_bytes(&data("api-responses/events-2017-12-29/01.body.json"));
    let lines_2021 = plain_bytes(&data("samples/2021-07-21-few-hours.jsonl"));
    let hour = std::fs::read(data("gharchive/2015-01-01-12.json.gz")).unwrap();
    let old = plain_bytes(&data("samples/2011-2021-sampled.jsonl"));

    // A JSON-lines file whose last line is cut in the middle (a crash while writing).
    let lines: Vec<&[u8]> = old
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut truncated = lines[..200].join(&b'\n');
    truncated.push(b'\n');
    truncated.extend_from_slice(&lines[200][..lines[200].len() / 2]);

    // Corrupt gzip: a valid header, then garbage.
    let mut corrupt = gzip(&lines_2021)[..10].to_vec();
    corrupt.extend((0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));

    let nested = dir.join("2020/04");
    std::fs::create_dir_all(&nested).unwrap();
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = vec![
        // Poll files: a JSON array, plain and gzipped (the same events: duplicates).
        (dir.join("2020-04-25T10-00-00.json"), poll.clone()),
        (nested.join("2020-04-25T10-01-00.json.gz"), gzip(&poll)),
        (dir.join("2017-12-29T09-00-00.json"), poll_2017),
        // JSON lines, plain (.jsonl and .ndjson) and gzipped (a GH Archive hour as it is).
        (dir.join("2021-07-21-6.jsonl"), lines_2021),
        (dir.join("2015-01-01-12.json.gz"), hour),
        (dir.join("2011-sampled.ndjson"), truncated),
        (dir.join("2019-01-01T00-00-00.json"), Vec::new()),
        (dir.join("2018-06-01-3.json.gz"), corrupt),
        // Not an event file: ignored in directories.
        (dir.join("README.txt"), b"not events".to_vec()),
    ];
    let mut expected = Expected::default();
    for (path, bytes) in &files {
        std::fs::write(path, bytes).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        if name != "README.txt" && name != "2018-06-01-3.json.gz" {
            expected.add_file(path);
        }
    }
    (expected, dir.join("2018-06-01-3.json.gz"))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_format_is_read_and_bad_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let (expected, corrupt) = mixed_directory(&events);
    assert!(expected.malformed >= 1, "the truncated line is a bad line");
    let missing = dir.path().join("no-such-file.json");
    let data_dir = dir.path().join("data");

    let summary = run(memory_config(
        vec![events.clone(), missing.clone()],
        &data_dir,
    ))
    .await;
    assert_eq!(summary.exit_code(), 1, "{summary}");
    assert_eq!(summary.files, 9, "8 event files and the missing one");
    assert_eq!(summary.files_read, 7);
    let mut failed: Vec<_> = summary.failed.iter().map(|f| f.path.clone()).collect();
    failed.sort();
    let mut want = vec![corrupt, missing];
    want.sort();
    assert_eq!(failed, want);
    assert_counts(&summary, &expected);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
    assert_eq!(
        summary.duplicates,
        expected.kept_total() - expected.distinct.len() as u64
    );
    assert!(
        summary.duplicates > 0,
        "the gzipped poll file repeats the plain one"
    );

    let store = MemoryStore::open(&data_dir).unwrap();
    assert_eq!(
        store.total_events().await.unwrap(),
        expected.distinct.len() as u64
    );
}

/// A line longer than the record cap (16 MiB): a gzip bomb of a few kilobytes that expands to
/// one 40 MiB line, between two halves of a recorded hour. The line is one bad line; every
/// event around it is imported.
#[tokio::test(flavor = "multi_thread")]
async fn a_line_longer_than_the_record_cap_is_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let hour = plain_bytes(&data("gharchive/2015-01-01-12.json.gz"));
    let lines: Vec<&[u8]> = hour
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let half = lines.len() / 2;
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    for line in &lines[..half] {
        encoder.write_all(line).unwrap();
        encoder.write_all(b"\n").unwrap();
    }
    encoder.write_all(b"{\"id\":\"1\",\"pad\":\"").unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..40 {
        encoder.write_all(&block).unwrap();
    }
    encoder.write_all(b"\"}\n").unwrap();
    for line in &lines[half..] {
        encoder.write_all(line).unwrap();
        encoder.write_all(b"\n").unwrap();
    }
    let path = dir.path().join("2015-01-01-12.json.gz");
    std::fs::write(&path, encoder.finish().unwrap()).unwrap();

    let mut expected = Expected::default();
    expected.add_document(&hour);
    let summary = run(memory_config(vec![path], &dir.path().join("data"))).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert_eq!(summary.stats.malformed, expected.malformed + 1);
    assert_eq!(summary.stats.records, expected.records + 1);
    assert_eq!(summary.stats.kept, expected.kept);
    assert_eq!(summary.inserted, expected.distinct.len() as u64);
}

/// Odd files in a directory: a FIFO nobody writes (it would block a reader forever), a `.gz`
/// that is not gzip, a gzip cut short, a dangling link, a directory link looping back. Each is
/// a failed file named in the summary (exit code 1); the rest is imported, and the summary
/// names the file with bad lines, with its count. A FIFO named on the command line is read.
#[tokio::test(flavor = "multi_thread")]
async fn odd_files_are_failed_files_named_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let nested = events.join("nested");
    std::fs::create_dir_all(&nested).unwrap();
    let poll = plain_bytes(&data("api-responses/events-2020-04-25/01.body.json"));
    let lines = plain_bytes(&data("samples/2021-07-21-few-hours.jsonl"));
    let old = plain_bytes(&data("samples/2011-2021-sampled.jsonl"));

    let good = events.join("2020-04-25T10-00-00.json");
    std::fs::write(&good, &poll).unwrap();
    // A file with two lines that are not JSON among real ones.
    let mut with_bad_lines = b"not json\n".to_vec();
    with_bad_lines.extend_from_slice(&lines);
    with_bad_lines.extend_from_slice(b"\n{\"cut\":\n");
    let bad_lines = nested.join("2021-07-21-6.jsonl");
    std::fs::write(&bad_lines, &with_bad_lines).unwrap();
    let fifo = events.join("2021-07-21-7.json");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let not_gzip = events.join("2021-07-21-8.json.gz");
    std::fs::write(&not_gzip, &lines).unwrap();
    let compressed = gzip(&old);
    let cut = events.join("2021-07-21-9.json.gz");
    std::fs::write(&cut, &compressed[..compressed.len() * 3 / 5]).unwrap();
    let dangling = events.join("2021-07-21-10.json");
    std::os::unix::fs::symlink(dir.path().join("gone.json"), &dangling).unwrap();
    let looping = nested.join("back");
    std::os::unix::fs::symlink("..", &looping).unwrap();
    // A link to a directory elsewhere is followed.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let linked = elsewhere.join("2017-12-29T09-00-00.json");
    std::fs::copy(
        data("api-responses/events-2017-12-29/01.body.json"),
        &linked,
    )
    .unwrap();
    std::os::unix::fs::symlink(&elsewhere, events.join("linked")).unwrap();

    let mut expected = Expected::default();
    expected.add_document(&poll);
    expected.add_document(&with_bad_lines);
    expected.add_file(&linked);
    assert_eq!(expected.malformed, 2);

    let config = memory_config(vec![events.clone()], &dir.path().join("data"));
    let summary = tokio::time::timeout(Duration::from_secs(120), run(config))
        .await
        .expect("no file blocks the import");
    assert_eq!(summary.exit_code(), 1, "{summary}");
    let failed: HashSet<PathBuf> = summary.failed.iter().map(|f| f.path.clone()).collect();
    let want: HashSet<PathBuf> = [&fifo, &not_gzip, &cut, &dangling, &looping]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(failed, want, "{summary}");
    let why = |path: &PathBuf| {
        summary
            .failed
            .iter()
            .find(|f| &f.path == path)
            .unwrap()
            .error
            .clone()
    };
    assert!(why(&fifo).contains("not a regular file"), "{}", why(&fifo));
    assert!(why(&not_gzip).contains("not gzip"), "{}", why(&not_gzip));
    assert!(why(&looping).contains("loop"), "{}", why(&looping));
    let text = summary.to_string();
    for path in &want {
        assert!(text.contains(&path.display().to_string()), "{text}");
    }

    // The cut gzip's events before the cut are imported too: at least the others'.
    assert!(
        summary.stats.kept_total() >= expected.kept_total(),
        "{summary}"
    );
    assert_eq!(summary.files_read, 3, "{summary}");
    let bad: Vec<(PathBuf, u64)> = summary
        .bad_records
        .iter()
        .map(|b| (b.path.clone(), b.malformed))
        .collect();
    assert!(bad.contains(&(bad_lines.clone(), 2)), "{bad:?}");
    assert!(
        text.contains(&format!("{}: 2 bad lines", bad_lines.display())),
        "{text}"
    );
}

/// The kept events in the whole lines `zcat` reads of `path`, by type.
fn zcat_whole_lines_kept(path: &Path) -> [u64; 3] {
    let out = Command::new("zcat").arg(path).output().expect("zcat runs");
    let whole = out
        .stdout
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let mut stats = github_stats_core::ParseStats::default();
    github_stats_core::parse::parse_json_lines(&out.stdout[..whole], &mut stats, &mut Vec::new());
    stats.kept
}

/// A recorded hour cut before its trailer, cut mid-stream, and followed by zero padding: every
/// whole line before the break is imported (what `zcat` reads), and each file is listed as not
/// read to its end, with what the break cut.
#[tokio::test(flavor = "multi_thread")]
async fn damaged_gzip_files_keep_every_whole_line_and_name_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    let hour = std::fs::read(data("gharchive/2015-01-01-12.json.gz")).unwrap();
    let mut padded = hour.clone();
    padded.extend_from_slice(&[0u8; 1000]);
    let files = [
        ("2015-01-01-1.json.gz", hour[..hour.len() - 8].to_vec()),
        ("2015-01-01-2.json.gz", hour[..hour.len() / 2].to_vec()),
        ("2015-01-01-3.json.gz", padded),
    ];
    let mut want = [0u64; 3];
    let mut paths = Vec::new();
    for (name, bytes) in &files {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        for (w, k) in want.iter_mut().zip(zcat_whole_lines_kept(&path)) {
            *w += k;
        }
        paths.push(path);
    }
    let mut config = memory_config(paths.clone(), &dir.path().join("data"));
    // The reader's default chunk: a break used to lose the whole last one.
    config.chunk_bytes = 1 << 20;
    let summary = run(config).await;
    assert_eq!(summary.stats.kept, want, "{summary}");
    assert_eq!(summary.stats.malformed, 0, "{summary}");
    assert_eq!(summary.exit_code(), 1, "{summary}");
    let failed: Vec<&PathBuf> = summary.failed.iter().map(|f| &f.path).collect();
    assert_eq!(failed, paths.iter().collect::<Vec<_>>(), "{summary}");
    for failure in &summary.failed {
        assert!(
            failure.error.contains("every record before it was read"),
            "{}",
            failure.error
        );
    }
    assert!(
        summary.failed[1].error.contains("bytes, is lost"),
        "{}",
        summary.failed[1].error
    );
    assert!(
        summary.failed[2]
            .error
            .contains("1000 bytes of zero padding after the last gzip member"),
        "{}",
        summary.failed[2].error
    );
    let text = summary.to_string();
    assert!(text.contains("files not read to their end"), "{text}");
}

/// A leap second is read as the next second and counted as kept; a byte order mark at the
/// start of a poll file (a JSON array) or a JSON-lines file loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_leap_second_and_a_byte_order_mark_lose_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let event = |id: u64, at: &str| {
        format!(
            r#"{{"id":"{id}","type":"WatchEvent","actor":{{"id":1,"login":"x"}},"repo":{{"id":2,"name":"a/b","url":"u"}},"payload":{{"action":"started"}},"public":true,"created_at":"{at}"}}"#
        )
    };
    let lines = dir.path().join("2016-12-31-23.jsonl");
    std::fs::write(
        &lines,
        format!(
            "\u{feff}{}\n{}\n",
            event(1, "2016-12-31T23:59:60Z"),
            event(2, "2016-12-31T23:59:59Z")
        ),
    )
    .unwrap();
    let poll = dir.path().join("2016-12-31T23-59-59.json");
    std::fs::write(
        &poll,
        format!(
            "\u{feff}[{},{}]",
            event(3, "2016-12-31T23:59:60Z"),
            event(4, "2016-12-31T23:00:00Z")
        ),
    )
    .unwrap();
    let summary = run(memory_config(vec![lines, poll], &dir.path().join("data"))).await;
    assert_eq!(summary.exit_code(), 0, "{summary}");
    assert_eq!(summary.stats.records, 4, "{summary}");
    assert_eq!(summary.stats.kept_total(), 4, "{summary}");
    assert_eq!(
        (
            summary.stats.malformed,
            summary.stats.unsupported,
            summary.stats.invalid
        ),
        (0, 0, 0),
        "{summary}"
    );
    assert_eq!(summary.inserted, 4, "{summary}");
    // Both leap-second events are at midnight.
    let store = MemoryStore::open(dir.path().join("data")).unwrap();
    let midnight: chrono::DateTime<chrono::Utc> = "2017-01-01T00:00:00Z".parse().unwrap();
    let window =
        github_stats_core::TimeWindow::new(midnight, midnight + chrono::Duration::seconds(1))
            .unwrap();
    let counts = store.event_counts(window).await.unwrap();
    assert_eq!(counts.counts.total(), 2, "{counts:?}");
}
