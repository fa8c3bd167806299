# One IAM policy per role, with only the calls that role makes (docs/kinesis.md). Attach each to
# the instance, task or pod role that runs it.

locals {
  all_streams  = concat([aws_kinesis_stream.game_events.arn, aws_kinesis_stream.deployment.arn], [for s in aws_kinesis_stream.ticks : s.arn])
  tick_streams = [for s in aws_kinesis_stream.ticks : s.arn]
  # Both sets of projection tables, and the pointer to the one that serves.
  projection_tables = concat([aws_dynamodb_table.tables.arn], flatten([for set in local.table_sets : [
    aws_dynamodb_table.sessions[set].arn, "${aws_dynamodb_table.sessions[set].arn}/index/*",
    aws_dynamodb_table.connections[set].arn, "${aws_dynamodb_table.connections[set].arn}/index/*",
    aws_dynamodb_table.latency[set].arn,
  ]]))
  # Reading a stream: its shards, an iterator, records.
  read_streams = ["kinesis:ListShards", "kinesis:GetShardIterator", "kinesis:GetRecords"]
  # A consumer group's shard leases.
  lease_actions = ["dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"]
}

data "aws_iam_policy_document" "edge" {
  statement {
    sid       = "GameEventsAndSecret"
    actions   = concat(local.read_streams, ["kinesis:PutRecords"])
    resources = [aws_kinesis_stream.game_events.arn]
  }
  statement {
    sid       = "ReadSecret"
    actions   = local.read_streams
    resources = [aws_kinesis_stream.deployment.arn]
  }
  statement {
    sid       = "ReadApi"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive"]
    resources = local.projection_tables
  }
}

data "aws_iam_policy_document" "gateway" {
  statement {
    sid       = "PlayerEvents"
    actions   = concat(local.read_streams, ["kinesis:PutRecords"])
    resources = [aws_kinesis_stream.game_events.arn]
  }
  statement {
    sid       = "TicksAndSecret"
    actions   = local.read_streams
    resources = concat(local.tick_streams, [aws_kinesis_stream.deployment.arn])
  }
}

data "aws_iam_policy_document" "tick_generator" {
  statement {
    sid       = "SessionsAndTicks"
    actions   = concat(local.read_streams, ["kinesis:PutRecords"])
    resources = concat([aws_kinesis_stream.game_events.arn], local.tick_streams)
  }
  statement {
    sid       = "Leases"
    actions   = local.lease_actions
    resources = [aws_dynamodb_table.leases.arn]
  }
}

data "aws_iam_policy_document" "archiver" {
  statement {
    sid       = "ReadEverything"
    actions   = local.read_streams
    resources = concat([aws_kinesis_stream.game_events.arn], local.tick_streams)
  }
  statement {
    sid       = "Leases"
    actions   = local.lease_actions
    resources = [aws_dynamodb_table.leases.arn]
  }
}

data "aws_iam_policy_document" "projector" {
  statement {
    sid       = "GameEvents"
    actions   = local.read_streams
    resources = [aws_kinesis_stream.game_events.arn]
  }
  statement {
    sid       = "Leases"
    actions   = local.lease_actions
    resources = [aws_dynamodb_table.leases.arn]
  }
  statement {
    sid = "Projections"
    actions = ["dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive", "dynamodb:GetItem", "dynamodb:Query",
    "dynamodb:PutItem", "dynamodb:BatchWriteItem"]
    resources = local.projection_tables
  }
}

resource "aws_iam_policy" "role" {
  for_each = {
    edge             = data.aws_iam_policy_document.edge.json
    gateway          = data.aws_iam_policy_document.gateway.json
    "tick-generator" = data.aws_iam_policy_document.tick_generator.json
    archiver         = data.aws_iam_policy_document.archiver.json
    projector        = data.aws_iam_policy_document.projector.json
  }
  name   = "${var.prefix}-${each.key}-${data.aws_region.current.name}"
  policy = each.value
}

data "aws_region" "current" {}
