################################################################################
# Kinesis Data Stream: the producer (coinbase_api_call) puts, Firehose reads
################################################################################

resource "aws_kinesis_stream" "this" {
  #checkov:skip=CKV_AWS_185:Encrypted with KMS; the default is the AWS-managed key alias/aws/kinesis (no key policy to own, usable by this account through Kinesis only). A customer-managed key is one variable away (kms_key_id).
  name             = "${var.name_prefix}-stream"
  retention_period = var.retention_hours

  # Shards are set only for PROVISIONED; ON_DEMAND manages its own.
  shard_count = var.stream_mode == "PROVISIONED" ? var.shard_count : null

  stream_mode_details {
    stream_mode = var.stream_mode
  }

  encryption_type = "KMS"
  kms_key_id      = var.kms_key_id

  tags = var.tags
}
