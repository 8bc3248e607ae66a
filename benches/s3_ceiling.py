"""The S3 endpoint's ceiling for remotes_s3.sh: D2's files uploaded to, or
downloaded from, a bucket with 16 boto3 threads, nothing else.

    python s3_ceiling.py ENDPOINT BUCKET DIR bucket|upload|download
"""
import concurrent.futures
import os
import sys

import boto3
import botocore.config

endpoint, bucket, root, what = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    config=botocore.config.Config(max_pool_connections=16),
)
if what == "bucket":
    s3.create_bucket(Bucket=bucket)
    sys.exit(0)
if what == "upload":
    base = os.path.join(root, "d2")
    keys = [
        os.path.relpath(os.path.join(d, f), root)
        for d, _, fs in os.walk(base)
        for f in fs
    ]
    job = lambda k: s3.upload_file(os.path.join(root, k), bucket, k)
else:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]

    def job(k):
        dst = os.path.join(root, k)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        s3.download_file(bucket, k, dst)

with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(job, keys))
print(f"{what} {len(keys)} files", file=sys.stderr)
