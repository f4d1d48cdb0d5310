"""The plan is a pure table over probed facts: tested here without an event loop or an fd."""

from __future__ import annotations

import errno

import pytest

from zcio import FdInfo, Kind, Method, Reason
from zcio._knowledge import Knowledge, parse_disable
from zcio._plan import choose, pair_key
from zcio._probe import CAPABILITIES

C, S, P, U = Method.COPY_FILE_RANGE, Method.SENDFILE, Method.SPLICE, Method.USERSPACE


def info(
    kind: Kind,
    *,
    append: bool = False,
    readable: bool = True,
    writable: bool = True,
    dev: int = 1,
) -> FdInfo:
    sources, destinations = CAPABILITIES[kind]
    return FdInfo(
        kind=kind,
        fd=3,
        nonblocking=True,
        readable=readable,
        writable=writable,
        append=append,
        owner="test",
        sources=sources if readable else frozenset(),
        destinations=(destinations & {U} if append else destinations) if writable else frozenset(),
        identity=(dev, 99),
    )


F, PIPE, TCP, UNIX, DGRAM, TLS, CHR, OTHER = (
    Kind.REGULAR_FILE,
    Kind.PIPE,
    Kind.TCP,
    Kind.UNIX_STREAM,
    Kind.DATAGRAM,
    Kind.TLS,
    Kind.CHAR_DEVICE,
    Kind.OTHER,
)

TABLE = [
    # src, dst, candidates in order
    (F, F, (C, S, P, U)),
    (F, TCP, (S, P, U)),
    (F, UNIX, (S, P, U)),
    (F, PIPE, (S, P, U)),
    (F, CHR, (S, P, U)),
    (F, DGRAM, (U,)),
    (F, TLS, (U,)),
    (F, OTHER, (U,)),
    (TCP, TCP, (P, U)),
    (TCP, UNIX, (P, U)),
    (UNIX, TCP, (P, U)),
    (TCP, PIPE, (P, U)),
    (PIPE, TCP, (P, U)),
    (PIPE, PIPE, (P, U)),
    (TCP, F, (P, U)),
    (TCP, TLS, (U,)),
    (TLS, TCP, (U,)),
    (DGRAM, TCP, (U,)),
    (TCP, DGRAM, (U,)),
    (CHR, TCP, (P, U)),
]


@pytest.mark.parametrize(("src", "dst", "expected"), TABLE)
def test_table(src: Kind, dst: Kind, expected: tuple[Method, ...]) -> None:
    plan = choose(info(src), info(dst))
    assert plan.candidates == expected
    assert plan.method is expected[0]
    assert plan.zero_copy is (expected[0] is not U)
    # Every method not chosen is explained.
    explained = {s.method for s in plan.passed_over}
    assert explained | set(plan.candidates) == {C, S, P, U}
    assert not explained & set(plan.candidates)


def test_tls_reason_names_tls() -> None:
    plan = choose(info(F), info(TLS))
    assert {s.reason for s in plan.passed_over} == {Reason.USER_SPACE_TLS}
    assert "TLS" in str(plan)


def test_append_destination() -> None:
    plan = choose(info(F), info(F, append=True))
    assert plan.candidates == (U,)
    assert {s.reason for s in plan.passed_over} == {Reason.APPEND}


def test_unreadable_or_unwritable_is_an_error() -> None:
    with pytest.raises(ValueError, match="not open for reading"):
        choose(info(F, readable=False), info(TCP))
    with pytest.raises(ValueError, match="not open for writing"):
        choose(info(F), info(F, writable=False))


def test_disabled_and_refused_and_not_offered() -> None:
    plan = choose(info(F), info(TCP), disabled={S: Reason.DISABLED})
    assert plan.candidates == (P, U)
    assert plan.reason_against(S) is not None
    assert plan.reason_against(S).reason is Reason.DISABLED  # type: ignore[union-attr]

    refused = {pair_key(S, info(F, dev=7), info(TCP))}
    plan = choose(info(F, dev=7), info(TCP), refused_pairs=refused)
    assert plan.candidates == (P, U)
    assert plan.reason_against(S).reason is Reason.REFUSED_FOR_PAIR  # type: ignore[union-attr]
    # The refusal is for that pair of kinds only, and for files on that filesystem only.
    assert choose(info(F, dev=7), info(UNIX), refused_pairs=refused).method is S
    assert choose(info(F, dev=8), info(TCP), refused_pairs=refused).method is S

    plan = choose(info(F), info(TCP), offered={S, C})
    assert plan.candidates == (S, U)
    assert plan.reason_against(P).reason is Reason.NOT_OFFERED  # type: ignore[union-attr]


def test_parse_disable() -> None:
    assert parse_disable("") == frozenset()
    assert parse_disable(" SendFile , splice,") == {S, P}
    assert parse_disable("all") == {C, S, P, Method.TEE}
    with pytest.warns(RuntimeWarning, match="bogus"):
        assert parse_disable("bogus,tee") == {Method.TEE}


def test_knowledge_learns_like_rust_std(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZCIO_DISABLE", "tee")
    k = Knowledge()
    assert k.disabled() == {Method.TEE: Reason.DISABLED}
    # EINVAL: this pair of kinds only.
    assert k.is_refusal(S, OSError(errno.EINVAL, "x"), info(F), info(TCP))
    assert k.refused_pairs() == {pair_key(S, info(F), info(TCP))}
    assert S not in k.disabled()
    # ENOSYS / EPERM: the whole process.
    assert k.is_refusal(P, OSError(errno.ENOSYS, "x"), info(TCP), info(TCP))
    assert k.disabled()[P] is Reason.UNAVAILABLE
    # EXDEV: this transfer only, nothing learned.
    assert k.is_refusal(C, OSError(errno.EXDEV, "x"), info(F), info(F))
    assert C not in k.disabled()
    assert len(k.refused_pairs()) == 1
    # Real errors are not refusals.
    assert not k.is_refusal(S, OSError(errno.EPIPE, "x"), info(F), info(TCP))
    k.reset()
    assert k.refused_pairs() == frozenset()
    assert k.disabled() == {Method.TEE: Reason.DISABLED}
