//! The SQLite store: `DIR/projections.sqlite`, beside the embedded log, with tables named as
//! DynamoDB's (`sessions`, `connections`, `latency`). An item is kept whole as its JSON beside
//! the columns it is found by; a write is an upsert that happens only when the stored row's
//! position is below the item's. Expired rows are deleted by [`ProjectionStore::expire`],
//! which the projector calls.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{ConnectionItem, LatencyItem, Phase, SessionItem};
use crate::{Batch, Error, ProjectionStore, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    position TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_phase ON sessions (phase, created_at);
CREATE TABLE IF NOT EXISTS connections (
    connection_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    position TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS connections_by_session ON connections (session_id, joined_at);
CREATE TABLE IF NOT EXISTS latency (
    connection_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    rtt_ms INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, at)
);
";

/// The SQLite projection store.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    /// One connection: SQLite serializes writers anyway, and reads are short. Used from
    /// blocking tasks only, never across an await.
    db: Arc<Mutex<Connection>>,
    /// Its file, beside which a rebuild is made.
    path: PathBuf,
}

/// The WAL or shared-memory file of the database at `path` (`suffix` `-wal` or `-shm`).
fn wal_of(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

impl EmbeddedStore {
    /// Opens (creating) `dir/projections.sqlite` with its tables.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|source| Error::Io { path: dir.display().to_string(), source })?;
        Self::open_file(&dir.join("projections.sqlite"))
    }

    /// Where a rebuild of this store is made: a file of its own beside it.
    fn rebuild_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".rebuild");
        PathBuf::from(name)
    }

    fn open_file(path: &Path) -> Result<Self> {
        let path = path.to_owned();
        let db = Connection::open(&path)?;
        // Positions were numbers before Kinesis (whose sequence numbers no integer holds): a
        // file of that format is made again from the log rather than misread.
        let position_type: Option<String> = db
            .query_row("SELECT type FROM pragma_table_info('sessions') WHERE name = 'position'", [], |row| {
                row.get(0)
            })
            .optional()?;
        if position_type.as_deref() == Some("INTEGER") {
            return Err(Error::Corrupt(format!(
                "{} holds projections in an older format (positions as numbers): delete it and run `tickcast projector --rebuild` to make them again from the log",
                path.display()
            )));
        }
        // A committed write survives the process (the projector commits its log offsets after
        // its writes); the tables can be rebuilt from the log, so an OS crash may lose some.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Self { db: Arc::new(Mutex::new(db)), path })
    }

    /// The item `sql` finds by its key `id`.
    async fn item<T: DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        id: &str,
    ) -> Result<Option<T>> {
        let id = id.to_owned();
        self.run(move |db| {
            let text: Option<String> =
                db.prepare_cached(sql)?.query_row(params![id], |row| row.get(0)).optional()?;
            text.map(|t| from_json(&t)).transpose()
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || work(&db.lock().unwrap())).await.map_err(|_| Error::Closed)?
    }
}

fn to_json<T: Serialize>(item: &T) -> Result<String> {
    serde_json::to_string(item).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(e.to_string()))
}

fn items<T: DeserializeOwned>(db: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<T>> {
    let mut statement = db.prepare_cached(sql)?;
    let rows = statement.query_map(params, |row| row.get::<_, String>(0))?;
    rows.map(|row| from_json(&row?)).collect()
}

/// Writes a session unless the stored one is at or past its position; whether it wrote.
fn upsert_session(db: &Connection, item: &SessionItem, json: &str) -> Result<bool> {
    let changed = db
        .prepare_cached(
            "INSERT INTO sessions (session_id, phase, created_at, position, expires_at, item)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (session_id) DO UPDATE SET phase = excluded.phase,
               created_at = excluded.created_at, position = excluded.position,
               expires_at = excluded.expires_at, item = excluded.item
             WHERE excluded.position > sessions.position",
        )?
        .execute(params![
            item.session_id,
            item.phase.as_str(),
            item.created_at,
            item.position,
            item.expires_at,
            json
        ])?;
    Ok(changed == 1)
}

/// Writes a connection unless the stored one is at or past its position; whether it wrote.
fn upsert_connection(db: &Connection, item: &ConnectionItem, json: &str) -> Result<bool> {
    let changed = db
        .prepare_cached(
            "INSERT INTO connections (connection_id, session_id, joined_at, position, expires_at, item)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (connection_id) DO UPDATE SET session_id = excluded.session_id,
               joined_at = excluded.joined_at, position = excluded.position,
               expires_at = excluded.expires_at, item = excluded.item
             WHERE excluded.position > connections.position",
        )?
        .execute(params![
            item.connection_id,
            item.session_id,
            item.joined_at,
            item.position,
            item.expires_at,
            json
        ])?;
    Ok(changed == 1)
}

/// Inserts latency samples; one already there is the same fact.
fn insert_latency(db: &Connection, items: &[LatencyItem]) -> Result<()> {
    let mut insert = db.prepare_cached(
        "INSERT OR IGNORE INTO latency (connection_id, at, rtt_ms, session_id, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for item in items {
        insert.execute(params![
            item.connection_id,
            item.at,
            item.rtt_ms as i64,
            item.session_id,
            item.expires_at
        ])?;
    }
    Ok(())
}

#[async_trait]
impl ProjectionStore for EmbeddedStore {
    async fn create_tables(&self) -> Result<()> {
        self.run(|db| Ok(db.execute_batch(SCHEMA)?)).await
    }

    async fn expiry_enabled(&self) -> Result<bool> {
        Ok(true)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionItem>> {
        self.item("SELECT item FROM sessions WHERE session_id = ?1", id).await
    }

    async fn connection(&self, id: &str) -> Result<Option<ConnectionItem>> {
        self.item("SELECT item FROM connections WHERE connection_id = ?1", id).await
    }

    async fn write(&self, batch: &Batch) -> Result<usize> {
        let sessions =
            batch.sessions.iter().map(|i| Ok((i.clone(), to_json(i)?))).collect::<Result<Vec<_>>>()?;
        let connections =
            batch.connections.iter().map(|i| Ok((i.clone(), to_json(i)?))).collect::<Result<Vec<_>>>()?;
        let latency = batch.latency.clone();
        // One transaction for the batch: one commit where there would be one per item.
        self.run(move |db| {
            let tx = db.unchecked_transaction()?;
            let mut written = 0;
            for (item, json) in &sessions {
                written += usize::from(upsert_session(&tx, item, json)?);
            }
            for (item, json) in &connections {
                written += usize::from(upsert_connection(&tx, item, json)?);
            }
            insert_latency(&tx, &latency)?;
            tx.commit()?;
            Ok(written)
        })
        .await
    }

    async fn sessions(&self, phase: Phase, limit: usize) -> Result<Vec<SessionItem>> {
        self.run(move |db| {
            items(
                db,
                "SELECT item FROM sessions WHERE phase = ?1 ORDER BY created_at DESC, session_id DESC LIMIT ?2",
                params![phase.as_str(), limit as i64],
            )
        })
        .await
    }

    async fn connections_of(&self, session_id: &str) -> Result<Vec<ConnectionItem>> {
        let id = session_id.to_owned();
        self.run(move |db| {
            items(
                db,
                "SELECT item FROM connections WHERE session_id = ?1 ORDER BY joined_at, connection_id",
                params![id],
            )
        })
        .await
    }

    async fn latency_of(&self, connection_id: &str, limit: usize) -> Result<Vec<LatencyItem>> {
        let id = connection_id.to_owned();
        self.run(move |db| {
            let mut statement = db.prepare_cached(
                "SELECT connection_id, at, rtt_ms, session_id, expires_at FROM latency
                 WHERE connection_id = ?1 ORDER BY at DESC LIMIT ?2",
            )?;
            let rows = statement.query_map(params![id, limit as i64], |row| {
                Ok(LatencyItem {
                    connection_id: row.get(0)?,
                    at: row.get(1)?,
                    rtt_ms: row.get::<_, i64>(2)? as u64,
                    session_id: row.get(3)?,
                    expires_at: row.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn clear(&self) -> Result<()> {
        self.run(|db| {
            Ok(db.execute_batch("DELETE FROM sessions; DELETE FROM connections; DELETE FROM latency;")?)
        })
        .await
    }

    async fn begin_rebuild(&self) -> Result<Arc<dyn ProjectionStore>> {
        let path = self.rebuild_path();
        for stale in [path.clone(), wal_of(&path, "-wal"), wal_of(&path, "-shm")] {
            match std::fs::remove_file(&stale) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Io { path: stale.display().to_string(), source }),
            }
        }
        Ok(Arc::new(Self::open_file(&path)?))
    }

    async fn finish_rebuild(&self) -> Result<()> {
        let path = self.rebuild_path();
        let attach = path.display().to_string();
        // One transaction: a reader sees every old item or every new one, never a mix.
        self.run(move |db| {
            db.execute("ATTACH DATABASE ?1 AS rebuilt", params![attach])?;
            let swapped = db.execute_batch(
                "BEGIN IMMEDIATE;
                 DELETE FROM main.sessions; INSERT INTO main.sessions SELECT * FROM rebuilt.sessions;
                 DELETE FROM main.connections; INSERT INTO main.connections SELECT * FROM rebuilt.connections;
                 DELETE FROM main.latency; INSERT INTO main.latency SELECT * FROM rebuilt.latency;
                 COMMIT;",
            );
            if swapped.is_err() {
                let _ = db.execute_batch("ROLLBACK");
            }
            db.execute_batch("DETACH DATABASE rebuilt")?;
            Ok(swapped?)
        })
        .await?;
        for done in [wal_of(&path, "-wal"), wal_of(&path, "-shm"), path.clone()] {
            let _ = std::fs::remove_file(done);
        }
        Ok(())
    }

    async fn expire(&self, now_s: i64) -> Result<u64> {
        self.run(move |db| {
            let tx = db.unchecked_transaction()?;
            let mut deleted = 0;
            for table in ["sessions", "connections", "latency"] {
                deleted +=
                    tx.execute(&format!("DELETE FROM {table} WHERE expires_at < ?1"), params![now_s])?;
            }
            tx.commit()?;
            Ok(deleted as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_the_older_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        Connection::open(dir.path().join("projections.sqlite"))
            .unwrap()
            .execute_batch("CREATE TABLE sessions (session_id TEXT PRIMARY KEY, position INTEGER NOT NULL)")
            .unwrap();
        let refused = EmbeddedStore::open(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("older format") && refused.contains("--rebuild"), "{refused}");
    }
}
