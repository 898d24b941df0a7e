provider "aws" {
  region = var.region

  # On every resource of every module; modules add their own `tags` (var.tags) on top.
  default_tags {
    tags = {
      project     = var.project
      environment = var.environment
      managed-by  = "terraform"
    }
  }
}
