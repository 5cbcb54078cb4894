output "region" {
  description = "AWS region."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "kubeconfig_command" {
  description = "Adds the cluster to ~/.kube/config."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}

locals {
  gateway_service           = "${local.release_name}-${var.mode == "split" ? "gateway" : "server"}"
  gateway_hint_ingress      = "https://${var.gateway_ingress.host}/v1 (once DNS points at the ingress: kubectl -n ${var.namespace} get ingress)"
  gateway_hint_port_forward = "kubectl -n ${var.namespace} port-forward svc/${local.gateway_service} 8080:8080, then http://127.0.0.1:8080/v1"
}

output "gateway_url_hint" {
  description = "Where the OpenAI-compatible API answers (base_url of the SDKs)."
  value       = var.gateway_ingress.enabled ? local.gateway_hint_ingress : local.gateway_hint_port_forward
}

output "artifacts_url" {
  description = "The platform's artifacts_url."
  value       = local.artifacts_url
}

output "bucket_names" {
  description = "Data buckets by purpose, and the access-log bucket."
  value       = merge(module.s3.bucket_names, { logs = module.s3.log_bucket })
}

output "ecr_repositories" {
  description = "Image repositories to push to (docker push <url>:<tag>)."
  value       = { for k, v in aws_ecr_repository.this : k => v.repository_url }
}

output "database_endpoint" {
  description = "PostgreSQL host (private)."
  value       = module.rds.address
}

output "redis_endpoint" {
  description = "Redis primary host (private, TLS)."
  value       = module.redis.primary_endpoint
}

output "secret_arns" {
  description = "Secrets Manager secrets: the platform's own (app), PostgreSQL's and Redis's."
  value = {
    app      = aws_secretsmanager_secret.app.arn
    database = module.rds.secret_arn
    redis    = module.redis.secret_arn
  }
}

output "operator_token_command" {
  description = "Prints the operator token (bearer token of /admin/v1)."
  value       = "aws secretsmanager get-secret-value --region ${var.region} --secret-id ${aws_secretsmanager_secret.app.arn} --query SecretString --output text | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"operator-token\"])'"
}

output "gpu_pools" {
  description = "Values of llmops.dev/gpu-pool: define pools of these ids in /admin/v1/gpu_pools."
  value = {
    serving  = module.eks.gpu_serving_pool
    training = module.eks.gpu_training_pool
  }
}

output "iam_roles" {
  description = "IRSA roles."
  value = {
    llmops             = module.iam.llmops_role_arn
    training           = module.iam.training_role_arn
    cluster_autoscaler = module.iam.cluster_autoscaler_role_arn
    ebs_csi            = module.iam.ebs_csi_role_arn
  }
}

output "nat_public_ips" {
  description = "Egress addresses of the cluster (allow-list them at Stripe, upstreams, webhooks' receivers)."
  value       = module.vpc.nat_public_ips
}
