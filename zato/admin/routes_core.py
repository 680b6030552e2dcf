"""Admin API core routes: deploy and undeploy a module or a user-config file (?name=NAME.ini);
list, save and delete HTTP channels; services."""

from __future__ import annotations

import bottle

from zato.admin.api import fail, json_body, worker
from zato.common.errors import CoordError, DeployError, ODBError, ODBUnavailable, ZatoError
from zato.odb import api as odb_api
from zato.odb.api import ChannelRecord
from zato.service import channels
from zato.service.deploy import (
    deploy,
    deploy_user_config,
    is_user_config,
    undeploy,
    undeploy_user_config,
    user_config_name,
)


def register(app: bottle.Bottle) -> None:
    app.route("/deploy", "POST", deploy_module)
    app.route("/deploy/<name>", "DELETE", undeploy_module)
    app.route("/services", "GET", list_services)
    app.route("/channels", "GET", list_channels)
    app.route("/channels", "POST", save_channel)
    app.route("/channels/<name>", "DELETE", delete_channel)


MAX_WAIT = 3600.0  # ?wait=SECONDS, as `zato deploy --wait`


def deploy_module() -> dict:
    w = worker()
    name = _module(bottle.request.query.get("name", ""))
    if not name:
        fail(400, "the module name is required (?name=)")
    wait = _wait(bottle.request.query.get("wait"), name)
    try:
        source = bottle.request.body.read().decode("utf-8-sig" if is_user_config(name) else "utf-8")
    except UnicodeDecodeError:
        fail(400, "the module source is not UTF-8 text")
    if is_user_config(name):  # ?name=airports.ini: a user-config file, as `zato deploy` takes it
        return _user_config(
            lambda odb, client, cluster, conf: deploy_user_config(odb, client, cluster, conf, source), name
        )
    try:
        result = deploy(
            w.odb,
            w.redis,
            w.settings.cluster,
            name,
            source,
            w.settings.deploy_timeout,
            w.settings.import_budget,
        )
    except (CoordError, ODBUnavailable) as e:  # not the request's fault; the message says what was saved
        fail(503, str(e))
    except (DeployError, ODBError) as e:
        fail(400, str(e))
    answer = {
        "module": result.module,
        "version": result.version,
        "changed": result.changed,
        "services": list(result.services),
    }
    warnings = result.warnings()
    if warnings:
        answer["warnings"] = warnings
    if wait is not None:
        answer["loaded"] = _loaded(w, result.module, result.version, wait)
    return answer


def _wait(given: str | None, name: str) -> float | None:
    """?wait=SECONDS: then wait until every worker of every running server loaded the version."""
    if given is None:
        return None
    if is_user_config(name):
        fail(400, "wait is for service modules: a user-config file applies as the servers read it")
    try:
        seconds = float(given)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_WAIT:
        fail(400, f"wait={given[:40]!r}: give a number of seconds, more than 0 and at most {MAX_WAIT:g}")
    return seconds


def _loaded(w, module: str, version: int, timeout: float) -> dict:  # noqa: ANN001
    """What ?wait= waited for (zato.coord.loaded): `everywhere` true once every live worker
    loaded `version`; else the workers that could not (`failed`, with why) or had not within
    `timeout` (`missing`). The module is deployed either way: the status stays 200."""
    from zato.coord import loaded
    from zato.coord.signing import member_key

    key = member_key(w.settings.cluster_secret, w.settings.cluster)
    try:
        waited = loaded.wait(w.redis, w.settings.cluster, key, module, version, timeout)
    except CoordError as e:
        fail(
            503,
            f"module {module} version {version} is deployed; whether the servers loaded it is unknown: {e}",
        )
    return {
        "everywhere": waited.everywhere,
        "seconds": round(waited.seconds, 3),
        "workers": waited.workers,
        "missing": waited.missing,
        "failed": waited.failed,
    }


def _user_config(apply, file_name: str, refused: int = 400) -> dict:  # noqa: ANN001
    """Deploy or undeploy the user-config file `file_name` (NAME.ini or NAME.conf); `refused`:
    the status of a DeployError (undeploy: the file is not deployed, 404)."""
    w = worker()
    try:
        name = user_config_name(file_name)
        result = apply(w.odb, w.redis, w.settings.cluster, name)
    except (CoordError, ODBUnavailable) as e:
        fail(503, str(e))
    except DeployError as e:
        fail(refused, str(e))
    except ODBError as e:
        fail(400, str(e))
    return {"user_config": name, "result": result.describe()}


def _module(name: str) -> str:
    """A module's name as given: `my_api`, or its file's name `my_api.py` (as `zato deploy`
    and a pickup folder take it; before, `.py` was refused as not a Python identifier)."""
    return name[: -len(".py")] if name.endswith(".py") and len(name) > len(".py") else name


def undeploy_module(name: str) -> dict:
    if is_user_config(name):
        return _user_config(undeploy_user_config, name, 404)
    name = _module(name)
    w = worker()
    try:
        result = undeploy(w.odb, w.redis, w.settings.cluster, name)
    except CoordError as e:
        fail(503, str(e))
    except DeployError as e:
        fail(404, str(e))
    answer: dict = {"module": result.module, "services": list(result.services)}
    warnings = result.warnings()
    return {**answer, "warnings": warnings} if warnings else answer


def list_services() -> dict:
    return {"services": sorted(worker().store.services)}


def _channel_dict(ch: ChannelRecord) -> dict:
    return {
        "name": ch.name,
        "url_path": ch.url_path,
        "method": ch.method,
        "service": ch.service,
        "data_format": ch.data_format,
        "is_active": ch.is_active,
        "max_body": ch.max_body,
        "security": ch.security,
    }


def list_channels() -> dict:
    w = worker()
    return {"channels": [_channel_dict(c) for c in odb_api.list_channels(w.odb, w.settings.cluster)]}


def save_channel() -> dict:
    w = worker()
    data = json_body()
    try:
        ch = odb_api.make_channel(
            data.get("name"),
            data.get("url_path"),
            data.get("service"),
            data.get("method"),
            data.get("data_format", "json"),
            data.get("is_active", True),
            data.get("max_body"),
            data.get("security"),
        )
        opening = "security" in data and not data["security"]  # "security": null opens it on purpose
        created = channels.save(w.odb, w.redis, w.settings.cluster, ch, opening)
    except (CoordError, ODBUnavailable) as e:  # the ODB away is no fault of the request's (was 400)
        fail(503, str(e))
    except ZatoError as e:
        fail(400, str(e))
    bottle.response.status = 201 if created else 200
    warning = odb_api.unknown_service(w.odb, w.settings.cluster, ch.service, "requests to it")
    return {"channel": _channel_dict(ch), "created": created, **({"warnings": [warning]} if warning else {})}


def delete_channel(name: str) -> dict:
    w = worker()
    try:
        deleted = channels.delete(w.odb, w.redis, w.settings.cluster, name)
    except CoordError as e:
        fail(503, str(e))
    if not deleted:
        fail(404, f"no channel named {name!r}")
    return {"deleted": name}
