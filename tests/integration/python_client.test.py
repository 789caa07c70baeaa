#!/usr/bin/python3
"""Debian's python3-socketio client, a Socket.IO implementation written apart from the Node.js
socket.io-client, against presenced on every transport: long-polling only, WebSocket only, and
polling upgraded to WebSocket (the client's default). It identifies, joins, queries, sets a status
with non-ASCII metadata, gets acks, sends binary arguments, and is refused an unknown namespace
and an invalid user id, as the Node.js tests check with the stock client.

The daemons run with their defaults: the client sends an Origin equal to the server's own
address on WebSocket, which the same-origin rule accepts.

Usage: python_client.test.py PRESENCED_BINARY   (Debian's /usr/bin/python3: the client is the
python3-socketio package, not a pip install)
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import urllib.request
import uuid

import socketio

WAIT_S = 10
TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"], "upgrade": None}
BINARY = None
DAEMONS = {}
STDERR = {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """presenced on a free port; its stderr goes to a file that failures print."""

    def __init__(self, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(f"/tmp/presenced-python-{os.getpid()}-{self.port}.log", "w+")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCED_")}
        cmd = [BINARY, "--listen", f"127.0.0.1:{self.port}", *args]
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + WAIT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"presenced exited at start:\n{self.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"presenced did not listen within {WAIT_S} s:\n{self.stderr()}")

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-6000:]

    def stop(self):
        """SIGTERM; returns its stderr; raises unless it exited 0."""
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "hung"
        out = self.stderr()
        self.log.close()
        os.unlink(self.log.name)
        if code != 0:
            raise RuntimeError(f"presenced stopped with {code}:\n{out}")
        return out

    def http_json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=WAIT_S) as r:
            return json.loads(r.read().decode("utf-8"))


class Recorder:
    """Collects a client's events (from its own threads) for the test to wait on."""

    def __init__(self):
        self.cond = threading.Condition()
        self.events = []

    def add(self, name, *args):
        with self.cond:
            self.events.append((name, args))
            self.cond.notify_all()

    def wait(self, name, pred=lambda *a: True):
        with self.cond:
            found = self.cond.wait_for(
                lambda: next((a for n, a in self.events if n == name and pred(*a)), None),
                timeout=WAIT_S,
            )
        if found is None:
            raise AssertionError(f"no {name} event matching within {WAIT_S} s; got {self.events}")
        return found


def client(rec=None, events=()):
    c = socketio.Client(reconnection=False, request_timeout=WAIT_S)
    if rec:
        for name in events:
            c.on(name, lambda *a, n=name: rec.add(n, *a))
    return c


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def setUpModule():
    DAEMONS["presence"] = Daemon()
    DAEMONS["conformance"] = Daemon("--conformance")


def tearDownModule():
    for name, d in DAEMONS.items():
        STDERR[name] = d.stop()


class TransportCases:
    """The cases, run once per transport (the subclasses below set `name` and `transports`)."""

    name = None
    transports = None

    def setUp(self):
        self.clients = []
        self.daemon = DAEMONS["presence"]

    def tearDown(self):
        for c in self.clients:
            c.disconnect()

    def connect(self, daemon=None, rec=None, events=(), **kw):
        daemon = daemon or self.daemon
        c = client(rec, events)
        self.clients.append(c)
        c.connect(daemon.url, transports=self.transports, wait_timeout=WAIT_S, **kw)
        self.assert_transport(c)
        return c

    def assert_transport(self, c):
        want = "polling" if self.name == "polling" else "websocket"
        deadline = time.time() + WAIT_S
        while c.transport() != want and time.time() < deadline:
            time.sleep(0.02)
        self.assertEqual(c.transport(), want, "the transport this case is about")

    def call(self, c, event, data):
        return c.call(event, data, timeout=WAIT_S)

    def ok(self, answer, **want):
        """An ack {ok: true, ...} holding `want` (other fields, such as seq, are not compared)."""
        self.assertIsInstance(answer, dict, answer)
        self.assertIs(answer.get("ok"), True, answer)
        for k, v in want.items():
            self.assertEqual(answer.get(k), v, f"{k} of {answer}")
        return answer

    def test_identify_and_query(self):
        user = unique(f"py-{self.name}")
        c = self.connect()
        entry = self.ok(self.call(c, "presence:query", {"userIds": [user]}))["users"][user]
        self.assertEqual((entry["online"], entry["status"], entry["lastSeen"]),
                         (False, "offline", None))
        self.ok(self.call(c, "presence:identify", {"userId": user}))
        answer = self.call(c, "presence:query", {"userIds": [user, "nobody-" + user]})
        self.assertTrue(answer["ok"])
        self.assertEqual(answer["users"][user]["online"], True)
        self.assertEqual(answer["users"][user]["status"], "online")
        self.assertEqual(answer["users"]["nobody-" + user]["online"], False)
        again = self.call(c, "presence:identify", {"userId": user})
        self.assertEqual(again["error"]["code"], "already_identified")

    def test_join_and_room_events(self):
        user, room = unique(f"py-{self.name}"), unique("salle-é")
        rec = Recorder()
        watcher = self.connect(auth={"userId": unique("watcher")}, rec=rec,
                               events=("presence:room:join", "presence:room:leave"))
        self.ok(self.call(watcher, "presence:room:join", {"room": room}), room=room)
        c = self.connect(auth={"userId": user})
        self.ok(self.call(c, "presence:room:join", {"room": room}), room=room)
        rec.wait("presence:room:join", lambda p: (p["userId"], p["room"]) == (user, room))
        answer = self.call(c, "presence:room:query", {"room": room})
        self.assertTrue(answer["ok"])
        self.assertEqual(answer["onlineCount"], 2)
        self.assertIn(user, answer["users"])
        self.ok(self.call(c, "presence:room:leave", {"room": room}), room=room)
        rec.wait("presence:room:leave", lambda p: (p["userId"], p["room"]) == (user, room))

    def test_status_with_non_ascii_metadata(self):
        user = unique(f"py-ü-{self.name}")
        meta = {"name": "Zoë Ångström", "city": "東京", "mood": "😀", "quote": "\"\\\n\u2028"}
        rec = Recorder()
        watcher = self.connect(rec=rec, events=("presence:online", "presence:update"))
        self.ok(self.call(watcher, "presence:subscribe", {"userIds": [user]}))
        c = self.connect(auth={"userId": user, "metadata": {"name": "first"}})
        rec.wait("presence:online", lambda p: p["userId"] == user)
        self.ok(self.call(c, "presence:status", {"status": "away", "metadata": meta}))
        update = rec.wait("presence:update", lambda p: p["userId"] == user)[0]
        self.assertEqual({k: update.get(k) for k in ("userId", "status", "metadata")},
                         {"userId": user, "status": "away", "metadata": meta})
        # The same bytes through the HTTP API.
        got = self.daemon.http_json("/v1/users/" + urllib.parse.quote(user, safe=""))
        self.assertEqual((got["userId"], got["status"], got["metadata"]), (user, "away", meta))

    def test_acks_by_callback(self):
        c = self.connect(auth={"userId": unique("py")})
        done = threading.Event()
        got = []

        def on_ack(*args):
            got.append(args)
            done.set()

        c.emit("presence:heartbeat", {}, callback=on_ack)
        self.assertTrue(done.wait(WAIT_S), "the ack came back")
        self.assertEqual(len(got), 1)
        self.ok(got[0][0])
        bad = self.call(c, "presence:status", {"status": "sleeping"})
        self.assertEqual((bad["ok"], bad["error"]["code"]), (False, "invalid_argument"))

    def test_binary_argument_to_a_command(self):
        c = self.connect(auth={"userId": unique("py")})
        answer = self.call(c, "presence:query", b"\x00\x01\xff")
        self.assertEqual((answer["ok"], answer["error"]["code"]), (False, "invalid_argument"))
        # The socket carries on.
        self.ok(self.call(c, "presence:heartbeat", {}))

    def test_binary_round_trips(self):
        conf = DAEMONS["conformance"]
        rec = Recorder()
        c = self.connect(daemon=conf, rec=rec, events=("message-back",))
        blob = bytes(range(256))
        # A tuple is several arguments.
        c.emit("message", (b"\x01\x02", {"nested": blob, "text": "ü"}))
        got = rec.wait("message-back")
        self.assertEqual(got, (b"\x01\x02", {"nested": blob, "text": "ü"}))
        self.assertEqual(c.call("message-with-ack", b"", timeout=WAIT_S), b"")
        self.assertEqual(c.call("message-with-ack", {"a": [blob]}, timeout=WAIT_S), {"a": [blob]})

    def test_unknown_namespace_refused(self):
        rec = Recorder()
        c = client()
        self.clients.append(c)
        c.on("connect_error", lambda *a: rec.add("connect_error", *a), namespace="/nope")
        with self.assertRaises(socketio.exceptions.ConnectionError):
            c.connect(self.daemon.url, transports=self.transports, namespaces=["/nope"],
                      wait_timeout=0.3)
        self.assertEqual(rec.wait("connect_error"), ({"message": "Invalid namespace"},))

    def test_invalid_user_id_refused(self):
        for bad in ("", "x" * 129, "tab\there", 42):
            rec = Recorder()
            c = client()
            self.clients.append(c)
            c.on("connect_error", lambda *a: rec.add("connect_error", *a))
            with self.assertRaises(socketio.exceptions.ConnectionError, msg=repr(bad)):
                c.connect(self.daemon.url, transports=self.transports, auth={"userId": bad},
                          wait_timeout=0.3)
            self.assertEqual(rec.wait("connect_error"), ({"message": "invalid userId"},))
        # A valid one still connects after the refusals.
        self.connect(auth={"userId": unique("py")})


for _name, _transports in TRANSPORTS.items():
    globals()[f"Test_{_name}"] = type(f"Test_{_name}", (TransportCases, unittest.TestCase),
                                      {"name": _name, "transports": _transports})


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    BINARY = os.path.abspath(sys.argv.pop(1))
    # The client's own HTTP sessions leave sockets for the garbage collector: not ours to report.
    run = unittest.main(verbosity=2, exit=False, warnings="ignore")
    if not run.result.wasSuccessful():
        for name, text in STDERR.items():
            print(f"--- presenced ({name}) stderr ---\n{text[-4000:]}", file=sys.stderr)
        sys.exit(1)
