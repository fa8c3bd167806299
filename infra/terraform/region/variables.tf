variable "prefix" {
  type = string
}

variable "game_regions" {
  type = list(string)
}

variable "game_events_shards" {
  type = number
}

variable "tick_shards" {
  type = number
}

variable "retention_hours" {
  type = number
}
