//! The join-token secret: configured (`TICKCAST_TOKEN_SECRET`), else drawn at random, or for
//! roles that run apart from each other, the deployment's, kept in the log.

use anyhow::{Context, bail};
use tickcast_eventlog::{Durability, EventLog, NewRecord, StartFrom};
use tickcast_schemas::token::TokenSigner;
use tickcast_schemas::topics;

use crate::cli::{CommonArgs, LogArgs};

/// The record key of the deployment's secret in the deployment topic.
const SECRET_KEY: &str = "token-secret";

/// The signer of a process that runs every role itself: the configured secret, else a random one.
pub(crate) fn signer(common: &CommonArgs) -> anyhow::Result<TokenSigner> {
    match &common.token_secret {
        Some(secret) if secret.len() < 16 => {
            bail!("TICKCAST_TOKEN_SECRET must be at least 16 bytes")
        }
        Some(secret) => Ok(TokenSigner::new(secret.as_bytes())),
        None => Ok(TokenSigner::new(&random_secret()?)),
    }
}

/// The join-token signer of a role that runs apart from others: the configured secret, else the
/// deployment's, kept in the log so that every edge and gateway on it agrees.
pub(crate) async fn shared_signer(
    common: &CommonArgs,
    args: &LogArgs,
    log: &dyn EventLog,
) -> anyhow::Result<TokenSigner> {
    if common.token_secret.is_some() || args.url.starts_with("embedded://") {
        return signer(common);
    }
    let first = |records: Vec<tickcast_eventlog::Record>| records.into_iter().find(|r| r.key == SECRET_KEY);
    let mut found = first(log.read(topics::DEPLOYMENT, StartFrom::Beginning, 64).await?);
    if found.is_none() {
        let record = NewRecord {
            key: SECRET_KEY.to_owned(),
            timestamp_ms: now_ms(),
            payload: hex::encode(random_secret()?).into_bytes().into(),
        };
        log.append(topics::DEPLOYMENT, vec![record], Durability::Durable).await?;
        // Another process may have proposed one at the same time: the first in the log wins.
        found = first(log.read(topics::DEPLOYMENT, StartFrom::Beginning, 64).await?);
    }
    let record = found.context("the deployment's token secret could not be read back")?;
    Ok(TokenSigner::new(&record.payload))
}

fn random_secret() -> anyhow::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).context("cannot draw a random token secret")?;
    Ok(secret)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
