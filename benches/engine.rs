//! Engine speed: random access at growing steps, and incremental steps per second.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tickcast_engine::{Params, Stepper, state_at};

fn random_access(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/state_at");
    let params = Params::with_seed(0x5EED);
    for step in [1_000i64, 10_000, 100_000, 1_000_000, 10_000_000] {
        group.bench_with_input(BenchmarkId::from_parameter(step), &step, |b, &step| {
            b.iter(|| state_at(black_box(&params), black_box(step)));
        });
    }
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine/stepper");
    const STEPS: u64 = 1_000_000;
    group.throughput(Throughput::Elements(STEPS));
    group.bench_function("advance_1M", |b| {
        b.iter(|| {
            let mut stepper = Stepper::new(Params::with_seed(black_box(0x5EED)));
            let mut acc = 0u64;
            for _ in 0..STEPS {
                acc = acc.wrapping_add(stepper.advance().1.value);
            }
            acc
        });
    });
    group.finish();
}

criterion_group!(benches, random_access, incremental);
criterion_main!(benches);
