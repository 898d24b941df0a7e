data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  job_name   = "${var.name_prefix}-etl"

  # Written by scripts/glue_tables.py from src/coinlake/lake.py (a test fails when it is stale).
  tables = jsondecode(file("${path.module}/tables.json")).tables
  table_buckets = {
    spot_prices = var.lake_bucket_name
    candles     = var.rollups_bucket_name
  }

  script_key  = "glue/${basename(var.script_path)}"
  library_key = "glue/lib/${basename(var.library_path)}"

  landing_uri     = "s3://${var.landing_bucket_name}/"
  lake_uri        = "s3://${var.lake_bucket_name}/"
  rollups_uri     = "s3://${var.rollups_bucket_name}/"
  dead_letter_uri = "s3://${var.landing_bucket_name}/${var.dead_letter_prefix}"

  log_group_arn_prefix = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group"
  glue_arn_prefix      = "arn:${local.partition}:glue:${local.region}:${local.account_id}"
}

################################################################################
# The job's code in S3: the script and the coinlake library (re-uploaded when they change)
################################################################################

resource "aws_s3_object" "script" {
  bucket = var.glue_scripts_bucket_name
  key    = local.script_key
  source = var.script_path
  etag   = filemd5(var.script_path)

  tags = var.tags
}

resource "aws_s3_object" "library" {
  bucket = var.glue_scripts_bucket_name
  key    = local.library_key
  source = var.library_path
  etag   = filemd5(var.library_path)

  tags = var.tags
}

################################################################################
# Catalog: the database and the lake's two tables (partition projection, no crawler)
################################################################################

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "coinlake: spot prices and hourly candles (Athena reads them through partition projection)."

  tags = var.tags
}

resource "aws_glue_catalog_table" "this" {
  for_each = local.tables

  database_name = aws_glue_catalog_database.this.name
  name          = each.value.name
  table_type    = each.value.table_type

  parameters = merge(each.value.parameters, {
    "projection.crypto.values"  = join(",", var.cryptos)
    "projection.year.range"     = "${var.projection_years[0]},${var.projection_years[1]}"
    "storage.location.template" = "s3://${local.table_buckets[each.key]}/${each.value.directory}${each.value.location_template}"
  })

  dynamic "partition_keys" {
    for_each = each.value.partition_keys
    content {
      name = partition_keys.value.name
      type = partition_keys.value.type
    }
  }

  storage_descriptor {
    location      = "s3://${local.table_buckets[each.key]}/${each.value.directory}"
    input_format  = each.value.input_format
    output_format = each.value.output_format

    ser_de_info {
      serialization_library = each.value.serialization_library
      parameters            = each.value.serde_parameters
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

################################################################################
# The job's role: read landing, read/write lake and rollups, dead letters, its code, logs
################################################################################

data "aws_iam_policy_document" "assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = "${var.name_prefix}-etl"
  description        = "coinlake Glue job ${local.job_name}."
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "this" {
  statement {
    sid       = "ReadCode"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.glue_scripts_bucket_arn}/glue/*"]
  }

  # The bookmarked read lists the landing bucket and reads every new object.
  statement {
    sid       = "ListLanding"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.landing_bucket_arn]
  }

  statement {
    sid       = "ReadLanding"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${var.landing_bucket_arn}/*"]
  }

  # One JSONL file per landing object with bad lines, replaced when the object is read again.
  statement {
    sid       = "WriteDeadLetters"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${var.landing_bucket_arn}/${var.dead_letter_prefix}*"]
  }

  statement {
    sid       = "ListLake"
    effect    = "Allow"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = [var.lake_bucket_arn, var.rollups_bucket_arn]
  }

  # Spark appends through a committer that writes under _temporary/ and renames (copy +
  # delete); the rollups replace a month file with a newer generation and delete the old one.
  statement {
    sid    = "ReadWriteLake"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.lake_bucket_arn}/*", "${var.rollups_bucket_arn}/*"]
  }

  # Read-only: partition projection means the job never adds partitions.
  statement {
    sid     = "ReadCatalog"
    effect  = "Allow"
    actions = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions"]
    resources = concat(
      ["${local.glue_arn_prefix}:catalog", aws_glue_catalog_database.this.arn],
      [for t in aws_glue_catalog_table.this : t.arn],
    )
  }

  # The job's continuous log group, and the groups Glue writes the driver's stdout/stderr to.
  statement {
    sid     = "Logs"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "${aws_cloudwatch_log_group.this.arn}:*",
      "${local.log_group_arn_prefix}:/aws-glue/jobs/output:*",
      "${local.log_group_arn_prefix}:/aws-glue/jobs/error:*",
    ]
  }

  statement {
    sid     = "CreateGlueLogGroups"
    effect  = "Allow"
    actions = ["logs:CreateLogGroup"]
    resources = [
      "${local.log_group_arn_prefix}:/aws-glue/jobs/output:*",
      "${local.log_group_arn_prefix}:/aws-glue/jobs/error:*",
    ]
  }

  # cloudwatch:PutMetricData has no resource type: AWS offers nothing narrower than "*",
  # so the namespace condition is the limit (Glue's job metrics, `--enable-metrics`).
  statement {
    sid       = "JobMetrics"
    effect    = "Allow"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }
}

resource "aws_iam_role_policy" "this" {
  name   = "${var.name_prefix}-etl"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# The Glue job, its logs and its schedule
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:Encrypted with CloudWatch Logs' own key; a KMS key would cost per month and per request and the log holds run counts and S3 paths, no data or secrets.
  #checkov:skip=CKV_AWS_338:Retention is var.log_retention_days (14 by default) on purpose: run summaries are only needed until the next runs; a year is a cost without a use.
  name              = "/aws-glue/jobs/${local.job_name}"
  retention_in_days = var.log_retention_days

  tags = var.tags
}

resource "aws_glue_security_configuration" "this" {
  #checkov:skip=CKV_AWS_99:S3 output is encrypted (SSE-S3); CloudWatch and bookmark encryption need a customer-managed KMS key and move Glue's logs to per-configuration log groups; the logs hold counts and paths and the bookmarks S3 paths, no data.
  name = "${var.name_prefix}-etl"

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "DISABLED"
    }

    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "DISABLED"
    }

    s3_encryption {
      s3_encryption_mode = "SSE-S3"
    }
  }
}

resource "aws_glue_job" "this" {
  name                   = local.job_name
  description            = "coinlake ETL: new landing objects (job bookmarks) -> the lake, exactly once (anti-join + append), hourly candles."
  role_arn               = aws_iam_role.this.arn
  glue_version           = "5.0"
  execution_class        = "STANDARD"
  worker_type            = var.worker_type
  number_of_workers      = var.number_of_workers
  timeout                = var.timeout_minutes
  max_retries            = var.max_retries
  security_configuration = aws_glue_security_configuration.this.name

  command {
    name            = "glueetl"
    python_version  = "3"
    script_location = "s3://${aws_s3_object.script.bucket}/${aws_s3_object.script.key}"
  }

  # The job appends after an anti-join against what the lake holds: two runs at once
  # could both add the same rows. One run at a time is part of the exactly-once design.
  execution_property {
    max_concurrent_runs = 1
  }

  default_arguments = {
    "--job-language"                     = "python"
    "--job-bookmark-option"              = "job-bookmark-enable"
    "--additional-python-modules"        = "s3://${aws_s3_object.library.bucket}/${aws_s3_object.library.key}"
    "--enable-metrics"                   = "true"
    "--enable-continuous-cloudwatch-log" = "true"
    "--continuous-log-logGroup"          = aws_cloudwatch_log_group.this.name
    "--landing_uri"                      = local.landing_uri
    "--lake_uri"                         = local.lake_uri
    "--rollups_uri"                      = local.rollups_uri
    "--dead_letter_uri"                  = local.dead_letter_uri
  }

  tags = var.tags

  # The code must be in S3 before a run can start (the references above already order it).
  depends_on = [aws_s3_object.script, aws_s3_object.library, aws_iam_role_policy.this]
}

resource "aws_glue_trigger" "this" {
  name     = "${local.job_name}-schedule"
  type     = "SCHEDULED"
  schedule = var.schedule_expression
  enabled  = var.schedule_enabled

  actions {
    job_name = aws_glue_job.this.name
  }

  tags = var.tags
}
