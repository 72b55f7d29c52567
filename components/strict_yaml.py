"""YAML read as Pulumi's own parser reads the project's files, so an offline check and `pulumi up`
agree on what a file says.

Pulumi parses Pulumi.yaml and the stack files with Go's YAML library (YAML 1.2), which differs
from PyYAML's YAML 1.1 defaults in ways that would change a stack's meaning silently:

- a key given twice in one mapping is an error there; PyYAML keeps the last value;
- `yes`, `no`, `on`, `off` are strings there; PyYAML makes them booleans (`owner: no` -> false);
- `2024-01-01` is a string there; PyYAML makes it a date, which is no config value at all.

`load` refuses duplicate keys (naming the key and both lines) and resolves only `true`/`false` as
booleans and no timestamps. Mappings it returns remember the line of each key (`line_of`).

It also refuses excessive aliasing, as Go's parser does: a few hundred bytes of nested aliases
(`&a [x, x]`, `&b [*a, *a]`, ...) stand for billions of values, which every reader of the file
(and Pulumi, which sends config as JSON) would expand. A document may hold at most MAX_VALUES
values once its aliases are expanded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from components.text_files import NotUtf8TextError, decode_utf8

_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Values a document may expand to through its aliases: far above any stack or partners file.
MAX_VALUES = 100_000


class ExcessiveAliasingError(yaml.composer.ComposerError):
    """A document whose aliases expand to more than MAX_VALUES values."""


def _expanded_size(root: yaml.Node) -> int:
    """The values `root` stands for once every alias is expanded, counted without expanding
    (each node once), stopping above MAX_VALUES. An alias inside itself counts once: the
    loaders name that case themselves."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in visiting:
            return 1
        visiting.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_VALUES:
                break
        visiting.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


class LineMapping(dict[Any, Any]):
    """A YAML mapping that remembers the (1-based) line of each of its keys."""

    lines: dict[Any, int]


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with Go YAML's reading of booleans and dates, refusing duplicate keys and
    excessive aliasing."""

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        # A document without aliases is as large as its text; only aliasing can blow it up.
        if node is not None and _expanded_size(node) > MAX_VALUES:
            raise ExcessiveAliasingError(
                None, None, f"excessive aliasing: its aliases expand to more than {MAX_VALUES:,} "
                "values (Pulumi's YAML parser refuses it too); write the values out, or use fewer "
                "nested aliases", node.start_mark)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # `<<: *anchor` may be followed by keys that override the merged ones
            # Python equates 1 and true, so they count as one key here: no stack key is either.
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error names it below
                break
            if earlier is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r} (first given at line {earlier}); Pulumi refuses a key "
                    "given twice, keep one", key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_line_mapping(self, node: yaml.MappingNode) -> Any:
        data = LineMapping()
        yield data
        data.update(self.construct_mapping(node))
        data.lines = {self.construct_object(key_node, deep=True): key_node.start_mark.line + 1
                      for key_node, _ in node.value if key_node.tag != _MERGE_TAG}


StrictLoader.add_constructor("tag:yaml.org,2002:map", StrictLoader.construct_line_mapping)
# Only YAML 1.2's booleans, and no implicit timestamps (copies: SafeLoader's table is shared).
StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def line_of(mapping: Any, key: Any) -> int | None:
    """The line `key` is given at in a mapping `load` returned; None when not known."""
    lines = getattr(mapping, "lines", None)
    return lines.get(key) if isinstance(lines, dict) else None


def load(text: str) -> Any:
    """Parse one YAML document; yaml.YAMLError (with its mark) for bad YAML or a duplicate key."""
    return yaml.load(text, Loader=StrictLoader)


def describe(error: yaml.YAMLError) -> str:
    """` at line L, column C: problem` (or `: problem`) for a YAML error, without PyYAML's stream
    names, to follow "... is not valid YAML"."""
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow
        code = error.character if isinstance(error.character, int) else ord(error.character)
        return f": character #x{code:04x} at position {error.position} is not allowed in YAML text"
    mark = getattr(error, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    if context and problem.startswith("but "):  # "expected a single document ... but found another"
        problem = f"{context} {problem}"
    return f"{where}: {problem}"


def read(path: Path) -> Any:
    """Read and parse a YAML file; ValueError with a message naming the file and the problem."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    try:
        text = decode_utf8(data)
    except NotUtf8TextError as problem:
        raise ValueError(f"{path} {problem}") from None
    try:
        return load(text)
    except RecursionError:  # nesting deep enough to exhaust the parser's stack
        raise ValueError(f"{path} nests too deeply to be read") from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML{describe(error)}") from None
