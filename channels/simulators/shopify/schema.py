"""The slice of the Admin GraphQL schema the simulator serves, per API version.

Three dialects of ``inventorySetQuantities`` (``CHANNEL_APIS.md`` §1.2 and the changelogs
SH8/SH9: "compare-and-swap redesign", "making idempotency mandatory"):

- up to 2025-10 (``LEGACY``): ``compareQuantity`` per quantity and ``ignoreCompareQuantity``
  on the input; no ``@idempotent`` directive;
- 2026-01 (``TRANSITION``): ``changeFromQuantity`` added, optional; when it is absent the
  deprecated ``compareQuantity``/``ignoreCompareQuantity`` still decide; ``@idempotent``
  exists and is optional;
- 2026-04 on, and ``unstable`` (``CURRENT``): ``changeFromQuantity`` must be present (null
  skips the check) and the old fields are gone; ``@idempotent`` is required at run time
  although the schema does not say so.
"""

from __future__ import annotations

import enum
import functools

from graphql import GraphQLSchema, build_schema


class Dialect(enum.Enum):
    LEGACY = "legacy"
    TRANSITION = "2026-01"
    CURRENT = "2026-04"


def dialect_of(api_version: str) -> Dialect:
    # "unstable" and any later "YYYY-MM" sort after the switches; the format compares as text.
    if not api_version[:1].isdigit() or api_version >= "2026-04":
        return Dialect.CURRENT
    if api_version >= "2026-01":
        return Dialect.TRANSITION
    return Dialect.LEGACY


# SH6 (2025-04 and 2026-01 enum pages): the codes InventorySetQuantitiesUserError can carry.
_LEGACY_CODES = """
  COMPARE_QUANTITY_REQUIRED COMPARE_QUANTITY_STALE INVALID_INVENTORY_ITEM INVALID_LOCATION
  INVALID_NAME INVALID_QUANTITY_NEGATIVE INVALID_QUANTITY_TOO_HIGH INVALID_QUANTITY_TOO_LOW
  INVALID_REASON INVALID_REFERENCE_DOCUMENT ITEM_NOT_STOCKED_AT_LOCATION
  NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR NON_MUTABLE_INVENTORY_ITEM
"""
_NEW_CODES = """
  CHANGE_FROM_QUANTITY_STALE IDEMPOTENCY_CONCURRENT_REQUEST IDEMPOTENCY_KEY_PARAMETER_MISMATCH
"""
# Not a Shopify code: the simulator's configurable batch cap (§1.2, "not confirmed" [M]).
_SIMULATOR_CODES = "TOO_MANY_QUANTITIES"

_CONNECTION_ARGS = "first: Int, after: String, last: Int, before: String"

_COMMON = f"""
schema {{ query: QueryRoot mutation: Mutation }}

scalar DateTime

interface Node {{ id: ID! }}

type QueryRoot {{
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  inventoryItem(id: ID!): InventoryItem
  inventoryItems({_CONNECTION_ARGS}, query: String, reverse: Boolean = false):
    InventoryItemConnection!
  inventoryLevel(id: ID!): InventoryLevel
  location(id: ID): Location
  locations({_CONNECTION_ARGS}): LocationConnection!
  productVariant(id: ID!): ProductVariant
}}

type Mutation {{
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
}}

type PageInfo {{
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}}

type InventoryItem implements Node {{
  id: ID!
  legacyResourceId: String!
  sku: String
  tracked: Boolean!
  createdAt: DateTime!
  updatedAt: DateTime!
  variant: ProductVariant!
  inventoryLevel(locationId: ID!): InventoryLevel
  inventoryLevels({_CONNECTION_ARGS}): InventoryLevelConnection!
}}

type InventoryItemEdge {{ cursor: String! node: InventoryItem! }}
type InventoryItemConnection {{
  edges: [InventoryItemEdge!]!
  nodes: [InventoryItem!]!
  pageInfo: PageInfo!
}}

type InventoryLevel implements Node {{
  id: ID!
  item: InventoryItem!
  location: Location!
  createdAt: DateTime!
  updatedAt: DateTime!
  canDeactivate: Boolean!
  quantities(names: [String!]!): [InventoryQuantity!]!
}}

type InventoryLevelEdge {{ cursor: String! node: InventoryLevel! }}
type InventoryLevelConnection {{
  edges: [InventoryLevelEdge!]!
  nodes: [InventoryLevel!]!
  pageInfo: PageInfo!
}}

type InventoryQuantity implements Node {{
  id: ID!
  name: String!
  quantity: Int!
  updatedAt: DateTime
}}

type Location implements Node {{
  id: ID!
  legacyResourceId: String!
  name: String!
  isActive: Boolean!
  inventoryLevel(inventoryItemId: ID!): InventoryLevel
  inventoryLevels({_CONNECTION_ARGS}): InventoryLevelConnection!
}}

type LocationEdge {{ cursor: String! node: Location! }}
type LocationConnection {{
  edges: [LocationEdge!]!
  nodes: [Location!]!
  pageInfo: PageInfo!
}}

type Product implements Node {{ id: ID! title: String! }}

type ProductVariant implements Node {{
  id: ID!
  legacyResourceId: String!
  sku: String
  title: String!
  inventoryQuantity: Int
  inventoryItem: InventoryItem!
  product: Product!
}}

type InventoryAdjustmentGroup implements Node {{
  id: ID!
  createdAt: DateTime!
  reason: String!
  referenceDocumentUri: String
  changes(inventoryItemIds: [ID!], locationIds: [ID!], quantityNames: [String!]):
    [InventoryChange!]!
}}

type InventoryChange {{
  name: String!
  delta: Int!
  quantityAfterChange: Int
  ledgerDocumentUri: String
  item: InventoryItem
  location: Location
}}

type InventorySetQuantitiesUserError {{
  code: InventorySetQuantitiesUserErrorCode
  field: [String!]
  message: String!
}}

type InventorySetQuantitiesPayload {{
  inventoryAdjustmentGroup: InventoryAdjustmentGroup
  userErrors: [InventorySetQuantitiesUserError!]!
}}
"""

_INPUTS = {
    Dialect.LEGACY: """
input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  ignoreCompareQuantity: Boolean = false
  quantities: [InventoryQuantityInput!]!
}
input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  compareQuantity: Int
}
""",
    Dialect.TRANSITION: """
directive @idempotent(key: String!) on FIELD
input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  ignoreCompareQuantity: Boolean = false @deprecated(reason: "Use changeFromQuantity.")
  quantities: [InventoryQuantityInput!]!
}
input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  compareQuantity: Int @deprecated(reason: "Use changeFromQuantity.")
  changeFromQuantity: Int
}
""",
    Dialect.CURRENT: """
directive @idempotent(key: String!) on FIELD
input InventorySetQuantitiesInput {
  name: String!
  reason: String!
  referenceDocumentUri: String
  quantities: [InventoryQuantityInput!]!
}
input InventoryQuantityInput {
  inventoryItemId: ID!
  locationId: ID!
  quantity: Int!
  changeFromQuantity: Int
}
""",
}


@functools.cache
def schema_for(dialect: Dialect) -> GraphQLSchema:
    codes = _LEGACY_CODES if dialect is Dialect.LEGACY else _LEGACY_CODES + _NEW_CODES
    sdl = (
        _COMMON
        + _INPUTS[dialect]
        + f"enum InventorySetQuantitiesUserErrorCode {{ {codes} {_SIMULATOR_CODES} }}\n"
    )
    return build_schema(sdl)
