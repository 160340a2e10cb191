"""The Nomad Variable's keyed version and the key's provider, as the engine calls them."""

from __future__ import annotations

import hashlib
import hmac
import re

from infra.variable_version import KEY_BYTES, _KeyProvider, keyed_version

CONTENT = '{"database_url": "postgresql://api:pw@10.0.0.5/api"}'


def test_the_version_is_the_written_definition() -> None:
    """HMAC-SHA-256 under the key's bytes, its first 6 bytes big-endian, plus one: at least 1
    (the provider's rule) and exact as the engine's float64."""
    key = "9c" * KEY_BYTES
    mac = hmac.new(bytes.fromhex(key), CONTENT.encode(), hashlib.sha256).digest()
    assert keyed_version(key, CONTENT) == int.from_bytes(mac[:6], "big") + 1
    # HMAC-SHA-256 with an empty key and message (zero bytes pad to the same block) is a published value.
    assert keyed_version("00" * KEY_BYTES, "") == 0xB613679A0814 + 1
    assert 1 <= keyed_version(key, CONTENT) <= 2**48 < 2**53


def test_the_key_is_random_and_no_diff_ever_changes_it() -> None:
    provider = _KeyProvider()
    made = [provider.create({"bytes": KEY_BYTES, "key": None}) for _ in range(2)]
    keys = [str(result.outs["key"]) for result in made if result.outs]
    assert len(keys) == 2
    assert all(re.fullmatch(r"[0-9a-f]{64}", key) for key in keys), keys
    assert keys[0] != keys[1], "random bytes"
    assert [result.id for result in made] == ["variable-version-key"] * 2
    assert [made[0].outs] == [{"key": keys[0]}], "the key alone"
    shorter = provider.create({"bytes": 16, "key": None}).outs
    assert shorter is not None
    assert re.fullmatch(r"[0-9a-f]{32}", str(shorter["key"])), "as many bytes as the resource asks for"
    olds = {"bytes": KEY_BYTES, "key": keys[0]}
    assert provider.diff("variable-version-key", olds, {"bytes": KEY_BYTES, "key": None}).changes is False
