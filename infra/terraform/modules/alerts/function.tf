################################################################################
# Customer-managed key of the topic (only with service_publishers)
################################################################################

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:A key policy: its "*" resource is this key alone; the account root administers it (AWS's default key policy), services only encrypt and decrypt.
  #checkov:skip=CKV_AWS_111:A key policy: its "*" resource is this key alone; the account root administers it (AWS's default key policy), services only encrypt and decrypt.
  #checkov:skip=CKV_AWS_356:A key policy: its "*" resource is this key alone (a key policy cannot name anything else).
  count = local.create_kms_key ? 1 : 0

  # A key policy's "*" resource means this key (the only resource a key policy can name).
  statement {
    sid       = "AccountAdministers"
    effect    = "Allow"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
  }

  statement {
    sid       = "ServicesPublishToTheTopic"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey*", "kms:Decrypt"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = var.service_publishers
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_kms_key" "this" {
  count = local.create_kms_key ? 1 : 0

  description             = "coinlake ${var.name_prefix}: the alerts topic (lets ${join(", ", var.service_publishers)} publish)."
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.key[0].json

  tags = var.tags
}

resource "aws_kms_alias" "this" {
  count = local.create_kms_key ? 1 : 0

  name          = "alias/${var.name_prefix}-alerts"
  target_key_id = aws_kms_key.this[0].key_id
}

################################################################################
# The Lambda lambda_triggering_sns (with package_path): S3 ObjectCreated -> rules -> SNS
################################################################################

locals {
  function_name = "${var.name_prefix}-lambda-triggering-sns"

  # The seed's single BTC threshold, as a rule, unless rules are given (unset attributes left out).
  rules_json = var.rules != null ? jsonencode([for r in var.rules : { for k, v in r : k => v if v != null }]) : jsonencode([
    { name = "btc-above-${var.btc_threshold}", crypto = "BTC", above = var.btc_threshold, channels = ["sns"] },
  ])

  function_environment = merge(
    {
      COINLAKE_DATA_DIR                     = "/tmp/coinlake"
      COINLAKE_ALERTS__RULES                = local.rules_json
      COINLAKE_ALERTS__NOTIFY_FILE_LANDED   = tostring(var.notify_file_landed)
      COINLAKE_ALERTS__FILE_LANDED_CHANNELS = "sns"
    },
    {
      COINLAKE_ALERTS__RULES_TABLE   = aws_dynamodb_table.this.name
      COINLAKE_ALERTS__SNS_TOPIC_ARN = aws_sns_topic.this.arn
    },
  )
}

data "aws_iam_policy_document" "assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  count = local.create_function ? 1 : 0

  name               = local.function_name
  description        = "coinlake Lambda ${local.function_name}: landing objects -> alert rules -> SNS."
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

# Publish and rule state: the module's policy (iam_policy_arn).
resource "aws_iam_role_policy_attachment" "this" {
  count = local.create_function ? 1 : 0

  role       = aws_iam_role.this[0].name
  policy_arn = aws_iam_policy.this.arn
}

data "aws_iam_policy_document" "function" {
  count = local.create_function ? 1 : 0

  statement {
    sid       = "ReadLanding"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.landing_bucket_arn}/*"]
  }

  # A missing key then reads as NoSuchKey, not AccessDenied (as in template.yaml).
  statement {
    sid       = "ListLanding"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.landing_bucket_arn]
  }

  statement {
    sid       = "DeadLetters"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.this[0].arn]
  }

  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[0].arn}:*"]
  }
}

resource "aws_iam_role_policy" "this" {
  count = local.create_function ? 1 : 0

  name   = local.function_name
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.function[0].json
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Encrypted with CloudWatch Logs' own key; a KMS key would cost per month and per request and the log holds object keys and prices, no secrets.
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (14 by default) on purpose: the outbox and rule state live elsewhere; a year of logs is a cost without a use.
  count = local.create_function ? 1 : 0

  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

# Events that failed every retry (S3 invokes asynchronously), with their error: kept 14 days.
resource "aws_sqs_queue" "this" {
  count = local.create_function ? 1 : 0

  name                      = "${local.function_name}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true

  tags = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Failed events go to the SQS queue through the event invoke config's on-failure destination (aws_lambda_function_event_invoke_config.this), which records the error too; a dead_letter_config would duplicate it.
  #checkov:skip=CKV_AWS_117:Calls only public AWS endpoints (S3, DynamoDB, SNS); a VPC would add NAT gateways or endpoints without reaching anything private.
  #checkov:skip=CKV_AWS_173:The environment holds names and the rules (thresholds), no secrets; Lambda encrypts it at rest with its AWS-managed key.
  #checkov:skip=CKV_AWS_272:The zip is built reproducibly by `make package` (same inputs, same SHA-256) and uploaded by Terraform; there is no signing profile in this project.
  #checkov:skip=CKV_AWS_115:One invocation per landing object (about one a minute); reserving concurrency fails on accounts with the default low limit and rule state is safe under concurrency (conditional writes).
  count = local.create_function ? 1 : 0

  function_name = local.function_name
  description   = "coinlake alerts: S3 ObjectCreated on the landing bucket -> alert rules (DynamoDB) -> SNS."
  role          = aws_iam_role.this[0].arn

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  handler          = "coinlake.aws.lambda_triggering_sns.handler"
  runtime          = "python3.12"
  architectures    = [var.architecture]
  timeout          = 60
  memory_size      = 256

  environment {
    variables = local.function_environment
  }

  tracing_config {
    mode = "PassThrough"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this, aws_iam_role_policy_attachment.this, aws_cloudwatch_log_group.this]

  lifecycle {
    precondition {
      condition     = var.landing_bucket_name != null && var.landing_bucket_arn != null
      error_message = "The alerts function (package_path) needs landing_bucket_name and landing_bucket_arn."
    }
  }
}

resource "aws_lambda_function_event_invoke_config" "this" {
  count = local.create_function ? 1 : 0

  function_name                = aws_lambda_function.this[0].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 3600

  # An event that failed every retry (or grew too old) is kept with its error.
  destination_config {
    on_failure {
      destination = aws_sqs_queue.this[0].arn
    }
  }

  depends_on = [aws_iam_role_policy.this]
}

resource "aws_lambda_permission" "s3" {
  count = local.create_function ? 1 : 0

  statement_id   = "AllowLandingBucket"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this[0].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = var.landing_bucket_arn
  source_account = local.account_id
}

# The landing bucket's ONLY notification configuration: S3 keeps one per bucket, and this
# resource replaces the whole of it. No other module may declare one on the landing bucket.
resource "aws_s3_bucket_notification" "this" {
  count = local.create_function ? 1 : 0

  bucket = var.landing_bucket_name

  lambda_function {
    id                  = "landed-to-alerts"
    lambda_function_arn = aws_lambda_function.this[0].arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = var.notification_filter_prefix
  }

  depends_on = [aws_lambda_permission.s3]
}
