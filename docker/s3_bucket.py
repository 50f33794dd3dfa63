"""Create the DVC remote's bucket on an S3-compatible endpoint when it is missing.

    python s3_bucket.py ENDPOINT_URL s3://BUCKET/PREFIX

For the docker compose stack's `s3` service (moto), which starts empty. Credentials come from the
AWS_* variables, as for DVC. Retries while the server is still starting.
"""

import os
import sys
import time

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

# docker compose starts the services together: give the s3 service up to a minute to answer.
ATTEMPTS = 60
RETRY_DELAY_S = 1.0
MISSING_BUCKET_CODES = {"404", "NoSuchBucket", "NotFound"}


def bucket_name(remote_url: str) -> str:
    """The bucket of an s3://bucket/prefix URL."""
    if not remote_url.startswith("s3://") or not remote_url[len("s3://"):].split("/")[0]:
        raise ValueError(f"not an s3://bucket/... URL: {remote_url!r}")
    return remote_url[len("s3://"):].split("/")[0]


def s3_client(endpoint_url: str):
    """A botocore S3 client on the endpoint (botocore comes with dvc-s3; boto3 does not)."""
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    return botocore.session.get_session().create_client("s3", endpoint_url=endpoint_url, region_name=region)


def ensure_bucket(client, bucket: str, attempts: int = ATTEMPTS, delay: float = RETRY_DELAY_S) -> bool:
    """Create the bucket unless it exists; True if it was created. Retries while the endpoint is down."""
    for attempt in range(1, attempts + 1):
        try:
            client.head_bucket(Bucket=bucket)
            return False
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in MISSING_BUCKET_CODES:
                raise
            client.create_bucket(Bucket=bucket)
            return True
        except EndpointConnectionError:
            if attempt == attempts:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def main(argv: list[str]) -> int:
    """Ensure the bucket of argv's remote URL exists on argv's endpoint."""
    if len(argv) != 2:
        print("usage: s3_bucket.py ENDPOINT_URL s3://BUCKET/PREFIX", file=sys.stderr)
        return 2
    endpoint_url, bucket = argv[0], bucket_name(argv[1])
    try:
        created = ensure_bucket(s3_client(endpoint_url), bucket)
    except (BotoCoreError, ClientError) as error:
        print(f"cannot use bucket {bucket} on {endpoint_url}: {error}", file=sys.stderr)
        return 1
    print(f"bucket {bucket} on {endpoint_url}: {'created' if created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
