# --- account and network --------------------------------------------------------

variable "region" {
  description = "AWS region of everything (pick one with the GPU instance types below and enough GPU quota)."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-east-1."
  }
}

variable "name" {
  description = "Name of the environment: the cluster, database, cache and resource name prefix."
  type        = string
  default     = "llmops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}[a-z0-9]$", var.name)) && !can(regex("--", var.name))
    error_message = "name: 3 to 22 characters, lowercase letters, digits and single dashes, starting with a letter."
  }
}

variable "availability_zone_suffixes" {
  description = "Zones to use, as letters after the region name (a, b, c: us-east-1a, …); pick zones that offer the GPU instance types."
  type        = list(string)
  default     = ["a", "b", "c"]

  validation {
    condition     = length(var.availability_zone_suffixes) >= 2 && length(var.availability_zone_suffixes) <= 6 && alltrue([for s in var.availability_zone_suffixes : can(regex("^[a-z]$", s))])
    error_message = "availability_zone_suffixes: 2 to 6 single letters."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (/16 to /20)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway instead of one per zone (trials: saves about 65 USD a month per zone, loses egress when that zone fails)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to every AWS resource (besides app.kubernetes.io/part-of and environment)."
  type        = map(string)
  default     = {}
}

# --- cluster ------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes version (the chart needs 1.31 or later; cluster_autoscaler_chart_version follows it)."
  type        = string
  default     = "1.31"

  validation {
    condition     = can(regex("^1\\.(3[1-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be 1.31 or later (the llmops chart's kubeVersion)."
  }
}

variable "cluster_endpoint_public_access" {
  description = "Expose the Kubernetes API publicly, limited to cluster_public_access_cidrs. Off: run Terraform and kubectl from inside the VPC (VPN, bastion, CI runner there)."
  type        = bool
  default     = false
}

variable "cluster_public_access_cidrs" {
  description = "Addresses allowed on the public API endpoint (the operators' egress /32s)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_public_access_cidrs : can(cidrhost(c, 0)) && c != "0.0.0.0/0"])
    error_message = "cluster_public_access_cidrs: valid IPv4 CIDRs, and never 0.0.0.0/0."
  }
}

variable "cluster_admin_arns" {
  description = "IAM roles or users made cluster admins (besides the identity that runs the first apply)."
  type        = list(string)
  default     = []
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group."
  type        = list(string)
  default     = ["m6i.xlarge"]
}

variable "cpu_min_size" {
  description = "Least CPU nodes."
  type        = number
  default     = 3

  validation {
    condition     = var.cpu_min_size >= 2
    error_message = "cpu_min_size must be at least 2."
  }
}

variable "cpu_max_size" {
  description = "Most CPU nodes."
  type        = number
  default     = 8

  validation {
    condition     = var.cpu_max_size >= 2
    error_message = "cpu_max_size must be at least 2."
  }
}

variable "gpu_serving_pool" {
  description = "Pool name of the on-demand GPU nodes Triton runs on (node label llmops.dev/gpu-pool)."
  type        = string
  default     = "a10g-serving"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.gpu_serving_pool))
    error_message = "gpu_serving_pool must be a DNS label."
  }
}

variable "gpu_serving_instance_types" {
  description = "Instance types of the serving GPU group (one GPU model per group)."
  type        = list(string)
  default     = ["g5.2xlarge"]
}

variable "gpu_serving_max_size" {
  description = "Most serving GPU nodes (the group scales from zero)."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_serving_max_size >= 1
    error_message = "gpu_serving_max_size must be at least 1."
  }
}

variable "gpu_training_pool" {
  description = "Pool name of the spot GPU nodes training Jobs run on (node label llmops.dev/gpu-pool; the id of the pool in /admin/v1/gpu_pools)."
  type        = string
  default     = "a10g-spot"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.gpu_training_pool))
    error_message = "gpu_training_pool must be a DNS label."
  }
}

variable "gpu_training_instance_types" {
  description = "Spot instance types of the training group (same GPU model and count)."
  type        = list(string)
  default     = ["g5.12xlarge", "g5.24xlarge"]
}

variable "gpu_training_max_size" {
  description = "Most spot training nodes (the group scales from zero)."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_training_max_size >= 1
    error_message = "gpu_training_max_size must be at least 1."
  }
}

variable "cluster_autoscaler_chart_version" {
  description = "Version of the cluster-autoscaler chart (its appVersion must match kubernetes_version's minor: 9.38.0 is 1.31.0)."
  type        = string
  default     = "9.38.0"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.cluster_autoscaler_chart_version))
    error_message = "cluster_autoscaler_chart_version must be a chart version such as 9.38.0."
  }
}

variable "nvidia_device_plugin_chart_version" {
  description = "Version of NVIDIA's k8s-device-plugin chart (advertises nvidia.com/gpu on GPU nodes)."
  type        = string
  default     = "0.17.1"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.nvidia_device_plugin_chart_version))
    error_message = "nvidia_device_plugin_chart_version must be a chart version such as 0.17.1."
  }
}

# --- data stores ----------------------------------------------------------------------

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.m7g.large"
}

variable "db_multi_az" {
  description = "RDS Multi-AZ standby (off only for trials)."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "RDS deletion protection (turn off, apply, then destroy)."
  type        = bool
  default     = true
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.r7g.large"
}

variable "bucket_prefix" {
  description = "Prefix of the bucket names; empty: <name>-<account id>."
  type        = string
  default     = ""

  validation {
    condition     = var.bucket_prefix == "" || can(regex("^[a-z0-9][a-z0-9-]{2,40}$", var.bucket_prefix))
    error_message = "bucket_prefix: empty, or 3 to 41 lowercase letters, digits and dashes."
  }
}

variable "s3_force_destroy" {
  description = "Let destroy delete non-empty buckets (trials only)."
  type        = bool
  default     = false
}

# --- the platform ------------------------------------------------------------------

variable "namespace" {
  description = "Namespace of the llmops release."
  type        = string
  default     = "llmops"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS label."
  }
}

variable "training_namespace" {
  description = "Namespace of the training Jobs the GPU workers create."
  type        = string
  default     = "llmops-training"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.training_namespace))
    error_message = "training_namespace must be a DNS label."
  }
}

variable "mode" {
  description = "`split`: the gateway and one Deployment per service; `single`: one all-in-one Deployment."
  type        = string
  default     = "split"

  validation {
    condition     = contains(["split", "single"], var.mode)
    error_message = "mode must be split or single."
  }
}

variable "create_ecr_repositories" {
  description = "Create ECR repositories for the llmops, Triton and training images."
  type        = bool
  default     = true
}

variable "image_repository" {
  description = "Repository of the llmops image; empty: the ECR repository created here."
  type        = string
  default     = ""
}

variable "image_tag" {
  description = "Tag of the llmops image (pushed before the apply; ECR tags are immutable)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "image_tag must be a valid image tag."
  }
}

variable "triton_image_repository" {
  description = "Repository of the Triton image (infra/docker/Dockerfile.triton); empty: the ECR repository created here."
  type        = string
  default     = ""
}

variable "triton_image_tag" {
  description = "Tag of the Triton image."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.triton_image_tag))
    error_message = "triton_image_tag must be a valid image tag."
  }
}

variable "triton_replicas" {
  description = "Triton pods (each asks for triton_gpu_count GPUs of the serving pool); size from the serving benchmark (infra/README.md)."
  type        = number
  default     = 1

  validation {
    condition     = var.triton_replicas >= 0 && var.triton_replicas <= 64
    error_message = "triton_replicas must be between 0 and 64."
  }
}

variable "triton_gpu_count" {
  description = "GPUs per Triton pod, on the serving GPU pool. 0: Triton runs on the CPU nodes and the GPU pool stays at zero (the shipped Triton image runs its models on the CPU; see infra/README.md)."
  type        = number
  default     = 1

  validation {
    condition     = var.triton_gpu_count >= 0 && var.triton_gpu_count <= 8
    error_message = "triton_gpu_count must be between 0 and 8."
  }
}

variable "qdrant_mode" {
  description = "`subchart`: Qdrant's official chart inside the release (one replica, a gp3 volume); `external`: a Qdrant you run (external_qdrant_url)."
  type        = string
  default     = "subchart"

  validation {
    condition     = contains(["subchart", "external"], var.qdrant_mode)
    error_message = "qdrant_mode must be subchart or external."
  }
}

variable "external_qdrant_url" {
  description = "gRPC URL of an external Qdrant (port 6334) when qdrant_mode is external."
  type        = string
  default     = ""

  validation {
    condition     = var.external_qdrant_url == "" || can(regex("^https?://[^/]+:[0-9]+$", var.external_qdrant_url))
    error_message = "external_qdrant_url: empty or http(s)://host:port."
  }
}

variable "external_qdrant_api_key" {
  description = "API key of the external Qdrant (empty: none). With the subchart a key is generated."
  type        = string
  default     = ""
  sensitive   = true
}

variable "stripe_api_key" {
  description = "Stripe secret key written into the app secret on its first creation (empty: no Stripe push). Later changes: edit the secret in Secrets Manager and apply again."
  type        = string
  default     = ""
  sensitive   = true
}

variable "gateway_ingress" {
  description = "The chart's gateway Ingress (needs an ingress controller, e.g. the AWS Load Balancer Controller with class `alb`; not installed here). Disabled: reach the gateway with kubectl port-forward."
  type = object({
    enabled         = bool
    class_name      = optional(string, "")
    host            = optional(string, "")
    annotations     = optional(map(string), {})
    tls_secret_name = optional(string, "")
  })
  default = { enabled = false }

  validation {
    condition     = !var.gateway_ingress.enabled || can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.gateway_ingress.host))
    error_message = "gateway_ingress.host must be a DNS name when the ingress is enabled."
  }
}

variable "gpu_worker_enabled" {
  description = "Run the chart's GPU training worker (llmops worker --gpu-type … --pool <gpu_training_pool>); needs training_image."
  type        = bool
  default     = false
}

variable "gpu_worker_gpu_type" {
  description = "GPU type the worker runs jobs of (as in /admin/v1/gpu_pools; a10g for g5 instances)."
  type        = string
  default     = "a10g"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._-]{0,63}$", var.gpu_worker_gpu_type))
    error_message = "gpu_worker_gpu_type: lower-case letters, digits, ., _ and -."
  }
}

variable "training_image" {
  description = "The GPU training image (Python with infra/recipes/torch-peft's requirements and the AWS CLI); required when gpu_worker_enabled."
  type        = string
  default     = ""
}
