//! Arrow schemas of the analytics feed (feature `arrow`): typed columns per event kind, so
//! DuckDB, pandas or polars read ticks as numbers and timestamps, not JSON.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampMillisecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::event::{Event, EventBody, Tick};

/// Timestamps are UTC instants.
const UTC: &str = "+00:00";

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into()))
}

/// One row per tick.
#[must_use]
pub fn ticks() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("session_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("step", DataType::Int64, false),
        Field::new("value", DataType::UInt64, false),
        Field::new("round", DataType::UInt64, false),
        Field::new("broken", DataType::Boolean, false),
        Field::new("scheduled_at", timestamp(), false),
        Field::new("emitted_at", timestamp(), false),
    ]))
}

/// One row per event of any kind: the envelope as columns, the type's fields as JSON.
#[must_use]
pub fn events() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("session_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("at", timestamp(), false),
        Field::new("source", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("fields", DataType::Utf8, false),
    ]))
}

/// Envelope columns every archived non-tick row starts with; `event_id` de-duplicates rows an
/// archiver wrote twice across a crash.
fn envelope(mut fields: Vec<Field>) -> SchemaRef {
    let mut all = vec![
        Field::new("session_id", DataType::Utf8, false),
        Field::new("at", timestamp(), false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
    ];
    all.append(&mut fields);
    Arc::new(Schema::new(all))
}

/// One row per RTT sample (a `latency_sampled`, or each sample of a `latency_samples`, with its
/// own time as `at`): a player's RTT, once a second.
#[must_use]
pub fn latency() -> SchemaRef {
    envelope(vec![
        Field::new("connection_id", DataType::Utf8, false),
        Field::new("rtt_ms", DataType::UInt64, false),
    ])
}

/// One row per `player_joined`.
#[must_use]
pub fn joins() -> SchemaRef {
    envelope(vec![
        Field::new("user_id", DataType::Utf8, false),
        Field::new("connection_id", DataType::Utf8, false),
        Field::new("gateway_id", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
    ])
}

/// One row per `player_kicked`.
#[must_use]
pub fn kicks() -> SchemaRef {
    envelope(vec![
        Field::new("connection_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("avg_rtt_ms", DataType::UInt64, false),
        Field::new("jitter_ms", DataType::UInt64, false),
    ])
}

/// One row per `tick_rate_changed`: an adaptive session's pace from `from_step` on.
#[must_use]
pub fn tick_rate() -> SchemaRef {
    envelope(vec![
        Field::new("from_step", DataType::Int64, false),
        Field::new("scheduled_at", timestamp(), false),
        Field::new("tick_ms", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("worst_rtt_ms", DataType::UInt64, false),
    ])
}

/// Builds [`ticks`] rows.
#[derive(Debug, Default)]
pub struct TickRows {
    session: StringBuilder,
    region: StringBuilder,
    step: Int64Builder,
    value: UInt64Builder,
    round: UInt64Builder,
    broken: BooleanBuilder,
    scheduled: TimestampMillisecondBuilder,
    emitted: TimestampMillisecondBuilder,
}

impl TickRows {
    pub fn push(&mut self, session_id: &str, region: &str, tick: &Tick) {
        self.session.append_value(session_id);
        self.region.append_value(region);
        self.step.append_value(tick.step);
        self.value.append_value(tick.value);
        self.round.append_value(tick.round);
        self.broken.append_value(tick.broken);
        self.scheduled.append_value(tick.scheduled_at);
        self.emitted.append_value(tick.emitted_at);
    }

    /// The rows pushed so far, as one batch; the builder starts over.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.session.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.step.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.round.finish()),
            Arc::new(self.broken.finish()),
            Arc::new(self.scheduled.finish().with_timezone(UTC)),
            Arc::new(self.emitted.finish().with_timezone(UTC)),
        ];
        RecordBatch::try_new(ticks(), columns)
    }
}

/// Builds [`events`] rows: the envelope as columns, the type's own fields as one JSON object.
#[derive(Debug, Default)]
pub struct EventRows {
    session: StringBuilder,
    kind: StringBuilder,
    at: TimestampMillisecondBuilder,
    source: StringBuilder,
    id: StringBuilder,
    fields: StringBuilder,
}

impl EventRows {
    pub fn push(&mut self, event: &Event) {
        let mut json = serde_json::to_value(event).unwrap_or_default();
        if let Some(object) = json.as_object_mut() {
            for envelope in ["v", "id", "type", "sessionId", "at", "source"] {
                object.remove(envelope);
            }
            // The analytics feed is read by more people than the log: a running game's seed
            // must not be in it. The seed reaches it with `session_ended`, which reveals it.
            if matches!(event.body, EventBody::SessionCreated(_)) {
                object.remove("seed");
            }
        }
        self.session.append_value(&event.session_id);
        self.kind.append_value(event.kind());
        self.at.append_value(event.at);
        self.source.append_value(&event.source);
        self.id.append_value(event.id.to_string());
        self.fields.append_value(json.to_string());
    }

    /// The rows pushed so far, as one batch; the builder starts over.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.session.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.at.finish().with_timezone(UTC)),
            Arc::new(self.source.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.fields.finish()),
        ];
        RecordBatch::try_new(events(), columns)
    }
}
