//! Property tests (proptest, on stable Rust) over arbitrary input: the parser and the file
//! reader never panic, account for every record, keep only events that pass validation, and
//! hold no more than a bound derived from the record cap and the chunk size, whatever the bytes
//! and however the reads are cut. A few hundred small cases each, to keep the suite quick.

use std::io::{self, Read};

use github_stats_core::conformance::fixtures;
use github_stats_core::parse::{self, ParseStats, RecordOutcome, parse_record};
use github_stats_core::source::file::EventFileReader;
use proptest::prelude::*;
use serde_json::Value;

/// The smallest record cap and chunk the reader takes (1 KiB is raised to this chunk).
const CHUNK: usize = 4096;
const CAP: usize = 4096;
/// Bytes the reader reads at a time while scanning an array or skipping a long line.
const BLOCK: usize = 64 * 1024;
/// The most a chunk may ever hold: a chunk, a record up to the cap, blocks read past it, and a
/// vector's doubling.
const MAX_CHUNK_CAPACITY: usize = 2 * (CHUNK + CAP + 2 * BLOCK);

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Kept records of the recorded data, as lines: seeds that mutations turn into near misses.
fn recorded_kept_lines() -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = fixtures::json_records("samples/2021-07-21-few-hours.jsonl")
        .into_iter()
        .filter(|v| {
            matches!(
                v["type"].as_str(),
                Some("WatchEvent" | "PullRequestEvent" | "IssuesEvent")
            )
        })
        .map(|v| serde_json::to_vec(&v).unwrap())
        .take(40)
        .collect();
    // The same events in GitHub's own layout (the fast path), as GH Archive has them.
    let hour = fixtures::read("gharchive/2015-01-01-12.json.gz");
    lines.extend(
        hour.split(|&b| b == b'\n')
            .filter(|l| l.windows(12).any(|w| w == b"\"WatchEvent\""))
            .take(20)
            .map(<[u8]>::to_vec),
    );
    lines
}

/// A recorded kept record with a few bytes replaced, inserted or cut.
fn mutated_record() -> impl Strategy<Value = Vec<u8>> {
    let seeds = recorded_kept_lines();
    let n = seeds.len();
    (
        0..n,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(move |(seed, edits, cut)| {
            let mut bytes = seeds[seed].clone();
            for (at, byte, kind) in edits {
                let i = at.index(bytes.len());
                match kind {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

/// Bytes that look like JSON often enough to reach deep into the parser and the splitter.
fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\"id\":\"1\",".to_vec()),
        Just(b"\"type\":\"WatchEvent\",".to_vec()),
        Just(b"\"repo\":{\"id\":1,\"name\":\"a/b\"},".to_vec()),
        Just(b"\"created_at\":\"2026-01-25T08:49:55Z\"".to_vec()),
        prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

/// A kept event must pass validation.
fn check_outcome(outcome: RecordOutcome) {
    if let RecordOutcome::Kept(event) = outcome {
        assert_eq!(event.validate(), Ok(()), "a kept event passes validation");
    }
}

fn outcomes_add_up(stats: &ParseStats) {
    assert_eq!(
        stats.kept_total()
            + stats.other_types
            + stats.malformed
            + stats.unsupported
            + stats.invalid,
        stats.records,
        "{stats:?}"
    );
}

/// A reader that hands out the input in pieces of the given sizes, in turn.
struct Pieces {
    input: io::Cursor<Vec<u8>>,
    sizes: Vec<usize>,
    turn: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.sizes[self.turn % self.sizes.len()].max(1);
        self.turn += 1;
        let n = buf.len().min(size);
        self.input.read(&mut buf[..n])
    }
}

/// Everything the reader hands out for `input`: the chunks' lines, the records it skipped, the
/// stats of parsing the chunks, and the largest chunk capacity seen.
struct ReadOut {
    lines: Vec<Vec<u8>>,
    skipped: u64,
    stats: ParseStats,
    largest: usize,
}

fn read_through(input: Vec<u8>, sizes: Vec<usize>, json_lines: bool) -> ReadOut {
    let pieces = Pieces {
        input: io::Cursor::new(input),
        sizes,
        turn: 0,
    };
    let mut reader =
        EventFileReader::from_reader("prop", Box::new(pieces), CHUNK).with_max_record_bytes(CAP);
    if json_lines {
        reader = reader.json_lines();
    }
    let mut out = ReadOut {
        lines: Vec::new(),
        skipped: 0,
        stats: ParseStats::default(),
        largest: 0,
    };
    let mut buffer = Vec::new();
    loop {
        let chunk = reader
            .read_raw_chunk_into(std::mem::take(&mut buffer))
            .expect("reading memory cannot fail");
        out.skipped += reader.take_skipped_records();
        out.largest = out.largest.max(chunk.capacity());
        assert!(
            chunk.capacity() <= MAX_CHUNK_CAPACITY,
            "a chunk of {} bytes",
            chunk.capacity()
        );
        if chunk.is_empty() {
            break;
        }
        let mut events = Vec::new();
        parse::parse_json_lines(&chunk, &mut out.stats, &mut events);
        assert!(events.iter().all(|e| e.validate().is_ok()));
        out.lines.extend(
            chunk
                .split(|&b| b == b'\n')
                .filter(|l| !l.trim_ascii().is_empty())
                .map(<[u8]>::to_vec),
        );
        buffer = chunk;
    }
    out
}

/// A JSON value of any shape, with strings full of what a splitter must get right.
fn json_value() -> impl Strategy<Value = Value> {
    let text = prop::collection::vec(
        prop_oneof![
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("]".to_string()),
            Just("[".to_string()),
            Just("},{".to_string()),
            Just(",".to_string()),
            Just("\n".to_string()),
            Just("é".to_string()),
            "[a-z]{0,6}",
        ],
        0..8,
    )
    .prop_map(|parts| parts.concat());
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text.clone().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text.clone(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_record_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_outcome(parse_record(&bytes));
    }

    #[test]
    fn parse_record_takes_jsonish_bytes(bytes in jsonish_bytes()) {
        check_outcome(parse_record(&bytes));
        let mut stats = ParseStats::default();
        parse::parse_document(&bytes, &mut stats, &mut Vec::new());
        outcomes_add_up(&stats);
    }

    /// Near misses of real events: kept only when every field still passes validation.
    #[test]
    fn parse_record_takes_damaged_real_events(bytes in mutated_record()) {
        check_outcome(parse_record(&bytes));
    }

    /// Every non-blank line is one record, counted once under one outcome.
    #[test]
    fn json_lines_count_every_line(bytes in prop::collection::vec(
        prop_oneof![jsonish_bytes(), mutated_record(), Just(b"\n".to_vec())], 0..12,
    )) {
        let data = bytes.join(&b'\n');
        let mut stats = ParseStats::default();
        let mut out = Vec::new();
        parse::parse_json_lines(&data, &mut stats, &mut out);
        let lines = data.split(|&b| b == b'\n').filter(|l| !l.trim_ascii().is_empty()).count();
        prop_assert_eq!(stats.records, lines as u64);
        prop_assert_eq!(stats.kept_total(), out.len() as u64);
        outcomes_add_up(&stats);
    }

    /// Arbitrary bytes, as either format, cut into arbitrary reads: the reader never panics,
    /// never holds more than its bound, and every chunk ends a record.
    #[test]
    fn the_file_reader_takes_any_bytes(
        parts in prop::collection::vec(
            prop_oneof![jsonish_bytes(), prop::collection::vec(any::<u8>(), 0..64)], 0..20,
        ),
        array in any::<bool>(),
        sizes in prop::collection::vec(1usize..300, 1..8),
    ) {
        let mut input = if array { b"[".to_vec() } else { Vec::new() };
        input.extend(parts.concat());
        let out = read_through(input, sizes, false);
        prop_assert_eq!(out.stats.records, out.lines.len() as u64);
        outcomes_add_up(&out.stats);
    }

    /// JSON lines with lines far over the cap among short ones: the short ones come out whole
    /// and in order, each long one is one skipped record, and memory stays bounded.
    #[test]
    fn long_lines_are_skipped_and_the_rest_read(
        lines in prop::collection::vec(
            prop_oneof![
                9 => prop::collection::vec(any::<u8>().prop_filter("not a line break", |b| *b != b'\n'), 0..300),
                1 => (140_000usize..150_000, any::<u8>()).prop_map(|(n, b)| vec![if b == b'\n' { b'x' } else { b }; n]),
            ],
            0..12,
        ),
        sizes in prop::collection::vec(1usize..70_000, 1..4),
    ) {
        let mut input = lines.join(&b'\n');
        input.push(b'\n');
        let out = read_through(input, sizes, true);
        let short: Vec<Vec<u8>> = lines
            .iter()
            .filter(|l| l.len() <= CAP && !l.trim_ascii().is_empty())
            .map(|l| l.trim_ascii().to_vec())
            .collect();
        let got: Vec<Vec<u8>> = out.lines.iter().map(|l| l.trim_ascii().to_vec()).collect();
        prop_assert_eq!(got, short);
        let long = lines.iter().filter(|l| l.len() > CAP).count();
        prop_assert_eq!(out.skipped, long as u64);
        prop_assert!(out.largest <= MAX_CHUNK_CAPACITY);
    }

    /// JSON arrays of any values, compact or pretty, cut into arbitrary reads: every element up
    /// to the cap comes out as one line holding the same value, every larger one is one skipped
    /// record.
    #[test]
    fn array_elements_come_out_whole_one_a_line(
        elements in prop::collection::vec(
            prop_oneof![
                9 => json_value(),
                1 => (5_000usize..20_000).prop_map(|n| Value::from("x".repeat(n))),
            ],
            0..10,
        ),
        pretty in any::<bool>(),
        sizes in prop::collection::vec(1usize..5_000, 1..4),
    ) {
        let text = if pretty {
            serde_json::to_vec_pretty(&elements).unwrap()
        } else {
            serde_json::to_vec(&elements).unwrap()
        };
        // Small values stay far under the cap even indented inside the array; big ones are over.
        let big = |e: &Value| e.as_str().is_some_and(|s| s.len() >= 5_000);
        prop_assume!(elements
            .iter()
            .all(|e| big(e) || serde_json::to_vec_pretty(e).unwrap().len() < CAP / 2));
        let out = read_through(text, sizes, false);
        let fitting: Vec<&Value> = elements.iter().filter(|e| !big(e)).collect();
        let got: Vec<Value> = out.lines.iter().map(|l| serde_json::from_slice(l).unwrap()).collect();
        prop_assert_eq!(got.iter().collect::<Vec<_>>(), fitting);
        prop_assert_eq!(out.skipped, (elements.len() - got.len()) as u64);
    }
}

/// The recorded poll files (JSON arrays, compact and pretty-printed), read element by element
/// in small chunks, give what parsing them whole gives.
#[test]
fn recorded_arrays_read_as_a_stream_parse_as_a_whole() {
    for file in [
        "api-responses/events-2026-01-25.json",
        "api-responses/events-2020-04-25/01.body.json",
        "api-responses/events-2017-12-29/01.body.json",
        "api-responses/user-events-3-pages-2017/01.body.json",
    ] {
        let bytes = fixtures::read(file);
        let mut whole = ParseStats::default();
        let mut whole_events = Vec::new();
        parse::parse_json_array(&bytes, &mut whole, &mut whole_events).unwrap();
        let mut reader =
            EventFileReader::from_reader(file, Box::new(io::Cursor::new(bytes)), CHUNK);
        let mut streamed = ParseStats::default();
        let mut streamed_events = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = reader.next_chunk().unwrap() {
            streamed.merge(&chunk.stats);
            streamed_events.extend(chunk.events);
            chunks += 1;
        }
        assert!(chunks > 1, "{file}: {chunks} chunks");
        assert_eq!(streamed, whole, "{file}");
        assert_eq!(streamed_events, whole_events, "{file}");
        assert!(whole.records > 0);
    }
}
