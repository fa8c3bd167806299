//! The archiver: a consumer group on `game-events` and the tick topics that writes every event to
//! Parquet files with typed columns, for DuckDB, pandas or polars.
//!
//! Layout: `DIR/kind=K/date=YYYY-MM-DD[/region=R]/part-<uuid>.parquet`, with kinds `ticks`
//! (partitioned by region too), `latency`, `joins`, `kicks`, `tick_rate` (pace changes) and
//! `events` (every other event type:
//! envelope columns and the type's fields as JSON). A file is written as `….parquet.tmp`, and
//! closed — flushed, fsynced, renamed, its directory fsynced — when it reaches `roll_rows` rows or
//! `roll_age`, on a rebalance and on shutdown.
//!
//! Offsets are committed only past records whose files are closed: per partition, the commit is
//! the first record still in an open file (or the consumed position). A crash loses nothing — the
//! unclosed `.tmp` files are deleted at the next start and their records read again — but records
//! after the commit point that were already in closed files are written again: readers
//! de-duplicate ticks by (session_id, step) and other rows by event_id.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Builder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tickcast_eventlog::{CommitPosition, EventLog, GroupConsumer, GroupEvent, Position, Record, StartFrom};
use tickcast_schemas::arrow::{EventRows, TickRows};
use tickcast_schemas::event::{Event, EventBody};
use tickcast_schemas::health::Readiness;
use tickcast_schemas::topics::{GAME_EVENTS, TICKS_PREFIX};
use tokio_util::sync::CancellationToken;

use crate::{Error, metrics};

/// At shutdown, the archiver stops once the log has had nothing new for this long.
const DRAIN_IDLE: Duration = Duration::from_millis(200);

/// Rows buffered before they are handed to the Parquet writer (one row group per flush).
const FLUSH_ROWS: usize = 8192;

/// How an archiver runs.
#[derive(Debug, Clone)]
pub struct ArchiverConfig {
    pub group: String,
    /// Where the Parquet files go.
    pub dir: PathBuf,
    /// The tick topics to archive, one per region.
    pub regions: Vec<String>,
    /// A file is closed once it holds this many rows…
    pub roll_rows: usize,
    /// …or has been open this long.
    pub roll_age: Duration,
    /// Ready once the archiver joined its group (`/readyz`).
    pub readiness: Readiness,
}

impl ArchiverConfig {
    #[must_use]
    pub fn new(dir: PathBuf, regions: Vec<String>) -> Self {
        Self {
            group: "archiver".into(),
            dir,
            regions,
            roll_rows: 500_000,
            roll_age: Duration::from_secs(60),
            readiness: Readiness::new("the archiver to join its consumer group"),
        }
    }
}

/// What a row is, and so which schema and directory it goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Ticks,
    Latency,
    Joins,
    Kicks,
    TickRate,
    Events,
}

impl Kind {
    fn of(body: &EventBody) -> Self {
        match body {
            EventBody::Tick(_) => Self::Ticks,
            EventBody::LatencySampled(_) | EventBody::LatencySamples(_) => Self::Latency,
            EventBody::PlayerJoined(_) => Self::Joins,
            EventBody::PlayerKicked(_) => Self::Kicks,
            EventBody::TickRateChanged(_) => Self::TickRate,
            _ => Self::Events,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Ticks => "ticks",
            Self::Latency => "latency",
            Self::Joins => "joins",
            Self::Kicks => "kicks",
            Self::TickRate => "tick_rate",
            Self::Events => "events",
        }
    }

    fn schema(self) -> SchemaRef {
        use tickcast_schemas::arrow;
        match self {
            Self::Ticks => arrow::ticks(),
            Self::Latency => arrow::latency(),
            Self::Joins => arrow::joins(),
            Self::Kicks => arrow::kicks(),
            Self::TickRate => arrow::tick_rate(),
            Self::Events => arrow::events(),
        }
    }
}

/// One directory of the archive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    kind: Kind,
    date: String,
    region: Option<String>,
}

impl FileKey {
    fn dir(&self, root: &Path) -> PathBuf {
        let mut dir = root.join(format!("kind={}", self.kind.name())).join(format!("date={}", self.date));
        if let Some(region) = &self.region {
            dir = dir.join(format!("region={region}"));
        }
        dir
    }
}

/// A file being written.
struct OpenFile {
    key: FileKey,
    tmp: PathBuf,
    writer: ArrowWriter<File>,
    pending: Vec<(Event, String)>,
    rows: usize,
    opened: Instant,
    /// Per (topic, partition): the first record in this file — the commit cannot pass it.
    first: HashMap<(String, u32), CommitPosition>,
}

/// The archiver role.
pub struct Archiver {
    log: Arc<dyn EventLog>,
    config: ArchiverConfig,
    files: HashMap<FileKey, OpenFile>,
    consumed: HashMap<(String, u32), CommitPosition>,
    committed: HashMap<(String, u32), Position>,
}

impl std::fmt::Debug for Archiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archiver")
            .field("dir", &self.config.dir)
            .field("open_files", &self.files.len())
            .finish()
    }
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Archive(format!("{}: {error}", path.display()))
}

impl Archiver {
    #[must_use]
    pub fn new(log: Arc<dyn EventLog>, config: ArchiverConfig) -> Self {
        Self { log, config, files: HashMap::new(), consumed: HashMap::new(), committed: HashMap::new() }
    }

    /// Runs until `shutdown`; returns once every file is closed and committed.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        remove_unclosed(&self.config.dir)?;
        // Every kind's series from the start (at 0), before its first file closes.
        for kind in [Kind::Ticks, Kind::Latency, Kind::Joins, Kind::Kicks, Kind::TickRate, Kind::Events] {
            metrics::archived_rows(kind.name(), 0);
            metrics::archive_files_closed(kind.name(), 0);
        }
        let mut topics = vec![GAME_EVENTS.to_owned()];
        topics.extend(self.config.regions.iter().map(|r| format!("{TICKS_PREFIX}{r}")));
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let mut consumer = self.log.consume(&self.config.group, &names, StartFrom::Beginning).await?;
        let mut roll_check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = roll_check.tick() => {
                    let age = self.config.roll_age;
                    self.close_where(|f| f.opened.elapsed() >= age)?;
                    self.commit(&mut *consumer).await?;
                }
                event = consumer.next_event() => match event? {
                    GroupEvent::Records(records) => {
                        self.archive(records)?;
                        let rows = self.config.roll_rows;
                        self.close_where(|f| f.rows >= rows)?;
                        self.commit(&mut *consumer).await?;
                    }
                    GroupEvent::Assigned(_) | GroupEvent::CaughtUp(_) => self.config.readiness.set_ready(),
                    GroupEvent::Revoked(revocation) => {
                        // Files mix partitions: close them all, so what was read is committed.
                        self.close_where(|_| true)?;
                        self.commit(&mut *consumer).await?;
                        let gone: Vec<(String, u32)> =
                            revocation.partitions.iter().map(|p| (p.topic.clone(), p.partition)).collect();
                        self.consumed.retain(|tp, _| !gone.contains(tp));
                        self.committed.retain(|tp, _| !gone.contains(tp));
                        revocation.release();
                    }
                },
            }
        }
        // What the other roles wrote before they stopped is in the log already: take it too,
        // until nothing more arrives for a moment.
        while let Ok(event) = tokio::time::timeout(DRAIN_IDLE, consumer.next_event()).await {
            match event? {
                GroupEvent::Records(records) => self.archive(records)?,
                GroupEvent::Assigned(_) | GroupEvent::CaughtUp(_) => {}
                GroupEvent::Revoked(revocation) => {
                    self.close_where(|_| true)?;
                    self.commit(&mut *consumer).await?;
                    revocation.release();
                }
            }
        }
        self.close_where(|_| true)?;
        self.commit(&mut *consumer).await?;
        consumer.close().await;
        tracing::info!("archiver stopped");
        Ok(())
    }

    fn archive(&mut self, records: Vec<Record>) -> Result<(), Error> {
        for record in records {
            let tp = (record.topic.to_string(), record.partition);
            let position =
                CommitPosition { next: record.position.clone(), not_after_ms: record.timestamp_ms };
            self.consumed.insert(
                tp.clone(),
                CommitPosition { next: record.position.next(), not_after_ms: record.timestamp_ms },
            );
            let event = match Event::from_bytes(&record.payload) {
                Ok(event) if !matches!(event.body, EventBody::Unknown) => event,
                _ => {
                    tracing::warn!(topic = %record.topic, position = %record.position, "not archived: undecodable or unknown event");
                    continue;
                }
            };
            let kind = Kind::of(&event.body);
            let region = record.topic.strip_prefix(TICKS_PREFIX).unwrap_or_default().to_owned();
            let key = FileKey {
                kind,
                date: date_of(event.at),
                region: (kind == Kind::Ticks).then(|| region.clone()),
            };
            if !self.files.contains_key(&key) {
                let file = self.open(key.clone())?;
                self.files.insert(key.clone(), file);
            }
            let file = self.files.get_mut(&key).expect("opened above");
            file.first.entry(tp).or_insert(position);
            file.pending.push((event, region));
            file.rows += 1;
            if file.pending.len() >= FLUSH_ROWS {
                flush(file)?;
            }
        }
        Ok(())
    }

    fn open(&self, key: FileKey) -> Result<OpenFile, Error> {
        let dir = key.dir(&self.config.dir);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let tmp = dir.join(format!("part-{}.parquet.tmp", uuid::Uuid::now_v7()));
        let file = File::create(&tmp).map_err(|e| io_error(&tmp, e))?;
        let properties =
            WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
        let writer = ArrowWriter::try_new(file, key.kind.schema(), Some(properties))?;
        Ok(OpenFile {
            key,
            tmp,
            writer,
            pending: Vec::new(),
            rows: 0,
            opened: Instant::now(),
            first: HashMap::new(),
        })
    }

    /// Closes durably the files `which` selects.
    fn close_where(&mut self, which: impl Fn(&OpenFile) -> bool) -> Result<(), Error> {
        let keys: Vec<FileKey> =
            self.files.iter().filter(|(_, f)| which(f)).map(|(k, _)| k.clone()).collect();
        for key in keys {
            let file = self.files.remove(&key).expect("listed above");
            close(file)?;
        }
        Ok(())
    }

    async fn commit(&mut self, consumer: &mut dyn GroupConsumer) -> Result<(), Error> {
        for (tp, consumed) in &self.consumed {
            let mut target = consumed;
            for file in self.files.values() {
                if let Some(first) = file.first.get(tp)
                    && first.next < target.next
                {
                    target = first;
                }
            }
            if self.committed.get(tp) != Some(&target.next) {
                consumer.commit(&tp.0, tp.1, target.clone()).await?;
                self.committed.insert(tp.clone(), target.next.clone());
            }
        }
        Ok(())
    }
}

fn flush(file: &mut OpenFile) -> Result<(), Error> {
    if file.pending.is_empty() {
        return Ok(());
    }
    let batch = batch(file.key.kind, &file.pending)?;
    file.writer.write(&batch)?;
    metrics::archived_rows(file.key.kind.name(), file.pending.len());
    file.pending.clear();
    Ok(())
}

/// Flushes, fsyncs and renames a file into place, then fsyncs its directory.
fn close(mut file: OpenFile) -> Result<(), Error> {
    flush(&mut file)?;
    let written = file.writer.into_inner()?;
    written.sync_all().map_err(|e| io_error(&file.tmp, e))?;
    let done = file.tmp.with_extension("");
    std::fs::rename(&file.tmp, &done).map_err(|e| io_error(&done, e))?;
    if let Some(dir) = done.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))?;
    }
    metrics::archive_files_closed(file.key.kind.name(), 1);
    tracing::debug!(path = %done.display(), rows = file.rows, "archive file closed");
    Ok(())
}

/// Deletes files a crash left unclosed: their records were not committed and are read again.
fn remove_unclosed(root: &Path) -> Result<(), Error> {
    if !root.exists() {
        return Ok(());
    }
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))? {
            let path = entry.map_err(|e| io_error(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "tmp") {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
            }
        }
    }
    Ok(())
}

/// The UTC date of an instant, as `YYYY-MM-DD`.
fn date_of(at_ms: i64) -> String {
    arrow::temporal_conversions::timestamp_ms_to_datetime(at_ms)
        .map_or_else(|| "unknown".to_owned(), |t| t.date().to_string())
}

fn batch(kind: Kind, rows: &[(Event, String)]) -> Result<RecordBatch, Error> {
    let (mut session, mut at, mut id, mut source) = (
        StringBuilder::new(),
        TimestampMillisecondBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    // A row's envelope: its event's, with the row's own time (a batch of samples has one row
    // per sample).
    let mut envelope_at = |event: &Event, row_at: i64| {
        session.append_value(&event.session_id);
        at.append_value(row_at);
        id.append_value(event.id.to_string());
        source.append_value(&event.source);
    };
    let utc =
        |mut b: TimestampMillisecondBuilder| -> ArrayRef { Arc::new(b.finish().with_timezone("+00:00")) };
    let columns: Vec<ArrayRef> = match kind {
        Kind::Ticks => {
            let mut ticks = TickRows::default();
            for (event, region) in rows {
                if let EventBody::Tick(t) = &event.body {
                    ticks.push(&event.session_id, region, t);
                }
            }
            return Ok(ticks.finish()?);
        }
        Kind::Latency => {
            let (mut connection, mut rtt) = (StringBuilder::new(), UInt64Builder::new());
            // A row per sample, `at` its own time: a batch's rows share its event id.
            for (event, _) in rows {
                for (connection_id, rtt_ms, at) in event.rtt_samples() {
                    envelope_at(event, at);
                    connection.append_value(connection_id);
                    rtt.append_value(rtt_ms);
                }
            }
            vec![Arc::new(connection.finish()), Arc::new(rtt.finish())]
        }
        Kind::Joins => {
            let mut columns: [StringBuilder; 4] = Default::default();
            for (event, _) in rows {
                let EventBody::PlayerJoined(j) = &event.body else { continue };
                envelope_at(event, event.at);
                for (builder, value) in
                    columns.iter_mut().zip([&j.user_id, &j.connection_id, &j.gateway_id, &j.region])
                {
                    builder.append_value(value);
                }
            }
            columns.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect()
        }
        Kind::Kicks => {
            let (mut connection, mut user, mut reason) =
                (StringBuilder::new(), StringBuilder::new(), StringBuilder::new());
            let (mut avg, mut jitter) = (UInt64Builder::new(), UInt64Builder::new());
            for (event, _) in rows {
                let EventBody::PlayerKicked(k) = &event.body else { continue };
                envelope_at(event, event.at);
                connection.append_value(&k.connection_id);
                user.append_value(&k.user_id);
                reason.append_value(&k.reason);
                avg.append_value(k.avg_rtt_ms);
                jitter.append_value(k.jitter_ms);
            }
            vec![
                Arc::new(connection.finish()),
                Arc::new(user.finish()),
                Arc::new(reason.finish()),
                Arc::new(avg.finish()),
                Arc::new(jitter.finish()),
            ]
        }
        Kind::TickRate => {
            let (mut from_step, mut scheduled, mut tick_ms) =
                (Int64Builder::new(), TimestampMillisecondBuilder::new(), Int64Builder::new());
            let (mut reason, mut worst) = (StringBuilder::new(), UInt64Builder::new());
            for (event, _) in rows {
                let EventBody::TickRateChanged(c) = &event.body else { continue };
                envelope_at(event, event.at);
                from_step.append_value(c.from_step);
                scheduled.append_value(c.scheduled_at);
                tick_ms.append_value(c.tick_ms);
                reason.append_value(c.reason.as_str());
                worst.append_value(c.worst_rtt_ms);
            }
            vec![
                Arc::new(from_step.finish()),
                utc(scheduled),
                Arc::new(tick_ms.finish()),
                Arc::new(reason.finish()),
                Arc::new(worst.finish()),
            ]
        }
        Kind::Events => {
            let mut events = EventRows::default();
            for (event, _) in rows {
                events.push(event);
            }
            return Ok(events.finish()?);
        }
    };
    let mut all: Vec<ArrayRef> =
        vec![Arc::new(session.finish()), utc(at), Arc::new(id.finish()), Arc::new(source.finish())];
    all.extend(columns);
    Ok(RecordBatch::try_new(kind.schema(), all)?)
}
