# Customer managed KMS keys, one per purpose, with yearly automatic rotation.
#
# Key policy: the account root delegates use of each key to IAM (so roles are
# granted a key in their own IAM policies, least privilege there), plus the
# two AWS service principals that cannot act through IAM delegation:
# CloudWatch Logs (log group encryption) and the EC2 Auto Scaling
# service-linked role (encrypted EBS volumes of node groups).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  autoscaling_role_arn = "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

data "aws_iam_policy_document" "key" {
  for_each = var.keys

  # In a key policy "Resource": "*" means "this key"; the root statement is
  # AWS's default key policy, delegating every use of the key to IAM.
  #checkov:skip=CKV_AWS_109:Key policy: Resource * is this key only; the root statement delegates to IAM (AWS's default key policy)
  #checkov:skip=CKV_AWS_111:Key policy: Resource * is this key only; the root statement delegates to IAM (AWS's default key policy)
  #checkov:skip=CKV_AWS_356:Key policy: Resource * is this key only, not every resource
  statement {
    sid       = "AccountRootDelegatesToIAM"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  dynamic "statement" {
    for_each = each.value.allow_cloudwatch_logs ? [1] : []
    content {
      sid       = "CloudWatchLogsOfThisAccount"
      effect    = "Allow"
      actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
      resources = ["*"]

      principals {
        type        = "Service"
        identifiers = ["logs.${local.region}.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "kms:EncryptionContext:aws:logs:arn"
        values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.value.allow_autoscaling ? [1] : []
    content {
      sid       = "AutoScalingUsesKeyForEbs"
      effect    = "Allow"
      actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [local.autoscaling_role_arn]
      }
    }
  }

  dynamic "statement" {
    for_each = each.value.allow_autoscaling ? [1] : []
    content {
      sid       = "AutoScalingGrantsForEbs"
      effect    = "Allow"
      actions   = ["kms:CreateGrant"]
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = [local.autoscaling_role_arn]
      }

      condition {
        test     = "Bool"
        variable = "kms:GrantIsForAWSResource"
        values   = ["true"]
      }
    }
  }
}

resource "aws_kms_key" "this" {
  for_each = var.keys

  description             = each.value.description
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key[each.key].json
  tags                    = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
}

resource "aws_kms_alias" "this" {
  for_each = var.keys

  name          = "alias/${var.name_prefix}-${each.key}"
  target_key_id = aws_kms_key.this[each.key].key_id
}
