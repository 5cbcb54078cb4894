variable "name_prefix" {
  description = "Prefix of the keys' aliases (alias/<name_prefix>-<key>)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name_prefix))
    error_message = "name_prefix: 2 to 41 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "keys" {
  description = <<-EOT
    One customer managed key per purpose. allow_cloudwatch_logs lets CloudWatch Logs of this
    account and region use the key for log groups; allow_autoscaling lets the EC2 Auto Scaling
    service-linked role use it for the encrypted EBS volumes of node groups.
  EOT
  type = map(object({
    description           = string
    allow_cloudwatch_logs = optional(bool, false)
    allow_autoscaling     = optional(bool, false)
  }))

  validation {
    condition     = length(var.keys) > 0 && alltrue([for k in keys(var.keys) : can(regex("^[a-z][a-z0-9-]{0,30}$", k))])
    error_message = "keys: at least one key; names are lowercase letters, digits and dashes (at most 31)."
  }
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion completes."
  type        = number
  default     = 30

  validation {
    condition     = var.deletion_window_in_days >= 7 && var.deletion_window_in_days <= 30
    error_message = "deletion_window_in_days must be between 7 and 30 (AWS limits)."
  }
}

variable "tags" {
  description = "Tags added to every key."
  type        = map(string)
  default     = {}
}
