"""The AWS shape's Lambda handlers: thin edges that read their event and make one call.

- `query_athena.handler`: API Gateway (REST, proxy) -> the FastAPI app on Athena (mangum).
- `lambda_triggering_sns.handler`: S3 `ObjectCreated` on the landing bucket ->
  `alerts.landed.handle_landed_objects` (rules, DynamoDB state) -> SNS.
- `coinbase_api_call.handler`: EventBridge schedule -> `aws.producer.poll_to_stream`
  (one poll of Coinbase) -> Kinesis.

Shared pieces: `runtime` (time budgets, counters, dead letters without a disk) and `s3`
(objects through boto3, keeping s3fs out of the packages).

Import graph: no handler loads DuckDB or pyarrow; only `query_athena` loads FastAPI
(`tests/aws/test_import_graph.py` checks it in a fresh interpreter). They need the `aws`
extra (mangum, aws-lambda-powertools) besides boto3, which the Lambda runtime provides.
`make package` builds one zip per handler (`scripts/package.py`); `template.yaml` deploys
them with SAM; sample events for each are in the repository's `events/` folder.
"""
