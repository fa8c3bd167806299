//! Kinesis streams (moto's server, `TICKCAST_TEST_DYNAMODB` — one endpoint for both services):
//! created once, and appends whose records of one key land in order.

use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use tickcast_eventlog::kinesis::streams::KinesisStreams;

async fn client() -> aws_sdk_kinesis::Client {
    let config = crate::aws_test_config().await;
    aws_sdk_kinesis::Client::new(&config)
}

/// Numeric order of two sequence numbers (decimal strings of any length).
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

#[tokio::test]
async fn a_stream_is_created_once_and_each_key_lands_in_order() {
    let client = client().await;
    let streams = KinesisStreams::new(client.clone(), format!("t{}", uuid::Uuid::now_v7().simple()));
    assert!(streams.create("ticks.eu-west-1", 2).await.unwrap());
    assert!(!streams.create("ticks.eu-west-1", 2).await.unwrap(), "an existing stream is left as it is");
    let name = streams.stream_name("ticks.eu-west-1");
    assert!(name.ends_with("-ticks-eu-west-1"), "{name}");

    let records: Vec<(String, Bytes)> = (0..60)
        .map(|i| (format!("session-{}", i % 6), Bytes::from(format!("{}:{}", i % 6, i / 6))))
        .collect();
    let landed = streams.put("ticks.eu-west-1", &records).await.unwrap();
    assert_eq!(landed.len(), records.len());
    // Within a key: one shard, increasing sequence numbers, in the order given.
    for key in 0..6 {
        let of_key: Vec<_> =
            landed.iter().enumerate().filter(|(i, _)| i % 6 == key).map(|(_, l)| l).collect();
        assert!(of_key.iter().all(|l| l.shard == of_key[0].shard), "a key stays on one shard");
        assert!(
            of_key.windows(2).all(|w| sequence_order(&w[0].sequence, &w[1].sequence).is_lt()),
            "{of_key:?}"
        );
    }
    // Read back, shard by shard: every key's payloads in order.
    let shards = client.list_shards().stream_name(&name).send().await.unwrap();
    let mut seen: Vec<Vec<u32>> = vec![Vec::new(); 6];
    for shard in shards.shards() {
        let iterator = client
            .get_shard_iterator()
            .stream_name(&name)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator
            .unwrap();
        let got = client.get_records().shard_iterator(iterator).limit(1000).send().await.unwrap();
        for record in got.records() {
            let text = String::from_utf8(record.data().as_ref().to_vec()).unwrap();
            let (key, n) = text.split_once(':').unwrap();
            seen[key.parse::<usize>().unwrap()].push(n.parse().unwrap());
        }
    }
    for (key, numbers) in seen.iter().enumerate() {
        assert_eq!(numbers, &(0..10).collect::<Vec<u32>>(), "key {key}");
    }
}
