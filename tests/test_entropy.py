"""Range coding of side info: exact compressed words, round trips, bad data."""

from __future__ import annotations

import numpy as np
import pytest

from vcodec.entropy import FrequencyTable, SymbolDecoder, SymbolEncoder
from vcodec.errors import MalformedError
from vcodec.pipeline.side_info import GopParams
from vcodec.stages.post import POST_STRENGTHS
from vcodec.stages.scale import SCALES


def test_side_info_golden_bytes() -> None:
    assert GopParams(scale=1).pack().hex() == ""  # one zero word, its zeros stripped
    assert GopParams(scale=2).pack().hex() == "80"
    for scale in SCALES:
        assert GopParams.unpack(GopParams(scale=scale).pack()).scale == scale
    # streams that name post-v1: a post strength index follows the scale
    assert GopParams(scale=1, post=0).pack().hex() == ""
    assert GopParams(scale=2, post=4).pack().hex() == "e66666"
    for scale in SCALES:
        for post in range(len(POST_STRENGTHS)):
            params = GopParams(scale=scale, post=post)
            assert GopParams.unpack(params.pack(), post=True) == params


def test_skewed_table_golden_and_round_trip() -> None:
    table = FrequencyTable((200, 30, 20, 5, 1))
    symbols = [0, 0, 1, 0, 2, 0, 0, 3, 4, 0, 0, 0, 1, 0, 0, 0]
    enc = SymbolEncoder()
    for s in symbols:
        enc.encode(s, table)
    data = enc.finish()
    assert data.hex() == GOLDEN_SKEWED
    dec = SymbolDecoder(data)
    assert [dec.decode(table) for _ in symbols] == symbols


def test_mixed_tables_random_round_trip() -> None:
    rng = np.random.default_rng(0)
    tables = [FrequencyTable(tuple(int(c) for c in rng.integers(1, 1000, n))) for n in (2, 7, 64)]
    plan = [(int(rng.integers(0, t.size)), t) for t in rng.choice(tables, 500)]
    enc = SymbolEncoder()
    for s, t in plan:
        enc.encode(s, t)
    dec = SymbolDecoder(enc.finish())
    assert [dec.decode(t) for _, t in plan] == [s for s, _ in plan]


def test_bad_tables_symbols_and_data() -> None:
    with pytest.raises(ValueError):
        FrequencyTable((1, 0))
    with pytest.raises(ValueError):
        SymbolEncoder().encode(2, FrequencyTable.uniform(2))
    with pytest.raises(MalformedError):
        SymbolDecoder(b"\x01\x00")


GOLDEN_SKEWED = "879a159f"  # pinned: constriction 0.5 range coder, big-endian words


def test_short_messages_survive_zero_stripping() -> None:
    """finish() drops trailing zero bytes; the decoder must restore them for any length."""
    rng = np.random.default_rng(1)
    table = FrequencyTable((1000, 10, 3, 1))
    for length in range(1, 60):
        symbols = [int(s) for s in rng.choice(4, length, p=[0.9, 0.05, 0.03, 0.02])]
        enc = SymbolEncoder()
        for s in symbols:
            enc.encode(s, table)
        data = enc.finish()
        assert not data.endswith(b"\0")
        dec = SymbolDecoder(data)
        assert [dec.decode(table) for _ in symbols] == symbols
