"""An in-process Alibaba Cloud OSS server emulator, written to the wire protocol (stdlib only).

It serves path-style URLs (``http://HOST:PORT/bucket/key``), verifies OSS V1 (``OSS ak:sig``) and V4
(``OSS4-HMAC-SHA256``) signatures as the official SDKs compute them, and implements the object, listing and
multipart operations the SDKs and cse use, with OSS error XML, ETags, ``x-oss-hash-crc64ecma`` and
request ids.

Objects keep server-side encryption (``x-oss-server-side-encryption`` AES256/KMS/SM4, ``-key-id``; KMS
without a key id reports :attr:`OssEmulator.default_kms_key_id`), the bucket default of
``?encryption``, ``x-oss-storage-class``, content headers and tags (``x-oss-tagging``,
``x-oss-tagging-directive``, ``?tagging``, ``x-oss-tagging-count``). A copy keeps the source's encryption
and storage class unless the request names others. Invalid values get OSS's answers: 400
``InvalidEncryptionAlgorithmError`` for an unknown algorithm, 400 ``InvalidArgument`` for a key id without
KMS or an unknown storage class. Archive classes are only labels: their objects read without a restore.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import hmac
import secrets
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import quote, unquote, unquote_plus

from cse_oss.crc64 import Crc64, crc64, crc64_combine

__all__ = ["OssEmulator", "OssError", "RequestRecord"]

CHUNK = 1024 * 1024
"""Bodies are read from and written to the socket in pieces of this size."""

RequestRecord = tuple[str, str, str, tuple[str, ...]]
"""One :attr:`OssEmulator.request_log` entry: (method, bucket, key, sorted sub-resource names)."""

# Query parameters that enter the V1 canonical resource (the list in oss2 2.19.1 ``ProviderAuth``).
# fmt: off
_SUBRESOURCES = frozenset([
    "response-content-type", "response-content-language", "response-cache-control", "logging",
    "response-content-encoding", "acl", "uploadId", "uploads", "partNumber", "group", "link", "delete",
    "website", "location", "objectInfo", "objectMeta", "response-expires", "response-content-disposition",
    "cors", "lifecycle", "restore", "qos", "referer", "stat", "bucketInfo", "append", "position",
    "security-token", "live", "comp", "status", "vod", "startTime", "endTime", "x-oss-process", "symlink",
    "callback", "callback-var", "tagging", "encryption", "versions", "versioning", "versionId", "policy",
    "requestPayment", "x-oss-traffic-limit", "qosInfo", "asyncFetch", "x-oss-request-payer", "sequential",
    "inventory", "inventoryId", "continuation-token", "worm", "wormId", "wormExtend", "replication",
    "replicationLocation", "replicationProgress", "transferAcceleration", "cname", "metaQuery",
    "x-oss-ac-source-ip", "x-oss-ac-subnet-mask", "x-oss-ac-vpc-id", "x-oss-ac-forward-allow",
    "resourceGroup", "style", "styleName", "x-oss-async-process", "regionList",
    "x-oss-write-get-object-response", "bucketArchiveDirectRead", "httpsConfig", "redundancyTransition",
    "x-oss-target-redundancy-type", "x-oss-redundancy-transition-taskid", "accessPoint",
    "accessPointPolicy", "publicAccessBlock", "x-oss-access-point-name", "requesterQosInfo",
    "qosRequester", "resourcePoolInfo", "resourcePool", "resourcePoolBuckets",
])
# fmt: on

_STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
_CSE_PREFIX = "x-oss-meta-client-side-encryption-"
_CSE_LIST_PARTS = (
    ("key", "ClientEncryptionKey"),
    ("start", "ClientEncryptionStart"),
    ("cek-alg", "ClientEncryptionCekAlg"),
    ("wrap-alg", "ClientEncryptionWrapAlg"),
    ("data-size", "ClientEncryptionDataSize"),
    ("part-size", "ClientEncryptionPartSize"),
)
_OWNER_ID = "1234567890123456"
_SSE = "x-oss-server-side-encryption"
_SSE_KEY_ID = "x-oss-server-side-encryption-key-id"
_STORAGE_CLASS = "x-oss-storage-class"
#: The server-side encryption algorithms OSS has (x-oss-server-side-encryption, SSEAlgorithm).
_SSE_ALGORITHMS = ("AES256", "KMS", "SM4")
#: OSS's storage classes, by their lower-cased names.
_STORAGE_CLASSES = {c.lower(): c for c in ("Standard", "IA", "Archive", "ColdArchive", "DeepColdArchive")}
_BAD_ALGORITHM = "The Encryption request you specified is not valid. Supported value: AES256/KMS/SM4"
_KEY_ID_WITHOUT_KMS = (
    "x-oss-server-side-encryption-key-id is only valid with x-oss-server-side-encryption: KMS"
)
_MAX_TAGS, _MAX_TAG_KEY, _MAX_TAG_VALUE = 10, 128, 256


class OssError(Exception):
    """An OSS error response: HTTP status, error code, message and extra ``<Error>`` elements."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        """Describe the error that the emulator will send as OSS error XML."""
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass
class _Object:
    segments: tuple[bytes | bytearray, ...]
    size: int
    etag: str
    crc: int
    content_type: str
    last_modified: float
    meta: dict[str, str]
    headers: dict[str, str]
    kind: str = "Normal"
    tags: dict[str, str] = field(default_factory=dict)

    def slices(self, start: int, end: int) -> Iterable[memoryview]:
        """Yield the bytes ``[start, end)`` of the object as views of its segments, at most CHUNK each."""
        offset = 0
        for seg in self.segments:
            seg_end = offset + len(seg)
            if seg_end > start and offset < end:
                lo = max(start, offset) - offset
                hi = min(end, seg_end) - offset
                view = memoryview(seg)
                for pos in range(lo, hi, CHUNK):
                    yield view[pos : min(pos + CHUNK, hi)]
            offset = seg_end
            if offset >= end:
                break


@dataclass
class _Part:
    data: bytes | bytearray
    md5: bytes
    crc: int
    last_modified: float
    headers: dict[str, str]


@dataclass
class _Upload:
    key: str
    upload_id: str
    initiated: float
    content_type: str
    meta: dict[str, str]
    headers: dict[str, str]
    parts: dict[int, _Part] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Bucket:
    name: str
    created: float
    objects: dict[str, _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)
    #: The default server-side encryption (SSEAlgorithm, KMSMasterKeyID or None), from PutBucketEncryption.
    encryption: tuple[str, str | None] | None = None


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def _http_date(ts: float) -> str:
    return formatdate(ts, usegmt=True)


def _parse_http_date(text: str) -> int | None:
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return int(parsed.timestamp())


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + bytes(ET.tostring(root, encoding="utf-8"))


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    node = ET.SubElement(parent, tag)
    if text is not None:
        node.text = text
    return node


def _flip(stream: Iterable[memoryview], offset: int, xor: int) -> Iterable[memoryview]:
    """Pass ``stream`` through with the byte at ``offset`` (counted over the whole stream) XORed."""
    pos = 0
    for piece in stream:
        if pos <= offset < pos + len(piece):
            changed = bytearray(piece)
            changed[offset - pos] ^= xor
            piece = memoryview(changed)
        pos += len(piece)
        yield piece


def _check_xor(xor: int) -> None:
    if not 1 <= xor <= 0xFF:
        raise ValueError(f"xor must be between 1 and 255, not {xor}")


def _parse_tagging(raw: str) -> dict[str, str]:
    """The tags of an ``x-oss-tagging`` header (``k=v&k2=v2``, URL-encoded), checked as OSS does."""
    tags: dict[str, str] = {}
    for pair in raw.split("&") if raw else []:
        name, _, value = pair.partition("=")
        tags[unquote(name)] = unquote(value)
    _check_tags(tags)
    return tags


def _check_tags(tags: dict[str, str]) -> None:
    if len(tags) > _MAX_TAGS:
        raise OssError(400, "InvalidArgument", f"Object tags cannot be greater than {_MAX_TAGS}.")
    for name, value in tags.items():
        if not name or len(name) > _MAX_TAG_KEY or len(value) > _MAX_TAG_VALUE:
            raise OssError(
                400,
                "InvalidArgument",
                f"A tag key has 1 to {_MAX_TAG_KEY} characters and a value at most {_MAX_TAG_VALUE}.",
            )


def _sse_only(headers: dict[str, str]) -> dict[str, str]:
    """The server-side encryption headers among an object's stored headers (to echo in answers)."""
    return {k: v for k, v in headers.items() if k in (_SSE, _SSE_KEY_ID)}


def _v4_encode(text: str, keep_slash: bool) -> str:
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid the 40 ms delayed-ACK stall
    server_version = "AliyunOSS"
    sys_version = ""
    server: _Server

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: object) -> None:
        """Silence the default per-request logging to stderr."""

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._serve()

    def do_HEAD(self) -> None:
        """Serve a HEAD request."""
        self._serve()

    def do_PUT(self) -> None:
        """Serve a PUT request."""
        self._serve()

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._serve()

    def do_DELETE(self) -> None:
        """Serve a DELETE request."""
        self._serve()

    def _serve(self) -> None:
        self.request_id = secrets.token_hex(12).upper()
        self.body_consumed = False
        path, _, raw_query = self.path.partition("?")
        self.query: dict[str, str] = {}
        self.raw_query = raw_query
        for pair in raw_query.split("&") if raw_query else []:
            name, _, value = pair.partition("=")
            self.query[unquote_plus(name)] = unquote_plus(value)
        parts = path.lstrip("/").split("/", 1)
        self.bucket = unquote(parts[0]) if parts[0] else ""
        self.key = unquote(parts[1]) if len(parts) > 1 else ""
        emu = self.server.emulator
        with emu.lock:
            emu.request_log.append(
                (
                    self.command,
                    self.bucket,
                    self.key,
                    tuple(sorted(k for k in self.query if k in _SUBRESOURCES)),
                )
            )
        try:
            self._authenticate()
            self._dispatch()
        except OssError as err:
            self._drain()
            self._send_error(err)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:  # pragma: no cover - a bug in the emulator
            self._drain()
            self._send_error(OssError(500, "InternalError", f"emulator error: {err!r}"))

    def _drain(self) -> None:
        if self.body_consumed:
            return
        try:
            for _ in self._body_chunks():
                pass
        except (OSError, ValueError):
            self.close_connection = True

    def _body_chunks(self) -> Iterable[bytes]:
        self.body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                while size:
                    piece = self.rfile.read(min(size, CHUNK))
                    if not piece:
                        raise ConnectionError("client closed mid-body")
                    size -= len(piece)
                    yield piece
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        while length:
            piece = self.rfile.read(min(length, CHUNK))
            if not piece:
                raise ConnectionError("client closed mid-body")
            length -= len(piece)
            yield piece

    def _read_body(self) -> tuple[bytes | bytearray, bytes, int]:
        """Read the body in chunks; return it with its MD5 digest and CRC-64."""
        md5 = hashlib.md5()  # noqa: S324 - OSS ETags are MD5
        crc = Crc64()
        length = self.headers.get("Content-Length")
        if length is not None and "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            total = int(length)
            buf = bytearray(total)
            view = memoryview(buf)
            pos = 0
            self.body_consumed = True
            while pos < total:
                got = self.rfile.readinto(view[pos : min(pos + CHUNK, total)])
                if not got:
                    raise ConnectionError("client closed mid-body")
                md5.update(view[pos : pos + got])
                crc.update(view[pos : pos + got])
                pos += got
            data = bytes(buf) if total <= CHUNK else buf  # large bodies are kept without a copy
        else:
            acc = bytearray()
            for piece in self._body_chunks():
                md5.update(piece)
                crc.update(piece)
                acc += piece
            data = acc
        digest = md5.digest()
        sent_md5 = self.headers.get("Content-MD5")
        if sent_md5 is not None:
            try:
                wanted = base64.b64decode(sent_md5, validate=True)
            except (binascii.Error, ValueError):
                raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.") from None
            if wanted != digest:
                raise OssError(
                    400, "InvalidDigest", "The Content-MD5 you specified did not match what we received."
                )
        return data, digest, crc.value

    def _send(
        self,
        status: int,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        stream: Iterable[memoryview] | None = None,
        length: int | None = None,
    ) -> None:
        self._drain()
        self.send_response(status)
        self.send_header("x-oss-request-id", self.request_id)
        self.send_header("x-oss-server-time", "1")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if stream is not None:
            for piece in stream:
                self.wfile.write(piece)
        elif body:
            self.wfile.write(body)

    def _send_xml(self, root: ET.Element, headers: dict[str, str] | None = None) -> None:
        all_headers = {"Content-Type": "application/xml"}
        all_headers.update(headers or {})
        self._send(200, all_headers, _xml(root))

    def _send_error(self, err: OssError) -> None:
        root = ET.Element("Error")
        _sub(root, "Code", err.code)
        _sub(root, "Message", err.message)
        _sub(root, "RequestId", self.request_id)
        _sub(
            root,
            "HostId",
            f"{self.bucket}.{self.server.emulator.host}" if self.bucket else self.server.emulator.host,
        )
        for name, value in err.extra.items():
            _sub(root, name, value)
        body = _xml(root)
        headers = {"Content-Type": "application/xml", "x-oss-ec": "0000-00000000"}
        if self.command == "HEAD":
            headers["x-oss-err"] = base64.b64encode(body).decode()
        self._send(err.status, headers, body)

    # ------------------------------------------------------------------ authentication
    def _authenticate(self) -> None:
        emu = self.server.emulator
        auth = self.headers.get("Authorization", "")
        q = self.query
        token = self.headers.get("x-oss-security-token")
        if auth.startswith("OSS4-HMAC-SHA256 "):
            fields: dict[str, str] = {}
            for item in auth[len("OSS4-HMAC-SHA256 ") :].split(","):
                name, _, value = item.strip().partition("=")
                fields[name] = value
            datetime_iso = dict(self._signed_header_items()).get("x-oss-date", "")
            self._check_v4(fields, datetime_iso, dict(q))
        elif auth.startswith("OSS "):
            access_key_id, _, signature = auth[4:].rpartition(":")
            self._check_v1(access_key_id, signature, None)
        elif auth:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        elif q.get("x-oss-signature-version") == "OSS4-HMAC-SHA256" and "x-oss-signature" in q:
            fields = {
                "Credential": q.get("x-oss-credential", ""),
                "Signature": q["x-oss-signature"],
                "AdditionalHeaders": q.get("x-oss-additional-headers", ""),
            }
            self._check_expiry(q.get("x-oss-date", ""), q.get("x-oss-expires", ""))
            self._check_v4(
                fields, q.get("x-oss-date", ""), {k: v for k, v in q.items() if k != "x-oss-signature"}
            )
            token = q.get("x-oss-security-token")
        elif "OSSAccessKeyId" in q and "Signature" in q and "Expires" in q:
            expires = q["Expires"]
            if not expires.isdigit() or int(expires) < time.time():
                raise OssError(403, "AccessDenied", "Request has expired.", Expires=expires)
            self._check_v1(q["OSSAccessKeyId"], q["Signature"], expires)
            token = q.get("security-token")
        else:
            raise OssError(
                403, "AccessDenied", "You have no right to access this object because of bucket acl."
            )
        if emu.security_token is not None and token != emu.security_token:
            raise OssError(403, "InvalidAccessKeyId", "The security token you provided is invalid.")

    def _check_expiry(self, datetime_iso: str, expires: str) -> None:
        try:
            signed = calendar.timegm(time.strptime(datetime_iso, "%Y%m%dT%H%M%SZ"))
        except ValueError:
            raise OssError(400, "InvalidArgument", "x-oss-date is not valid.") from None
        if not expires.isdigit() or signed + int(expires) < time.time():
            raise OssError(403, "AccessDenied", "Request has expired.")

    def _secret_for(self, access_key_id: str) -> str:
        emu = self.server.emulator
        if access_key_id != emu.access_key_id:
            raise OssError(
                403,
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
                OSSAccessKeyId=access_key_id,
            )
        return emu.access_key_secret

    def _signed_header_items(self) -> list[tuple[str, str]]:
        # http.server decodes header bytes as latin-1; sign over the bytes as sent (UTF-8 when they are)
        return [
            (k.lower(), v.strip().encode("latin-1", "replace").decode("utf-8", "surrogateescape"))
            for k, v in self.headers.items()
        ]

    def _check_v1(self, access_key_id: str, signature: str, expires: str | None) -> None:
        """Check a V1 signature; ``expires`` is a presigned URL's ``Expires`` (it stands in for the date)."""
        secret = self._secret_for(access_key_id)
        headers = self._signed_header_items()
        lookup = dict(headers)
        canon = sorted((k, v) for k, v in headers if k.startswith("x-oss-"))
        subs = sorted((k, v) for k, v in self.query.items() if k in _SUBRESOURCES)
        resource = f"/{self.bucket}/{self.key}" if self.bucket else "/"
        if subs:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subs)
        date = expires if expires is not None else (lookup.get("x-oss-date") or lookup.get("date", ""))
        string_to_sign = "\n".join(
            [
                self.command,
                lookup.get("content-md5", ""),
                lookup.get("content-type", ""),
                date,
                "".join(f"{k}:{v}\n" for k, v in canon) + resource,
            ]
        )
        expected = base64.b64encode(
            hmac.new(
                secret.encode(), string_to_sign.encode("utf-8", "surrogateescape"), hashlib.sha1
            ).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                StringToSign=string_to_sign,
                OSSAccessKeyId=access_key_id,
            )

    def _check_v4(self, fields: dict[str, str], datetime_iso: str, params: dict[str, str]) -> None:
        """Check a V4 signature from the Authorization fields (or the presigned query), over ``params``."""
        credential = fields.get("Credential", "")
        signature = fields.get("Signature", "")
        scope_parts = credential.split("/")
        if len(scope_parts) != 5 or scope_parts[4] != "aliyun_v4_request" or not signature:
            raise OssError(400, "InvalidArgument", "Authorization header is invalid.")
        access_key_id, date, region, product, _ = scope_parts
        secret = self._secret_for(access_key_id)
        additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
        headers = self._signed_header_items()
        lookup = dict(headers)
        if datetime_iso[:8] != date:
            raise OssError(
                403, "SignatureDoesNotMatch", "The x-oss-date does not match the credential scope."
            )
        canon_headers = sorted(
            (k, v)
            for k, v in headers
            if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in additional
        )
        uri = "/"
        if self.bucket:
            uri += self.bucket + "/" + self.key
        pairs = sorted((_v4_encode(k, False), _v4_encode(v, False)) for k, v in params.items())
        canonical_request = "\n".join(
            [
                self.command,
                _v4_encode(uri, True),
                "&".join(f"{k}={v}" if v else k for k, v in pairs),
                "".join(f"{k}:{v}\n" for k, v in canon_headers),
                ";".join(additional),
                lookup.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
            ]
        )
        scope = f"{date}/{region}/{product}/aliyun_v4_request"
        string_to_sign = "\n".join(
            [
                "OSS4-HMAC-SHA256",
                datetime_iso,
                scope,
                hashlib.sha256(canonical_request.encode("utf-8", "surrogateescape")).hexdigest(),
            ]
        )
        key = ("aliyun_v4" + secret).encode()
        for part in (date, region, product, "aliyun_v4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise OssError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                CanonicalRequest=canonical_request,
                StringToSign=string_to_sign,
                OSSAccessKeyId=access_key_id,
            )

    # ------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        method, q = self.command, self.query
        if not self.bucket:
            if method == "GET":
                return self._list_buckets()
            raise OssError(
                405, "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
        if not self.key:
            if method == "PUT" and not q:
                return self._put_bucket()
            bucket = self._bucket()
            if method == "GET" and "uploads" in q:
                return self._list_uploads(bucket)
            if method == "GET" and "acl" in q:
                return self._send_acl()
            if "encryption" in q and method in ("PUT", "GET", "DELETE"):
                return self._bucket_encryption(bucket)
            if method == "GET" and "location" in q:
                root = ET.Element("LocationConstraint")
                root.text = "oss-cn-hangzhou"
                return self._send_xml(root)
            if method == "GET" and not (set(q) & _SUBRESOURCES - {"continuation-token"}):
                return self._list_objects(bucket)
            if method == "HEAD" and not q:
                return self._send(200)
            if method == "DELETE" and not q:
                return self._delete_bucket(bucket)
            if method in ("GET", "PUT", "DELETE"):
                raise OssError(
                    501, "NotImplemented", "This bucket operation is not supported by the emulator."
                )
            raise OssError(
                405, "MethodNotAllowed", "The specified method is not allowed against this resource."
            )
        bucket = self._bucket()
        if method == "PUT":
            if "partNumber" in q and "uploadId" in q:
                if "x-oss-copy-source" in self.headers:
                    return self._upload_part_copy(bucket)
                return self._upload_part(bucket)
            if "tagging" in q:
                return self._put_tagging(bucket)
            if set(q) & _SUBRESOURCES:
                raise OssError(
                    501, "NotImplemented", "This object operation is not supported by the emulator."
                )
            if "x-oss-copy-source" in self.headers:
                return self._copy_object(bucket)
            return self._put_object(bucket)
        if method == "GET":
            if "uploadId" in q:
                return self._list_parts(bucket)
            if "objectMeta" in q:
                return self._head_object(bucket, meta_only=True)
            if "tagging" in q:
                return self._get_tagging(bucket)
            if "acl" in q:
                with self.server.emulator.lock:
                    self._object(bucket)
                return self._send_acl("default")
            return self._get_object(bucket)
        if method == "HEAD":
            return self._head_object(bucket)
        if method == "DELETE":
            if "uploadId" in q:
                return self._abort(bucket)
            if "tagging" in q:
                return self._delete_tagging(bucket)
            return self._delete_object(bucket)
        if method == "POST":
            if "uploads" in q:
                return self._initiate(bucket)
            if "uploadId" in q:
                return self._complete(bucket)
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    def _bucket(self, name: str | None = None) -> _Bucket:
        name = self.bucket if name is None else name
        bucket = self.server.emulator.buckets.get(name)
        if bucket is None:
            raise OssError(404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=name)
        return bucket

    def _object(self, bucket: _Bucket, key: str | None = None) -> _Object:
        key = self.key if key is None else key
        obj = bucket.objects.get(key)
        if obj is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        return obj

    # ------------------------------------------------------------------ buckets
    def _send_acl(self, grant: str = "private") -> None:
        root = ET.Element("AccessControlPolicy")
        owner = _sub(root, "Owner")
        _sub(owner, "ID", _OWNER_ID)
        _sub(owner, "DisplayName", _OWNER_ID)
        _sub(_sub(root, "AccessControlList"), "Grant", grant)
        self._send_xml(root)

    def _list_buckets(self) -> None:
        root = ET.Element("ListAllMyBucketsResult")
        owner = _sub(root, "Owner")
        _sub(owner, "ID", _OWNER_ID)
        _sub(owner, "DisplayName", _OWNER_ID)
        buckets = _sub(root, "Buckets")
        with self.server.emulator.lock:
            for b in sorted(self.server.emulator.buckets.values(), key=lambda b: b.name):
                node = _sub(buckets, "Bucket")
                _sub(node, "CreationDate", _iso(b.created))
                _sub(node, "ExtranetEndpoint", self.server.emulator.host)
                _sub(node, "IntranetEndpoint", self.server.emulator.host)
                _sub(node, "Location", "oss-cn-hangzhou")
                _sub(node, "Name", b.name)
                _sub(node, "Region", "cn-hangzhou")
                _sub(node, "StorageClass", "Standard")
        self._send_xml(root)

    def _put_bucket(self) -> None:
        self._read_body()
        emu = self.server.emulator
        with emu.lock:
            if self.bucket in emu.buckets:
                raise OssError(409, "BucketAlreadyExists", "The requested bucket name is not available.")
            emu.buckets[self.bucket] = _Bucket(self.bucket, time.time())
        self._send(200, {"Location": f"/{self.bucket}"})

    def _delete_bucket(self, bucket: _Bucket) -> None:
        emu = self.server.emulator
        with emu.lock:
            if bucket.objects or bucket.uploads:
                raise OssError(409, "BucketNotEmpty", "The bucket you tried to delete is not empty.")
            emu.buckets.pop(bucket.name, None)
        self._send(204)

    def _bucket_encryption(self, bucket: _Bucket) -> None:
        """PutBucketEncryption, GetBucketEncryption and DeleteBucketEncryption (``?encryption``)."""
        emu = self.server.emulator
        if self.command == "DELETE":
            with emu.lock:
                bucket.encryption = None
            self._send(204)
            return
        if self.command == "GET":
            with emu.lock:
                rule = bucket.encryption
            if rule is None:
                raise OssError(
                    404,
                    "NoSuchServerSideEncryptionRule",
                    "The server side encryption configuration was not found.",
                    BucketName=bucket.name,
                )
            root = ET.Element("ServerSideEncryptionRule")
            apply = _sub(root, "ApplyServerSideEncryptionByDefault")
            _sub(apply, "SSEAlgorithm", rule[0])
            if rule[1] is not None:
                _sub(apply, "KMSMasterKeyID", rule[1])
            self._send_xml(root)
            return
        body = b"".join(self._body_chunks())
        try:
            root = ET.fromstring(body)  # noqa: S314 - the emulator parses its clients' own XML
        except ET.ParseError:
            raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        apply_node = root.find("ApplyServerSideEncryptionByDefault")
        if root.tag != "ServerSideEncryptionRule" or apply_node is None:
            raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
        algorithm = (apply_node.findtext("SSEAlgorithm") or "").strip()
        key_id = (apply_node.findtext("KMSMasterKeyID") or "").strip() or None
        if algorithm not in _SSE_ALGORITHMS:
            raise OssError(400, "InvalidEncryptionAlgorithmError", _BAD_ALGORITHM)
        if key_id is not None and algorithm != "KMS":
            raise OssError(
                400,
                "InvalidArgument",
                "KMSMasterKeyID is not applicable if the default sse algorithm is not KMS",
            )
        with emu.lock:
            bucket.encryption = (algorithm, key_id)
        self._send(200)

    # ------------------------------------------------------------------ objects
    def _sse_headers(self, bucket: _Bucket, source: _Object | None = None) -> dict[str, str]:
        """The ``x-oss-server-side-encryption`` (and ``-key-id``) an object written by this request keeps:
        the request's, else (a copy) the source's, else the bucket default. KMS without a key id gets
        the emulator's default key id, as OSS uses the account's default KMS key."""
        algorithm = self.headers.get(_SSE)
        key_id = (self.headers.get(_SSE_KEY_ID) or "").strip() or None
        if algorithm is None:
            if key_id is not None:
                raise OssError(400, "InvalidArgument", _KEY_ID_WITHOUT_KMS)
            if source is not None and _SSE in source.headers:
                return _sse_only(source.headers)
            with self.server.emulator.lock:
                default = bucket.encryption
            if default is None:
                return {}
            algorithm, key_id = default
        algorithm = algorithm.strip()
        if algorithm not in _SSE_ALGORITHMS:
            raise OssError(400, "InvalidEncryptionAlgorithmError", _BAD_ALGORITHM)
        if key_id is not None and algorithm != "KMS":
            raise OssError(400, "InvalidArgument", _KEY_ID_WITHOUT_KMS)
        out = {_SSE: algorithm}
        if algorithm == "KMS":
            out[_SSE_KEY_ID] = key_id or self.server.emulator.default_kms_key_id
        return out

    def _storage_class(self, source: _Object | None = None) -> dict[str, str]:
        """The ``x-oss-storage-class`` an object written by this request keeps (none stored: Standard)."""
        value = self.headers.get(_STORAGE_CLASS)
        if value is None:
            if source is not None and _STORAGE_CLASS in source.headers:
                return {_STORAGE_CLASS: source.headers[_STORAGE_CLASS]}
            return {}
        name = _STORAGE_CLASSES.get(value.strip().lower())
        if name is None:
            raise OssError(
                400,
                "InvalidArgument",
                f"The storage class {value!r} is not valid; use Standard, IA, Archive, ColdArchive or "
                "DeepColdArchive.",
            )
        return {_STORAGE_CLASS: name}

    def _settings(self, bucket: _Bucket, stored: dict[str, str], source: _Object | None = None) -> None:
        """Add the server-side encryption and storage class of the object being written to ``stored``."""
        for name in (_SSE, _SSE_KEY_ID, _STORAGE_CLASS):
            stored.pop(name, None)
        stored.update(self._sse_headers(bucket, source))
        stored.update(self._storage_class(source))

    def _get_tagging(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            tags = dict(self._object(bucket).tags)
        root = ET.Element("Tagging")
        tag_set = _sub(root, "TagSet")
        for name, value in tags.items():
            node = _sub(tag_set, "Tag")
            _sub(node, "Key", name)
            _sub(node, "Value", value)
        self._send_xml(root)

    def _put_tagging(self, bucket: _Bucket) -> None:
        body = b"".join(self._body_chunks())
        try:
            root = ET.fromstring(body)  # noqa: S314 - the emulator parses its clients' own XML
        except ET.ParseError:
            raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        tags = {
            node.findtext("Key") or "": node.findtext("Value") or "" for node in root.findall("TagSet/Tag")
        }
        _check_tags(tags)
        with self.server.emulator.lock:
            obj = self._object(bucket)
            bucket.objects[self.key] = replace(obj, tags=tags)
        self._send(200)

    def _delete_tagging(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            obj = self._object(bucket)
            bucket.objects[self.key] = replace(obj, tags={})
        self._send(204)

    def _user_headers(self) -> tuple[str, dict[str, str], dict[str, str]]:
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        meta = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-oss-meta-")}
        stored = {k: self.headers[k] for k in _STORED_HEADERS if self.headers.get(k) is not None}
        return content_type, meta, stored

    def _object_headers(self, obj: _Object) -> dict[str, str]:
        headers = {
            "Content-Type": obj.content_type,
            "ETag": f'"{obj.etag}"',
            "Last-Modified": _http_date(obj.last_modified),
            "x-oss-hash-crc64ecma": str(obj.crc),
            "x-oss-object-type": obj.kind,
            "x-oss-storage-class": "Standard",
            "Accept-Ranges": "bytes",
        }
        headers.update(obj.headers)
        headers.update(obj.meta)
        if obj.tags:
            headers["x-oss-tagging-count"] = str(len(obj.tags))
        return headers

    def _check_overwrite(self, bucket: _Bucket) -> None:
        if (
            self.headers.get("x-oss-forbid-overwrite") or ""
        ).lower() == "true" and self.key in bucket.objects:
            raise OssError(
                409,
                "FileAlreadyExists",
                "The object you specified already exists and can not be overwritten.",
            )

    def _put_object(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            self._check_overwrite(bucket)
        content_type, meta, stored = self._user_headers()
        self._settings(bucket, stored)
        tags = _parse_tagging(self.headers.get("x-oss-tagging") or "")
        data, digest, crc = self._read_body()
        obj = _Object(
            (data,), len(data), digest.hex().upper(), crc, content_type, time.time(), meta, stored, tags=tags
        )
        with self.server.emulator.lock:
            self._check_overwrite(bucket)
            self._bucket().objects[self.key] = obj
        self._send(
            200,
            {
                "ETag": f'"{obj.etag}"',
                "x-oss-hash-crc64ecma": str(crc),
                "Content-MD5": base64.b64encode(digest).decode(),
                **_sse_only(stored),
            },
        )

    def _copy_source(self) -> _Object:
        """Find the ``x-oss-copy-source`` object (``/bucket/url-encoded-key``) and check its conditions.

        Call with the emulator lock held.
        """
        raw, _, query = self.headers["x-oss-copy-source"].partition("?")
        if query:
            raise OssError(501, "NotImplemented", "The emulator does not keep object versions.")
        src_bucket_name, _, src_key = unquote(raw).lstrip("/").partition("/")
        if not src_bucket_name or not src_key:
            raise OssError(400, "InvalidArgument", "x-oss-copy-source is not valid.")
        src = self._object(self._bucket(src_bucket_name), src_key)
        etag = src.etag.upper()
        modified = int(src.last_modified)
        failed = False
        if (value := self.headers.get("x-oss-copy-source-if-match")) is not None:
            failed |= value.strip().strip('"').upper() != etag
        if (value := self.headers.get("x-oss-copy-source-if-none-match")) is not None:
            failed |= value.strip().strip('"').upper() == etag
        if (value := self.headers.get("x-oss-copy-source-if-unmodified-since")) is not None:
            failed |= (when := _parse_http_date(value)) is not None and modified > when
        if (value := self.headers.get("x-oss-copy-source-if-modified-since")) is not None:
            failed |= (when := _parse_http_date(value)) is not None and modified <= when
        if failed:
            raise OssError(
                412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
            )
        return src

    def _copy_object(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            src = self._copy_source()
        directive = (self.headers.get("x-oss-metadata-directive") or "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise OssError(400, "InvalidArgument", "x-oss-metadata-directive must be COPY or REPLACE.")
        tagging = (self.headers.get("x-oss-tagging-directive") or "Copy").upper()
        if tagging not in ("COPY", "REPLACE"):
            raise OssError(400, "InvalidArgument", "x-oss-tagging-directive must be Copy or Replace.")
        self._drain()
        if directive == "REPLACE":
            content_type, meta, stored = self._user_headers()
        else:
            content_type, meta, stored = src.content_type, dict(src.meta), dict(src.headers)
        # Server-side encryption and storage class are the source's unless the request names others,
        # whatever the metadata directive.
        self._settings(bucket, stored, src)
        if tagging == "REPLACE":
            tags = _parse_tagging(self.headers.get("x-oss-tagging") or "")
        else:
            tags = dict(src.tags)
        obj = _Object(
            src.segments, src.size, src.etag, src.crc, content_type, time.time(), meta, stored, src.kind, tags
        )
        with self.server.emulator.lock:
            self._check_overwrite(bucket)
            self._bucket().objects[self.key] = obj
        root = ET.Element("CopyObjectResult")
        _sub(root, "ETag", f'"{obj.etag}"')
        _sub(root, "LastModified", _iso(obj.last_modified))
        self._send_xml(
            root, {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc), **_sse_only(stored)}
        )

    def _parse_range(self, size: int) -> tuple[int, int] | None:
        """Return the ``[start, end)`` byte range to send, or None for the whole object."""
        header = self.headers.get("Range")
        if header is None:
            return None
        standard = (self.headers.get("x-oss-range-behavior") or "").lower() == "standard"
        spec = header.strip()
        invalid = OssError(
            416, "InvalidRange", "The requested range is not satisfiable", ActualObjectSize=str(size)
        )
        if not spec.startswith("bytes=") or "," in spec:
            return None
        first, dash, last = spec[6:].strip().partition("-")
        if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
            return None
        if last and not last.isdigit():
            return None
        if not first:  # suffix range: the last N bytes
            count = int(last)
            if count == 0:
                if standard:
                    raise invalid
                return None
            return max(0, size - count), size
        start = int(first)
        end = int(last) + 1 if last else size
        if last and end <= start:
            if standard:
                raise invalid
            return None
        if start >= size:
            raise invalid
        return start, min(end, size)

    def _check_conditions(self, obj: _Object) -> bool:
        """Apply If-Match / If-None-Match / If-(Un)Modified-Since; False means 304 Not Modified was sent."""
        etag = obj.etag.upper()
        if_match = self.headers.get("If-Match")
        if if_match is not None and if_match.strip().strip('"').upper() != etag:
            raise OssError(
                412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
            )
        modified = int(obj.last_modified)
        since = self.headers.get("If-Unmodified-Since")
        if since is not None and (when := _parse_http_date(since)) is not None and modified > when:
            raise OssError(
                412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold."
            )
        if_none = self.headers.get("If-None-Match")
        since = self.headers.get("If-Modified-Since")
        not_modified = if_none is not None and if_none.strip().strip('"').upper() == etag
        if if_none is None and since is not None and (when := _parse_http_date(since)) is not None:
            not_modified = modified <= when
        if not_modified:
            self._send(
                304, {"ETag": f'"{obj.etag}"', "Last-Modified": _http_date(obj.last_modified)}, length=0
            )
            return False
        return True

    def _get_object(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            obj = self._object(bucket)
        if not self._check_conditions(obj):
            return
        headers = self._object_headers(obj)
        for name, value in self.query.items():
            if name.startswith("response-") and name != "response-expires":
                headers["-".join(p.capitalize() for p in name[len("response-") :].split("-"))] = value
        if self.query.get("response-expires"):
            headers["Expires"] = self.query["response-expires"]
        rng = self._parse_range(obj.size)
        start, end = (0, obj.size) if rng is None else rng
        emu = self.server.emulator
        with emu.lock:
            fault = emu.get_faults.pop((bucket.name, self.key), None)
        stream = obj.slices(start, end)
        if fault is not None:
            stream = _flip(stream, *fault)
        if rng is None:
            self._send(200, headers, stream=stream, length=obj.size)
            return
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{obj.size}"
        self._send(206, headers, stream=stream, length=end - start)

    def _head_object(self, bucket: _Bucket, meta_only: bool = False) -> None:
        with self.server.emulator.lock:
            obj = self._object(bucket)
        if meta_only:
            headers = {
                "ETag": f'"{obj.etag}"',
                "Last-Modified": _http_date(obj.last_modified),
                "x-oss-hash-crc64ecma": str(obj.crc),
                "x-oss-object-size": str(obj.size),
            }
            self._send(200, headers)
            return
        if self._check_conditions(obj):
            self._send(200, self._object_headers(obj), length=obj.size)

    def _delete_object(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            bucket.objects.pop(self.key, None)
        self._send(204)

    # ------------------------------------------------------------------ listing
    def _max(self, name: str, default: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or not 0 < int(raw) <= 1000:
            raise OssError(400, "InvalidArgument", f"{name} must be an integer between 1 and 1000.")
        return int(raw)

    def _list_objects(self, bucket: _Bucket) -> None:
        q = self.query
        v2 = q.get("list-type") == "2"
        url = q.get("encoding-type") == "url"
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        max_keys = self._max("max-keys", 100)
        token = q.get("continuation-token")
        if v2:
            marker = q.get("start-after", "")
            if token:
                try:
                    marker = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
                except (binascii.Error, ValueError):
                    raise OssError(400, "InvalidArgument", "The continuation-token is not valid.") from None
        else:
            marker = q.get("marker", "")
        with self.server.emulator.lock:
            items = sorted(bucket.objects.items())
        contents: list[tuple[str, _Object]] = []
        prefixes: list[str] = []
        truncated = False
        last = ""
        for key, obj in items:
            if not key.startswith(prefix) or (marker and key <= marker):
                continue
            entry: str | None = None
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    entry = key[: cut + len(delimiter)]
                    if (marker and entry <= marker) or (prefixes and prefixes[-1] == entry):
                        continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if entry is None:
                contents.append((key, obj))
                last = key
            else:
                prefixes.append(entry)
                last = entry

        def enc(text: str) -> str:
            return quote(text, safe="") if url else text

        root = ET.Element("ListBucketResult")
        _sub(root, "Name", bucket.name)
        _sub(root, "Prefix", enc(prefix))
        if v2:
            if "start-after" in q:
                _sub(root, "StartAfter", enc(q["start-after"]))
            if token:
                _sub(root, "ContinuationToken", token)
        else:
            _sub(root, "Marker", enc(marker))
        _sub(root, "MaxKeys", str(max_keys))
        _sub(root, "Delimiter", enc(delimiter))
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "IsTruncated", "true" if truncated else "false")
        if truncated:
            if v2:
                _sub(
                    root,
                    "NextContinuationToken",
                    base64.urlsafe_b64encode(last.encode()).decode().rstrip("="),
                )
            else:
                _sub(root, "NextMarker", enc(last))
        if v2:
            _sub(root, "KeyCount", str(len(contents) + len(prefixes)))
        owner = not v2 or q.get("fetch-owner") == "true"
        for key, obj in contents:
            node = _sub(root, "Contents")
            _sub(node, "Key", enc(key))
            _sub(node, "LastModified", _iso(obj.last_modified))
            _sub(node, "ETag", f'"{obj.etag}"')
            _sub(node, "Type", obj.kind)
            _sub(node, "Size", str(obj.size))
            _sub(node, "StorageClass", obj.headers.get(_STORAGE_CLASS, "Standard"))
            if owner:
                owner_node = _sub(node, "Owner")
                _sub(owner_node, "ID", _OWNER_ID)
                _sub(owner_node, "DisplayName", _OWNER_ID)
        for entry in prefixes:
            _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(entry))
        self._send_xml(root)

    # ------------------------------------------------------------------ multipart
    def _upload(self, bucket: _Bucket) -> _Upload:
        upload = bucket.uploads.get(self.query.get("uploadId", ""))
        if upload is None or upload.key != self.key:
            raise OssError(
                404,
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, "
                "or the upload may have been aborted or completed.",
                UploadId=self.query.get("uploadId", ""),
            )
        return upload

    def _initiate(self, bucket: _Bucket) -> None:
        self._drain()
        content_type, meta, stored = self._user_headers()
        self._settings(bucket, stored)
        tags = _parse_tagging(self.headers.get("x-oss-tagging") or "")
        emu = self.server.emulator
        with emu.lock:
            emu.upload_counter += 1  # ids sort in initiation order, as ListMultipartUploads pages by them
            upload_id = f"{emu.upload_counter:012X}{secrets.token_hex(10).upper()}"
        upload = _Upload(self.key, upload_id, time.time(), content_type, meta, stored, tags=tags)
        with self.server.emulator.lock:
            self._bucket().uploads[upload.upload_id] = upload
        url = self.query.get("encoding-type") == "url"
        root = ET.Element("InitiateMultipartUploadResult")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "Key", quote(self.key, safe="") if url else self.key)
        _sub(root, "UploadId", upload.upload_id)
        if url:
            _sub(root, "EncodingType", "url")
        self._send_xml(root, _sse_only(stored))

    def _upload_part(self, bucket: _Bucket) -> None:
        raw = self.query.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            raise OssError(
                400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive."
            )
        with self.server.emulator.lock:
            self._upload(bucket)
        data, digest, crc = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith(_CSE_PREFIX)}
        with self.server.emulator.lock:
            upload = self._upload(self._bucket())
            upload.parts[int(raw)] = _Part(data, digest, crc, time.time(), headers)
        answer = {"ETag": f'"{digest.hex().upper()}"', "x-oss-hash-crc64ecma": str(crc)}
        self._send(200, {**answer, **_sse_only(upload.headers)})

    def _copy_range(self, size: int) -> tuple[int, int]:
        """Return the ``[start, end)`` bytes of ``x-oss-copy-source-range`` (``bytes=first-last``).

        As OSS documents, a range that does not follow the syntax copies the whole source; a well-formed
        range reaching past the end of the source is refused with 400 InvalidArgument.
        """
        spec = (self.headers.get("x-oss-copy-source-range") or "").strip()
        first, dash, last = spec[6:].strip().partition("-") if spec.startswith("bytes=") else ("", "", "")
        if not dash or not (first or last) or not all(p.isdigit() for p in (first, last) if p):
            return 0, size
        if not first:  # suffix: the last N bytes
            count = int(last)
            if count == 0 or count > size:
                raise OssError(400, "InvalidArgument", "The specified copy range is not valid.")
            return size - count, size
        start = int(first)
        end = int(last) + 1 if last else size
        if end <= start and last:
            return 0, size
        if start >= size or end > size:
            raise OssError(
                400,
                "InvalidArgument",
                f"The specified copy range {spec} exceeds the source object size {size}.",
            )
        return start, end

    def _upload_part_copy(self, bucket: _Bucket) -> None:
        raw = self.query.get("partNumber", "")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            raise OssError(
                400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive."
            )
        self._drain()
        with self.server.emulator.lock:
            self._upload(bucket)
            src = self._copy_source()
        start, end = self._copy_range(src.size)
        data = b"".join(src.slices(start, end))
        digest = hashlib.md5(data).digest()  # noqa: S324 - OSS ETags are MD5
        crc = Crc64()
        crc.update(data)
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith(_CSE_PREFIX)}
        part = _Part(data, digest, crc.value, time.time(), headers)
        with self.server.emulator.lock:
            upload = self._upload(self._bucket())
            upload.parts[int(raw)] = part
        etag = f'"{digest.hex().upper()}"'
        root = ET.Element("CopyPartResult")
        _sub(root, "LastModified", _iso(part.last_modified))
        _sub(root, "ETag", etag)
        self._send_xml(root, {"ETag": etag, "x-oss-hash-crc64ecma": str(part.crc)})

    def _complete(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            self._upload(bucket)
        body = b"".join(self._body_chunks())
        with self.server.emulator.lock:
            upload = self._upload(self._bucket())
            if (self.headers.get("x-oss-complete-all") or "").lower() == "yes":
                if body:
                    raise OssError(400, "InvalidArgument", "Body must be empty with x-oss-complete-all: yes.")
                chosen = sorted(upload.parts.items())
            else:
                chosen = self._chosen_parts(upload, body)
            if not chosen:
                raise OssError(400, "InvalidArgument", "You must specify at least one part.")
            self._check_overwrite(bucket)
            min_size = self.server.emulator.min_part_size
            for _, part in chosen[:-1]:
                if len(part.data) < min_size:
                    raise OssError(
                        400,
                        "EntityTooSmall",
                        "Your proposed upload is smaller than the minimum allowed size.",
                    )
            crc = chosen[0][1].crc
            for _, part in chosen[1:]:
                crc = crc64_combine(crc, part.crc, len(part.data))
            etag = hashlib.md5(b"".join(p.md5 for _, p in chosen)).hexdigest().upper()  # noqa: S324
            obj = _Object(
                tuple(p.data for _, p in chosen),
                sum(len(p.data) for _, p in chosen),
                f"{etag}-{len(chosen)}",
                crc,
                upload.content_type,
                time.time(),
                upload.meta,
                upload.headers,
                "Multipart",
                dict(upload.tags),
            )
            self._bucket().objects[self.key] = obj
            del self._bucket().uploads[upload.upload_id]
        url = self.query.get("encoding-type") == "url"
        root = ET.Element("CompleteMultipartUploadResult")
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "Location", f"{self.server.emulator.endpoint}/{bucket.name}/{quote(self.key)}")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "Key", quote(self.key, safe="") if url else self.key)
        _sub(root, "ETag", f'"{obj.etag}"')
        self._send_xml(root, {"ETag": f'"{obj.etag}"', "x-oss-hash-crc64ecma": str(obj.crc)})

    def _chosen_parts(self, upload: _Upload, body: bytes) -> list[tuple[int, _Part]]:
        try:
            root = ET.fromstring(body)  # noqa: S314 - the emulator parses its clients' own XML
        except ET.ParseError:
            raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.") from None
        chosen: list[tuple[int, _Part]] = []
        previous = 0
        for node in root.findall("Part"):
            number_text = node.findtext("PartNumber", "")
            etag = node.findtext("ETag", "").strip().strip('"').upper()
            if not number_text.strip().isdigit():
                raise OssError(400, "MalformedXML", "The XML you provided was not well-formed.")
            number = int(number_text)
            if number <= previous:
                raise OssError(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
            previous = number
            part = upload.parts.get(number)
            if part is None or part.md5.hex().upper() != etag:
                raise OssError(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found or the specified entity tag might "
                    "not have matched the part's entity tag.",
                    PartNumber=str(number),
                    ETag=etag,
                )
            chosen.append((number, part))
        return chosen

    def _abort(self, bucket: _Bucket) -> None:
        with self.server.emulator.lock:
            upload = self._upload(bucket)
            del bucket.uploads[upload.upload_id]
        self._send(204)

    def _list_parts(self, bucket: _Bucket) -> None:
        max_parts = self._max("max-parts", 1000)
        marker_raw = self.query.get("part-number-marker", "") or "0"
        if not marker_raw.isdigit():
            raise OssError(400, "InvalidArgument", "part-number-marker must be an integer.")
        marker = int(marker_raw)
        with self.server.emulator.lock:
            upload = self._upload(bucket)
            parts = sorted((n, p) for n, p in upload.parts.items() if n > marker)
        page, truncated = parts[:max_parts], len(parts) > max_parts
        url = self.query.get("encoding-type") == "url"
        root = ET.Element("ListPartsResult")
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "Key", quote(self.key, safe="") if url else self.key)
        _sub(root, "UploadId", upload.upload_id)
        _sub(root, "StorageClass", "Standard")
        _sub(root, "PartNumberMarker", str(marker))
        _sub(root, "NextPartNumberMarker", str(page[-1][0] if page else marker))
        _sub(root, "MaxParts", str(max_parts))
        _sub(root, "IsTruncated", "true" if truncated else "false")
        for suffix, tag in _CSE_LIST_PARTS:
            value = upload.meta.get(_CSE_PREFIX + suffix)
            if value is not None:
                _sub(root, tag, value)
        for number, part in page:
            node = _sub(root, "Part")
            _sub(node, "PartNumber", str(number))
            _sub(node, "LastModified", _iso(part.last_modified))
            _sub(node, "ETag", f'"{part.md5.hex().upper()}"')
            _sub(node, "HashCrc64ecma", str(part.crc))
            _sub(node, "Size", str(len(part.data)))
        self._send_xml(root)

    def _list_uploads(self, bucket: _Bucket) -> None:
        q = self.query
        url = q.get("encoding-type") == "url"
        prefix = q.get("prefix", "")
        delimiter = q.get("delimiter", "")
        key_marker = q.get("key-marker", "")
        id_marker = q.get("upload-id-marker", "")
        max_uploads = self._max("max-uploads", 1000)
        with self.server.emulator.lock:
            uploads = sorted((u for u in bucket.uploads.values()), key=lambda u: (u.key, u.upload_id))
        chosen: list[_Upload] = []
        prefixes: list[str] = []
        truncated = False
        past_marker = not key_marker
        for upload in uploads:
            if not upload.key.startswith(prefix):
                continue
            if not past_marker:
                if upload.key < key_marker or (
                    upload.key == key_marker and (not id_marker or upload.upload_id <= id_marker)
                ):
                    continue
                past_marker = True
            entry: str | None = None
            if delimiter:
                cut = upload.key.find(delimiter, len(prefix))
                if cut >= 0:
                    entry = upload.key[: cut + len(delimiter)]
                    if prefixes and prefixes[-1] == entry:
                        continue
            if len(chosen) + len(prefixes) >= max_uploads:
                truncated = True
                break
            if entry is None:
                chosen.append(upload)
            else:
                prefixes.append(entry)

        def enc(text: str) -> str:
            return quote(text, safe="") if url else text

        root = ET.Element("ListMultipartUploadsResult")
        if url:
            _sub(root, "EncodingType", "url")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "KeyMarker", enc(key_marker))
        _sub(root, "UploadIdMarker", id_marker)
        _sub(root, "NextKeyMarker", enc(chosen[-1].key if truncated and chosen else ""))
        _sub(root, "NextUploadIdMarker", chosen[-1].upload_id if truncated and chosen else "")
        _sub(root, "Delimiter", enc(delimiter))
        _sub(root, "Prefix", enc(prefix))
        _sub(root, "MaxUploads", str(max_uploads))
        _sub(root, "IsTruncated", "true" if truncated else "false")
        for upload in chosen:
            node = _sub(root, "Upload")
            _sub(node, "Key", enc(upload.key))
            _sub(node, "UploadId", upload.upload_id)
            _sub(node, "StorageClass", "Standard")
            _sub(node, "Initiated", _iso(upload.initiated))
        for entry in prefixes:
            _sub(_sub(root, "CommonPrefixes"), "Prefix", enc(entry))
        self._send_xml(root)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: OssEmulator) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that drops its (kept-alive) connection is normal; other errors are printed."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class OssEmulator:
    """An OSS server on a local port, for tests: path-style, signature-checking, in memory.

    Use it as a context manager or call :meth:`start` and :meth:`stop`. Point oss2 at :attr:`endpoint`
    (``oss2.Bucket(oss2.Auth(ak, sk), emulator.endpoint, "bucket")``) or alibabacloud-oss-v2 with
    ``cfg.endpoint = emulator.endpoint``, ``cfg.use_path_style = True`` and ``cfg.disable_ssl = True``.
    """

    def __init__(
        self,
        access_key_id: str = "test-access-key-id",
        access_key_secret: str = "test-access-key-secret",  # noqa: S107
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        security_token: str | None = None,
        buckets: Sequence[str] = (),
        min_part_size: int = 100 * 1024,
    ) -> None:
        """Configure the credentials it accepts, the address, an optional STS token and initial buckets.

        ``min_part_size`` is the smallest size OSS allows for every part but the last (100 KiB).
        """
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.host = host
        self.port = port
        self.security_token = security_token
        self.min_part_size = min_part_size
        self.lock = threading.RLock()
        self.buckets: dict[str, _Bucket] = {}
        self.request_log: list[RequestRecord] = []
        self.upload_counter = 0
        #: The key id reported for SSE-KMS without one (OSS's default KMS key of the account).
        self.default_kms_key_id = str(uuid.uuid4())
        self.get_faults: dict[tuple[str, str], tuple[int, int]] = {}
        """Pending :meth:`corrupt_next_get` faults: (bucket, key) -> (offset, xor)."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        for name in buckets:
            self.create_bucket(name)

    @property
    def endpoint(self) -> str:
        """The base URL, ``http://HOST:PORT`` (the port is known once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> OssEmulator:
        """Bind the port and serve requests on a background thread; return self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="oss-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> OssEmulator:
        """Start the emulator."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the emulator."""
        self.stop()

    def create_bucket(self, name: str) -> None:
        """Create an empty bucket (no error if it already exists)."""
        with self.lock:
            self.buckets.setdefault(name, _Bucket(name, time.time()))

    def get_object_bytes(self, bucket: str, key: str) -> bytes:
        """Return the stored bytes of an object, for assertions (raises KeyError if absent)."""
        with self.lock:
            obj = self.buckets[bucket].objects[key]
        return b"".join(obj.segments)

    def get_object_metadata(self, bucket: str, key: str) -> dict[str, str]:
        """Return the stored ``x-oss-meta-*`` headers of an object, names lower-cased."""
        with self.lock:
            return dict(self.buckets[bucket].objects[key].meta)

    def clear_log(self) -> None:
        """Empty :attr:`request_log`."""
        with self.lock:
            self.request_log.clear()

    # ------------------------------------------------------------------ fault injection
    def corrupt_next_get(self, bucket: str, key: str, offset: int = 0, xor: int = 0x01) -> None:
        """Make the next GET of the object send one byte altered in transit, for corruption tests.

        The byte at ``offset``, counted from the first byte that GET serves (the start of its range, if it
        asks for one), is XORed with ``xor``; the stored object and every header (Content-Length, ETag,
        ``x-oss-hash-crc64ecma``) stay as they are, so a client that checks the CRC-64 or MD5 of what it
        received sees a mismatch. One-shot: the first GET that sends the object's body consumes it (an
        error or a 304 answer does not, a HEAD never does); if ``offset`` lies past the bytes that GET
        serves, nothing is altered. A later call for the same object replaces a pending one.
        """
        _check_xor(xor)
        if offset < 0:
            raise ValueError(f"offset must not be negative, not {offset}")
        with self.lock:
            if key not in self.buckets[bucket].objects:
                raise KeyError(key)
            self.get_faults[(bucket, key)] = (offset, xor)

    def tamper_object(self, bucket: str, key: str, offset: int, xor: int = 0x01) -> None:
        """Alter one stored byte at rest: the byte at ``offset`` is XORed with ``xor``.

        The ETag (the MD5 of the original upload), Last-Modified, type and metadata are kept, as bit rot
        or an overwrite that preserves the headers would leave them, so an ETag check does not reveal it.
        The stored CRC-64 is recomputed, because the server always reports the CRC of what it stores:
        a GET of the tampered object passes the SDKs' transport CRC check and only a check against an
        independently kept digest (or an authenticated encryption tag) detects the change. Other objects
        that share the bytes (copies) are not affected. Raises KeyError if the object is absent and
        IndexError if ``offset`` is outside it.
        """
        _check_xor(xor)
        with self.lock:
            objects = self.buckets[bucket].objects
            obj = objects[key]
            if not 0 <= offset < obj.size:
                raise IndexError(f"offset {offset} is outside the object of {obj.size} bytes")
            data = bytearray(b"".join(obj.segments))
            data[offset] ^= xor
            objects[key] = replace(obj, segments=(bytes(data),), crc=crc64(data))

    def truncate_object(self, bucket: str, key: str, length: int) -> None:
        """Keep only the first ``length`` stored bytes of the object.

        As with :meth:`tamper_object`, the stored CRC-64 is recomputed over the remaining bytes while the
        ETag, Last-Modified and metadata are kept. Raises KeyError if the object is absent and ValueError
        if ``length`` is negative or larger than the object.
        """
        with self.lock:
            objects = self.buckets[bucket].objects
            obj = objects[key]
            if not 0 <= length <= obj.size:
                raise ValueError(f"length {length} is not between 0 and the object size {obj.size}")
            data = b"".join(obj.slices(0, length))
            objects[key] = replace(obj, segments=(data,), size=length, crc=crc64(data))

    def replace_metadata(self, bucket: str, key: str, metadata: dict[str, str]) -> None:
        """Replace the stored ``x-oss-meta-*`` user metadata of the object with ``metadata``.

        Names are given without the ``x-oss-meta-`` prefix (a name that already has it is taken as is)
        and are stored lower-cased, as OSS does; the bytes, ETag, CRC-64 and other headers are kept.
        Raises KeyError if the object is absent.
        """
        prefix = "x-oss-meta-"
        meta = {
            (name.lower() if name.lower().startswith(prefix) else prefix + name.lower()): value
            for name, value in metadata.items()
        }
        with self.lock:
            objects = self.buckets[bucket].objects
            objects[key] = replace(objects[key], meta=meta)
