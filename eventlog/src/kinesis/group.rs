//! A consumer-group member on Kinesis: shard leases in DynamoDB ([`super::leases`]) say which
//! member reads which shard. One task per member renews its leases every third of the failover
//! time, takes free and expired ones, asks a loaded member for one to balance, reads its shards
//! and writes its commits as the leases' checkpoints.
//!
//! A lease asked for is revoked gracefully: the member gets a [`Revocation`] and the task hands
//! the lease over only once the member dropped it (drained), renewing it meanwhile; a lost lease
//! (its owner stalled past the failover time) is revoked after the fact. A closed shard (a
//! reshard's parent) is done once the member commits past its last record: its checkpoint
//! becomes `SHARD_END`, which lets its children be taken.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::KinesisAddress;
use super::leases::{Claim, Lease, LeaseTaker, SHARD_END, TRIM_HORIZON};
use super::log::Clients;
use super::shards::{ShardInfo, ShardReader, ShardStart, list_shards};
use crate::{
    CommitPosition, Error, GroupConsumer, GroupEvent, Position, Result, RetryHint, Revocation, StartFrom,
    TopicPartition,
};

/// Record batches the member task reads ahead of the member.
const READ_AHEAD: usize = 4;
/// Lease rounds between two listings of the streams' shards (to add leases for new shards).
const ROUNDS_PER_SHARD_SYNC: u32 = 10;

/// What the member asks of its task.
#[derive(Debug)]
enum Command {
    Commit { topic: String, partition: u32, position: CommitPosition, reply: oneshot::Sender<Result<()>> },
    Close { reply: oneshot::Sender<()> },
}

/// A member of a consumer group on Kinesis.
#[derive(Debug)]
pub(super) struct KinesisGroupConsumer {
    /// What the task learned, in order.
    events: mpsc::UnboundedReceiver<Result<GroupEvent>>,
    /// Record batches sent and not yet received: the task reads no further ahead.
    unread: Arc<AtomicUsize>,
    /// Commits and the close, to the task, which holds the leases.
    commands: mpsc::Sender<Command>,
    task: Option<JoinHandle<()>>,
}

impl KinesisGroupConsumer {
    pub(super) async fn join(
        clients: Clients,
        group: &str,
        topics: &[&str],
        initial: StartFrom,
        address: &KinesisAddress,
    ) -> Result<Self> {
        let me = member_id();
        let mut streams = Vec::new();
        for topic in topics {
            let stream = clients.streams.stream_name(topic);
            streams.push(TopicLeases {
                topic: (*topic).to_owned(),
                lease_group: format!("{group}/{stream}"),
                shards: HashMap::new(),
                taker: LeaseTaker::new(me.clone(), address.failover),
                stream,
            });
        }
        let (events, events_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::channel(16);
        let unread = Arc::new(AtomicUsize::new(0));
        let mut member = Member {
            clients,
            me,
            topics: streams,
            initial,
            owned: Vec::new(),
            events,
            unread: Arc::clone(&unread),
            poll: address.poll,
            lease_round: address.failover / 3,
        };
        // The shards exist (or the topic is missing) before `consume` returns.
        member.sync_shards().await?;
        let task = tokio::spawn(member.run(commands_rx));
        Ok(Self { events: events_rx, unread, commands, task: Some(task) })
    }
}

#[async_trait]
impl GroupConsumer for KinesisGroupConsumer {
    async fn next_event(&mut self) -> Result<GroupEvent> {
        let event = self.events.recv().await.unwrap_or(Err(Error::Closed))?;
        if matches!(event, GroupEvent::Records(_)) {
            self.unread.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(event)
    }

    async fn commit(&mut self, topic: &str, partition: u32, position: CommitPosition) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Commit { topic: topic.to_owned(), partition, position, reply };
        self.commands.send(command).await.map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn close(mut self: Box<Self>) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// A member id unique among every member of every process.
fn member_id() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("member-{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// One topic of the group: its stream, its leases and what the member thinks of them.
#[derive(Debug)]
struct TopicLeases {
    topic: String,
    stream: String,
    /// The leases' hash key: `group/stream`.
    lease_group: String,
    /// The stream's shards as last listed.
    shards: HashMap<String, ShardInfo>,
    taker: LeaseTaker,
}

/// A shard this member holds.
#[derive(Debug)]
struct Owned {
    topic: usize,
    lease: Lease,
    reader: ShardReader,
    told_caught_up: bool,
    /// Asked for by another member: revoked, handed over once the member drops the revocation
    /// (the sender's end is in the [`Revocation`]).
    handing_over: Option<(String, std::sync::mpsc::Receiver<()>)>,
}

impl Owned {
    fn partition(&self, topics: &[TopicLeases]) -> TopicPartition {
        TopicPartition { topic: topics[self.topic].topic.clone(), partition: self.reader.shard.partition }
    }
}

#[derive(Debug)]
struct Member {
    clients: Clients,
    me: String,
    topics: Vec<TopicLeases>,
    initial: StartFrom,
    owned: Vec<Owned>,
    /// To the member: records, assignments, revocations, a fatal error last.
    events: mpsc::UnboundedSender<Result<GroupEvent>>,
    /// Record batches the member has not received yet (shared with it).
    unread: Arc<AtomicUsize>,
    poll: Duration,
    lease_round: Duration,
}

impl Member {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut lease_round = tokio::time::interval(self.lease_round);
        lease_round.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut rounds, mut pause) = (0u32, Duration::ZERO);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Commit { topic, partition, position, reply }) => {
                        let _ = reply.send(self.commit(&topic, partition, &position).await);
                    }
                    Some(Command::Close { reply }) => {
                        self.leave().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.leave().await;
                        return;
                    }
                },
                _ = lease_round.tick() => {
                    let sync = rounds.is_multiple_of(ROUNDS_PER_SHARD_SYNC);
                    rounds = rounds.wrapping_add(1);
                    if let Err(error) = self.lease_round(sync).await
                        && self.fail(error)
                    {
                        return;
                    }
                }
                () = tokio::time::sleep(pause) => {
                    self.finish_handovers().await;
                    pause = match self.read_round().await {
                        Ok(true) => Duration::ZERO,
                        Ok(false) => self.poll,
                        Err(error) => {
                            if self.fail(error) {
                                return;
                            }
                            self.poll * 4
                        }
                    };
                }
            }
        }
    }

    /// Says `error` to the member if no retry can help (then the task ends: true), else logs it.
    fn fail(&self, error: Error) -> bool {
        if error.retry_hint() == RetryHint::DoNotRetry {
            let _ = self.events.send(Err(error));
            return true;
        }
        tracing::warn!(%error, "a Kinesis group call failed; retrying");
        false
    }

    fn send(&self, event: GroupEvent) {
        let _ = self.events.send(Ok(event));
    }

    /// Lists every topic's shards, and adds a lease for each shard that has none.
    async fn sync_shards(&mut self) -> Result<()> {
        for topic in &mut self.topics {
            let shards = list_shards(&self.clients.kinesis, &topic.stream, &topic.topic).await?;
            for shard in &shards {
                if !topic.shards.contains_key(&shard.id) {
                    self.clients.leases.ensure(&topic.lease_group, &shard.id, &shard.parents).await?;
                }
            }
            topic.shards = shards.into_iter().map(|s| (s.id.clone(), s)).collect();
        }
        Ok(())
    }

    /// Renews the leases held, starts handing over those asked for, takes or asks for more.
    async fn lease_round(&mut self, sync_shards: bool) -> Result<()> {
        if sync_shards {
            self.sync_shards().await?;
        }
        let mut index = 0;
        while index < self.owned.len() {
            match self.clients.leases.renew(&self.owned[index].lease).await? {
                Some(renewed) => {
                    self.owned[index].lease = renewed;
                    index += 1;
                }
                None => {
                    // Taken over (this member stalled past the failover time): let the member know.
                    let lost = self.owned.swap_remove(index);
                    tracing::warn!(shard = %lost.lease.shard, "a lease was lost to another member");
                    if lost.handing_over.is_none() {
                        let partitions = vec![lost.partition(&self.topics)];
                        self.send(GroupEvent::Revoked(Revocation { partitions, release: None }));
                    }
                }
            }
        }
        for topic in 0..self.topics.len() {
            let leases = self.clients.leases.list(&self.topics[topic].lease_group).await?;
            for lease in &leases {
                self.notice(topic, lease).await?;
            }
            let chosen = self.topics[topic].taker.choose(&leases, Instant::now());
            for (lease, claim) in chosen {
                match claim {
                    Claim::Take => {
                        let taken = self.clients.leases.take(&lease, &self.me).await?;
                        tracing::debug!(me = %self.me, shard = %lease.shard, from = lease.owner.as_deref().unwrap_or("nobody"), taken = taken.is_some(), "taking a lease");
                        if let Some(taken) = taken {
                            self.adopt(topic, taken).await?;
                        }
                    }
                    Claim::AskOwner => {
                        let asked = self.clients.leases.request_handoff(&lease, &self.me).await?;
                        tracing::debug!(me = %self.me, shard = %lease.shard, owner = lease.owner.as_deref().unwrap_or("nobody"), asked = asked.is_some(), "asking for a lease");
                    }
                }
            }
        }
        Ok(())
    }

    /// Acts on `lease` as just listed: one held that another member asked for starts being
    /// handed over; one handed to this member is adopted.
    async fn notice(&mut self, topic: usize, lease: &Lease) -> Result<()> {
        let held = self.owned.iter().position(|o| o.topic == topic && o.lease.shard == lease.shard);
        match (held, &lease.owner, &lease.pending_owner) {
            (Some(index), _, Some(asker))
                if self.owned[index].handing_over.is_none() && asker != &self.me =>
            {
                let (release, released) = std::sync::mpsc::channel();
                let owned = &mut self.owned[index];
                owned.lease.pending_owner = Some(asker.clone());
                owned.handing_over = Some((asker.clone(), released));
                let partitions = vec![owned.partition(&self.topics)];
                self.send(GroupEvent::Revoked(Revocation { partitions, release: Some(release) }));
            }
            (None, Some(owner), _) if owner == &self.me && lease.checkpoint != SHARD_END => {
                self.adopt(topic, lease.clone()).await?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Starts reading a shard whose lease this member now holds, from its checkpoint.
    async fn adopt(&mut self, topic: usize, lease: Lease) -> Result<()> {
        let start = match lease.checkpoint.as_str() {
            TRIM_HORIZON => ShardStart::of(self.initial)?,
            at if at.starts_with(AT) => ShardStart::At(at[AT.len()..].to_owned()),
            after => ShardStart::After(after.to_owned()),
        };
        let leases = &self.topics[topic];
        let Some(shard) = leases.shards.get(&lease.shard).cloned() else {
            // A lease of a shard not listed yet: the next listing brings it.
            return Ok(());
        };
        let mut reader = ShardReader::new(
            self.clients.kinesis.clone(),
            leases.stream.clone(),
            leases.topic.as_str().into(),
            shard,
            start,
        );
        reader.start().await?;
        tracing::debug!(me = %self.me, shard = %lease.shard, checkpoint = %lease.checkpoint, "reading a shard");
        let owned = Owned { topic, lease, reader, told_caught_up: false, handing_over: None };
        self.send(GroupEvent::Assigned(vec![owned.partition(&self.topics)]));
        self.owned.push(owned);
        Ok(())
    }

    /// Hands over the leases whose revocation the member has dropped.
    async fn finish_handovers(&mut self) {
        let mut index = 0;
        while index < self.owned.len() {
            let dropped = self.owned[index].handing_over.as_ref().is_some_and(|(_, released)| {
                matches!(released.try_recv(), Err(std::sync::mpsc::TryRecvError::Disconnected))
            });
            if !dropped {
                index += 1;
                continue;
            }
            let owned = self.owned.swap_remove(index);
            let to = owned.handing_over.as_ref().map(|(to, _)| to.clone()).unwrap_or_default();
            match self.clients.leases.hand_over(&owned.lease, &to).await {
                Ok(_) => tracing::info!(shard = %owned.lease.shard, %to, "lease handed over"),
                // It expires instead: the asker takes it after the failover time.
                Err(error) => {
                    tracing::warn!(%error, shard = %owned.lease.shard, "could not hand a lease over")
                }
            }
        }
    }

    /// Reads each held shard once, if the member keeps up; whether anything was read.
    async fn read_round(&mut self) -> Result<bool> {
        let mut found = false;
        for index in 0..self.owned.len() {
            if self.unread.load(Ordering::Acquire) >= READ_AHEAD {
                return Ok(true);
            }
            let owned = &mut self.owned[index];
            if owned.handing_over.is_some() || owned.reader.ended() && owned.told_caught_up {
                continue;
            }
            let pulled = owned.reader.pull().await?;
            let partition = owned.partition(&self.topics);
            if !pulled.records.is_empty() {
                found = true;
                self.unread.fetch_add(1, Ordering::AcqRel);
                self.send(GroupEvent::Records(pulled.records));
            }
            let owned = &mut self.owned[index];
            if pulled.caught_up && !owned.told_caught_up {
                owned.told_caught_up = true;
                self.send(GroupEvent::CaughtUp(vec![partition]));
            }
            let owned = &self.owned[index];
            let last = owned.reader.last();
            if pulled.shard_end && (last.is_none() || last == Some(owned.lease.checkpoint.as_str())) {
                // Nothing past the checkpoint: the shard is done as it stands.
                self.finish_shard(index).await?;
                return Ok(true);
            }
        }
        Ok(found)
    }

    /// Writes a commit as its lease's checkpoint; a commit past the last record of a closed
    /// shard read to its end finishes the shard.
    async fn commit(&mut self, topic: &str, partition: u32, position: &CommitPosition) -> Result<()> {
        let checkpoint = match &position.next {
            Position::Sequence { number, after: true } => number.to_string(),
            Position::Sequence { number, after: false } => format!("{AT}{number}"),
            other @ Position::Offset(_) => return Err(Error::ForeignPosition(other.clone())),
        };
        let Some(index) = self
            .owned
            .iter()
            .position(|o| self.topics[o.topic].topic == topic && o.reader.shard.partition == partition)
        else {
            // Not held (any more): the owner's checkpoint counts; this only means reading more.
            return Ok(());
        };
        let owned = &self.owned[index];
        let past_the_end = owned.reader.ended() && owned.reader.last() == Some(checkpoint.as_str());
        if past_the_end {
            return self.finish_shard(index).await;
        }
        match self.clients.leases.checkpoint(&owned.lease, &checkpoint).await? {
            Some(lease) => self.owned[index].lease = lease,
            None => tracing::warn!(topic, partition, "a commit after the lease was lost is not written"),
        }
        Ok(())
    }

    /// Marks a closed shard read and processed to its end, and lets its lease go.
    async fn finish_shard(&mut self, index: usize) -> Result<()> {
        let owned = self.owned.swap_remove(index);
        if let Some(done) = self.clients.leases.checkpoint(&owned.lease, SHARD_END).await? {
            self.clients.leases.release(&done).await?;
        }
        tracing::info!(shard = %owned.lease.shard, "shard read to its end; its children may start");
        let partitions = vec![owned.partition(&self.topics)];
        self.send(GroupEvent::Revoked(Revocation { partitions, release: None }));
        Ok(())
    }

    /// Lets every lease go, so the other members take them at once.
    async fn leave(&mut self) {
        for owned in std::mem::take(&mut self.owned) {
            let left = match &owned.handing_over {
                Some((to, _)) => self.clients.leases.hand_over(&owned.lease, to).await,
                None => self.clients.leases.release(&owned.lease).await,
            };
            if let Err(error) = left {
                tracing::warn!(%error, shard = %owned.lease.shard, "could not let a lease go; it expires");
            }
        }
    }
}

/// A checkpoint at a record (not after it): where a member resumes at a record it has not
/// processed (the tick generator, at the oldest running session's creation).
const AT: &str = "at:";
