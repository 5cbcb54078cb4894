variable "name_prefix" {
  description = "Prefix of the bucket names (<prefix>-<bucket>, <prefix>-logs); bucket names are global, so include the account or a random suffix."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{2,40}$", var.name_prefix))
    error_message = "name_prefix: 3 to 41 characters, lowercase letters, digits and dashes."
  }
}

variable "buckets" {
  description = "Data buckets to create: `artifacts` holds everything the platform stores (artifacts_url = s3://<prefix>-artifacts/artifacts); `files` is for datasets exchanged outside the API."
  type        = set(string)
  default     = ["artifacts", "files"]

  validation {
    condition     = contains(var.buckets, "artifacts") && alltrue([for b in var.buckets : can(regex("^[a-z0-9][a-z0-9-]{1,18}$", b)) && b != "logs"])
    error_message = "buckets: must include artifacts; names are 2 to 19 lowercase letters, digits and dashes, and not logs (reserved for the access-log bucket)."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the data buckets' default encryption (SSE-KMS with bucket keys)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "noncurrent_version_days" {
  description = "Days a replaced or deleted object version is kept before it expires."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days must be between 1 and 3650."
  }
}

variable "access_log_retention_days" {
  description = "Days the S3 access logs are kept."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_retention_days >= 90 && var.access_log_retention_days <= 3650
    error_message = "access_log_retention_days must be between 90 and 3650."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete non-empty buckets (trials only: it deletes every artifact)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every bucket."
  type        = map(string)
  default     = {}
}
