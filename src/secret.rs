//! The join-token secret: configured (`TICKCAST_TOKEN_SECRET`); else, for `tickcast up`, one
//! kept in its data directory (so tickets outlive a restart); for roles that run apart from
//! each other, the deployment's, kept in the log.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use tickcast_eventlog::{Durability, EventLog, NewRecord, StartFrom};
use tickcast_schemas::token::TokenSigner;
use tickcast_schemas::topics;

use crate::cli::{CommonArgs, LogArgs};

/// The record key of the deployment's secret in the deployment topic.
const SECRET_KEY: &str = "token-secret";

/// The file in `tickcast up`'s data directory that holds its secret.
const SECRET_FILE: &str = "token-secret";

/// The signer of the configured secret, if one is configured.
fn configured(common: &CommonArgs) -> anyhow::Result<Option<TokenSigner>> {
    match &common.token_secret {
        Some(secret) if secret.len() < 16 => {
            bail!("TICKCAST_TOKEN_SECRET must be at least 16 bytes")
        }
        Some(secret) => Ok(Some(TokenSigner::new(secret.as_bytes()))),
        None => Ok(None),
    }
}

/// The signer of `tickcast up`: the configured secret, else the one in `data_dir`, created on
/// first start (readable by its owner only), so the tickets players hold stay valid across
/// restarts.
pub(crate) fn signer_in(common: &CommonArgs, data_dir: &Path) -> anyhow::Result<TokenSigner> {
    if let Some(signer) = configured(common)? {
        return Ok(signer);
    }
    let path = data_dir.join(SECRET_FILE);
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path);
    match created {
        Ok(mut file) => {
            let secret = hex::encode(random_secret()?);
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .and_then(|()| std::fs::File::open(data_dir)?.sync_all())
                .with_context(|| format!("cannot write the token secret {}", path.display()))?;
            tracing::info!(path = %path.display(), "created the token secret");
            Ok(TokenSigner::new(secret.as_bytes()))
        }
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => read_secret_file(&path),
        Err(error) => {
            Err(error).with_context(|| format!("cannot create the token secret {}", path.display()))
        }
    }
}

fn read_secret_file(path: &Path) -> anyhow::Result<TokenSigner> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the token secret {} can be read by others (mode {:o}); make it private with `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let secret =
        std::fs::read(path).with_context(|| format!("cannot read the token secret {}", path.display()))?;
    let secret = secret.trim_ascii();
    if secret.len() < 16 {
        bail!(
            "the token secret {} is shorter than 16 bytes; delete it to have a new one made",
            path.display()
        );
    }
    Ok(TokenSigner::new(secret))
}

/// `signer`, also verifying the tickets of the previous secrets until their retirement.
pub(crate) fn with_previous(common: &CommonArgs, signer: TokenSigner) -> anyhow::Result<TokenSigner> {
    if common.previous_token_secrets.is_empty() {
        return Ok(signer);
    }
    let Some(until) = common.previous_token_secrets_until else {
        bail!(
            "TICKCAST_PREVIOUS_TOKEN_SECRETS needs TICKCAST_PREVIOUS_TOKEN_SECRETS_UNTIL (--previous-token-secrets-until, RFC 3339): until when their tickets verify"
        );
    };
    let retire_at_ms = until.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    common.previous_token_secrets.iter().try_fold(signer, |signer, secret| {
        if secret.len() < 16 {
            bail!("every TICKCAST_PREVIOUS_TOKEN_SECRETS entry must be at least 16 bytes");
        }
        Ok(signer.with_previous(secret.as_bytes(), retire_at_ms))
    })
}

/// The join-token signer of a role that runs apart from others: the configured secret, else —
/// only when the operator allowed it — the deployment's, kept in the log so that every edge and
/// gateway on it agrees. The secret is never printed or logged.
pub(crate) async fn shared_signer(
    common: &CommonArgs,
    args: &LogArgs,
    log: &dyn EventLog,
) -> anyhow::Result<TokenSigner> {
    if let Some(signer) = configured(common)? {
        return Ok(signer);
    }
    if let Some(dir) = args.url.strip_prefix("embedded://") {
        // One process owns an embedded log: the secret beside it serves it.
        return signer_in(common, Path::new(dir));
    }
    if !common.allow_log_stored_secret {
        bail!(
            "no token secret: set TICKCAST_TOKEN_SECRET (at least 16 bytes, the same on every edge and gateway), \
             or pass --allow-log-stored-secret (TICKCAST_ALLOW_LOG_STORED_SECRET=true) to keep one in the \
             {} topic, where whoever can read that topic can forge tickets",
            topics::DEPLOYMENT
        );
    }
    let first = |records: Vec<tickcast_eventlog::Record>| records.into_iter().find(|r| &*r.key == SECRET_KEY);
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
