//! The Kinesis log's administration (moto's server, `TICKCAST_TEST_DYNAMODB`: one endpoint for
//! Kinesis and DynamoDB): `tickcast streams create` makes the streams and the lease table once.

fn endpoint() -> String {
    std::env::var("TICKCAST_TEST_DYNAMODB").unwrap_or_else(|_| {
        panic!("set TICKCAST_TEST_DYNAMODB (an AWS endpoint, e.g. moto's server) or run ./scripts/test.sh, which provides it")
    })
}

fn streams_create(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args(["streams", "create"])
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn streams_create_makes_the_streams_and_the_lease_table_once() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let prefix = format!("it{}-{}", std::process::id(), nanos % 1_000_000_000);
    let log = format!("kinesis://{prefix}?region=us-east-1&endpoint={}", endpoint());
    let args = ["--log", log.as_str(), "--shards", "2", "--regions", "eu-west-1"];
    let (ok, out, err) = streams_create(&args);
    assert!(ok, "{err}");
    for line in [
        format!("created  {prefix}-game-events (2 shards)"),
        format!("created  {prefix}-ticks-eu-west-1 (2 shards)"),
        format!("created  {prefix}-tickcast-deployment (1 shards)"),
        format!("ready    {prefix}-leases"),
    ] {
        assert!(out.contains(&line), "{line:?} in {out}");
    }
    let (ok, out, err) = streams_create(&args);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("exists   {prefix}-game-events")), "{out}");
    let (ok, _, err) = streams_create(&["--log", "kafka://127.0.0.1:9092"]);
    assert!(!ok && err.contains("topics create"), "{err}");
    let (ok, _, err) = streams_create(&["--log", "kinesis://?region=us-east-1"]);
    assert!(!ok && err.contains("kinesis://PREFIX"), "{err}");
}
