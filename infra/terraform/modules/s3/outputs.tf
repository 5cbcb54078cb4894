output "bucket_names" {
  description = "Data bucket names by purpose."
  value       = { for k, v in aws_s3_bucket.data : k => v.id }
}

output "bucket_arns" {
  description = "Data bucket ARNs by purpose."
  value       = { for k, v in aws_s3_bucket.data : k => v.arn }
}

output "artifacts_bucket" {
  description = "Name of the artifacts bucket."
  value       = aws_s3_bucket.data["artifacts"].id
}

output "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  value       = aws_s3_bucket.data["artifacts"].arn
}

output "log_bucket" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.id
}
