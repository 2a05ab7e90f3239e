"""The API against its own OpenAPI schema, with schemathesis: a bounded run, every check on.

Each operation gets a fixed number of generated requests (valid ones and, in the negative
phase, ones the schema forbids), sent through the WSGI application with a token that may
do everything. Every check schemathesis has applies: no 5xx, every status code, content
type, header and body as the schema documents, data the schema forbids refused with a 4xx,
data it allows not refused with a 400, the operation refused without credentials, an
undocumented method answered 405 with Allow. The stateful checks (``use_after_free``,
``ensure_resource_availability``) need links between operations, which the schema does
not declare; they find nothing to do here.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer as JSONRenderer
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from inventory.models import Location, Sku

# Requests per operation and phase; SCHEMATHESIS_EXAMPLES raises it (200 for a long run).
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
# Wall time one operation may take; examples past it are generated but not sent, so a
# slow machine shortens the run instead of stretching `make test`.
SECONDS_PER_OPERATION = float(os.environ.get("SCHEMATHESIS_SECONDS_PER_OPERATION", "20"))

_ACCEPTED_OR_400 = ["2xx", "400", "401", "403", "404", "409", "429"]
_CONFIG = SchemathesisConfig.from_dict(
    {
        # A NUL byte is refused by every text field (PostgreSQL cannot store it); the
        # schema's strings say nothing of it, so it is left out of the generated data.
        "generation": {"allow-x00": False, "max-examples": EXAMPLES_PER_OPERATION},
        "checks": {"enabled": True},
        # A schema says what each field may be, not rules across fields or rows. These
        # operations refuse with 400 data the schema alone allows, by such a rule; for
        # them positive_data_acceptance also expects a 400 (every other check unchanged).
        "operations": [
            {
                "include-name": name,
                "checks": {"positive_data_acceptance": {"expected-statuses": _ACCEPTED_OR_400}},
            }
            for name in (
                # The code must be new (and a new bundle's or a BOM's components must exist,
                # be listed once and not contain the bundle).
                "POST /api/v1/skus/",
                "POST /api/v1/locations/",
                "POST /api/v1/bundles/",
                "PUT /api/v1/bundles/{code}/",
                # from_location and to_location must differ.
                "POST /api/v1/transfers/",
                # until may not be before since.
                "GET /api/v1/events/",
            )
        ],
    }
)


@pytest.fixture
def something_to_find(db):
    """A SKU and a location that generated codes may hit."""
    Sku.objects.create(code="A", name="A")
    Location.objects.create(code="A", name="A")


def _api_schema() -> schemathesis.schemas.BaseSchema:
    # Generated in process (no request, no database), so that every operation is a test
    # of its own at collection time.
    document = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(
        json.loads(JSONRenderer().render(document)), config=_CONFIG
    )
    loaded.app = get_wsgi_application()
    return loaded


schema = _api_schema()
_started: dict[str, float] = {}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
@pytest.mark.usefixtures("wsgi_requests_keep_the_test_connection", "something_to_find")
def test_api_answers_as_its_schema_says(case, api_credentials):
    """No 5xx, no answer the schema does not document, every error a 4xx JSON body."""
    started = _started.setdefault(case.operation.label, time.monotonic())
    if time.monotonic() - started > SECONDS_PER_OPERATION:
        return
    response = case.call_and_validate(headers=api_credentials)
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and body, body
        message = body.get("detail") or next(iter(body.values()))
        assert message, body
