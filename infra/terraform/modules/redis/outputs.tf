output "primary_endpoint" {
  description = "Host name of the primary (follows failover)."
  value       = aws_elasticache_replication_group.this.primary_endpoint_address
}

output "reader_endpoint" {
  description = "Host name balancing over the replicas."
  value       = aws_elasticache_replication_group.this.reader_endpoint_address
}

output "port" {
  description = "Port of the replication group."
  value       = 6379
}

output "secret_arn" {
  description = "Secrets Manager secret with the AUTH token and the `url` key (the platform's redis_url)."
  value       = aws_secretsmanager_secret_version.this.arn # the version: readers wait until the value is written
}

output "security_group_id" {
  description = "Security group of the replication group."
  value       = aws_security_group.this.id
}
