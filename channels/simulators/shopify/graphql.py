"""Admin GraphQL: documents parsed and executed by graphql-core against ``schema``.

Answers carry only the fields the document selects (aliases, fragments and ``__typename``
included), arguments may be inline literals or variables, and errors take the shapes of
Shopify's GraphQL server (graphql-ruby): ``undefinedField``, ``INVALID_VARIABLE`` with
``problems``, ``THROTTLED``, ``MAX_COST_EXCEEDED``. Facts are from ``CHANNEL_APIS.md`` §1.

Costs: parsing costs about 0.1 ms a document and is cached by text; validation costs ten
times that and is cached by text less the ``@idempotent`` key (the only part that differs
from one push to the next); execution runs every call.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    StringValueNode,
    get_named_type,
    is_composite_type,
    is_input_type,
    is_list_type,
    is_non_null_type,
    parse,
    print_ast,
    type_from_ast,
    validate,
    value_from_ast_untyped,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.pyutils import Undefined
from graphql.utilities import validate_input_value
from graphql.validation import (
    ExecutableDefinitionsRule,
    FieldsOnCorrectTypeRule,
    KnownArgumentNamesRule,
    KnownDirectivesRule,
    KnownFragmentNamesRule,
    KnownTypeNamesRule,
    LoneAnonymousOperationRule,
    NoUndefinedVariablesRule,
    PossibleFragmentSpreadsRule,
    ProvidedRequiredArgumentsRule,
    ScalarLeafsRule,
    UniqueOperationNamesRule,
    VariablesAreInputTypesRule,
)

from channels.simulators.shopify.execution import execute_operation
from channels.simulators.shopify.schema import Dialect, schema_for
from channels.simulators.shopify.state import (
    QUANTITY_NAMES,
    Item,
    Level,
    Shop,
    gid,
    level_gid,
    parse_gid,
    parse_id,
)

JSON = dict[str, Any]

# §1.2: inventorySetQuantities takes only these two names.
SETTABLE_QUANTITY_NAMES = frozenset({"available", "on_hand"})
# §1.2: Shopify's fixed reason list (the list itself is [M]).
ADJUSTMENT_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_canceled",
        "movement_created",
        "movement_received",
        "movement_updated",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
# SH6 (InventorySetQuantitiesUserErrorCode): "can't be higher than 1,000,000,000".
MAX_QUANTITY = 1_000_000_000
# §1.4: requested costs; the cap is the older docs' single-query limit.
MUTATION_COST = 10
MAX_QUERY_COST = 1000
MAX_INPUT_SIZE = 250
MAX_PAGE_SIZE = 250
THROTTLE_DOCUMENTATION = "https://shopify.dev/api/usage/rate-limits"

_VALIDATION_RULES = (
    ExecutableDefinitionsRule,
    UniqueOperationNamesRule,
    LoneAnonymousOperationRule,
    KnownTypeNamesRule,
    VariablesAreInputTypesRule,
    FieldsOnCorrectTypeRule,
    ScalarLeafsRule,
    KnownArgumentNamesRule,
    ProvidedRequiredArgumentsRule,
    KnownDirectivesRule,
    KnownFragmentNamesRule,
    PossibleFragmentSpreadsRule,
    NoUndefinedVariablesRule,
)
_VALIDATION_CACHE_SIZE = 2048


class RequestError(Exception):
    """A request-level GraphQL error: answered ``{"errors": [...]}`` with no ``data``."""

    def __init__(self, errors: list[JSON]) -> None:
        super().__init__(errors[0]["message"] if errors else "")
        self.errors = errors


def error(message: str, code: str, **extensions: Any) -> JSON:
    return {"message": message, "extensions": {"code": code, **extensions}}


# -- Parsing, validation, variables ----------------------------------------------------------


def parse_document(query: str) -> DocumentNode:
    """The parsed document (a syntax error raises ``RequestError``)."""
    try:
        return parse(query)
    except GraphQLError as exc:
        raise RequestError([_formatted(exc, "PARSE_ERROR")]) from None


@dataclass(frozen=True)
class Operation:
    document: DocumentNode
    node: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    root_fields: tuple[FieldNode, ...]

    @property
    def is_mutation(self) -> bool:
        return self.node.operation == OperationType.MUTATION


def operation_of(document: DocumentNode, operation_name: str | None) -> Operation:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if operation_name:
        chosen = [op for op in operations if op.name and op.name.value == operation_name]
        if not chosen:
            raise RequestError(
                [error(f'No operation named "{operation_name}"', "OPERATION_NOT_FOUND")]
            )
    elif len(operations) > 1:
        raise RequestError(
            [error("An operation name is required when sending multiple operations.", "BAD")]
        )
    else:
        chosen = operations
    if not chosen:
        raise RequestError([error("No operations in query document", "BAD_REQUEST")])
    roots = tuple(_fields(chosen[0].selection_set, fragments))
    return Operation(document, chosen[0], fragments, roots)


@functools.lru_cache(maxsize=1024)
def _cached_operation(query: str, operation_name: str | None) -> Operation:
    return operation_of(parse_document(query), operation_name)


@dataclass(frozen=True)
class Prepared:
    """A parsed operation, the text its validation is cached under, and a literal
    ``@idempotent`` key taken from the call's own text."""

    operation: Operation
    cache_text: str
    literal_key: str | None


# Each push names a new key in the document: parsing it again every call cost as much as
# the rest of the call. The document is parsed once with this in place of the key.
_KEY_PLACEHOLDER = "sim-idempotency-key"
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,255}")


def prepare(query: str, operation_name: str | None) -> Prepared:
    """Parse (cached), sharing one parse among documents that differ only by their key.

    The shared parse is used only when its ``@idempotent`` key is the placeholder string
    literal, so the call's document is the shared one with that one token's content
    replaced: anything else (a key in a variable, the placeholder elsewhere) is parsed as
    it stands.
    """
    at = query.find("@idempotent")
    if at >= 0 and _KEY_PLACEHOLDER not in query:
        opening = query.find('"', at)
        closing = query.find('"', opening + 1) if opening >= 0 else -1
        key = query[opening + 1 : closing] if closing > opening >= 0 else ""
        if _PLAIN_KEY.fullmatch(key):
            template = query[: opening + 1] + _KEY_PLACEHOLDER + query[closing:]
            try:
                operation = _cached_operation(template, operation_name)
            except RequestError:
                operation = None
            if operation is not None and _literal_key(operation) == _KEY_PLACEHOLDER:
                return Prepared(operation, template, key)
    return Prepared(_cached_operation(query, operation_name), query, None)


def _literal_key(operation: Operation) -> str | None:
    for root in operation.root_fields:
        for directive in root.directives or ():
            if directive.name.value == "idempotent":
                for argument in directive.arguments or ():
                    if argument.name.value == "key" and isinstance(
                        argument.value, StringValueNode
                    ):
                        return argument.value.value
    return None


def _fields(
    selection_set: SelectionSetNode | None, fragments: Mapping[str, FragmentDefinitionNode]
) -> Iterable[FieldNode]:
    if selection_set is None:
        return
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments)


def idempotency_key(prepared: Prepared, variables: Mapping[str, Any]) -> str | None:
    """The ``key`` of an ``@idempotent`` directive on a root field, if any."""
    if prepared.literal_key is not None:
        return prepared.literal_key
    for root in prepared.operation.root_fields:
        for directive in root.directives or ():
            if directive.name.value != "idempotent":
                continue
            for argument in directive.arguments or ():
                if argument.name.value == "key":
                    value = value_from_ast_untyped(argument.value, dict(variables))
                    return None if value is None else str(value)
    return None


_validation_cache: dict[tuple[Dialect, str], list[JSON]] = {}


def validation_errors(dialect: Dialect, prepared: Prepared) -> list[JSON]:
    """Shopify-worded validation errors; cached by the text less the idempotency key."""
    cache_key = (dialect, prepared.cache_text)
    cached = _validation_cache.get(cache_key)
    if cached is None:
        document = prepared.operation.document
        found = validate(schema_for(dialect), document, list(_VALIDATION_RULES))
        cached = [_shopify_validation_error(e) for e in found]
        if len(_validation_cache) >= _VALIDATION_CACHE_SIZE:
            _validation_cache.clear()
        _validation_cache[cache_key] = cached
    return cached


# graphql-core's wording -> graphql-ruby's (what Shopify answers), by pattern.
_RUBY_WORDING: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, JSON]]]] = [
    (
        re.compile(r"^Cannot query field '(?P<f>\w+)' on type '(?P<t>\w+)'"),
        lambda m: (
            f"Field '{m['f']}' doesn't exist on type '{m['t']}'",
            {"code": "undefinedField", "typeName": m["t"], "fieldName": m["f"]},
        ),
    ),
    (
        re.compile(r"^Unknown directive '@(?P<d>\w+)'"),
        lambda m: (
            f"Directive @{m['d']} is not defined",
            {"code": "undefinedDirective", "directiveName": m["d"]},
        ),
    ),
    (
        re.compile(r"^Unknown argument '(?P<a>\w+)' on field '\w+\.(?P<f>\w+)'"),
        lambda m: (
            f"Field '{m['f']}' doesn't accept argument '{m['a']}'",
            {"code": "argumentNotAccepted", "name": m["f"], "argumentName": m["a"]},
        ),
    ),
    (
        re.compile(r"^Field '(?:\w+\.)?(?P<f>\w+)' argument '(?P<a>\w+)' of type .* is required"),
        lambda m: (
            f"Field '{m['f']}' is missing required arguments: {m['a']}",
            {"code": "missingRequiredArguments", "name": m["f"], "arguments": m["a"]},
        ),
    ),
    (
        re.compile(r"^Field '(?P<f>\w+)' must not have a selection since type '(?P<t>[^']+)'"),
        lambda m: (
            f"Selections can't be made on scalars (field '{m['f']}' returns {m['t']} but has "
            "selections)",
            {"code": "selectionMismatch", "nodeName": f"field '{m['f']}'"},
        ),
    ),
    (
        re.compile(r"^Field '(?P<f>\w+)' of type '(?P<t>[^']+)' must have a selection"),
        lambda m: (
            f"Field must have selections (field '{m['f']}' returns {m['t']} but has no "
            "selections. Did you mean '" + m["f"] + " { ... }'?)",
            {"code": "selectionMismatch", "nodeName": f"field '{m['f']}'"},
        ),
    ),
    (
        re.compile(r"^Variable '\$(?P<v>\w+)' is not defined"),
        lambda m: (
            f"Variable ${m['v']} is used but not declared",
            {"code": "variableNotDefined", "variableName": m["v"]},
        ),
    ),
]


def _shopify_validation_error(exc: GraphQLError) -> JSON:
    for pattern, reword in _RUBY_WORDING:
        match = pattern.match(exc.message)
        if match is not None:
            message, extensions = reword(match)
            answer: JSON = {"message": message}
            if exc.locations:
                answer["locations"] = [loc._asdict() for loc in exc.locations]
            return answer | {"extensions": extensions}
    return _formatted(exc, "GRAPHQL_VALIDATION_FAILED")


def _formatted(exc: GraphQLError, code: str) -> JSON:
    answer: JSON = {"message": exc.message}
    if exc.locations:
        answer["locations"] = [loc._asdict() for loc in exc.locations]
    return answer | {"extensions": {"code": code}}


def coerce_variables(
    schema: GraphQLSchema, operation: Operation, raw: Mapping[str, Any]
) -> tuple[VariableValues | None, list[JSON]]:
    """The variables coerced to their declared types, or graphql-ruby's INVALID_VARIABLE
    errors for those that do not fit."""
    definitions = operation.node.variable_definitions or ()
    coerced = get_variable_values(schema, definitions, dict(raw))
    if isinstance(coerced, VariableValues):
        return coerced, []
    errors: list[JSON] = []
    for definition in definitions:
        name = definition.variable.name.value
        var_type = type_from_ast(schema, definition.type)
        if var_type is None or not is_input_type(var_type):
            continue  # reported by validation
        if name not in raw and definition.default_value is not None:
            continue
        problems: list[JSON] = []

        def on_error(exc: GraphQLError, path: list[str | int]) -> None:
            problems.append(_problem(list(path), exc.message))  # noqa: B023

        validate_input_value(raw.get(name, Undefined), cast(GraphQLInputType, var_type), on_error)
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first["path"])
            message = f"Variable ${name} of type {print_ast(definition.type)} was provided "
            message += "invalid value"
            if where:
                message += f" for {where} ({first['explanation']})"
            errors.append(
                error(message, "INVALID_VARIABLE", value=raw.get(name), problems=problems)
            )
    if not errors:
        errors = [error(e.message, "INVALID_VARIABLE") for e in coerced]
    return None, errors


def _problem(path: list[Any], message: str) -> JSON:
    """graphql-ruby's explanation for one coercion failure."""
    if match := re.match(
        r"Expected value of type '(\w+)!?' not to include unknown field '(\w+)'", message
    ):
        return {"path": [*path, match[2]], "explanation": f"Field is not defined on {match[1]}"}
    if match := re.match(
        r"Expected value of type '\w+!?' to include required field '(\w+)'", message
    ):
        return {"path": [*path, match[1]], "explanation": "Expected value to not be null"}
    if message.startswith(("Expected value of non-null type", "Expected a value of non-null")):
        return {"path": path, "explanation": "Expected value to not be null"}
    if match := re.match(r"(\w+) cannot represent .*?: (.*)$", message):
        return {"path": path, "explanation": f"Could not coerce value {match[2]} to {match[1]}"}
    return {"path": path, "explanation": message.rstrip(".")}


# -- Cost ------------------------------------------------------------------------------------


def requested_cost(
    schema: GraphQLSchema, operation: Operation, variables: Mapping[str, Any]
) -> int:
    """Shopify's calculated cost, approximately: a mutation 10; objects 1, scalars 0, a
    connection 2 plus its page size times its nodes, ``nodes(ids:)`` once per id."""
    if operation.is_mutation:
        return MUTATION_COST * max(1, len(operation.root_fields))
    root = schema.query_type
    assert root is not None
    return _cost(schema, root, operation.node.selection_set, operation.fragments, variables)


def _cost(
    schema: GraphQLSchema,
    parent: Any,
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            target = schema.get_type(condition.name.value) if condition else parent
            total += _cost(schema, target, selection.selection_set, fragments, variables)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                target = schema.get_type(fragment.type_condition.name.value)
                total += _cost(schema, target, fragment.selection_set, fragments, variables)
        elif isinstance(selection, FieldNode):
            definition = getattr(parent, "fields", {}).get(selection.name.value)
            if definition is None:
                continue
            named = get_named_type(definition.type)
            if not is_composite_type(named):
                continue
            inner = _cost(schema, named, selection.selection_set, fragments, variables)
            arguments = {
                a.name.value: value_from_ast_untyped(a.value, dict(variables))
                for a in selection.arguments or ()
            }
            if named.name.endswith("Connection"):
                size = arguments.get("first") or arguments.get("last") or 0
                total += 2 + (int(size) if isinstance(size, int) else 0) * max(1, inner)
                continue
            field_type = (
                definition.type.of_type if is_non_null_type(definition.type) else (definition.type)
            )
            ids = arguments.get("ids")
            if is_list_type(field_type) and isinstance(ids, list):
                total += len(ids) * (1 + inner)
            else:
                total += 1 + inner
    return total


# -- Execution -------------------------------------------------------------------------------


@dataclass
class Context:
    """One call's view of the shop (its lock is held for the whole execution)."""

    shop: Shop
    dialect: Dialect
    now: float
    now_iso: str
    # False: the write is accepted and dropped (the drop fault).
    apply: bool
    idempotency_key: str | None
    next_adjustment_id: Callable[[], int]
    # Called for each applied change: (item, location id, level, delta).
    on_change: Callable[[Item, int, Level, int], None]
    user_error_codes: frozenset[str] = field(default_factory=frozenset)

    def quantity(self, item: Item, location_id: int, level: Level, name: str) -> int:
        lagging = self.shop.read_lag.visible((item.inventory_item_id, location_id), None, self.now)
        return level.quantity(name) if lagging is None else int(lagging[name])


def _cursor(number: int) -> str:
    raw = json.dumps({"last_id": number, "last_value": str(number)}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def _cursor_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        return int(json.loads(base64.b64decode(cursor))["last_id"])
    except (ValueError, KeyError, TypeError):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor}") from None


def connection(
    nodes: list[tuple[int, Any]],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
) -> JSON:
    """A Relay connection over ``(id, node)`` pairs sorted by id."""
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE_SIZE:
            raise GraphQLError(f"The {name} argument must be between 0 and {MAX_PAGE_SIZE}")
    ordered = list(reversed(nodes)) if reverse else nodes
    after_id, before_id = _cursor_id(after), _cursor_id(before)
    if after_id is not None:
        position = next((i for i, (n, _) in enumerate(ordered) if n == after_id), -1)
        ordered = ordered[position + 1 :]
    if before_id is not None:
        position = next((i for i, (n, _) in enumerate(ordered) if n == before_id), len(ordered))
        ordered = ordered[:position]
    window = ordered
    if first is not None:
        window = window[:first]
    if last is not None:
        window = window[-last:] if last else []
    edges = [{"cursor": _cursor(number), "node": node} for number, node in window]
    return {
        "edges": edges,
        "nodes": [node for _, node in window],
        "pageInfo": {
            "hasNextPage": first is not None and len(ordered) > len(window),
            "hasPreviousPage": last is not None and len(ordered) > len(window),
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


class ItemView:
    typename = "InventoryItem"

    def __init__(self, item: Item, ctx: Context) -> None:
        self.model, self.ctx = item, ctx
        self.id = gid("InventoryItem", item.inventory_item_id)
        self.legacyResourceId = str(item.inventory_item_id)
        self.sku = item.sku
        self.tracked = item.tracked
        self.createdAt = item.created_at

    @property
    def updatedAt(self) -> str:
        return max((level.updated_at for level in self.model.levels.values()), default="")

    def variant(self, info: Any) -> VariantView:
        return VariantView(self.model, self.ctx)

    def inventoryLevel(self, info: Any, locationId: str) -> LevelView | None:
        location_id = parse_id(locationId, "Location")
        level = self.model.levels.get(location_id) if location_id is not None else None
        return None if level is None else LevelView(self.model, location_id or 0, level, self.ctx)

    def inventoryLevels(self, info: Any, **page: Any) -> JSON:
        levels = sorted(self.model.levels.items())
        return connection(
            [(loc, LevelView(self.model, loc, level, self.ctx)) for loc, level in levels], **page
        )


class LevelView:
    typename = "InventoryLevel"

    def __init__(self, item: Item, location_id: int, level: Level, ctx: Context) -> None:
        self.model, self.location_id, self.level, self.ctx = item, location_id, level, ctx
        self.id = level_gid(location_id, item.inventory_item_id)
        self.createdAt = level.created_at
        self.updatedAt = level.updated_at
        self.canDeactivate = True

    def item(self, info: Any) -> ItemView:
        return ItemView(self.model, self.ctx)

    def location(self, info: Any) -> LocationView:
        return LocationView(self.location_id, self.ctx)

    def quantities(self, info: Any, names: list[str]) -> list[JSON]:
        unknown = [name for name in names if name not in QUANTITY_NAMES]
        if unknown:
            raise GraphQLError(
                f"Invalid quantity names: {', '.join(unknown)}. Valid names are: "
                + ", ".join(sorted(QUANTITY_NAMES)),
                extensions={"code": "BAD_REQUEST"},
            )
        item_id = self.model.inventory_item_id
        if item_id in self.ctx.shop.settings.garbage_item_ids:
            return [{"name": name, "quantity": "lots"} for name in names]
        return [
            {
                "id": f"gid://shopify/InventoryQuantity/{self.location_id}"
                f"?inventory_item_id={item_id}&name={name}",
                "name": name,
                "quantity": self.ctx.quantity(self.model, self.location_id, self.level, name),
                "updatedAt": self.level.updated_at,
            }
            for name in names
        ]


class LocationView:
    typename = "Location"

    def __init__(self, location_id: int, ctx: Context) -> None:
        self.location_id, self.ctx = location_id, ctx
        self.id = gid("Location", location_id)
        self.legacyResourceId = str(location_id)
        primary = location_id == ctx.shop.settings.location_id
        self.name = "Shop location" if primary else f"Location {location_id}"
        self.isActive = True

    def inventoryLevel(self, info: Any, inventoryItemId: str) -> LevelView | None:
        item_id = parse_id(inventoryItemId, "InventoryItem")
        item = self.ctx.shop.items.get(item_id) if item_id is not None else None
        level = item.levels.get(self.location_id) if item is not None else None
        if item is None or level is None:
            return None
        return LevelView(item, self.location_id, level, self.ctx)

    def inventoryLevels(self, info: Any, **page: Any) -> JSON:
        located = [
            (item_id, item)
            for item_id, item in sorted(self.ctx.shop.items.items())
            if self.location_id in item.levels
        ]
        return connection(
            [
                (
                    item_id,
                    LevelView(item, self.location_id, item.levels[self.location_id], self.ctx),
                )
                for item_id, item in located
            ],
            **page,
        )


class VariantView:
    typename = "ProductVariant"

    def __init__(self, item: Item, ctx: Context) -> None:
        self.model, self.ctx = item, ctx
        self.id = gid("ProductVariant", item.variant_id)
        self.legacyResourceId = str(item.variant_id)
        self.sku = item.sku
        self.title = "Default Title"

    @property
    def inventoryQuantity(self) -> int:
        return sum(
            self.ctx.quantity(self.model, loc, level, "available")
            for loc, level in self.model.levels.items()
        )

    def inventoryItem(self, info: Any) -> ItemView:
        return ItemView(self.model, self.ctx)

    def product(self, info: Any) -> JSON:
        return {
            "__typename": "Product",
            "id": gid("Product", self.model.product_id),
            "title": f"Product {self.model.sku}",
        }


class AdjustmentGroupView:
    typename = "InventoryAdjustmentGroup"

    def __init__(self, group_id: int, ctx: Context, reason: str, reference: str | None) -> None:
        self.ctx = ctx
        self.id = gid("InventoryAdjustmentGroup", group_id)
        self.createdAt = ctx.now_iso
        self.reason = reason
        self.referenceDocumentUri = reference
        # (name, delta, quantity after, item, location id)
        self.recorded: list[tuple[str, int, int, Item, int]] = []

    def changes(
        self,
        info: Any,
        inventoryItemIds: list[str] | None = None,
        locationIds: list[str] | None = None,
        quantityNames: list[str] | None = None,
    ) -> list[JSON]:
        items = {parse_id(i, "InventoryItem") for i in inventoryItemIds or ()}
        locations = {parse_id(i, "Location") for i in locationIds or ()}
        return [
            {
                "name": name,
                "delta": delta,
                "quantityAfterChange": after,
                "ledgerDocumentUri": None,
                "item": ItemView(item, self.ctx),
                "location": LocationView(location_id, self.ctx),
            }
            for name, delta, after, item, location_id in self.recorded
            if (not items or item.inventory_item_id in items)
            and (not locations or location_id in locations)
            and (not quantityNames or name in quantityNames)
        ]


class Root:
    """QueryRoot and Mutation: one method per root field."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- Queries -----------------------------------------------------------------------------

    def _node(self, value: object) -> Any:
        parsed = parse_gid(value)
        if parsed is None:
            raise GraphQLError(
                f"Invalid global id '{value}'", extensions={"code": "argumentLiteralsIncompatible"}
            )
        kind, number = parsed
        shop = self.ctx.shop
        if kind == "InventoryItem":
            item = shop.items.get(number)
            return None if item is None else ItemView(item, self.ctx)
        if kind == "ProductVariant":
            item = shop.by_variant.get(number)
            return None if item is None else VariantView(item, self.ctx)
        if kind == "Location":
            return LocationView(number, self.ctx) if number in shop.location_ids else None
        if kind == "InventoryLevel":
            item_id = _query_int(str(value), "inventory_item_id")
            item = shop.items.get(item_id) if item_id is not None else None
            level = item.levels.get(number) if item is not None else None
            return (
                None if item is None or level is None else LevelView(item, number, level, self.ctx)
            )
        return None

    def node(self, info: Any, id: str) -> Any:
        return self._node(id)

    def nodes(self, info: Any, ids: list[str]) -> list[Any]:
        if len(ids) > MAX_INPUT_SIZE:
            raise GraphQLError(
                f"The input array size of {len(ids)} is greater than the maximum allowed of "
                f"{MAX_INPUT_SIZE}.",
                extensions={"code": "MAX_INPUT_SIZE_EXCEEDED"},
            )
        return [self._node(node_id) for node_id in ids]

    def inventoryItem(self, info: Any, id: str) -> ItemView | None:
        node = self._node(id)
        return node if isinstance(node, ItemView) else None

    def inventoryLevel(self, info: Any, id: str) -> LevelView | None:
        node = self._node(id)
        return node if isinstance(node, LevelView) else None

    def productVariant(self, info: Any, id: str) -> VariantView | None:
        node = self._node(id)
        return node if isinstance(node, VariantView) else None

    def location(self, info: Any, id: str | None = None) -> LocationView | None:
        if id is None:
            return LocationView(self.ctx.shop.settings.location_id, self.ctx)
        node = self._node(id)
        return node if isinstance(node, LocationView) else None

    def locations(self, info: Any, **page: Any) -> JSON:
        return connection(
            [(loc, LocationView(loc, self.ctx)) for loc in sorted(self.ctx.shop.location_ids)],
            **page,
        )

    def inventoryItems(
        self, info: Any, query: str | None = None, reverse: bool = False, **page: Any
    ) -> JSON:
        matches = _search(query)
        items = [
            (item_id, ItemView(item, self.ctx))
            for item_id, item in sorted(self.ctx.shop.items.items())
            if matches(item)
        ]
        return connection(items, reverse=reverse, **page)

    # -- Mutations ---------------------------------------------------------------------------

    def inventorySetQuantities(self, info: Any, input: JSON) -> JSON:
        return set_quantities(self.ctx, input)


def _query_int(gid_text: str, name: str) -> int | None:
    _, _, query = gid_text.partition("?")
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == name and value.isdigit():
            return int(value)
    return None


def _search(query: str | None) -> Callable[[Item], bool]:
    """Shopify's search syntax, the terms inventoryItems takes: ``sku:X``, ``id:N``."""
    if not query:
        return lambda item: True
    skus: list[str] = []
    ids: list[int] = []
    words: list[str] = []
    for term in query.split():
        name, _, value = term.partition(":")
        value = value.strip("'\"")
        if name == "sku":
            skus.append(value)
        elif name == "id" and value.isdigit():
            ids.append(int(value))
        else:
            # A free-text term: Shopify matches it against the SKU and other text fields.
            words.append(term.lower())

    def matches(item: Item) -> bool:
        return (
            all(item.sku == sku for sku in skus)
            and all(item.inventory_item_id == number for number in ids)
            and all(word in item.sku.lower() for word in words)
        )

    return matches


def _type_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("__typename")
    return getattr(value, "typename", None)


def _resolve(source: Any, name: str, arguments: dict[str, Any]) -> Any:
    """A view's attribute, or its method called with the field's arguments."""
    value = source.get(name) if type(source) is dict else getattr(source, name, None)
    return value(None, **arguments) if callable(value) else value


def run(ctx: Context, operation: Operation, variables: VariableValues) -> JSON:
    """Execute (the shop's lock held by the caller): ``{"data": ..., "errors": [...]}``."""
    return execute_operation(
        schema_for(ctx.dialect), operation, Root(ctx), variables, _resolve, _type_name
    )


# -- inventorySetQuantities ------------------------------------------------------------------

_adjustment_ids = itertools.count(1)


def set_quantities(ctx: Context, input_: JSON) -> JSON:
    """Validate, then apply every quantity or none (the call is atomic, §6 Shopify)."""
    shop, dialect = ctx.shop, ctx.dialect
    quantities: list[JSON] = input_["quantities"]
    if dialect is Dialect.CURRENT:
        # The changelog: "calling these mutations without an idempotency directive will
        # result in an error at runtime" (observed wording).
        if ctx.idempotency_key is None:
            raise GraphQLError(
                "The @idempotent directive is required for this mutation but was not provided.",
                extensions={"code": "BAD_REQUEST"},
            )
        if any("changeFromQuantity" not in quantity for quantity in quantities):
            raise GraphQLError(
                "InventoryQuantityInput must include the following argument: changeFromQuantity.",
                extensions={"code": "INVALID_FIELD_ARGUMENTS"},
            )
    key = ctx.idempotency_key
    fingerprint = json.dumps(input_, sort_keys=True)
    if key is not None and key in shop.idempotent_results:
        first_fingerprint, first_result = shop.idempotent_results[key]
        if first_fingerprint != fingerprint:
            return {
                "inventoryAdjustmentGroup": None,
                "userErrors": [
                    {
                        "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        "field": None,
                        "message": "The same idempotency key cannot be used with different "
                        "operation parameters.",
                    }
                ],
            }
        # SH9: a repeated key returns the first call's result without applying again.
        return dict(first_result)
    errors, targets = _check_set_quantities(ctx, input_)
    result: JSON
    if errors:
        result = {"inventoryAdjustmentGroup": None, "userErrors": errors}
    else:
        result = {"inventoryAdjustmentGroup": _apply(ctx, input_, targets), "userErrors": []}
    if key is not None:
        shop.idempotent_results[key] = (fingerprint, result)
        if len(shop.idempotent_results) > 100_000:
            del shop.idempotent_results[next(iter(shop.idempotent_results))]
    return result


def _user_error(code: str, path: list[str], message: str) -> JSON:
    return {"code": code, "field": path, "message": message}


def _check_set_quantities(
    ctx: Context, input_: JSON
) -> tuple[list[JSON], list[tuple[Item, int, Level, int]]]:
    shop, dialect = ctx.shop, ctx.dialect
    quantities: list[JSON] = input_["quantities"]
    name = input_["name"]
    errors: list[JSON] = []
    if name not in SETTABLE_QUANTITY_NAMES:
        errors.append(
            _user_error(
                "INVALID_NAME",
                ["input", "name"],
                "The quantity name must be either 'available' or 'on_hand'.",
            )
        )
    if input_["reason"] not in ADJUSTMENT_REASONS:
        errors.append(
            _user_error("INVALID_REASON", ["input", "reason"], "The specified reason is invalid.")
        )
    reference = input_.get("referenceDocumentUri")
    if reference is not None and ":" not in reference:
        errors.append(
            _user_error(
                "INVALID_REFERENCE_DOCUMENT",
                ["input", "referenceDocumentUri"],
                "The specified reference document is invalid.",
            )
        )
    if len(quantities) > shop.settings.max_quantities_per_call:
        errors.append(
            _user_error(
                "TOO_MANY_QUANTITIES",
                ["input", "quantities"],
                f"At most {shop.settings.max_quantities_per_call} quantities can be set in one "
                "call.",
            )
        )
    if errors:
        return errors, []

    ignore_compare = bool(input_.get("ignoreCompareQuantity", False))
    seen: set[tuple[int, int]] = set()
    targets: list[tuple[Item, int, Level, int]] = []
    for index, quantity in enumerate(quantities):
        path = ["input", "quantities", str(index)]
        item_id = parse_id(quantity["inventoryItemId"], "InventoryItem")
        location_id = parse_id(quantity["locationId"], "Location")
        item = shop.items.get(item_id) if item_id is not None else None
        if item is None:
            errors.append(
                _user_error(
                    "INVALID_INVENTORY_ITEM",
                    [*path, "inventoryItemId"],
                    "The specified inventory item could not be found.",
                )
            )
            continue
        if location_id is None or location_id not in shop.location_ids:
            errors.append(
                _user_error(
                    "INVALID_LOCATION",
                    [*path, "locationId"],
                    "The specified location could not be found.",
                )
            )
            continue
        level = item.levels.get(location_id)
        if level is None:
            errors.append(
                _user_error(
                    "ITEM_NOT_STOCKED_AT_LOCATION",
                    [*path, "locationId"],
                    "The specified inventory item is not stocked at the location.",
                )
            )
            continue
        if (item.inventory_item_id, location_id) in seen:
            errors.append(
                _user_error(
                    "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    [*path, "inventoryItemId"],
                    "The combination of inventoryItemId and locationId must be unique.",
                )
            )
            continue
        seen.add((item.inventory_item_id, location_id))
        if item.inventory_item_id in shop.settings.garbage_item_ids:
            errors.append(
                _user_error(
                    "CHANGE_FROM_QUANTITY_STALE",
                    [*path, "changeFromQuantity"],
                    "The changeFromQuantity argument no longer matches the persisted quantity.",
                )
            )
            continue
        value = quantity["quantity"]
        if value > MAX_QUANTITY:
            errors.append(
                _user_error(
                    "INVALID_QUANTITY_TOO_HIGH",
                    [*path, "quantity"],
                    "The total quantity can't be higher than 1,000,000,000.",
                )
            )
            continue
        if value < -MAX_QUANTITY:
            errors.append(
                _user_error(
                    "INVALID_QUANTITY_TOO_LOW",
                    [*path, "quantity"],
                    "The total quantity can't be lower than -1,000,000,000.",
                )
            )
            continue
        if name == "on_hand" and value < 0:
            errors.append(
                _user_error(
                    "INVALID_QUANTITY_NEGATIVE",
                    [*path, "quantity"],
                    "The quantity can't be negative.",
                )
            )
            continue
        current = level.quantity(name)
        stale = _compare_error(dialect, input_, quantity, current, ignore_compare, path)
        if stale is not None:
            errors.append(stale)
            continue
        targets.append((item, location_id, level, value))
    return errors, targets


def _compare_error(
    dialect: Dialect,
    input_: JSON,
    quantity: JSON,
    current: int,
    ignore_compare: bool,
    path: list[str],
) -> JSON | None:
    """The compare-and-set userError for one quantity, if its expectation is stale."""
    if dialect is not Dialect.LEGACY and "changeFromQuantity" in quantity:
        # SH8: any value given to changeFromQuantity, null included, overrides the old fields.
        expected = quantity["changeFromQuantity"]
        if expected is not None and expected != current:
            return _user_error(
                "CHANGE_FROM_QUANTITY_STALE",
                [*path, "changeFromQuantity"],
                "The changeFromQuantity argument no longer matches the persisted quantity.",
            )
        return None
    if ignore_compare:
        return None
    expected = quantity.get("compareQuantity")
    if expected is None:
        return _user_error(
            "COMPARE_QUANTITY_REQUIRED",
            [*path, "compareQuantity"],
            "The compareQuantity argument must be given to each quantity or ignored using "
            "ignoreCompareQuantity.",
        )
    if expected != current:
        return _user_error(
            "COMPARE_QUANTITY_STALE",
            [*path, "compareQuantity"],
            "The compareQuantity value does not match persisted value.",
        )
    return None


def _apply(
    ctx: Context, input_: JSON, targets: list[tuple[Item, int, Level, int]]
) -> AdjustmentGroupView:
    name = input_["name"]
    other_name = "on_hand" if name == "available" else "available"
    group = AdjustmentGroupView(
        ctx.next_adjustment_id(), ctx, input_["reason"], input_.get("referenceDocumentUri")
    )
    for item, location_id, level, quantity in targets:
        delta = quantity - level.quantity(name)
        if ctx.apply:
            ctx.shop.read_lag.before_write(
                (item.inventory_item_id, location_id), level.snapshot(), ctx.now
            )
            # Setting available or on_hand moves available: the other states stay.
            level.available += delta
            level.updated_at = ctx.now_iso
            ctx.on_change(item, location_id, level, delta)
        for changed in (name, other_name):
            after = level.quantity(changed) + (0 if ctx.apply else delta)
            group.recorded.append((changed, delta, after, item, location_id))
    return group
