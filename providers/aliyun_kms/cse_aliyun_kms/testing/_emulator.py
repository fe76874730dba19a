"""An in-process Alibaba Cloud KMS server speaking the RPC protocol (API version 2016-01-20).

The emulator verifies requests the way the KMS gateway does for ``aliyunsdkcore``'s ``AcsClient`` (HMAC-SHA1
signature version 1.0 over the sorted, percent-encoded parameters of the query string and of a form body),
and serves ``GenerateDataKey``, ``Encrypt`` and ``Decrypt`` with real AES-256-GCM under per-key versions.

Ciphertext blobs are self-describing, so ``Decrypt`` needs no ``KeyId``::

    base64( 0x01 || u16 len || key id || u16 len || key version id || nonce(12) || AES-GCM(ciphertext||tag) )

The GCM associated data is the blob header followed by the canonical JSON of the encryption context (sorted
keys, no whitespace), which binds both the key version and the context to the ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import os
import struct
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KmsEmulator", "KmsError", "RequestRecord", "canonical_string_to_sign", "percent_encode"]

API_VERSION = "2016-01-20"
_BLOB_VERSION = 1
_MAX_TIMESTAMP_SKEW = datetime.timedelta(minutes=15)
_MAX_ENCRYPT_PLAINTEXT = 6144
_KEY_SPECS = {"AES_256": 32, "AES_128": 16}


def percent_encode(value: str) -> str:
    """Percent-encode ``value`` as Alibaba Cloud RPC signing does (RFC 3986: ``~`` stays, space is %20)."""
    return quote(value, safe="-_.~")


def canonical_string_to_sign(method: str, params: dict[str, str]) -> str:
    """Build the RPC ``StringToSign`` of ``params`` (``Signature`` excluded) as aliyunsdkcore does."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(query)}"


class KmsError(Exception):
    """A KMS error response: an HTTP status, an error code and a message, as the gateway returns them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        """Create the error with its HTTP ``status``, error ``code`` and ``message``."""
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _invalid(name: str) -> KmsError:
    return KmsError(400, "InvalidParameter", f'The specified parameter "{name}" is not valid.')


def _missing(name: str) -> KmsError:
    return KmsError(400, "MissingParameter", f'The parameter "{name}" is needed but not provided.')


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator received: its action, parameters (without ``Signature``) and outcome."""

    method: str
    action: str
    params: dict[str, str]
    status: int
    request_id: str
    error_code: str | None = None


@dataclass
class _Key:
    key_id: str
    description: str
    versions: dict[str, bytes] = field(default_factory=dict)
    primary_version: str = ""
    enabled: bool = True


class KmsEmulator:
    """An Alibaba Cloud KMS RPC server on a local port, for tests (``with KmsEmulator() as kms: ...``).

    Point ``aliyunsdkcore``'s ``AcsClient`` at it with ``client.add_endpoint(region, "Kms", kms.endpoint)``;
    the endpoint carries the ``http://`` scheme, which makes the SDK use plain HTTP.
    """

    def __init__(
        self,
        access_key_id: str = "test-access-key-id",
        access_key_secret: str = "test-access-key-secret",  # noqa: S107 - a test double
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = "cn-hangzhou",
        *,
        security_token: str | None = None,
        signature_error_code: str = "SignatureDoesNotMatch",
    ) -> None:
        """Configure the emulator; it listens only after :meth:`start`.

        ``security_token`` (optional) makes the credential an STS one: requests must then carry the same
        ``SecurityToken``. ``signature_error_code`` is ``SignatureDoesNotMatch`` (what the public gateway
        returns and aliyunsdkcore recognizes) or ``IncompleteSignature``.
        """
        self.host = host
        self.port = port
        self.region = region
        self.signature_error_code = signature_error_code
        self.call_counts: Counter[str] = Counter()
        self.request_log: list[RequestRecord] = []
        self._credentials: dict[str, tuple[str, str | None]] = {}
        self._keys: dict[str, _Key] = {}
        self._aliases: dict[str, str] = {}
        self._nonces: set[str] = set()
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.add_credentials(access_key_id, access_key_secret, security_token)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> KmsEmulator:
        """Bind the port and serve requests on a daemon thread; returns ``self``."""
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"emulator": self})
        server = ThreadingHTTPServer((self.host, self.port), handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="kms-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Start (if needed) and block until interrupted."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> KmsEmulator:
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

    @property
    def endpoint(self) -> str:
        """The base URL, ``http://host:port``, to pass to ``AcsClient.add_endpoint``."""
        if self._server is None:
            raise RuntimeError("the KMS emulator is not started")
        return f"http://{self.host}:{self.port}"

    # -- administration --------------------------------------------------------------------------------------

    def add_credentials(
        self, access_key_id: str, access_key_secret: str, security_token: str | None = None
    ) -> None:
        """Accept another AccessKey pair (requiring ``SecurityToken`` if ``security_token`` is given)."""
        with self._lock:
            self._credentials[access_key_id] = (access_key_secret, security_token)

    def create_key(self, description: str = "") -> str:
        """Create an enabled symmetric key with one version; returns its key id."""
        key = _Key(key_id=str(uuid.uuid4()), description=description)
        self._add_version(key)
        with self._lock:
            self._keys[key.key_id] = key
        return key.key_id

    def create_alias(self, alias: str, key_id: str) -> None:
        """Bind ``alias`` (``alias/<name>``) to ``key_id``."""
        if not alias.startswith("alias/") or len(alias) <= len("alias/"):
            raise ValueError("alias names start with 'alias/'")
        with self._lock:
            self._aliases[alias] = self._resolve(key_id).key_id

    def rotate_key(self, key_id: str) -> str:
        """Add a new primary key version (older versions still decrypt); returns its version id."""
        with self._lock:
            return self._add_version(self._resolve(key_id))

    def key_versions(self, key_id: str) -> list[str]:
        """The version ids of a key, oldest first."""
        with self._lock:
            return list(self._resolve(key_id).versions)

    def primary_version(self, key_id: str) -> str:
        """The version id new ciphertexts of ``key_id`` are made with."""
        with self._lock:
            return self._resolve(key_id).primary_version

    def disable_key(self, key_id: str) -> None:
        """Disable a key: its use then fails with ``Rejected.Disabled``."""
        with self._lock:
            self._resolve(key_id).enabled = False

    def enable_key(self, key_id: str) -> None:
        """Enable a disabled key again."""
        with self._lock:
            self._resolve(key_id).enabled = True

    def reset_counters(self) -> None:
        """Clear :attr:`call_counts` and :attr:`request_log`."""
        with self._lock:
            self.call_counts.clear()
            self.request_log.clear()

    @staticmethod
    def _add_version(key: _Key) -> str:
        version_id = str(uuid.uuid4())
        key.versions[version_id] = AESGCM.generate_key(bit_length=256)
        key.primary_version = version_id
        return version_id

    def _resolve(self, key_id: str) -> _Key:
        ref = key_id
        if ref.startswith("acs:kms:"):  # ARN: acs:kms:<region>:<uid>:key/<id> or ...:alias/<name>
            arn_region = ref.split(":", 4)[2]
            if arn_region != self.region:  # a regional KMS knows the keys of its own region only
                raise KmsError(404, "Forbidden.KeyNotFound", "The specified Key is not found.")
            resource = ref.split(":", 4)[-1]
            ref = resource[len("key/") :] if resource.startswith("key/") else resource
        if ref.startswith("alias/"):
            target = self._aliases.get(ref)
            if target is None:
                raise KmsError(404, "Forbidden.AliasNotFound", "The specified Alias is not found.")
            ref = target
        key = self._keys.get(ref)
        if key is None:
            raise KmsError(404, "Forbidden.KeyNotFound", "The specified Key is not found.")
        return key

    def _usable(self, key_id: str) -> _Key:
        key = self._resolve(key_id)
        if not key.enabled:
            raise KmsError(
                409, "Rejected.Disabled", "The request was rejected because the key state is Disabled."
            )
        return key

    # -- request handling ------------------------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """Serve one HTTP request (used by the HTTP handler); returns the status and the JSON body."""
        request_id = str(uuid.uuid4()).upper()
        params: dict[str, str] = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
        content_type = headers.get("content-type", "")
        if body and ("x-www-form-urlencoded" in content_type or not content_type):
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        action = params.get("Action") or headers.get("x-acs-action", "")
        try:
            if urlsplit(target).path not in ("", "/"):
                raise KmsError(
                    404, "InvalidAction.NotFound", "Specified api is not found, please check your url."
                )
            if method not in ("GET", "POST"):
                raise KmsError(403, "UnsupportedHTTPMethod", "This http method is not supported.")
            with self._lock:
                self._authenticate(method, params)
            version = params.get("Version") or headers.get("x-acs-version", "")
            if version != API_VERSION:
                raise KmsError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            operation = _OPERATIONS.get(action)
            if operation is None:
                raise KmsError(404, "InvalidAction.NotFound", f"Specified api {action!r} is not found.")
            if params.get("DryRun", "").lower() == "true":
                raise KmsError(
                    400, "DryRunOperation", "Request validation has been passed with DryRun flag set."
                )
            with self._lock:
                result = operation(self, params)
        except KmsError as err:
            body_obj: dict[str, Any] = {
                "RequestId": request_id,
                "HostId": f"kms.{self.region}.aliyuncs.com",
                "Code": err.code,
                "Message": err.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}",
            }
            self._record(method, action, params, err.status, request_id, err.code)
            return err.status, body_obj
        result["RequestId"] = request_id
        with self._lock:
            self.call_counts[action] += 1
        self._record(method, action, params, 200, request_id, None)
        return 200, result

    def _record(
        self, method: str, action: str, params: dict[str, str], status: int, request_id: str, code: str | None
    ) -> None:
        logged = {k: v for k, v in params.items() if k != "Signature"}
        with self._lock:
            self.request_log.append(RequestRecord(method, action, logged, status, request_id, code))

    def _authenticate(self, method: str, params: dict[str, str]) -> None:
        access_key_id = params.get("AccessKeyId")
        if not access_key_id:
            raise _missing("AccessKeyId")
        credential = self._credentials.get(access_key_id)
        if credential is None:
            raise KmsError(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found or invalid."
            )
        secret, token = credential
        if params.get("SignatureMethod") != "HMAC-SHA1":
            raise KmsError(400, "InvalidSignatureMethod", "Specified signature method is not supported.")
        if params.get("SignatureVersion") != "1.0":
            raise KmsError(400, "InvalidSignatureVersion", "Specified signature version is not supported.")
        signature = params.get("Signature")
        if not signature:
            raise _missing("Signature")
        for name in ("SignatureNonce", "Timestamp"):
            if not params.get(name):
                raise _missing(name)
        try:
            stamp = datetime.datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            raise KmsError(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            ) from None
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        if abs(now - stamp) > _MAX_TIMESTAMP_SKEW:
            raise KmsError(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
        string_to_sign = canonical_string_to_sign(method, params)
        digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), signature):
            prefix = (
                "Specified signature is not matched with our calculation."
                if self.signature_error_code == "SignatureDoesNotMatch"
                else "The request signature does not conform to Aliyun standards."
            )
            message = f"{prefix} server string to sign is:{string_to_sign}"
            raise KmsError(400, self.signature_error_code, message)
        if token is not None and params.get("SecurityToken") != token:
            raise KmsError(
                400,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
            )
        nonce = params["SignatureNonce"]
        if nonce in self._nonces:
            raise KmsError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(nonce)

    # -- cryptography ----------------------------------------------------------------------------------------

    def _seal(self, key: _Key, plaintext: bytes, context: bytes) -> str:
        version_id = key.primary_version
        kid, vid = key.key_id.encode(), version_id.encode()
        header = struct.pack(">BH", _BLOB_VERSION, len(kid)) + kid + struct.pack(">H", len(vid)) + vid
        nonce = os.urandom(12)
        sealed = AESGCM(key.versions[version_id]).encrypt(nonce, plaintext, header + context)
        return base64.b64encode(header + nonce + sealed).decode("ascii")

    def _open(self, blob_b64: str, context: bytes) -> tuple[_Key, str, bytes]:
        try:
            blob = base64.b64decode(blob_b64, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid("CiphertextBlob") from None
        bad = KmsError(400, "InvalidCiphertext", "The specified Ciphertext is not valid.")
        try:
            version, klen = struct.unpack_from(">BH", blob, 0)
            kid = blob[3 : 3 + klen].decode("utf-8")
            (vlen,) = struct.unpack_from(">H", blob, 3 + klen)
            start = 5 + klen
            vid = blob[start : start + vlen].decode("utf-8")
        except (struct.error, UnicodeDecodeError):
            raise bad from None
        header_end = start + vlen
        if version != _BLOB_VERSION or len(blob) < header_end + 12 + 16 or not kid or not vid:
            raise bad
        key = self._keys.get(kid)
        if key is None:
            raise KmsError(404, "Forbidden.KeyNotFound", "The specified Key is not found.")
        if not key.enabled:
            raise KmsError(
                409, "Rejected.Disabled", "The request was rejected because the key state is Disabled."
            )
        material = key.versions.get(vid)
        if material is None:
            raise bad
        nonce = blob[header_end : header_end + 12]
        try:
            plaintext = AESGCM(material).decrypt(nonce, blob[header_end + 12 :], blob[:header_end] + context)
        except InvalidTag:
            raise bad from None
        return key, vid, plaintext

    def _generate_data_key(self, params: dict[str, str]) -> dict[str, Any]:
        key = self._usable(_required(params, "KeyId"))
        spec = params.get("KeySpec") or "AES_256"
        if spec not in _KEY_SPECS:
            raise _invalid("KeySpec")
        size = _KEY_SPECS[spec]
        if params.get("NumberOfBytes"):
            try:
                size = int(params["NumberOfBytes"])
            except ValueError:
                raise _invalid("NumberOfBytes") from None
            if not 1 <= size <= 1024:
                raise _invalid("NumberOfBytes")
        context = _context(params)
        plaintext_b64 = base64.b64encode(os.urandom(size)).decode("ascii")
        blob = self._seal(key, plaintext_b64.encode("ascii"), context)
        return {
            "CiphertextBlob": blob,
            "KeyId": key.key_id,
            "KeyVersionId": key.primary_version,
            "Plaintext": plaintext_b64,
        }

    def _encrypt(self, params: dict[str, str]) -> dict[str, Any]:
        key = self._usable(_required(params, "KeyId"))
        plaintext = _required(params, "Plaintext").encode("utf-8")
        if len(plaintext) > _MAX_ENCRYPT_PLAINTEXT:
            raise _invalid("Plaintext")
        blob = self._seal(key, plaintext, _context(params))
        return {"CiphertextBlob": blob, "KeyId": key.key_id, "KeyVersionId": key.primary_version}

    def _decrypt(self, params: dict[str, str]) -> dict[str, Any]:
        blob = _required(params, "CiphertextBlob")
        key, version_id, plaintext = self._open(blob, _context(params))
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - blobs only ever hold text
            text = base64.b64encode(plaintext).decode("ascii")
        return {"KeyId": key.key_id, "KeyVersionId": version_id, "Plaintext": text}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise _missing(name)
    return value


def _context(params: dict[str, str]) -> bytes:
    """The canonical JSON of the EncryptionContext parameter (``b""`` when absent or empty)."""
    raw = params.get("EncryptionContext", "")
    if not raw.strip():
        return b""
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise _invalid("EncryptionContext") from None
    if not isinstance(parsed, dict):
        raise _invalid("EncryptionContext")
    if not parsed:
        return b""
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_OPERATIONS = {
    "GenerateDataKey": KmsEmulator._generate_data_key,
    "Encrypt": KmsEmulator._encrypt,
    "Decrypt": KmsEmulator._decrypt,
}


class _Handler(BaseHTTPRequestHandler):
    emulator: KmsEmulator
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.emulator.handle(self.command, self.path, headers, body)
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-acs-request-id", str(payload.get("RequestId", "")))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""
