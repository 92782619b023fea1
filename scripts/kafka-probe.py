#!/usr/bin/env python3
"""Exit 0 when a Kafka-protocol broker at HOST:PORT answers a Metadata request.

Standard library only, so it works before anything else is installed:
sends Metadata v1 (all topics) and checks that the answer names at least one
broker. Usage: kafka-probe.py [HOST] [PORT]
"""
import socket
import struct
import sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 9092


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


try:
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.settimeout(2)
        client = b"kafka-probe"
        # header v1: api_key=3 (Metadata), api_version=1, correlation_id, client_id
        header = struct.pack(">hhih", 3, 1, 7, len(client)) + client
        body = struct.pack(">i", -1)  # null topics array: all topics
        request = header + body
        sock.sendall(struct.pack(">i", len(request)) + request)
        (size,) = struct.unpack(">i", read_exact(sock, 4))
        answer = read_exact(sock, size)
        correlation, brokers = struct.unpack(">ii", answer[:8])
        sys.exit(0 if correlation == 7 and brokers >= 1 else 1)
except (OSError, ConnectionError, struct.error):
    sys.exit(1)
