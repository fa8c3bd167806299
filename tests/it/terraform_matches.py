"""infra/terraform against what tickcast itself makes: run after `tickcast streams create` and
`tickcast tables create` with PREFIX on an AWS endpoint (moto's server), it compares the streams
and tables the Terraform declares (parsed with python-hcl2, for the default game regions) with the
ones tickcast created there (read back with boto3), and checks the IAM policies.

Usage: terraform_matches.py TERRAFORM_DIR PREFIX ENDPOINT GAME_REGIONS(comma-separated)
Exits non-zero, saying what differs, on the first mismatch."""

import glob
import json
import os
import re
import sys

import boto3
import hcl2

tf_dir, prefix, endpoint, game_regions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")


def load(pattern):
    blocks = {}
    for path in sorted(glob.glob(os.path.join(tf_dir, pattern))):
        with open(path) as f:
            for key, value in hcl2.load(f).items():
                blocks.setdefault(key, []).extend(value)
    return blocks


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def named(template):
    return template.replace("${var.prefix}", prefix)


root = load("*.tf")
region = load("region/*.tf")
defaults = {name: body.get("default") for block in root["variable"] for name, body in block.items()}
if defaults["game_regions"] != game_regions:
    fail(f"the Terraform's default game_regions {defaults['game_regions']} are not {game_regions}")

resources = {}
for block in region["resource"]:
    for kind, by_name in block.items():
        for name, body in by_name.items():
            resources[(kind, name)] = body

# Streams: what the Terraform declares, with for_each over the game regions expanded.
locals_ = {k: v for block in region["locals"] for k, v in block.items()}
tick_template = re.search(r'"(\$\{var\.prefix\}-ticks-\$\{r\})"', locals_["tick_streams"]).group(1)
declared = {}
for (kind, name), body in resources.items():
    if kind != "aws_kinesis_stream":
        continue
    if body.get("for_each"):
        for r in game_regions:
            declared[named(tick_template).replace("${r}", r)] = body
    else:
        declared[named(body["name"])] = body

kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1")
made = {}
for name in kinesis.list_streams(Limit=1000)["StreamNames"]:
    if name.startswith(prefix + "-"):
        made[name] = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
if set(declared) != set(made):
    fail(f"streams: the Terraform declares {sorted(declared)}, tickcast makes {sorted(made)}")
deployment = f"{prefix}-tickcast-deployment"
if declared[deployment]["shard_count"] != 1 or made[deployment]["OpenShardCount"] != 1:
    fail("the deployment's secrets stream has one shard (its first record wins)")
for name, body in declared.items():
    if name != deployment and body["retention_period"] != "${var.retention_hours}":
        fail(f"{name}: its retention is var.retention_hours")
# The secrets stream is kept as long as Kinesis allows, by both: its first record is the
# deployment's token secret.
if str(declared[deployment]["retention_period"]) != "8760" or made[deployment]["RetentionPeriodHours"] != 8760:
    fail(f"the deployment's secrets stream keeps its records 8760 h: the Terraform says "
         f"{declared[deployment]['retention_period']}, tickcast made {made[deployment]['RetentionPeriodHours']}")
for name, summary in made.items():
    if name != deployment and summary["RetentionPeriodHours"] != 168:
        fail(f"{name}: streams create --retention 7d (the default) keeps records 168 h, not {summary['RetentionPeriodHours']}")

# Tables: the same names (for_each over the sets of projection tables expanded), keys,
# attribute types, indexes, TTL.
dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
declared_tables = {}
for (kind, name), body in resources.items():
    if kind != "aws_dynamodb_table":
        continue
    if body.get("for_each"):
        for key in locals_["table_sets"]:
            declared_tables[named(body["name"]).replace("${each.key}", key)] = body
    else:
        declared_tables[named(body["name"])] = body
made_tables = {t for page in dynamodb.get_paginator("list_tables").paginate() for t in page["TableNames"]
               if t.startswith(prefix + "-")}
if set(declared_tables) != made_tables:
    fail(f"tables: the Terraform declares {sorted(declared_tables)}, tickcast makes {sorted(made_tables)}")
for table, body in declared_tables.items():
    try:
        described = dynamodb.describe_table(TableName=table)["Table"]
    except dynamodb.exceptions.ResourceNotFoundException:
        fail(f"the Terraform declares table {table}, which tickcast does not make")
    keys = {k["KeyType"]: k["AttributeName"] for k in described["KeySchema"]}
    if keys.get("HASH") != body["hash_key"] or keys.get("RANGE") != body.get("range_key"):
        fail(f"{table}: keys {keys}, the Terraform {body['hash_key']}/{body.get('range_key')}")
    types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
    declared_types = {a["name"]: a["type"] for a in body["attribute"]}
    if types != declared_types:
        fail(f"{table}: attributes {types}, the Terraform {declared_types}")
    indexes = {
        i["IndexName"]: ({k["KeyType"]: k["AttributeName"] for k in i["KeySchema"]}, i["Projection"]["ProjectionType"])
        for i in described.get("GlobalSecondaryIndexes", [])
    }
    declared_indexes = {
        i["name"]: ({"HASH": i["hash_key"], "RANGE": i["range_key"]}, i["projection_type"])
        for i in body.get("global_secondary_index", [])
    }
    if indexes != declared_indexes:
        fail(f"{table}: indexes {indexes}, the Terraform {declared_indexes}")
    if body["billing_mode"] != "PAY_PER_REQUEST":
        fail(f"{table}: tickcast makes tables on demand")
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    declared_ttl = body.get("ttl", [{}])[0]
    if ttl.get("TimeToLiveStatus") == "ENABLED":
        if declared_ttl.get("attribute_name") != ttl["AttributeName"] or declared_ttl.get("enabled") is not True:
            fail(f"{table}: TTL on {ttl['AttributeName']}, the Terraform {declared_ttl}")
    elif declared_ttl:
        fail(f"{table}: tickcast sets no TTL, the Terraform does")

# IAM: a policy per role; readers read, writers write, group members reach the lease table.
documents = {name: body for block in region["data"] for kind, by_name in block.items()
             if kind == "aws_iam_policy_document" for name, body in by_name.items()}
reads = {"kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"}
leases = {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"}
local_values = {
    "local.read_streams": reads,
    "local.lease_actions": leases,
}


def actions(statement):
    text = statement["actions"]
    if isinstance(text, list):
        return set(text)
    found = set()
    for name, values in local_values.items():
        if name in text:
            found |= values
    found |= set(re.findall(r"\b((?:kinesis|dynamodb):\w+)", text))
    return found


wanted = {
    "edge": reads | {"kinesis:PutRecords", "dynamodb:GetItem", "dynamodb:Query"},
    "gateway": reads | {"kinesis:PutRecords"},
    "tick_generator": reads | {"kinesis:PutRecords"} | leases,
    "archiver": reads | leases,
    "projector": reads | leases | {"dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:DescribeTable",
                                   "dynamodb:DescribeTimeToLive"},
}
for role, needed in wanted.items():
    if role not in documents:
        fail(f"no IAM policy for the {role}")
    granted = set().union(*(actions(s) for s in documents[role]["statement"]))
    if not needed <= granted:
        fail(f"the {role}'s policy lacks {sorted(needed - granted)}")
    creating = {a for a in granted if a.endswith(("CreateTable", "CreateStream", "DeleteTable"))}
    if creating:
        fail(f"the {role}'s policy grants {sorted(creating)}: the Terraform makes the streams and tables")
print(json.dumps({"streams": sorted(made), "roles": sorted(documents)}))
