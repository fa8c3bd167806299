//! Arrow schemas of the analytics feed (feature `arrow`): typed columns per event kind, so
//! DuckDB, pandas or polars read ticks as numbers and timestamps, not JSON.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
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
