//! The Kinesis backend (`kinesis://PREFIX?region=R[&endpoint=URL]`), being built: so far the
//! streams as topics with appends that keep each key's order ([`streams`]), the shard leases
//! its consumer groups share through DynamoDB ([`leases`]), and the address and clients
//! ([`KinesisAddress`], [`connect`]). `open` still answers that `kinesis://` is not part of this
//! build.

pub mod leases;
pub mod streams;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::Error;

/// Where a Kinesis log lives: `kinesis://PREFIX?region=R[&endpoint=URL]`. Its streams are
/// `PREFIX-<topic>` and its lease table `PREFIX-leases`.
#[derive(Debug, Clone)]
pub struct KinesisAddress {
    pub prefix: String,
    /// The AWS region; without it, the default chain's (`AWS_REGION`, the profile).
    pub region: Option<String>,
    /// Another endpoint than AWS's (a local server), for Kinesis and DynamoDB alike.
    pub endpoint: Option<String>,
}

impl KinesisAddress {
    /// Parses `rest`, the URL after `kinesis://`; `url` is the whole URL, for messages.
    pub fn parse(url: &str, rest: &str) -> crate::Result<Self> {
        let bad = |reason: String| Error::BadUrl { url: url.to_owned(), reason };
        let (prefix, query) = rest.split_once('?').unwrap_or((rest, ""));
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(bad(
                "expected kinesis://PREFIX?region=R, PREFIX of letters, digits, '-', '_' or '.' (streams are PREFIX-game-events, …)"
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

    /// The lease table's name.
    #[must_use]
    pub fn lease_table(&self) -> String {
        format!("{}-leases", self.prefix)
    }
}

/// Kinesis and DynamoDB clients for `address`, with the AWS default credential chain.
pub async fn connect(address: &KinesisAddress) -> (aws_sdk_kinesis::Client, aws_sdk_dynamodb::Client) {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &address.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &address.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    (aws_sdk_kinesis::Client::new(&config), aws_sdk_dynamodb::Client::new(&config))
}

/// A failed AWS call (Kinesis or DynamoDB: their SDKs share these error types); throttling,
/// server faults, timeouts and dropped connections can pass.
pub(crate) fn aws_error<E, R>(context: &str, error: &SdkError<E, R>) -> Error
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
                    | "LimitExceededException"
                    | "InternalServerError"
                    | "InternalFailure"
            )
        ),
        _ => false,
    };
    Error::Aws { context: context.to_owned(), message: DisplayErrorContext(error).to_string(), transient }
}
