# tickcast on Kinesis and DynamoDB, one stack per AWS region: the streams (game-events, a tick
# stream per game region, the deployment's secrets stream), the projection tables (TTL on), the
# shard lease table, and an IAM policy per role. Each region's deployment is independent: its
# roles use kinesis://PREFIX?region=R and dynamodb://PREFIX?region=R with R its own region.
#
#   terraform init && terraform apply -var 'game_regions=["us-east-1","eu-west-1"]'
#
# then run the roles with the policies attached to their instance or pod roles (outputs), as in
# docs/kinesis.md. `tickcast streams create` and `tickcast tables create` are then not needed.

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
}

module "us_east_1" {
  source    = "./region"
  providers = { aws = aws.us_east_1 }

  prefix             = var.prefix
  game_regions       = var.game_regions
  game_events_shards = var.game_events_shards
  tick_shards        = var.tick_shards
  retention_hours    = var.retention_hours
}

module "eu_west_1" {
  source    = "./region"
  providers = { aws = aws.eu_west_1 }

  prefix             = var.prefix
  game_regions       = var.game_regions
  game_events_shards = var.game_events_shards
  tick_shards        = var.tick_shards
  retention_hours    = var.retention_hours
}

output "policies" {
  description = "Per AWS region, the IAM policy ARN of each role"
  value = {
    "us-east-1" = module.us_east_1.policies
    "eu-west-1" = module.eu_west_1.policies
  }
}
