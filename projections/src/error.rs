//! What can go wrong in a store, and whether trying again can help.

/// A store's failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the store in {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// A DynamoDB call failed; `transient` when a retry can succeed (throttling, a timeout, a
    /// connection that dropped).
    #[error("DynamoDB: {context}: {message}")]
    Dynamo { context: String, message: String, transient: bool },
    #[error("a stored item cannot be read: {0}")]
    Corrupt(String),
    #[error("the store's worker stopped")]
    Closed,
}

impl Error {
    /// Whether the same call may succeed if tried again.
    #[must_use]
    pub const fn is_transient(&self) -> bool {
        match self {
            Self::Dynamo { transient, .. } => *transient,
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
