//! The DynamoDB store's tables: two sets of the three projection tables, and the pointer that
//! says which set serves.
//!
//! Set `a` is `PREFIX-sessions`, `PREFIX-connections`, `PREFIX-latency`; set `b` is
//! `PREFIX-b-sessions`, … . `PREFIX-tables` (key `name`) holds one item, `{name: "active",
//! set: "a"|"b"}`; without it (or without the table, a store made before there were two sets),
//! set `a` serves. A rebuild fills the other set and then moves the pointer, so readers see the
//! old items until the new ones are complete, and a rebuild stopped half-way changes nothing.
//! Both sets and the pointer table are made by `tickcast tables create` (and the Terraform), so
//! the roles themselves create nothing.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::{build_error, sdk_error};
use crate::{Error, Result};

/// How long a table takes to become active, or to go, at most.
const TABLE_READY: Duration = Duration::from_secs(120);

/// One of the two sets of tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableSet {
    A,
    B,
}

impl TableSet {
    const fn name(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }

    /// The set a rebuild fills while this one serves.
    pub(crate) const fn other(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }
}

/// The three table names of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tables {
    pub(crate) set: TableSet,
    pub(crate) sessions: String,
    pub(crate) connections: String,
    pub(crate) latency: String,
}

impl Tables {
    pub(crate) fn of(prefix: &str, set: TableSet) -> Self {
        let infix = match set {
            TableSet::A => "",
            TableSet::B => "b-",
        };
        let table = |name: &str| format!("{prefix}-{infix}{name}");
        Self {
            set,
            sessions: table("sessions"),
            connections: table("connections"),
            latency: table("latency"),
        }
    }

    pub(crate) fn names(&self) -> [&str; 3] {
        [&self.sessions, &self.connections, &self.latency]
    }
}

/// The name of the table that holds which set serves.
pub(crate) fn pointer_table(prefix: &str) -> String {
    format!("{prefix}-tables")
}

/// Which set serves, as the pointer says.
pub(crate) async fn active_set(client: &Client, prefix: &str) -> Result<TableSet> {
    let table = pointer_table(prefix);
    let got = client
        .get_item()
        .table_name(&table)
        .key("name", AttributeValue::S("active".into()))
        .consistent_read(true)
        .send()
        .await;
    let item = match got {
        Ok(got) => got.item,
        // A store made before there were two sets: set `a` is the only one.
        Err(error) if error.code() == Some("ResourceNotFoundException") => None,
        Err(error) => return Err(sdk_error(&format!("reading {table}"), &error)),
    };
    match item.as_ref().and_then(|i| i.get("set")).and_then(|v| v.as_s().ok()).map(String::as_str) {
        None | Some("a") => Ok(TableSet::A),
        Some("b") => Ok(TableSet::B),
        Some(other) => Err(Error::Corrupt(format!("{table} names set {other:?}; expected \"a\" or \"b\""))),
    }
}

/// Makes `set` the one that serves.
pub(crate) async fn activate(client: &Client, prefix: &str, set: TableSet) -> Result<()> {
    let table = pointer_table(prefix);
    client
        .put_item()
        .table_name(&table)
        .item("name", AttributeValue::S("active".into()))
        .item("set", AttributeValue::S(set.name().into()))
        .send()
        .await
        .map_err(|e| sdk_error(&format!("writing {table}"), &e))?;
    Ok(())
}

/// Makes the pointer table and both sets (with their indexes and TTL); what exists already is
/// only described, so a role whose tables were made beforehand needs no CreateTable permission.
pub(crate) async fn create_all(client: &Client, prefix: &str) -> Result<()> {
    use KeyType::Hash;
    use ScalarAttributeType::S;
    create_table(client, &pointer_table(prefix), &[("name", S, Hash)], None, false).await?;
    for set in [TableSet::A, TableSet::B] {
        create_set(client, &Tables::of(prefix, set)).await?;
    }
    Ok(())
}

/// Makes one set's three tables.
pub(crate) async fn create_set(client: &Client, tables: &Tables) -> Result<()> {
    use KeyType::{Hash, Range};
    use ScalarAttributeType::{N, S};
    create_table(
        client,
        &tables.sessions,
        &[("sessionId", S, Hash)],
        Some(("byPhase", [("phase", S), ("createdAt", N)])),
        true,
    )
    .await?;
    create_table(
        client,
        &tables.connections,
        &[("connectionId", S, Hash)],
        Some(("bySession", [("sessionId", S), ("joinedAt", N)])),
        true,
    )
    .await?;
    create_table(client, &tables.latency, &[("connectionId", S, Hash), ("at", N, Range)], None, true).await
}

/// Deletes one set's tables (a table is deleted in one call, its items one call each).
pub(crate) async fn delete_set(client: &Client, tables: &Tables) -> Result<()> {
    for table in tables.names() {
        match client.delete_table().table_name(table).send().await {
            Ok(_) => {}
            Err(error) if error.code() == Some("ResourceNotFoundException") => continue,
            Err(error) => return Err(sdk_error(&format!("deleting table {table}"), &error)),
        }
        client.wait_until_table_not_exists().table_name(table).wait(TABLE_READY).await.map_err(|e| {
            Error::Dynamo {
                context: format!("waiting for table {table} to go"),
                message: DisplayErrorContext(&e).to_string(),
                transient: true,
            }
        })?;
    }
    Ok(())
}

async fn create_table(
    client: &Client,
    name: &str,
    keys: &[(&str, ScalarAttributeType, KeyType)],
    index: Option<(&str, [(&str, ScalarAttributeType); 2])>,
    ttl: bool,
) -> Result<()> {
    if table_active(client, name).await? && (!ttl || ttl_enabled(client, name).await?) {
        return Ok(());
    }
    let mut definitions: HashMap<String, ScalarAttributeType> = HashMap::new();
    let mut request = client.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
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
    client.wait_until_table_exists().table_name(name).wait(TABLE_READY).await.map_err(|e| Error::Dynamo {
        context: format!("waiting for table {name}"),
        message: DisplayErrorContext(&e).to_string(),
        transient: true,
    })?;
    if !ttl {
        return Ok(());
    }
    let spec = TimeToLiveSpecification::builder()
        .attribute_name("expiresAt")
        .enabled(true)
        .build()
        .map_err(|e| build_error("a TTL specification", &e))?;
    match client.update_time_to_live().table_name(name).time_to_live_specification(spec).send().await {
        Ok(_) => Ok(()),
        // Enabling TTL twice is refused with this; it is enabled.
        Err(error) if error.code() == Some("ValidationException") && ttl_enabled(client, name).await? => {
            Ok(())
        }
        Err(error) => Err(sdk_error(&format!("enabling TTL on {name}"), &error)),
    }
}

/// Whether `table` exists and is active.
async fn table_active(client: &Client, table: &str) -> Result<bool> {
    match client.describe_table().table_name(table).send().await {
        Ok(described) => Ok(described
            .table()
            .and_then(|t| t.table_status())
            .is_some_and(|status| *status == aws_sdk_dynamodb::types::TableStatus::Active)),
        Err(error) if error.code() == Some("ResourceNotFoundException") => Ok(false),
        Err(error) => Err(sdk_error(&format!("describing table {table}"), &error)),
    }
}

pub(crate) async fn ttl_enabled(client: &Client, table: &str) -> Result<bool> {
    let described = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| sdk_error(&format!("describing TTL of {table}"), &e))?;
    Ok(described.time_to_live_description().and_then(|d| d.time_to_live_status())
        == Some(&TimeToLiveStatus::Enabled))
}

fn key_element(attribute: &str, key: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(attribute)
        .key_type(key)
        .build()
        .expect("name and type are set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_a_keeps_the_names_of_a_store_with_one_set() {
        let a = Tables::of("prod", TableSet::A);
        assert_eq!(a.names(), ["prod-sessions", "prod-connections", "prod-latency"]);
        let b = Tables::of("prod", TableSet::B);
        assert_eq!(b.names(), ["prod-b-sessions", "prod-b-connections", "prod-b-latency"]);
        assert_eq!(TableSet::A.other(), TableSet::B);
        assert_eq!(pointer_table("prod"), "prod-tables");
    }
}
