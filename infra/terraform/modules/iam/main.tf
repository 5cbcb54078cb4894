# IAM roles for service accounts (IRSA), each trusted by exactly one service
# account of the cluster's OIDC provider:
#
#   llmops              the platform's pods (main and GPU worker accounts):
#                       read/write under the artifacts prefix, the bucket's KMS key through S3 only;
#   training            the training Jobs' pods (the `default` account of the
#                       training namespace): the same prefix, to stage inputs
#                       and upload outputs;
#   cluster_autoscaler  resize only this cluster's node groups;
#   ebs_csi             the EBS CSI driver (AWS managed policy) plus grants on
#                       the EBS key for encrypted volumes.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name

  subjects = {
    llmops             = [for s in var.service_accounts : "system:serviceaccount:${var.namespace}:${s}"]
    training           = ["system:serviceaccount:${var.training_namespace}:${var.training_service_account}"]
    cluster_autoscaler = ["system:serviceaccount:kube-system:cluster-autoscaler"]
    ebs_csi            = ["system:serviceaccount:kube-system:ebs-csi-controller-sa"]
  }

  prefix_arn = "${var.artifacts_bucket_arn}/${var.artifacts_prefix}/*"
}

data "aws_iam_policy_document" "assume" {
  for_each = local.subjects

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:sub"
      values   = each.value
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.subjects

  name               = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description        = "IRSA: ${join(", ", each.value)}"
  assume_role_policy = data.aws_iam_policy_document.assume[each.key].json
  tags               = var.tags
}

# --- artifact store (platform pods and training pods) ------------------------

data "aws_iam_policy_document" "artifacts" {
  statement {
    sid       = "ListArtifactsPrefix"
    actions   = ["s3:ListBucket"]
    resources = [var.artifacts_bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.artifacts_prefix}/*", var.artifacts_prefix, "${var.artifacts_prefix}/"]
    }
  }

  statement {
    sid       = "ListMultipartUploads"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [var.artifacts_bucket_arn]
  }

  statement {
    sid = "ReadWriteArtifacts"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = [local.prefix_arn]
  }

  statement {
    sid       = "ArtifactsKeyThroughS3"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.s3_kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_policy" "artifacts" {
  name_prefix = "${var.name_prefix}-artifacts-"
  description = "Read and write the artifacts bucket under ${var.artifacts_prefix}/ and use its KMS key through S3"
  policy      = data.aws_iam_policy_document.artifacts.json
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "artifacts" {
  for_each = toset(["llmops", "training"])

  role       = aws_iam_role.this[each.key].name
  policy_arn = aws_iam_policy.artifacts.arn
}

# --- cluster autoscaler -------------------------------------------------------

data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
}

data "aws_iam_policy_document" "cluster_autoscaler" {
  # Describe calls of Auto Scaling and EC2 support no resource-level
  # permissions: "*" is the only resource they take.
  statement {
    sid = "Discover"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"]
  }

  # Labels and taints of a group scaled to zero.
  statement {
    sid       = "ReadThisClustersNodegroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${var.cluster_name}/*/*"]
  }

  # EKS names a managed node group's Auto Scaling group eks-<node group>-<id>,
  # and this cluster's node groups are named <cluster>-…; the tag EKS puts on
  # them confirms the cluster.
  statement {
    sid = "ResizeThisClustersGroups"
    actions = [
      "autoscaling:SetDesiredCapacity",
      "autoscaling:TerminateInstanceInAutoScalingGroup",
    ]
    resources = ["arn:${local.partition}:autoscaling:${local.region}:${local.account_id}:autoScalingGroup:*:autoScalingGroupName/eks-${var.cluster_name}-*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${var.cluster_name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.this["cluster_autoscaler"].id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}

# --- EBS CSI driver -------------------------------------------------------------

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.this["ebs_csi"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

data "aws_iam_policy_document" "ebs_csi_kms" {
  statement {
    sid       = "GrantsForEncryptedVolumes"
    actions   = ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    resources = [var.ebs_kms_key_arn]

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }

  statement {
    sid       = "UseKeyForVolumes"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = [var.ebs_kms_key_arn]
  }
}

resource "aws_iam_role_policy" "ebs_csi_kms" {
  name   = "ebs-kms"
  role   = aws_iam_role.this["ebs_csi"].id
  policy = data.aws_iam_policy_document.ebs_csi_kms.json
}
