# The platform's secrets. Secrets Manager is where they live; the Kubernetes
# Secret the chart reads (secrets.existingSecret) is written from it on every
# apply:
#
#   database-url     module.rds's secret, key `url` (postgres://…?sslmode=require)
#   redis-url        module.redis's secret, key `url` (rediss://:<token>@…:6379)
#   jwt-secret, internal-secret, operator-token, stripe-api-key, qdrant-api-key
#                    the app secret below, generated once; change them in
#                    Secrets Manager, then `terraform apply` (and restart the
#                    pods: they read the Secret at start).

resource "random_password" "app" {
  for_each = toset(["jwt-secret", "internal-secret", "operator-token", "qdrant-api-key"])

  length  = 48
  special = false
}

resource "aws_secretsmanager_secret" "app" {
  #checkov:skip=CKV2_AWS_57:No automatic rotation: the JWT, internal and operator secrets are shared by every replica and read at start; rotating them is a deliberate change (edit, apply, restart) described in infra/README.md
  name_prefix             = "${var.name}/app-"
  description             = "${var.name}: the platform's own secrets (JWT, internal, operator token, Stripe, Qdrant)"
  kms_key_id              = module.kms.key_arns["secrets"]
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "app" {
  secret_id = aws_secretsmanager_secret.app.id
  secret_string = jsonencode({
    "jwt-secret"      = random_password.app["jwt-secret"].result
    "internal-secret" = random_password.app["internal-secret"].result
    "operator-token"  = random_password.app["operator-token"].result
    "stripe-api-key"  = var.stripe_api_key
    "qdrant-api-key"  = var.qdrant_mode == "subchart" ? random_password.app["qdrant-api-key"].result : var.external_qdrant_api_key
  })

  # Written once; from then on Secrets Manager is the source of truth (edits
  # made there survive applies and reach the Kubernetes Secret below).
  lifecycle {
    ignore_changes = [secret_string]
  }
}

data "aws_secretsmanager_secret_version" "database" {
  secret_id = module.rds.secret_arn
}

data "aws_secretsmanager_secret_version" "redis" {
  secret_id = module.redis.secret_arn
}

data "aws_secretsmanager_secret_version" "app" {
  secret_id = aws_secretsmanager_secret_version.app.arn
}

locals {
  app_secrets = jsondecode(data.aws_secretsmanager_secret_version.app.secret_string)

  # Optional keys are left out when empty: the chart then does not set them.
  platform_secret = merge(
    {
      "database-url"    = jsondecode(data.aws_secretsmanager_secret_version.database.secret_string)["url"]
      "redis-url"       = jsondecode(data.aws_secretsmanager_secret_version.redis.secret_string)["url"]
      "jwt-secret"      = local.app_secrets["jwt-secret"]
      "internal-secret" = local.app_secrets["internal-secret"]
      "operator-token"  = local.app_secrets["operator-token"]
    },
    { for k in ["stripe-api-key", "qdrant-api-key"] : k => local.app_secrets[k] if try(local.app_secrets[k], "") != "" },
  )
}

resource "kubernetes_secret_v1" "platform" {
  metadata {
    name      = "llmops"
    namespace = kubernetes_namespace_v1.llmops.metadata[0].name
  }

  type = "Opaque"
  data = local.platform_secret
}
