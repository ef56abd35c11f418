"""A small stand-in for Apple's push service: HTTP/2 (the ``h2`` library) over TLS that demands a
client certificate, so that ``wallet.passes.apns.ApnsClient`` is tried against a real server,
not a mocked transport. It answers ``POST /3/device/<token>`` with the status ``status_for``
gives the token (200 by default; a refusal carries ``{"reason": ...}`` like APNs' own) and
records each request with the client certificate that sent it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.wallet.pass_keys import NOW, Chain, key_pem, pem

REASONS = {
    400: "BadDeviceToken",
    403: "BadCertificate",
    410: "Unregistered",
    429: "TooManyRequests",
}


@dataclass(frozen=True)
class Pushed:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: The client certificate of the connection (DER), None without one.
    client_certificate: bytes | None


@dataclass
class FakeApnsServer:
    port: int = 0
    pushed: list[Pushed] = field(default_factory=list)
    status_for: Callable[[str], int] = field(default=lambda _token: 200)

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        connection.initiate_connection()
        writer.write(connection.data_to_send())
        requests: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65535):
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {_text(name): _text(value) for name, value in event.headers or []}
                        requests[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        requests[event.stream_id][1].extend(event.data or b"")
                        connection.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        stream_id = event.stream_id
                        headers, body = requests.pop(stream_id)
                        self._answer(connection, stream_id, headers, bytes(body), peer)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        break
                writer.write(connection.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    def _answer(
        self,
        connection: h2.connection.H2Connection,
        stream_id: int,
        headers: dict[str, str],
        body: bytes,
        peer: bytes | None,
    ) -> None:
        path = headers.get(":path", "")
        self.pushed.append(Pushed(headers.get(":method", ""), path, headers, body, peer))
        status = self.status_for(path.rsplit("/", 1)[-1])
        reply = (
            b"" if status == 200 else json.dumps({"reason": REASONS.get(status, "Error")}).encode()
        )
        response_headers = [
            (":status", str(status)),
            ("apns-id", f"00000000-0000-0000-0000-{stream_id:012d}"),
        ]
        if reply:
            response_headers += [
                ("content-type", "application/json"),
                ("content-length", str(len(reply))),
            ]
        connection.send_headers(stream_id, response_headers, end_stream=not reply)
        if reply:
            connection.send_data(stream_id, reply, end_stream=True)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def server_certificate(chain: Chain) -> tuple[bytes, bytes]:
    """A TLS server certificate for localhost and 127.0.0.1 from the test CA (PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(chain.ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=3650))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(chain.ca_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem(key)


@contextlib.asynccontextmanager
async def fake_apns_server(chain: Chain) -> AsyncIterator[FakeApnsServer]:
    """The server on a free port of 127.0.0.1, trusting client certificates the test CA's
    "WWDR" issued (as APNs trusts certificates Apple's WWDR issued)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate_pem, key = server_certificate(chain)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "server.pem").write_bytes(certificate_pem)
        (Path(folder) / "server.key").write_bytes(key)
        context.load_cert_chain(Path(folder) / "server.pem", Path(folder) / "server.key")
    context.load_verify_locations(cadata=(pem(chain.ca) + pem(chain.wwdr)).decode())
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    server = FakeApnsServer()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()
