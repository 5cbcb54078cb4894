# An example environment: every module wired together and the llmops chart
# installed on the cluster. Copy this directory per environment (or use
# workspaces) and set terraform.tfvars (see terraform.tfvars.example).

data "aws_caller_identity" "current" {}

# The zones are named, not "the first N available": the set never changes
# under the configuration when AWS adds a zone.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = [for s in var.availability_zone_suffixes : "${var.region}${s}"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) == length(var.availability_zone_suffixes)
      error_message = "Some of availability_zone_suffixes are not available zones of this region for this account."
    }
  }
}

locals {
  azs           = sort(data.aws_availability_zones.selected.names)
  bucket_prefix = var.bucket_prefix != "" ? var.bucket_prefix : "${var.name}-${data.aws_caller_identity.current.account_id}"
}

module "kms" {
  source = "../../modules/kms"

  name_prefix = var.name
  keys = {
    eks     = { description = "${var.name}: Kubernetes Secrets envelope encryption" }
    ebs     = { description = "${var.name}: node and persistent volumes", allow_autoscaling = true }
    logs    = { description = "${var.name}: CloudWatch log groups", allow_cloudwatch_logs = true }
    rds     = { description = "${var.name}: PostgreSQL storage, snapshots, Performance Insights" }
    redis   = { description = "${var.name}: Redis at rest" }
    s3      = { description = "${var.name}: artifact and file buckets" }
    secrets = { description = "${var.name}: Secrets Manager secrets" }
    ecr     = { description = "${var.name}: container images" }
  }
}

module "vpc" {
  source = "../../modules/vpc"

  name                  = var.name
  cidr                  = var.vpc_cidr
  availability_zones    = local.azs
  single_nat_gateway    = var.single_nat_gateway
  cluster_name          = var.name
  flow_logs_kms_key_arn = module.kms.key_arns["logs"]
}

module "eks" {
  source = "../../modules/eks"

  name                   = var.name
  kubernetes_version     = var.kubernetes_version
  vpc_id                 = module.vpc.vpc_id
  private_subnet_ids     = module.vpc.private_subnet_ids
  endpoint_public_access = var.cluster_endpoint_public_access
  public_access_cidrs    = var.cluster_public_access_cidrs
  cluster_admin_arns     = var.cluster_admin_arns

  secrets_kms_key_arn = module.kms.key_arns["eks"]
  logs_kms_key_arn    = module.kms.key_arns["logs"]
  ebs_kms_key_arn     = module.kms.key_arns["ebs"]

  cpu_instance_types = var.cpu_instance_types
  cpu_min_size       = var.cpu_min_size
  cpu_max_size       = var.cpu_max_size

  gpu_serving_pool           = var.gpu_serving_pool
  gpu_serving_instance_types = var.gpu_serving_instance_types
  gpu_serving_max_size       = var.gpu_serving_max_size

  gpu_training_pool           = var.gpu_training_pool
  gpu_training_instance_types = var.gpu_training_instance_types
  gpu_training_max_size       = var.gpu_training_max_size
}

module "rds" {
  source = "../../modules/rds"

  name                      = var.name
  vpc_id                    = module.vpc.vpc_id
  subnet_ids                = module.vpc.private_subnet_ids
  allowed_security_group_id = module.eks.node_security_group_id
  instance_class            = var.db_instance_class
  multi_az                  = var.db_multi_az
  deletion_protection       = var.db_deletion_protection
  kms_key_arn               = module.kms.key_arns["rds"]
  secrets_kms_key_arn       = module.kms.key_arns["secrets"]
  logs_kms_key_arn          = module.kms.key_arns["logs"]
}

module "redis" {
  source = "../../modules/redis"

  name                      = var.name
  vpc_id                    = module.vpc.vpc_id
  subnet_ids                = module.vpc.private_subnet_ids
  allowed_security_group_id = module.eks.node_security_group_id
  node_type                 = var.redis_node_type
  kms_key_arn               = module.kms.key_arns["redis"]
  secrets_kms_key_arn       = module.kms.key_arns["secrets"]
  logs_kms_key_arn          = module.kms.key_arns["logs"]
}

module "s3" {
  source = "../../modules/s3"

  name_prefix   = local.bucket_prefix
  kms_key_arn   = module.kms.key_arns["s3"]
  force_destroy = var.s3_force_destroy
}

module "iam" {
  source = "../../modules/iam"

  name_prefix          = var.name
  cluster_name         = module.eks.cluster_name
  oidc_provider_arn    = module.eks.oidc_provider_arn
  oidc_issuer          = module.eks.oidc_issuer
  namespace            = var.namespace
  service_accounts     = [local.release_name, "${local.release_name}-gpu-worker"]
  training_namespace   = var.training_namespace
  artifacts_bucket_arn = module.s3.artifacts_bucket_arn
  artifacts_prefix     = local.artifacts_prefix
  s3_kms_key_arn       = module.kms.key_arns["s3"]
  ebs_kms_key_arn      = module.kms.key_arns["ebs"]
}

# The EBS CSI driver (persistent volumes: Qdrant's) needs its IRSA role, hence
# it is installed here rather than in the eks module.
resource "aws_eks_addon" "ebs_csi" {
  cluster_name                = module.eks.cluster_name
  addon_name                  = "aws-ebs-csi-driver"
  service_account_role_arn    = module.iam.ebs_csi_role_arn
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  depends_on = [module.eks] # its controller needs nodes to become active
}

# --- images -----------------------------------------------------------------------

locals {
  ecr_repositories = var.create_ecr_repositories ? toset(["llmops", "llmops-triton", "llmops-training"]) : toset([])
}

resource "aws_ecr_repository" "this" {
  for_each = local.ecr_repositories

  name                 = "${var.name}/${each.value}"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = module.kms.key_arns["ecr"]
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  for_each = aws_ecr_repository.this

  repository = each.value.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Expire untagged images after 14 days"
      selection    = { tagStatus = "untagged", countType = "sinceImagePushed", countUnit = "days", countNumber = 14 }
      action       = { type = "expire" }
    }]
  })
}

locals {
  image_repository        = var.image_repository != "" ? var.image_repository : try(aws_ecr_repository.this["llmops"].repository_url, "")
  triton_image_repository = var.triton_image_repository != "" ? var.triton_image_repository : try(aws_ecr_repository.this["llmops-triton"].repository_url, "")
}
