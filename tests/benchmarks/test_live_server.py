"""The lean benchmark client survives the server closing an idle keep-alive connection."""

from __future__ import annotations

import socket
import threading

from benchmarks.live_server import SocketClient


def test_socket_client_resends_once_when_the_idle_connection_was_closed() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    body = b'{"results": []}'
    seen: list[bytes] = []

    def serve() -> None:
        first, _ = listener.accept()  # takes the request, closes without an answer
        seen.append(first.recv(1 << 16).split(b"\r\n", 1)[0])
        first.close()
        second, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += second.recv(1 << 16)
        seen.append(request.split(b"\r\n", 1)[0])
        second.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        second.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = SocketClient(f"http://127.0.0.1:{port}")
    try:
        assert client.analyze(["a text"], ["embedding"]) == body
    finally:
        client.close()
        listener.close()
    thread.join(10)
    assert seen == [b"POST /analyze HTTP/1.1"] * 2  # sent, dropped, sent again
