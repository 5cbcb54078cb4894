variable "name" {
  description = "Identifier of the DB instance and prefix of its companions."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,50}[a-z0-9]$", var.name)) && !can(regex("--", var.name))
    error_message = "name: 3 to 52 characters, lowercase letters, digits and single dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the DB subnet group (at least two zones)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: at least two subnets in different availability zones."
  }
}

variable "allowed_security_group_id" {
  description = "The only security group admitted on port 5432 (the EKS nodes')."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.allowed_security_group_id))
    error_message = "allowed_security_group_id must look like sg-0123abcd."
  }
}

variable "engine_version" {
  description = "PostgreSQL version: 16 (the newest 16.x RDS offers) or a pinned 16.x."
  type        = string
  default     = "16"

  validation {
    condition     = can(regex("^16(\\.[0-9]+)?$", var.engine_version))
    error_message = "engine_version: PostgreSQL 16 or 16.x."
  }
}

variable "instance_class" {
  description = "DB instance class (Graviton m/r classes are the cheapest per vCPU; burstable t classes are for trials)."
  type        = string
  default     = "db.m7g.large"

  validation {
    condition     = can(regex("^db\\.(t3|t4g|m5|m6g|m6gd|m6i|m6id|m7g|m7i|r5|r6g|r6gd|r6i|r6id|r7g|r7i|x2g)\\.[a-z0-9]+$", var.instance_class))
    error_message = "instance_class: an RDS for PostgreSQL class such as db.m7g.large or db.t4g.medium."
  }
}

variable "allocated_storage_gib" {
  description = "Initial gp3 storage, GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.allocated_storage_gib >= 20 && var.allocated_storage_gib <= 65536
    error_message = "allocated_storage_gib must be between 20 and 65536."
  }
}

variable "max_allocated_storage_gib" {
  description = "Storage autoscaling ceiling, GiB (0 turns autoscaling off)."
  type        = number
  default     = 500

  validation {
    condition     = var.max_allocated_storage_gib == 0 || (var.max_allocated_storage_gib >= 20 && var.max_allocated_storage_gib <= 65536)
    error_message = "max_allocated_storage_gib: 0 or between 20 and 65536."
  }
}

variable "multi_az" {
  description = "A synchronous standby in a second zone with automatic failover (doubles the instance cost)."
  type        = bool
  default     = true
}

variable "database_name" {
  description = "Database the platform uses."
  type        = string
  default     = "llmops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,62}$", var.database_name))
    error_message = "database_name: lowercase letters, digits and underscores, starting with a letter, at most 63."
  }
}

variable "username" {
  description = "Master user name (the platform connects as it in the example; see infra/README.md)."
  type        = string
  default     = "llmops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{0,15}$", var.username)) && !contains(["postgres", "rdsadmin", "admin"], var.username)
    error_message = "username: lowercase, 1 to 16 characters, not a reserved name."
  }
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "deletion_protection" {
  description = "Refuse to delete the instance (turn off deliberately before a destroy)."
  type        = bool
  default     = true
}

variable "monitoring_interval" {
  description = "Enhanced monitoring interval, seconds."
  type        = number
  default     = 60

  validation {
    condition     = contains([1, 5, 10, 15, 30, 60], var.monitoring_interval)
    error_message = "monitoring_interval: 1, 5, 10, 15, 30 or 60 (enhanced monitoring stays on)."
  }
}

variable "performance_insights_retention_days" {
  description = "Performance Insights retention: 7 (free) or a multiple of 31 up to 731."
  type        = number
  default     = 7

  validation {
    condition     = var.performance_insights_retention_days == 7 || (var.performance_insights_retention_days % 31 == 0 && var.performance_insights_retention_days <= 731) || var.performance_insights_retention_days == 731
    error_message = "performance_insights_retention_days: 7, a multiple of 31, or 731."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the storage, snapshots and Performance Insights."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the Secrets Manager secret holding the password and URL."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key of the exported PostgreSQL logs' CloudWatch log groups."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.logs_kms_key_arn))
    error_message = "logs_kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the exported PostgreSQL logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: a CloudWatch retention value of at least one year (365, 400, 545, 731, ...)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
