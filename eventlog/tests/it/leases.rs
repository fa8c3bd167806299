//! Shard leases in DynamoDB (moto's server, `TICKCAST_TEST_DYNAMODB`): members share the shards,
//! a newcomer steals until they are balanced, and a member that stops renewing loses its
//! leases to the others after the failover time; a lost lease takes no checkpoint.

use std::time::{Duration, Instant};

use tickcast_eventlog::kinesis::leases::{Claim, Lease, LeaseTable, LeaseTaker};

async fn table() -> LeaseTable {
    let config = crate::aws_test_config().await;
    let table = LeaseTable::new(
        aws_sdk_dynamodb::Client::new(&config),
        format!("t{}-leases", uuid::Uuid::now_v7().simple()),
    );
    table.create().await.unwrap();
    table
}

/// One round of a member: renew what it holds (handing over what another asked for, as if
/// drained at once), then take or ask for what its taker chooses. Returns the shards it holds.
async fn round(table: &LeaseTable, taker: &mut LeaseTaker, me: &str, group: &str) -> Vec<String> {
    for lease in table.list(group).await.unwrap().iter().filter(|l| l.owner.as_deref() == Some(me)) {
        match &lease.pending_owner {
            Some(asker) => table.hand_over(lease, asker).await.unwrap(),
            None => table.renew(lease).await.unwrap(),
        };
    }
    let leases = table.list(group).await.unwrap();
    for (lease, claim) in taker.choose(&leases, Instant::now()) {
        match claim {
            Claim::Take => table.take(&lease, me).await.unwrap(),
            Claim::AskOwner => table.request_handoff(&lease, me).await.unwrap(),
        };
    }
    owned(table, group, me).await
}

async fn owned(table: &LeaseTable, group: &str, me: &str) -> Vec<String> {
    let leases: Vec<Lease> = table.list(group).await.unwrap();
    leases.into_iter().filter(|l| l.owner.as_deref() == Some(me)).map(|l| l.shard).collect()
}

#[tokio::test]
async fn members_balance_the_shards_and_take_over_from_one_that_stops() {
    let table = table().await;
    let group = "generators/game-events";
    for shard in ["s-0", "s-1", "s-2", "s-3"] {
        assert!(table.ensure(group, shard, &[]).await.unwrap());
        assert!(!table.ensure(group, shard, &[]).await.unwrap(), "a lease is added once");
    }
    let failover = Duration::from_secs(1);
    let (mut a, mut b) = (LeaseTaker::new("a", failover), LeaseTaker::new("b", failover));
    assert_eq!(round(&table, &mut a, "a", group).await.len(), 4, "alone, a takes every shard");

    // b joins: it steals one lease a round until each holds two.
    let deadline = Instant::now() + Duration::from_secs(30);
    while owned(&table, group, "b").await.len() < 2 {
        assert!(Instant::now() < deadline, "b never got its share");
        round(&table, &mut a, "a", group).await;
        round(&table, &mut b, "b", group).await;
    }
    // When a last renewed, at the latest: b cannot see that renewal before it is written.
    let mut a_renewed_after = Instant::now();
    for _ in 0..3 {
        a_renewed_after = Instant::now();
        round(&table, &mut a, "a", group).await;
        round(&table, &mut b, "b", group).await;
    }
    assert_eq!(
        (owned(&table, group, "a").await.len(), owned(&table, group, "b").await.len()),
        (2, 2),
        "balanced, and it stays so"
    );

    // a stops renewing (killed): after the failover time b holds everything.
    let a_lease =
        table.list(group).await.unwrap().into_iter().find(|l| l.owner.as_deref() == Some("a")).unwrap();
    while owned(&table, group, "b").await.len() < 4 {
        assert!(a_renewed_after.elapsed() < Duration::from_secs(30), "b never took a's shards");
        round(&table, &mut b, "b", group).await;
    }
    assert!(a_renewed_after.elapsed() >= failover, "not before the failover time after a's last renewal");
    // a, come back, cannot checkpoint the lease it lost: the new owner's checkpoint counts.
    assert!(table.checkpoint(&a_lease, "49000000000000000001").await.unwrap().is_none());
    let now_b = table.list(group).await.unwrap().into_iter().find(|l| l.shard == a_lease.shard).unwrap();
    assert_eq!(now_b.checkpoint, "TRIM_HORIZON");
    let checkpointed = table.checkpoint(&now_b, "49000000000000000002").await.unwrap().expect("b holds it");
    assert_eq!(checkpointed.checkpoint, "49000000000000000002");
    // Released on shutdown, a lease is free at once.
    table.release(&checkpointed).await.unwrap().expect("b held it");
    let mut c = LeaseTaker::new("c", failover);
    assert!(
        round(&table, &mut c, "c", group).await.contains(&a_lease.shard),
        "a released lease is taken without waiting"
    );
}
