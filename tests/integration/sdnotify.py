#!/usr/bin/env python3
"""presenced speaks the sd_notify protocol as systemd expects: READY=1 only once it listens and
its store is reachable, STOPPING=1 on SIGTERM. A datagram socket stands in for systemd's.

Usage: sdnotify.py PRESENCED_BINARY
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

failures = 0


def check(cond, what):
    global failures
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures += 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def messages(sock, seconds):
    """Datagrams received within `seconds`, as a list of decoded strings."""
    out, end = [], time.time() + seconds
    while time.time() < end:
        sock.settimeout(max(0.01, end - time.time()))
        try:
            out.append(sock.recv(4096).decode())
        except socket.timeout:
            break
    return out


def start(binary, notify_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCED_")}
    env["NOTIFY_SOCKET"] = notify_path
    return subprocess.Popen([binary, *args], env=env, stderr=subprocess.DEVNULL)


def wait_listening(port, seconds=10):
    end = time.time() + seconds
    while time.time() < end:
        if listening(port):
            return True
        time.sleep(0.02)
    return False


def main(binary):
    tmp = tempfile.mkdtemp(prefix="sdnotify-")
    path = os.path.join(tmp, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)

    # Memory store: READY as soon as it listens.
    port = free_port()
    d = start(binary, path, "--listen", f"127.0.0.1:{port}")
    got = messages(sock, 3)
    check(any("READY=1" in m for m in got), f"memory store: READY=1 sent ({got})")
    check(listening(port), "memory store: listening when READY was sent")
    d.send_signal(signal.SIGTERM)
    got = messages(sock, 3)
    check(any("STOPPING=1" in m for m in got), f"SIGTERM: STOPPING=1 sent ({got})")
    check(d.wait(10) == 0, "SIGTERM: exit status 0")

    # Redis store with Redis down: listening, but not READY until Redis answers.
    rport, port = free_port(), free_port()
    d = start(binary, path, "--listen", f"127.0.0.1:{port}", "--store", "redis",
              "--redis", f"redis://127.0.0.1:{rport}")
    check(wait_listening(port), "redis store: listening while Redis is down")
    got = messages(sock, 1.5)
    check(not any("READY=1" in m for m in got), f"redis store: no READY while Redis is down ({got})")
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = messages(sock, 8)
        check(any("READY=1" in m for m in got), f"redis store: READY=1 once Redis is up ({got})")
    finally:
        d.send_signal(signal.SIGTERM)
        check(d.wait(15) == 0, "redis store: exit status 0")
        redis.terminate()
        redis.wait(10)
    print(f"{8 - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
