variable "prefix" {
  description = "Names' prefix: streams PREFIX-game-events, tables PREFIX-sessions… (the PREFIX of kinesis://PREFIX and dynamodb://PREFIX)"
  type        = string
  default     = "tickcast"
}

variable "game_regions" {
  description = "The game regions of TICKCAST_REGIONS: each gets a PREFIX-ticks-<region> stream in every AWS region deployed"
  type        = list(string)
  default     = ["us-east-1", "eu-west-1"]
}

variable "game_events_shards" {
  description = "Shards of PREFIX-game-events: the most tick generators (and archivers, projectors) that share the work"
  type        = number
  default     = 4
}

variable "tick_shards" {
  description = "Shards of each PREFIX-ticks-<region>: one shard takes 1,000 records/s (100 games at 10 Hz)"
  type        = number
  default     = 2
}

variable "retention_hours" {
  description = "How long the streams keep records (24 to 8760): longer than the longest game plus the archiver's worst lag (docs/operations.md#retention)"
  type        = number
  default     = 168
}
