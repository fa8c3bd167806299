//! The Parquet archive (written by the archiver) read back as a [`History`], so every replay
//! tool works from the archive as from the log.
//!
//! Rows the archiver wrote twice across a crash are read once: ticks by (session, step), other
//! events by id. Ticks carry no event id in the archive; they get the nil id and their emission
//! time as `at`.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampMillisecondType, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tickcast_schemas::event::{
    ENVELOPE_VERSION, Event, EventBody, LatencySamples, PaceReason, PlayerJoined, PlayerKicked, RttSample,
    Tick, TickRateChanged,
};

use crate::{Error, History, Logged, Position};

/// Reads every Parquet file under `dir`.
pub fn load(dir: &Path) -> Result<History, Error> {
    if !dir.is_dir() {
        return Err(Error::Archive(format!("{} is not an archive directory", dir.display())));
    }
    let mut history = History::default();
    let mut seen_ticks = HashSet::new();
    let mut seen_ids = HashSet::new();
    let mut row = 0u64;
    for path in parquet_files(dir)? {
        let Some(kind) = path
            .components()
            .filter_map(|c| c.as_os_str().to_str()?.strip_prefix("kind=").map(str::to_owned))
            .next_back()
        else {
            continue;
        };
        let file = File::open(&path).map_err(|e| Error::Archive(format!("{}: {e}", path.display())))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            for event in events(&kind, &batch?)? {
                let fresh = match &event.body {
                    EventBody::Tick(t) => seen_ticks.insert((event.session_id.clone(), t.step)),
                    _ => seen_ids.insert(event.id),
                };
                row += 1;
                if fresh {
                    let position = Position { topic: format!("archive:{kind}").into(), at: row.into() };
                    history
                        .sessions
                        .entry(event.session_id.clone())
                        .or_default()
                        .push(Logged { position, event });
                }
            }
        }
    }
    for (session_id, events) in &mut history.sessions {
        events.sort_by_key(|l| (l.event.at, rank(&l.event.body)));
        crate::place_before_their_first_step(events);
        // The seed the archive withheld from session_created is the one session_ended revealed.
        let revealed = events.iter().find_map(|l| match &l.event.body {
            EventBody::SessionEnded(ended) => Some(ended.seed),
            _ => None,
        });
        let withheld = events.iter_mut().find_map(|l| match &mut l.event.body {
            EventBody::SessionCreated(created) if created.seed == WITHHELD_SEED_VALUE => Some(created),
            _ => None,
        });
        if let Some(created) = withheld {
            match revealed {
                Some(seed) => created.seed = seed,
                None => {
                    history.seed_withheld.insert(session_id.clone());
                }
            }
        }
    }
    Ok(history)
}

/// What a seedless `session_created` row decodes with until its session's end fills it in.
/// (A real seed equal to it is told apart by its `session_ended`, which carries the same value.)
const WITHHELD_SEED: &str = "0";
const WITHHELD_SEED_VALUE: u64 = 0;

/// Order among events of one millisecond: creation first, the end last, ticks by step.
fn rank(body: &EventBody) -> (u8, i64) {
    match body {
        EventBody::SessionCreated(_) => (0, 0),
        EventBody::PlayerJoined(_) => (1, 0),
        EventBody::Countdown(_) => (2, 0),
        EventBody::Tick(t) => (3, t.step),
        EventBody::SessionEnded(_) => (9, 0),
        _ => (5, 0),
    }
}

fn parquet_files(root: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::Archive(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::Archive(format!("{}: {e}", dir.display())))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, Error> {
    batch
        .column_by_name(name)
        .map(AsRef::as_ref)
        .ok_or_else(|| Error::Archive(format!("an archive file has no column {name:?}")))
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::StringArray, Error> {
    column(batch, name)?
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::Archive(format!("column {name:?} is not text")))
}

fn millis(batch: &RecordBatch, name: &str) -> Result<Vec<i64>, Error> {
    let array = column(batch, name)?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| Error::Archive(format!("column {name:?} is not a ms timestamp")))?;
    Ok(array.values().to_vec())
}

fn unsigned(batch: &RecordBatch, name: &str) -> Result<Vec<u64>, Error> {
    let array = column(batch, name)?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| Error::Archive(format!("column {name:?} is not uint64")))?;
    Ok(array.values().to_vec())
}

/// The events of one batch of an archive file of `kind`.
fn events(kind: &str, batch: &RecordBatch) -> Result<Vec<Event>, Error> {
    let rows = 0..batch.num_rows();
    if kind == "ticks" {
        let sessions = strings(batch, "session_id")?;
        let steps = column(batch, "step")?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::Archive("column \"step\" is not int64".into()))?;
        let (values, rounds) = (unsigned(batch, "value")?, unsigned(batch, "round")?);
        let broken = column(batch, "broken")?
            .as_boolean_opt()
            .ok_or_else(|| Error::Archive("column \"broken\" is not boolean".into()))?;
        let (scheduled, emitted) = (millis(batch, "scheduled_at")?, millis(batch, "emitted_at")?);
        return Ok(rows
            .map(|i| Event {
                v: ENVELOPE_VERSION,
                id: uuid::Uuid::nil(),
                session_id: sessions.value(i).to_owned(),
                at: emitted[i],
                source: "archive".to_owned(),
                body: EventBody::Tick(Tick {
                    step: steps.value(i),
                    value: values[i],
                    round: rounds[i],
                    broken: broken.value(i),
                    scheduled_at: scheduled[i],
                    emitted_at: emitted[i],
                }),
            })
            .collect());
    }
    let sessions = strings(batch, "session_id")?;
    let ats = millis(batch, "at")?;
    let sources = strings(batch, "source")?;
    let ids = strings(batch, if kind == "events" { "id" } else { "event_id" })?;
    let mut bodies = Vec::with_capacity(batch.num_rows());
    match kind {
        "latency" => {
            // A row per sample, `at` its own time; the rows of one event (a batch of samples)
            // are written together and read back as one `latency_samples` with its samples.
            let (connections, rtts) = (strings(batch, "connection_id")?, unsigned(batch, "rtt_ms")?);
            let mut events: Vec<Event> = Vec::new();
            for i in rows {
                let id: uuid::Uuid =
                    ids.value(i).parse().map_err(|e| Error::Archive(format!("bad event id: {e}")))?;
                let sample =
                    RttSample { connection_id: connections.value(i).to_owned(), rtt_ms: rtts[i], at: ats[i] };
                match events.last_mut() {
                    Some(last) if last.id == id => {
                        last.at = last.at.max(sample.at);
                        if let EventBody::LatencySamples(batch) = &mut last.body {
                            batch.samples.push(sample);
                        }
                    }
                    _ => events.push(Event {
                        v: ENVELOPE_VERSION,
                        id,
                        session_id: sessions.value(i).to_owned(),
                        at: ats[i],
                        source: sources.value(i).to_owned(),
                        body: EventBody::LatencySamples(LatencySamples { samples: vec![sample] }),
                    }),
                }
            }
            return Ok(events);
        }
        "joins" => {
            let (users, connections) = (strings(batch, "user_id")?, strings(batch, "connection_id")?);
            let (gateways, regions) = (strings(batch, "gateway_id")?, strings(batch, "region")?);
            for i in rows.clone() {
                bodies.push(EventBody::PlayerJoined(PlayerJoined {
                    user_id: users.value(i).to_owned(),
                    connection_id: connections.value(i).to_owned(),
                    gateway_id: gateways.value(i).to_owned(),
                    region: regions.value(i).to_owned(),
                }));
            }
        }
        "kicks" => {
            let (connections, users, reasons) =
                (strings(batch, "connection_id")?, strings(batch, "user_id")?, strings(batch, "reason")?);
            let (averages, jitters) = (unsigned(batch, "avg_rtt_ms")?, unsigned(batch, "jitter_ms")?);
            for i in rows.clone() {
                bodies.push(EventBody::PlayerKicked(PlayerKicked {
                    connection_id: connections.value(i).to_owned(),
                    user_id: users.value(i).to_owned(),
                    reason: reasons.value(i).to_owned(),
                    avg_rtt_ms: averages[i],
                    jitter_ms: jitters[i],
                }));
            }
        }
        "tick_rate" => {
            let from_steps = column(batch, "from_step")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| Error::Archive("column \"from_step\" is not int64".into()))?;
            let tick_ms = column(batch, "tick_ms")?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| Error::Archive("column \"tick_ms\" is not int64".into()))?;
            let (scheduled, reasons) = (millis(batch, "scheduled_at")?, strings(batch, "reason")?);
            let worst = unsigned(batch, "worst_rtt_ms")?;
            for i in rows.clone() {
                let reason: PaceReason = serde_json::from_value(reasons.value(i).into())
                    .map_err(|e| Error::Archive(format!("a tick_rate row has a bad reason: {e}")))?;
                bodies.push(EventBody::TickRateChanged(TickRateChanged {
                    from_step: from_steps.value(i),
                    scheduled_at: scheduled[i],
                    tick_ms: tick_ms.value(i),
                    reason,
                    worst_rtt_ms: worst[i],
                }));
            }
        }
        "events" => {
            let (types, fields) = (strings(batch, "type")?, strings(batch, "fields")?);
            for i in rows.clone() {
                // The envelope is in columns; the body is the type plus its fields.
                let mut body: serde_json::Value = serde_json::from_str(fields.value(i))
                    .map_err(|e| Error::Archive(format!("an events row has bad fields: {e}")))?;
                if let Some(object) = body.as_object_mut() {
                    object.insert("type".into(), types.value(i).into());
                    // The archive keeps the seed out of session_created (see `load`).
                    if types.value(i) == "session_created" && !object.contains_key("seed") {
                        object.insert("seed".into(), WITHHELD_SEED.into());
                    }
                }
                let body: EventBody = serde_json::from_value(body)
                    .map_err(|e| Error::Archive(format!("an events row is not an event: {e}")))?;
                bodies.push(body);
            }
        }
        other => return Err(Error::Archive(format!("unknown archive kind {other:?}"))),
    }
    rows.zip(bodies)
        .map(|(i, body)| {
            let id = ids.value(i).parse().map_err(|e| Error::Archive(format!("bad event id: {e}")))?;
            Ok(Event {
                v: ENVELOPE_VERSION,
                id,
                session_id: sessions.value(i).to_owned(),
                at: ats[i],
                source: sources.value(i).to_owned(),
                body,
            })
        })
        .collect()
}
