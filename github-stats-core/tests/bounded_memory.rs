//! Memory bounds, measured: a global allocator that counts live bytes records the peak while
//! hostile input is read, so "no unbounded allocation" is a number, not a hope. A test binary
//! of its own, so that no other test's allocations are counted; one measurement at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use github_stats_core::parse::{self, ParseStats, RecordOutcome};
use github_stats_core::source::file::EventFileReader;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        p
    }
}

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(now, Ordering::SeqCst);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held by each test from its start: another test's allocations would count in its peak.
fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `work` and returns its result and the most bytes it had allocated at once.
fn peak_of<R>(work: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let result = work();
    (result, PEAK.load(Ordering::SeqCst).saturating_sub(base))
}

const MIB: usize = 1 << 20;

/// Input made as it is read: pieces of bytes and long runs of one byte (a gzip bomb's output
/// without the gzip), so gigabytes cost nothing to hold.
struct Generated {
    parts: Vec<(Vec<u8>, usize)>,
    at: usize,
    offset: usize,
}

impl Generated {
    fn new() -> Generated {
        Generated {
            parts: Vec::new(),
            at: 0,
            offset: 0,
        }
    }

    fn bytes(mut self, bytes: &[u8]) -> Generated {
        self.parts.push((bytes.to_vec(), 1));
        self
    }

    fn repeat(mut self, bytes: &[u8], times: usize) -> Generated {
        self.parts.push((bytes.to_vec(), times));
        self
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let Some((piece, times)) = self.parts.get(self.at) else {
                break;
            };
            let total = piece.len() * times;
            if self.offset == total {
                self.at += 1;
                self.offset = 0;
                continue;
            }
            // Up to the end of the current copy of the piece.
            let within = self.offset % piece.len();
            let n = (buf.len() - filled).min(piece.len() - within);
            buf[filled..filled + n].copy_from_slice(&piece[within..within + n]);
            filled += n;
            self.offset += n;
        }
        Ok(filled)
    }
}

const KEPT: &[u8] = br#"{"id":"7","type":"WatchEvent","repo":{"id":1,"name":"a/b","url":"u"},"payload":{"action":"started"},"public":true,"created_at":"2026-11-30T10:00:00Z"}"#;

/// Reads everything, parsing each chunk and dropping its events: the stats and the kept ids.
fn read_all(reader: &mut EventFileReader) -> (ParseStats, Vec<u64>) {
    let mut stats = ParseStats::default();
    let mut ids = Vec::new();
    while let Some(chunk) = reader.next_chunk().expect("reading generated input") {
        stats.merge(&chunk.stats);
        ids.extend(chunk.events.iter().map(|e| e.id));
    }
    (stats, ids)
}

/// A 256 MiB line between two events (what a 250 KB gzip bomb expands to), with a 1 MiB record
/// cap: read and skipped with about a chunk and a record cap of memory.
#[test]
fn a_line_of_a_quarter_gigabyte_costs_the_record_cap() {
    let _alone = alone();
    let input = Generated::new()
        .bytes(KEPT)
        .bytes(b"\n{\"id\":\"8\",\"pad\":\"")
        .repeat(&[b'x'; 4096], 64 * 1024)
        .bytes(b"\"}\n")
        .bytes(
            &KEPT
                .iter()
                .map(|&b| if b == b'7' { b'9' } else { b })
                .collect::<Vec<_>>(),
        );
    let ((stats, ids), peak) = peak_of(|| {
        let mut reader = EventFileReader::from_reader("bomb", Box::new(input), 64 * 1024)
            .with_max_record_bytes(MIB);
        read_all(&mut reader)
    });
    assert_eq!(ids, [7, 9]);
    assert_eq!((stats.records, stats.malformed), (3, 1));
    assert!(peak < 4 * MIB, "peak {peak} bytes");
}

/// A JSON array whose middle element is 32 MiB of strings full of escaped quotes and brackets:
/// the element is one bad record, the events around it are read, and memory stays at about a
/// chunk and a record cap.
#[test]
fn an_array_element_32_times_the_cap_costs_the_record_cap() {
    let _alone = alone();
    let input = Generated::new()
        .bytes(b"[")
        .bytes(KEPT)
        .bytes(b",\n  {\"id\":\"8\",\"pad\":[\"")
        .repeat(b"x\\\"},{[", 32 * MIB / 7)
        .bytes(b"\"]}, ")
        .bytes(
            &KEPT
                .iter()
                .map(|&b| if b == b'7' { b'9' } else { b })
                .collect::<Vec<_>>(),
        )
        .bytes(b"]");
    let ((stats, ids), peak) = peak_of(|| {
        let mut reader = EventFileReader::from_reader("poll.json", Box::new(input), 64 * 1024)
            .with_max_record_bytes(MIB);
        read_all(&mut reader)
    });
    assert_eq!(ids, [7, 9]);
    assert_eq!((stats.records, stats.malformed), (3, 1));
    assert!(peak < 4 * MIB, "peak {peak} bytes");
}

/// An array of 60,000 events (about 10 MB) read as a stream: memory is a chunk's, not the
/// file's.
#[test]
fn a_long_array_costs_a_chunk() {
    let _alone = alone();
    let element = br#"{"id":"1","type":"PushEvent","actor":{"id":1,"login":"x"},"repo":{"id":1,"name":"a/b"},"payload":{"size":1},"public":true,"created_at":"2026-11-30T10:00:00Z"},"#;
    let count = 60_000;
    let input = Generated::new()
        .bytes(b"[")
        .repeat(element, count)
        .bytes(KEPT)
        .bytes(b"]");
    let ((stats, ids), peak) = peak_of(|| {
        let mut reader = EventFileReader::from_reader("poll.json", Box::new(input), 64 * 1024);
        read_all(&mut reader)
    });
    assert_eq!(ids, [7]);
    assert_eq!(stats.other_types, count as u64);
    assert!(
        peak < 2 * MIB,
        "peak {peak} bytes for {} MB",
        element.len() * count / 1_000_000
    );
}

/// A 16 MiB record (the cap) costs the parser at most about twice its size, kept or not.
#[test]
fn a_record_costs_the_parser_about_its_size() {
    let _alone = alone();
    let huge_name = String::from_utf8(KEPT.to_vec())
        .unwrap()
        .replace("\"a/b\"", &format!("\"a/{}\"", "b".repeat(16 * MIB)));
    let huge_payload = String::from_utf8(KEPT.to_vec()).unwrap().replace(
        "\"action\":\"started\"",
        &format!(
            "\"action\":\"started\",\"x\":[\"{}\"]",
            "y".repeat(16 * MIB)
        ),
    );
    for record in [huge_name, huge_payload] {
        let (outcome, peak) = peak_of(|| parse::parse_record(record.as_bytes()));
        assert!(
            matches!(outcome, RecordOutcome::Invalid(_) | RecordOutcome::Kept(_)),
            "{outcome:?}"
        );
        assert!(peak < 2 * record.len() + MIB, "peak {peak} bytes");
    }
}
