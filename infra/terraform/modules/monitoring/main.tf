data "aws_region" "current" {}

locals {
  region = data.aws_region.current.name

  # Lambda alarms: one per function and metric.
  lambda_alarms = {
    for pair in setproduct(var.lambda_function_names, ["Errors", "Throttles"]) :
    "${pair[0]}-${lower(pair[1])}" => { function = pair[0], metric = pair[1] }
  }

  alarm_names = concat(
    [
      aws_cloudwatch_metric_alarm.iterator_age.alarm_name,
      aws_cloudwatch_metric_alarm.write_throughput_exceeded.alarm_name,
      aws_cloudwatch_metric_alarm.put_records_success.alarm_name,
      aws_cloudwatch_metric_alarm.data_freshness.alarm_name,
      aws_cloudwatch_metric_alarm.api_5xx.alarm_name,
      aws_cloudwatch_metric_alarm.api_latency.alarm_name,
    ],
    [for a in aws_cloudwatch_metric_alarm.lambda : a.alarm_name],
  )
}

################################################################################
# Kinesis: the consumer falls behind, writes are throttled, records are lost
################################################################################

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.name_prefix}-kinesis-iterator-age"
  alarm_description   = "Firehose reads ${var.kinesis_stream_name} more than ${var.iterator_age_ms} ms behind its newest record."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = var.kinesis_stream_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.iterator_age_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "write_throughput_exceeded" {
  alarm_name          = "${var.name_prefix}-kinesis-write-throughput-exceeded"
  alarm_description   = "Writes to ${var.kinesis_stream_name} are throttled (the producer retries, then dead-letters)."
  namespace           = "AWS/Kinesis"
  metric_name         = "WriteProvisionedThroughputExceeded"
  dimensions          = { StreamName = var.kinesis_stream_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "put_records_success" {
  alarm_name          = "${var.name_prefix}-kinesis-put-records-success"
  alarm_description   = "Less than ${var.put_records_success_min * 100} % of the records put to ${var.kinesis_stream_name} succeeded."
  evaluation_periods  = 1
  comparison_operator = "LessThanThreshold"
  threshold           = var.put_records_success_min
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  metric_query {
    id          = "rate"
    expression  = "ok / total"
    label       = "PutRecords success rate"
    return_data = true
  }

  metric_query {
    id = "ok"
    metric {
      namespace   = "AWS/Kinesis"
      metric_name = "PutRecords.SuccessfulRecords"
      dimensions  = { StreamName = var.kinesis_stream_name }
      stat        = "Sum"
      period      = 300
    }
  }

  metric_query {
    id = "total"
    metric {
      namespace   = "AWS/Kinesis"
      metric_name = "PutRecords.TotalRecords"
      dimensions  = { StreamName = var.kinesis_stream_name }
      stat        = "Sum"
      period      = 300
    }
  }

  tags = var.tags
}

################################################################################
# Firehose: the newest record waiting to reach S3 is too old
################################################################################

resource "aws_cloudwatch_metric_alarm" "data_freshness" {
  alarm_name          = "${var.name_prefix}-firehose-data-freshness"
  alarm_description   = "The oldest record in ${var.firehose_name} is more than ${var.data_freshness_seconds} s from reaching the landing bucket."
  namespace           = "AWS/Firehose"
  metric_name         = "DeliveryToS3.DataFreshness"
  dimensions          = { DeliveryStreamName = var.firehose_name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.data_freshness_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  tags = var.tags
}

################################################################################
# Lambda: errors and throttles of each function
################################################################################

resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each = local.lambda_alarms

  alarm_name          = "${var.name_prefix}-lambda-${each.key}"
  alarm_description   = "Lambda ${each.value.function}: ${lower(each.value.metric)} in the last 5 minutes."
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  tags = var.tags
}

################################################################################
# API Gateway: server errors and slow answers
################################################################################

resource "aws_cloudwatch_metric_alarm" "api_5xx" {
  alarm_name          = "${var.name_prefix}-api-5xx"
  alarm_description   = "API ${var.rest_api_name} (${var.stage_name}) answered with 5xx errors (Athena failures, Lambda errors or timeouts)."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5XXError"
  dimensions          = { ApiName = var.rest_api_name, Stage = var.stage_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_5xx_max
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  tags = var.tags
}

resource "aws_cloudwatch_metric_alarm" "api_latency" {
  alarm_name          = "${var.name_prefix}-api-latency-p99"
  alarm_description   = "API ${var.rest_api_name} (${var.stage_name}): p99 latency above ${var.api_latency_p99_ms} ms for 15 minutes."
  namespace           = "AWS/ApiGateway"
  metric_name         = "Latency"
  dimensions          = { ApiName = var.rest_api_name, Stage = var.stage_name }
  extended_statistic  = "p99"
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.api_latency_p99_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  tags = var.tags
}

################################################################################
# Glue: a failed or timed-out run (an event, not a metric) -> the alerts topic
################################################################################

resource "aws_cloudwatch_event_rule" "glue_job_failed" {
  name        = "${var.name_prefix}-glue-job-failed"
  description = "Glue job ${var.glue_job_name} ended FAILED or TIMEOUT."

  event_pattern = jsonencode({
    source        = ["aws.glue"]
    "detail-type" = ["Glue Job State Change"]
    detail = {
      jobName = [var.glue_job_name]
      state   = ["FAILED", "TIMEOUT"]
    }
  })

  tags = var.tags
}

resource "aws_cloudwatch_event_target" "glue_job_failed" {
  rule      = aws_cloudwatch_event_rule.glue_job_failed.name
  target_id = "alerts-topic"
  arn       = var.alarm_topic_arn

  input_transformer {
    input_paths = {
      job     = "$.detail.jobName"
      run     = "$.detail.jobRunId"
      state   = "$.detail.state"
      message = "$.detail.message"
      time    = "$.time"
    }
    input_template = "\"Glue job <job> run <run> ended <state> at <time>: <message>\""
  }
}

################################################################################
# Dashboard: the pipeline from producer to API on one page
################################################################################

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Kinesis: records in, iterator age"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 60
          metrics = [
            ["AWS/Kinesis", "IncomingRecords", "StreamName", var.kinesis_stream_name],
            ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", var.kinesis_stream_name, { stat = "Maximum", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Kinesis: PutRecords records and throttling"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 300
          metrics = [
            ["AWS/Kinesis", "PutRecords.TotalRecords", "StreamName", var.kinesis_stream_name],
            ["AWS/Kinesis", "PutRecords.SuccessfulRecords", "StreamName", var.kinesis_stream_name],
            ["AWS/Kinesis", "WriteProvisionedThroughputExceeded", "StreamName", var.kinesis_stream_name, { yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title  = "Firehose: delivery to S3"
          region = local.region
          view   = "timeSeries"
          period = 300
          metrics = [
            ["AWS/Firehose", "DeliveryToS3.DataFreshness", "DeliveryStreamName", var.firehose_name, { stat = "Maximum" }],
            ["AWS/Firehose", "DeliveryToS3.Success", "DeliveryStreamName", var.firehose_name, { stat = "Average", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Lambda: invocations, errors, throttles"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 300
          metrics = flatten([
            for fn in var.lambda_function_names : [
              ["AWS/Lambda", "Invocations", "FunctionName", fn],
              ["AWS/Lambda", "Errors", "FunctionName", fn],
              ["AWS/Lambda", "Throttles", "FunctionName", fn],
            ]
          ])
        }
      },
      {
        type = "metric", x = 0, y = 12, width = 12, height = 6
        properties = {
          title  = "API Gateway: requests, errors, p99 latency"
          region = local.region
          view   = "timeSeries"
          period = 300
          metrics = [
            ["AWS/ApiGateway", "Count", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "Sum" }],
            ["AWS/ApiGateway", "4XXError", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "Sum" }],
            ["AWS/ApiGateway", "5XXError", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "Sum" }],
            ["AWS/ApiGateway", "Latency", "ApiName", var.rest_api_name, "Stage", var.stage_name, { stat = "p99", yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 12, width = 12, height = 6
        properties = {
          title  = "Glue job ${var.glue_job_name}: tasks"
          region = local.region
          view   = "timeSeries"
          stat   = "Sum"
          period = 3600
          metrics = [
            ["Glue", "glue.driver.aggregate.numCompletedTasks", "JobName", var.glue_job_name, "JobRunId", "ALL", "Type", "count"],
            ["Glue", "glue.driver.aggregate.numFailedTasks", "JobName", var.glue_job_name, "JobRunId", "ALL", "Type", "count"],
          ]
        }
      },
      {
        type = "alarm", x = 0, y = 18, width = 24, height = 4
        properties = {
          title = "Alarms"
          alarms = concat(
            [
              aws_cloudwatch_metric_alarm.iterator_age.arn,
              aws_cloudwatch_metric_alarm.write_throughput_exceeded.arn,
              aws_cloudwatch_metric_alarm.put_records_success.arn,
              aws_cloudwatch_metric_alarm.data_freshness.arn,
              aws_cloudwatch_metric_alarm.api_5xx.arn,
              aws_cloudwatch_metric_alarm.api_latency.arn,
            ],
            [for a in aws_cloudwatch_metric_alarm.lambda : a.arn],
          )
        }
      },
    ]
  })
}
