"""Host and port of the local services, derived from the configured URIs."""

from __future__ import annotations

from urllib.parse import urlsplit


def kafka_host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, colon, port = first.rpartition(":")
    if not colon:  # a host alone: librdkafka connects to its port 9092, and so do we
        return first or "127.0.0.1", 9092
    return host or "127.0.0.1", int(port or 9092)


def mongo_host_port(uri: str) -> tuple[str, int]:
    # Only the first host of the seed list: the local server is a single node.
    netloc = urlsplit(uri).netloc.rsplit("@", 1)[-1].split(",")[0]
    host, _, port = netloc.rpartition(":")
    if not host:
        return netloc or "127.0.0.1", 27017
    return host, int(port)


def redact_uri(uri: str) -> str:
    """The URI with any password replaced, safe for logs and error messages."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    userinfo, hosts = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0]
    return parts._replace(netloc=f"{user}:***@{hosts}").geturl()
