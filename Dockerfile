# The ticks container of the AWS shape (infra/terraform/modules/ticks): `coinlake ticks-to-kinesis`.
# Untested here (no Docker in CI). Build: docker build -t coinlake:<tag> .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md LICENSE ./
COPY src ./src
# boto3 (the `s3` extra) for the Kinesis sink; the versions tested together.
RUN pip install --no-compile -c constraints.txt ".[s3]" && rm -rf /app/src

# Non-root, as the task definition expects (user 10001); the root file system is read-only there.
USER 10001
ENTRYPOINT ["coinlake"]
CMD ["ticks-to-kinesis", "--log-format", "json"]
