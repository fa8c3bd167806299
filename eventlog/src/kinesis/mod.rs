//! The Kinesis backend (`kinesis://PREFIX?region=R[&endpoint=URL]`), being built: so far the
//! shard leases its consumer groups share through DynamoDB ([`leases`]). `open` still answers
//! that `kinesis://` is not part of this build.

pub mod leases;
