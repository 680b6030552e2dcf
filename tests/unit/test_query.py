"""zato.service.query.QueryDict: a query string's or a form's fields as services see them."""

from __future__ import annotations

import copy
import pickle

from zato.service.query import QueryDict


def test_each_name_is_its_last_value_and_getlist_has_them_all():
    q = QueryDict.parse("status=new&status=paid&limit=5&q=")
    assert dict(q) == {"status": "paid", "limit": "5", "q": ""}
    assert q.getlist("status") == ["new", "paid"]
    assert q.getlist("limit") == ["5"]
    assert (q.getlist("nope"), q.getlist("nope", ["x"])) == ([], ["x"])
    assert q.repeated() == {"status": ["new", "paid"]}


def test_a_value_the_service_sets_or_deletes_is_what_getlist_answers():
    q = QueryDict.parse("status=new&status=paid&limit=5")
    q["status"] = "late"
    del q["limit"]
    assert (q.getlist("status"), q.getlist("limit"), q.repeated()) == (["late"], [], {})


def test_copies_keep_every_value():
    q = QueryDict.parse("a=1&a=2")
    for other in (copy.deepcopy(q), copy.copy(q), pickle.loads(pickle.dumps(q))):  # noqa: S301 - our own bytes
        assert other.getlist("a") == ["1", "2"]
