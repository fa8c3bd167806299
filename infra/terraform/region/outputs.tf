output "policies" {
  description = "The IAM policy ARN of each role"
  value       = { for role, policy in aws_iam_policy.role : role => policy.arn }
}

output "log_url" {
  description = "TICKCAST_LOG for this region's roles"
  value       = "kinesis://${var.prefix}?region=${data.aws_region.current.name}"
}

output "store_url" {
  description = "TICKCAST_STORE (--store) for the edge and the projector"
  value       = "dynamodb://${var.prefix}?region=${data.aws_region.current.name}"
}
