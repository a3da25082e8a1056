"""`c360 serve`: the profile API and the dashboard over the serving database."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from customer360.config import Settings, port_number
from customer360.services.processes import ServiceError, refuse_port_in_use
from customer360.serving.priority import add_nice_argument, lower_priority

log = logging.getLogger(__name__)


class UnsafeBind(ValueError):
    """Binding a non-loopback address without a token would expose personal data."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname: it could resolve to anything


def check_bind(settings: Settings, host: str) -> None:
    if not is_loopback(host) and not settings.api_token:
        raise UnsafeBind(
            f"refusing to serve customer data on {host} without a token: set C360_API_TOKEN "
            "(clients then send `Authorization: Bearer <token>`), or bind 127.0.0.1"
        )


def serve(
    settings: Settings, host: str | None = None, port: int | None = None, nice: str = "0"
) -> None:
    import uvicorn

    from customer360.serving.api import create_app

    host = host or settings.serve_host
    port = settings.serve_port if port is None else port
    check_bind(settings, host)
    # uvicorn alone says only "address already in use", after the app is built.
    refuse_port_in_use(
        host, port, "the profile API", "Stop it, or set C360_SERVE_PORT (or --port) to a free port."
    )
    log.info(
        "serving %s on http://%s:%d/ (API docs at /docs)%s",
        settings.serving_path,
        host,
        port,
        ", bearer token required" if settings.api_token else "",
    )
    lower_priority(nice)
    # No access log: it would write query strings (searches by name or email) to the logs;
    # the app logs each request's route template instead.
    uvicorn.run(create_app(settings), host=host, port=port, access_log=False, log_level="info")


def _serve_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        serve(settings, args.host, args.port, args.nice)
    except UnsafeBind as exc:
        print(f"c360 serve: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"c360 serve: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="profile API and dashboard over the serving database",
        description="Serve the profile API (/api, OpenAPI at /docs) and the Customer 360 "
        "dashboard (/) from the serving database (C360_SERVING_DB). Binds 127.0.0.1 unless "
        "told otherwise; another address needs C360_API_TOKEN.",
    )
    parser.add_argument("--host", help="address to bind (default C360_SERVE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=port_number, help="port (default C360_SERVE_PORT or 8360)")
    add_nice_argument(parser)
    parser.set_defaults(func=_serve_command)


def main(argv: list[str] | None = None) -> int:
    """`python -m customer360.serving`, the same as `c360 serve`."""
    from customer360.config import ConfigError, load_settings

    parser = argparse.ArgumentParser(prog="python -m customer360.serving")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parser.parse_args(["serve", *(argv if argv is not None else sys.argv[1:])])
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"python -m customer360.serving: {error}", file=sys.stderr)
        return 2
    return args.func(args, settings)
