"""TLS material: a private CA and certificates for a quickstart cluster, and the check
`zato start` makes before HAProxy is touched (one clear line when the certificate and the key
do not match, have expired, or cannot be read).

A bundle is what HAProxy's `crt` wants: one PEM file with the certificate, then any chain
certificates, then the private key. HAProxy also accepts the key in `BUNDLE.key`, and so does
`check_bundle`. Key files are written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from zato.common.errors import ConfigError
from zato.common.fs import atomic_write

CA_DAYS = 3650
CERT_DAYS = 825


@dataclass(frozen=True)
class CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Zato"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_ca(common_name: str) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(cert, key)


def issue(
    ca: CA, common_name: str, hosts: list[str], days: int = CERT_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for `hosts` (names or IP addresses) signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    # Key identifiers: strict verifiers (Python 3.13's default TLS context) refuse a
    # certificate without them, "Missing Authority Key Identifier".
    ca_public = ca.key.public_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return cert, key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_ca(folder: str, ca: CA) -> tuple[str, str]:
    """DIR/ca.pem (the certificate clients trust) and DIR/ca-key.pem, both mode 0600."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    cert_path, key_path = os.path.join(folder, "ca.pem"), os.path.join(folder, "ca-key.pem")
    atomic_write(cert_path, cert_pem(ca.cert).decode(), mode=0o600)
    atomic_write(key_path, key_pem(ca.key).decode(), mode=0o600)
    return cert_path, key_path


def write_bundle(
    path: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]
) -> str:
    """The HAProxy `crt` file: certificate, chain, key; mode 0600."""
    text = b"".join([cert_pem(cert), *(cert_pem(c) for c in chain), key_pem(key)])
    atomic_write(path, text.decode(), mode=0o600)
    return path


def check_bundle(path: str, now: dt.datetime | None = None) -> x509.Certificate:
    """The bundle's certificate if it is usable now; ConfigError (one line) otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        extra = path + ".key"
        if os.path.exists(extra):
            with open(extra, "rb") as f:
                data += b"\n" + f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the TLS certificate: {e.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{path}: no PEM certificate in the file") from None
    key = _private_key(path, data)
    cert = certs[0]
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise ConfigError(f"{path}: the private key does not match the certificate ({_subject(cert)})")
    now = now or _now()
    what = f"{path}: the certificate ({_subject(cert)})"
    if cert.not_valid_after_utc < now:
        raise ConfigError(f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    if cert.not_valid_before_utc > now:
        raise ConfigError(f"{what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    return cert


def _private_key(path: str, data: bytes):  # noqa: ANN202 - one of cryptography's key types
    start = data.find(b"-----BEGIN ")
    while start != -1:
        end_marker = data.find(b"-----END ", start)
        end = data.find(b"-----", end_marker + 9) + 5
        block = data[start:end]
        if b"PRIVATE KEY-----" in block.split(b"\n", 1)[0]:
            try:
                return serialization.load_pem_private_key(block, password=None)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{path}: cannot load the private key: {e}") from None
        start = data.find(b"-----BEGIN ", end)
    raise ConfigError(f"{path}: no private key in the file (nor in {os.path.basename(path)}.key)")


def _spki(public_key) -> bytes:  # noqa: ANN001 - any of cryptography's public key types
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _subject(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return cert.subject.rfc4514_string()
    value = names[0].value
    return "CN=" + (value.decode(errors="replace") if isinstance(value, bytes) else value)


# -- a server's own port ([tls] cert in server.conf) and its clients --------------------------


def key_file(bundle: str) -> str:
    """Where the bundle's private key is: BUNDLE.key when that file exists, else the bundle."""
    extra = bundle + ".key"
    return extra if os.path.exists(extra) else bundle


def client_context(ca_file: str = "") -> ssl.SSLContext:
    """What every client of a server's port verifies it with: `ca_file` ([tls] ca_file), or
    the system's CAs when empty. The host name is checked: the certificate must name the address
    the client uses (the server's announce_host or host; 127.0.0.1 for the CLI of a local one)."""
    return ssl.create_default_context(cafile=ca_file or None)


def check_signed_by(bundle: str, ca_file: str, host: str = "") -> None:
    """ConfigError (one line) unless a client trusting only `ca_file` accepts the bundle's
    certificate chain, and, with `host`, its name for that address: a TLS handshake in memory,
    as the connectors and the CLI make it."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server.load_cert_chain(bundle, key_file(bundle))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(
            f"{bundle}: cannot load the certificate and key: {getattr(e, 'reason', None) or e}"
        ) from None
    client = client_context(ca_file)
    client.check_hostname = bool(host)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname=host or None)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        try:
            c.do_handshake()
            return
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLCertVerificationError as e:
            if e.verify_code in NAME_MISMATCH:
                raise ConfigError(
                    f"{bundle}: the certificate does not name {host}, the address the LB and the other"
                    f" servers reach this server at ([main] announce_host, or host): {e.verify_message};"
                    " the other servers' connectors would refuse it"
                ) from None
            raise ConfigError(
                f"{bundle}: the certificate is not trusted by [tls] ca_file {ca_file!r} "
                f"({e.verify_message}): the LB and the other servers would refuse this server; "
                "give it a certificate signed by that CA, or that CA's certificate in ca_file"
            ) from None
        s_in.write(c_out.read())
        try:
            s.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            pass  # what the client says next names it
        c_in.write(s_out.read())
    raise ConfigError(f"{bundle}: a TLS handshake with its own certificate did not complete")


def client_error(e: BaseException, ca_file: str) -> str:
    """What a TLS failure of a client of a server's port means, in words."""
    where = f"[tls] ca_file {ca_file!r}" if ca_file else "the system's CAs ([tls] ca_file is empty)"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"its certificate is not trusted by {where} ({e.verify_message})"
    reason = getattr(e, "reason", None) or ""
    if reason in PLAIN_REASONS:
        return "it answered plain HTTP where TLS was expected: set [tls] cert in its server.conf"
    return f"{type(e).__name__}: {e}"


def refusal(host: str, port: int, ca_file: str, timeout: float = 2.0) -> str:
    """Why a client trusting only `ca_file` and not checking names (as HAProxy's `ssl verify
    required ca-file`) refuses the certificate of the server at host:port, in words; "" when it
    takes it, or when the server cannot be reached at all (not a TLS matter)."""
    context = client_context(ca_file)
    context.check_hostname = False
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw):
            return ""
    except ssl.SSLError as e:
        return client_error(e, ca_file)
    except OSError:
        return ""


NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH

# OpenSSL's reasons for a TLS client that got plain HTTP back
PLAIN_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST")
