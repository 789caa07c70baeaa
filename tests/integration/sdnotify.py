#!/usr/bin/env python3
"""presenced speaks the sd_notify protocol as systemd expects: READY=1 only once it listens and
its store is reachable, STOPPING=1 on SIGTERM. A datagram socket stands in for systemd's.

Usage: sdnotify.py PRESENCED_BINARY
"""
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures += 1


def low_port():
    """A port below the ephemeral range (client sockets use that one here) that is free now."""
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass


def messages_from(sock, until, seconds):
    """Datagrams as (sender pid, decoded text) pairs, received until until(pairs) holds (or, with
    until=None, until none is waiting), for at most `seconds`: a deadline to fail by, not a
    time to wait."""
    out, end = [], time.time() + seconds
    while until is None or not until(out):
        left = end - time.time()
        if until is not None and left <= 0:
            break
        sock.settimeout(max(0.01, left) if until is not None else 0.0)
        try:
            data, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("iII")))
        except (socket.timeout, BlockingIOError):
            break
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[: struct.calcsize("iII")])[0]
        out.append((pid, data.decode()))
    return out


def count(pairs, text):
    return len([m for _, m in pairs if text in m])


def children(pid):
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


def workers_case(binary, tmp, path):
    """workers = 2: only the supervisor talks to systemd (NotifyAccess=main): one READY=1 once
    both workers are ready, WATCHDOG=1 while they run, STOPPING=1; a worker that stops answering
    is replaced without a second READY."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    wpath = path + "-workers"
    sock.bind(wpath)
    rport, port = low_port(), low_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCED_")}
    env["NOTIFY_SOCKET"] = wpath
    env["WATCHDOG_USEC"] = "2000000"
    d = subprocess.Popen([binary, "--listen", f"127.0.0.1:{port}", "--store", "redis",
                          "--redis", f"redis://127.0.0.1:{rport}", "--set", "workers=2"],
                         env=env, stderr=subprocess.DEVNULL)
    try:
        got = messages_from(sock, lambda g: count(g, "READY=1") and count(g, "WATCHDOG=1") >= 2, 30)
        ready = [pid for pid, m in got if "READY=1" in m]
        check(ready == [d.pid], f"workers: READY=1 once, from the supervisor {d.pid} ({got})")
        check(all(pid == d.pid for pid, _ in got), f"workers: nothing from the workers ({got})")
        check(count(got, "WATCHDOG=1") >= 2, f"workers: WATCHDOG=1 while the workers run ({got})")
        pids = children(d.pid)
        check(len(pids) == 2, f"workers: two worker processes ({pids})")
        # A worker that stops answering (its keep-alives stop) is replaced.
        os.kill(pids[0], signal.SIGSTOP)
        end, replaced = time.time() + 10, False
        while time.time() < end and not replaced:
            replaced = pids[0] not in children(d.pid) and len(children(d.pid)) == 2
            time.sleep(0.2)
        check(replaced, f"workers: a silent worker is replaced ({pids} -> {children(d.pid)})")
        # ... once: its replacement is not taken for a silent worker in turn. The supervisor
        # checks for silent workers (silent for 3 s here) before each keep-alive, one a second:
        # four more keep-alives mean it has checked the replacement past that point.
        after = children(d.pid)
        messages_from(sock, None, 0)
        got = messages_from(sock, lambda g: count(g, "WATCHDOG=1") >= 4, 30)
        check(count(got, "WATCHDOG=1") >= 4, f"workers: the supervisor's keep-alives go on ({got})")
        check(len(after) == 2 and children(d.pid) == after, f"workers: the replacement stays ({after} -> {children(d.pid)})")
        check(not any("READY=1" in m for _, m in got), f"workers: no second READY ({got})")
        d.send_signal(signal.SIGTERM)
        got = messages_from(sock, lambda g: count(g, "STOPPING=1"), 15)
        check(any("STOPPING=1" in m and pid == d.pid for pid, m in got),
              f"workers: STOPPING=1 from the supervisor ({got})")
        check(d.wait(15) == 0, "workers: exit status 0")
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        redis.terminate()
        redis.wait(10)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def messages(sock, until, seconds):
    """Datagrams as decoded strings, received until until(list) holds, for at most `seconds`
    (until=None: those already waiting)."""
    return [m for _, m in messages_from(sock, until and (lambda g: until([m for _, m in g])), seconds)]


def readyz(port):
    """The status of GET /readyz, or 0 when nothing answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head = c.recv(64).decode("latin1")
        return int(head.split()[1]) if head.startswith("HTTP/1.1 ") else 0
    except OSError:
        return 0


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
    got = messages(sock, lambda g: any("READY=1" in m for m in g), 15)
    check(any("READY=1" in m for m in got), f"memory store: READY=1 sent ({got})")
    check(listening(port), "memory store: listening when READY was sent")
    d.send_signal(signal.SIGTERM)
    got = messages(sock, lambda g: any("STOPPING=1" in m for m in g), 15)
    check(any("STOPPING=1" in m for m in got), f"SIGTERM: STOPPING=1 sent ({got})")
    check(d.wait(10) == 0, "SIGTERM: exit status 0")

    # Redis store with Redis down: listening, but not READY until Redis answers.
    rport, port = free_port(), free_port()
    d = start(binary, path, "--listen", f"127.0.0.1:{port}", "--store", "redis",
              "--redis", f"redis://127.0.0.1:{rport}")
    check(wait_listening(port), "redis store: listening while Redis is down")
    # Once /readyz says 503 the daemon has tried Redis and found it down: READY must not have
    # been sent by then.
    end = time.time() + 15
    while readyz(port) != 503 and time.time() < end:
        time.sleep(0.02)
    check(readyz(port) == 503, "redis store: /readyz 503 while Redis is down")
    got = messages(sock, None, 0)
    check(not any("READY=1" in m for m in got), f"redis store: no READY while Redis is down ({got})")
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = messages(sock, lambda g: any("READY=1" in m for m in g), 30)
        check(any("READY=1" in m for m in got), f"redis store: READY=1 once Redis is up ({got})")
    finally:
        d.send_signal(signal.SIGTERM)
        check(d.wait(15) == 0, "redis store: exit status 0")
        redis.terminate()
        redis.wait(10)
    workers_case(binary, tmp, path)
    print(f"{checks - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
