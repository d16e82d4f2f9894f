"""A tiny stdlib-only Kafka protocol probe: ApiVersions and broker count.

Used by ``pipeline doctor`` to tell the broker generation, and by ``scripts/kafka-local`` (which
loads this file directly, before any virtualenv exists) to wait until brokers answer metadata.
It speaks plaintext, or TLS plus SASL/SCRAM (RFC 5802, SaslHandshake v1 and SaslAuthenticate
v1) for a secure listener.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import ssl
import struct
from dataclasses import dataclass

__all__ = [
    "ProbeResult",
    "Security",
    "api_versions",
    "describe_generation",
    "metadata_broker_count",
]

API_FETCH = 1
API_METADATA = 3
API_SASL_HANDSHAKE = 17
API_VERSIONS = 18
API_SASL_AUTHENTICATE = 36
API_CONSUMER_GROUP_HEARTBEAT = 68  # KIP-848
API_SHARE_GROUP_HEARTBEAT = 76  # KIP-932

ProbeResult = dict[int, tuple[int, int]]


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed by broker")
        buf += chunk
    return buf


def _request(sock: socket.socket, api_key: int, version: int, body: bytes, corr: int) -> bytes:
    client = b"pipeline-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv(sock, 4))
    data = _recv(sock, size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise OSError("correlation id mismatch")
    return data[4:]


def _api_versions(sock: socket.socket) -> ProbeResult:
    resp = _request(sock, API_VERSIONS, 0, b"", 1)
    (error,) = struct.unpack(">h", resp[:2])
    if error:
        raise OSError(f"ApiVersions returned error code {error}")
    (count,) = struct.unpack(">i", resp[2:6])
    out: ProbeResult = {}
    for i in range(count):
        key, lo, hi = struct.unpack(">hhh", resp[6 + 6 * i : 12 + 6 * i])
        out[key] = (lo, hi)
    return out


def api_versions(
    host: str, port: int, timeout: float = 3.0, security: Security | None = None
) -> ProbeResult:
    """Return ``{api_key: (min_version, max_version)}`` from one broker."""
    with _connect(host, port, timeout, security) as sock:
        return _api_versions(sock)


@dataclass(frozen=True)
class Security:
    """TLS (trusting ``ca_file``) and SASL/SCRAM credentials for a secure listener."""

    ca_file: str
    username: str
    password: str
    mechanism: str = "SCRAM-SHA-512"

    def __repr__(self) -> str:  # the password never appears in a repr
        return f"Security(ca_file={self.ca_file!r}, username={self.username!r}, ...)"


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def _sasl_round(sock: socket.socket, data: bytes, corr: int) -> bytes:
    resp = _request(sock, API_SASL_AUTHENTICATE, 1, struct.pack(">i", len(data)) + data, corr)
    (error,) = struct.unpack(">h", resp[:2])
    (length,) = struct.unpack(">h", resp[2:4])
    message = resp[4 : 4 + max(length, 0)].decode(errors="replace")
    if error:
        raise OSError(f"SASL authentication failed: {message or f'error code {error}'}")
    at = 4 + max(length, 0)
    (size,) = struct.unpack(">i", resp[at : at + 4])
    return resp[at + 4 : at + 4 + max(size, 0)]


def _scram(sock: socket.socket, security: Security) -> None:
    """SCRAM-SHA-256/512 over SaslAuthenticate; raises OSError when the broker refuses."""
    digest = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[security.mechanism]
    resp = _request(sock, API_SASL_HANDSHAKE, 1, _string(security.mechanism), 10)
    if struct.unpack(">h", resp[:2])[0]:
        raise OSError(f"the broker does not offer SASL mechanism {security.mechanism}")
    user = security.username.replace("=", "=3D").replace(",", "=2C")
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n={user},r={nonce}"
    server_first = _sasl_round(sock, f"n,,{first_bare}".encode(), 11).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    if not fields.get("r", "").startswith(nonce):
        raise OSError("SASL authentication failed: the server nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        digest, security.password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", digest)
    stored_key = hashlib.new(digest, client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(stored_key, auth_message, digest)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    server_final = _sasl_round(sock, final.encode(), 12).decode()
    server_key = hmac.digest(salted, b"Server Key", digest)
    expected = base64.b64encode(hmac.digest(server_key, auth_message, digest)).decode()
    if server_final != f"v={expected}":
        raise OSError("SASL authentication failed: the server signature does not match")


def _connect(host: str, port: int, timeout: float, security: Security | None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    if security is None:
        return sock
    try:
        context = ssl.create_default_context(cafile=security.ca_file)
        tls = context.wrap_socket(sock, server_hostname=host)
        _scram(tls, security)
    except BaseException:
        sock.close()
        raise
    return tls


def metadata_broker_count(
    host: str, port: int, timeout: float = 2.0, security: Security | None = None
) -> int:
    """Send a Metadata request for no topics and return how many brokers the cluster reports."""
    with _connect(host, port, timeout, security) as sock:
        lo, hi = _api_versions(sock)[API_METADATA]
        version = max(lo, 4)
        if version > min(hi, 8):  # v9+ is the flexible encoding, not spoken here
            raise OSError(f"no supported Metadata version in {lo}..{hi}")
        # topics = [] (none), allow_auto_topic_creation = false, (+ v8 authorized-ops flags)
        body = struct.pack(">i", 0) + b"\x00" + (b"\x00\x00" if version >= 8 else b"")
        resp = _request(sock, API_METADATA, version, body, 2)
        return int(struct.unpack(">i", resp[4:8])[0])  # brokers count follows throttle_time_ms


def describe_generation(versions: ProbeResult) -> str:
    """Summarise what a broker supports in one line, from its ApiVersions answer."""
    # Kafka 4.0 dropped the old protocol versions (KIP-896): Fetch starts at v4 there.
    fetch_min = versions.get(API_FETCH, (0, 0))[0]
    generation = "Apache Kafka 4.0 or newer" if fetch_min >= 4 else "Apache Kafka 3.x or older"
    kip848 = "yes" if API_CONSUMER_GROUP_HEARTBEAT in versions else "no"
    share = "yes" if API_SHARE_GROUP_HEARTBEAT in versions else "no"
    return f"{generation} (KIP-848 consumer groups: {kip848}; share groups: {share})"
