#!/usr/bin/env python3
"""PINGs a Ferrite server as one tenant, one request at a time, for a while,
and prints the round trips' p50, p99 and worst in milliseconds (CSV).

Usage: latency_probe.py PORT TENANT PASSWORD SECONDS
"""
import socket
import sys
import time


def main():
    port, tenant, password, seconds = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    auth = f"*3\r\n$4\r\nAUTH\r\n${len(tenant)}\r\n{tenant}\r\n${len(password)}\r\n{password}\r\n"
    s.sendall(auth.encode())
    assert s.recv(64).startswith(b"+OK"), "AUTH failed"
    ping = b"*1\r\n$4\r\nPING\r\n"
    rtts = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        s.sendall(ping)
        reply = s.recv(64)
        rtts.append(time.perf_counter() - t0)
        assert reply == b"+PONG\r\n", reply
    rtts.sort()
    pick = lambda q: rtts[min(len(rtts) - 1, int(q * len(rtts)))] * 1000
    print(f"{len(rtts)},{pick(0.5):.3f},{pick(0.99):.3f},{rtts[-1] * 1000:.3f}")


if __name__ == "__main__":
    main()
