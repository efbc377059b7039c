#!/usr/bin/env python3
"""Traffic that must survive a datapath upgrade, measured.

  longconn.py conn HOST PORT SECONDS   one TCP connection to an echo server
      (serve_tcp: "pong" then echo), a 16-byte message every 10 ms, each
      echo awaited; prints JSON {sent, echoed, max_gap_ms, error}. max_gap_ms
      is the longest time between two echoes: a stall.
  longconn.py pull HOST PORT SECONDS   one TCP connection to a server that
      sends a line every 10 ms unasked (serve_push), read without sending:
      after the connection opens, every data packet goes server -> client
      first, so it passes an isolated direction only as a tracked flow;
      prints JSON {received, max_gap_ms, error}.
  longconn.py probe HOST PORT SECONDS  new TCP connections one after another,
      150 ms timeout each, to a port the policy denies; prints JSON
      {attempts, connected}: connected > 0 means a denied packet passed.
"""
import json
import socket
import sys
import time


def conn(host, port, seconds):
    out = {"sent": 0, "echoed": 0, "max_gap_ms": 0.0, "error": ""}
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.settimeout(3)
        buf = b""
        while b"pong\n" not in buf:
            chunk = s.recv(64)
            if not chunk:
                raise ConnectionError("closed before pong")
            buf += chunk
        end = time.monotonic() + seconds
        last = time.monotonic()
        msg = b"0123456789abcdef"
        while time.monotonic() < end:
            s.sendall(msg)
            out["sent"] += 1
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise ConnectionError("connection closed by peer")
                got += chunk
            now = time.monotonic()
            out["max_gap_ms"] = max(out["max_gap_ms"], (now - last) * 1000)
            last = now
            out["echoed"] += 1
            time.sleep(0.01)
        s.close()
    except (OSError, ConnectionError) as e:  # reset, timeout (a stall over 3 s)
        out["error"] = f"{type(e).__name__}: {e}"
    out["max_gap_ms"] = round(out["max_gap_ms"], 1)
    return out


def pull(host, port, seconds):
    out = {"received": 0, "max_gap_ms": 0.0, "error": ""}
    try:
        s = socket.create_connection((host, port), timeout=3)
        s.settimeout(3)
        end = time.monotonic() + seconds
        last = time.monotonic()
        while time.monotonic() < end:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by peer")
            now = time.monotonic()
            out["max_gap_ms"] = max(out["max_gap_ms"], (now - last) * 1000)
            last = now
            out["received"] += chunk.count(b"\n")
        s.close()
    except (OSError, ConnectionError) as e:  # reset, timeout (a stall over 3 s)
        out["error"] = f"{type(e).__name__}: {e}"
    out["max_gap_ms"] = round(out["max_gap_ms"], 1)
    return out


def probe(host, port, seconds):
    out = {"attempts": 0, "connected": 0}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out["attempts"] += 1
        try:
            socket.create_connection((host, port), timeout=0.15).close()
            out["connected"] += 1
        except OSError:
            pass
    return out


if __name__ == "__main__":
    what, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps({"conn": conn, "pull": pull, "probe": probe}[what](host, port, seconds)))
