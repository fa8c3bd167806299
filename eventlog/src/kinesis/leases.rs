//! Shard leases in DynamoDB, as the Kinesis Client Library keeps them: one item per (group and
//! stream, shard) in `PREFIX-leases` with its owner, a counter the owner bumps to say it is
//! alive, and the checkpoint (the sequence number of the last record processed). Every change is
//! a conditional write on the counter (and the owner), so two members never both think they
//! hold a lease. A lease whose counter has not moved for the failover time, as this member
//! sees it (no clocks are compared), is expired and may be taken; a member holding fewer than
//! its share steals one lease at a time from the most loaded member, until the shards are
//! balanced ([`LeaseTaker`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};

use super::aws_error;
use crate::{Error, Result};

/// Where a shard without a checkpoint starts.
pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
/// The checkpoint of a shard read to its end (a parent after a reshard): its children may start.
pub const SHARD_END: &str = "SHARD_END";

/// One shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The consumer group and stream it belongs to (`group/stream`): the table's hash key.
    pub group: String,
    /// The shard: the table's range key.
    pub shard: String,
    pub owner: Option<String>,
    /// Bumped by every take and renewal: a lease whose counter stands still is not renewed.
    pub counter: u64,
    /// The sequence number of the last record processed, [`TRIM_HORIZON`] or [`SHARD_END`].
    pub checkpoint: String,
    /// The shards this one was split or merged from, read to their end before it.
    pub parents: Vec<String>,
    /// A member that asked for the lease to balance the shards: the owner hands it over once it
    /// has drained what it did with the shard (a graceful steal; a lost owner's lease expires).
    pub pending_owner: Option<String>,
}

/// The lease table.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    client: Client,
    table: String,
}

fn string(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn lease_of(item: &HashMap<String, AttributeValue>) -> Result<Lease> {
    let corrupt = |what: &str| Error::Aws {
        context: "reading a lease".into(),
        message: format!("a lease item without {what}"),
        transient: false,
    };
    Ok(Lease {
        group: string(item, "leaseGroup").ok_or_else(|| corrupt("leaseGroup"))?,
        shard: string(item, "shardId").ok_or_else(|| corrupt("shardId"))?,
        owner: string(item, "leaseOwner"),
        counter: item
            .get("leaseCounter")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| corrupt("leaseCounter"))?,
        checkpoint: string(item, "checkpoint").ok_or_else(|| corrupt("checkpoint"))?,
        parents: item
            .get("parentShardIds")
            .and_then(|v| v.as_l().ok())
            .map_or_else(Vec::new, |list| list.iter().filter_map(|v| v.as_s().ok().cloned()).collect()),
        pending_owner: string(item, "pendingOwner"),
    })
}

fn key(lease: &Lease) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("leaseGroup".to_owned(), AttributeValue::S(lease.group.clone())),
        ("shardId".to_owned(), AttributeValue::S(lease.shard.clone())),
    ])
}

impl LeaseTable {
    #[must_use]
    pub const fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// Creates the table (on-demand) if it is missing, and waits until it is active.
    pub async fn create(&self) -> Result<()> {
        let element =
            |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let definition = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let built = (|| -> std::result::Result<_, aws_sdk_dynamodb::error::BuildError> {
            Ok((
                element("leaseGroup", KeyType::Hash)?,
                element("shardId", KeyType::Range)?,
                definition("leaseGroup")?,
                definition("shardId")?,
            ))
        })();
        let (hash, range, group, shard) = built.map_err(|e| Error::Aws {
            context: "describing the lease table".into(),
            message: e.to_string(),
            transient: false,
        })?;
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(hash)
            .key_schema(range)
            .attribute_definitions(group)
            .attribute_definitions(shard)
            .send()
            .await;
        match created {
            Ok(_) => {}
            Err(error) if error.code() == Some("ResourceInUseException") => {}
            Err(error) => return Err(aws_error(&format!("creating table {}", self.table), &error)),
        }
        self.client
            .wait_until_table_exists()
            .table_name(&self.table)
            .wait(Duration::from_secs(120))
            .await
            .map_err(|e| Error::Aws {
                context: format!("waiting for table {}", self.table),
                message: DisplayErrorContext(&e).to_string(),
                transient: true,
            })?;
        Ok(())
    }

    /// Adds an unowned lease for `shard` unless it has one; returns whether it was added.
    pub async fn ensure(&self, group: &str, shard: &str, parents: &[String]) -> Result<bool> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("leaseGroup", AttributeValue::S(group.to_owned()))
            .item("shardId", AttributeValue::S(shard.to_owned()))
            .item("leaseCounter", AttributeValue::N("0".into()))
            .item("checkpoint", AttributeValue::S(TRIM_HORIZON.into()))
            .condition_expression("attribute_not_exists(shardId)");
        if !parents.is_empty() {
            put = put.item(
                "parentShardIds",
                AttributeValue::L(parents.iter().cloned().map(AttributeValue::S).collect()),
            );
        }
        match put.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) if error.code() == Some("ResourceNotFoundException") => Err(self.missing()),
            Err(error) => Err(aws_error("adding a lease", &error)),
        }
    }

    /// The table is not there: members do not make it (that takes a permission roles need not
    /// have), `streams create` does.
    fn missing(&self) -> Error {
        Error::Aws {
            context: format!("the lease table {}", self.table),
            message: "it does not exist; create it with `tickcast streams create --log URL`".into(),
            transient: false,
        }
    }

    /// Every lease of `group`, by shard.
    pub async fn list(&self, group: &str) -> Result<Vec<Lease>> {
        let mut leases = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("leaseGroup = :group")
                .expression_attribute_values(":group", AttributeValue::S(group.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws_error("listing leases", &e))?;
            for item in page.items() {
                leases.push(lease_of(item)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(leases);
            }
        }
    }

    /// Changes `lease` as `expression` says if nobody changed it since it was read (its counter
    /// and owner); returns the lease as written, or `None` if someone had.
    async fn change(
        &self,
        lease: &Lease,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
        next: Lease,
    ) -> Result<Option<Lease>> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(lease)))
            .update_expression(expression)
            .expression_attribute_values(":counter", AttributeValue::N(lease.counter.to_string()))
            .expression_attribute_values(":next", AttributeValue::N(next.counter.to_string()));
        update = match &lease.owner {
            Some(owner) => update
                .condition_expression("leaseCounter = :counter AND leaseOwner = :owner")
                .expression_attribute_values(":owner", AttributeValue::S(owner.clone())),
            None => {
                update.condition_expression("leaseCounter = :counter AND attribute_not_exists(leaseOwner)")
            }
        };
        for (name, value) in values {
            update = update.expression_attribute_values(name, value);
        }
        match update.send().await {
            Ok(_) => Ok(Some(next)),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(error) => Err(aws_error("changing a lease", &error)),
        }
    }

    /// Takes `lease` (as read) for `me`: `None` if another member changed it first.
    pub async fn take(&self, lease: &Lease, me: &str) -> Result<Option<Lease>> {
        let next = Lease {
            owner: Some(me.to_owned()),
            counter: lease.counter + 1,
            pending_owner: None,
            ..lease.clone()
        };
        let values = vec![(":me", AttributeValue::S(me.to_owned()))];
        self.change(lease, "SET leaseOwner = :me, leaseCounter = :next REMOVE pendingOwner", values, next)
            .await
    }

    /// Asks the owner of `lease` (as read) to hand it to `me`, leaving its counter alone so the
    /// owner's renewals go on while it drains: `None` if the lease changed first.
    pub async fn request_handoff(&self, lease: &Lease, me: &str) -> Result<Option<Lease>> {
        let next = Lease { pending_owner: Some(me.to_owned()), ..lease.clone() };
        let values = vec![(":me", AttributeValue::S(me.to_owned()))];
        // The counter is written as it was (every change binds `:next`).
        self.change(lease, "SET pendingOwner = :me, leaseCounter = :next", values, next).await
    }

    /// Hands a lease `me` holds to the member that asked for it: `None` if it was lost.
    pub async fn hand_over(&self, lease: &Lease, to: &str) -> Result<Option<Lease>> {
        let next = Lease {
            owner: Some(to.to_owned()),
            counter: lease.counter + 1,
            pending_owner: None,
            ..lease.clone()
        };
        let values = vec![(":to", AttributeValue::S(to.to_owned()))];
        self.change(lease, "SET leaseOwner = :to, leaseCounter = :next REMOVE pendingOwner", values, next)
            .await
    }

    /// Renews a lease `me` holds: `None` if it was lost (taken by another member).
    pub async fn renew(&self, lease: &Lease) -> Result<Option<Lease>> {
        let next = Lease { counter: lease.counter + 1, ..lease.clone() };
        self.change(lease, "SET leaseCounter = :next", Vec::new(), next).await
    }

    /// Records `checkpoint` on a lease `me` holds, renewing it: `None` if it was lost (the
    /// checkpoint is then not written: the new owner's counts).
    pub async fn checkpoint(&self, lease: &Lease, checkpoint: &str) -> Result<Option<Lease>> {
        let next = Lease { counter: lease.counter + 1, checkpoint: checkpoint.to_owned(), ..lease.clone() };
        let values = vec![(":checkpoint", AttributeValue::S(checkpoint.to_owned()))];
        self.change(lease, "SET leaseCounter = :next, checkpoint = :checkpoint", values, next).await
    }

    /// Lets a lease go (on shutdown), so another member takes it at once rather than after the
    /// failover time: `None` if it was lost already.
    pub async fn release(&self, lease: &Lease) -> Result<Option<Lease>> {
        let next = Lease { owner: None, counter: lease.counter + 1, pending_owner: None, ..lease.clone() };
        self.change(lease, "SET leaseCounter = :next REMOVE leaseOwner, pendingOwner", Vec::new(), next).await
    }
}

/// How a chosen lease is to be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Unowned or expired: take it.
    Take,
    /// Held by a live member with more than its share: ask it to hand the lease over.
    AskOwner,
}

/// One member's judgement of which leases to take: those expired or unowned, up to its share,
/// else one stolen from the most loaded member while the difference is more than one lease.
#[derive(Debug)]
pub struct LeaseTaker {
    me: String,
    failover: Duration,
    /// Shard → (owner, counter) last seen and since when: a lease whose owner and counter stay
    /// the same for the failover time is expired.
    seen: HashMap<String, (Option<String>, u64, Instant)>,
}

impl LeaseTaker {
    #[must_use]
    pub fn new(me: impl Into<String>, failover: Duration) -> Self {
        Self { me: me.into(), failover, seen: HashMap::new() }
    }

    /// The leases to try to take now, given every lease of the group as just read.
    pub fn choose(&mut self, leases: &[Lease], now: Instant) -> Vec<(Lease, Claim)> {
        self.seen.retain(|shard, _| leases.iter().any(|l| &l.shard == shard));
        let mut expired = Vec::new();
        let mut held: BTreeMap<&str, Vec<&Lease>> = BTreeMap::new();
        // After a reshard a child is read only once its parents are read to their end, so a
        // session's events keep their order across the split or merge.
        let unfinished_parent = |lease: &Lease| {
            lease.parents.iter().any(|p| leases.iter().any(|l| &l.shard == p && l.checkpoint != SHARD_END))
        };
        for lease in leases {
            if lease.checkpoint == SHARD_END {
                continue; // read to its end: nothing to take
            }
            if lease.owner.is_none() && unfinished_parent(lease) {
                continue; // not yet: its parents first
            }
            let entry =
                self.seen.entry(lease.shard.clone()).or_insert((lease.owner.clone(), lease.counter, now));
            if entry.0 != lease.owner || entry.1 != lease.counter {
                *entry = (lease.owner.clone(), lease.counter, now);
            }
            if lease.pending_owner.as_deref() == Some(self.me.as_str()) {
                // Asked for already: it counts as ours while its owner drains.
                held.entry(self.me.as_str()).or_default().push(lease);
                continue;
            }
            match &lease.owner {
                None => expired.push(lease.clone()),
                Some(owner) if owner != &self.me && now.duration_since(entry.2) >= self.failover => {
                    expired.push(lease.clone());
                }
                Some(owner) => held.entry(owner.as_str()).or_default().push(lease),
            }
        }
        let live = leases.iter().filter(|l| l.checkpoint != SHARD_END).count();
        let members = held.keys().filter(|o| **o != self.me).count() + 1;
        let target = live.div_ceil(members);
        let mine = held.get(self.me.as_str()).map_or(0, Vec::len);
        if mine >= target {
            return Vec::new();
        }
        if !expired.is_empty() {
            expired.truncate(target - mine);
            return expired.into_iter().map(|lease| (lease, Claim::Take)).collect();
        }
        // Nothing free: steal one from the most loaded member, if that evens things out, and
        // only one nobody has asked for yet.
        let asking = leases.iter().any(|l| l.pending_owner.as_deref() == Some(self.me.as_str()));
        let most = held.iter().filter(|(owner, _)| **owner != self.me).max_by_key(|(_, leases)| leases.len());
        match most {
            Some((_, theirs)) if !asking && theirs.len() > mine + 1 => theirs
                .iter()
                .find(|l| l.pending_owner.is_none())
                .map(|l| vec![((*l).clone(), Claim::AskOwner)])
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(shard: &str, owner: Option<&str>, counter: u64) -> Lease {
        Lease {
            group: "g/s".into(),
            shard: shard.into(),
            owner: owner.map(str::to_owned),
            counter,
            checkpoint: TRIM_HORIZON.into(),
            parents: Vec::new(),
            pending_owner: None,
        }
    }

    fn shards(chosen: &[(Lease, Claim)]) -> Vec<&str> {
        chosen.iter().map(|(l, _)| l.shard.as_str()).collect()
    }

    #[test]
    fn unowned_leases_are_taken_up_to_a_share() {
        let mut taker = LeaseTaker::new("a", Duration::from_secs(10));
        let leases = vec![
            lease("1", None, 0),
            lease("2", None, 0),
            lease("3", Some("b"), 4),
            lease("4", Some("b"), 4),
        ];
        let chosen = taker.choose(&leases, Instant::now());
        assert_eq!(shards(&chosen), ["1", "2"]);
        assert!(chosen.iter().all(|(_, claim)| *claim == Claim::Take));
    }

    #[test]
    fn a_lease_not_renewed_for_the_failover_time_is_taken() {
        let mut taker = LeaseTaker::new("a", Duration::from_secs(10));
        let start = Instant::now();
        let leases = vec![lease("1", Some("b"), 7), lease("2", Some("a"), 3)];
        assert!(taker.choose(&leases, start).is_empty(), "b renewed a moment ago");
        assert!(taker.choose(&leases, start + Duration::from_secs(9)).is_empty());
        let renewed = vec![lease("1", Some("b"), 8), lease("2", Some("a"), 4)];
        assert!(
            taker.choose(&renewed, start + Duration::from_secs(11)).is_empty(),
            "a renewal restarts the clock"
        );
        let chosen = taker.choose(&renewed, start + Duration::from_secs(22));
        assert_eq!(shards(&chosen), ["1"]);
        assert_eq!(chosen[0].1, Claim::Take, "an expired lease is taken, not asked for");
    }

    #[test]
    fn a_newcomer_steals_one_at_a_time_until_balanced() {
        let now = Instant::now();
        let mut shards: Vec<Lease> = (1..=5).map(|i| lease(&i.to_string(), Some("a"), 1)).collect();
        let mut taker = LeaseTaker::new("b", Duration::from_secs(10));
        let mut steals = 0;
        loop {
            let chosen = taker.choose(&shards, now);
            assert!(chosen.len() <= 1, "one steal at a time");
            let Some((stolen, claim)) = chosen.first() else { break };
            assert_eq!(*claim, Claim::AskOwner, "a live owner is asked");
            let held = shards.iter_mut().find(|l| l.shard == stolen.shard).unwrap();
            held.pending_owner = Some("b".into());
            assert!(taker.choose(&shards, now).is_empty(), "one asked at a time, none asked twice");
            // The owner hands it over once drained.
            let held = shards.iter_mut().find(|l| l.pending_owner.is_some()).unwrap();
            (held.owner, held.counter, held.pending_owner) = (Some("b".into()), held.counter + 1, None);
            steals += 1;
        }
        assert_eq!(steals, 2, "5 shards: 3 and 2");
        assert_eq!(shards.iter().filter(|l| l.owner.as_deref() == Some("b")).count(), 2);
    }

    #[test]
    fn children_wait_until_their_parents_are_read_to_their_end() {
        let mut taker = LeaseTaker::new("a", Duration::from_secs(10));
        let child = |shard: &str| Lease { parents: vec!["0".into()], ..lease(shard, None, 0) };
        let parent = lease("0", Some("b"), 5);
        let leases = vec![parent.clone(), child("1"), child("2")];
        let chosen = taker.choose(&leases, Instant::now());
        assert!(
            chosen.iter().all(|(l, _)| l.shard == "0"),
            "only the parent, never a child first: {chosen:?}"
        );
        let ended = Lease { checkpoint: SHARD_END.into(), owner: None, ..parent };
        let chosen = taker.choose(&[ended, child("1"), child("2")], Instant::now());
        assert_eq!(shards(&chosen), ["1", "2"]);
    }

    #[test]
    fn shards_read_to_their_end_are_nobody_s_share() {
        let mut taker = LeaseTaker::new("a", Duration::from_secs(10));
        let mut ended = lease("0", None, 9);
        ended.checkpoint = SHARD_END.into();
        let leases = vec![ended, lease("1", Some("b"), 1), lease("2", Some("b"), 1)];
        assert_eq!(
            taker.choose(&leases, Instant::now()).len(),
            1,
            "one of b's two: 2 live shards, 2 members"
        );
    }
}
