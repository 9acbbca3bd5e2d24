"""The OpenAPI 3.1 description of the API, served at /v1/openapi.json; tests validate real responses
against it, so it cannot drift from what the handlers return."""

from __future__ import annotations

from functools import cache
from typing import Any

from settlerd import __version__
from settlerd.engine.documents import NODE_ID, AcceptanceDoc, OfferDoc
from settlerd.swap import Status

from .params import (
    CURSOR_MAX_LENGTH,
    CURSOR_PATTERN,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RFC3339_PATTERN,
    STATUSES,
    SWAP_ID_PATTERN,
)
from .streams import RETRY_AFTER_S
from .trade import MAX_AMOUNT_DIGITS, MAX_REASON, MAX_TEXT

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _json(description: str, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return _json(description, _ref("Error"), **extra)


_TIME = {"type": "string", "format": "date-time"}
_TXID = _nullable({"type": "string"})
_AUTH_ERRORS = {
    "401": _error("No bearer token, or not a valid one (see the WWW-Authenticate header)."),
    "403": _error("The token's scope does not allow this."),
}
_ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": SWAP_ID_PATTERN},
}
_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": f"Seconds to wait before trying again ({RETRY_AFTER_S}).",
    }
}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "field"],
        "additionalProperties": False,
        "properties": {
            "error": {"type": "string", "description": "What is wrong and what to do."},
            "field": _nullable({"type": "string", "description": "The parameter, header or body part."}),
        },
    },
    "Status": {
        "type": "string",
        "enum": [str(status) for status in Status],
        "description": "The swap's settlement status; docs/status.md explains each value.",
    },
    "Leg": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "leg",
            "chain",
            "asset",
            "amount",
            "sender",
            "recipient",
            "hashlock",
            "timelock",
            "htlc_id",
            "lock_txid",
            "claim_txid",
            "refund_txid",
            "confirmations",
            "final",
            "deadline",
        ],
        "properties": {
            "leg": {
                "type": "integer",
                "enum": [1, 2],
                "description": "1: initiator's lock, 2: participant's.",
            },
            "chain": {"type": "string"},
            "asset": {"type": "string"},
            "amount": {"type": "string", "pattern": "^[0-9]+$", "description": "Base units, decimal."},
            "sender": {"type": "string"},
            "recipient": {"type": "string"},
            "hashlock": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "sha256 of the secret.",
            },
            "timelock": {"type": "integer", "description": "Chain-native: block height or unix time."},
            "htlc_id": _nullable({"type": "string", "description": "HTLC address or contract swap id."}),
            "lock_txid": _TXID,
            "claim_txid": _TXID,
            "refund_txid": _TXID,
            "confirmations": {"type": "integer", "minimum": 0},
            "final": {"type": "boolean", "description": "Lock buried at the chain's finality depth."},
            "deadline": _nullable(_TIME),
        },
    },
    "Swap": {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "role", "status", "terminal", "counterparty", "created_at", "updated_at", "legs"],
        "properties": {
            "id": {"type": "string"},
            "role": {"type": "string", "enum": ["initiator", "participant"]},
            "status": _ref("Status"),
            "terminal": {"type": "boolean", "description": "The status will not change any more."},
            "counterparty": {"type": "string"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "legs": {"type": "array", "items": _ref("Leg"), "maxItems": 2},
        },
    },
    "SwapList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["swaps", "next_cursor"],
        "properties": {
            "swaps": {"type": "array", "items": _ref("Swap")},
            "next_cursor": _nullable(
                {"type": "string", "description": "Pass as `cursor` for the next page."}
            ),
        },
    },
    "Event": {
        "type": "object",
        "additionalProperties": False,
        "required": ["seq", "swap_id", "kind", "status", "created_at", "payload"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1, "description": "Position in the node's event log."},
            "swap_id": _nullable({"type": "string"}),
            "kind": {"type": "string"},
            "status": _nullable(_ref("Status")),
            "created_at": _TIME,
            "payload": {"type": "object"},
        },
    },
    "EventList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["swap_id", "events", "next_after"],
        "properties": {
            "swap_id": {"type": "string"},
            "events": {"type": "array", "items": _ref("Event")},
            "next_after": _nullable({"type": "integer", "description": "Pass as `after` for more."}),
        },
    },
    "Health": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "node_id", "version"],
        "properties": {
            "status": {"const": "ok"},
            "node_id": {"type": "string"},
            "version": {"type": "string"},
        },
    },
    "Ready": {
        "type": "object",
        "additionalProperties": False,
        "required": ["ready", "checks"],
        "properties": {
            "ready": {"type": "boolean"},
            "checks": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["ok", "error"],
                    "properties": {"ok": {"type": "boolean"}, "error": _nullable({"type": "string"})},
                },
            },
            "replica": {
                "type": "object",
                "description": "This process among the node's replicas (role `single` on SQLite).",
                "properties": {
                    "role": {"type": "string", "enum": ["single", "leader", "standby"]},
                    "replica": {"type": "string"},
                    "fencing_token": _nullable({"type": "integer"}),
                    "lease_age_s": _nullable({"type": "number"}),
                    "leading_for_s": _nullable({"type": "number"}),
                    "leader": _nullable({"type": "object"}),
                },
            },
        },
    },
}


def _document_schemas() -> dict[str, Any]:
    """The signed trade documents, from the very models the daemon parses them with."""
    found: dict[str, Any] = {}
    for model in (OfferDoc, AcceptanceDoc):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        schema["description"] = "A signed trade document, passed on unchanged (docs/api.md)."
        found[model.__name__] = schema
    return found


_SCHEMAS.update(_document_schemas())

_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
_LEG_REQUEST = {
    "type": "object",
    "required": ["chain", "asset", "amount"],
    "additionalProperties": False,
    "properties": {
        "chain": {**_TEXT, "description": "A configured chain name."},
        "asset": {**_TEXT, "description": "BTC, ETH or an ERC-20 contract address."},
        "amount": {
            "type": "string",
            "pattern": "^0*[1-9][0-9]*$",
            "maxLength": MAX_AMOUNT_DIGITS,
            "description": "Base units, a positive whole number in decimal.",
        },
    },
}
_TRADE_ERRORS = {
    "400": _error("The request does not match this description; `field` names what."),
    "409": _error("The swap's state does not allow this (already known, accepted, locked or ended)."),
    "413": _error("The body is larger than api.max_body_bytes."),
    "415": _error("The body is not application/json."),
    "422": _error(
        "Well formed, but refused: a signature that does not verify, a document that does not match, "
        "terms that break the timelock policy, name a chain not configured here, or hold a leg its chain "
        "cannot carry (an amount out of range, an unknown asset); `field` names it."
    ),
    **_AUTH_ERRORS,
}

_SWAP_RESPONSES = {"200": _json("The swap.", _ref("Swap")), "404": _error("No such swap."), **_TRADE_ERRORS}

_PATHS: dict[str, Any] = {
    "/v1/health": {
        "get": {
            "summary": "Liveness: the daemon answers. No token needed.",
            "security": [],
            "responses": {"200": _json("Alive.", _ref("Health"))},
        }
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This document. No token needed.",
            "security": [],
            "responses": {"200": _json("OpenAPI 3.1 document.", {"type": "object"})},
        }
    },
    "/v1/ready": {
        "get": {
            "summary": "Readiness: store writable, and every check the engine registered (nodes, scanners).",
            "responses": {
                "200": _json("Ready.", _ref("Ready")),
                "503": _json("Not ready; each failing check says why.", _ref("Ready")),
                **_AUTH_ERRORS,
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format).",
            "responses": {
                "200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_AUTH_ERRORS,
            },
        }
    },
    "/v1/offers/accept": {
        "post": {
            "summary": "Participant: accept an offer; returns the signed acceptance to send back.",
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("OfferDoc")}}},
            "responses": {"201": _json("The signed acceptance.", _ref("AcceptanceDoc")), **_TRADE_ERRORS},
        }
    },
    "/v1/swaps/{id}/acceptance": {
        "post": {
            "summary": "Initiator: register the participant's acceptance; leg 1 is locked next.",
            "parameters": [_ID_PARAM],
            "requestBody": {"required": True, "content": {JSON: {"schema": _ref("AcceptanceDoc")}}},
            "responses": {
                "200": _json("The swap.", _ref("Swap")),
                "404": _error("No such swap."),
                **_TRADE_ERRORS,
            },
        }
    },
    "/v1/swaps/{id}/cancel": {
        "post": {
            "summary": "Cancel a swap that has locked none of our funds yet. The body is optional.",
            "parameters": [_ID_PARAM],
            "requestBody": {
                "required": False,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"reason": {"type": "string", "maxLength": MAX_REASON}},
                        }
                    }
                },
            },
            "responses": {
                "200": _json("The swap.", _ref("Swap")),
                "404": _error("No such swap."),
                **_TRADE_ERRORS,
            },
        }
    },
    "/v1/wallets": {
        "get": {
            "summary": "This daemon's funding address and spendable native balance on each chain (admin).",
            "responses": {
                "200": _json(
                    "Wallets by chain.",
                    {
                        "type": "object",
                        "required": ["wallets"],
                        "properties": {
                            "wallets": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "object",
                                    "required": ["address", "asset", "spendable"],
                                    "properties": {
                                        "address": {"type": "string"},
                                        "asset": {"type": "string"},
                                        "spendable": {"type": "string", "pattern": "^[0-9]+$"},
                                    },
                                },
                            }
                        },
                    },
                ),
                **_AUTH_ERRORS,
            },
        }
    },
    "/v1/swaps": {
        "post": {
            "summary": "Initiator: create a swap from agreed terms; returns the signed offer to send.",
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["counterparty", "give", "get"],
                            "additionalProperties": False,
                            "properties": {
                                "counterparty": {
                                    "type": "string",
                                    "pattern": NODE_ID,
                                    "description": "Its node id.",
                                },
                                "give": _LEG_REQUEST,
                                "get": _LEG_REQUEST,
                            },
                        }
                    }
                },
            },
            "responses": {"201": _json("The signed offer.", _ref("OfferDoc")), **_TRADE_ERRORS},
        },
        "get": {
            "summary": "Swaps, oldest first, filtered, one page at a time.",
            "parameters": [
                {
                    "name": "status",
                    "in": "query",
                    "style": "form",
                    "explode": False,
                    "schema": {"type": "array", "minItems": 1, "items": {"enum": list(STATUSES)}},
                    "description": "One or more statuses, comma-separated (no spaces).",
                },
                {
                    "name": "counterparty",
                    "in": "query",
                    "schema": {"type": "string", "pattern": NODE_ID},
                },
                {"name": "created_since", "in": "query", "schema": {**_TIME, "pattern": RFC3339_PATTERN}},
                {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string", "pattern": CURSOR_PATTERN, "maxLength": CURSOR_MAX_LENGTH},
                    "description": "A `next_cursor` passed back unchanged.",
                },
                {"name": "limit", "in": "query", "schema": {**_LIMIT, "default": DEFAULT_LIMIT}},
            ],
            "responses": {
                "200": _json("A page of swaps.", _ref("SwapList")),
                "400": _error("A bad filter, cursor or limit; `field` names it."),
                **_AUTH_ERRORS,
            },
        },
    },
    "/v1/swaps/{id}": {
        "get": {
            "summary": "One swap's status document.",
            "parameters": [
                _ID_PARAM,
                {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json(
                    "The swap.",
                    _ref("Swap"),
                    headers={"ETag": {"schema": {"type": "string"}, "description": "Send as If-None-Match."}},
                ),
                "304": {"description": "Unchanged since the ETag given in If-None-Match."},
                "400": _error("Not a swap id."),
                "404": _error("No such swap."),
                **_AUTH_ERRORS,
            },
        }
    },
    "/v1/swaps/{id}/events": {
        "get": {
            "summary": "The swap's timeline; with `Accept: text/event-stream`, a live SSE stream.",
            "description": "SSE events carry `id:` = the event's seq and `data:` = an Event; reconnecting "
            "with `Last-Event-ID` resumes after that event (without it, after `after`). A stream ends "
            "once the swap is terminal and every event is sent; `limit` applies to pages only.",
            "parameters": [
                _ID_PARAM,
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "schema": {**_LIMIT, "default": MAX_LIMIT}},
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string", "pattern": "^[0-9]*$"},
                },
            ],
            "responses": {
                "200": {
                    "description": "Events in seq order.",
                    "content": {
                        JSON: {"schema": _ref("EventList")},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "204": {"description": "Stream only: the swap is terminal and nothing is left to send."},
                "400": _error("A bad `after`, `limit` or `Last-Event-ID`."),
                "404": _error("No such swap."),
                "429": _error(
                    "Stream only: this token has api.max_streams_per_token streams open.",
                    headers=_RETRY_AFTER,
                ),
                "503": _error("Stream only: api.max_streams streams are open.", headers=_RETRY_AFTER),
                **_AUTH_ERRORS,
            },
        }
    },
}


@cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "settlerd",
            "version": __version__,
            "description": "Settlement status of cross-chain atomic swaps. Bearer tokens have a scope: "
            "read (venues) < trade (desks) < admin (operators).",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": _PATHS,
    }
