"""The enforcement unit: load, fill, attach, report, close.

One ``Enforcer`` owns the ``enforce.bpf.o`` object: only the programs of the hook classes the
enforced rules need are loaded, the cgroup socket programs are attached to one cgroup v2
directory (the root of the hierarchy unless told otherwise), and every action the kernel takes
comes back as an ``ActionReport`` through a ring buffer, so that the agent can say in each
alert what was done (``Alert.action_taken``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sysward.enforce.abi import (
    ENF_C_MAX,
    OBJECT_NAME,
    REPORT,
    Act,
    Counter,
    EnfType,
    Protect,
)
from sysward.enforce.compiler import (
    CGROUP_PROGRAMS,
    ENFORCEABLE_TYPES,
    LSM_PROGRAMS,
    PROGRAMS,
    Plan,
    compile_rules,
    first_refusal,
)
from sysward.enforce.maps import build_tables, fill
from sysward.errors import SyswardError
from sysward.events.decoder import boot_to_epoch_offset

DEFAULT_OBJECT = Path(__file__).resolve().parents[1] / "bpf" / OBJECT_NAME
_MAX_PENDING = 4096  # reports waiting for their alert; the oldest leave first (counted)

_PROTECT_TEXT = {
    Protect.INIT: "PID 1", Protect.AGENT: "the sysward agent", Protect.KTHREAD: "a kernel thread",
    Protect.NEVER_KILL: "its executable is in enforce.never_kill",
    Protect.TGID: "a protected process",
}


class EnforceError(SyswardError):
    """Rules that cannot be enforced, or a kernel that cannot enforce them."""


@dataclass(slots=True)
class ActionReport:
    """One action of the kernel (or what it would have done, in audit mode)."""

    ts: int  # wall-clock ns
    pid: int
    tid: int
    uid: int
    comm: str
    hook: str  # "exec", "open", "connect", ...
    action: str  # killed | would-kill | denied | would-deny | failed: ... | spared: ...
    rules: tuple[str, ...]
    addr: str = ""
    port: int = 0
    cgroup_id: int = 0


def lsm_available() -> bool:
    """True when this kernel loads, attaches and runs BPF LSM programs (probed, not guessed)."""
    try:
        from sysward.kernel.probe import probe_lsm

        ok, _ = probe_lsm()
        return ok
    except (OSError, SyswardError):
        return False


def default_cgroup() -> str | None:
    """The root of the cgroup v2 hierarchy (on hybrid hosts /sys/fs/cgroup/unified)."""
    from sysward.kernel.probe import cgroup2_mount

    root = cgroup2_mount()
    return str(root) if root is not None else None


class Enforcer:
    """Kernel enforcement of the rules with ``action: kill`` / ``action: deny``."""

    def __init__(self, plan: Plan, *, mode: str = "on", never_kill: Iterable[str] = (),
                 cgroup: str | None = None, agent_tgid: int | None = None,
                 object_path: str | Path | None = None, lsm: bool = False) -> None:
        self.plan = plan
        self.mode = mode
        self.never_kill = _with_resolved(never_kill)
        self.cgroup = cgroup
        self.agent_tgid = os.getpid() if agent_tgid is None else agent_tgid
        self.object_path = Path(object_path) if object_path else DEFAULT_OBJECT
        self.lsm = lsm
        self.warnings: list[str] = list(plan.warnings)
        self._slot_rules = [s.rule.name for s in plan.slots]
        self.enforced_rules = frozenset(self._slot_rules)
        self._obj: Any = None
        self._reader: Any = None
        self._batch: list[ActionReport] = []
        self._pending: OrderedDict[tuple[int, str], list[ActionReport]] = OrderedDict()
        self._boot_offset = boot_to_epoch_offset()
        self.reports_total = 0
        self.pending_dropped = 0  # reports no alert claimed before the pending bound
        self.attached: list[str] = []

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_rules(cls, ruleset: Any, config: Any, *, cgroup: str | None = None,
                   alert_only_unenforceable: bool = False,
                   object_path: str | Path | None = None) -> Enforcer | None:
        """The enforcer for a rule set, or None when nothing is to be enforced.

        ``config`` is the agent's Config (or its EnforceConfig).  Rules whose action cannot be
        enforced raise EnforceError naming the first of them, unless they ask (or the caller
        asks) to be loaded alert-only; ``plan.alert_only`` lists those.
        """
        ecfg = getattr(config, "enforce", config)
        mode = str(ecfg.mode).lower()
        if mode not in ("on", "audit", "off"):
            raise EnforceError(f"enforce.mode is '{mode}'; use on, audit or off.")
        rules = list(getattr(ruleset, "rules", ruleset))
        acting = [r for r in rules if r.action in ("kill", "deny")]
        if mode == "off" or not acting:
            return None
        lsm = False
        lsm_types = {t for t, cls in ENFORCEABLE_TYPES.items() if cls in LSM_PROGRAMS}
        if any(r.action == "deny" and set(r.conditions) & lsm_types for r in acting):
            lsm = lsm_available()
        plan = compile_rules(acting, mode=mode, lsm_available=lsm,
                             deny_fallback_kill=bool(ecfg.deny_fallback_kill),
                             alert_only_unenforceable=alert_only_unenforceable)
        refusal = first_refusal(plan)
        if refusal is not None:
            raise EnforceError(refusal)
        if not plan.slots:
            return None
        if plan.needs_cgroup and cgroup is None:
            cgroup = getattr(ecfg, "cgroup", None) or default_cgroup()
            if cgroup is None:
                raise EnforceError("a rule denies connections, but this host has no cgroup v2 "
                                   "mount for the connect programs; mount cgroup2 or change "
                                   "the rule's action to kill.")
        return cls(plan, mode=mode, never_kill=ecfg.never_kill, cgroup=cgroup, lsm=lsm,
                   object_path=object_path)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Load the programs the plan needs, fill the maps, attach."""
        from sysward.kernel import BpfObject, RingBufferReader, require_privileges

        require_privileges()
        obj = BpfObject.open(self.object_path)
        try:
            wanted = self._programs()
            for prog in obj.programs:
                prog.set_autoload(prog.name in wanted)
            obj.set_global("agent_tgid", self.agent_tgid)
            obj.set_global("host_pidns", os.stat("/proc/self/ns/pid").st_ino)
            obj.load()
            fill(obj, build_tables(self.plan), self.never_kill, [1, self.agent_tgid])
            for name in sorted(wanted):
                self._attach(obj.program(name))
            self._reader = RingBufferReader(obj.map("enf_reports"), self._on_batch)
        except BaseException:
            obj.close()
            raise
        self._obj = obj

    def _programs(self) -> set[str]:
        names: set[str] = set()
        for t in self.plan.types:
            names.update(PROGRAMS[t])
        if self.plan.needs_cgroup:
            names.update(CGROUP_PROGRAMS)
        for t in self.plan.needs_lsm:
            names.add(LSM_PROGRAMS[t])
        return names

    def _attach(self, prog: Any) -> None:
        from sysward.kernel import BpfError

        try:
            if prog.name in CGROUP_PROGRAMS:
                assert self.cgroup is not None
                prog.attach_cgroup(self.cgroup)
            else:
                prog.attach()
        except BpfError as exc:
            if prog.name in PROGRAMS[EnfType.MODULE] and exc.errno == errno.ENOENT:
                # no module tracepoints: a kernel without CONFIG_MODULES loads no modules
                self.warnings.append(f"{prog.name}: this kernel has no tracepoint for it "
                                     "(module loading is not possible here); not attached.")
                return
            raise EnforceError(f"enforcement program '{prog.name}' could not be attached: "
                               f"{exc}") from None
        self.attached.append(prog.name)

    def close(self, hand_off: bool = False) -> None:
        """Detach everything and free the maps; safe to call twice.

        ``hand_off``: a child process waits for the kernel's release (BpfObject.close).
        """
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._obj is not None:
            self._obj.close(hand_off=hand_off)
            self._obj = None

    def __enter__(self) -> Enforcer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._obj is not None

    def fileno(self) -> int:
        """The report ring's fd (readable when reports are pending)."""
        if self._reader is None:
            raise EnforceError("the enforcer is not started.")
        return int(self._reader.fileno())

    # -- reports ---------------------------------------------------------------------------
    def _on_batch(self, batch: list[bytes]) -> None:
        for raw in batch:
            self._batch.append(self._decode(raw))

    def _decode(self, raw: bytes) -> ActionReport:
        (ts, slots, cg, pid, tid, uid, err, etype, action, reason, port, family, addr,
         comm) = REPORT.unpack_from(raw)
        rules = tuple(dict.fromkeys(self._slot_rules[i] for i in range(len(self._slot_rules))
                                    if slots >> i & 1))
        act = Act(action) if action in Act._value2member_map_ else None
        if act is Act.FAILED:
            text = f"failed: bpf_send_signal returned {os.strerror(-err) if err < 0 else err}"
        elif act is Act.PROTECTED:
            why = _PROTECT_TEXT.get(Protect(reason), "protected") if reason in \
                Protect._value2member_map_ else "protected"
            text = f"spared: {why}"
        elif act is not None:
            text = act.name.lower().replace("_", "-")
        else:
            text = f"failed: unknown kernel action {action}"
        a = ""
        if family in (2, 10):
            ip = ipaddress.IPv6Address(addr)
            a = str(ip.ipv4_mapped) if ip.ipv4_mapped is not None else str(ip)
        hook = EnfType(etype).name.lower() if etype in EnfType._value2member_map_ else str(etype)
        return ActionReport(ts + self._boot_offset, pid, tid, uid,
                            comm.split(b"\0", 1)[0].decode(errors="replace"), hook, text, rules,
                            a, port, cg)

    def poll_actions(self, timeout_ms: int = 0) -> list[ActionReport]:
        """Reports of the actions taken since the last call (waits up to ``timeout_ms``)."""
        if self._reader is None:
            return []
        if timeout_ms > 0:
            self._reader.poll(timeout_ms)
        else:
            self._reader.drain()
        out, self._batch = self._batch, []
        self.reports_total += len(out)
        for rep in out:
            for rule in rep.rules:
                self._pending.setdefault((rep.pid, rule), []).append(rep)
        while len(self._pending) > _MAX_PENDING:
            self._pending.popitem(last=False)
            self.pending_dropped += 1
        return out

    def action_for(self, rule_name: str, pid: int, evt_type: str = "") -> str | None:
        """What the kernel did for ``rule_name`` on process ``pid`` (None: nothing recorded)."""
        self.poll_actions()
        reps = self._pending.get((pid, rule_name))
        if not reps:
            return None
        want = ENFORCEABLE_TYPES.get(evt_type)
        for i, rep in enumerate(reps):
            if want is None or rep.hook == want.name.lower():
                reps.pop(i)
                if not reps:
                    del self._pending[(pid, rule_name)]
                return rep.action
        return None

    def annotate(self, alert: Any, rule: Any, event: Any) -> None:
        """Set ``alert.action_taken`` for an alert of an enforced rule (others: untouched)."""
        if rule.name not in self.enforced_rules:
            return
        taken = self.action_for(rule.name, event.pid, event.type)
        alert.action_taken = taken or ("failed: the kernel recorded no action for this event "
                                       "(its view of the event differs from the rule engine's)")

    def counters(self) -> dict[str, int]:
        """The kernel's enforcement counters, summed over CPUs."""
        if self._obj is None:
            return {}
        m = self._obj.map("enf_counters")
        out = {}
        for c in Counter:
            if c >= ENF_C_MAX:
                continue
            vals = m.lookup_percpu(c.to_bytes(4, "little"))
            out[c.name.lower()] = sum(int.from_bytes(v, "little") for v in vals)
        out["pending_dropped"] = self.pending_dropped
        return out

    def protect(self, tgid: int) -> None:
        """Never kill ``tgid`` (besides PID 1 and the agent, which always are)."""
        if self._obj is None:
            raise EnforceError("the enforcer is not started.")
        self._obj.map("enf_protected").update(tgid.to_bytes(4, "little"),
                                              (1).to_bytes(4, "little"))


def _with_resolved(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        for q in (p, os.path.realpath(p)):
            if q not in out:
                out.append(q)
    return out
