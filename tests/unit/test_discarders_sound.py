"""Discarders are sound: a path is only ever written when no event with that path can match.

Property tests (hypothesis): random conditions over path fields and fields the proof must
treat as unknown, random events built as wire records and decoded by the real decoder,
evaluated by the real rule engine.  Whenever the plan proves an event's path discardable,
every other event with the same path (other flags, results, users, comms, spelled relative to
a directory) must match no rule.  Plus the run-time half (bound, eviction, reload) over an
in-memory map.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysward.enforce.prefilter.discarders import (
    DISC_PATH,
    KEY_PATH_MAX,
    PATH_FIELDS,
    Discarders,
    MemoryMap,
    clean_path,
    compile_discarders,
    kernel_key,
    key_of,
)
from sysward.events.decoder import Decoder
from sysward.events.model import Event
from sysward.events.types import BY_NAME, HEADER, STRS
from sysward.rules import fields as registry
from sysward.rules import load_rules_text

TYPES = ("open", "openat", "creat", "unlinkat", "mkdirat", "unlink", "fchmodat")
COMPS = ["etc", "tmp", "ssh", ".ssh", "home", "u", "shadow", "passwd", "id_rsa", "x", "log",
         "var", "credentials", ".aws", "bin", "cron.d", "sudoers", "authorized_keys", "usr",
         "proc", "run", "\udcffx", "a.b", "ID_RSA"]
COMMS = [b"cat", b"sshd", b"cp", b"bash", b"", b"python3"]
FLAGS = [0, 1, 2, 0o100, 0o1000, 0o200000, 0o20200000]

_DEC = Decoder(boot_offset=0)


def _record(t: str, name: bytes, dir_leaf_first: bytes, i0: int, i1: int, res: int, euid: int,
            uid: int, comm: bytes, pid: int) -> bytes:
    et = BY_NAME[t]
    raw = name + b"\0"
    tail = raw + dir_leaf_first
    payload = STRS.struct.pack(i0, i1, 0o644, len(raw), len(dir_leaf_first), 0, 0, 0, 0, 0)
    size = HEADER.size + len(payload) + len(tail)
    header = HEADER.struct.pack(1, 0, 0, res, size, et.id, 0, pid, pid, 1, uid, 0, euid, 0,
                                0, 0, 0, 0, 0, comm.ljust(16, b"\0"))
    return header + payload + tail


def _enc(parts: list[str]) -> list[bytes]:
    return [p.encode("utf-8", "surrogateescape") for p in parts]


@st.composite
def paths(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(st.sampled_from(COMPS), min_size=1, max_size=4))
    return b"/" + b"/".join(_enc(parts))


@st.composite
def spellings(draw: st.DrawFn, path: bytes, t: str) -> Event:
    """An event of type ``t`` on ``path``: absolute, or relative to one of its directories,
    with everything else drawn."""
    parts = path[1:].split(b"/")
    cut = draw(st.integers(0, len(parts) - 1))
    if cut == 0:
        name, dir_lf = path, b""
    else:  # the first `cut` components are the directory (as the kernel walks it)
        name = b"/".join(parts[cut:])
        dir_lf = b"".join(p + b"\0" for p in reversed(parts[:cut]))
    flags = 0
    for fl in draw(st.lists(st.sampled_from(FLAGS), max_size=3)):
        flags |= fl
    if t == "creat":
        flags = 0o100 | 0o1 | 0o1000
    opens = t in ("open", "openat", "creat")
    i0 = -100 if opens else draw(st.sampled_from([0, 0o1000]))
    i1 = flags if opens else -100
    res = draw(st.sampled_from([-13, -2, 0, 3, 7]))
    euid = draw(st.sampled_from([0, 33, 1000]))
    uid = draw(st.sampled_from([0, 1000]))
    comm = draw(st.sampled_from(COMMS))
    pid = draw(st.sampled_from([1, 4242, 99999]))
    ev = _DEC.decode(_record(t, name, dir_lf, i0, i1, res, euid, uid, comm, pid))
    assert ev is not None
    return ev


PATH_LEAVES = [
    "fd.name = /etc/shadow", "fd.name in (/etc/shadow, /etc/passwd, /tmp/x)",
    "fd.name startswith /etc/", "fd.name pmatch (/var/log)", "fd.directory = /etc/ssh",
    "fd.name endswith /.aws/credentials", "fd.name contains id_rsa",
    "fd.name contains shadow", "fd.name glob '/etc/*'", "fd.name glob '*/.ssh/*'",
    "fd.name icontains id_rsa", "fd.name regex '.*/[a-c]+$'", "fd.nameraw contains '/.'",
    "evt.arg.name contains x", "evt.arg.path startswith /tmp", "evt.arg.path contains ssh",
    "basename(fd.name) = shadow", "tolower(fd.name) contains id_rsa", "fd.name exists",
    "fs.path.name contains etc", "evt.abspath contains /u/", "fd.directory in (/bin, /tmp)",
    "fd.name in (shadow_list)",
]
OTHER_LEAVES = [
    "fd.filename = shadow", "fd.filename contains id", "fd.filename != shadow",
    "fd.filename exists", "not fd.filename in (x, shadow)", "proc.name = cat",
    "proc.name in (sshd, bash)", "user.uid = 0", "user.uid != 0", "evt.rawres >= 0",
    "evt.rawres < 0", "evt.is_open_write = true", "evt.arg.flags contains O_CREAT",
    "fd.num >= 0", "fd.typechar = d", "evt.res startswith E", "proc.cmdline contains x",
    "proc.pid = 4242", "user.loginuid = 1000", "evt.arg.dirfd = -100",
    "fd.name = val(fd.directory)",
]


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        # path leaves three times as often: a proof needs every rule decided by the path
        return draw(st.sampled_from(PATH_LEAVES * 3 + OTHER_LEAVES))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return f"not ({draw(conditions(depth + 1))})"
    kids = draw(st.lists(conditions(depth + 1), min_size=2, max_size=3))
    return "(" + f" {op} ".join(kids) + ")"


def _rules_text(conds: list[str], types: list[str], exceptions: bool) -> str:
    out = ["- list: shadow_list\n  items: [/etc/shadow, /etc/gshadow]\n",
           "- macro: m_ssh\n  condition: fd.name contains .ssh\n"]
    for i, (c, t) in enumerate(zip(conds, types, strict=True)):
        rule = (f"- rule: r{i}\n  desc: d\n  condition: evt.type in ({t}) and ({c})"
                f"{' and not m_ssh' if i % 2 else ''}\n  output: o\n  priority: WARNING\n")
        if exceptions:
            rule += ("  exceptions:\n    - name: ok\n      fields: [proc.name, fd.directory]\n"
                     "      values: [[cp, /tmp]]\n")
        out.append(rule)
    return "".join(out)


def _check(ruleset, evs: list[Event], others: list[Event]) -> int:  # type: ignore[no-untyped-def]
    plan = compile_discarders(ruleset.rules, TYPES)
    proved = 0
    for ev in evs:
        tp = plan.by_type.get(ev.type)
        key = key_of(ev)
        if tp is None or tp.may_match is None or key is None or tp.may_match(ev):
            continue
        proved += 1
        assert not ruleset.match(ev), f"{ev.type} {key!r}: proved, yet a rule matches it"
        for o in others:
            if o.type != ev.type or key_of(o) != key:
                continue
            hit = ruleset.match(o)
            assert not hit, (f"{o.type} {key!r} was proved discardable from {ev.args} comm="
                             f"{ev.comm!r} res={ev.res}, but rule {hit[0].name} matches "
                             f"{o.args} comm={o.comm!r} res={o.res} euid={o.euid} "
                             f"(condition: {hit[0].condition_text})")
    return proved


@st.composite
def event_sets(draw: st.DrawFn) -> tuple[list[Event], list[Event]]:
    ps = draw(st.lists(paths(), min_size=3, max_size=8))
    evs: list[Event] = []
    others: list[Event] = []
    for p in ps:
        t = draw(st.sampled_from(TYPES))
        evs.append(draw(spellings(p, t)))
        others.extend(draw(spellings(p, t)) for _ in range(6))
    return evs, others


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(), min_size=1, max_size=3),
       st.lists(st.sampled_from([", ".join(TYPES), "openat", "open, creat", "unlinkat",
                                 "mkdirat, fchmodat", "unlink"]), min_size=3, max_size=3),
       st.booleans(), event_sets())
def test_a_discarder_is_never_proved_for_a_path_some_event_could_match(
        conds: list[str], types: list[str], exceptions: bool,
        sets: tuple[list[Event], list[Event]]) -> None:
    res = load_rules_text(_rules_text(conds, types[:len(conds)], exceptions))
    res.raise_for_errors()
    _check(res.ruleset, *sets)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(t for t in TYPES if PATH_FIELDS[t])), paths(), st.data())
def test_path_fields_depend_on_the_path_alone(t: str, path: bytes, data: st.DataObject) -> None:
    evs = [data.draw(spellings(path, t)) for _ in range(8)]
    for name in sorted(PATH_FIELDS[t]):
        get = registry.resolve(name).extract
        values = {repr(get(e)) for e in evs}
        assert len(values) == 1, f"{name} of {t} differs between events on {path!r}: {values}"


def _plan_of(text: str, types: tuple[str, ...] = TYPES):  # type: ignore[no-untyped-def]
    res = load_rules_text(text)
    res.raise_for_errors()
    return res.ruleset, compile_discarders(res.ruleset.rules, types)


def _open(path: bytes, comm: bytes = b"cat", res: int = 3) -> Event:
    ev = _DEC.decode(_record("openat", path, b"", -100, 0, res, 0, 0, comm, 7))
    assert ev is not None
    return ev


def test_contains_rule_learns_and_other_fields_block_it() -> None:
    rule = ("- rule: keys\n  desc: d\n  condition: evt.type = openat and fd.name contains id_rsa"
            " and not proc.name = ssh\n  output: o\n  priority: WARNING\n")
    _, plan = _plan_of(rule)
    tp = plan.by_type["openat"]
    assert tp.may_match is not None
    assert not tp.may_match(_open(b"/etc/hostname"))  # no id_rsa: no event on it can match
    assert tp.may_match(_open(b"/home/u/.ssh/id_rsa"))  # a process other than ssh could
    # a rule of the type that rests on the process alone: the type cannot learn
    _, plan = _plan_of(rule + "- rule: cat\n  desc: d\n  condition: evt.type = openat and "
                       "proc.name = cat\n  output: o\n  priority: WARNING\n")
    assert plan.by_type["openat"].may_match is None
    assert "rule 'cat'" in plan.by_type["openat"].reason
    # fd.filename is missing on a failed open: not a function of the path alone, but a
    # positive test of it is at most the same test of the path's base name
    _, plan = _plan_of("- rule: f\n  desc: d\n  condition: evt.type = openat and not "
                       "fd.filename = x\n  output: o\n  priority: WARNING\n")
    assert plan.by_type["openat"].may_match is None
    ruleset, plan = _plan_of("- rule: f\n  desc: d\n  condition: evt.type = openat and "
                             "fd.filename in (.bash_history, x) and not proc.name = bash\n"
                             "  output: o\n  priority: WARNING\n")
    tp = plan.by_type["openat"]
    assert tp.may_match is not None
    assert not tp.may_match(_open(b"/etc/hostname"))
    assert tp.may_match(_open(b"/home/u/.bash_history", res=-2))
    assert ruleset.match(_open(b"/home/u/.bash_history"))
    # the process table's types never learn
    _, plan = _plan_of(rule, ("execve", "openat"))
    assert plan.by_type["execve"].may_match is None


def test_keys_are_clean_absolute_paths_that_fit() -> None:
    assert clean_path(b"/etc/hostname") and clean_path(b"/")
    for bad in (b"etc/x", b"/etc/../x", b"/etc/./x", b"/etc//x", b"/etc/", b"",
                b"/" + b"a" * KEY_PATH_MAX):
        assert not clean_path(bad), bad
    assert clean_path(b"/" + b"a" * (KEY_PATH_MAX - 1))
    assert len(kernel_key(3, b"/x")) == 4 + DISC_PATH
    assert key_of(_open(b"/etc/hostname")) == b"/etc/hostname"
    assert key_of(_open(b"/tmp/../etc/x")) is None  # the decoder normalised it: not a key


RULE = ("- rule: keys\n  desc: d\n  condition: evt.type = openat and fd.name contains id_rsa\n"
        "  output: o\n  priority: WARNING\n")


def test_the_map_is_bounded_and_evicts_with_a_second_chance() -> None:
    _, plan = _plan_of(RULE)
    keys, on = MemoryMap(max_entries=4), MemoryMap()
    d = Discarders(plan, keys, on, capacity=4)
    for i in range(4):
        assert d.learn(_open(f"/tmp/f{i}".encode()))
    assert len(keys.entries) == 4 and d.stats.added == 4
    assert on.entries[struct.pack("<I", BY_NAME["openat"].id)] == struct.pack("<I", 1)
    # the kernel hit /tmp/f0 (sets its ref mark): the next eviction spares it once
    k0 = kernel_key(BY_NAME["openat"].id, b"/tmp/f0")
    keys.entries[k0] = struct.pack("<II", 1, 0)
    assert d.learn(_open(b"/tmp/f4"))
    assert len(keys.entries) == 4 and d.stats.evicted == 1
    assert k0 in keys.entries and kernel_key(BY_NAME["openat"].id, b"/tmp/f1") not in keys.entries
    assert keys.entries[k0] == struct.pack("<II", 0, 0)  # its mark was cleared
    for i in range(5, 40):
        d.learn(_open(f"/tmp/f{i}".encode()))
    assert len(keys.entries) == 4 and d.stats.live == 4
    assert d.stats.added == 40 and d.stats.evicted == 36
    # a path a rule could match is not learned (and not re-proved: remembered)
    assert not d.learn(_open(b"/home/u/.ssh/id_rsa"))
    assert not d.learn(_open(b"/home/u/.ssh/id_rsa"))
    assert d.stats.added == 40


def test_suspend_clears_everything_and_learns_nothing_until_resumed() -> None:
    _, plan = _plan_of(RULE)
    keys, on = MemoryMap(), MemoryMap()
    d = Discarders(plan, keys, on)
    for i in range(10):
        d.learn(_open(f"/tmp/f{i}".encode()))
    d.suspend()
    assert not keys.entries and d.stats.cleared == 10 and d.stats.live == 0
    assert set(on.entries.values()) == {struct.pack("<I", 0)}  # the kernel stops looking first
    assert not d.learn(_open(b"/tmp/new")) and not d.learning
    # the new rules match /tmp/f1: it must not come back
    _, plan2 = _plan_of("- rule: tmp\n  desc: d\n  condition: evt.type = openat and fd.name "
                        "contains f1\n  output: o\n  priority: WARNING\n")
    d.resume(plan2)
    assert not d.learn(_open(b"/tmp/f1"))
    assert d.learn(_open(b"/tmp/f2"))
    assert on.entries[struct.pack("<I", BY_NAME["openat"].id)] == struct.pack("<I", 1)


@pytest.mark.parametrize("path", [b"/etc/hostname", b"/usr/lib/x.so"])
def test_default_rules_prove_only_what_they_cannot_match(path: bytes) -> None:
    from pathlib import Path

    from sysward.rules import load_rules

    res = load_rules([Path(__file__).parents[2] / "src" / "sysward" / "rules.d"])
    plan = compile_discarders(res.ruleset.rules, TYPES)
    ev = _open(path)
    tp = plan.by_type["openat"]
    if tp.may_match is not None and not tp.may_match(ev):
        assert not res.ruleset.match(ev)
