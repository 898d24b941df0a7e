################################################################################
# Athena workgroup: where the API's queries run, with their results and limits
################################################################################

resource "aws_athena_workgroup" "this" {
  name          = var.name_prefix
  description   = "coinlake: the API's queries over spot_prices and candles_1h."
  force_destroy = var.force_destroy

  configuration {
    # The workgroup's settings win over a client's (result location, encryption, limit).
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${var.athena_results_bucket_name}/${var.results_prefix}"

      encryption_configuration {
        encryption_option = "SSE_S3"
      }

      # Results belong to this account even if the bucket ever allowed other writers.
      acl_configuration {
        s3_acl_option = "BUCKET_OWNER_FULL_CONTROL"
      }
    }
  }

  tags = merge({ "coinlake:component" = "query" }, var.tags)
}
