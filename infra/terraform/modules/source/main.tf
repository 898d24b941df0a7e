data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  name = "${var.name_prefix}-coinbase-api-call"

  # The environment the handler reads (coinlake.aws.coinbase_api_call, coinlake.settings).
  environment = merge(var.environment_variables, {
    COINLAKE_KINESIS_STREAM_NAME = var.kinesis_stream_name
    COINLAKE_DEAD_LETTER_URI     = "s3://${var.dead_letter_bucket_name}/${var.dead_letter_prefix}"
    COINLAKE_SYMBOLS             = join(",", var.symbols)
    COINLAKE_COINBASE_URL        = var.coinbase_url
    COINLAKE_DATA_DIR            = "/tmp/coinlake" # the only writable folder on Lambda
    COINLAKE_LATEST_TABLE        = aws_dynamodb_table.latest.name
    }, var.use_coinbase_secret ? {
    COINLAKE_COINBASE_SECRET_NAME = aws_secretsmanager_secret.this.arn
  } : {})
}

################################################################################
# Secrets Manager: the optional Coinbase API key, {"api_key": …, "api_secret": …}
################################################################################

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV_AWS_149:Encrypted with the AWS-managed key aws/secretsmanager, which this account's principals may use through Secrets Manager only; a customer-managed key adds a key policy and a kms grant for one small secret.
  #checkov:skip=CKV2_AWS_57:A Coinbase API key is issued and revoked in Coinbase's console; Secrets Manager has no rotation function for it. Rotate by hand with put-secret-value.
  name                    = "${var.name_prefix}/coinbase-api-key"
  description             = "Coinbase API key of ${local.name}: {\"api_key\": \"...\", \"api_secret\": \"...\"}. Optional: the public spot prices need none."
  recovery_window_in_days = var.secret_recovery_window_days

  tags = var.tags
}

# Only when a value is given: otherwise no key ever enters the Terraform state.
resource "aws_secretsmanager_secret_version" "this" {
  count = var.secret_string == null ? 0 : 1

  secret_id     = aws_secretsmanager_secret.this.id
  secret_string = var.secret_string
}

################################################################################
# DynamoDB: the latest accepted price per pair (coinlake.aws.latest_table)
################################################################################

# One item per pair (partition key `kind` = "latest", sort key `pair`): the producer's
# plausibility state between invocations, and what the API answers /v1/prices/latest from.
resource "aws_dynamodb_table" "latest" {
  #checkov:skip=CKV_AWS_119:Encrypted with the AWS-managed DynamoDB key; the table holds one public market price per pair, not worth a customer-managed key's monthly and per-request cost.
  name         = "${var.name_prefix}-latest-prices"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "kind"
  range_key    = "pair"

  attribute {
    name = "kind"
    type = "S"
  }

  attribute {
    name = "pair"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  # Encrypted with the AWS-managed key `alias/aws/dynamodb`.
  server_side_encryption {
    enabled = true
  }

  deletion_protection_enabled = var.deletion_protection

  tags = var.tags
}

################################################################################
# IAM role: put records, read the secret, write dead letters, keep the latest prices, log
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "LambdaOfThisAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.name
  description          = "Lambda ${local.name}: put price records on the stream, read the Coinbase secret, write dead letters, keep the latest prices, log."
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  max_session_duration = 3600

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  # KinesisSink.put_records: PutRecords only (by stream name; the grant is on the stream's ARN).
  statement {
    sid       = "PutRecords"
    effect    = "Allow"
    actions   = ["kinesis:PutRecords"]
    resources = [var.kinesis_stream_arn]
  }

  # coinbase_secret: Powertools' get_secret is one GetSecretValue.
  statement {
    sid       = "ReadCoinbaseSecret"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.this.arn]
  }

  # LambdaDeadLetters: one PutObject per rejected answer, under the prefix only.
  statement {
    sid       = "WriteDeadLetters"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${var.dead_letter_bucket_arn}/${var.dead_letter_prefix}/*"]
  }

  # LatestTable.load_state is one BatchGetItem per poll; save_state a conditional PutItem per changed pair.
  statement {
    sid       = "LatestPrices"
    effect    = "Allow"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:PutItem"]
    resources = [aws_dynamodb_table.latest.arn]
  }

  # The log group is made below, so the function only creates streams and writes events.
  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.kinesis_kms_key_arn != null ? [var.kinesis_kms_key_arn] : []
    content {
      sid       = "EncryptRecords"
      effect    = "Allow"
      actions   = ["kms:GenerateDataKey"]
      resources = [statement.value]

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["kinesis.${data.aws_region.current.name}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.tracing_mode == "Active" ? [true] : []
    content {
      sid    = "XRay"
      effect = "Allow"
      # X-Ray's PutTraceSegments and PutTelemetryRecords have no resource type: "*" is the only resource AWS accepts.
      actions   = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = local.name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Lambda function and its log group
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest with its own keys; a customer-managed key would need a key policy for the logs service and the module owns no key. The logs hold prices and poll summaries, no secrets.
  #checkov:skip=CKV_AWS_338:Operational logs; the retention is a variable (log_retention_days, 14 days by default) rather than a year of cost.
  name              = "/aws/lambda/${local.name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked asynchronously by a schedule: a failed poll is not worth replaying (the next minute polls again) and rejected answers are already written as dead letters to S3 by the handler.
  #checkov:skip=CKV_AWS_117:Calls the public Coinbase API and AWS endpoints only; inside a VPC it would need a NAT gateway (or endpoints) for no data it protects.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is a variable (reserved_concurrent_executions), off by default: AWS refuses a reservation that leaves an account fewer than 10 unreserved executions, which breaks new accounts.
  #checkov:skip=CKV_AWS_173:The environment holds names only (stream, bucket URI, secret ARN, symbols); Lambda encrypts it at rest with an AWS-owned key. The API key lives in Secrets Manager.
  #checkov:skip=CKV_AWS_272:Code signing needs an AWS Signer profile; the zip is built reproducibly by `make package` and its SHA-256 is pinned by source_code_hash.
  function_name = local.name
  description   = "EventBridge schedule -> one poll of Coinbase -> Kinesis (coinlake)."
  role          = aws_iam_role.this.arn

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  handler          = "coinlake.aws.coinbase_api_call.handler"
  runtime          = "python3.12"
  architectures    = [var.architecture]
  timeout          = var.timeout
  memory_size      = var.memory_size

  reserved_concurrent_executions = var.reserved_concurrent_executions

  tracing_config {
    mode = var.tracing_mode
  }

  # Lambda's own lines (START, END, REPORT) as JSON like Powertools' lines; the log group
  # is the default `/aws/lambda/<name>` either way.
  dynamic "logging_config" {
    for_each = var.log_format != null ? [var.log_format] : []
    content {
      log_format = logging_config.value
      log_group  = aws_cloudwatch_log_group.this.name
    }
  }

  environment {
    variables = local.environment
  }

  tags = var.tags

  # The grants and the log group exist before the first invocation can use them.
  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.this]
}

################################################################################
# EventBridge: invoke it on the schedule
################################################################################

resource "aws_cloudwatch_event_rule" "this" {
  name                = local.name
  description         = "Invoke ${local.name} (${var.schedule_expression})."
  schedule_expression = var.schedule_expression

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "this" {
  rule      = aws_cloudwatch_event_rule.this.name
  target_id = "coinbase-api-call"
  arn       = aws_lambda_function.this.arn
}

resource "aws_lambda_permission" "this" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.this.arn
}
