"""Property-based API tests: schemathesis generates requests from the service's own OpenAPI document.

Every generated request, valid or not, must get a documented status (never a 5xx) and a response
that conforms to the document. Bounded: a fixed number of examples per operation, derandomised.
"""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.bootstrap import bootstrap
from tests.support.services import API_KEY, settings_for


@schemathesis.serializer("application/x-ndjson")
def json_lines(ctx: object, value: object) -> bytes:
    """Collection imports are JSON lines; a generated body is sent as its text."""
    return value.encode() if isinstance(value, str) else str(value).encode()


SETTINGS = settings_for("fake", EXPOSE_DOCS="true")
CONTAINER = bootstrap(SETTINGS)
APP = CONTAINER.http_app()
schema = schemathesis.openapi.from_asgi("/docs/openapi.json", APP)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@hypothesis.settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_generated_requests_get_documented_answers(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"}, checks=CHECKS)
