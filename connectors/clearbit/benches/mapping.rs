//! How long mapping one full combined response to properties takes, with the default selection (every
//! attribute under the catalogue's names): a real record and one with every attribute Clearbit sends.
//!
//! `cargo xtask bench` runs it and reads criterion's estimates; `cargo bench -p enrich-clearbit --bench
//! mapping -- --test` runs each benchmark once, as CI does.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use enrich_clearbit::{every_attribute, map_combined};
use serde_json::Value;

/// The allocator of the `enrich` binary (`crates/enrich-cli/src/main.rs`): mapping allocates a name and
/// a value for every property, so the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Benchmark name → fixture file; `cargo xtask bench` reads the estimates under these names.
const RESPONSES: [(&str, &str); 2] = [
    ("calvinklein-2016", "combined-real-calvinklein-2016.json"),
    ("synthetic-all-fields", "synthetic-all-fields.json"),
];

fn map_full_responses(criterion: &mut Criterion) {
    let selection = every_attribute();
    let mut group = criterion.benchmark_group("map_combined");
    for (name, file) in RESPONSES {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let response: Value = serde_json::from_str(&text).expect("the fixture is JSON");
        group.bench_function(name, |bencher| {
            bencher.iter(|| map_combined(black_box(&response), black_box(&selection)));
        });
    }
    group.finish();
}

criterion_group!(benches, map_full_responses);
criterion_main!(benches);
