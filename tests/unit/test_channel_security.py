"""Security definitions of HTTP channels: stored hashed, checked by a worker's Guard, read again
when a config event says they changed (tests/integration/test_channel_security.py runs them on
a real cluster)."""

from __future__ import annotations

import base64

import pytest

from zato.common import passwords
from zato.common.errors import ConfigError, ConnectorError, ODBError
from zato.odb import api as odb_api
from zato.odb import connectors
from zato.odb.engine import ODB, create_schema
from zato.server.channel_security import Guard, Refused, basic_auth

CLUSTER = "unit"


def basic(user: str, password: str) -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}", "REMOTE_ADDR": "192.0.2.7"}


def test_a_secret_is_kept_as_a_salted_hash_that_only_it_matches():
    one, two = (
        passwords.hash_secret("s3cret", iterations=1000),
        passwords.hash_secret("s3cret", iterations=1000),
    )
    assert one != two and "s3cret" not in one  # salted
    assert passwords.verify("s3cret", one) and passwords.verify("s3cret", two)
    assert not passwords.verify("s3cret ", one) and not passwords.verify("", one)
    for stored in ("", "s3cret", "pbkdf2_sha256$x$y$z", one[:-4] + "AAAA", "md5$1$a$b"):
        assert not passwords.verify("s3cret", stored)


def test_the_verifier_hashes_a_credential_once_and_again_when_the_stored_hash_changes():
    calls = []

    def run(func, args):  # noqa: ANN001, ANN202
        calls.append(args[0])
        return func(*args)

    verifier = passwords.Verifier(run)
    stored = passwords.hash_secret("pw", iterations=1000)
    assert verifier("pw", stored) and verifier("pw", stored) and verifier("pw", stored)
    assert not verifier("bad", stored) and not verifier("bad", stored)
    assert calls == ["pw", "bad", "bad"]  # accepted ones are remembered, refused ones are not
    assert not verifier("pw", passwords.hash_secret("new", iterations=1000))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "s", "type": "digest"}, "security type: 'digest' is not one of basic_auth, apikey"),
        ({"name": "s", "password": "p"}, "security: missing required field(s) type"),
        ({"name": "s", "type": "basic_auth", "password": "p"}, "a basic_auth definition needs a username"),
        ({"name": "s", "type": "basic_auth", "username": "u"}, "basic_auth needs a password"),
        ({"name": "s", "type": "apikey"}, "apikey needs an API key"),
        ({"name": "s", "type": "apikey", "password": "k", "header": "X Key"}, "is not an HTTP header name"),
        ({"name": "s", "type": "apikey", "password": "k", "header": "X_Key"}, "servers drop headers with _"),
        ({"name": "s", "type": "apikey", "password": "k", "header": "Content-Type"}, "give the key its own"),
    ],
)
def test_bad_security_definitions_are_named(odb, values, message):
    with pytest.raises(ConnectorError) as e:
        connectors.create(odb, CLUSTER, "security", values)
    assert message in str(e.value)


def test_views_mask_the_secret_and_show_only_their_types_fields(odb):
    made = connectors.create(odb, CLUSTER, "security", {"name": "k", "type": "apikey", "password": "key-1"})
    assert made == {"kind": "security", "name": "k", "type": "apikey", "header": "X-API-Key",
                    "password": connectors.MASK, "is_active": True}  # fmt: skip
    stored = connectors.load(odb, CLUSTER, "security", "k")["password"]
    assert passwords.verify("key-1", stored)
    edited = connectors.edit(odb, CLUSTER, "security", "k", {"header": "X-Key"})
    assert (
        edited["header"] == "X-Key" and connectors.load(odb, CLUSTER, "security", "k")["password"] == stored
    )


def test_a_channel_names_an_existing_definition(odb):
    odb_api.ensure_cluster(odb, CLUSTER)
    with pytest.raises(ConfigError, match="is not the name of a security definition"):
        odb_api.make_channel("c", "/c", "svc", security="has space")
    channel = odb_api.make_channel("c", "/c", "svc", security="users")
    with pytest.raises(ODBError, match="no security definition named 'users'"):
        odb_api.save_channel(odb, CLUSTER, channel)
    connectors.create(odb, CLUSTER, "security", {"name": "users", "type": "apikey", "password": "k"})
    odb_api.save_channel(odb, CLUSTER, channel)
    assert odb_api.list_channels(odb, CLUSTER)[0].security == "users"
    assert odb_api.make_channel("d", "/d", "svc", security="").security is None  # "" is open
    moved = odb_api.make_channel("c", "/c2", "svc")  # the same channel, --security forgotten
    with pytest.raises(ODBError, match="channel c is secured by 'users': without security it would be open"):
        odb_api.save_channel(odb, CLUSTER, moved)
    assert odb_api.list_channels(odb, CLUSTER)[0].url_path == "/c"  # unchanged
    odb_api.save_channel(odb, CLUSTER, moved, opening=True)
    assert odb_api.list_channels(odb, CLUSTER)[0].security is None


def test_an_odb_made_before_channel_security_gets_the_column(tmp_path):
    db = ODB(f"sqlite:///{tmp_path}/old.sqlite")
    create_schema(db.engine)
    with db.engine.begin() as conn:  # as an older version made it
        conn.exec_driver_sql("ALTER TABLE zato_http_channel DROP COLUMN security")
        conn.exec_driver_sql("DROP TABLE zato_http_security")
    odb_api.ensure_cluster(db, CLUSTER)
    create_schema(db.engine)  # zato start does this
    odb_api.save_channel(db, CLUSTER, odb_api.make_channel("old", "/old", "svc"))
    assert odb_api.list_channels(db, CLUSTER)[0].security is None
    db.dispose()


def test_the_guard_checks_each_type_and_rereads_a_definition_it_is_told_changed(odb):
    reads = []

    def load(name: str) -> dict | None:
        reads.append(name)
        try:
            return connectors.load(odb, CLUSTER, "security", name)
        except connectors.DefinitionNotFound:
            return None

    connectors.create(odb, CLUSTER, "security", {"name": "b", "type": "basic_auth", "username": "u",
                                                  "password": "p1", "realm": 'say "hi"'})  # fmt: skip
    connectors.create(odb, CLUSTER, "security", {"name": "k", "type": "apikey", "password": "k1",
                                                  "header": "X-Partner-Key"})  # fmt: skip
    now = [0.0]  # a fake clock: password hashing under load takes longer than RECHECK
    guard = Guard(load, clock=lambda: now[0])
    info, hidden = guard.check("ch", "b", basic("u", "p1"))
    assert (info.name, info.type, info.username, hidden) == ("b", "basic_auth", "u", None)
    for environ in ({}, basic("u", "p2"), basic("v", "p1"), {"HTTP_AUTHORIZATION": "Basic !!"}):
        with pytest.raises(Refused) as e:
            guard.check("ch", "b", environ)
        assert e.value.headers == [("WWW-Authenticate", "Basic realm=\"say 'hi'\"")]
    info, hidden = guard.check("ch", "k", {"HTTP_X_PARTNER_KEY": "k1"})
    assert (info.type, hidden) == ("apikey", "HTTP_X_PARTNER_KEY")
    with pytest.raises(Refused):
        guard.check("ch", "k", {"HTTP_X_API_KEY": "k1"})
    with pytest.raises(Refused):
        guard.check("ch", "gone", basic("u", "p1"))  # no such definition: closed, not open
    connectors.edit(odb, CLUSTER, "security", "b", {"password": "p2"})
    assert guard.check("ch", "b", basic("u", "p1"))  # within RECHECK, without an event: as read
    guard.forget("b")  # the config event
    with pytest.raises(Refused):
        guard.check("ch", "b", basic("u", "p1"))
    assert guard.check("ch", "b", basic("u", "p2"))[0].username == "u"
    connectors.edit(odb, CLUSTER, "security", "b", {"is_active": False})
    guard.forget("b")
    with pytest.raises(Refused):
        guard.check("ch", "b", basic("u", "p2"))
    assert reads.count("b") == 3


def test_while_the_odb_is_away_callers_are_checked_against_the_definition_read_before(odb):
    connectors.create(odb, CLUSTER, "security", {"name": "k", "type": "apikey", "password": "k1"})
    away = {"now": False}

    def load(name: str) -> dict | None:
        if away["now"]:
            raise ODBError("ODB error: could not connect to server")
        return connectors.load(odb, CLUSTER, "security", name)

    guard = Guard(load)
    assert guard.check("ch", "k", {"HTTP_X_API_KEY": "k1"})
    away["now"] = True
    guard.forget("k")  # due for a read at its next use
    assert guard.check("ch", "k", {"HTTP_X_API_KEY": "k1"})  # the ODB is away: as read before
    with pytest.raises(Refused):
        guard.check("ch", "k", {"HTTP_X_API_KEY": "wrong"})
    with pytest.raises(ODBError):  # never read: the server answers 503, it cannot tell
        guard.check("ch", "other", {"HTTP_X_API_KEY": "k1"})


def test_a_wrong_user_costs_the_same_password_check_as_a_wrong_password(odb):
    """Else the time of a 401 tells which user names exist."""
    values = {"name": "b", "type": "basic_auth", "username": "u", "password": "p"}
    connectors.create(odb, CLUSTER, "security", values)
    hashed = []

    def run(func, args):  # noqa: ANN001, ANN202
        hashed.append(args[0])
        return func(*args)

    guard = Guard(lambda name: connectors.load(odb, CLUSTER, "security", name), run)
    for environ in (basic("nobody", "guess"), basic("u", "guess"), {}, {"HTTP_AUTHORIZATION": "Bearer x"}):
        with pytest.raises(Refused):
            guard.check("ch", "b", environ)
    assert hashed == ["guess", "guess"]  # both named users hashed; no credentials, nothing hashed


@pytest.mark.parametrize("header", ["Basic \xff\xfe==", "Basic caf\xe9", "Basic /w==", "Basic !!", "Digest"])
def test_credentials_that_are_not_base64_of_utf8_are_none(header):
    assert basic_auth(header) == ("", "")
