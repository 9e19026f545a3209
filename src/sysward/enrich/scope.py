"""Which containers sysward watches: ``filters.namespaces`` and ``filters.labels``.

A container is *out of scope* when its pod's namespace is excluded (or an include list is
given and does not name it), or when its labels (the pod's and the container's, merged) match
an exclude selector (or include selectors are given and none matches).  Namespace names may
be shell patterns (``kube-*``).  Selectors use Kubernetes' equality-based syntax: a comma
separated list of requirements that must all hold -- ``key=value``, ``key==value``,
``key!=value``, ``key`` (the label exists) and ``!key`` (it does not).

Namespace lists only apply to containers in a pod; label selectors to every container whose
runtime reported labels.  Host processes are always in scope, and so is a container whose
metadata is not known yet: nothing is dropped on a guess.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sysward.config import FiltersConfig
from sysward.errors import ConfigError

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_REQ = re.compile(rf"^\s*(?:(?P<neg>!)\s*(?P<nkey>{_KEY})|(?P<key>{_KEY})\s*"
                  rf"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*))?)\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "exists", "!exists"
    value: str = ""

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!exists":
            return self.key not in labels
        if self.op == "=":
            return labels.get(self.key) == self.value
        return labels.get(self.key) != self.value


@dataclass(frozen=True, slots=True)
class Selector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.holds(labels) for r in self.requirements)


def parse_selector(text: str, where: str = "filters.labels") -> Selector:
    reqs: list[Requirement] = []
    for part in text.split(","):
        m = _REQ.match(part)
        if m is None or not part.strip():
            raise ConfigError(
                f"{where}: {text!r} is not a label selector; write requirements such as "
                "'app=web', 'tier!=db', 'canary' or '!canary', separated by commas.")
        if m.group("neg"):
            reqs.append(Requirement(m.group("nkey"), "!exists"))
        elif m.group("op") is None:
            reqs.append(Requirement(m.group("key"), "exists"))
        else:
            op = "=" if m.group("op") in ("=", "==") else "!="
            reqs.append(Requirement(m.group("key"), op, m.group("value")))
    return Selector(text, tuple(reqs))


class Scope:
    """The configured scope; ``active`` is False when nothing is filtered."""

    def __init__(self, include_namespaces: Sequence[str] = (),
                 exclude_namespaces: Sequence[str] = (), include_labels: Sequence[str] = (),
                 exclude_labels: Sequence[str] = ()) -> None:
        self.include_namespaces = tuple(include_namespaces)
        self.exclude_namespaces = tuple(exclude_namespaces)
        self.include_labels = tuple(parse_selector(t, "filters.labels.include")
                                    for t in include_labels)
        self.exclude_labels = tuple(parse_selector(t, "filters.labels.exclude")
                                    for t in exclude_labels)
        self.active = bool(self.include_namespaces or self.exclude_namespaces
                           or self.include_labels or self.exclude_labels)

    @classmethod
    def from_config(cls, filters: FiltersConfig) -> Scope:
        return cls(filters.namespaces.include, filters.namespaces.exclude,
                   filters.labels.include, filters.labels.exclude)

    def excluded(self, namespace: str, pod_labels: Mapping[str, str],
                 container_labels: Mapping[str, str]) -> bool:
        """True when a container with this pod namespace ('' outside a pod) and these labels
        is out of scope."""
        if not self.active:
            return False
        if namespace:
            if any(fnmatch.fnmatchcase(namespace, p) for p in self.exclude_namespaces):
                return True
            if self.include_namespaces and not any(
                    fnmatch.fnmatchcase(namespace, p) for p in self.include_namespaces):
                return True
        if self.include_labels or self.exclude_labels:
            labels = {**container_labels, **pod_labels}
            if any(s.matches(labels) for s in self.exclude_labels):
                return True
            if self.include_labels and not any(s.matches(labels) for s in self.include_labels):
                return True
        return False
