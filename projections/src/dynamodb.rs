//! The DynamoDB store: tables `PREFIX-sessions` (key `sessionId`; index `byPhase` on `phase`,
//! `createdAt`), `PREFIX-connections` (key `connectionId`; index `bySession` on `sessionId`,
//! `joinedAt`) and `PREFIX-latency` (key `connectionId`, `at`), on-demand capacity, TTL on
//! `expiresAt`. Items are written with a condition on their `position`, so a replay or a
//! second projector never applies an event twice nor goes backwards.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, PutRequest, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
    WriteRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{ConnectionItem, LatencyItem, Phase, SessionItem};
use crate::{Batch, Error, ProjectionStore, Result};

/// How long `create_tables` waits for a new table to become active.
const TABLE_READY: Duration = Duration::from_secs(120);
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
    sessions: String,
    connections: String,
    latency: String,
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
        let table = |name: &str| format!("{}-{name}", address.prefix);
        Self {
            client,
            sessions: table("sessions"),
            connections: table("connections"),
            latency: table("latency"),
        }
    }

    /// The three table names.
    #[must_use]
    pub fn tables(&self) -> [&str; 3] {
        [&self.sessions, &self.connections, &self.latency]
    }

    async fn create_table(
        &self,
        name: &str,
        keys: &[(&str, ScalarAttributeType, KeyType)],
        index: Option<(&str, [(&str, ScalarAttributeType); 2])>,
    ) -> Result<()> {
        // Tables made beforehand (by Terraform, or `tables create`) are only described: a
        // projector's role then needs no CreateTable or UpdateTimeToLive permission.
        if self.table_active(name).await? && self.ttl_enabled(name).await? {
            return Ok(());
        }
        let mut definitions: HashMap<String, ScalarAttributeType> = HashMap::new();
        let mut request =
            self.client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
        for (attribute, kind, key) in keys {
            definitions.insert((*attribute).to_owned(), kind.clone());
            request = request.key_schema(key_element(attribute, key.clone()));
        }
        if let Some((index_name, [(hash, hash_kind), (range, range_kind)])) = index {
            definitions.insert(hash.to_owned(), hash_kind);
            definitions.insert(range.to_owned(), range_kind);
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index_name)
                    .key_schema(key_element(hash, KeyType::Hash))
                    .key_schema(key_element(range, KeyType::Range))
                    .projection(Projection::builder().projection_type(ProjectionType::All).build())
                    .build()
                    .map_err(|e| build_error("an index", &e))?,
            );
        }
        for (attribute, kind) in definitions {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(kind)
                    .build()
                    .map_err(|e| build_error("an attribute definition", &e))?,
            );
        }
        match request.send().await {
            Ok(_) => {}
            Err(error) if error.code() == Some("ResourceInUseException") => {} // exists already
            Err(error) => return Err(sdk_error(&format!("creating table {name}"), &error)),
        }
        self.client.wait_until_table_exists().table_name(name).wait(TABLE_READY).await.map_err(|e| {
            Error::Dynamo {
                context: format!("waiting for table {name}"),
                message: DisplayErrorContext(&e).to_string(),
                transient: true,
            }
        })?;
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name("expiresAt")
            .enabled(true)
            .build()
            .map_err(|e| build_error("a TTL specification", &e))?;
        match self.client.update_time_to_live().table_name(name).time_to_live_specification(ttl).send().await
        {
            Ok(_) => Ok(()),
            // Enabling TTL twice is refused with this; it is enabled.
            Err(error) if error.code() == Some("ValidationException") && self.ttl_enabled(name).await? => {
                Ok(())
            }
            Err(error) => Err(sdk_error(&format!("enabling TTL on {name}"), &error)),
        }
    }

    /// Whether `table` exists and is active.
    async fn table_active(&self, table: &str) -> Result<bool> {
        match self.client.describe_table().table_name(table).send().await {
            Ok(described) => Ok(described
                .table()
                .and_then(|t| t.table_status())
                .is_some_and(|status| *status == aws_sdk_dynamodb::types::TableStatus::Active)),
            Err(error) if error.code() == Some("ResourceNotFoundException") => Ok(false),
            Err(error) => Err(sdk_error(&format!("describing table {table}"), &error)),
        }
    }

    async fn ttl_enabled(&self, table: &str) -> Result<bool> {
        let described = self
            .client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("describing TTL of {table}"), &e))?;
        Ok(described.time_to_live_description().and_then(|d| d.time_to_live_status())
            == Some(&TimeToLiveStatus::Enabled))
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
    async fn put_latency(&self, items: &[LatencyItem]) -> Result<()> {
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
                    .request_items(&self.latency, requests)
                    .send()
                    .await
                    .map_err(|e| sdk_error(&format!("writing {}", self.latency), &e))?;
                requests = written
                    .unprocessed_items
                    .and_then(|mut left| left.remove(&self.latency))
                    .unwrap_or_default();
                if !requests.is_empty() {
                    if attempt >= BATCH_ATTEMPTS {
                        return Err(Error::Dynamo {
                            context: format!("writing {}", self.latency),
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

fn key_element(attribute: &str, key: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(key)
        .build()
        .expect("name and type are set")
}

fn build_error(what: &str, error: &dyn std::fmt::Display) -> Error {
    Error::Dynamo { context: format!("building {what}"), message: error.to_string(), transient: false }
}

fn to_item<T: Serialize>(item: &T) -> Result<HashMap<String, AttributeValue>> {
    serde_dynamo::to_item(item).map_err(|e| Error::Corrupt(e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T> {
    serde_dynamo::from_item(item).map_err(|e| Error::Corrupt(e.to_string()))
}

/// A failed call: throttling, server errors, timeouts and dropped connections can pass.
fn sdk_error<E, R>(context: &str, error: &SdkError<E, R>) -> Error
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
        use KeyType::{Hash, Range};
        use ScalarAttributeType::{N, S};
        self.create_table(
            &self.sessions,
            &[("sessionId", S, Hash)],
            Some(("byPhase", [("phase", S), ("createdAt", N)])),
        )
        .await?;
        self.create_table(
            &self.connections,
            &[("connectionId", S, Hash)],
            Some(("bySession", [("sessionId", S), ("joinedAt", N)])),
        )
        .await?;
        self.create_table(&self.latency, &[("connectionId", S, Hash), ("at", N, Range)], None).await
    }

    async fn expiry_enabled(&self) -> Result<bool> {
        for table in self.tables() {
            if !self.ttl_enabled(table).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn session(&self, id: &str) -> Result<Option<SessionItem>> {
        self.get(&self.sessions, "sessionId", id).await
    }

    async fn connection(&self, id: &str) -> Result<Option<ConnectionItem>> {
        self.get(&self.connections, "connectionId", id).await
    }

    async fn write(&self, batch: &Batch) -> Result<usize> {
        // Items are independent, so their conditional writes go out together, a few at a time.
        let mut written = 0;
        for chunk in batch.sessions.chunks(WRITES_IN_FLIGHT) {
            let puts =
                chunk.iter().map(|item| self.put_if_newer(&self.sessions, "sessionId", item, &item.position));
            written += futures_util::future::try_join_all(puts).await?.into_iter().filter(|w| *w).count();
        }
        for chunk in batch.connections.chunks(WRITES_IN_FLIGHT) {
            let puts = chunk
                .iter()
                .map(|item| self.put_if_newer(&self.connections, "connectionId", item, &item.position));
            written += futures_util::future::try_join_all(puts).await?.into_iter().filter(|w| *w).count();
        }
        if !batch.latency.is_empty() {
            self.put_latency(&batch.latency).await?;
        }
        Ok(written)
    }

    async fn sessions(&self, phase: Phase, limit: usize) -> Result<Vec<SessionItem>> {
        self.query(
            || {
                self.client
                    .query()
                    .table_name(&self.sessions)
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
        self.query(
            || {
                self.client
                    .query()
                    .table_name(&self.connections)
                    .index_name("bySession")
                    .key_condition_expression("sessionId = :session")
                    .expression_attribute_values(":session", AttributeValue::S(session_id.to_owned()))
            },
            usize::MAX,
        )
        .await
    }

    async fn latency_of(&self, connection_id: &str, limit: usize) -> Result<Vec<LatencyItem>> {
        self.query(
            || {
                self.client
                    .query()
                    .table_name(&self.latency)
                    .key_condition_expression("connectionId = :connection")
                    .expression_attribute_values(":connection", AttributeValue::S(connection_id.to_owned()))
                    .scan_index_forward(false)
            },
            limit,
        )
        .await
    }

    async fn clear(&self) -> Result<()> {
        // Deleting a table is one call where deleting its items is one per item.
        for table in self.tables() {
            match self.client.delete_table().table_name(table).send().await {
                Ok(_) => {}
                Err(error) if error.code() == Some("ResourceNotFoundException") => continue,
                Err(error) => return Err(sdk_error(&format!("deleting table {table}"), &error)),
            }
            self.client.wait_until_table_not_exists().table_name(table).wait(TABLE_READY).await.map_err(
                |e| Error::Dynamo {
                    context: format!("waiting for table {table} to go"),
                    message: DisplayErrorContext(&e).to_string(),
                    transient: true,
                },
            )?;
        }
        self.create_tables().await
    }

    async fn expire(&self, _now_s: i64) -> Result<u64> {
        Ok(0) // DynamoDB's TTL deletes expired items itself
    }

    /// On DynamoDB the tables are emptied and filled again in place: readers see them partly
    /// filled meanwhile (docs/operations.md says so). Tables of a new generation, switched to
    /// at the end, are not done yet.
    async fn begin_rebuild(&self) -> Result<std::sync::Arc<dyn ProjectionStore>> {
        self.clear().await?;
        Ok(std::sync::Arc::new(self.clone()))
    }

    async fn finish_rebuild(&self) -> Result<()> {
        Ok(())
    }
}
