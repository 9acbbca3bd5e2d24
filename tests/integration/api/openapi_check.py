"""Validate real responses against the served OpenAPI document with a JSON Schema (2020-12) validator."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator


class OpenApiChecker:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, int]] = set()
        self._paths = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
            for template in document["paths"]
        ]
        for schema in document["components"]["schemas"].values():
            Draft202012Validator.check_schema(schema)

    def template(self, path: str) -> str:
        for pattern, template in self._paths:
            if pattern.match(path):
                return template
        raise AssertionError(f"{path} is not in the OpenAPI document")

    def check(self, method: str, path: str, status: int, content_type: str, body: Any) -> None:
        """Raise unless the document describes this status for this operation and the body fits it."""
        template = self.template(path.split("?")[0])
        operation = self.document["paths"][template][method.lower()]
        responses = operation["responses"]
        assert str(status) in responses, f"{method} {template}: status {status} is not documented"
        self.seen.add((method, template, status))
        described = responses[str(status)].get("content")
        if described is None:
            assert not body, f"{method} {template} {status}: undocumented body {body!r}"
            return
        media = content_type.split(";")[0].strip()
        assert media in described, f"{method} {template} {status}: {media} is not documented"
        schema = {**described[media]["schema"], "components": self.document["components"]}
        Draft202012Validator(schema).validate(body)
