variable "name_prefix" {
  description = "Prefix of the role names."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9+=,.@_-]{1,30}$", var.name_prefix))
    error_message = "name_prefix: 2 to 31 characters allowed in IAM role names."
  }
}

variable "cluster_name" {
  description = "EKS cluster whose node groups the cluster autoscaler may resize (by their k8s.io/cluster-autoscaler/<name> tag)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-_]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be a valid EKS cluster name."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN."
  }
}

variable "oidc_issuer" {
  description = "The cluster's OIDC issuer without https:// (oidc.eks.<region>.amazonaws.com/id/<id>)."
  type        = string

  validation {
    condition     = !startswith(var.oidc_issuer, "https://") && length(var.oidc_issuer) > 0
    error_message = "oidc_issuer: the issuer host and path, without https://."
  }
}

variable "namespace" {
  description = "Namespace of the platform's release."
  type        = string
  default     = "llmops"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label."
  }
}

variable "service_accounts" {
  description = "Service accounts of the platform's pods in `namespace`: the chart's main account (gateway, services) and its GPU worker's (<release>-gpu-worker), which stages training inputs in S3."
  type        = list(string)
  default     = ["llmops", "llmops-gpu-worker"]

  validation {
    condition     = length(var.service_accounts) > 0 && alltrue([for s in var.service_accounts : can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", s))])
    error_message = "service_accounts: one or more DNS subdomain names."
  }
}

variable "training_namespace" {
  description = "Namespace the GPU workers create training Jobs in (training_kube_namespace); nothing else should run there."
  type        = string
  default     = "llmops-training"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.training_namespace))
    error_message = "training_namespace must be a DNS label."
  }
}

variable "training_service_account" {
  description = "Service account of the training pods: the Jobs the executor renders name none, so they run as `default`."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", var.training_service_account))
    error_message = "training_service_account must be a DNS subdomain name."
  }
}

variable "artifacts_bucket_arn" {
  description = "ARN of the artifacts bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.artifacts_bucket_arn))
    error_message = "artifacts_bucket_arn must be an S3 bucket ARN."
  }
}

variable "artifacts_prefix" {
  description = "Key prefix of artifacts_url (s3://<bucket>/<prefix>); the roles reach nothing outside it."
  type        = string
  default     = "artifacts"

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9._-]*(/[a-zA-Z0-9._-]+)*$", var.artifacts_prefix))
    error_message = "artifacts_prefix: a key prefix without leading or trailing slash."
  }
}

variable "s3_kms_key_arn" {
  description = "KMS key of the artifacts bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.s3_kms_key_arn))
    error_message = "s3_kms_key_arn must be a KMS key ARN."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key of persistent volumes (the EBS CSI driver encrypts with it)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.ebs_kms_key_arn))
    error_message = "ebs_kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags added to every role."
  type        = map(string)
  default     = {}
}
