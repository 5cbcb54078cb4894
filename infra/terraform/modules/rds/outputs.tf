output "address" {
  description = "Host name of the instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the instance."
  value       = aws_db_instance.this.port
}

output "database_name" {
  description = "Database the platform uses."
  value       = var.database_name
}

output "instance_id" {
  description = "Identifier of the DB instance."
  value       = aws_db_instance.this.identifier
}

output "secret_arn" {
  description = "Secrets Manager secret with the credentials and the `url` key (the platform's database_url)."
  value       = aws_secretsmanager_secret_version.this.arn # the version: readers wait until the value is written
}

output "security_group_id" {
  description = "Security group of the instance."
  value       = aws_security_group.this.id
}
