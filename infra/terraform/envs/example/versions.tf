terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.16"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.33"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # Remote state in S3 with a DynamoDB lock table, configured at init:
  #   terraform init -backend-config=backend.hcl      (see backend.hcl.example)
  # The state holds the generated database password, Redis token and platform
  # secrets: keep its bucket encrypted, versioned and readable by operators only.
  # For a throw-away trial with local state, delete this block.
  backend "s3" {}
}
