# EKS cluster: private API endpoint (public optional, CIDR-limited), Secrets
# encrypted with KMS, every control-plane log type to CloudWatch (KMS), an
# OIDC provider for IRSA, and three managed node groups:
#
#   cpu           on-demand, the gateway, services, Qdrant and system pods;
#   gpu_serving   on-demand NVIDIA nodes for Triton, scaling from zero;
#   gpu_training  spot NVIDIA nodes for training Jobs, scaling from zero.
#
# GPU nodes carry the taint nvidia.com/gpu=present:NoSchedule (only pods that
# tolerate it land there) and the label llmops.dev/gpu-pool=<pool>, the label
# the training executor selects (training_kube_pool_label) and the chart's
# Triton nodeSelector uses. Every node boots from a launch template that
# requires IMDSv2 and encrypts its root volume with KMS.

data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition

  gpu_taint = {
    key    = "nvidia.com/gpu"
    value  = "present"
    effect = "NO_SCHEDULE"
  }

  node_groups = {
    cpu          = { disk = var.cpu_disk_size_gib }
    gpu_serving  = { disk = var.gpu_disk_size_gib }
    gpu_training = { disk = var.gpu_disk_size_gib }
  }

  gpu_pools = {
    gpu_serving  = var.gpu_serving_pool
    gpu_training = var.gpu_training_pool
  }
}

# --- control plane ----------------------------------------------------------

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name_prefix        = "${var.name}-cluster-"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

data "aws_iam_policy_document" "cluster_kms" {
  statement {
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]
    resources = [var.secrets_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "cluster_kms" {
  name   = "encrypt-secrets"
  role   = aws_iam_role.cluster.id
  policy = data.aws_iam_policy_document.cluster_kms.json
}

# Created before the cluster so that EKS writes into a KMS-encrypted group with
# a retention instead of creating an unencrypted one that never expires.
resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = var.secrets_kms_key_arn
    }
  }

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  tags = var.tags

  depends_on = [
    aws_cloudwatch_log_group.cluster,
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_kms,
  ]
}

resource "aws_eks_access_entry" "admin" {
  for_each = toset(var.cluster_admin_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  tags          = var.tags
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = toset(var.cluster_admin_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admin]
}

# --- IRSA -------------------------------------------------------------------

data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
  tags            = var.tags
}

# --- nodes ------------------------------------------------------------------

data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name_prefix        = "${var.name}-node-"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryReadOnly",
  ])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.value}"
}

# The nodes' own security group, attached beside the cluster security group
# (which carries node-to-node and control-plane traffic). It has no rules: it
# is the identity the database and Redis security groups admit.
resource "aws_security_group" "nodes" {
  name_prefix = "${var.name}-nodes-"
  description = "EKS nodes of ${var.name}: the source RDS and ElastiCache admit"
  vpc_id      = var.vpc_id
  tags        = merge(var.tags, { Name = "${var.name}-nodes" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_launch_template" "node" {
  for_each = local.node_groups

  name_prefix            = "${var.name}-${replace(each.key, "_", "-")}-"
  description            = "EKS ${var.name} ${each.key} nodes: IMDSv2 only, encrypted root volume"
  update_default_version = true

  vpc_security_group_ids = [
    aws_eks_cluster.this.vpc_config[0].cluster_security_group_id,
    aws_security_group.nodes.id,
  ]

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = each.value.disk
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.ebs_kms_key_arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(var.tags, { Name = "${var.name}-${replace(each.key, "_", "-")}" })
  }

  tags = var.tags
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-cpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.cpu_instance_types

  scaling_config {
    min_size     = var.cpu_min_size
    desired_size = var.cpu_min_size
    max_size     = var.cpu_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["cpu"].id
    version = aws_launch_template.node["cpu"].latest_version
  }

  labels = {
    "llmops.dev/node-class" = "cpu"
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# Triton's nodes: on-demand (a reclaimed spot node would drop live traffic),
# from zero to gpu_serving_max_size.
resource "aws_eks_node_group" "gpu_serving" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-${var.gpu_serving_pool}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids
  ami_type        = "AL2023_x86_64_NVIDIA"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.gpu_serving_instance_types

  scaling_config {
    min_size     = 0
    desired_size = 0
    max_size     = var.gpu_serving_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["gpu_serving"].id
    version = aws_launch_template.node["gpu_serving"].latest_version
  }

  labels = {
    "llmops.dev/gpu-pool"   = var.gpu_serving_pool
    "llmops.dev/node-class" = "gpu-serving"
  }

  taint {
    key    = local.gpu_taint.key
    value  = local.gpu_taint.value
    effect = local.gpu_taint.effect
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# Training's nodes: spot (a reclaimed node costs the attempt, which the queue
# re-runs from its lease; see the README), from zero to gpu_training_max_size.
resource "aws_eks_node_group" "gpu_training" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name}-${var.gpu_training_pool}"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids
  ami_type        = "AL2023_x86_64_NVIDIA"
  capacity_type   = "SPOT"
  instance_types  = var.gpu_training_instance_types

  scaling_config {
    min_size     = 0
    desired_size = 0
    max_size     = var.gpu_training_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["gpu_training"].id
    version = aws_launch_template.node["gpu_training"].latest_version
  }

  labels = {
    "llmops.dev/gpu-pool"   = var.gpu_training_pool
    "llmops.dev/node-class" = "gpu-training"
  }

  taint {
    key    = local.gpu_taint.key
    value  = local.gpu_taint.value
    effect = local.gpu_taint.effect
  }

  tags = var.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# Scaling a group up from zero: the cluster autoscaler has no node to copy
# labels and taints from, so it reads them from these Auto Scaling group tags
# (and from eks:DescribeNodegroup). EKS does not copy node group labels onto
# the Auto Scaling group itself.
locals {
  gpu_group_asgs = {
    gpu_serving  = aws_eks_node_group.gpu_serving.resources[0].autoscaling_groups[0].name
    gpu_training = aws_eks_node_group.gpu_training.resources[0].autoscaling_groups[0].name
  }

  scale_from_zero_tags = merge([
    for group, pool in local.gpu_pools : {
      "${group}/label" = {
        group = group
        key   = "k8s.io/cluster-autoscaler/node-template/label/llmops.dev/gpu-pool"
        value = pool
      }
      "${group}/taint" = {
        group = group
        key   = "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu"
        value = "present:NoSchedule"
      }
    }
  ]...)
}

resource "aws_autoscaling_group_tag" "scale_from_zero" {
  for_each = local.scale_from_zero_tags

  autoscaling_group_name = local.gpu_group_asgs[each.value.group]

  tag {
    key                 = each.value.key
    value               = each.value.value
    propagate_at_launch = false
  }
}

# --- add-ons ----------------------------------------------------------------

# The VPC CNI enforces NetworkPolicies only when told to (the chart ships
# deny-by-default policies).
resource "aws_eks_addon" "this" {
  for_each = {
    vpc-cni    = jsonencode({ enableNetworkPolicy = "true" })
    kube-proxy = ""
    coredns    = ""
  }

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  configuration_values        = each.value != "" ? each.value : null
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = var.tags

  # coredns needs nodes to become active.
  depends_on = [aws_eks_node_group.cpu]
}
