variable "name" {
  description = "Name of the EKS cluster."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name: 2 to 39 characters, lowercase letters, digits and dashes, starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane (the cluster autoscaler's image tag should match it)."
  type        = string
  default     = "1.31"

  validation {
    condition     = can(regex("^1\\.(29|3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version: a supported minor such as 1.31 (1.29 or later)."
  }
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets of the control plane's network interfaces and of every node group (at least two zones)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "private_subnet_ids: at least two subnets in different availability zones."
  }
}

variable "endpoint_public_access" {
  description = "Expose the Kubernetes API on a public endpoint as well (limited to public_access_cidrs). Off: the API is reachable from inside the VPC only."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "Addresses allowed on the public API endpoint when endpoint_public_access is true (the operators' and CI's egress addresses)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "public_access_cidrs: valid IPv4 CIDRs, and never 0.0.0.0/0."
  }
}

variable "secrets_kms_key_arn" {
  description = "KMS key for envelope encryption of Kubernetes Secrets in etcd."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.secrets_kms_key_arn))
    error_message = "secrets_kms_key_arn must be a KMS key ARN."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key of the control plane's CloudWatch log group (its policy must allow CloudWatch Logs)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.logs_kms_key_arn))
    error_message = "logs_kms_key_arn must be a KMS key ARN."
  }
}

variable "ebs_kms_key_arn" {
  description = "KMS key of the nodes' root volumes (its policy must allow the EC2 Auto Scaling service-linked role)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.ebs_kms_key_arn))
    error_message = "ebs_kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the control plane logs (api, audit, authenticator, controllerManager, scheduler)."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: a CloudWatch retention value of at least one year (365, 400, 545, 731, ...)."
  }
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group (gateway, services, Qdrant, system pods)."
  type        = list(string)
  default     = ["m6i.xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) > 0 && alltrue([for t in var.cpu_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", t))])
    error_message = "cpu_instance_types: one or more EC2 instance types such as m6i.xlarge."
  }
}

variable "cpu_min_size" {
  description = "Least nodes of the CPU group (at least 2: system pods and the gateway survive a node loss)."
  type        = number
  default     = 2

  validation {
    condition     = var.cpu_min_size >= 2
    error_message = "cpu_min_size must be at least 2."
  }
}

variable "cpu_max_size" {
  description = "Most nodes of the CPU group."
  type        = number
  default     = 6

  validation {
    condition     = var.cpu_max_size >= 2 && var.cpu_max_size <= 100
    error_message = "cpu_max_size must be between 2 and 100."
  }
}

variable "cpu_disk_size_gib" {
  description = "Root volume of CPU nodes, GiB."
  type        = number
  default     = 50

  validation {
    condition     = var.cpu_disk_size_gib >= 20 && var.cpu_disk_size_gib <= 1000
    error_message = "cpu_disk_size_gib must be between 20 and 1000."
  }
}

variable "gpu_serving_pool" {
  description = "Name of the on-demand GPU pool for Triton (node label llmops.dev/gpu-pool; also the id of the pool in the platform)."
  type        = string
  default     = "a10g-serving"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.gpu_serving_pool))
    error_message = "gpu_serving_pool must be a DNS label (a Kubernetes label value)."
  }
}

variable "gpu_serving_instance_types" {
  description = "Instance types of the serving GPU group; keep one GPU model and count per group (g5: NVIDIA A10G)."
  type        = list(string)
  default     = ["g5.2xlarge"]

  validation {
    condition     = length(var.gpu_serving_instance_types) > 0 && alltrue([for t in var.gpu_serving_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p4d|p4de|p5|p5e|p5en)\\.[a-z0-9]+$", t))])
    error_message = "gpu_serving_instance_types: NVIDIA GPU instance types (g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en) the AL2023 NVIDIA AMI supports."
  }
}

variable "gpu_serving_max_size" {
  description = "Most nodes of the serving GPU group (it scales from zero)."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_serving_max_size >= 1 && var.gpu_serving_max_size <= 100
    error_message = "gpu_serving_max_size must be between 1 and 100."
  }
}

variable "gpu_training_pool" {
  description = "Name of the spot GPU pool for training jobs (node label llmops.dev/gpu-pool; the pool id given to `llmops worker --pool`)."
  type        = string
  default     = "a10g-spot"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.gpu_training_pool))
    error_message = "gpu_training_pool must be a DNS label (a Kubernetes label value)."
  }
}

variable "gpu_training_instance_types" {
  description = "Instance types of the spot training group: several types with the same GPU model and count widen the spot capacity pools (g5.12xlarge and g5.24xlarge: 4 x A10G)."
  type        = list(string)
  default     = ["g5.12xlarge", "g5.24xlarge"]

  validation {
    condition     = length(var.gpu_training_instance_types) > 0 && alltrue([for t in var.gpu_training_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p4d|p4de|p5|p5e|p5en)\\.[a-z0-9]+$", t))])
    error_message = "gpu_training_instance_types: NVIDIA GPU instance types (g4dn, g5, g6, g6e, gr6, p4d, p4de, p5, p5e, p5en) the AL2023 NVIDIA AMI supports."
  }
}

variable "gpu_training_max_size" {
  description = "Most nodes of the spot training group (it scales from zero)."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_training_max_size >= 1 && var.gpu_training_max_size <= 100
    error_message = "gpu_training_max_size must be between 1 and 100."
  }
}

variable "gpu_disk_size_gib" {
  description = "Root volume of GPU nodes, GiB (CUDA images and model weights are large)."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_disk_size_gib >= 100 && var.gpu_disk_size_gib <= 4000
    error_message = "gpu_disk_size_gib must be between 100 and 4000."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "cluster_admin_arns" {
  description = "IAM roles or users given cluster-admin through EKS access entries (besides whoever creates the cluster)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.cluster_admin_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/", a))])
    error_message = "cluster_admin_arns: IAM role or user ARNs."
  }
}
