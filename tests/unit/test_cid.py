from zato.common.cid import CROCKFORD, is_cid, new_cid


def test_cid_is_k_plus_27_crockford_characters():
    cids = {new_cid() for _ in range(2000)}
    assert len(cids) == 2000
    for cid in cids:
        assert len(cid) == 28 and cid[0] == "K" and set(cid[1:]) <= set(CROCKFORD)
        assert is_cid(cid)


def test_is_cid_rejects_other_shapes():
    for bad in ("", "K", "X" + "0" * 27, "K" + "0" * 26, "K" + "I" * 27, "K" + "0" * 28, None):
        assert not is_cid(bad)
