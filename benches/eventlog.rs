//! Embedded log speed: appends per second with durable (fsync) and relaxed commits, alone and
//! from many concurrent writers (group commit), and a tail reading them back.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickcast_eventlog::embedded::EmbeddedLog;
use tickcast_eventlog::{Durability, EventLog, NewRecord, StartFrom};

/// A record the size of a tick event.
fn tick_record(i: u64) -> NewRecord {
    let payload = format!(
        r#"{{"v":1,"id":"0193a0a0-0000-7000-8000-{i:012}","type":"tick","sessionId":"0193a0a0-1111-7000-8000-000000000001","at":1764000000000,"source":"tick-generator@0","step":{i},"value":12,"round":3,"broken":false,"scheduledAt":1764000000000,"emittedAt":1764000000001}}"#
    );
    NewRecord {
        key: "0193a0a0-1111-7000-8000-000000000001".into(),
        timestamp_ms: 1_764_000_000_000,
        payload: Bytes::from(payload),
    }
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(EmbeddedLog::open(dir.path()).unwrap());
    let mut group = c.benchmark_group("eventlog/append");
    group.sample_size(10);
    for (name, durability) in [("durable", Durability::Durable), ("relaxed", Durability::Relaxed)] {
        for writers in [64u64, 1024] {
            append_concurrently(&mut group, &runtime, &log, name, durability, writers);
        }
        // One writer appending batches of 1000 (a tick generator's burst).
        group.throughput(Throughput::Elements(1000));
        group.bench_function(format!("{name}/batch_1000"), |b| {
            b.to_async(&runtime).iter(|| {
                let log = Arc::clone(&log);
                async move {
                    log.append("bench", (0..1000).map(tick_record).collect(), durability).await.unwrap();
                }
            });
        });
    }
    group.finish();
    read_back(c, &runtime, &log);
}

/// `writers` tasks each appending single records, waiting for each acknowledgement, as gateways
/// and generators do: what group commit is for.
fn append_concurrently(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    log: &Arc<EmbeddedLog>,
    name: &str,
    durability: Durability,
    writers: u64,
) {
    const PER_WRITER: u64 = 20;
    group.throughput(Throughput::Elements(writers * PER_WRITER));
    group.bench_function(format!("{name}/{writers}_writers_x1"), |b| {
        b.to_async(runtime).iter(|| {
            let log = Arc::clone(log);
            async move {
                let mut tasks = tokio::task::JoinSet::new();
                for w in 0..writers {
                    let log = Arc::clone(&log);
                    tasks.spawn(async move {
                        for i in 0..PER_WRITER {
                            log.append("bench", vec![tick_record(w * PER_WRITER + i)], durability)
                                .await
                                .unwrap();
                        }
                    });
                }
                tasks.join_all().await;
            }
        });
    });
}

/// A scan of 100k records from SQLite (a replay's read path).
fn read_back(c: &mut Criterion, runtime: &tokio::runtime::Runtime, log: &Arc<EmbeddedLog>) {
    let mut group = c.benchmark_group("eventlog/read");
    group.sample_size(10);
    runtime.block_on(async {
        for chunk in 0..100 {
            log.append(
                "read",
                (chunk * 1000..chunk * 1000 + 1000).map(tick_record).collect(),
                Durability::Relaxed,
            )
            .await
            .unwrap();
        }
    });
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("scan_100k_from_sqlite", |b| {
        b.to_async(runtime).iter(|| {
            let log = Arc::clone(log);
            async move {
                let mut from = 0;
                loop {
                    let batch = log.read("read", StartFrom::Offset(from), 4096).await.unwrap();
                    let Some(last) = batch.last() else { break };
                    from = last.position.offset().expect("the embedded log has offsets") + 1;
                }
                assert_eq!(from, 100_000);
            }
        });
    });
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
