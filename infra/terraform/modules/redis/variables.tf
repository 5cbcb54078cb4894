variable "name" {
  description = "Replication group id and prefix of its companions."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,38}[a-z0-9]$", var.name)) && !can(regex("--", var.name))
    error_message = "name: 2 to 40 characters, lowercase letters, digits and single dashes, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC of the replication group."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Private subnets of the cache subnet group (at least two zones)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "subnet_ids: at least two subnets in different availability zones."
  }
}

variable "allowed_security_group_id" {
  description = "The only security group admitted on port 6379 (the EKS nodes')."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.allowed_security_group_id))
    error_message = "allowed_security_group_id must look like sg-0123abcd."
  }
}

variable "engine_version" {
  description = "Redis OSS engine version (7.x)."
  type        = string
  default     = "7.1"

  validation {
    condition     = can(regex("^7\\.[0-9]+$", var.engine_version))
    error_message = "engine_version: Redis 7.x, such as 7.1."
  }
}

variable "node_type" {
  description = "Cache node type (rate-limit state and cached answers: small; answers up to cache_max_entry_bytes each)."
  type        = string
  default     = "cache.r7g.large"

  validation {
    condition     = can(regex("^cache\\.(t3|t4g|m5|m6g|m7g|r5|r6g|r6gd|r7g)\\.[a-z0-9]+$", var.node_type))
    error_message = "node_type: an ElastiCache node type such as cache.r7g.large or cache.t4g.small."
  }
}

variable "num_cache_clusters" {
  description = "Nodes in the group: a primary and its replicas, spread over zones (at least 2 for automatic failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.num_cache_clusters >= 2 && var.num_cache_clusters <= 6
    error_message = "num_cache_clusters must be between 2 and 6 (Multi-AZ failover needs a replica)."
  }
}

variable "snapshot_retention_days" {
  description = "Days of daily snapshots kept."
  type        = number
  default     = 7

  validation {
    condition     = var.snapshot_retention_days >= 1 && var.snapshot_retention_days <= 35
    error_message = "snapshot_retention_days must be between 1 and 35."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the data at rest and snapshots."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "secrets_kms_key_arn" {
  description = "KMS key of the Secrets Manager secret holding the AUTH token and URL."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key of the slow log's CloudWatch log group."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.logs_kms_key_arn))
    error_message = "logs_kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the slow log."
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
