"""Typed configuration: defaults < YAML file < command-line flags.

``load_config(path, overrides)`` reads the YAML file (default /etc/sysward/config.yaml; an
absent default file means "all defaults"), then applies overrides: ``{"outputs.http.url":
"http://..."}``, dotted keys, values either typed Python values (dedicated flags) or strings
(``--set KEY=VALUE``, parsed as YAML scalars so ``true``/``5``/``[a, b]`` work).

The YAML is walked as nodes, not as plain data, so every error can name the file and line of
the offending key: unknown keys (with a difflib "did you mean"), wrong types and bad values
all end in a ConfigError with one sentence.  docs/configuration.md documents every key.
"""

from __future__ import annotations

import dataclasses
import difflib
import socket
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sysward.alert import Priority
from sysward.errors import ConfigError
from sysward.events.types import COMM_LEN, comm_ok
from sysward.kernel.maps import ring_size_ok
from sysward.syslog_spec import FACILITIES, parse_address
from sysward.yaml_errors import yaml_error_position

DEFAULT_CONFIG_PATH = "/etc/sysward/config.yaml"
#: containerd, CRI-O, k3s' containerd, cri-dockerd (docker through CRI)
DEFAULT_CRI_SOCKETS = (
    "/run/containerd/containerd.sock",
    "/run/crio/crio.sock",
    "/run/k3s/containerd/containerd.sock",
    "/run/cri-dockerd.sock",
)


@dataclass(slots=True)
class StdoutConfig:
    enabled: bool = True
    format: str = "text"  # text | json


@dataclass(slots=True)
class FileConfig:
    enabled: bool = False
    path: str = "/var/log/sysward/alerts.jsonl"
    max_size_mb: float = 100.0
    backups: int = 5


@dataclass(slots=True)
class SyslogConfig:
    enabled: bool = False
    address: str = "/dev/log"  # /dev/log (or another socket path) | host:port (UDP)
    facility: str = "local0"
    format: str = "text"  # message body: text | json


@dataclass(slots=True)
class HttpConfig:
    enabled: bool = False
    url: str = ""
    timeout_s: float = 5.0
    batch_size: int = 50
    flush_interval_s: float = 1.0
    max_retries: int = 5
    backoff_s: float = 0.5
    queue_size: int = 10_000
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class SqliteConfig:
    enabled: bool = True
    path: str = "/var/lib/sysward/alerts.db"
    retention_hours: float = 168.0
    max_size_mb: float = 512.0
    retention_interval_s: float = 300.0
    queue_size: int = 20_000


@dataclass(slots=True)
class OutputsConfig:
    stdout: StdoutConfig = field(default_factory=StdoutConfig)
    file: FileConfig = field(default_factory=FileConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    sqlite: SqliteConfig = field(default_factory=SqliteConfig)
    queue_size: int = 10_000  # queue of each notification output (stdout, file, syslog)
    close_timeout_s: float = 0.5  # how long shutdown waits for outputs to drain


@dataclass(slots=True)
class RateLimitConfig:
    rate: float = 100.0  # notifications per second; 0 = unlimited
    burst: int = 1000


@dataclass(slots=True)
class GroupingConfig:
    # repeats of one rule in one process tree within window_s: one alert and a summary
    enabled: bool = True
    window_s: float = 60.0
    max_groups: int = 4096


@dataclass(slots=True)
class KernelConfig:
    # the prefilter keeps what no rule wants in the kernel: 4 MB loses no more than 16 did at
    # every rate the agent keeps up with, and is 12 MB less RSS (docs/performance.md)
    ringbuf_mb: int = 4
    # the bound on detection latency: p99 6.4 ms at 10k events/s; idle CPU 0.85 % of a core
    drain_interval_ms: int = 5
    wakeup_fraction: float = 0.5
    # the loaded rules compiled into in-kernel approvers: only events some rule could match
    # (or the process table needs) leave the kernel (docs/architecture.md)
    prefilter: bool = True
    # with the prefilter: paths that user space proved no rule of a type can match, learned
    # while running and checked by the kernel first (a bounded map, cleared on reload)
    discarders: bool = True
    discarders_max: int = 8192  # entries of the kernel map of discarders


@dataclass(slots=True)
class PipelineConfig:
    queue_size: int = 20_000


@dataclass(slots=True)
class ProcessTableConfig:
    max_mb: int = 32  # byte budget of the table (its estimate), exited entries a quarter
    max_processes: int = 65_536
    # event time an exited process stays findable by pid for late events; less under churn
    exit_grace_s: float = 2.0
    max_argv_bytes: int = 16_384  # argv kept per process (storage, as the table counts it)
    max_env_bytes: int = 8_192  # env kept per process (only the keys the rules read)


@dataclass(slots=True)
class ServerConfig:
    enabled: bool = True
    listen: str = "127.0.0.1:8765"


@dataclass(slots=True)
class EnforceConfig:
    mode: str = "off"  # off | audit | on
    never_kill: list[str] = field(
        default_factory=lambda: ["/usr/sbin/sshd", "/usr/lib/systemd/systemd"]
    )
    deny_fallback_kill: bool = False
    cgroup: str = ""  # cgroup v2 path the connect-deny programs attach to; "" = the v2 root
    alert_only_unenforceable: bool = False  # load such rules alert-only instead of refusing


@dataclass(slots=True)
class ScopeListConfig:
    include: list[str] = field(default_factory=list)  # empty: everything
    exclude: list[str] = field(default_factory=list)


@dataclass(slots=True)
class FiltersConfig:
    ignore_comms: list[str] = field(default_factory=list)
    containers_only: bool = False
    # Kubernetes namespaces (shell patterns) and label selectors of containers (pod labels and
    # container labels, as the CRI runtime reports them): see enrich/scope.py
    namespaces: ScopeListConfig = field(default_factory=ScopeListConfig)
    labels: ScopeListConfig = field(default_factory=ScopeListConfig)


@dataclass(slots=True)
class CriConfig:
    enabled: bool = True
    # probed in order at start; the first runtime that answers is used
    sockets: list[str] = field(default_factory=lambda: list(DEFAULT_CRI_SOCKETS))
    host_root: str = ""  # where the host's / is mounted (a DaemonSet's hostPath), "" = /
    timeout_s: float = 0.5
    max_containers: int = 4096
    refresh_s: float = 2.0


@dataclass(slots=True)
class Config:
    rules: list[str] = field(default_factory=list)  # empty: the packaged rules only
    rules_defaults: bool = True
    min_priority: Priority = Priority.DEBUG
    hostname: str = ""
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    process_table: ProcessTableConfig = field(default_factory=ProcessTableConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    stats_interval_s: float = 0.0
    enforce: EnforceConfig = field(default_factory=EnforceConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    cri: CriConfig = field(default_factory=CriConfig)
    # Where each key's value came from ("defaults", "FILE:LINE", "--set KEY"); not a key.
    origins: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def effective_hostname(self) -> str:
        return self.hostname or socket.gethostname()

    def origin(self, key: str) -> str:
        return self.origins.get(key, "defaults")


_NOT_KEYS = frozenset({"origins"})


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain data (YAML-ready) of a config section; priorities become their names."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name in _NOT_KEYS:
            continue
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            out[f.name] = config_to_dict(value)
        elif isinstance(value, Priority):
            out[f.name] = value.name.lower()
        elif isinstance(value, list | dict):
            out[f.name] = type(value)(value)
        else:
            out[f.name] = value
    return out


def all_keys(section: Any = None, prefix: str = "") -> list[str]:
    """Every dotted key of the configuration (leaves only), for docs and tests."""
    section = Config() if section is None else section
    keys: list[str] = []
    for f in dataclasses.fields(section):
        if f.name in _NOT_KEYS:
            continue
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            keys.extend(all_keys(value, f"{prefix}{f.name}."))
        else:
            keys.append(prefix + f.name)
    return keys


# -- loading -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FromFlag:
    """An override given by a dedicated flag (``--ringbuf-mb 3``): errors name that flag."""

    value: Any
    flag: str


class _Where:
    """Names where a value came from, for error messages: ``FILE:LINE``, ``--set KEY`` or the
    dedicated flag (``--ringbuf-mb``)."""

    def __init__(self, file: str | None, flag: str | None = None,
                 dedicated: bool = False) -> None:
        self.file = file
        self.flag = flag
        self.dedicated = dedicated

    def at(self, node: yaml.Node) -> str:
        if self.flag is not None:
            return self.flag
        return f"{self.file}:{node.start_mark.line + 1}"


def _drop_key(message: str) -> str:
    """``'kernel.ringbuf_mb' must be ...`` -> ``must be ...`` (the flag names the key)."""
    if message.startswith("'"):
        end = message.find("'", 1)
        if end > 0:
            return message[end + 1:].lstrip(":").lstrip()
    return message


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean",
            "null": "nothing"}.get(tag, f"a {tag}")


class _Loader:
    def __init__(self, loader: yaml.SafeLoader, where: _Where, origins: dict[str, str]) -> None:
        self.loader = loader
        self.where = where
        self.origins = origins

    def fail(self, node: yaml.Node, message: str) -> ConfigError:
        if self.where.dedicated:
            # "--min-priority loud: unknown priority", not the key the user never typed
            message = _drop_key(message)
        return ConfigError(f"{self.where.at(node)}: {message}")

    def merge(self, target: Any, node: yaml.Node, prefix: str) -> None:
        """Apply a mapping node onto a config section (a dataclass instance)."""
        if _is_null(node):
            return  # `outputs:` with nothing under it: keep the defaults
        if not isinstance(node, yaml.MappingNode):
            name = prefix.rstrip(".") or "the configuration"
            raise self.fail(node, f"'{name}' must be a mapping of keys, not {_kind(node)}")
        hints = _hints(type(target))
        names = [f.name for f in dataclasses.fields(target) if f.name not in _NOT_KEYS]
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str) or key not in names:
                shown = f"{prefix}{key}" if isinstance(key, str) else "(not a name)"
                close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise self.fail(key_node, f"unknown key '{shown}'{hint}")
            self.set(target, key, hints[key], value_node, prefix + key)

    def set(self, target: Any, key: str, hint: Any, node: yaml.Node, path: str) -> None:
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            # A section's own line stands in for keys below it that keep their defaults.
            self.origins[path] = self.where.at(node)
            self.merge(current, node, path + ".")
            return
        setattr(target, key, self.convert(node, hint, path))
        self.origins[path] = self.where.at(node)

    def scalar(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def convert(self, node: yaml.Node, hint: Any, path: str) -> Any:
        origin = typing.get_origin(hint)
        if hint is bool:
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if not isinstance(value, bool):
                raise self.fail(node, f"'{path}' must be true or false, not {_kind(node)}")
            return value
        if hint is int:
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if not isinstance(value, int) or isinstance(value, bool):
                raise self.fail(node, f"'{path}' must be an integer, not {_kind(node)}")
            return value
        if hint is float:
            value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise self.fail(node, f"'{path}' must be a number, not {_kind(node)}")
            return float(value)
        if hint is str:
            if not isinstance(node, yaml.ScalarNode):
                raise self.fail(node, f"'{path}' must be a string, not {_kind(node)}")
            # The raw text, so that `mode: off` stays "off" (YAML 1.1 would make it false).
            return "" if _is_null(node) else str(node.value)
        if hint is Priority:
            if not isinstance(node, yaml.ScalarNode) or _is_null(node):
                raise self.fail(node, f"'{path}' must be a priority name, not {_kind(node)}")
            try:
                return Priority.parse(str(node.value))
            except ValueError as exc:
                raise self.fail(node, f"'{path}': {exc}") from None
        if origin is list:
            (item_hint,) = typing.get_args(hint)
            if _is_null(node):
                return []
            if isinstance(node, yaml.ScalarNode):  # one item may be written without a list
                return [self.convert(node, item_hint, path)]
            if not isinstance(node, yaml.SequenceNode):
                raise self.fail(node, f"'{path}' must be a list, not {_kind(node)}")
            return [self.convert(item, item_hint, f"{path}[{i}]") for i, item in
                    enumerate(node.value)]
        if origin is dict:
            _, value_hint = typing.get_args(hint)
            if _is_null(node):
                return {}
            if not isinstance(node, yaml.MappingNode):
                raise self.fail(node, f"'{path}' must be a mapping, not {_kind(node)}")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.convert(key_node, str, f"{path} key")
                out[key] = self.convert(value_node, value_hint, f"{path}.{key}")
            return out
        raise TypeError(f"config.py: no converter for {hint!r} ({path})")  # programming error


def _compose(text: str, name: str) -> tuple[yaml.SafeLoader, yaml.Node | None]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        line, _, problem = yaml_error_position(exc)
        raise ConfigError(f"{name}:{line}: invalid YAML: {problem}.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from None
    return loader, node


_STR_TAG = "tag:yaml.org,2002:str"


def _override_node(key: str, value: Any, hint: Any) -> tuple[yaml.SafeLoader, yaml.Node]:
    """A YAML node for an override value: strings are parsed as YAML, others dumped first."""
    if isinstance(value, str) and hint is str:
        # A string key takes the text as given ("--set hostname=007", "--set mode=off").
        return yaml.SafeLoader(""), yaml.ScalarNode(_STR_TAG, value)
    if isinstance(value, Priority):
        value = value.name.lower()
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True)
    loader, node = _compose(text, f"--set {key}")
    if node is None:
        node = yaml.ScalarNode("tag:yaml.org,2002:null", "")
    return loader, node


def apply_override(config: Config, key: str, value: Any) -> None:
    """Set one dotted key, e.g. ``apply_override(cfg, "outputs.http.url", "http://...")``.

    ``value`` may be a ``FromFlag`` so that errors name the flag the user typed.
    """
    flag, dedicated = f"--set {key}", False
    if isinstance(value, FromFlag):
        flag, dedicated, value = f"{value.flag} {value.value}", True, value.value
    parts = key.split(".")
    target: Any = config
    prefix = ""
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(target) if f.name not in _NOT_KEYS]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"--set {key}: unknown key '{prefix}{part}'{hint}")
        if i == len(parts) - 1:
            field_hint = _hints(type(target))[part]
            loader, node = _override_node(key, value, field_hint)
            ctx = _Loader(loader, _Where(None, flag=flag, dedicated=dedicated), config.origins)
            ctx.set(target, part, field_hint, node, prefix + part)
            return
        target = getattr(target, part)
        if not dataclasses.is_dataclass(target):
            raise ConfigError(f"--set {key}: '{prefix}{part}' has no keys below it")
        prefix += part + "."
    raise ConfigError(f"--set {key}: empty key")  # pragma: no cover - split never yields []


def parse_set(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of a ``--set`` flag."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set rate_limit.rate=50")
    return key.strip(), value


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the YAML file, then ``overrides`` (dotted keys); validated."""
    config = Config()
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_PATH)
    if path is not None or file.exists():
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"config file {file} does not exist; create it or drop --config."
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
            raise ConfigError(f"cannot read config file {file}: {reason}.") from None
        loader, node = _compose(text, str(file))
        if node is not None:
            _Loader(loader, _Where(str(file)), config.origins).merge(config, node, "")
    for key, value in (overrides or {}).items():
        apply_override(config, key, value)
    validate(config)
    return config


# -- validation --------------------------------------------------------------------------


def _check(config: Config, ok: bool, key: str, message: str) -> None:
    if not ok:
        # The key's own origin, else that of the nearest section above it that was set.
        where, probe = None, key
        while where is None and probe:
            where = config.origins.get(probe)
            probe = probe.rsplit("[", 1)[0] if probe.endswith("]") else probe.rpartition(".")[0]
        if where is None:
            raise ConfigError(f"'{key}' {message}")
        if where.startswith("--") and not where.startswith("--set "):
            raise ConfigError(f"{where}: {message}")  # a dedicated flag names the key itself
        raise ConfigError(f"{where}: '{key}' {message}")


def parse_host_port(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port), the one parser of listen addresses.

    Port 0 is accepted: the kernel then picks a free port (the agent prints the address it
    got), which is what tests and side-by-side agents want.  ValueError names the problem.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not HOST:PORT")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r} has no port from 0 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _listen_ok(text: str) -> bool:
    try:
        parse_host_port(text)
    except ValueError:
        return False
    return True


def validate(config: Config) -> None:
    """Value checks that types alone cannot express; ConfigError naming the key's origin."""
    out = config.outputs
    c = config
    _check(c, out.stdout.format in ("text", "json"), "outputs.stdout.format",
           f"must be text or json, not {out.stdout.format!r}")
    _check(c, bool(out.file.path), "outputs.file.path", "must name a file")
    _check(c, out.file.max_size_mb > 0, "outputs.file.max_size_mb", "must be above 0")
    _check(c, out.file.backups >= 0, "outputs.file.backups", "must be 0 or more")
    _check(c, out.syslog.facility in FACILITIES, "outputs.syslog.facility",
           f"must be one of {', '.join(FACILITIES)}, not {out.syslog.facility!r}")
    _check(c, out.syslog.format in ("text", "json"), "outputs.syslog.format",
           f"must be text or json, not {out.syslog.format!r}")
    try:
        parse_address(out.syslog.address)
    except ValueError as exc:
        _check(c, False, "outputs.syslog.address", f"is not /dev/log, a path or HOST:PORT ({exc})")
    http = out.http
    if http.enabled or http.url:
        _check(c, http.url.startswith(("http://", "https://")), "outputs.http.url",
               f"must be an http:// or https:// URL, not {http.url!r}")
    _check(c, http.timeout_s > 0, "outputs.http.timeout_s", "must be above 0")
    _check(c, http.batch_size >= 1, "outputs.http.batch_size", "must be 1 or more")
    _check(c, http.flush_interval_s >= 0, "outputs.http.flush_interval_s", "must be 0 or more")
    _check(c, http.max_retries >= 0, "outputs.http.max_retries", "must be 0 or more")
    _check(c, http.backoff_s >= 0, "outputs.http.backoff_s", "must be 0 or more")
    _check(c, http.queue_size >= 1, "outputs.http.queue_size", "must be 1 or more")
    sq = out.sqlite
    _check(c, bool(sq.path), "outputs.sqlite.path", "must name a file")
    _check(c, sq.retention_hours >= 0, "outputs.sqlite.retention_hours", "must be 0 or more")
    _check(c, sq.max_size_mb >= 0, "outputs.sqlite.max_size_mb", "must be 0 or more")
    _check(c, sq.retention_interval_s >= 0, "outputs.sqlite.retention_interval_s",
           "must be 0 or more")
    _check(c, sq.queue_size >= 1, "outputs.sqlite.queue_size", "must be 1 or more")
    _check(c, out.queue_size >= 1, "outputs.queue_size", "must be 1 or more")
    if not any_output(c):
        raise ConfigError("every output is disabled (outputs.<name>.enabled), so alerts would go "
                          "nowhere; enable one, e.g. --set outputs.stdout.enabled=true.")
    _check(c, 0 <= out.close_timeout_s <= 1.0, "outputs.close_timeout_s",
           "must be between 0 and 1 (the agent exits within 1 s of SIGTERM)")
    _check(c, c.rate_limit.rate >= 0, "rate_limit.rate", "must be 0 (unlimited) or more")
    _check(c, c.rate_limit.burst >= 1, "rate_limit.burst", "must be 1 or more")
    _check(c, 0 < c.grouping.window_s <= 3600, "grouping.window_s",
           "must be more than 0 and at most 3600 (seconds)")
    _check(c, c.grouping.max_groups >= 1, "grouping.max_groups", "must be 1 or more")
    k = c.kernel
    _check(c, k.ringbuf_mb >= 1 and ring_size_ok(k.ringbuf_mb << 20), "kernel.ringbuf_mb",
           f"must be a power of two (1, 2, 4, ... MB), not {k.ringbuf_mb}")
    _check(c, k.drain_interval_ms >= 1, "kernel.drain_interval_ms", "must be 1 or more")
    _check(c, 0 < k.wakeup_fraction <= 1, "kernel.wakeup_fraction",
           "must be above 0 and at most 1")
    _check(c, c.pipeline.queue_size >= 1, "pipeline.queue_size", "must be 1 or more")
    _check(c, c.process_table.max_processes >= 1, "process_table.max_processes",
           "must be 1 or more")
    _check(c, c.process_table.exit_grace_s >= 0, "process_table.exit_grace_s",
           "must be 0 or more")
    _check(c, c.process_table.max_mb >= 1, "process_table.max_mb", "must be 1 or more")
    for key in ("max_argv_bytes", "max_env_bytes"):
        _check(c, getattr(c.process_table, key) >= 256, f"process_table.{key}",
               "must be 256 or more")
    _check(c, _listen_ok(c.server.listen), "server.listen",
           f"must be HOST:PORT, not {c.server.listen!r}")
    _check(c, c.stats_interval_s >= 0, "stats_interval_s", "must be 0 or more")
    _check(c, c.enforce.mode in ("off", "audit", "on"), "enforce.mode",
           f"must be off, audit or on, not {c.enforce.mode!r}")
    for i, comm in enumerate(c.filters.ignore_comms):
        _check(c, comm_ok(comm), f"filters.ignore_comms[{i}]",
               f"must be a command name of 1 to {COMM_LEN - 1} bytes (the kernel's comm), "
               f"not {comm!r}")
    for kind in ("include", "exclude"):
        # (the label selectors' syntax is checked where they are parsed: enrich/scope.py)
        for i, name in enumerate(getattr(c.filters.namespaces, kind)):
            _check(c, bool(name.strip()), f"filters.namespaces.{kind}[{i}]",
                   "must be a namespace name or pattern, not empty")
    cri = c.cri
    _check(c, cri.timeout_s > 0, "cri.timeout_s", "must be above 0")
    _check(c, cri.max_containers >= 1, "cri.max_containers", "must be 1 or more")
    _check(c, cri.refresh_s > 0, "cri.refresh_s", "must be above 0")
    for i, sock in enumerate(cri.sockets):
        _check(c, sock.startswith("/"), f"cri.sockets[{i}]",
               f"must be an absolute path of a unix socket, not {sock!r}")


def any_output(config: Config) -> bool:
    o = config.outputs
    return any(x.enabled for x in (o.stdout, o.file, o.syslog, o.http, o.sqlite))


# -- output specs from the command line ---------------------------------------------------

OUTPUT_SPEC_HELP = "stdout | json | file:PATH | syslog[:ADDR] | http:URL | sqlite:PATH"


def apply_output_specs(config: Config, specs: list[str]) -> Config:
    """Map ``-o SPEC`` flags onto ``config.outputs``.

    Giving any ``-o`` replaces the notification outputs of the file (stdout, file, syslog,
    http are all turned off first, then each spec turns one on); the sqlite store keeps its
    configured setting unless ``sqlite:PATH`` or ``sqlite:off`` is given.
    """
    if not specs:
        return config
    out = config.outputs
    out.stdout.enabled = out.file.enabled = out.syslog.enabled = out.http.enabled = False
    seen: dict[str, str] = {}
    for spec in specs:
        kind, _, arg = spec.partition(":")
        kind = kind.strip().lower()
        if spec.startswith(("http://", "https://")):
            kind, arg = "http", spec
        slot = "stdout" if kind == "json" else kind
        if slot in seen:
            raise ConfigError(
                f"-o {spec}: only one {slot} output is supported (already given as"
                f" -o {seen[slot]})."
            )
        seen[slot] = spec
        origin = f"-o {spec}"
        if kind in ("stdout", "json") and not arg:
            out.stdout.enabled = True
            out.stdout.format = "json" if kind == "json" else "text"
            config.origins["outputs.stdout.format"] = origin
        elif kind == "file" and arg:
            out.file.enabled = True
            out.file.path = arg
            config.origins["outputs.file.path"] = origin
        elif kind == "syslog":
            out.syslog.enabled = True
            if arg:
                out.syslog.address = arg
                config.origins["outputs.syslog.address"] = origin
        elif kind == "http" and arg:
            out.http.enabled = True
            out.http.url = arg
            config.origins["outputs.http.url"] = origin
        elif kind == "sqlite" and arg:
            if arg.lower() in ("off", "none", "false"):
                out.sqlite.enabled = False
            else:
                out.sqlite.enabled = True
                out.sqlite.path = arg
                config.origins["outputs.sqlite.path"] = origin
        else:
            raise ConfigError(f"-o {spec}: unknown output; use one of {OUTPUT_SPEC_HELP}.")
    if not any_output(config):
        given = " ".join(f"-o {s}" for s in specs)
        raise ConfigError(f"{given} leaves no output on (any -o turns off the outputs it does "
                          f"not name), so alerts would go nowhere; add one, e.g. -o stdout.")
    validate(config)
    return config


__all__ = [
    "DEFAULT_CONFIG_PATH",
    "OUTPUT_SPEC_HELP",
    "Config",
    "ConfigError",
    "FromFlag",
    "all_keys",
    "apply_output_specs",
    "apply_override",
    "config_to_dict",
    "load_config",
    "parse_set",
    "validate",
]
