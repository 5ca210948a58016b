//! Hostile and damaged files (issue #25): gzip cut before its trailer, cut mid-stream, or
//! followed by zero padding (every whole line before the break kept, the damage reported); a
//! UTF-8 byte order mark (skipped).

use std::path::{Path, PathBuf};
use std::process::Command;

use github_stats_core::Event;
use github_stats_core::conformance::fixtures;
use github_stats_core::parse::{self, ParseStats};
use github_stats_core::source::file::{DEFAULT_CHUNK_BYTES, EventFileReader};

/// Everything `reader` yields: the counts, the kept events, and the error it ended with.
fn read_all(path: &Path) -> (ParseStats, Vec<Event>, Option<String>) {
    let mut reader = EventFileReader::open(path, DEFAULT_CHUNK_BYTES).unwrap();
    let mut stats = ParseStats::default();
    let mut events = Vec::new();
    loop {
        match reader.next_chunk() {
            Ok(Some(chunk)) => {
                stats.merge(&chunk.stats);
                events.extend(chunk.events);
            }
            Ok(None) => return (stats, events, None),
            Err(e) => return (stats, events, Some(e.to_string())),
        }
    }
}

/// What `zcat` makes of `path`: its whole lines parsed, and the bytes after the last line
/// break (a line the damage cut).
fn zcat_whole_lines(path: &Path) -> (ParseStats, usize) {
    let out = Command::new("zcat").arg(path).output().expect("zcat runs");
    let whole = out
        .stdout
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let mut stats = ParseStats::default();
    parse::parse_json_lines(&out.stdout[..whole], &mut stats, &mut Vec::new());
    (stats, out.stdout.len() - whole)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const HOUR: &str = "gharchive/2015-01-01-12.json.gz";

#[test]
fn a_gzip_cut_before_its_trailer_or_mid_stream_keeps_every_whole_line_before_the_break() {
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(fixtures::path(HOUR)).unwrap();
    let (full, _) = zcat_whole_lines(&fixtures::path(HOUR));
    assert!(full.kept_total() > 1000, "{full:?}");
    for (name, bytes) in [
        ("no-trailer.json.gz", &gz[..gz.len() - 8]),
        ("half-trailer.json.gz", &gz[..gz.len() - 3]),
        ("mid-stream.json.gz", &gz[..gz.len() * 2 / 3]),
    ] {
        let path = write(dir.path(), name, bytes);
        let (want, cut) = zcat_whole_lines(&path);
        let (stats, events, error) = read_all(&path);
        let error = error.unwrap_or_else(|| panic!("{name}: read as whole"));
        assert_eq!(stats.kept, want.kept, "{name}: {error}");
        assert_eq!(stats.records, want.records, "{name}: {error}");
        assert_eq!(events.len() as u64, want.kept_total(), "{name}");
        assert_eq!(stats.malformed, 0, "{name}: the cut line is not a bad line");
        assert!(
            error.contains("every record before it was read"),
            "{name}: {error}"
        );
        if cut > 0 {
            assert!(
                error.contains(&format!("the record it cut, {cut} bytes, is lost")),
                "{name}: {error}"
            );
        }
        if name != "mid-stream.json.gz" {
            // Cut in the trailer: every line of the hour was there.
            assert_eq!(stats.kept, full.kept, "{name}");
        } else {
            assert!(stats.kept_total() < full.kept_total(), "{name}");
            assert!(stats.kept_total() > full.kept_total() / 2, "{name}");
        }
    }
}

#[test]
fn zero_padding_after_the_last_member_is_reported_after_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(fixtures::path(HOUR)).unwrap();
    let (full, _) = zcat_whole_lines(&fixtures::path(HOUR));
    // One member, and two members (multi-member gzip is read whole), each padded.
    let mut two = gz.clone();
    two.extend_from_slice(&gzip(&fixtures::read("samples/2021-07-21-few-hours.jsonl")));
    let (both, _) = {
        let path = write(dir.path(), "two.json.gz", &two);
        let (stats, _, error) = read_all(&path);
        assert_eq!(error, None, "two members are read whole");
        (stats, ())
    };
    assert!(both.kept_total() > full.kept_total());
    for (name, mut bytes, want) in [("one.json.gz", gz, full), ("two-padded.json.gz", two, both)] {
        bytes.extend_from_slice(&[0u8; 70_000]);
        let path = write(dir.path(), name, &bytes);
        let (stats, events, error) = read_all(&path);
        let error = error.unwrap_or_else(|| panic!("{name}: the padding is not reported"));
        assert_eq!(stats.kept, want.kept, "{name}: {error}");
        assert_eq!(stats.records, want.records, "{name}");
        assert_eq!(events.len() as u64, want.kept_total(), "{name}");
        assert!(
            error.contains("70000 bytes of zero padding after the last gzip member"),
            "{name}: {error}"
        );
        // zcat agrees on what the padding leaves.
        assert_eq!(zcat_whole_lines(&path).0.kept, want.kept, "{name}");
    }
    // Bytes that are neither zeros nor a gzip member after the last one.
    let mut garbage = std::fs::read(fixtures::path(HOUR)).unwrap();
    garbage.extend_from_slice(b"\0\0not gzip");
    let path = write(dir.path(), "garbage.json.gz", &garbage);
    let (stats, _, error) = read_all(&path);
    assert_eq!(stats.kept, full.kept);
    assert!(
        error
            .as_deref()
            .is_some_and(|e| e.contains("then bytes that are not gzip")),
        "{error:?}"
    );
}

#[test]
fn a_byte_order_mark_is_skipped_in_arrays_lines_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let poll = fixtures::read("api-responses/events-2020-04-25/01.body.json");
    let lines = fixtures::read("samples/2021-07-21-few-hours.jsonl");
    for (name, content) in [("poll.json", &poll), ("lines.jsonl", &lines)] {
        let mut want = ParseStats::default();
        parse::parse_document(content, &mut want, &mut Vec::new());
        assert!(
            want.kept_total() > 0 && want.malformed == 0,
            "{name}: {want:?}"
        );
        let mut with_bom = "\u{feff}".as_bytes().to_vec();
        with_bom.extend_from_slice(content);
        for (file, bytes) in [
            (name.to_owned(), with_bom.clone()),
            (format!("{name}.gz"), gzip(&with_bom)),
        ] {
            let path = write(dir.path(), &file, &bytes);
            let (stats, events, error) = read_all(&path);
            assert_eq!(error, None, "{file}");
            assert_eq!(stats, want, "{file}");
            assert_eq!(events.len() as u64, want.kept_total(), "{file}");
        }
    }
    // A BOM is skipped only at the start: a file that is only one is empty.
    let path = write(dir.path(), "bom-only.json", "\u{feff}".as_bytes());
    let (stats, _, error) = read_all(&path);
    assert_eq!((stats.records, error), (0, None));
}
