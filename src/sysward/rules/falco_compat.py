"""What sysward accepts but Falco refuses: warnings, so that a rule written for sysward also
loads in Falco.

sysward is lenient in three places where refusing would break rules that already work here:
a string operator (contains, startswith, glob...) on a numeric or address field compares the
text the field prints (``fd.sip startswith 10.``, ``evt.rawarg.flags contains 64``);
``bcontains``/``bstartswith`` on a string field compare its UTF-8 bytes; and any operator on
a list field (``fd.types = ipv4``) holds when one element matches.  Falco refuses all three
(text operators are for text fields, byte operators for byte-buffer fields, and a list takes
only ``in`` and ``intersects``), so each use gets
a LOAD_FALCO_INCOMPATIBLE warning naming the Falco-compatible way to write it.  What has no
sensible meaning at all (val() with pmatch, transformed evt.type) is refused by the type
checker instead (sysward.rules.codegen.typecheck).
"""

from __future__ import annotations

from collections.abc import Iterator

from sysward.rules.ast import Compare, FieldRef, Node, walk
from sysward.rules.codegen.errors import Registry
from sysward.rules.codegen.operators import OPERATORS
from sysward.rules.codegen.values import article, field_kind

_BYTE_OPS = frozenset({"bcontains", "bstartswith"})
_TEXT_OPS = frozenset(n for n, op in OPERATORS.items() if op.family == "string") - _BYTE_OPS


def incompatibilities(tree: Node, registry: Registry) -> Iterator[tuple[Compare, str]]:
    """(comparison, sentence) for each construct of ``tree`` that Falco would refuse."""
    for node in walk(tree):
        if not isinstance(node, Compare) or not isinstance(node.lhs, FieldRef):
            continue
        try:
            kind = field_kind(registry.resolve(node.lhs.name, node.lhs.arg))
        except ValueError:  # the type checker reports unknown fields
            continue
        field = node.lhs.text
        if node.op in _TEXT_OPS and kind in ("num", "ip", "net"):
            yield node, (f"Falco refuses '{node.op}' on '{field}' ({article(kind)}); sysward "
                         "compares the text the field prints: use =, in or a numeric/network "
                         "comparison for a rule that must also load in Falco")
        elif kind == "list" and node.op not in ("in", "intersects", "exists"):
            yield node, (f"Falco compares the list field '{field}' only with 'in' or "
                         f"'intersects'; sysward holds '{node.op}' when one element does: use "
                         "'intersects (...)' for a rule that must also load in Falco")
        elif node.op in _BYTE_OPS and kind == "str":
            yield node, (f"Falco takes '{node.op}' on byte-buffer fields only, and '{field}' "
                         f"is a string; sysward compares its UTF-8 bytes: use "
                         f"'{node.op[1:]}' with the text for a rule that must also load in Falco")
