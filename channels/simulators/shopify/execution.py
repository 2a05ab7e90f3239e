"""A small GraphQL executor for validated documents: what the simulator runs every call.

graphql-core's executor (3.3) spends about 5 µs on each field it resolves (incremental
delivery, awaitables); a 250-item inventory read went from 1 ms to 8 ms of CPU with it.
This one walks the same validated AST with graphql-core's own argument coercion and scalar
serialisation and follows the spec's rules that matter here: fields merged by response key,
aliases, inline fragments and fragment spreads with type conditions (interfaces included),
``@skip``/``@include``, ``__typename``, serial root mutations, and a null in a non-null
position bubbling up to the nearest nullable parent with an error naming its path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql.execution.values import VariableValues, get_argument_values

JSON = dict[str, Any]
Resolve = Callable[[Any, str, dict[str, Any]], Any]
TypeOf = Callable[[Any], str | None]


_PLAIN = frozenset({str, int, float, bool})


class _Null(Exception):
    """A null reached a non-null position: the parent field becomes null in turn."""


class Executor:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
        type_of: TypeOf,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.type_of = type_of
        self.errors: list[JSON] = []
        self._implements: dict[tuple[str, str], bool] = {}
        # One list of 250 nodes runs the same fields 250 times: their collection and
        # arguments depend only on the AST and the variables, so each is worked out once.
        self._collected: dict[tuple[str, tuple[int, ...]], dict[str, list[FieldNode]]] = {}
        self._arguments: dict[int, dict[str, Any]] = {}

    # -- Selection -----------------------------------------------------------------------

    def _included(self, node: Any) -> bool:
        for directive in node.directives or ():
            name = directive.name.value
            if name in ("skip", "include"):
                definition = self.schema.get_directive(name)
                assert definition is not None
                condition = get_argument_values(definition, directive, self.variables)["if"]
                if (name == "skip") == bool(condition):
                    return False
        return True

    def _applies(self, condition: str | None, object_type: GraphQLObjectType) -> bool:
        if condition is None or condition == object_type.name:
            return True
        key = (condition, object_type.name)
        if key not in self._implements:
            self._implements[key] = any(i.name == condition for i in object_type.interfaces)
        return self._implements[key]

    def collect(
        self,
        object_type: GraphQLObjectType,
        selection_sets: list[SelectionSetNode],
        into: dict[str, list[FieldNode]] | None = None,
    ) -> dict[str, list[FieldNode]]:
        fields: dict[str, list[FieldNode]] = {} if into is None else into
        for selection_set in selection_sets:
            for selection in selection_set.selections:
                if not self._included(selection):
                    continue
                if isinstance(selection, FieldNode):
                    key = selection.alias.value if selection.alias else selection.name.value
                    fields.setdefault(key, []).append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    if self._applies(condition.name.value if condition else None, object_type):
                        self.collect(object_type, [selection.selection_set], fields)
                elif isinstance(selection, FragmentSpreadNode):
                    fragment = self.fragments.get(selection.name.value)
                    if fragment is not None and self._applies(
                        fragment.type_condition.name.value, object_type
                    ):
                        self.collect(object_type, [fragment.selection_set], fields)
        return fields

    # -- Execution -----------------------------------------------------------------------

    def object(
        self,
        object_type: GraphQLObjectType,
        source: Any,
        selection_sets: list[SelectionSetNode],
        path: list[str | int],
        resolve: Resolve,
    ) -> JSON:
        answer: JSON = {}
        cache_key = (object_type.name, tuple(id(s) for s in selection_sets))
        fields = self._collected.get(cache_key)
        if fields is None:
            fields = self._collected[cache_key] = self.collect(object_type, selection_sets)
        for key, nodes in fields.items():
            node = nodes[0]
            name = node.name.value
            if name == "__typename":
                answer[key] = object_type.name
                continue
            definition = object_type.fields[name]
            field_path = [*path, key]
            try:
                arguments = self._arguments.get(id(node))
                if arguments is None:
                    arguments = get_argument_values(definition, node, self.variables)
                    self._arguments[id(node)] = arguments
                value = resolve(source, name, arguments)
            except Exception as error:
                self._error(error, node, field_path)
                value = None
            try:
                answer[key] = self.complete(definition.type, value, nodes, field_path, resolve)
            except _Null:
                if type(definition.type) is GraphQLNonNull:
                    raise
                answer[key] = None
        return answer

    def complete(
        self,
        type_: Any,
        value: Any,
        nodes: list[FieldNode],
        path: list[str | int],
        resolve: Resolve,
    ) -> Any:
        kind = type(type_)
        if kind is GraphQLNonNull:
            completed = self.complete(type_.of_type, value, nodes, path, resolve)
            if completed is None:
                if value is None and not self._has_error_at(path):
                    where = ".".join(map(str, path))
                    self.errors.append(
                        _formatted(
                            f"Cannot return null for non-nullable field {where}.", nodes[0], path
                        )
                    )
                raise _Null
            return completed
        if value is None:
            return None
        if kind is GraphQLScalarType:
            # The views hand out plain JSON values already; others go through the scalar.
            return value if type(value) in _PLAIN else type_.serialize(value)
        if kind is GraphQLEnumType:
            return type_.serialize(value)
        if kind is GraphQLList:
            items = []
            for index, item in enumerate(value):
                try:
                    items.append(
                        self.complete(type_.of_type, item, nodes, [*path, index], resolve)
                    )
                except _Null:
                    if type(type_.of_type) is GraphQLNonNull:
                        raise
                    items.append(None)
            return items
        object_type = type_
        if kind is not GraphQLObjectType:
            name = self.type_of(value)
            object_type = self.schema.get_type(name) if name else None
            if not isinstance(object_type, GraphQLObjectType):
                self._error(
                    GraphQLError(f"Abstract type '{type_}' resolved no object type."),
                    nodes[0],
                    path,
                )
                return None
        selection_sets = [node.selection_set for node in nodes if node.selection_set]
        return self.object(object_type, value, selection_sets, path, resolve)

    def _has_error_at(self, path: list[str | int]) -> bool:
        return any(error.get("path") == path for error in self.errors)

    def _error(self, error: Exception, node: FieldNode, path: list[str | int]) -> None:
        extensions = error.extensions if isinstance(error, GraphQLError) else None
        message = error.message if isinstance(error, GraphQLError) else str(error)
        self.errors.append(_formatted(message, node, path, extensions))


def _formatted(
    message: str, node: FieldNode, path: list[str | int], extensions: Any = None
) -> JSON:
    answer: JSON = {"message": message}
    if node.loc is not None:
        token = node.loc.start_token
        answer["locations"] = [{"line": token.line, "column": token.column}]
    answer["path"] = list(path)
    if extensions:
        answer["extensions"] = dict(extensions)
    return answer


def execute_operation(
    schema: GraphQLSchema,
    operation: Any,
    root: Any,
    variables: VariableValues,
    resolve: Resolve,
    type_of: TypeOf,
) -> JSON:
    """``{"data": ..., "errors": [...]}`` for a validated operation and coerced variables."""
    executor = Executor(schema, operation.fragments, variables, type_of)
    root_type = schema.mutation_type if operation.is_mutation else schema.query_type
    assert root_type is not None
    try:
        # Root mutation fields run one after the other, in document order: so does this.
        data: JSON | None = executor.object(
            root_type, root, [operation.node.selection_set], [], resolve
        )
    except _Null:
        data = None
    answer: JSON = {"data": data}
    if executor.errors:
        answer = {"errors": executor.errors, **answer}
    return answer
