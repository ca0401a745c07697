"""https deliveries connect to the address the SSRF check approved (DNS rebinding), over
real TLS: the certificate is verified against the URL's host name, sent as SNI and in the
Host header, although the socket goes to the pinned IP address.

The test's DNS (``socket.getaddrinfo`` for one made-up name) and which addresses count as
public are the only things faked: a test cannot listen on a public address, so 127.0.0.1
plays the public receiver and 127.0.0.2 the internal service a rebinding attacker aims at.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webhooks import delivery, urlsafety

from .conftest import Receiver

HOST = "hooks.example.test"
PUBLIC = "127.0.0.1"  # plays a public address
INTERNAL = "127.0.0.2"  # what a rebinding DNS answers the second time


def _certificate(common_name: str, *, issuer_key=None, issuer_name=None, ca: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    certificate = builder.sign(issuer_key or key, hashes.SHA256())
    return key, certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A test CA and two server certificates it signed: one for HOST, one for another name."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _certificate("Webhooks test CA", ca=True)
    (directory / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files = {}
    for name in (HOST, "other.example.test"):
        key, cert = _certificate(name, issuer_key=ca_key, issuer_name=ca_cert.subject)
        cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        files[name] = (cert_file, key_file)
    return directory / "ca.pem", files


@pytest.fixture
def tls_receiver(pki):
    """A real HTTPS receiver on PUBLIC, serving the certificate of the given name; records
    the SNI each handshake asked for."""
    _ca, files = pki
    started: list[Receiver] = []

    def _start(certificate_name: str) -> Receiver:
        cert_file, key_file = files[certificate_name]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        receiver = Receiver()
        receiver.sni = []

        def remember_sni(ssl_socket, server_name, _context):
            receiver.sni.append(server_name)

        context.sni_callback = remember_sni
        receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
        started.append(receiver.start())
        return receiver

    yield _start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def internal_service():
    """Listens on INTERNAL at a given port and counts connections (it must get none)."""
    listeners: list[tuple[socket.socket, list]] = []

    def _listen(port: int) -> list:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((INTERNAL, port))
        server.listen()
        server.settimeout(0.1)
        connections: list = []

        def accept():
            while True:
                try:
                    connection, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                connections.append(connection)
                connection.close()

        threading.Thread(target=accept, daemon=True).start()
        listeners.append((server, connections))
        return connections

    yield _listen
    for server, _ in listeners:
        server.close()


@pytest.fixture
def rebinding_dns(monkeypatch, settings):
    """HOST resolves to PUBLIC once, then to INTERNAL; PUBLIC counts as public."""
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    real_getaddrinfo = socket.getaddrinfo
    answers: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != HOST:
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = PUBLIC if not answers else INTERNAL
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port)))]

    real_is_public = urlsafety.is_public_address
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(
        urlsafety,
        "is_public_address",
        lambda address: address == ipaddress.ip_address(PUBLIC) or real_is_public(address),
    )
    return answers


@pytest.fixture
def trust_test_ca(monkeypatch, pki):
    """The delivery client trusts the test CA (instead of the system's)."""
    ca_file, _files = pki
    context = ssl.create_default_context(cafile=str(ca_file))
    monkeypatch.setattr(httpx, "Client", functools.partial(httpx.Client, verify=context))


def test_https_delivery_connects_to_the_checked_address_and_verifies_the_hosts_certificate(
    tls_receiver, internal_service, rebinding_dns, trust_test_ca
):
    receiver = tls_receiver(HOST)
    port = receiver.server.server_address[1]
    internal = internal_service(port)
    # Without pinning, the client would resolve HOST itself and get INTERNAL.
    assert urlsafety.resolve(HOST, port) == [ipaddress.ip_address(PUBLIC)]
    assert urlsafety.resolve(HOST, port) == [ipaddress.ip_address(INTERNAL)]
    rebinding_dns.clear()

    result = delivery.send(
        f"https://{HOST}:{port}/hooks", body='{"ok":true}', headers={"webhook-id": "msg_1"}
    )

    assert result.status_code == 200, result.error
    assert rebinding_dns == [PUBLIC]  # resolved once, by the check; the client did not
    [request] = receiver.requests
    assert request.headers["host"] == f"{HOST}:{port}"
    assert request.headers["webhook-id"] == "msg_1" and request.json == {"ok": True}
    assert receiver.sni == [HOST]
    assert internal == []


def test_https_delivery_refuses_a_certificate_for_another_name(tls_receiver, rebinding_dns, trust_test_ca):
    receiver = tls_receiver("other.example.test")
    port = receiver.server.server_address[1]

    result = delivery.send(f"https://{HOST}:{port}/hooks", body="{}", headers={})

    assert result.status_code is None and not result.succeeded
    assert "CERTIFICATE_VERIFY_FAILED" in result.error or "certificate" in result.error.lower()
    assert receiver.requests == []


def test_https_delivery_to_a_host_resolving_to_an_internal_address_is_refused(
    tls_receiver, internal_service, rebinding_dns, trust_test_ca
):
    receiver = tls_receiver(HOST)
    port = receiver.server.server_address[1]
    internal = internal_service(port)
    rebinding_dns.append("already answered once")  # the next answer is INTERNAL

    result = delivery.send(f"https://{HOST}:{port}/hooks", body="{}", headers={})

    assert result.status_code is None
    assert result.error.startswith(f"Refused: The host '{HOST}' resolves to a private")
    assert receiver.requests == [] and internal == []


def test_http_delivery_connects_to_the_checked_address_too(receiver, internal_service, rebinding_dns):
    port = receiver.server.server_address[1]
    internal = internal_service(port)

    result = delivery.send(f"http://{HOST}:{port}/hooks", body="{}", headers={})

    assert result.status_code == 200, result.error
    assert rebinding_dns == [PUBLIC]
    assert receiver.requests[0].headers["host"] == f"{HOST}:{port}"
    assert internal == []
