//! Members of a consumer group on Kinesis (moto's server): a killed member's shards taken over
//! after the failover time, a joining member handed leases only once their owner has drained.

use std::time::Duration;

use tickcast_eventlog::{GroupEvent, Position, StartFrom, open};

use crate::kinesis::*;

const CHILD_URL_ENV: &str = "TICKCAST_KINESIS_CHILD_URL";

/// Run as a child process by `a_killed_member_s_shards_are_taken_over_after_the_failover_time`:
/// a member of group `g` that prints what it is assigned, processes and commits, until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_member() {
    use std::io::Write;
    let Ok(url) = std::env::var(CHILD_URL_ENV) else { return };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let log = open(&url).unwrap();
    let mut consumer = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut out = std::io::stdout().lock();
    loop {
        match consumer.next_event().await.unwrap() {
            GroupEvent::Assigned(partitions) => {
                for p in partitions {
                    writeln!(out, "@@ assigned {}", p.partition).unwrap();
                }
            }
            GroupEvent::Revoked(revocation) => {
                for p in &revocation.partitions {
                    writeln!(out, "@@ revoked {}", p.partition).unwrap();
                }
            }
            GroupEvent::CaughtUp(_) => {}
            GroupEvent::Records(records) => {
                for r in &records {
                    let payload = String::from_utf8(r.payload.to_vec()).unwrap();
                    writeln!(out, "@@ record {} {} {payload}", r.partition, r.position).unwrap();
                }
                out.flush().unwrap();
                commit_past(&mut *consumer, &records).await;
                let mut last = std::collections::BTreeMap::new();
                for r in &records {
                    last.insert(r.partition, r.position.to_string());
                }
                for (partition, position) in last {
                    writeln!(out, "@@ committed {partition} {position}").unwrap();
                }
            }
        }
        out.flush().unwrap();
    }
}

/// What the child member printed, read on a thread of its own.
struct Child {
    process: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    owned: std::collections::BTreeSet<u32>,
    records: Vec<(u32, Position, String)>,
    /// Per partition, the last record it committed past.
    committed: std::collections::BTreeMap<u32, Position>,
    /// Its assignments and revocations, in order, for messages.
    changes: Vec<String>,
}

impl Child {
    fn start(url: &str) -> Self {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["kinesis_members::child_member", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_URL_ENV, url)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            process,
            lines,
            owned: Default::default(),
            records: Vec::new(),
            committed: Default::default(),
            changes: Vec::new(),
        }
    }

    fn sequence(text: &str) -> Position {
        Position::Sequence { number: text.into(), after: false }
    }

    /// Reads what the child printed so far.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            // libtest may print the test's name on the same line before the first of them.
            let Some((_, line)) = line.split_once("@@ ") else { continue };
            let words: Vec<&str> = line.splitn(4, ' ').collect();
            if matches!(words.first(), Some(&("assigned" | "revoked"))) {
                self.changes.push(line.to_owned());
            }
            match words.as_slice() {
                ["assigned", p] => {
                    self.owned.insert(p.parse().unwrap());
                }
                ["revoked", p] => {
                    self.owned.remove(&p.parse().unwrap());
                }
                ["record", p, position, payload] => {
                    self.records.push((p.parse().unwrap(), Self::sequence(position), (*payload).to_owned()));
                }
                ["committed", p, position] => {
                    self.committed.insert(p.parse().unwrap(), Self::sequence(position));
                }
                _ => {}
            }
        }
    }

    /// Waits (reading what it prints) until `done` holds.
    async fn until(&mut self, within: Duration, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = std::time::Instant::now() + within;
        loop {
            self.drain();
            if done(self) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not in time; the child owns {:?} after {:?}, read {} records",
                self.owned,
                self.changes,
                self.records.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn payloads(&self) -> std::collections::BTreeSet<String> {
        self.records.iter().map(|(_, _, p)| p.clone()).collect()
    }
}

/// Two members balance four shards (the second asks the first for two, handed over once
/// drained); the first is killed (-9) and the second owns every shard after the failover time.
/// Only what the killed member had not committed past is processed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_member_s_shards_are_taken_over_after_the_failover_time() {
    let wait = Duration::from_secs(60);
    let (url, log) = fresh(&["t"], 4).await;
    append_numbered(&*log, 0..40).await;
    let mut a = Child::start(&url);
    a.until(wait, "a alone takes every shard and reads them", |a| {
        a.owned.len() == 4 && a.payloads() == numbered(0..40)
    })
    .await;

    let mut b = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut seen = Seen::default();
    until(&mut *b, &mut seen, wait, "b gets two shards", |s| s.owned.len() == 2).await;
    a.until(wait, "a lets two go", |a| a.owned.len() == 2).await;
    assert!(
        seen.records.is_empty(),
        "handed over drained and committed, nothing is read twice: {:?}",
        seen.records
    );

    append_numbered(&*log, 40..80).await;
    let both = |a: &Child, seen: &Seen| {
        a.payloads().union(&seen.payloads()).cloned().collect::<std::collections::BTreeSet<_>>()
    };
    let deadline = std::time::Instant::now() + wait;
    while both(&a, &seen) != numbered(0..80) {
        assert!(std::time::Instant::now() < deadline, "records 40..80 not all processed");
        if let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(50), b.next_event()).await {
            seen.take(&mut *b, event).await;
        }
        a.drain();
    }
    assert!(seen.payloads().is_disjoint(&a.payloads()), "each record processed by one member");

    // SIGKILL: a renews nothing more and releases nothing.
    a.process.kill().unwrap();
    a.process.wait().unwrap();
    a.drain();
    let killed = std::time::Instant::now();
    append_numbered(&*log, 80..120).await;
    until(&mut *b, &mut seen, wait, "b takes over every shard", |s| {
        s.owned.len() == 4 && numbered(80..120).is_subset(&s.payloads())
    })
    .await;
    assert!(killed.elapsed() >= Duration::from_secs(2), "taken over before the failover time (3 s)");
    for (partition, position, payload) in &seen.records {
        if a.payloads().contains(payload) {
            let committed = a.committed.get(partition);
            assert!(
                committed.is_none_or(|c| position > c),
                "{payload} on {partition} was processed again though a had committed past it ({committed:?})"
            );
        }
    }
    b.close().await;
}

/// A member that joins is handed leases only once their owner let them go (drained): while the
/// owner holds the revocation, the newcomer does not read the shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_member_is_handed_leases_only_once_the_owner_drained() {
    let wait = Duration::from_secs(60);
    let (_, log) = fresh(&["t"], 4).await;
    let mut a = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut a_seen = Seen::default();
    until(&mut *a, &mut a_seen, wait, "a takes every shard", |s| s.owned.len() == 4).await;
    let mut b = log.consume("g", &["t"], StartFrom::Beginning).await.unwrap();
    let mut b_seen = Seen::default();
    let revocation = loop {
        match tokio::time::timeout(wait, a.next_event())
            .await
            .expect("a was never asked for a lease")
            .unwrap()
        {
            GroupEvent::Revoked(revocation) => break revocation,
            event => a_seen.take(&mut *a, event).await,
        }
    };
    let asked = revocation.partitions[0].partition;
    // Held: b must not get it meanwhile (two lease rounds of b's).
    let held_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(event) = tokio::time::timeout_at(held_until, b.next_event()).await {
        b_seen.take(&mut *b, event.unwrap()).await;
        assert!(!b_seen.owned.contains(&asked), "b was given {asked} while a still held it");
    }
    drop(revocation);
    a_seen.owned.remove(&asked);
    until(&mut *b, &mut b_seen, wait, "b gets the lease a let go", |s| s.owned.contains(&asked)).await;
    // Balanced in the end: two each.
    let deadline = tokio::time::Instant::now() + wait;
    while b_seen.owned.len() < 2 || a_seen.owned.len() > 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not balanced: {:?} / {:?}",
            a_seen.owned,
            b_seen.owned
        );
        tokio::select! {
            event = a.next_event() => a_seen.take(&mut *a, event.unwrap()).await,
            event = b.next_event() => b_seen.take(&mut *b, event.unwrap()).await,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    assert!(a_seen.owned.is_disjoint(&b_seen.owned), "{:?} / {:?}", a_seen.owned, b_seen.owned);
    append_numbered(&*log, 0..40).await;
    let deadline = tokio::time::Instant::now() + wait;
    while a_seen.payloads().len() + b_seen.payloads().len() < 40 {
        assert!(tokio::time::Instant::now() < deadline, "records not all processed");
        tokio::select! {
            event = a.next_event() => a_seen.take(&mut *a, event.unwrap()).await,
            event = b.next_event() => b_seen.take(&mut *b, event.unwrap()).await,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    let all: std::collections::BTreeSet<String> =
        a_seen.payloads().union(&b_seen.payloads()).cloned().collect();
    assert_eq!(all, numbered(0..40));
    assert!(a_seen.payloads().is_disjoint(&b_seen.payloads()), "each record processed once");
    a.close().await;
    b.close().await;
}
