data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  partition     = data.aws_partition.current.partition
  account_id    = data.aws_caller_identity.current.account_id
  region        = data.aws_region.current.name
  function_name = "${var.name_prefix}-query-athena"
  api_name      = "${var.name_prefix}-api"
  glue_arn      = "arn:${local.partition}:glue:${local.region}:${local.account_id}"

  environment = merge(
    {
      COINLAKE_DATA_DIR             = "/tmp/coinlake"
      COINLAKE_ATHENA__DATABASE     = var.glue_database_name
      COINLAKE_ATHENA__WORKGROUP    = var.athena_workgroup_name
      COINLAKE_ATHENA__REGION       = local.region
      COINLAKE_ATHENA__ROLLUP_TABLE = var.candles_table_name
    },
    # Unset: the workgroup's own result location (it enforces its configuration anyway).
    var.athena_output_location == null ? {} : { COINLAKE_ATHENA__OUTPUT_LOCATION = var.athena_output_location },
    # Unset: /v1/prices/latest answers from Athena only.
    var.latest_table_name == null ? {} : { COINLAKE_LATEST_TABLE = var.latest_table_name },
  )

  # Everything a deployment serves: a change to any of it makes a new deployment.
  deployment_hash = sha1(jsonencode([
    [aws_api_gateway_resource.health.id, aws_api_gateway_resource.proxy.id],
    [for m in [aws_api_gateway_method.health, aws_api_gateway_method.proxy] :
    [m.id, m.http_method, m.authorization, m.api_key_required]],
    [for i in [aws_api_gateway_integration.health, aws_api_gateway_integration.proxy] :
    [i.id, i.type, i.uri, i.timeout_milliseconds]],
  ]))
}

################################################################################
# The Lambda query_athena: its role (Athena on the workgroup, the catalog, the lake), logs
################################################################################

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
  name               = local.function_name
  description        = "coinlake Lambda ${local.function_name}: the API on Athena."
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  # AthenaEngine.fetch: start, poll, page through results, stop on timeout.
  statement {
    sid    = "Athena"
    effect = "Allow"
    actions = [
      "athena:StartQueryExecution",
      "athena:GetQueryExecution",
      "athena:GetQueryResults",
      "athena:StopQueryExecution",
    ]
    resources = [var.athena_workgroup_arn]
  }

  # Athena reads the tables' definitions with the caller's permissions.
  statement {
    sid     = "Catalog"
    effect  = "Allow"
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions"]
    resources = [
      "${local.glue_arn}:catalog",
      "${local.glue_arn}:database/${var.glue_database_name}",
      "${local.glue_arn}:table/${var.glue_database_name}/${var.spot_prices_table_name}",
      "${local.glue_arn}:table/${var.glue_database_name}/${var.candles_table_name}",
    ]
  }

  # Athena reads the lake and the rollups with the caller's permissions.
  statement {
    sid       = "ListData"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.lake_bucket_arn, var.rollups_bucket_arn, var.athena_results_bucket_arn]
  }

  statement {
    sid       = "ReadData"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.lake_bucket_arn}/*", "${var.rollups_bucket_arn}/*"]
  }

  statement {
    sid       = "QueryResults"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${var.athena_results_bucket_arn}/${var.athena_results_prefix}*"]
  }

  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function.arn}:*"]
  }

  # LatestTable.latest: one Query of the latest-prices table (the source module's).
  dynamic "statement" {
    for_each = var.latest_table_arn == null ? [] : [var.latest_table_arn]
    content {
      sid       = "LatestPrices"
      effect    = "Allow"
      actions   = ["dynamodb:Query"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = local.function_name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:Encrypted with CloudWatch Logs' own key; a KMS key would cost per month and per request and the log holds request summaries, no secrets (API keys are checked by API Gateway and never reach the Lambda's logs).
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (14 by default) on purpose: request logs are for debugging recent errors; a year is a cost without a use.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway only: a dead-letter queue applies to asynchronous invocations and would never receive anything.
  #checkov:skip=CKV_AWS_117:Calls only public AWS endpoints (Athena, Glue, S3); a VPC would add NAT gateways or endpoints and cold-start cost without reaching anything private.
  #checkov:skip=CKV_AWS_173:The environment holds names (database, workgroup, table, region), no secrets; Lambda encrypts it at rest with its AWS-managed key.
  #checkov:skip=CKV_AWS_272:The zip is built reproducibly by `make package` (same inputs, same SHA-256) and uploaded by Terraform; there is no signing profile in this project.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded upstream by the usage plans' throttle (rate and burst per key); reserving concurrency fails on accounts with the default low limit.
  function_name = local.function_name
  description   = "coinlake API (FastAPI via mangum) on Athena, behind API Gateway."
  role          = aws_iam_role.this.arn

  filename         = var.package_path
  source_code_hash = filebase64sha256(var.package_path)
  handler          = "coinlake.aws.query_athena.handler"
  runtime          = "python3.12"
  architectures    = [var.architecture]
  timeout          = 29
  memory_size      = var.memory_size

  environment {
    variables = local.environment
  }

  # Traces when API Gateway samples the request (the stage has X-Ray on); no traces of its own.
  tracing_config {
    mode = "PassThrough"
  }

  tags = var.tags

  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.function]
}

################################################################################
# REST API: GET /health (no key), GET /{proxy+} (API key) -> the Lambda (AWS_PROXY)
################################################################################

resource "aws_api_gateway_rest_api" "this" {
  name        = local.api_name
  description = "coinlake API: spot prices and candles from the lake (send the key in x-api-key)."

  # Usage plans count the key sent in the x-api-key header.
  api_key_source = "HEADER"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  tags = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "health" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "health"
}

resource "aws_api_gateway_resource" "proxy" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "{proxy+}"
}

resource "aws_api_gateway_method" "health" {
  #checkov:skip=CKV_AWS_59:GET /health is the liveness probe (status and version, no data): open on purpose, and still throttled by the stage.
  #checkov:skip=CKV2_AWS_53:GET /health takes no parameters or body to validate.
  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = aws_api_gateway_resource.health.id
  http_method      = "GET"
  authorization    = "NONE"
  api_key_required = false
}

resource "aws_api_gateway_method" "proxy" {
  #checkov:skip=CKV2_AWS_53:The app validates every query parameter itself (FastAPI models answer 422 with the field); a gateway validator would duplicate and drift from them.
  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = aws_api_gateway_resource.proxy.id
  http_method      = "GET"
  authorization    = "NONE"
  api_key_required = true

  request_parameters = {
    "method.request.path.proxy" = true
  }
}

resource "aws_api_gateway_integration" "health" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.health.id
  http_method             = aws_api_gateway_method.health.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.this.invoke_arn
}

resource "aws_api_gateway_integration" "proxy" {
  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_resource.proxy.id
  http_method             = aws_api_gateway_method.proxy.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.this.invoke_arn
  timeout_milliseconds    = 29000
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGatewayGet"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this.function_name
  principal     = "apigateway.amazonaws.com"
  # Only GET requests through this API's stage.
  source_arn = "${aws_api_gateway_rest_api.this.execution_arn}/${var.stage_name}/GET/*"
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  description = "coinlake API ${local.deployment_hash}"

  triggers = {
    redeployment = local.deployment_hash
  }

  lifecycle {
    create_before_destroy = true
  }
}

################################################################################
# Stage, its access log, and the account setting that lets API Gateway write logs
################################################################################

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_158:Encrypted with CloudWatch Logs' own key; a KMS key would cost per month and per request and the access log holds request metadata (no key values: only the key's id).
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (14 by default) on purpose: access logs are for recent debugging and abuse checks; a year is a cost without a use.
  name              = "/aws/apigateway/${local.api_name}/${var.stage_name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

data "aws_iam_policy_document" "apigw_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  name               = "${local.api_name}-cloudwatch"
  description        = "API Gateway (account setting, this region): write access and execution logs."
  assume_role_policy = data.aws_iam_policy_document.apigw_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "cloudwatch" {
  # The account setting serves every API of the region: execution logs go to
  # API-Gateway-Execution-Logs_<api id>/<stage>, access logs to each stage's group.
  statement {
    sid    = "WriteLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = [
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:API-Gateway-Execution-Logs_*",
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/apigateway/*",
    ]
  }

  # logs:DescribeLogGroups lists groups and has no resource type: AWS offers nothing narrower than "*".
  statement {
    sid       = "DescribeLogGroups"
    effect    = "Allow"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  name   = "${local.api_name}-cloudwatch"
  role   = aws_iam_role.cloudwatch[0].id
  policy = data.aws_iam_policy_document.cloudwatch.json
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.cloudwatch[0].arn

  depends_on = [aws_iam_role_policy.cloudwatch]
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_120:No cache: prices change every minute and the Lambda keeps its own short caches; a stage cache is billed per hour.
  #checkov:skip=CKV2_AWS_29:No WAF: each key is throttled and capped by its usage plan, the API is read-only, and a web ACL is billed per month and per request.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; the backend here is a Lambda proxy integration.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  description          = "coinlake API, stage ${var.stage_name}."
  xray_tracing_enabled = true

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      apiKeyId       = "$context.identity.apiKeyId"
      requestTime    = "$context.requestTime"
      httpMethod     = "$context.httpMethod"
      path           = "$context.path"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      integrationMs  = "$context.integration.latency"
      error          = "$context.error.message"
    })
  }

  tags = var.tags

  depends_on = [aws_api_gateway_account.this]
}

resource "aws_api_gateway_method_settings" "this" {
  #checkov:skip=CKV_AWS_225:No cache (see the stage): prices change every minute.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled    = true
    logging_level      = var.execution_logging_level
    data_trace_enabled = false
  }
}

################################################################################
# Usage plans (throttle and quota) and API keys
################################################################################

resource "aws_api_gateway_usage_plan" "this" {
  for_each = var.usage_plans

  name        = "${local.api_name}-${each.key}"
  description = "coinlake API usage plan ${each.key}: ${each.value.rate_limit} req/s (burst ${each.value.burst_limit}), ${each.value.quota_limit} per ${lower(each.value.quota_period)}."

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    rate_limit  = each.value.rate_limit
    burst_limit = each.value.burst_limit
  }

  quota_settings {
    limit  = each.value.quota_limit
    period = each.value.quota_period
  }

  tags = var.tags
}

resource "aws_api_gateway_api_key" "this" {
  for_each = var.api_keys

  name        = "${local.api_name}-${each.key}"
  description = "coinlake API key ${each.key} (usage plan ${each.value})."
  enabled     = true

  tags = var.tags

  lifecycle {
    precondition {
      condition     = contains(keys(var.usage_plans), each.value)
      error_message = "The API key ${each.key} names usage plan ${each.value}, which is not in usage_plans."
    }
  }
}

resource "aws_api_gateway_usage_plan_key" "this" {
  for_each = var.api_keys

  key_id        = aws_api_gateway_api_key.this[each.key].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this[each.value].id
}
