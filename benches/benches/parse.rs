//! Parse + filter throughput on GH Archive-style JSON lines (target: ≥ 1 GB/s of input on one
//! core). Input: the recorded hours repeated with fresh ids, built at bench time.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use github_stats_benches::gharchive_lines;
use github_stats_core::parse::{self, ParseStats};

fn parse_and_filter(c: &mut Criterion) {
    let input = gharchive_lines(256 << 20);
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(10);
    group.bench_function("gharchive_lines_256MB", |b| {
        let mut events = Vec::with_capacity(input.len() / 2000);
        b.iter(|| {
            events.clear();
            let mut stats = ParseStats::default();
            parse::parse_json_lines(&input, &mut stats, &mut events);
            assert!(stats.kept_total() > 0);
            stats.kept_total()
        })
    });
    group.finish();
}

criterion_group!(benches, parse_and_filter);
criterion_main!(benches);
