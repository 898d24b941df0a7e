data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  # One entry per bucket: whether it keeps versions and after how many days its current
  # objects expire (null: never). Every other setting is the same for all six.
  buckets = {
    landing        = { versioned = true, expiration_days = var.landing_expiration_days }
    lake           = { versioned = true, expiration_days = null }
    rollups        = { versioned = true, expiration_days = null }
    athena-results = { versioned = false, expiration_days = var.athena_results_expiration_days }
    glue-scripts   = { versioned = true, expiration_days = null }
    logs           = { versioned = false, expiration_days = var.logs_expiration_days }
  }

  versioned = { for k, v in local.buckets : k => v if v.versioned }

  # Buckets with a policy: all of them when plain HTTP is denied, else only the logs bucket.
  with_policy = { for k, v in local.buckets : k => v if var.deny_insecure_transport || k == "logs" }

  # Every bucket but the logs bucket writes its server access logs to the logs bucket.
  logged = { for k, v in local.buckets : k => v if k != "logs" }
}

################################################################################
# The buckets: private, encrypted, owner-enforced, TLS only
################################################################################

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage and transfer costs; the landing data is transient and the lake can be rebuilt from it by the Glue job within its retention.
  #checkov:skip=CKV2_AWS_62:Event notifications are not a property of every bucket: the alerts module adds the one the pipeline needs (landing -> lambda_triggering_sns).
  #checkov:skip=CKV_AWS_18:Every bucket but logs sends its access logs to the logs bucket (aws_s3_bucket_logging.this; checkov does not match for_each instances of it). The logs bucket does not log itself: logging its own log deliveries would loop.
  #checkov:skip=CKV_AWS_21:landing, lake, rollups and glue-scripts are versioned (aws_s3_bucket_versioning.this; checkov does not match for_each instances of it). athena-results (re-creatable query results, kept 7 days) and logs (write-once, expiring) keep no versions on purpose.
  #checkov:skip=CKV_AWS_145:The data buckets use SSE-KMS (aws/s3). The logs bucket uses SSE-S3 because S3 server access logging can only deliver to a bucket with SSE-S3 default encryption.
  for_each = local.buckets

  bucket        = "${var.name_prefix}-${each.key}-${local.account_id}"
  force_destroy = var.force_destroy

  tags = merge(var.tags, { purpose = each.key })
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs disabled: the bucket owner owns every object (access logs are delivered under the
# bucket policy below, not through an ACL grant).
resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# Data buckets: SSE-KMS with the AWS-managed key `aws/s3` and S3 Bucket Keys (few KMS
# calls). Its key policy lets this account's principals use it through S3, so no reader or
# writer needs a kms:* grant. The logs bucket uses SSE-S3: S3 server access logging can
# only deliver to a bucket whose default encryption is SSE-S3.
resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = each.key == "logs" ? "AES256" : "aws:kms"
    }
    bucket_key_enabled = each.key == "logs" ? null : true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.versioned

  bucket = aws_s3_bucket.this[each.key].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = local.buckets

  bucket = aws_s3_bucket.this[each.key].id

  rule {
    id     = "default"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_upload_days
    }

    dynamic "expiration" {
      for_each = each.value.expiration_days != null ? [each.value.expiration_days] : []
      content {
        days = expiration.value
      }
    }

    # Kept buckets: once the last noncurrent version has expired, drop the lone delete marker.
    dynamic "expiration" {
      for_each = each.value.versioned && each.value.expiration_days == null ? [true] : []
      content {
        expired_object_delete_marker = true
      }
    }

    dynamic "noncurrent_version_expiration" {
      for_each = each.value.versioned ? [var.noncurrent_version_expiration_days] : []
      content {
        noncurrent_days = noncurrent_version_expiration.value
      }
    }
  }

  # A lifecycle rule on a versioned bucket is written after versioning is on.
  depends_on = [aws_s3_bucket_versioning.this]
}

################################################################################
# Bucket policies: TLS only (unless turned off); the logs bucket admits the S3 logging service
################################################################################

data "aws_iam_policy_document" "this" {
  for_each = local.with_policy

  dynamic "statement" {
    for_each = var.deny_insecure_transport ? [true] : []
    content {
      sid     = "DenyInsecureTransport"
      effect  = "Deny"
      actions = ["s3:*"]
      resources = [
        aws_s3_bucket.this[each.key].arn,
        "${aws_s3_bucket.this[each.key].arn}/*",
      ]

      # {"AWS": "*"} is the same as "*" (everyone); moto's logging check only reads the map form.
      principals {
        type        = "AWS"
        identifiers = ["*"]
      }

      condition {
        test     = "Bool"
        variable = "aws:SecureTransport"
        values   = ["false"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "logs" ? [true] : []
    content {
      sid     = "S3ServerAccessLogs"
      effect  = "Allow"
      actions = ["s3:PutObject"]
      # One resource for all prefixes (the source buckets are pinned by the conditions below).
      resources = ["${aws_s3_bucket.this["logs"].arn}/*"]

      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }

      condition {
        test     = "ArnLike"
        variable = "aws:SourceArn"
        values   = [for k in keys(local.logged) : aws_s3_bucket.this[k].arn]
      }

      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each = local.with_policy

  bucket = aws_s3_bucket.this[each.key].id
  policy = data.aws_iam_policy_document.this[each.key].json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

################################################################################
# Server access logs of every data bucket -> the logs bucket, under `<purpose>/`
################################################################################

resource "aws_s3_bucket_logging" "this" {
  for_each = local.logged

  bucket        = aws_s3_bucket.this[each.key].id
  target_bucket = aws_s3_bucket.this["logs"].id
  target_prefix = "${each.key}/"

  # The logging service may only write once the logs bucket's policy admits it.
  depends_on = [aws_s3_bucket_policy.this]
}
