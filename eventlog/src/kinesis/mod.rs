//! The Kinesis backend (`kinesis://PREFIX?region=R[&endpoint=URL]`), being built: so far the
//! streams as topics with appends that keep each key's order ([`streams`]) and the shard leases
//! its consumer groups share through DynamoDB ([`leases`]). `open` still answers that
//! `kinesis://` is not part of this build.

pub mod leases;
pub mod streams;

use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::Error;

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
