# One AWS region's streams and tables, named as tickcast names them.

locals {
  # A topic's stream is PREFIX-<topic> with dots as dashes (ticks.eu-west-1 → PREFIX-ticks-eu-west-1).
  tick_streams = { for r in var.game_regions : r => "${var.prefix}-ticks-${r}" }
}

resource "aws_kinesis_stream" "game_events" {
  name             = "${var.prefix}-game-events"
  shard_count      = var.game_events_shards
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = "alias/aws/kinesis"
  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

resource "aws_kinesis_stream" "ticks" {
  for_each         = local.tick_streams
  name             = each.value
  shard_count      = var.tick_shards
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = "alias/aws/kinesis"
  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

# One shard: "the first record wins" needs one order. Its first record is the token secret:
# kept as long as a stream can keep anything.
resource "aws_kinesis_stream" "deployment" {
  name             = "${var.prefix}-tickcast-deployment"
  shard_count      = 1
  retention_period = 8760
  encryption_type  = "KMS"
  kms_key_id       = "alias/aws/kinesis"
  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

# Shard leases of every consumer group (tick generators, archivers, projectors).
resource "aws_dynamodb_table" "leases" {
  name         = "${var.prefix}-leases"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "leaseGroup"
  range_key    = "shardId"

  attribute {
    name = "leaseGroup"
    type = "S"
  }
  attribute {
    name = "shardId"
    type = "S"
  }
}

# The projection tables, twice: set "a" (PREFIX-sessions, …) and set "b" (PREFIX-b-sessions, …).
# A rebuild (`tickcast projector --rebuild`) fills the set that does not serve, then switches;
# PREFIX-tables says which set serves (docs/operations.md).
locals {
  table_sets = ["", "b-"]
}

resource "aws_dynamodb_table" "tables" {
  name         = "${var.prefix}-tables"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "name"

  attribute {
    name = "name"
    type = "S"
  }
}

resource "aws_dynamodb_table" "sessions" {
  for_each     = toset(local.table_sets)
  name         = "${var.prefix}-${each.key}sessions"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "sessionId"

  attribute {
    name = "sessionId"
    type = "S"
  }
  attribute {
    name = "phase"
    type = "S"
  }
  attribute {
    name = "createdAt"
    type = "N"
  }
  global_secondary_index {
    name            = "byPhase"
    hash_key        = "phase"
    range_key       = "createdAt"
    projection_type = "ALL"
  }
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }
}

resource "aws_dynamodb_table" "connections" {
  for_each     = toset(local.table_sets)
  name         = "${var.prefix}-${each.key}connections"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "connectionId"

  attribute {
    name = "connectionId"
    type = "S"
  }
  attribute {
    name = "sessionId"
    type = "S"
  }
  attribute {
    name = "joinedAt"
    type = "N"
  }
  global_secondary_index {
    name            = "bySession"
    hash_key        = "sessionId"
    range_key       = "joinedAt"
    projection_type = "ALL"
  }
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }
}

resource "aws_dynamodb_table" "latency" {
  for_each     = toset(local.table_sets)
  name         = "${var.prefix}-${each.key}latency"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "connectionId"
  range_key    = "at"

  attribute {
    name = "connectionId"
    type = "S"
  }
  attribute {
    name = "at"
    type = "N"
  }
  ttl {
    attribute_name = "expiresAt"
    enabled        = true
  }
}

# Set "a" was these tables' only set before there were two.
moved {
  from = aws_dynamodb_table.sessions
  to   = aws_dynamodb_table.sessions[""]
}
moved {
  from = aws_dynamodb_table.connections
  to   = aws_dynamodb_table.connections[""]
}
moved {
  from = aws_dynamodb_table.latency
  to   = aws_dynamodb_table.latency[""]
}
