data "aws_caller_identity" "current" {}

locals {
  name = "${var.name_prefix}-delivery"
}

################################################################################
# CloudWatch Logs: where Firehose reports delivery errors
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest with its own keys; a customer-managed key would need a key policy for the logs service and the module owns no key. These are delivery error messages, no data.
  #checkov:skip=CKV_AWS_338:Operational error logs; the retention is a variable (log_retention_days, 14 days by default) rather than a year of cost.
  name              = "/aws/kinesisfirehose/${local.name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_cloudwatch_log_stream" "this" {
  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.this.name
}

################################################################################
# IAM role: read the stream, write the landing bucket, log errors
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "FirehoseOfThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }

    # Firehose passes the account id as the external id: no other account's stream can use the role.
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.name
  description          = "Firehose ${local.name}: read the Kinesis stream, write the landing bucket, log errors."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  # What Firehose calls on a Kinesis source (AWS's documented set for KinesisStreamAsSource).
  statement {
    sid    = "ReadStream"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:GetShardIterator",
      "kinesis:GetRecords",
      "kinesis:ListShards",
    ]
    resources = [var.kinesis_stream_arn]
  }

  # AWS's documented set for an S3 destination: the bucket-level calls on the bucket, the
  # object-level ones on its objects (data under YYYY/MM/DD/HH/, failures under the error prefix).
  statement {
    sid    = "LandingBucket"
    effect = "Allow"
    actions = [
      "s3:GetBucketLocation",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
    ]
    resources = [var.landing_bucket_arn]
  }

  statement {
    sid    = "LandingObjects"
    effect = "Allow"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = ["${var.landing_bucket_arn}/*"]
  }

  statement {
    sid       = "ErrorLog"
    effect    = "Allow"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:log-stream:${aws_cloudwatch_log_stream.this.name}"]
  }

  dynamic "statement" {
    for_each = var.kinesis_kms_key_arn != null ? [var.kinesis_kms_key_arn] : []
    content {
      sid       = "DecryptStream"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["kinesis.${split(":", var.kinesis_stream_arn)[3]}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = local.name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Firehose: Kinesis stream -> landing bucket, YYYY/MM/DD/HH/ in UTC
################################################################################

resource "aws_kinesis_firehose_delivery_stream" "this" {
  #checkov:skip=CKV_AWS_240:Firehose refuses server-side encryption on a delivery stream whose source is a Kinesis stream; the data is encrypted at rest in the stream (KMS) and in the bucket (its default encryption).
  #checkov:skip=CKV_AWS_241:Same as CKV_AWS_240: no SSE (and so no customer-managed key) is possible with a Kinesis stream as the source.
  name        = local.name
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = var.kinesis_stream_arn
    role_arn           = aws_iam_role.this.arn
  }

  extended_s3_configuration {
    role_arn   = aws_iam_role.this.arn
    bucket_arn = var.landing_bucket_arn

    # The same keys as Firehose's default prefix (YYYY/MM/DD/HH/ of the arrival time, UTC),
    # written out because an error prefix is only allowed beside a custom prefix. Keys
    # match `coinlake.contract.LANDING_KEY`.
    prefix              = "!{timestamp:yyyy/MM/dd/HH}/"
    error_output_prefix = var.error_output_prefix

    buffering_interval = var.buffering_interval
    buffering_size     = var.buffering_size
    compression_format = "UNCOMPRESSED"

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.this.name
      log_stream_name = aws_cloudwatch_log_stream.this.name
    }

    dynamic "processing_configuration" {
      for_each = var.append_newline ? [true] : []
      content {
        enabled = true

        processors {
          type = "AppendDelimiterToRecord"
        }
      }
    }
  }

  tags = var.tags

  # Firehose checks its role when the stream is created: the grants must exist first.
  depends_on = [aws_iam_role_policy.this]
}
