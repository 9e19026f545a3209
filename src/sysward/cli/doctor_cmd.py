"""``sysward doctor``: what this kernel and host let sysward do, one line per capability."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from sysward.kernel.probe import Capability


def _prefilter_capability() -> Capability:
    """What the kernel prefilter makes of the packaged rules (no kernel needed to tell)."""
    from sysward.agent.engine import kernel_types
    from sysward.enforce.prefilter import compile_approvers
    from sysward.enforce.prefilter.discarders import compile_discarders
    from sysward.enforce.prefilter.explain import warnings
    from sysward.kernel.probe import Capability
    from sysward.rules import load_rules
    from sysward.rules.packaged import PACKAGED_RULES_DIR

    result = load_rules([PACKAGED_RULES_DIR])
    attach, _ = kernel_types(result.ruleset)
    ap = compile_approvers(result.ruleset.rules, attach)
    filtered = ap.filtered_types()
    defeat = [w for w in warnings(ap) if w.startswith("rule '")]
    detail = (f"default rules: {len(filtered)} of {len(attach)} attached event types filtered "
              f"in the kernel (kernel.prefilter)")
    if defeat:
        detail += (f"; {len(defeat)} rule(s) make the kernel pass every event of a type "
                   "('sysward rules explain')")
    learning = compile_discarders(result.ruleset.rules, attach).learning_types()
    detail += (f"; {len(learning)} event type(s) can learn discarders at run time "
               "(kernel.discarders; counted in sysward_kernel_discarded_total)")
    return Capability("prefilter", result.ok, detail, required=False)


@click.command(name="doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="YAML config file (its cri.sockets are probed; default "
                   "/etc/sysward/config.yaml when it exists).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Set a config key, e.g. --set cri.sockets=/run/x.sock (repeatable).")
def doctor(as_json: bool, config_path: str | None, sets: tuple[str, ...]) -> None:
    """Check what this kernel and host allow (exit 1 when something sysward needs is missing)."""
    from sysward.config import load_config, parse_set
    from sysward.kernel.probe import Capability, probe_all

    config = load_config(config_path, dict(parse_set(s) for s in sets))
    caps = probe_all()
    caps.append(_cri_capability(config, Capability))
    caps.append(_prefilter_capability())
    ready = all(c.ok for c in caps if c.required)
    if as_json:
        report = {"ready": ready, "capabilities": [c.as_dict() for c in caps]}
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        width = max(len(c.name) for c in caps)
        for c in caps:
            status = "ok" if c.ok else "missing"
            marker = "" if c.ok or not c.required else "  [required]"
            click.echo(f"{status:<8} {c.name:<{width}}  {c.detail}{marker}")
        if ready:
            click.echo("sysward can run on this host.")
        else:
            needed = ", ".join(c.name for c in caps if c.required and not c.ok)
            click.echo(f"sysward cannot run here: missing {needed}.")
    sys.exit(0 if ready else 1)


def _cri_capability(config: Any, capability: Any) -> Any:
    """Which container runtime answers on the CRI sockets (pod and image metadata)."""
    from sysward.enrich.cri import open_watcher

    watcher, status = open_watcher(config.cri, config.filters, None)
    detail = status.removeprefix("CRI: ")
    if watcher is None:
        detail += ("; containers of containerd/CRI-O get no name, image or k8s.* fields "
                   "(set cri.sockets)")
    else:
        watcher.client.close()
    return capability("cri_runtime", watcher is not None, detail)
