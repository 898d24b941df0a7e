# State in the bucket `bootstrap/` made, locked with a lock object beside it (no DynamoDB).
# A backend block takes no variables: the bucket and its region come from
#   terraform init -backend-config=backend.hcl      (copy backend.hcl.example)
# or from `-backend-config="bucket=..."` arguments (the deploy workflow).
terraform {
  backend "s3" {
    key          = "coinlake/prod/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
