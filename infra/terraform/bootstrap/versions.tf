terraform {
  # S3 native state locking (`use_lockfile`) is generally available from 1.11.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Deliberately no backend: the state bucket cannot hold the state that creates it.
  # This configuration's own state stays local (terraform.tfstate here, or wherever
  # `-state` points); keep it safe, it is small and rarely changes.
}
