"""A real mutual-TLS server for truststore tests: stdlib `ssl`, one thread, 127.0.0.1:0.

The server requires a client certificate chaining to the truststore it was started with (as API
Gateway does with the truststore it pins), echoes one byte to an admitted client and records its own
verdict for every connection, so a test checks both sides of the handshake.
"""

from __future__ import annotations

import datetime as dt
import queue
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.truststore import create_test_ca

TIMEOUT = 5.0


@dataclass(frozen=True)
class ServerIdentity:
    ca_file: Path  # what clients trust to authenticate the server
    cert_file: Path
    key_file: Path


def pem_files(directory: Path, name: str, certificate: x509.Certificate,
              key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def make_server_identity(directory: Path) -> ServerIdentity:
    """A server CA and a `localhost` server certificate issued by it (serverAuth)."""
    ca_cert, ca_key = create_test_ca("test server CA", days=2)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "server-ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    cert_file, key_file = pem_files(directory, "server", certificate, key)
    return ServerIdentity(ca_file, cert_file, key_file)


class MtlsServer:
    """`with MtlsServer(identity, truststore) as server:` then `server.port`, `server.verdict()`."""

    def __init__(self, identity: ServerIdentity, truststore: Path,
                 maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.maximum_version = maximum_version
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(identity.cert_file, identity.key_file)
        context.load_verify_locations(cafile=str(truststore))
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._verdicts: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="mtls-server", daemon=True)

    def __enter__(self) -> MtlsServer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT)
        self._listener.close()

    def verdict(self) -> tuple[str, str]:
        """The server's ("admitted", client subject) or ("refused", reason) for the next connection."""
        return self._verdicts.get(timeout=TIMEOUT)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(TIMEOUT)
                try:
                    with self._context.wrap_socket(connection, server_side=True) as tls:
                        peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
                        subject = peer.subject.rfc4514_string()
                        tls.sendall(tls.recv(1))
                        self._verdicts.put(("admitted", subject))
                except (ssl.SSLError, OSError) as error:
                    self._verdicts.put(("refused", str(error)))


def connect(port: int, server_ca: Path, client: tuple[Path, Path] | None,
            maximum_version: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> str:
    """"admitted" if the handshake completed and the server echoed our byte, else "refused". Under
    TLS 1.3 the client finishes its handshake before the server has judged its certificate: the
    refusal arrives as an alert on the first read, which is why a byte is exchanged."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the server and its hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = maximum_version
    context.load_verify_locations(cafile=str(server_ca))
    if client is not None:
        context.load_cert_chain(*client)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"z")
                reply = tls.recv(1)
        except (ssl.SSLError, ConnectionError):
            return "refused"
    return "admitted" if reply == b"z" else "refused"
