"""Zato 3.2 SimpleIO and 4.1 dataclass I/O: what a service receives and what it returns."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass, field
from typing import Optional

import pytest

from zato.common import jsonenc
from zato.common.errors import DeployError, InputError, ServiceError
from zato.server.service import UUID, AsIs, Bool, Date, DateTime, Decimal, Float, Int, Integer, Model, Service
from zato.service.base import Request
from zato.service.store import ServiceStore, load_source


class Store(ServiceStore):
    def call(self, cls: type[Service], payload=None, query=None, path_params=None):  # noqa: ANN201
        self.add(cls)
        req = Request(payload=payload, params=query or {}, path_params=path_params)
        return self.invoke(cls.name, request=req).payload


class Get(Service):
    name = "t.get"

    class SimpleIO:
        input_required = ("id", "name", AsIs("user_id"))
        input_optional = ("is_active", "-ignored")
        output_required = ("id", "name")
        output_optional = ("is_active",)

    def handle(self) -> None:
        inp = self.request.input
        self.response.payload = {**inp, "internal": "never returned"}


def test_simpleio_types_sources_and_output_filter() -> None:
    out = Store().call(Get, {"name": "n", "user_id": "7"}, {"is_active": "true"}, {"id": "12"})
    assert out == {"id": 12, "name": "n", "is_active": True}  # int/bool by Zato's name rules


@pytest.mark.parametrize(
    ("payload", "path", "detail"),
    [
        ({"name": "n", "user_id": 1}, {}, "missing input: id"),
        ({"id": 1, "user_id": 1}, {}, "missing input: name"),
        ({"name": "n", "user_id": 1}, {"id": "abc"}, "invalid input id: 'abc' is not an integer"),
    ],
)
def test_bad_input_names_the_field(payload: dict, path: dict, detail: str) -> None:
    with pytest.raises(InputError, match=detail):
        Store().call(Get, payload, path_params=path)


class Attrs(Service):
    input = "city", "-country"  # Zato's short form, "-" = optional
    output = "city", "-country"

    def handle(self) -> None:
        self.response.payload.city = self.request.input.city.upper()
        self.response.payload.extra = 1


def test_short_form_and_attribute_payload() -> None:
    assert Store().call(Attrs, {"city": "oslo"}) == {"city": "OSLO"}


class TypedOptional(Service):
    input = "name", "-nick", Integer("-count")  # "-" in a typed element: optional too, as in Zato
    output = "name", Integer("-count")

    def handle(self) -> None:
        self.response.payload = self.request.input


def test_a_typed_element_with_a_dash_is_optional_and_named_without_it() -> None:
    """Before: a required field named '-count' (400 'missing input: -count')."""
    assert Store().call(TypedOptional, {"name": "n"}) == {"name": "n", "count": None}
    assert Store().call(TypedOptional, {"name": "n", "count": "3"}) == {"name": "n", "count": 3}
    with pytest.raises(InputError, match="invalid input count: 'x' is not an integer"):
        Store().call(TypedOptional, {"name": "n", "count": "x"})


@dataclass(init=False)
class ClientReq(Model):
    client_id: int
    note: Optional[str] = None  # noqa: UP045 - as Zato users write it


@dataclass(init=False)
class ClientResp(Model):
    client_id: int
    name: str


class Dataclasses(Service):
    input = ClientReq
    output = ClientResp

    def handle(self) -> None:
        req = self.request.input
        resp = ClientResp()
        resp.client_id, resp.name = req.client_id, f"client {req.client_id} {req.note}"
        self.response.payload = resp


def test_zato41_dataclass_models() -> None:
    assert Store().call(Dataclasses, {"client_id": "3"}) == {"client_id": 3, "name": "client 3 None"}
    with pytest.raises(InputError, match="missing input: client_id"):
        Store().call(Dataclasses, {"note": "x"})


@dataclass(init=False)
class OrderReq(Model):
    customer_id: int
    sku: str
    quantity: int = 1
    tags: list = field(default_factory=list)


@dataclass(init=False)
class OrderResp(Model):
    order_id: int
    sku: str
    quantity: int


class ClassIOModels(Service):
    """Zato 4.1: the declaration in a nested class IO, with dataclass models."""

    class IO:
        input = OrderReq
        output = OrderResp

    def handle(self) -> None:
        req = self.request.input
        resp = OrderResp()
        resp.order_id, resp.sku, resp.quantity = 5000 + req.customer_id, req.sku, req.quantity
        self.response.payload = {**vars(resp), "tags": req.tags, "internal": 1}


class ClassIONames(Service):
    """Zato 4.1: the declaration in a nested class IO, with names ("-" = optional)."""

    class IO:
        input = "order_id", "-needs_lines"
        output = "order_id", "status", "-lines"

    def handle(self) -> None:
        self.response.payload.order_id = self.request.input.order_id
        self.response.payload.status = "open"
        self.response.payload.internal_cost = 12.5
        if self.request.input.needs_lines:
            self.response.payload.lines = [1, 2]


def test_zato41_class_io_declarations() -> None:
    store = Store()
    out = store.call(ClassIOModels, {"customer_id": "3", "sku": "A", "quantity": 4})
    assert out == {"order_id": 5003, "sku": "A", "quantity": 4}  # only OrderResp's fields
    assert store.call(ClassIOModels, {"customer_id": 3, "sku": "A"})["quantity"] == 1  # the field's default
    with pytest.raises(InputError, match="missing input: sku"):
        store.call(ClassIOModels, {"customer_id": 3})
    with pytest.raises(InputError, match="invalid input customer_id: 'x' is not an integer"):
        store.call(ClassIOModels, {"customer_id": "x", "sku": "A"})
    assert store.call(ClassIONames, path_params={"order_id": "7"}) == {"order_id": 7, "status": "open"}
    assert store.call(ClassIONames, query={"needs_lines": "yes"}, path_params={"order_id": "7"}) == {
        "order_id": 7,
        "status": "open",
        "lines": [1, 2],
    }
    with pytest.raises(InputError, match="missing input: order_id"):
        store.call(ClassIONames, {"needs_lines": True})


class Lists(Service):
    class SimpleIO:
        output_required = ("id",)

    def handle(self) -> None:
        self.response.payload = [{"id": 1, "x": 1}, {"id": 2}]


class Broken(Service):
    class SimpleIO:
        output_required = ("id", "name")

    def handle(self) -> None:
        self.response.payload = {"id": 1}


def test_list_output_and_missing_required_output() -> None:
    assert Store().call(Lists) == [{"id": 1}, {"id": 2}]
    with pytest.raises(ServiceError, match="did not produce required output: name"):
        Store().call(Broken)


def test_name_from_get_name_and_bad_declaration_refused_at_deploy() -> None:
    source = (
        "from zato.server.service import Service\n"
        "class A(Service):\n"
        "    @staticmethod\n"
        "    def get_name():\n"
        "        return 'my.a'\n"
        "    def handle(self):\n"
        "        pass\n"
    )
    assert list(load_source("m", source)) == ["my.a"]
    bad = "from zato.server.service import Service\nclass B(Service):\n    input = 'a', 'a'\n"
    with pytest.raises(DeployError, match="names a more than once"):
        load_source("m2", bad)


def test_integer_elem_rejects_bool_and_accepts_text_digits() -> None:
    elem = Integer("n")
    assert elem.convert("42") == 42
    with pytest.raises(ValueError, match="not an integer"):
        elem.convert(True)


def test_integer_elem_takes_a_whole_json_double_and_refuses_a_fraction() -> None:
    """Before: 5.0 (from a client that writes every number as a double) was 'is not an
    integer', a 400."""
    elem = Integer("n")
    assert elem.convert(5.0) == 5 and type(elem.convert(5.0)) is int
    assert elem.convert(-3e2) == -300
    for fraction in (5.5, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="is not a whole number"):
            elem.convert(fraction)
    with pytest.raises(ValueError, match="is not an integer"):
        elem.convert("5.0")  # text stays digits only, as before


class Typed(Service):
    """Declared output types as Zato's SimpleIO sends them; the input's Decimal is exact."""

    name = "t.typed"

    class SimpleIO:
        input_required = (Decimal("price"),)
        output_required = (
            Decimal("price"),
            Int("units"),
            Float("ratio"),
            Date("due"),
            DateTime("at"),
            UUID("ref"),
        )

    def handle(self) -> None:
        price = self.request.input.price
        assert isinstance(price, decimal.Decimal)  # 0.1 stays 0.1: money adds up
        row = collections.namedtuple("Row", "price units ratio due at ref")  # as a database row
        self.response.payload = row(price * 3, decimal.Decimal("3"), "0.5", AT, AT, REF)


AT = dt.datetime(2026, 1, 2, 3, 4, 5)
REF = uuid.UUID("d011d054-db4b-4320-9e24-7f4c217af673")


def test_declared_output_is_converted_to_its_type() -> None:
    out = Store().call(Typed, {"price": "0.1"})
    assert out == {
        "price": "0.3",
        "units": 3,
        "ratio": 0.5,
        "due": "2026-01-02",
        "at": "2026-01-02T03:04:05",
        "ref": "d011d054db4b43209e247f4c217af673",
    }
    with pytest.raises(InputError, match="invalid input price: 'NaN' is not a decimal number"):
        Store().call(Typed, {"price": "NaN"})


@pytest.mark.parametrize(
    ("given", "why"),
    [(10**400, "is out of range: more than a double holds"), ("nan", "is not a finite number"),
     ("-inf", "is not a finite number"), ("1e400", "is not a finite number")],
)  # fmt: skip
def test_a_float_input_a_double_cannot_hold_is_an_input_error(given, why) -> None:
    with pytest.raises(InputError, match=f"invalid input ratio: .* {why}$"):
        Store().call(Ratio, {"ratio": given})


class Ratio(Service):
    name = "t.ratio"
    input = (Float("ratio"),)

    def handle(self) -> None:
        self.response.payload = {"ratio": self.request.input.ratio}


class BadUnits(Service):
    name = "t.bad-units"
    output = (Int("units"),)

    def handle(self) -> None:
        self.response.payload = {"units": 2.5}


def test_output_that_is_not_its_declared_type_names_the_field() -> None:
    with pytest.raises(
        ServiceError, match=r"service t.bad-units produced invalid output units: 2.5 is not a whole"
    ):
        Store().call(BadUnits)


def test_json_of_what_services_hand_over() -> None:
    value = {"at": AT, "day": AT.date(), "t": AT.time(), "n": decimal.Decimal("1.10"), "ref": REF}
    assert json.loads(jsonenc.dumps(value)) == {
        "at": "2026-01-02T03:04:05",
        "day": "2026-01-02",
        "t": "03:04:05",
        "n": "1.10",
        "ref": str(REF),
    }
    with pytest.raises(TypeError, match="a set is not JSON"):
        jsonenc.dumps({"tags": {1}})
    with pytest.raises(ValueError, match="Out of range float"):
        jsonenc.dumps(float("nan"))


class Sliced(Service):
    name = "t.sliced"
    output = "id", "-name"

    def handle(self) -> None:
        self.response.payload.name = "ignored: the list given next wins"
        self.response.payload[:] = ({"id": i, "secret": "x"} for i in (1, 2))


def test_payload_slice_assignment_gives_a_list_of_declared_fields() -> None:
    assert Store().call(Sliced) == [{"id": 1}, {"id": 2}]


class Hooked(Service):
    name = "t.hooked"
    calls: list = []

    def accept(self) -> bool:
        return self.request.payload != "skip"

    def before_handle(self) -> None:
        self.calls.append("before_handle")

    def validate_input(self) -> None:
        self.calls.append("validate_input")

    def handle(self) -> None:
        self.calls.append("handle")
        self.response.payload = {"ok": True}

    def validate_output(self) -> None:
        self.calls.append("validate_output")

    def after_handle(self) -> None:
        self.calls.append("after_handle")

    def finalize_handle(self) -> None:
        self.calls.append(f"finalize_handle {self.processing_time_raw.total_seconds() >= 0}")
        raise RuntimeError("a failing last hook is logged; the answer stands")


def test_zato_hooks_run_in_order_and_accept_can_skip_everything() -> None:
    Hooked.calls = []
    assert Store().call(Hooked) == {"ok": True}
    assert Hooked.calls == [
        "before_handle", "validate_input", "handle", "validate_output", "after_handle", "finalize_handle True"
    ]  # fmt: skip
    Hooked.calls = []
    assert Store().call(Hooked, "skip") is None and Hooked.calls == []


class BrokenHooks(Service):
    name = "t.broken-hooks"

    def before_handle(self) -> None:
        self.environ["seen"] = "before"
        raise ValueError("before_handle broke")

    def handle(self) -> None:
        self.response.payload = {"seen": self.environ["seen"]}

    def after_handle(self) -> None:
        raise RuntimeError("after_handle broke")


def test_an_exception_in_before_or_after_handle_is_logged_and_the_answer_stands(caplog) -> None:
    """As Zato documents (progguide/hooks/service) and does: caught, logged, the next step runs."""
    assert Store().call(BrokenHooks) == {"seen": "before"}
    failed = [r.getMessage() for r in caplog.records if "failed; the invocation goes on" in r.getMessage()]
    assert [m.split(": ", 1)[1] for m in failed] == [
        "service t.broken-hooks: before_handle failed; the invocation goes on, as in Zato",
        "service t.broken-hooks: after_handle failed; the invocation goes on, as in Zato",
    ]


def test_before_add_to_store_keeps_a_service_out() -> None:
    source = (
        "from zato.server.service import Service\n"
        "class On(Service):\n    name = 'h.on'\n    def handle(self): pass\n"
        "class Off(Service):\n    name = 'h.off'\n"
        "    @staticmethod\n    def before_add_to_store(logger): return False\n"
        "class Broken(Service):\n    name = 'h.broken'\n"
        "    @staticmethod\n    def before_add_to_store(logger): raise ValueError('no')\n"
    )
    assert list(load_source("hooks_mod", source)) == ["h.on"]


def test_an_unloaded_module_leaves_nothing_behind() -> None:
    import sys

    from zato.service.store import DEPLOYED_PREFIX

    store = ServiceStore()
    source = "from zato.server.service import Service\nclass Gone(Service):\n    name = 'u.gone'\n"
    assert store.load_module("gone_mod", source, "h1") == ["u.gone"]
    assert DEPLOYED_PREFIX + "gone_mod" in sys.modules
    assert store.unload_module("gone_mod") == ["u.gone"]
    assert "u.gone" not in store.services and DEPLOYED_PREFIX + "gone_mod" not in sys.modules
    assert store.unload_module("gone_mod") == []


@dataclass(init=False)
class Line(Model):
    sku: str
    units: int = 1


@dataclass(init=False)
class Basket(Model):
    basket_id: int
    lines: list[Line] = field(default_factory=list)
    gift: Optional[Line] = None  # noqa: UP045 - Zato users write Optional


class Baskets(Service):
    name = "t.baskets"
    input = Basket
    output = Basket

    def handle(self) -> None:
        basket = self.request.input
        assert all(isinstance(line, Line) for line in basket.lines)
        basket.lines.append(Line(sku="extra"))  # one made in code: units is the class's default
        self.response.payload = basket


def test_nested_models_are_built_in_and_written_out() -> None:
    given = {"basket_id": "9", "lines": [{"sku": "a", "units": "2"}, {"sku": "b"}], "gift": {"sku": "g"}}
    out = json.loads(jsonenc.dumps(Store().call(Baskets, given)))
    extra = {"sku": "extra", "units": 1}
    assert out == {
        "basket_id": 9,
        "lines": [{"sku": "a", "units": 2}, {"sku": "b", "units": 1}, extra],
        "gift": {"sku": "g", "units": 1},
    }
    out = json.loads(jsonenc.dumps(Store().call(Baskets, {"basket_id": 1})))
    assert out == {"basket_id": 1, "lines": [extra]}  # no gift: an optional output not set


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"basket_id": 1, "lines": [{"sku": "a"}, {"units": 3}]}, "missing input: lines[1].sku"),
        (
            {"basket_id": 1, "lines": [{"sku": "a", "units": "many"}]},
            "invalid input lines[0].units: 'many' is not an integer",
        ),
        ({"basket_id": 1, "lines": {"sku": "a"}}, "invalid input lines: {'sku': 'a'} is not a list"),
        ({"basket_id": 1, "lines": ["a"]}, "invalid input lines[0]: 'a' is not an object"),
        ({"basket_id": 1, "gift": 5}, "invalid input gift: 5 is not an object"),
    ],
)
def test_bad_nested_input_is_a_400_naming_where_it_is(given: dict, said: str) -> None:
    with pytest.raises(InputError) as e:
        Store().call(Baskets, given)
    assert str(e.value) == said


@dataclass(init=False)
class Node(Model):
    name: str
    children: list[Node] = field(default_factory=list)


class Tree(Service):
    name = "t.tree"
    input = Node

    def handle(self) -> None:
        depth, node = 0, self.request.input
        while node.children:
            depth, node = depth + 1, node.children[0]
        self.response.payload = {"depth": depth}


def test_a_model_that_holds_itself_is_built_to_any_depth_json_allows_or_refused() -> None:
    def nested(depth: int) -> dict:
        node: dict = {"name": "leaf"}
        for _ in range(depth):
            node = {"name": "n", "children": [node]}
        return node

    assert Store().call(Tree, nested(50)) == {"depth": 50}
    depth = 450  # an object and a list a level: about as deep as the JSON parser takes
    deep = json.loads('{"name": "n", "children": [' * depth + '{"name": "leaf"}' + "]}" * depth)
    with pytest.raises(InputError, match="nested too deeply"):
        Store().call(Tree, deep)


class Tags(Service):
    name = "t.tags"

    class SimpleIO:
        from zato.server.service import CSV, DictList

        input_required = (CSV("tags"), DictList("lines"))
        output_required = (CSV("tags"), DictList("lines"))

    def handle(self) -> None:
        given = self.request.input
        assert given.lines[0].sku == "a"  # each object a Bunch
        self.response.payload = {"tags": given.tags + ["new"], "lines": given.lines}


def test_zatos_csv_and_dictlist_elements() -> None:
    out = Store().call(Tags, {"tags": "x,y", "lines": [{"sku": "a"}]})
    assert out == {"tags": "x,y,new", "lines": [{"sku": "a"}]}
    assert Store().call(Tags, {"tags": ["x"], "lines": [{"sku": "a"}]})["tags"] == "x,new"
    with pytest.raises(InputError, match="invalid input lines: \\[1\\] is not a list of objects"):
        Store().call(Tags, {"tags": "x", "lines": [1]})


class Profile(Service):
    """Zato's documented SimpleIO example of defaults and empty output
    (https://zato.io/docs/progguide/sio.html)."""

    name = "t.profile"

    class SimpleIO:
        input_required = ("user_id",)
        input_optional = ("is_vip", Bool("is_admin", default=False), "nick")
        output_required = ("user_id",)
        output_optional = ("is_vip", "is_admin", "nick", "email", Int("max_size", default=100))

    def handle(self) -> None:
        inp = self.request.input
        self.response.payload = {**inp, "email": None}


class ProfileSkipped(Profile):
    name = "t.profile-skipped"

    class SimpleIO(Profile.SimpleIO):
        skip_empty_keys = True
        force_empty_keys = ("nick",)


class ProfileInput(Profile):
    name = "t.profile-input"
    seen: dict = {}

    def handle(self) -> None:
        ProfileInput.seen = dict(self.request.input)
        self.response.payload = {"user_id": self.request.input.user_id}


def test_optional_input_left_out_is_none_or_its_elements_default() -> None:
    Store().call(ProfileInput, {"user_id": 1})
    assert ProfileInput.seen["is_vip"] is None  # not False: default_value (None) unless the element has one
    assert ProfileInput.seen["is_admin"] is False  # Bool("is_admin", default=False)


def test_optional_output_that_is_none_is_returned_as_null_unless_skip_empty_keys() -> None:
    """Before: every optional output whose value was None was left out, so a client never saw
    `"email": null`; Zato returns it unless the service says skip_empty_keys = True."""
    out = Store().call(Profile, {"user_id": 1, "nick": ""})
    empty = {"is_vip": None, "nick": "", "email": None}
    assert out == {"user_id": 1, "is_admin": False, "max_size": 100, **empty}
    assert json.loads(jsonenc.dumps(out))["email"] is None  # JSON null
    out = Store().call(ProfileSkipped, {"user_id": 1, "nick": ""})
    assert out == {"user_id": 1, "is_admin": False, "nick": "", "max_size": 100}  # nick: force_empty_keys
    assert Store().call(ProfileSkipped, {"user_id": 0, "is_vip": "no"})["is_vip"] is False  # not empty


class ForcedAll(ProfileSkipped):
    name = "t.profile-forced"

    class SimpleIO(ProfileSkipped.SimpleIO):
        force_empty_keys = True  # Zato 3.0's form: every optional output


def test_force_empty_keys_true_keeps_every_optional_output() -> None:
    out = Store().call(ForcedAll, {"user_id": 1})
    assert out["email"] is None and out["is_vip"] is None and out["nick"] is None


def test_a_forcetype_of_ones_own_that_fails_names_itself_and_the_field() -> None:
    """A from_json that breaks on anything but bad input (a TypeError: a bug in the service's
    code) and a to_json that breaks: the service's 500, naming the type's hook and the field;
    a subclass of such a type inherits its hooks; "" on input is the default, as in Zato."""
    from zato.server.service import ForceType

    class Upper(ForceType):
        def from_json(self, value, *ignored):  # noqa: ANN001, ANN202
            return value.upper()

        def to_json(self, value, *ignored):  # noqa: ANN001, ANN202
            return value.lower()

    class Shout(Upper):
        pass

    class Svc(Service):
        name = "t.hooks"

        class SimpleIO:
            input_optional = (Shout("word"),)
            output_optional = (Upper("word"),)

        def handle(self) -> None:
            self.response.payload.word = self.request.input.word

    store = Store()
    assert store.call(Svc, {"word": "Ab"}) == {"word": "ab"}
    assert store.call(Svc, {"word": ""}) == {"word": None}
    with pytest.raises(ServiceError, match=r"^Shout.from_json failed on input word: AttributeError: 'int'"):
        store.call(Svc, {"word": 1})

    class Bad(Svc):
        name = "t.hooks-bad"

        def handle(self) -> None:
            self.response.payload.word = 7

    with pytest.raises(ServiceError, match=r"output word: 7 is refused by Upper.to_json: AttributeError"):
        Store().call(Bad, {})


class Named(Service):
    name = "t.named"
    input = "phone_no", "-nick", "-flag", "-meta", "-tags", "-note"
    output = "phone_no", "-nick", "-flag", "-meta", "-tags", "-note", "-total"

    def handle(self) -> None:
        self.response.payload = {**self.request.input, "total": 3}


def test_a_name_alone_is_text_on_input_as_zatos_default_type() -> None:
    """Zato's SimpleIO: a name alone is Text. Before: `{"phone_no": 486}` gave the int."""
    got = {"phone_no": 486, "nick": 1.5, "flag": True, "meta": {"a": 1}, "tags": [1], "note": ""}
    out = Store().call(Named, got)
    assert out == {**got, "phone_no": "486", "nick": "1.5", "total": 3}  # output carried as given


def test_an_output_object_is_read_by_attribute() -> None:
    """A property, a class attribute and a __slots__ field count, as Zato reads output objects."""

    class Record:
        __slots__ = ("first",)
        kind = "retail"

        def __init__(self) -> None:
            self.first = "Jane"

        @property
        def full(self) -> str:
            return self.first + " Doe"

    class Svc(Service):
        name = "t.attrs-out"
        output = "first", "full", "kind", "-_hidden", "-missing"

        def handle(self) -> None:
            self.response.payload = Record()

    assert Store().call(Svc, {}) == {"first": "Jane", "full": "Jane Doe", "kind": "retail"}


def test_request_headers_are_found_whatever_their_case() -> None:
    from zato.service.base import headers_of

    headers = headers_of({"HTTP_X_GITHUB_EVENT": "push", "CONTENT_TYPE": "application/json"})
    assert headers == {"X-Github-Event": "push", "Content-Type": "application/json"}
    assert headers["X-GitHub-Event"] == headers.get("x-github-event") == "push"
    assert "content-type" in headers and "CONTENT-TYPE" in headers and "x-other" not in headers
    assert headers.get("x-other", "none") == "none"
