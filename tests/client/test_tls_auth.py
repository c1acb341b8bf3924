"""TLS, mutual TLS and bearer tokens from the client's side, against a real server configured
with certificates made here (a CA, a server certificate for 127.0.0.1/localhost, a client one)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sisguard.client import TLS, Client, InvalidInput, Unauthenticated, Unavailable
from sisguard.client.cli import main

TOKEN = "client-test-token-0123456789abcdef"
X = np.zeros((1, 8, 8), np.float32)


def _issue(d: Path, stem: str, cn: str, issuer: tuple | None, usage=None, san=None) -> tuple[Path, Path, tuple]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage:
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = b.sign(issuer[1] if issuer else key, hashes.SHA256())
    c, k = d / f"{stem}.crt", d / f"{stem}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return c, k, (cert, key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("client-pki")
    ca_cert, _, ca = _issue(d, "ca", "client-test CA", None)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert, server_key, _ = _issue(d, "server", "localhost", ca, ExtendedKeyUsageOID.SERVER_AUTH, san)
    client_cert, client_key, _ = _issue(d, "client", "client-a", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    return {"ca": ca_cert, "server": server_cert, "server_key": server_key, "cert": client_cert, "key": client_key}


@pytest.fixture(scope="module")
def secure_server(mini_config: Path, pki: dict[str, Path], server_thread: type):
    """Mutual TLS and bearer tokens on one server."""
    tls = {"cert": pki["server"], "key": pki["server_key"], "client_ca": pki["ca"]}
    s = server_thread(mini_config, tls=tls, tokens=[TOKEN]).start()
    yield s
    s.stop()


def test_mtls_and_token(secure_server, pki) -> None:
    tls = TLS(root_certificates=pki["ca"], certificate_chain=pki["cert"], private_key=pki["key"])
    with Client(secure_server.address, tls=tls, token=TOKEN) as c:
        assert c.predict("mini", X).dense.probabilities.shape == (1, 10)
        assert c.health() == "SERVING"
    # PEM bytes and text work as well as paths.
    tls_bytes = TLS(
        root_certificates=pki["ca"].read_bytes(),
        certificate_chain=pki["cert"].read_text(),
        private_key=pki["key"].read_bytes(),
    )
    with Client(secure_server.address, tls=tls_bytes, token=TOKEN) as c:
        assert c.models()[0].name == "mini"


def test_mtls_failures(secure_server, pki) -> None:
    full = {"root_certificates": pki["ca"], "certificate_chain": pki["cert"], "private_key": pki["key"]}
    with Client(secure_server.address, tls=TLS(**full), retries=0) as c, pytest.raises(Unauthenticated) as info:
        c.predict("mini", X)  # no token
    assert "bearer token" in info.value.details
    wrong = Client(secure_server.address, tls=TLS(**full), token=TOKEN[::-1], retries=0)
    with wrong, pytest.raises(Unauthenticated):
        wrong.predict("mini", X)
    no_client_cert = TLS(root_certificates=pki["ca"])
    anonymous = Client(secure_server.address, tls=no_client_cert, token=TOKEN, retries=0, timeout=5)
    with anonymous, pytest.raises(Unavailable):
        anonymous.predict("mini", X)  # the server asks for a client certificate
    with Client(secure_server.address, token=TOKEN, retries=0, timeout=5) as c, pytest.raises(Unavailable):
        c.predict("mini", X)  # plaintext against TLS
    with pytest.raises(InvalidInput, match="both"):
        Client(secure_server.address, tls=TLS(root_certificates=pki["ca"], certificate_chain=pki["cert"]))
    with pytest.raises(InvalidInput, match="cannot read"):
        Client(secure_server.address, tls=TLS(root_certificates="/no/such/ca.pem"))


def test_cli_with_mtls_and_token_from_env(secure_server, pki, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SISGUARD_TOKEN", TOKEN)
    common = ["--target-address", secure_server.address, "--ca", str(pki["ca"])]
    common += ["--cert", str(pki["cert"]), "--key", str(pki["key"])]
    assert main(["models", *common, "--json"]) == 0
    assert '"name": "mini"' in capsys.readouterr().out
    monkeypatch.delenv("SISGUARD_TOKEN")
    assert main(["models", *common]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sisguard: error:") and "bearer token" in err and "\n" not in err
    assert main(["models", *common, "--token", TOKEN]) == 0
