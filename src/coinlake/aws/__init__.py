"""The AWS shape's Lambda handlers: thin edges that parse their event and call library code.

- `query_athena.handler`: API Gateway (REST, proxy) -> the FastAPI app on Athena (mangum).
- `lambda_triggering_sns.handler`: S3 `ObjectCreated` on the landing bucket -> alert rules -> SNS.
- `coinbase_api_call.handler`: EventBridge schedule -> one poll of Coinbase -> Kinesis.

They need the `aws` extra (mangum, aws-lambda-powertools) besides boto3. Sample events
for each are in the repository's `events/` folder.
"""
