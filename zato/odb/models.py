"""The ODB schema: the cluster's configuration, the source of truth for every server.

Portable across SQLite, PostgreSQL and Oracle: explicit string lengths, no native enums,
identity primary keys, and Text (CLOB on Oracle) only for module sources.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from zato.odb.limits import AMQP_HANDSHAKE_TIMEOUT, CHANNEL_TIMEOUT


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


def _pk() -> Mapped[int]:
    return mapped_column(Integer, Identity(), primary_key=True)


class Cluster(Base):
    __tablename__ = "zato_cluster"
    id: Mapped[int] = _pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The highest connector-server lease epoch ever issued (zato/odb/epoch.py): a durable floor
    # that survives Redis forgetting acknowledged writes (asynchronous replication, failover).
    lease_epoch: Mapped[int | None] = mapped_column(Integer)
    servers: Mapped[list[Server]] = relationship(back_populates="cluster")


class Server(Base):
    __tablename__ = "zato_server"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200), default="127.0.0.1")
    port: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(64))  # unique per server, set at creation
    up_status: Mapped[str | None] = mapped_column(String(40))  # running | clean-down
    up_mod_date: Mapped[datetime | None] = mapped_column(DateTime)
    cluster: Mapped[Cluster] = relationship(back_populates="servers")


class Service(Base):
    """A service known to the cluster; internal ones are registered at server start."""

    __tablename__ = "zato_service"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    impl_name: Mapped[str] = mapped_column(String(400))  # module.Class
    is_internal: Mapped[bool] = mapped_column(Boolean, default=False)
    module_name: Mapped[str | None] = mapped_column(String(200))  # deployed module that defines it


class DeployedModule(Base):
    __tablename__ = "zato_deployed_module"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))  # file name without .py
    source: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of source
    version: Mapped[int] = mapped_column(Integer, default=1)
    deployed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserConfigFile(Base):
    """A user-config file deployed to the whole cluster (services' self.config.NAME)."""

    __tablename__ = "zato_user_config"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))  # file name without .ini / .conf
    text: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of text
    deployed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class HTTPChannel(Base):
    __tablename__ = "zato_http_channel"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    url_path: Mapped[str] = mapped_column(String(400))
    method: Mapped[str | None] = mapped_column(String(20))  # None: any method
    service: Mapped[str] = mapped_column(String(200))
    data_format: Mapped[str] = mapped_column(String(20), default="json")  # json | text
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    max_body: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the server's [limits]
    # The HTTPSecurity definition (by name) a request must satisfy; None: open to any caller
    security: Mapped[str | None] = mapped_column(String(200), nullable=True)


class HTTPSecurity(Base):
    """Credentials a channel's callers must present: HTTP Basic Auth (a user name and password)
    or an API key in a header. The password or key is kept as a salted PBKDF2 hash
    (zato.common.passwords), never as given."""

    __tablename__ = "zato_http_security"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))  # basic_auth | apikey
    username: Mapped[str] = mapped_column(String(200), default="")  # basic_auth
    realm: Mapped[str] = mapped_column(String(200), default="Zato")  # basic_auth
    header: Mapped[str] = mapped_column(String(200), default="X-API-Key")  # apikey
    password: Mapped[str] = mapped_column(String(200), default="")  # the hash
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


# Connection definitions (AMQP, IBM MQ, ZeroMQ).


class AMQPDefinition(Base):
    __tablename__ = "zato_amqp_def"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(200), default="127.0.0.1")
    port: Mapped[int] = mapped_column(Integer, default=5672)
    vhost: Mapped[str] = mapped_column(String(200), default="/")
    username: Mapped[str] = mapped_column(String(200), default="guest")
    password: Mapped[str] = mapped_column(String(200), default="guest")
    heartbeat: Mapped[int] = mapped_column(Integer, default=10)  # seconds (1-60, odb.connectors)
    use_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    # seconds to get through TCP, TLS and the AMQP handshake (None, a row from before: the default)
    handshake_timeout: Mapped[int | None] = mapped_column(
        Integer, nullable=True, default=AMQP_HANDSHAKE_TIMEOUT
    )


class AMQPChannel(Base):
    __tablename__ = "zato_amqp_channel"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    def_id: Mapped[int] = mapped_column(ForeignKey("zato_amqp_def.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(200))
    service: Mapped[str] = mapped_column(String(200))
    prefetch: Mapped[int] = mapped_column(Integer, default=10)
    data_format: Mapped[str] = mapped_column(String(20), default="json")
    max_deliveries: Mapped[int] = mapped_column(Integer, default=5)  # then parked
    max_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)  # 0: prefetch
    # seconds the connector waits for the service's answer (None, a row from before: CHANNEL_TIMEOUT)
    timeout: Mapped[int | None] = mapped_column(Integer, nullable=True, default=CHANNEL_TIMEOUT)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class AMQPOutgoing(Base):
    __tablename__ = "zato_amqp_outgoing"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    def_id: Mapped[int] = mapped_column(ForeignKey("zato_amqp_def.id", ondelete="CASCADE"))
    exchange: Mapped[str] = mapped_column(String(200), default="")
    routing_key: Mapped[str] = mapped_column(String(200), default="")
    delivery_mode: Mapped[int] = mapped_column(Integer, default=2)
    content_type: Mapped[str] = mapped_column(String(200), default="application/json")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class ZMQChannel(Base):
    __tablename__ = "zato_zmq_channel"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400))
    socket_type: Mapped[str] = mapped_column(String(10), default="PULL")  # PULL | SUB
    sub_prefix: Mapped[str] = mapped_column(String(200), default="")
    service: Mapped[str] = mapped_column(String(200))
    data_format: Mapped[str] = mapped_column(String(20), default="json")
    max_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)  # 0: default
    # seconds the connector waits for the service's answer (None, a row from before: CHANNEL_TIMEOUT)
    timeout: Mapped[int | None] = mapped_column(Integer, nullable=True, default=CHANNEL_TIMEOUT)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class ZMQOutgoing(Base):
    __tablename__ = "zato_zmq_outgoing"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400))
    socket_type: Mapped[str] = mapped_column(String(10), default="PUSH")  # PUSH | PUB
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class IBMMQDefinition(Base):
    """How to reach an IBM MQ queue manager as a client (MQCONNX with an MQCD)."""

    __tablename__ = "zato_ibm_mq_def"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    queue_manager: Mapped[str] = mapped_column(String(48), default="")
    channel: Mapped[str] = mapped_column(String(20), default="DEV.APP.SVRCONN")  # server connection
    conn_name: Mapped[str] = mapped_column(String(400), default="127.0.0.1(1414)")  # host(port)[,...]
    username: Mapped[str] = mapped_column(String(200), default="")
    password: Mapped[str] = mapped_column(String(200), default="")
    cipher_spec: Mapped[str] = mapped_column(String(100), default="")  # empty: no TLS
    key_repository: Mapped[str] = mapped_column(String(400), default="")
    heartbeat: Mapped[int] = mapped_column(Integer, default=300)  # seconds


class IBMMQChannel(Base):
    __tablename__ = "zato_ibm_mq_channel"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    def_id: Mapped[int] = mapped_column(ForeignKey("zato_ibm_mq_def.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(48))
    service: Mapped[str] = mapped_column(String(200))
    data_format: Mapped[str] = mapped_column(String(20), default="json")
    backout_threshold: Mapped[int] = mapped_column(Integer, default=0)  # 0: the queue's BOTHRESH
    backout_queue: Mapped[str] = mapped_column(String(48), default="")  # used if the queue has no BOQNAME
    max_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True, default=1)  # connections
    # seconds the connector waits for the service's answer (None, a row from before: CHANNEL_TIMEOUT)
    timeout: Mapped[int | None] = mapped_column(Integer, nullable=True, default=CHANNEL_TIMEOUT)
    # MQGMO_CONVERT: the queue manager converts text (MQFMT_STRING) to UTF-8 on each get
    convert: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class IBMMQOutgoing(Base):
    __tablename__ = "zato_ibm_mq_outgoing"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    def_id: Mapped[int] = mapped_column(ForeignKey("zato_ibm_mq_def.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(48))  # default queue; a send may name another
    persistence: Mapped[str] = mapped_column(String(20), default="persistent")  # | non-persistent | queue
    expiry: Mapped[int] = mapped_column(Integer, default=0)  # seconds, 0: never expires
    priority: Mapped[int] = mapped_column(Integer, default=-1)  # 0..9, -1: the queue's default
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


# Outgoing connections that services use in the servers themselves (no connector process).


class HTTPOutgoing(Base):
    __tablename__ = "zato_http_outgoing"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400))  # http(s)://host:port
    url_path: Mapped[str] = mapped_column(String(400), default="")  # may hold {params}
    timeout: Mapped[int] = mapped_column(Integer, default=10)  # seconds
    username: Mapped[str] = mapped_column(String(200), default="")
    password: Mapped[str] = mapped_column(String(200), default="")
    data_format: Mapped[str] = mapped_column(String(20), default="json")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class SQLOutgoing(Base):
    __tablename__ = "zato_sql_outgoing"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = _pk()
    cluster_id: Mapped[int] = mapped_column(ForeignKey("zato_cluster.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(400))  # SQLAlchemy URL without the password
    password: Mapped[str] = mapped_column(String(200), default="")
    pool_size: Mapped[int] = mapped_column(Integer, default=5)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
