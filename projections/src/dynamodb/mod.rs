//! The DynamoDB store: tables `PREFIX-sessions` (key `sessionId`; index `byPhase` on `phase`,
//! `createdAt`), `PREFIX-connections` (key `connectionId`; index `bySession` on `sessionId`,
//! `joinedAt`) and `PREFIX-latency` (key `connectionId`, `at`), on-demand capacity, TTL on
//! `expiresAt`, and a second set of them that a rebuild fills before it switches (`tables`).
//! Items are written with a condition on their `position`, so a replay or a second projector
//! never applies an event twice nor goes backwards.

mod tables;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::tables::{TableSet, Tables};
use crate::model::{ConnectionItem, LatencyItem, Phase, SessionItem};
use crate::{Batch, Error, ProjectionStore, Result};

/// How often a store reads which set of tables serves: a reader in another process (the edge)
/// follows a rebuild's switch within this.
const POINTER_REFRESH: Duration = Duration::from_secs(2);
/// Conditional writes of one batch in flight at once.
const WRITES_IN_FLIGHT: usize = 16;
/// Attempts at writing the samples DynamoDB left unprocessed (throttled) in a batch.
const BATCH_ATTEMPTS: u32 = 8;

/// Where the tables live: `dynamodb://PREFIX?region=R[&endpoint=URL]`.
#[derive(Debug, Clone)]
pub struct DynamoAddress {
    pub prefix: String,
    /// The AWS region; without it, the default chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Another endpoint than AWS's (a local server).
    pub endpoint: Option<String>,
}

impl DynamoAddress {
    /// Parses `rest`, the URL after `dynamodb://`; `url` is the whole URL, for messages.
    pub fn parse(url: &str, rest: &str) -> Result<Self> {
        let bad = |reason: String| Error::BadUrl { url: url.to_owned(), reason };
        let (prefix, query) = rest.split_once('?').unwrap_or((rest, ""));
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(bad(
                "expected dynamodb://PREFIX?region=R, PREFIX of letters, digits, '-', '_' or '.' (tables are PREFIX-sessions, …)"
                    .into(),
            ));
        }
        let (mut region, mut endpoint) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("region", value)) if !value.is_empty() => region = Some(value.to_owned()),
                Some(("endpoint", value)) if !value.is_empty() => endpoint = Some(value.to_owned()),
                _ => {
                    return Err(bad(format!(
                        "unknown parameter {pair:?}; supported: region=R, endpoint=URL"
                    )));
                }
            }
        }
        Ok(Self { prefix: prefix.to_owned(), region, endpoint })
    }
}

/// The DynamoDB projection store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    prefix: String,
    /// The set of tables it reads and writes, and when the pointer was last read; shared by
    /// its clones, locked only to copy or replace it (never across a call).
    serving: Arc<Mutex<Serving>>,
    /// A rebuild's store: fixed on the set it fills, it never follows the pointer.
    fixed: bool,
}

#[derive(Debug)]
struct Serving {
    tables: Tables,
    /// `None` until the pointer is first read.
    read_at: Option<Instant>,
}

impl DynamoStore {
    /// A client with the AWS default credential chain, in the address's region and endpoint.
    pub async fn connect(address: DynamoAddress) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(region) = address.region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(endpoint) = address.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let client = Client::new(&loader.load().await);
        let serving = Serving { tables: Tables::of(&address.prefix, TableSet::A), read_at: None };
        Self { client, prefix: address.prefix, serving: Arc::new(Mutex::new(serving)), fixed: false }
    }

    /// The tables that serve now, as the pointer said at most [`POINTER_REFRESH`] ago.
    async fn tables(&self) -> Result<Tables> {
        let stale = {
            let serving = self.serving.lock().unwrap();
            !self.fixed && serving.read_at.is_none_or(|at| at.elapsed() > POINTER_REFRESH)
        };
        if stale {
            let set = tables::active_set(&self.client, &self.prefix).await?;
            self.serve(set);
        }
        Ok(self.serving.lock().unwrap().tables.clone())
    }

    /// From now on `set` serves this store.
    fn serve(&self, set: TableSet) {
        *self.serving.lock().unwrap() =
            Serving { tables: Tables::of(&self.prefix, set), read_at: Some(Instant::now()) };
    }

    async fn get<T: DeserializeOwned>(&self, table: &str, key: &str, id: &str) -> Result<Option<T>> {
        let got = self
            .client
            .get_item()
            .table_name(table)
            .key(key, AttributeValue::S(id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("reading {table}"), &e))?;
        got.item.map(from_item).transpose()
    }

    /// Writes `item` if no item with its key exists or the stored one's position is below.
    async fn put_if_newer<T: Serialize>(
        &self,
        table: &str,
        key: &str,
        item: &T,
        position: &str,
    ) -> Result<bool> {
        let written = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(to_item(item)?))
            .condition_expression("attribute_not_exists(#key) OR #position < :position")
            .expression_attribute_names("#key", key)
            .expression_attribute_names("#position", "position")
            .expression_attribute_values(":position", AttributeValue::S(position.to_owned()))
            .send()
            .await;
        match written {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(sdk_error(&format!("writing {table}"), &error)),
        }
    }

    /// Writes latency samples in batches of 25, retrying what DynamoDB leaves unprocessed.
    async fn put_latency(&self, table: &str, items: &[LatencyItem]) -> Result<()> {
        // A batch holds 25 writes and no two of one key.
        let mut unique: Vec<&LatencyItem> = items.iter().collect();
        unique.sort_by(|a, b| (&a.connection_id, a.at).cmp(&(&b.connection_id, b.at)));
        unique.dedup_by(|a, b| a.connection_id == b.connection_id && a.at == b.at);
        for chunk in unique.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(to_item(item)?))
                        .build()
                        .map_err(|e| build_error("a put", &e))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>>>()?;
            let mut attempt = 0;
            while !requests.is_empty() {
                attempt += 1;
                let written = self
                    .client
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .map_err(|e| sdk_error(&format!("writing {table}"), &e))?;
                requests =
                    written.unprocessed_items.and_then(|mut left| left.remove(table)).unwrap_or_default();
                if !requests.is_empty() {
                    if attempt >= BATCH_ATTEMPTS {
                        return Err(Error::Dynamo {
                            context: format!("writing {table}"),
                            message: format!(
                                "{} samples still unprocessed after {attempt} attempts",
                                requests.len()
                            ),
                            transient: true,
                        });
                    }
                    // Throttled: back off before the rest, as DynamoDB asks.
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                }
            }
        }
        Ok(())
    }

    /// Every item a query finds, page after page, at most `limit`.
    async fn query<T: DeserializeOwned>(
        &self,
        build: impl Fn() -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: usize,
    ) -> Result<Vec<T>> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = build()
                .set_exclusive_start_key(start)
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| sdk_error("querying", &e))?;
            for item in page.items.unwrap_or_default() {
                found.push(from_item(item)?);
            }
            start = page.last_evaluated_key;
            if start.is_none() || found.len() >= limit {
                return Ok(found);
            }
        }
    }
}

pub(crate) fn build_error(what: &str, error: &dyn std::fmt::Display) -> Error {
    Error::Dynamo { context: format!("building {what}"), message: error.to_string(), transient: false }
}

fn to_item<T: Serialize>(item: &T) -> Result<HashMap<String, AttributeValue>> {
    serde_dynamo::to_item(item).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A failed call: throttling, server errors, timeouts and dropped connections can pass.
pub(crate) fn sdk_error<E, R>(context: &str, error: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => matches!(
            error.code(),
            Some(
                "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "InternalServerError"
                    | "ServiceUnavailable"
            )
        ),
        _ => false,
    };
    Error::Dynamo { context: context.to_owned(), message: DisplayErrorContext(error).to_string(), transient }
}

#[async_trait]
impl ProjectionStore for DynamoStore {
    async fn create_tables(&self) -> Result<()> {
        tables::create_all(&self.client, &self.prefix).await
    }

    async fn expiry_enabled(&self) -> Result<bool> {
        for table in self.tables().await?.names() {
            if !tables::ttl_enabled(&self.client, table).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionItem>> {
        self.get(&self.tables().await?.sessions, "sessionId", id).await
    }

    async fn connection(&self, id: &str) -> Result<Option<ConnectionItem>> {
        self.get(&self.tables().await?.connections, "connectionId", id).await
    }

    async fn write(&self, batch: &Batch) -> Result<usize> {
        let tables = self.tables().await?;
        // Items are independent, so their conditional writes go out together, a few at a time.
        let mut written = 0;
        for chunk in batch.sessions.chunks(WRITES_IN_FLIGHT) {
            let puts = chunk
                .iter()
                .map(|item| self.put_if_newer(&tables.sessions, "sessionId", item, &item.position));
            written += futures_util::future::try_join_all(puts).await?.into_iter().filter(|w| *w).count();
        }
        for chunk in batch.connections.chunks(WRITES_IN_FLIGHT) {
            let puts = chunk
                .iter()
                .map(|item| self.put_if_newer(&tables.connections, "connectionId", item, &item.position));
            written += futures_util::future::try_join_all(puts).await?.into_iter().filter(|w| *w).count();
        }
        if !batch.latency.is_empty() {
            self.put_latency(&tables.latency, &batch.latency).await?;
        }
        Ok(written)
    }

    async fn sessions(&self, phase: Phase, limit: usize) -> Result<Vec<SessionItem>> {
        let table = self.tables().await?.sessions;
        self.query(
            || {
                self.client
                    .query()
                    .table_name(&table)
                    .index_name("byPhase")
                    .key_condition_expression("#phase = :phase")
                    .expression_attribute_names("#phase", "phase")
                    .expression_attribute_values(":phase", AttributeValue::S(phase.as_str().to_owned()))
                    .scan_index_forward(false)
            },
            limit,
        )
        .await
    }

    async fn connections_of(&self, session_id: &str) -> Result<Vec<ConnectionItem>> {
        let table = self.tables().await?.connections;
        self.query(
            || {
                self.client
                    .query()
                    .table_name(&table)
                    .index_name("bySession")
                    .key_condition_expression("sessionId = :session")
                    .expression_attribute_values(":session", AttributeValue::S(session_id.to_owned()))
            },
            usize::MAX,
        )
        .await
    }

    async fn latency_of(&self, connection_id: &str, limit: usize) -> Result<Vec<LatencyItem>> {
        let table = self.tables().await?.latency;
        self.query(
            || {
                self.client
                    .query()
                    .table_name(&table)
                    .key_condition_expression("connectionId = :connection")
                    .expression_attribute_values(":connection", AttributeValue::S(connection_id.to_owned()))
                    .scan_index_forward(false)
            },
            limit,
        )
        .await
    }

    /// Deletes the serving set's tables and makes them again: one call a table, where deleting
    /// the items would be one call each.
    async fn clear(&self) -> Result<()> {
        let tables = self.tables().await?;
        tables::delete_set(&self.client, &tables).await?;
        tables::create_set(&self.client, &tables).await
    }

    async fn expire(&self, _now_s: i64) -> Result<u64> {
        Ok(0) // DynamoDB's TTL deletes expired items itself
    }

    /// The set that does not serve, emptied (what an unfinished rebuild left there goes too):
    /// readers keep the serving set until [`ProjectionStore::finish_rebuild`] moves the pointer.
    async fn begin_rebuild(&self) -> Result<Arc<dyn ProjectionStore>> {
        let serving = tables::active_set(&self.client, &self.prefix).await?;
        self.serve(serving);
        let target = Self {
            client: self.client.clone(),
            prefix: self.prefix.clone(),
            serving: Arc::new(Mutex::new(Serving {
                tables: Tables::of(&self.prefix, serving.other()),
                read_at: None,
            })),
            fixed: true,
        };
        target.clear().await?;
        Ok(Arc::new(target))
    }

    /// Moves the pointer to the rebuilt set: this store serves it at once, every other within
    /// [`POINTER_REFRESH`].
    async fn finish_rebuild(&self) -> Result<()> {
        let rebuilt = tables::active_set(&self.client, &self.prefix).await?.other();
        tables::activate(&self.client, &self.prefix, rebuilt).await?;
        self.serve(rebuilt);
        Ok(())
    }
}
