"""The prefilter is sound: whenever a rule matches an event, the kernel's decision passes it.

Property test (hypothesis): random conditions over the fields the kernel tests (and some it
cannot), random events built as wire records and decoded by the real decoder, evaluated by
the real rule engine; the Python model of the kernel filter (over the very tables the sensor
gets) must pass every event some rule matches.  Plus the default rules, and the cases the
issue names, as plain examples.
"""

from __future__ import annotations

import functools
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysward.enforce.prefilter import Facts, build_tables, compile_approvers, decide
from sysward.enforce.prefilter.model import name_key, path_key
from sysward.events.decoder import Decoder
from sysward.events.types import BY_NAME, HEADER, STRS
from sysward.rules import load_rules, load_rules_text

TYPES = ("open", "openat", "creat", "unlinkat", "mkdirat")
COMPS = ["etc", "tmp", "ssh", ".ssh", "home", "u", ".config", "systemd", "user", "shadow",
         "passwd", "id_rsa", "id_rsa.pub", "x", "log", "var", "credentials", ".aws", "bin",
         "cron.d", "sudoers", "ld.so.preload", ".bashrc", "authorized_keys", ".bash_history",
         "profile.d", "system", "autostart", "ssh_host_rsa_key", "usr", "proc", "mem", "run",
         "utmp", "\udcffx"]
COMMS = ["cat", "sshd", "cp", "passwd", "bash", "verylongcommandname"[:15], ""]
FLAGS = [0, 1, 2, 3, 0o100, 0o1000, 0o200, 0o2000, 0o200000, 0o20000000, 0o20200000,
         0o4010000]

_DEC = Decoder(boot_offset=0)


def _record(f: Facts, dir_leaf_first: bytes) -> bytes:
    et = BY_NAME[f.type]
    name = (f.name + b"\0") if f.name is not None else b""
    tail = name + dir_leaf_first
    payload = STRS.struct.pack(f.inputs[0], f.inputs[1], f.inputs[2], len(name),
                               len(dir_leaf_first), 0, 0, 0, 0, 0)
    size = HEADER.size + len(payload) + len(tail)
    header = HEADER.struct.pack(1, 0, 0, f.inputs[4], size, et.id, 0, 1, 1, 0, 0, 0,
                                f.inputs[5], 0, 0, 0, 0, 0, 0, f.comm.ljust(16, b"\0"))
    return header + payload + tail


@st.composite
def facts(draw: st.DrawFn) -> tuple[Facts, bytes]:
    t = draw(st.sampled_from(TYPES))
    parts = draw(st.lists(st.sampled_from(COMPS + [".", "..", ""]), min_size=1, max_size=4))
    absolute = draw(st.booleans())
    name = ("/" if absolute else "") + "/".join(parts)
    if draw(st.booleans()):
        name += draw(st.sampled_from(["/", "", "//x"]))
    dparts = draw(st.lists(st.sampled_from(COMPS), min_size=0, max_size=3))
    has_dir = not absolute and draw(st.booleans())
    enc = [p.encode("utf-8", "surrogateescape") for p in dparts]
    dir_lf = b"".join(p + b"\0" for p in reversed(enc)) if has_dir else b""
    dir_abs = (b"/" + b"/".join(enc)) if has_dir else None
    flags = 0
    for fl in draw(st.lists(st.sampled_from(FLAGS), max_size=3)):
        flags |= fl
    if t == "creat":
        flags = 0o100 | 0o1 | 0o1000
    res = draw(st.sampled_from([-13, -2, -1, 0, 3, 4]))
    euid = draw(st.sampled_from([0, 33, 1000, 65534]))
    comm = draw(st.sampled_from(COMMS)).encode()
    i0 = -100
    i1 = flags if t in ("open", "openat", "creat") else draw(st.sampled_from([0, 0o1000, 5]))
    ints = (i0, i1, 0o644, 0, res, euid)
    return Facts(t, ints, comm, name.encode("utf-8", "surrogateescape"), dir_abs), dir_lf


LEAVES = [
    "fd.name = /etc/shadow", "fd.name in (/etc/shadow, /etc/passwd, /tmp/x)",
    "fd.name startswith /etc/", "fd.name startswith /home/u/.ssh", "fd.name pmatch (/var/log)",
    "fd.name pmatch (/etc, /tmp/x/)", "fd.directory = /etc/ssh", "fd.directory in (/bin, /tmp)",
    "fd.filename = shadow", "fd.filename in (id_rsa, passwd)", "fd.filename startswith id_",
    "fd.name endswith /.aws/credentials", "fd.name endswith .pub",
    "fd.name contains /.config/systemd/", "fd.directory endswith /.ssh",
    "fd.name contains shadow", "proc.name = cat", "proc.name in (sshd, passwd, bash)",
    "proc.name != cp", "proc.name = verylongcommandname", "user.uid = 0", "user.uid != 0",
    "user.uid >= 1000", "user.uid < 1000", "user.uid in (0, 33)", "user.uid > 33",
    "user.uid <= 33", "evt.rawres >= 0", "evt.rawres < 0", "evt.rawres = 0", "evt.rawres != 3",
    "evt.is_open_read = true", "evt.is_open_write = true", "evt.is_open_read = false",
    "evt.is_open_write != true", "evt.arg.flags contains O_CREAT",
    "evt.arg.flags contains O_TRUNC", "evt.arg.flags contains O_DIRECTORY",
    "evt.arg.flags contains O_RDWR", "evt.arg.flags contains O_WRONLY",
    "evt.arg.flags contains O_TMPFILE", "evt.arg.flags contains O_RDONLY",
    "evt.arg.name startswith /etc/", "evt.arg.name = /tmp/x", "basename(evt.arg.name) = shadow",
    "evt.arg.path startswith /tmp", "basename(evt.arg.path) in (x, bin)",
    "proc.cmdline contains x", "evt.dir = <", "fd.nameraw = /etc/shadow",
    "fd.num >= 0", "fd.num = -1", "fd.num != -1", "fd.num in (3, 4)", "fd.num > 2",
    "fd.typechar = f", "fd.typechar = d", "fd.typechar != f", "evt.res startswith E",
    'fd.filename = "\\xffx"', 'fd.name startswith "/tmp/\\xff"',
    "proc.nthreads = 0", "proc.nthreads > 1", "proc.nchilds = 0",
    "fd.types intersects (ipv4, ipv6)", "fd.types[0] in (pipe)",
]


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(LEAVES))
    op = draw(st.sampled_from(["and", "or", "not"]))
    if op == "not":
        return f"not ({draw(conditions(depth + 1))})"
    kids = draw(st.lists(conditions(depth + 1), min_size=2, max_size=3))
    return "(" + f" {op} ".join(kids) + ")"


def _rules_text(conds: list[str], types: list[str]) -> str:
    out = []
    for i, (c, t) in enumerate(zip(conds, types, strict=True)):
        out.append(f"- rule: r{i}\n  desc: d\n  condition: evt.type in ({t}) and ({c})\n"
                   "  output: o\n  priority: WARNING\n")
    return "".join(out)


@functools.lru_cache(maxsize=1)
def _defaults():  # type: ignore[no-untyped-def]
    res = load_rules([Path(__file__).parents[2] / "src" / "sysward" / "rules.d"])
    return res.ruleset, build_tables(compile_approvers(res.ruleset.rules, TYPES))


def _check(ruleset, facts_list: list[tuple[Facts, bytes]], tables=None) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    if tables is None:
        tables = build_tables(compile_approvers(ruleset.rules, TYPES))
    matched = passed = 0
    for f, dir_lf in facts_list:
        ev = _DEC.decode(_record(f, dir_lf))
        assert ev is not None
        hit = ruleset.match(ev)
        ok = decide(tables, f)
        if hit:
            matched += 1
            assert ok, (f"rule {hit[0].name} matches {ev.type} {ev.args} comm={ev.comm!r} "
                        f"euid={ev.euid} res={ev.res} but the kernel model rejects it "
                        f"(condition: {hit[0].condition_text})")
        passed += ok
    return matched, passed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(), min_size=1, max_size=3),
       st.lists(st.sampled_from([", ".join(TYPES), "openat", "open, creat", "unlinkat",
                                 "mkdirat"]), min_size=3, max_size=3),
       st.lists(facts(), min_size=20, max_size=40))
def test_model_passes_whatever_a_rule_matches(conds: list[str], types: list[str],
                                              evs: list[tuple[Facts, bytes]]) -> None:
    res = load_rules_text(_rules_text(conds, types[:len(conds)]))
    res.raise_for_errors()
    _check(res.ruleset, evs)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(facts(), min_size=50, max_size=80))
def test_default_rules_sound(evs: list[tuple[Facts, bytes]]) -> None:
    ruleset, tables = _defaults()
    _check(ruleset, evs, tables)


def _decide_one(cond: str, f: Facts) -> bool:
    res = load_rules_text(_rules_text([cond], ["openat, unlinkat"]))
    res.raise_for_errors()
    return decide(build_tables(compile_approvers(res.ruleset.rules, TYPES)), f)


def _open(name: bytes, flags: int = 0, comm: bytes = b"cat", dir_: bytes | None = None,
          res: int = 3, euid: int = 0) -> Facts:
    return Facts("openat", (-100, flags, 0, 0, res, euid), comm, name, dir_)


def test_the_kernel_rejects_what_no_rule_can_match() -> None:
    cond = "evt.is_open_write = true and fd.name startswith /etc/ and not proc.name = dpkg"
    assert not _decide_one(cond, _open(b"/etc/hostname"))  # a read
    assert not _decide_one(cond, _open(b"/tmp/x", flags=1))  # elsewhere
    assert not _decide_one(cond, _open(b"/etc/x", flags=1, comm=b"dpkg"))  # excepted
    assert _decide_one(cond, _open(b"/etc/x", flags=1))
    assert _decide_one(cond, _open(b"x", flags=1, dir_=b"/etc"))  # relative to /etc
    assert not _decide_one(cond, _open(b"x", flags=1, dir_=b"/tmp"))


def test_unknown_keys_may_match() -> None:
    cond = "fd.name startswith /etc/"
    # '..' is resolved by the decoder, not by the kernel: it cannot say no
    assert _decide_one(cond, _open(b"/tmp/../etc/x"))
    assert _decide_one(cond, _open(b"x", dir_=None))  # directory unknown
    assert _decide_one(cond, _open(b"/tmp//x"))
    assert not _decide_one(cond, _open(b"/tmp/x"))
    assert path_key(_open(b"/" + b"a" * 300)) is None
    assert name_key(_open(b"a/b/c")) == b"c" and path_key(_open(b"a/b/c")) is None
    # an empty comm is unknown to the kernel (proc.name falls back to the process table)
    assert _decide_one("proc.name = cat", _open(b"/x", comm=b""))
    assert not _decide_one("proc.name = cat", _open(b"/x", comm=b"dog"))


def test_what_the_kernel_cannot_test_passes() -> None:
    assert _decide_one("proc.cmdline contains x", _open(b"/tmp/x"))
    assert _decide_one("not fd.name contains shadow", _open(b"/etc/shadow"))
    # thread counts and the descriptor table are not kernel atoms: "may match", either way
    for cond in ("proc.nthreads > 1", "not proc.nthreads > 1", "proc.nchilds = 0",
                 "fd.types intersects (ipv4, ipv6)", "not fd.types[0] in (pipe)"):
        assert _decide_one(cond, _open(b"/tmp/x")), cond
    assert not _decide_one("proc.nthreads > 1 and fd.name = /etc/x", _open(b"/tmp/x"))


def test_state_types_pass_everything() -> None:
    res = load_rules_text(_rules_text(["proc.name = nobody"], ["execve, clone, openat"]))
    ap = compile_approvers(res.ruleset.rules, ["execve", "clone", "openat", "procexit"])
    assert ap.by_type["execve"].passes_all and ap.by_type["clone"].passes_all
    assert ap.by_type["procexit"].passes_all
    assert not ap.by_type["openat"].passes_all
    tables = build_tables(ap)
    assert not decide(tables, _open(b"/x", comm=b"cat"))


def test_default_rules_filter_the_file_workload() -> None:
    res = load_rules([Path(__file__).parents[2] / "src" / "sysward" / "rules.d"])
    ap = compile_approvers(res.ruleset.rules, ["openat", "unlinkat", "execve"])
    tables = build_tables(ap)
    assert not decide(tables, _open(b"/etc/hostname"))
    assert not decide(tables, _open(b"copy/d1/f1.txt", flags=0o1101, comm=b"cp",
                                    dir_=b"/tmp/sysward-x"))
    assert not decide(tables, Facts("unlinkat", (0, 5, 0, 0, 0, 0), b"rm", b"f1.txt",
                                    b"/tmp/x/copy/d1"))
    assert decide(tables, _open(b"/etc/shadow", comm=b"cat", euid=1000))
    assert decide(tables, _open(b"passwd", flags=0o1101, comm=b"cp", dir_=b"/etc"))
    assert struct.calcsize("<I") == 4


def test_more_alternatives_than_the_kernel_holds_are_merged_soundly() -> None:
    conds = [f"fd.name = /srv/f{i} and proc.name = c{i % 7} and evt.is_open_write = true"
             for i in range(90)]
    res = load_rules_text(_rules_text(conds, ["openat"] * len(conds)))
    res.raise_for_errors()
    ap = compile_approvers(res.ruleset.rules, ["openat"])
    tf = ap.by_type["openat"]
    assert not tf.passes_all and len(tf.clauses) <= 64
    tables = build_tables(ap)
    for i in range(90):  # what each rule matches still passes
        assert decide(tables, _open(f"/srv/f{i}".encode(), flags=1, comm=f"c{i % 7}".encode()))
    # and what none can match is still dropped
    assert not decide(tables, _open(b"/srv/f1", flags=0, comm=b"c1"))
    assert not decide(tables, _open(b"/elsewhere", flags=1, comm=b"c1"))


def _ints_record(t: str, ints: tuple[int, int, int, int], res: int, comm: bytes) -> bytes:
    from sysward.events.types import INTS

    et = BY_NAME[t]
    payload = INTS.struct.pack(*ints)
    size = HEADER.size + len(payload)
    header = HEADER.struct.pack(1, 0, 0, res, size, et.id, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                0, comm.ljust(16, b"\0"))
    return header + payload


ENUM_CONDS = [
    "evt.type = ptrace and (evt.arg.request contains PTRACE_ATTACH or "
    "evt.arg.request contains PTRACE_SEIZE)",
    "evt.type = ptrace and evt.arg.request = PTRACE_TRACEME and not proc.name = gdb",
    "evt.type = ptrace and not evt.arg.request in (PTRACE_PEEKDATA, PTRACE_CONT)",
    "evt.type = kill and evt.arg.sig in (SIGKILL, SIGTERM)",
    "evt.type = kill and evt.arg.sig startswith SIGRT",
    "evt.type = bpf and evt.arg.cmd = BPF_PROG_LOAD",
    "evt.type = bpf and evt.arg.cmd != BPF_MAP_CREATE",
    "evt.type = socket and evt.arg.domain = AF_PACKET",
    "evt.type = kill and evt.arg.sig = 9",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ENUM_CONDS), min_size=1, max_size=3),
       st.lists(st.tuples(st.sampled_from(["ptrace", "kill", "bpf", "socket"]),
                          st.sampled_from([0, 1, 5, 7, 9, 15, 16, 17, 34, 40, 64, 65, 200,
                                           0x4200, 0x4206, 9999, -1]),
                          st.sampled_from([b"gdb", b"cat"])), min_size=10, max_size=30))
def test_enumerated_arguments_sound(conds: list[str], evs: list[tuple[str, int, bytes]]) -> None:
    text = "".join(f"- rule: e{i}\n  desc: d\n  condition: {c}\n  output: o\n"
                   "  priority: WARNING\n" for i, c in enumerate(conds))
    res = load_rules_text(text)
    res.raise_for_errors()
    tables = build_tables(compile_approvers(res.ruleset.rules, ["ptrace", "kill", "bpf",
                                                                "socket"]))
    for t, v, comm in evs:
        ints = (v, 0, 0, 0) if t != "kill" else (123, v, 0, 0)
        ev = _DEC.decode(_ints_record(t, ints, 0, comm))
        assert ev is not None
        hit = res.ruleset.match(ev)
        f = Facts(t, (*ints, 0, 0), comm, None, None)
        if hit:
            assert decide(tables, f), (hit[0].name, t, v, comm)


def test_fd_filename_of_a_failed_open_is_missing_not_the_base_name() -> None:
    """fd.filename has no value on a failed open, so under 'not' a rule naming it can match
    a failed open of that very name: the kernel must pass it (found by the property test)."""
    cond = ("not ((fd.name = /etc/shadow or fd.filename = shadow) "
            "and evt.is_open_write != true)")
    failed = _open(b"/shadow", res=-13)
    res = load_rules_text(_rules_text([cond], ["openat, unlinkat"]))
    event = _DEC.decode(_record(failed, b""))
    assert event is not None and res.ruleset.rules[0].matches(event)  # the rule fires
    assert _decide_one(cond, failed)
