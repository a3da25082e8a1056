"""port_in_use (customer360/services/processes.py): a listening server, and no server, even when
the probe's connection picks the probed port as its own and connects to itself."""

from __future__ import annotations

import socket

from customer360.services import processes
from customer360.services.processes import free_port, port_in_use


def test_a_listening_server_is_seen_and_a_free_port_is_not() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
    assert not port_in_use("127.0.0.1", port)


def test_a_probe_connected_to_itself_is_no_server(monkeypatch) -> None:
    """The kernel gave the probe the probed port (a free port of the ephemeral range, as Kafka's
    are in the tests): the connect succeeds, to the probe itself."""
    port = free_port()
    real_socket = socket.socket

    def probe_on_the_probed_port(*args, **kwargs):
        sock = real_socket(*args, **kwargs)
        sock.bind(("127.0.0.1", port))
        return sock

    monkeypatch.setattr(processes.socket, "socket", probe_on_the_probed_port)
    assert not port_in_use("127.0.0.1", port)
