"""The loopback HTTP server itself: lifecycle, keep-alive, addresses, malformed framing."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from safeguard._clock import ManualClock
from safeguard.venue._engine import Venue
from safeguard.venue._server import VenueServer, serve


@pytest.fixture(scope="module")
def venue() -> Venue:
    return Venue(clock=ManualClock(time.time()))


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], object]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), json.loads(response.read())


def test_serve_picks_a_free_port_and_answers_until_closed(venue: Venue) -> None:
    with serve(venue) as server:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        status, headers, body = _get(connection, "/fapi/v1/time")
        assert status == 200
        assert body == {"serverTime": venue.server_time()}
        assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
        # keep-alive: the same connection serves the next request, and the weight adds up
        status, headers, _ = _get(connection, "/fapi/v1/ticker/24hr?symbol=BTCUSDT")
        assert status == 200
        assert headers["X-MBX-USED-WEIGHT-1M"] == "2"
        port = server.port
    # close() also hung up on the idle keep-alive connection
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        _get(connection, "/fapi/v1/time")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_unknown_path_is_a_json_404(venue: Venue) -> None:
    with serve(venue) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        status, headers, body = _get(connection, "/fapi/v9/nothing")
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert body == {"code": -5000, "msg": "Path /fapi/v9/nothing, Method GET is invalid"}


def test_ipv6_loopback(venue: Venue) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server = VenueServer(venue, "::1", 0)
    except OSError:
        pytest.skip("::1 is not configured")
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        connection = http.client.HTTPConnection("::1", server.port, timeout=5)
        assert _get(connection, "/fapi/v1/ping")[0] == 200


@pytest.mark.parametrize("port", [-1, 65536, 1.5, True])
def test_bad_port_is_refused(venue: Venue, port: object) -> None:
    with pytest.raises(ValueError, match="port"):
        VenueServer(venue, port=port)  # type: ignore[arg-type]


def test_close_is_idempotent(venue: Venue) -> None:
    server = serve(venue)
    server.close()
    server.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2)


def test_expect_100_continue_and_pipelined_requests(venue: Venue) -> None:
    with serve(venue) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        body = b"symbol=BTCUSDT"
        sock.sendall(
            b"POST /fapi/v1/ping HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        # the body, then two pipelined requests in one write
        sock.sendall(body + b"GET /fapi/v1/ping HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        stream = sock.makefile("rb")
        statuses = []
        for _ in range(3):
            status = int(stream.readline().split()[1])
            length = 0
            while (line := stream.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            json.loads(stream.read(length))
            statuses.append(status)
    assert statuses == [404, 200, 200]  # POST /ping is not a route; the GETs are


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, dict(response.getheaders()), response.read()


def test_conflicting_content_lengths_are_refused_as_json(venue: Venue) -> None:
    # Two lengths let a proxy and the venue disagree about where the next request starts
    # (request smuggling): the request is refused, nothing behind it is read.
    with serve(venue) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        sock.sendall(
            b"POST /fapi/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Content-Length: 40\r\n\r\nabcdGET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        status, headers, body = _read_answer(sock)
        assert sock.recv(100) == b""  # and the connection is closed: no second answer
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["code"] == -1000


def test_a_request_head_trickled_slower_than_the_idle_timeout_is_cut_off(venue: Venue) -> None:
    server = VenueServer(venue, idle_timeout_s=0.3)
    with server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(0.05)
        sock.sendall(b"GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        received = None
        for _ in range(2000):  # one byte per 50 ms: far longer than the timeout in all
            try:
                sock.sendall(b"a")
                received = sock.recv(100)
            except TimeoutError:
                continue
            except OSError:  # reset by the closed peer
                received = b""
            break
    assert received == b""  # closed without an answer


def test_a_body_that_never_arrives_gets_408(venue: Venue) -> None:
    server = VenueServer(venue, body_timeout_s=0.2)
    with server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        sock.sendall(b"POST /fapi/v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        status, _, body = _read_answer(sock)
    assert status == 408
    assert json.loads(body)["code"] == -1000


def test_head_answers_without_a_body(venue: Venue) -> None:
    with serve(venue) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("HEAD", "/fapi/v1/time")
        response = connection.getresponse()
        assert response.status == 404  # no HEAD routes; the answer carries no body either way
        assert response.read() == b""
        status, _, body = _get(connection, "/fapi/v1/time")  # the connection still works
    assert status == 200
    assert "serverTime" in body  # type: ignore[operator]
