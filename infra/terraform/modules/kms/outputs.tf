output "key_arns" {
  description = "ARN of each key, by purpose."
  value       = { for k, v in aws_kms_key.this : k => v.arn }
}

output "key_ids" {
  description = "Id of each key, by purpose."
  value       = { for k, v in aws_kms_key.this : k => v.key_id }
}

output "aliases" {
  description = "Alias of each key, by purpose."
  value       = { for k, v in aws_kms_alias.this : k => v.name }
}
