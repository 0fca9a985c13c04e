"""AWS services this machine cannot reach, as moto's server on loopback (a real protocol peer):
the environment that points botocore at it, and a client of the service for the test's set-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

REGION = "us-east-1"


@contextmanager
def moto_service(service: str, variable: str, region: str = REGION) -> Iterator[tuple[dict[str, str], Any]]:
    """moto on a free loopback port: ``({variable: its URL, credentials...}, a client of service)``."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        variable: f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": region,
    }
    try:
        client = boto3.client(
            service,
            endpoint_url=env[variable],
            region_name=region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        yield env, client
    finally:
        server.stop()
