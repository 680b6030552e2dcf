"""Every Redis key and channel name the project uses. No other module spells a key.

All keys start with "zato:{cluster}:" so that several clusters can share one Redis.
"""

from __future__ import annotations


class Keys:
    def __init__(self, cluster: str):
        self.cluster = cluster
        self.prefix = f"zato:{cluster}:"

    # Membership: one key per live server (JSON, PX = membership ttl) plus an index set.
    def member(self, server: str) -> str:
        return f"{self.prefix}member:{server}"

    @property
    def members(self) -> str:
        return f"{self.prefix}members"

    @property
    def operator_drained(self) -> str:
        """Set of server names an operator drained in the LB (the dashboard's drain action)."""
        return f"{self.prefix}members:operator-drained"

    @property
    def members_channel(self) -> str:
        """Pub/sub: a server joined, is draining or left (payload JSON {"name", "event"})."""
        return f"{self.prefix}members:changed"

    @property
    def dashboard_probe(self) -> str:
        """A key (short-lived) and a channel (nobody listens) the dashboard writes and publishes
        to, to show on its page whether Redis takes what its actions send."""
        return f"{self.prefix}dashboard:probe"

    @property
    def lb_views(self) -> str:
        """Hash: load balancer id -> JSON list of the member names it sends new requests to
        (expires with the last controller renewing it)."""
        return f"{self.prefix}lb:views"

    @property
    def lb_down(self) -> str:
        """Hash: load balancer id -> JSON object of the members (not draining) its HAProxy marks
        DOWN or MAINT, name -> what HAProxy says ("DOWN (last check L7TOUT)"); written with
        `lb_views`, and counts only while `lb_alive` exists."""
        return f"{self.prefix}lb:down"

    def lb_alive(self, lb_id: str) -> str:
        """Short-lived key a load balancer's controller renews while it runs: its view in
        `lb_views` counts only while this key exists."""
        return f"{self.prefix}lb:alive:{lb_id}"

    def internal_nonce(self, nonce: str) -> str:
        """Short-lived: an internal call with this nonce was taken (zato.server.internal_gate); a
        second one is a replay."""
        return f"{self.prefix}internal:nonce:{nonce}"

    # Connector-server lease and its fencing epoch.
    @property
    def lease(self) -> str:
        return f"{self.prefix}lease"

    @property
    def epoch(self) -> str:
        return f"{self.prefix}epoch"

    @property
    def lease_info(self) -> str:
        """JSON hash about the current holder (server, epoch, since); for status views."""
        return f"{self.prefix}lease:info"

    @property
    def takeovers(self) -> str:
        """List of JSON takeovers (holder, epoch, at, duration_s), newest first, capped."""
        return f"{self.prefix}lease:takeovers"

    @property
    def takeovers_count(self) -> str:
        return f"{self.prefix}lease:takeovers:count"

    def lease_yield(self, server: str) -> str:
        """Set with a TTL by a holder that handed the lease over because a connector could not
        reach its broker (zato.connector.handover): the others do not hand it back to it."""
        return f"{self.prefix}lease:yield:{server}"

    def lease_handover(self, connector: str) -> str:
        """Set with a TTL, naming the server, by a holder that handed the lease over because
        `connector` could not reach its broker: a holder whose same connector fails too keeps
        the lease (zato.connector.handover), renewing it while that lasts."""
        return f"{self.prefix}lease:handover:{connector}"

    @property
    def supervisor_status(self) -> str:
        """JSON written by the holder's supervisor: its children and their states."""
        return f"{self.prefix}supervisor:status"

    # Pub/sub channels.
    @property
    def events(self) -> str:
        """Config-change events (deploy, channel, connector definitions)."""
        return f"{self.prefix}events"

    @property
    def writes_probe(self) -> str:
        """A key (short-lived, nothing reads it) written before a change is made, to find out
        whether Redis takes writes: a replica takes the change's event (PUBLISH) but tells it
        to none of the servers, which listen on its master (zato.coord.events.reachable)."""
        return f"{self.prefix}writes:probe"

    @property
    def lease_channel(self) -> str:
        """Lease released: standbys wake and compete at once."""
        return f"{self.prefix}lease:released"

    # Outgoing queues (AMQP / IBM MQ): the worker pushes, the connector moves and publishes.
    def out_queue(self, kind: str, name: str) -> str:
        return f"{self.prefix}out:{kind}:{name}"

    def out_processing(self, kind: str, name: str) -> str:
        return f"{self.prefix}out:{kind}:{name}:processing"

    def out_parked(self, kind: str, name: str) -> str:
        """Outgoing messages that could not be decoded: kept for a human, never retried."""
        return f"{self.prefix}out:{kind}:{name}:parked"

    def definition_change(self, change_id: str) -> str:
        """String (with a TTL): what the Redis part of one connection definition change gave,
        set by the script that made it, or "void" once the change gave up waiting for it
        (zato.coord.changes): a change whose answer was lost is found out by reading it."""
        return f"{self.prefix}definition-change:{change_id}"

    @property
    def out_names(self) -> str:
        """Set of "kind:name": the outgoing connections whose queues /metrics shows, an
        inactive one's included (its connector gone, what waits is still there)."""
        return f"{self.prefix}out-names"

    @property
    def out_renamed(self) -> str:
        """Hash "kind:old name" -> JSON {"id": ODB id}: an outgoing connection renamed (written
        with the rename). The lease holder moves what comes to the old name's
        lists to the connection's current name (zato.connector.renames), then forgets it."""
        return f"{self.prefix}out-renamed"

    def channel_handoff(self, kind: str, name: str) -> str:
        """List: messages a stopping channel connector had received but not processed (a
        ZeroMQ channel's socket queue), for the channel's next connector, on any server."""
        return f"{self.prefix}handoff:{kind}:{name}"

    def channel_handoff_processing(self, kind: str, name: str) -> str:
        """List: hand-off messages a connector took and whose service has not answered yet
        (zato.coord.handoff): the next connector runs what a killed one left here."""
        return f"{self.prefix}handoff:{kind}:{name}:processing"

    def channel_handoff_deleted(self, kind: str, name: str) -> str:
        """Set when the channel is deleted: its stopping connector hands nothing over any more
        (zato.coord.handoff.Handoff.drop); kept while a connector of it may still stop."""
        return f"{self.prefix}handoff:{kind}:{name}:deleted"

    def channel_handoff_renamed(self, kind: str, name: str) -> str:
        """String: the channel's new name once it was renamed; its stopping connector hands
        over there (zato.coord.handoff.Handoff.rename); kept while one of it may still stop."""
        return f"{self.prefix}handoff:{kind}:{name}:renamed"

    def channel_handoff_takers(self, kind: str, name: str) -> str:
        """Set: the connectors of the channel (their tokens, "EPOCH:ID") that registered under
        this name, or under a name renamed to it, and have not said they exited (Handoff)."""
        return f"{self.prefix}handoff:{kind}:{name}:takers"

    def channel_handoff_alive(self, kind: str, token: str = "") -> str:
        """String with a short TTL, refreshed by the connector `token` while it runs (Handoff.beat);
        without a token: the prefix of these keys."""
        return f"{self.prefix}handoff-alive:{kind}:{token}"

    def connector_stats(self, name: str) -> str:
        return f"{self.prefix}connector:stats:{name}"

    # Zato's cache API (self.cache): one key per entry, the value as JSON.
    def cache(self, cache: str, key: str) -> str:
        return f"{self.prefix}cache:{cache}:{key}"

    def lock(self, name: str) -> str:
        """A service's distributed lock (`with self.lock(name):`)."""
        return f"{self.prefix}lock:{name}"

    # invoke_async: a cluster-wide queue taken by every worker of every server; a worker moves
    # what it runs to its own processing list (named SERVER:PID, see coord.async_invoke).
    @property
    def async_queue(self) -> str:
        return f"{self.prefix}async:queue"

    def async_processing(self, worker: str) -> str:
        return f"{self.prefix}async:processing:{worker}"

    @property
    def async_parked(self) -> str:
        """Calls whose workers died under them MAX_DEATHS times (coord.async_invoke): kept, not run."""
        return f"{self.prefix}async:parked"

    @property
    def async_workers(self) -> str:
        """Set of the workers that ever took calls (the reaper looks only at these)."""
        return f"{self.prefix}async:workers"

    # self.patterns.fanout / .parallel (coord.patterns): per run, the indexes of the targets
    # recorded (a hash) and their outcomes in the order they came (a list).
    def pattern_done(self, run: str) -> str:
        return f"{self.prefix}pattern:{run}:done"

    def pattern_outcomes(self, run: str) -> str:
        return f"{self.prefix}pattern:{run}:outcomes"

    @property
    def deploy_turn(self) -> str:
        """Held by the one worker of the cluster loading a hot-deployed module right now."""
        return f"{self.prefix}deploy:turn"

    def deploy_loaded(self, module: str) -> str:
        """Hash: worker (server:pid) -> the version of `module` it loaded (zato.coord.loaded)."""
        return f"{self.prefix}deploy:loaded:{module}"

    def acl_rules(self) -> list[str]:
        """Redis ACL rules of a user that can do what a cluster does with its own keys and
        channels and nothing else (docs/redis-acl.md). Add `on` and `>PASSWORD`."""
        every = f"{self.prefix}*"
        return ["resetkeys", f"~{every}", "resetchannels", f"&{every}", *ACL_COMMANDS]


ACL_COMMANDS = [
    "-@all",
    "+@read",
    "+@write",
    "+@keyspace",
    "+@string",
    "+@list",
    "+@set",
    "+@pubsub",
    "+@scripting",
    "+@connection",
    "+@transaction",
    "-@dangerous",
    "+time",  # Redis's clock stamps and checks member entries (zato.coord.redis_clock)
    "+info",  # INFO memory: whether Redis may evict the cluster's keys (zato.coord.eviction)
]
