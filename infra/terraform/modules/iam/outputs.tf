output "llmops_role_arn" {
  description = "Role of the platform's service account (eks.amazonaws.com/role-arn annotation)."
  value       = aws_iam_role.this["llmops"].arn
}

output "training_role_arn" {
  description = "Role of the training pods' service account in the training namespace."
  value       = aws_iam_role.this["training"].arn
}

output "cluster_autoscaler_role_arn" {
  description = "Role of kube-system/cluster-autoscaler."
  value       = aws_iam_role.this["cluster_autoscaler"].arn
}

output "ebs_csi_role_arn" {
  description = "Role of kube-system/ebs-csi-controller-sa."
  value       = aws_iam_role.this["ebs_csi"].arn
}
