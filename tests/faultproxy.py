"""A fault-injecting HTTP/1.1 front on 127.0.0.1, for moto's server and the OSS and Alibaba KMS emulators.

``FaultProxy(upstream, flavor="s3"|"oss"|"aws-kms"|"aliyun-kms")`` listens on a free port and passes each
request to the upstream server, unless a fault is chosen for it:

``reset``
    the connection is reset (RST) before anything is answered;
``500``, ``503``, ``slowdown``
    an error answer with the real service's XML body (S3: ``InternalError``, ``ServiceUnavailable``,
    ``SlowDown``; OSS: ``InternalError``, ``ServiceUnavailable``, ``SlowDown``), the request not forwarded;
``stall``
    the request is read and never answered (the connection is held for ``stall_seconds``, then closed);
``truncate``
    the upstream answer is sent with its body cut in the middle, then the connection is closed;
``drop``
    the request is forwarded (the server applies it) and the connection is closed without an answer;
``answer`` (``proxy.answer(status, code, message, match=..., times=1)``)
    an error answer with the cloud's own error body for ``code``, the request not forwarded. For the KMS
    flavors the body is JSON as the services send it: AWS KMS ``{"__type": CODE, "message": MESSAGE}`` with
    ``x-amzn-ErrorType`` and ``x-amzn-RequestId``; Alibaba Cloud KMS ``{"RequestId", "HostId", "Code",
    "Message", "Recommend"}``. (``500``, ``503`` and ``slowdown`` use those bodies too for the KMS flavors.)

:func:`kms_action` tells a rule which KMS operation a request is (``GenerateDataKey``, ``Decrypt`` ...).

Faults are chosen per request by rules (``proxy.inject("503", match=..., times=1)``, the first matching rule
with times left wins) or, for a soak, at random (``proxy.randomly(rate, seed, kinds)``). ``proxy.stats``
counts requests and injected faults by kind. The client's ``Expect: 100-continue`` is answered by the proxy.
Each request goes to the upstream on a fresh connection (``Connection: close``), and the whole answer is
buffered: meant for test objects of a few MiB.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import socket
import struct
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = ["KINDS", "FaultProxy", "Request", "kms_action"]

KINDS = ("reset", "500", "503", "slowdown", "stall", "truncate", "drop")

_ERRORS = {
    "s3": {
        "500": (
            "500 Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        "503": ("503 Service Unavailable", "ServiceUnavailable", "Service is unable to handle request."),
        "slowdown": ("503 Slow Down", "SlowDown", "Please reduce your request rate."),
    },
    "oss": {
        "500": (
            "500 Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        "503": (
            "503 Service Unavailable",
            "ServiceUnavailable",
            "The service is unavailable. Please try again.",
        ),
        "slowdown": ("503 Service Unavailable", "SlowDown", "Please reduce your request rate."),
    },
}

# The KMS flavors' answers for the generic kinds: (HTTP status, code, message).
_KMS_ERRORS = {
    "aws-kms": {
        "500": (500, "KMSInternalException", "We encountered an internal error. Please try again."),
        "503": (503, "ServiceUnavailable", "Service is unable to handle request."),
        "slowdown": (400, "ThrottlingException", "Rate exceeded"),
    },
    "aliyun-kms": {
        "500": (500, "InternalFailure", "Internal Failure."),
        "503": (503, "ServiceUnavailableTemporary", "Service Unavailable Temporary."),
        "slowdown": (400, "Throttling.User", "Request was denied due to user flow control."),
    },
}
_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class Request:
    """What a rule sees of a request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_length: int


def kms_action(request: Request) -> str:
    """The KMS operation of a request: AWS's ``X-Amz-Target: TrentService.OP``, or Alibaba's ``Action``."""
    target = request.headers.get("x-amz-target", "")
    if target:
        return target.rpartition(".")[2]
    for name, _, value in (item.partition("=") for item in request.query.split("&")):
        if name == "Action":
            return unquote(value)
    return request.headers.get("x-acs-action", "")


@dataclass
class _Rule:
    kind: str
    match: Callable[[Request], bool]
    times: int
    #: For ``answer``: (HTTP status, error code, message).
    error: tuple[int, str, str] | None = None


@dataclass
class Stats:
    """Requests seen and faults injected."""

    requests: int = 0
    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Every fault injected, with its request.
    log: list[tuple[str, Request]] = field(default_factory=list)

    @property
    def injected(self) -> int:
        """All faults injected."""
        return sum(self.faults.values())


class _Closed(Exception):
    pass


def _read_until(conn: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while marker not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise _Closed
        buf += chunk
    at = buf.index(marker) + len(marker)
    head = bytes(buf[:at])
    del buf[:at]
    return head


def _read_exact(conn: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = conn.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _Closed
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_chunked(conn: socket.socket, buf: bytearray) -> bytes:
    out = bytearray()
    while True:
        line = _read_until(conn, buf, b"\r\n")
        out += line
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, then the blank line
                trailer = _read_until(conn, buf, b"\r\n")
                out += trailer
                if trailer == b"\r\n":
                    return bytes(out)
        out += _read_exact(conn, buf, size + 2)


class FaultProxy:
    """The proxy (module docstring). Use as a context manager, or call :meth:`close`."""

    def __init__(self, upstream: str, flavor: str = "s3", stall_seconds: float = 30.0) -> None:
        """Front ``upstream`` (``http://127.0.0.1:PORT``), answering errors as ``flavor`` (s3 or oss)."""
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.flavor = flavor
        self.stall_seconds = stall_seconds
        self.stats = Stats()
        self._rules: list[_Rule] = []
        self._random: tuple[float, random.Random, tuple[str, ...]] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self._server.settimeout(0.2)
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._accepter = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._accepter.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://127.0.0.1:{self._server.getsockname()[1]}"

    # -- choosing faults

    def inject(self, kind: str, match: Callable[[Request], bool] = lambda r: True, times: int = 1) -> None:
        """Inject ``kind`` into the next ``times`` requests that ``match``."""
        assert kind in KINDS, kind
        with self._lock:
            self._rules.append(_Rule(kind, match, times))

    def answer(
        self,
        status: int,
        code: str,
        message: str,
        match: Callable[[Request], bool] = lambda r: True,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests that ``match`` with the error ``code`` (HTTP ``status``) in the
        flavor's own error body, without forwarding them."""
        with self._lock:
            self._rules.append(_Rule("answer", match, times, (status, code, message)))

    def randomly(self, rate: float, seed: int, kinds: tuple[str, ...] = KINDS) -> None:
        """Inject a fault of one of ``kinds`` into each request with probability ``rate``."""
        with self._lock:
            self._random = (rate, random.Random(seed), kinds)

    def lost_creates(self, key: str) -> int:
        """How many CreateMultipartUpload requests of ``key`` reached the server and lost their answer."""
        return sum(
            1
            for kind, r in self.stats.log
            if kind in ("truncate", "drop")
            and r.method == "POST"
            and r.query.startswith("uploads")
            and unquote(r.path).endswith("/" + key)
        )

    def clear(self) -> None:
        """No more faults."""
        with self._lock:
            self._rules.clear()
            self._random = None

    def _choose(self, request: Request) -> tuple[str | None, tuple[int, str, str] | None]:
        with self._lock:
            self.stats.requests += 1
            kind: str | None = None
            error: tuple[int, str, str] | None = None
            for rule in self._rules:
                if rule.times > 0 and rule.match(request):
                    rule.times -= 1
                    kind, error = rule.kind, rule.error
                    break
            if kind is None and self._random is not None:
                rate, rng, kinds = self._random
                if rng.random() < rate:
                    kind = rng.choice(kinds)
            if kind is not None:
                self.stats.faults[kind] += 1
                self.stats.log.append((kind, request))
            return kind, error

    # -- serving

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            with self._lock:
                self._conns.add(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        buf = bytearray()
        try:
            while not self._stop.is_set():
                if not self._one(conn, buf):
                    break
        except (_Closed, OSError):
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _one(self, conn: socket.socket, buf: bytearray) -> bool:
        """Serve one request; False to close the connection."""
        head = _read_until(conn, buf, b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        raw_headers: list[str] = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
            if name.strip().lower() not in ("connection", "expect", "keep-alive"):
                raw_headers.append(line)
        if headers.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = _read_chunked(conn, buf)
        else:
            body = _read_exact(conn, buf, int(headers.get("content-length", "0") or 0))
        path, _, query = target.partition("?")
        kind, error = self._choose(Request(method, path, query, headers, len(body)))
        if kind == "answer" and error is not None:
            self._answer(conn, *error)
            return True
        if kind in ("500", "503", "slowdown") and self.flavor in _KMS_ERRORS:
            self._answer(conn, *_KMS_ERRORS[self.flavor][kind])
            return True
        if kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if kind in ("500", "503", "slowdown"):
            self._error(conn, kind, path)
            return True
        if kind == "stall":
            self._stop.wait(self.stall_seconds)
            return False
        request = (
            f"{method} {target} HTTP/1.1\r\n"
            + "".join(f"{h}\r\n" for h in raw_headers)
            + "Connection: close\r\n\r\n"
        ).encode("latin-1") + body
        answer = self._forward(request)
        if kind == "drop":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        status_and_headers, _, payload = answer.partition(b"\r\n\r\n")
        out_lines = [
            line
            for line in status_and_headers.split(b"\r\n")
            if not line.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        framed = any(
            line.lower().startswith((b"content-length:", b"transfer-encoding:")) for line in out_lines[1:]
        )
        if kind == "truncate" and len(payload) >= 2:
            conn.sendall(b"\r\n".join(out_lines) + b"\r\n\r\n" + payload[: len(payload) // 2])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if not framed and method != "HEAD":
            out_lines.append(b"Connection: close")
        conn.sendall(b"\r\n".join(out_lines) + b"\r\n\r\n" + payload)
        return framed or method == "HEAD"

    def _forward(self, request: bytes) -> bytes:
        with socket.create_connection(self._upstream, timeout=60) as up:
            up.sendall(request)
            chunks = []
            while chunk := up.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks)

    def _error(self, conn: socket.socket, kind: str, path: str) -> None:
        status, code, message = _ERRORS[self.flavor][kind]
        request_id = uuid.uuid4().hex[:24].upper()
        host = "oss-cn-hangzhou.aliyuncs.com" if self.flavor == "oss" else "cse-fault-proxy"
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{path}</Resource>"
            f"<RequestId>{request_id}</RequestId><HostId>{host}</HostId></Error>"
        ).encode()
        id_header = "x-oss-request-id" if self.flavor == "oss" else "x-amz-request-id"
        conn.sendall(
            (
                f"HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
                f"{id_header}: {request_id}\r\n\r\n"
            ).encode()
            + body
        )

    def _answer(self, conn: socket.socket, status: int, code: str, message: str) -> None:
        """An error answer in the flavor's error body (JSON for the KMS flavors, else XML)."""
        request_id = str(uuid.uuid4())
        if self.flavor == "aws-kms":
            body = json.dumps({"__type": code, "message": message}).encode()
            headers = (
                f"x-amzn-RequestId: {request_id}\r\nx-amzn-ErrorType: {code}\r\n"
                "Content-Type: application/x-amz-json-1.1\r\n"
            )
        elif self.flavor == "aliyun-kms":
            request_id = request_id.upper()
            body = json.dumps(
                {
                    "RequestId": request_id,
                    "HostId": "kms.cn-hangzhou.aliyuncs.com",
                    "Code": code,
                    "Message": message,
                    "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Kms",
                }
            ).encode()
            headers = f"x-acs-request-id: {request_id}\r\nContent-Type: application/json;charset=utf-8\r\n"
        else:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId>"
                "</Error>"
            ).encode()
            headers = "Content-Type: application/xml\r\n"
        reason = _REASONS.get(status, "Error")
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body
        )

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._stop.set()
        self._accepter.join()
        self._server.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
