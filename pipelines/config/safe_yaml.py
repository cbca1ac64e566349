"""A hardened ``yaml.safe_load``: the same plain data (no tags for Python objects), but a
pipeline file that would silently lose a key, nest without bound or expand through aliases
(a "billion laughs") is refused while it is read, with the line where it happens.

Limits are far above what a pipeline file needs (a few levels of nesting, a handful of
small aliases) and far below what would exhaust the stack, memory or the config artifact.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 64  # nesting levels, aliases expanded
ALIAS_BUDGET = 10_000  # values that aliases may add to the document once expanded

_MERGE = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.YAMLError):
    """A YAML document refused before it is built: the problem, where, how to fix it."""

    def __init__(self, problem: str, mark: yaml.Mark | None, hint: str) -> None:
        super().__init__(problem)
        self.problem, self.mark, self.hint = problem, mark, hint

    @property
    def where(self) -> str:
        """`` at line L, column C`` (1-based), or empty when unknown."""
        if self.mark is None:
            return ""
        return f" at line {self.mark.line + 1}, column {self.mark.column + 1}"


class _HardenedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that measures every node as it is composed: nesting depth and
    the number of values it stands for once aliases are expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._expanded = 0  # values added by aliases so far
        self._sizes: dict[int, tuple[int, int]] = {}  # id(collection) -> (values, depth)

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            return self._compose_alias(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlRefused(f"nesting deeper than {MAX_DEPTH} levels",
                              self.peek_event().start_mark,
                              "a pipeline file nests a few levels; flatten the structure")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, (SequenceNode, MappingNode)):
            self._sizes[id(node)] = self._measure(node)
        return node

    def _compose_alias(self, parent: Node | None, index: Any) -> Node:
        """An alias (``*name``) to a finished anchor, counted as its expanded size."""
        event = self.peek_event()
        node = super().compose_node(parent, index)  # raises for an undefined alias
        if isinstance(node, ScalarNode):
            return node
        size = self._sizes.get(id(node))
        if size is None:
            raise YamlRefused(f"alias *{event.anchor} is used inside itself (a recursive "
                              "structure)", event.start_mark,
                              f"write the value out instead of using *{event.anchor} inside "
                              f"&{event.anchor}")
        values, depth = size
        self._expanded += values
        if self._expanded > ALIAS_BUDGET:
            raise YamlRefused(f"aliases expand to more than {ALIAS_BUDGET} values (aliases of "
                              "aliases multiply)", event.start_mark,
                              "use anchors and aliases (&name / *name) for small repeated "
                              "blocks only")
        if self._depth + depth > MAX_DEPTH:
            raise YamlRefused(f"nesting deeper than {MAX_DEPTH} levels (aliases expanded)",
                              event.start_mark,
                              "a pipeline file nests a few levels; flatten the structure")
        return node

    def _measure(self, node: Node) -> tuple[int, int]:
        """(values, depth) of a composed collection, its aliases expanded."""
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value
        sizes = [self._sizes.get(id(c), (1, 1)) for c in children]
        return 1 + sum(s[0] for s in sizes), 1 + max((s[1] for s in sizes), default=0)

    def compose_mapping_node(self, anchor: str | None) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        _check_duplicates(node)
        return node


def _check_duplicates(node: MappingNode) -> None:
    """A key given twice in one mapping (YAML would keep the last one silently); merge keys
    (``<<: *base``) may be overridden, as YAML intends."""
    seen: dict[tuple[str, str], yaml.Mark] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE:
            continue
        first = seen.setdefault((key.tag, key.value), key.start_mark)
        if first is not key.start_mark:
            raise YamlRefused(f"duplicate key {key.value!r} (first given at line "
                              f"{first.line + 1})", key.start_mark,
                              "give each key once (YAML would keep only the last value)")


def load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)`` with the limits above; raises ``YamlRefused`` (or another
    ``yaml.YAMLError`` for bad syntax)."""
    loader = _HardenedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
