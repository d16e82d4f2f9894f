"""A tiny stdlib-only Kafka protocol probe: ApiVersions and broker count, over plaintext.

Used by ``pipeline doctor`` to tell the broker generation, and by ``scripts/kafka-local`` (which
loads this file directly, before any virtualenv exists) to wait until brokers answer metadata.
"""

from __future__ import annotations

import socket
import struct

__all__ = ["ProbeResult", "api_versions", "describe_generation", "metadata_broker_count"]

API_FETCH = 1
API_METADATA = 3
API_VERSIONS = 18
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


def api_versions(host: str, port: int, timeout: float = 3.0) -> ProbeResult:
    """Return ``{api_key: (min_version, max_version)}`` from one plaintext broker."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        return _api_versions(sock)


def metadata_broker_count(host: str, port: int, timeout: float = 2.0) -> int:
    """Send a Metadata request for no topics and return how many brokers the cluster reports."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
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
