//! Export: the log's ticks (typed columns) or events (envelope columns + JSON fields) as
//! Parquet, Arrow IPC, CSV or JSON lines, for DuckDB, pandas, polars or a spreadsheet.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::str::FromStr;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tickcast_schemas::arrow::{EventRows, TickRows};
use tickcast_schemas::event::EventBody;

use crate::{Error, History, Logged};

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    /// Arrow IPC file.
    Arrow,
    Csv,
    Jsonl,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "parquet" => Ok(Self::Parquet),
            "arrow" => Ok(Self::Arrow),
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::Jsonl),
            other => Err(format!("unknown format {other:?}; use parquet, arrow, csv or jsonl")),
        }
    }
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One row per tick, de-duplicated by (session, step).
    Ticks,
    /// One row per event of any type.
    Events,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ticks" => Ok(Self::Ticks),
            "events" => Ok(Self::Events),
            other => Err(format!("unknown kind {other:?}; use ticks or events")),
        }
    }
}

/// Which events to export.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub session: Option<String>,
    /// Events at or after this instant (epoch ms).
    pub from_ms: Option<i64>,
    /// Events before this instant (epoch ms).
    pub to_ms: Option<i64>,
}

impl Filter {
    fn keeps(&self, session: &str, logged: &Logged) -> bool {
        self.session.as_deref().is_none_or(|s| s == session)
            && self.from_ms.is_none_or(|from| logged.event.at >= from)
            && self.to_ms.is_none_or(|to| logged.event.at < to)
    }
}

/// Writes the selected rows to `out`; returns how many.
pub fn export(
    history: &History,
    kind: Kind,
    filter: &Filter,
    format: Format,
    out: &Path,
) -> Result<u64, Error> {
    let batch = match kind {
        Kind::Ticks => ticks(history, filter)?,
        Kind::Events => events(history, filter)?,
    };
    let file = BufWriter::new(File::create(out).map_err(|e| Error::Output(out.display().to_string(), e))?);
    match format {
        Format::Parquet => {
            let properties =
                WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
            let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties))?;
            writer.write(&batch)?;
            writer.close()?;
        }
        Format::Arrow => {
            let mut writer = arrow::ipc::writer::FileWriter::try_new(file, &batch.schema())?;
            writer.write(&batch)?;
            writer.finish()?;
        }
        Format::Csv => arrow::csv::Writer::new(file).write(&batch)?,
        Format::Jsonl => {
            let mut writer = arrow::json::LineDelimitedWriter::new(file);
            writer.write(&batch)?;
            writer.finish()?;
        }
    }
    Ok(batch.num_rows() as u64)
}

fn ticks(history: &History, filter: &Filter) -> Result<RecordBatch, Error> {
    let mut rows = TickRows::default();
    for (id, events) in &history.sessions {
        let region_of = crate::session_created(events).map(|c| c.region.as_str());
        // A step logged twice (by two generators during a hand-over) is one tick.
        let mut seen = HashSet::new();
        for logged in events.iter().filter(|l| filter.keeps(id, l)) {
            let EventBody::Tick(t) = &logged.event.body else { continue };
            if seen.insert(t.step) {
                let region = region_of.unwrap_or(logged.position.topic.trim_start_matches("ticks."));
                rows.push(id, region, t);
            }
        }
    }
    Ok(rows.finish()?)
}

fn events(history: &History, filter: &Filter) -> Result<RecordBatch, Error> {
    let mut rows = EventRows::default();
    for (session_id, events) in &history.sessions {
        for logged in events.iter().filter(|l| filter.keeps(session_id, l)) {
            rows.push(&logged.event);
        }
    }
    Ok(rows.finish()?)
}
