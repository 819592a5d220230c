"""The OpenAPI 3.1 description of the HTTP API, served at GET /api/openapi.json.

Hand-written so it says exactly what docs/architecture.md promises; tests/read/ check that
every route the app serves is described here.
"""

from __future__ import annotations

from typing import Any

from server.http.openapi_insights import insight_paths

Json = dict[str, Any]


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: Json, required: list[str] | None = None) -> Json:
    return {"type": "object", "properties": props,
            "required": required if required is not None else list(props)}


INT = {"type": "integer"}
STR = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_STR = {"type": ["string", "null"]}


def _param(name: str, where: str, schema: Json, description: str,
           required: bool = False) -> Json:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


DOC_ID = _param("doc_id", "path", STR, "the document's id")
MIN_SEQ = _param("min_seq", "query", INT,
                 "wait (at most a few seconds) until the read side has reached this seq")
LIMIT = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500},
               "page size (default 50)")
CURSOR = _param("cursor", "query", STR, "the `next` of the previous page")
VERSION = _param("version", "path", INT, "the version's id (its `id` in the list)")

ERRORS = {
    "400": {"description": "bad parameters", "content": {"application/json": {
        "schema": _ref("Error")}}},
    "404": {"description": "unknown document or seq", "content": {"application/json": {
        "schema": _ref("Error")}}},
    "410": {"description": "the document was deleted (answered to all but its admins)",
            "content": {"application/json": {"schema": _ref("Error")}}},
}
ADMIN = {"403": {"description": "needs the admin role on the document"}}


BUSY = {"503": {"description": "every read worker is busy: retry after `Retry-After` seconds",
                "content": {"application/json": {"schema": _ref("Error")}}}}


def _answer(schema: Json, description: str = "OK", status: str = "200") -> Json:
    return {status: {"description": description,
                     "content": {"application/json": {"schema": schema}}}, **ERRORS}


def _body(schema: Json) -> Json:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SCHEMAS: Json = {
    "Error": _obj({"error": _obj({"code": STR, "message": STR})}),
    "DocumentListItem": _obj({"id": STR, "title": STR, "seq": INT, "updated_at": TIME,
                              "size": INT, "contributors": {"type": "array", "items": STR},
                              "status": {"enum": ["draft", "in_review", "published",
                                                  "archived"]}}),
    "Document": _obj({
        "id": STR, "title": STR, "seq": INT, "text": STR, "updated_at": TIME,
        "contributors": {"type": "array", "items": STR, "description": "now only: who "
                         "edited it, in the order they first did (the colours' order)"},
        "head_hash": {"type": ["string", "null"], "description":
                      "hex SHA-256: the log's hash chain after event `seq` (64 zeros at 0)"},
        "absorbed": {**_ref("Absorbed"), "description":
                     "only when `at` named a seq a compaction absorbed"},
        "deleted": {**_ref("Deleted"), "description":
                    "only for a deleted document (only its admins can read it)"},
    }, ["id", "title", "seq", "text", "updated_at"]),
    "Absorbed": _obj({"seq": INT, "from_seq": INT, "to_seq": INT}),
    "Deleted": _obj({"id": STR, "title": STR, "deleted_at": TIME, "deleted_by": STR, "seq": INT,
                     "purge_after": TIME}),
    "Revision": _obj({"number": INT, "from_seq": INT, "to_seq": INT,
                      "authors": {"type": "array", "items": STR}, "started_at": TIME,
                      "ended_at": TIME, "inserted": INT, "deleted": INT,
                      "kind": {"enum": ["edit", "restore"]}, "events": INT,
                      "shares": {"type": "array", "items": _ref("Share"), "description":
                                 "every author's part, in the order they first took part"},
                      "restored_from": {**INT, "description": "a restore's: the seq whose "
                                        "text it restored"},
                      "restored_by": {**STR, "description": "a restore's: who restored"}},
                     ["number", "from_seq", "to_seq", "authors", "started_at", "ended_at",
                      "inserted", "deleted", "kind", "events", "shares"]),
    "Share": _obj({"author": STR, "events": INT, "inserted": INT, "deleted": INT}),
    "Version": _obj({"id": {**INT, "description": "the seq of the event that named it: the "
                            "version's id in /versions/{version}"},
                     "seq": INT, "name": STR, "actor": STR, "created_at": TIME}),
    "FeedItem": _obj({"kind": {"enum": ["rename", "restore", "version", "version_renamed",
                                        "version_deleted", "reload"]},
                      "seq": INT, "actor": STR, "time": {"type": "number"},
                      "title": STR, "restored_from": INT, "version": INT, "name": STR},
                     ["kind", "seq"]),
    "Change": _obj({"op": {"enum": ["keep", "insert", "delete"]}, "text": STR,
                    "author": NULLABLE_STR}),
    "Event": _obj({"seq": INT, "kind": STR, "actor": STR, "time": TIME, "size": INT,
                   "restored_from": {**INT, "description": "a restore's target seq"}},
                  ["seq", "kind", "actor", "time", "size"]),
}


def schema() -> Json:
    doc = "/api/documents/{doc_id}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Palimpsest",
            "version": "0.1.0",
            "description": (
                "Collaborative documents with an event-sourced history. Every answer "
                "carries the seq it reflects (in the body, and in the X-Palimpsest-Seq "
                "header). Errors are {\"error\": {\"code\", \"message\"}}. The live "
                "document is edited over the y-websocket protocol at /ws/{doc_id}."
            ),
        },
        "paths": {
            "/api/documents": {
                "get": {
                    "summary": "List documents, newest edit first (deleted ones left out); "
                               "with deleted=1, the deleted documents the caller administers",
                    "parameters": [LIMIT, CURSOR, _param(
                        "deleted", "query", {"enum": ["1"]},
                        "list the deleted documents instead (admins)")],
                    "responses": _answer(_obj({
                        "items": {"type": "array", "items": {"oneOf": [
                            _ref("DocumentListItem"), _ref("Deleted")]}},
                        "next": NULLABLE_STR})),
                },
                "post": {
                    "summary": "Create a document (a command)",
                    "requestBody": _body(_obj({"title": STR, "id": STR}, ["title"])),
                    "responses": {**_answer(_ref("Document"), "created", "201"),
                                  "409": {"description": "that id exists"}},
                },
            },
            doc: {
                "get": {
                    "summary": "One document, now or at a seq or a time",
                    "parameters": [
                        DOC_ID,
                        _param("at", "query", INT, "the seq to read the document at (a seq a "
                               "compaction absorbed answers with the end of its run)"),
                        _param("at_time", "query", TIME,
                               "ISO 8601; the document as of the last event at or before it"),
                        MIN_SEQ,
                    ],
                    "responses": {**_answer(_ref("Document")), **BUSY,
                                  "504": {"description": "min_seq not reached in time"}},
                },
                "patch": {
                    "summary": "Rename (a command)",
                    "parameters": [DOC_ID],
                    "requestBody": _body(_obj({"title": STR})),
                    "responses": _answer(_obj({"id": STR, "title": STR, "seq": INT,
                                               "updated_at": TIME})),
                },
                "delete": {
                    "summary": "Delete (a command, admins): live connections closed with "
                               "4410, the document hidden and restorable until purged",
                    "parameters": [DOC_ID],
                    "requestBody": {"required": False, "content": {"application/json": {
                        "schema": _obj({"reason": STR}, [])}}},
                    "responses": {**_answer(_obj({
                        "id": STR, "seq": INT, "deleted_at": TIME, "deleted_by": STR,
                        "purge_after": TIME})), **ADMIN},
                },
            },
            doc + "/undelete": {
                "post": {
                    "summary": "Bring a deleted document back whole (a command, admins)",
                    "parameters": [DOC_ID],
                    "responses": {**_answer(_obj({"id": STR, "seq": INT,
                                                  "undeleted_at": TIME})),
                                  "409": {"description": "not deleted"}, **ADMIN},
                },
            },
            doc + "/erase": {
                "post": {
                    "summary": "Erase the content of a seq range's events, or of every event "
                               "of one actor (a command, admins): placeholders of the same "
                               "length everywhere, the chain re-linked, an `erasure` event "
                               "recorded, live clients reconnected (4500)",
                    "parameters": [DOC_ID],
                    "requestBody": _body({"oneOf": [
                        _obj({"from_seq": INT, "to_seq": INT, "reason": STR}),
                        _obj({"actor": STR, "reason": STR})]}),
                    "responses": {**_answer(_obj({
                        "id": STR, "seq": INT, "erased": INT, "rechained_from": INT,
                        "head_hash": STR, "erased_at": TIME, "from_seq": INT, "to_seq": INT,
                        "actor": STR}, ["id", "seq", "erased", "rechained_from", "head_hash",
                                        "erased_at"])),
                        "409": {"description": "the range cuts a compacted event, or history "
                                               "changed meanwhile"}, **ADMIN},
                },
            },
            doc + "/revoke": {
                "post": {
                    "summary": "Cut a user off the document (admins): their live connections "
                               "closed with 4403, their tokens minted before now refused",
                    "parameters": [DOC_ID],
                    "requestBody": _body(_obj({"user": STR})),
                    "responses": {**_answer(_obj({"doc_id": STR, "user": STR,
                                                  "revoked_at": {"type": "number"},
                                                  "closed": INT})), **ADMIN},
                },
            },
            doc + "/retention": {
                "put": {
                    "summary": "Set the document's retention policy (a command, admins): keep "
                               "every event for keep_days days, then compact; null: the "
                               "server's default",
                    "parameters": [DOC_ID],
                    "requestBody": _body(_obj({"keep_days": {"type": ["number", "null"]}})),
                    "responses": {**_answer(_obj({"id": STR, "seq": INT,
                                                  "keep_days": {"type": ["number", "null"]}})),
                                  **ADMIN},
                },
            },
            doc + "/revisions": {
                "get": {
                    "summary": "Revisions, newest first",
                    "parameters": [DOC_ID, LIMIT, CURSOR, MIN_SEQ],
                    "responses": _answer(_obj({
                        "items": {"type": "array", "items": _ref("Revision")},
                        "next": NULLABLE_STR, "seq": INT})),
                },
            },
            doc + "/versions": {
                "get": {
                    "summary": "Named versions, oldest first",
                    "parameters": [DOC_ID, MIN_SEQ],
                    "responses": _answer(_obj({
                        "items": {"type": "array", "items": _ref("Version")}, "seq": INT})),
                },
                "post": {
                    "summary": "Name a version at a seq (a command)",
                    "parameters": [DOC_ID],
                    "requestBody": _body(_obj({"seq": INT, "name": STR})),
                    "responses": _answer(_ref("Version"), "created", "201"),
                },
            },
            doc + "/diff": {
                "get": {
                    "summary": "What changed between two seqs, in whole words, and who "
                               "changed it (`author` when the range spans at most 2,000 "
                               "events, `attributed` says; null otherwise)",
                    "parameters": [
                        DOC_ID,
                        _param("from", "query", INT, "the earlier seq", required=True),
                        _param("to", "query", INT, "the later seq", required=True),
                    ],
                    "responses": {**_answer(_obj({
                        "from": INT, "to": INT, "granularity": {"enum": ["word"]},
                        "attributed": {"type": "boolean"},
                        "changes": {"type": "array", "items": _ref("Change")}})), **BUSY,
                        "413": {"description": "spans more events than one diff may "
                                "(PALIMPSEST_MAX_DIFF_EVENTS)",
                                "content": {"application/json": {"schema": _ref("Error")}}}},
                },
            },
            doc + "/content": {
                "get": {
                    "summary": "The whole document at a seq: its Yjs state and every root "
                               "type rendered (text with its delta, XML trees, maps, arrays)",
                    "parameters": [DOC_ID, _param("seq", "query", INT,
                                                  "the seq (default: the projected head)")],
                    "responses": {**_answer(_obj({
                        "seq": INT, "updated_at": TIME,
                        "state": {"type": "string", "description":
                                  "base64 of the Yjs v1 update of the whole state"},
                        "roots": {"type": "object", "description":
                                  "by root name: {type: text|xml|map|array|null, json, and "
                                  "text+delta (text) or xml+children (xml)}; docs/protocol.md"},
                    }, ["seq", "updated_at", "state", "roots"])), **BUSY},
                },
            },
            doc + "/diff/roots": {
                "get": {
                    "summary": "What changed in every root type between two seqs: text by "
                               "words with formatting changes, XML block by block, maps, "
                               "arrays (docs/protocol.md, Yjs shapes)",
                    "parameters": [
                        DOC_ID,
                        _param("from", "query", INT, "the earlier seq", required=True),
                        _param("to", "query", INT, "the later seq", required=True),
                    ],
                    "responses": {**_answer(_obj({
                        "from": INT, "to": INT,
                        "roots": {"type": "object", "description":
                                  "by root name: {type, changes}, only roots that differ"}})),
                        **BUSY},
                },
            },
            doc + "/events": {
                "get": {
                    "summary": "The raw log (audit): no payloads, their sizes",
                    "parameters": [DOC_ID,
                                   _param("after", "query", INT, "only events after this seq"),
                                   LIMIT],
                    "responses": _answer(_obj({
                        "items": {"type": "array", "items": _ref("Event")},
                        "next": {"type": ["integer", "null"]}, "seq": INT})),
                },
            },
            doc + "/restore": {
                "post": {
                    "summary": "Restore the whole document (every root type) as it was at a "
                               "seq or a revision (a command; appends one event, history is "
                               "kept); 422 when some content cannot be restored",
                    "parameters": [DOC_ID],
                    "requestBody": _body({"oneOf": [_obj({"seq": INT}),
                                                    _obj({"revision": INT})]}),
                    "responses": _answer(_obj({"seq": INT, "restored_from": INT})),
                },
            },
            doc + "/versions/{version}": {
                "patch": {
                    "summary": "Rename a named version (a command)",
                    "parameters": [DOC_ID, VERSION],
                    "requestBody": _body(_obj({"name": STR})),
                    "responses": _answer(_obj({"id": INT, "name": STR, "seq": INT})),
                },
                "delete": {
                    "summary": "Take a version's name away (a command): the history it "
                               "named stays",
                    "parameters": [DOC_ID, VERSION],
                    "responses": _answer(_obj({"id": INT, "deleted": {"type": "boolean"},
                                               "seq": INT})),
                },
            },
            doc + "/copy": {
                "post": {
                    "summary": "A new document with this one's text at `seq` (default now); "
                               "its history starts there (a command; read on the source, "
                               "write on the new id)",
                    "parameters": [DOC_ID],
                    "requestBody": _body(_obj({"seq": INT, "title": STR, "id": STR}, [])),
                    "responses": {**_answer(_obj({
                        "id": STR, "title": STR,
                        "copied_from": _obj({"id": STR, "seq": INT})}), "created", "201"),
                        "409": {"description": "that id exists"}},
                },
            },
            doc + "/markdown": {
                "get": {
                    "summary": "The text as a Markdown file to download (Content-Disposition "
                               "attachment, named after the title), now or at a seq",
                    "parameters": [DOC_ID, _param("at", "query", INT, "the seq")],
                    "responses": {"200": {"description": "the text",
                                          "content": {"text/markdown": {"schema": STR}}},
                                  **ERRORS, **BUSY},
                },
            },
            doc + "/feed": {
                "get": {
                    "summary": "Server-sent events: each rename, restore and change to a "
                               "named version as it is committed on any node (`data:` one "
                               "FeedItem as JSON; comment lines every 15 s)",
                    "parameters": [DOC_ID],
                    "responses": {"200": {"description": "a stream that stays open",
                                          "content": {"text/event-stream": {
                                              "schema": _ref("FeedItem")}}},
                                  **ERRORS, "503": {"description": "too many readers"}},
                },
            },
            "/api/openapi.json": {"get": {"summary": "This schema",
                                          "responses": {"200": {"description": "OK"}}}},
            "/healthz": {"get": {
                "summary": "Health: every long-lived task alive and the read side progressing",
                "responses": {
                    "200": {"description": "healthy: {status: ok, node, role, problems: []}"},
                    "503": {"description": "unhealthy: {status, problems: [{task, problem}]} "
                                           "names the dead or stalled task"},
                }}},
            "/metrics": {"get": {"summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "OK"}}}},
            **insight_paths(doc),
        },
        "components": {"schemas": SCHEMAS},
    }
