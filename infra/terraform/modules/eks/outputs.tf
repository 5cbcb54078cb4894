output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "URL of the Kubernetes API."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA certificate of the Kubernetes API."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the control plane and nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_security_group_id" {
  description = "Security group every node carries; databases admit it."
  value       = aws_security_group.nodes.id
}

output "node_role_arn" {
  description = "IAM role of the nodes."
  value       = aws_iam_role.node.arn
}

output "oidc_provider_arn" {
  description = "ARN of the IAM OIDC provider (IRSA trust policies federate with it)."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_issuer" {
  description = "OIDC issuer without https:// (the prefix of IRSA condition keys)."
  value       = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

output "gpu_serving_pool" {
  description = "Value of llmops.dev/gpu-pool on the serving GPU nodes."
  value       = var.gpu_serving_pool
}

output "gpu_training_pool" {
  description = "Value of llmops.dev/gpu-pool on the spot training GPU nodes."
  value       = var.gpu_training_pool
}

output "node_group_names" {
  description = "Managed node groups by role."
  value = {
    cpu          = aws_eks_node_group.cpu.node_group_name
    gpu_serving  = aws_eks_node_group.gpu_serving.node_group_name
    gpu_training = aws_eks_node_group.gpu_training.node_group_name
  }
}
