"""The OpenAPI paths of the review status, activity and search (server.http.insight_routes)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

INT = {"type": "integer"}
STR = {"type": "string"}
NUM = {"type": "number"}
TIME = {"type": "string", "format": "date-time"}
STATUS = {"enum": ["draft", "in_review", "published", "archived"]}


def _obj(props: Json, required: list[str] | None = None) -> Json:
    return {"type": "object", "properties": props,
            "required": required if required is not None else list(props)}


def _param(name: str, where: str, schema: Json, description: str,
           required: bool = False) -> Json:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


def _error() -> Json:
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _answer(schema: Json, extra: Json | None = None) -> Json:
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
            "400": {"description": "bad parameters", **_error()},
            "404": {"description": "unknown document", **_error()},
            "504": {"description": "min_seq not reached in time", **_error()}, **(extra or {})}


DOC_ID = _param("doc_id", "path", STR, "the document's id")
MIN_SEQ = _param("min_seq", "query", INT, "wait (bounded) until these read models reached it")
BUCKET = _param("bucket", "query", {"enum": ["minute", "hour", "day"]}, "default hour")
SINCE = _param("since", "query", TIME, "ISO 8601; default a week ago")
ACTIVITY_ITEM = _obj({"start": TIME, "author": STR, "events": INT, "inserted": INT,
                      "deleted": INT, "words_added": INT, "words_removed": INT,
                      "active_seconds": NUM})


def insight_paths(doc: str) -> Json:
    return {
        doc + "/status": {
            "get": {"summary": "The document's review status, and the statuses it may move to",
                    "parameters": [DOC_ID, MIN_SEQ],
                    "responses": _answer(_obj({"id": STR, "status": STATUS, "seq": INT,
                                               "allowed": {"type": "array", "items": STATUS}},
                                              ["id", "status", "seq", "allowed"]))},
            "post": {
                "summary": "Move the document in its review lifecycle (a command): submit "
                           "(draft->in_review), request changes (in_review->draft), publish "
                           "(in_review->published, admins), reopen (published->draft), "
                           "archive (any->archived, admins), unarchive (archived->draft). "
                           "Published and archived documents refuse edits.",
                "parameters": [DOC_ID],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _obj({"to": STATUS, "note": STR}, ["to"])}}},
                "responses": _answer(
                    _obj({"id": STR, "status": STATUS, "from": STATUS, "seq": INT,
                          "note": STR, "actor": STR, "time": TIME}),
                    {"403": {"description": "publish and archive need the admin role, the "
                                            "others write"},
                     "409": {"description": "invalid_transition: error.allowed names the "
                                            "statuses allowed from the current one",
                             **_error()}}),
            },
        },
        doc + "/status-history": {"get": {
            "summary": "Every status transition, oldest first",
            "parameters": [DOC_ID, MIN_SEQ],
            "responses": _answer(_obj({"items": {"type": "array", "items": _obj({
                "from": STATUS, "to": STATUS, "actor": STR, "time": TIME, "note": STR,
                "seq": INT})}, "seq": INT}))}},
        doc + "/published": {"get": {
            "summary": "The document as last published: its text at the publishing seq "
                       "(404 if never published), `document` the full document answer",
            "parameters": [DOC_ID, MIN_SEQ],
            "responses": _answer(_obj({"id": STR, "seq": INT, "text": STR,
                                       "published_at": TIME, "title": STR, "status": STATUS},
                                      ["id", "seq", "text", "published_at"]))}},
        doc + "/activity": {"get": {
            "summary": "Edits per bucket and author: events, characters inserted and deleted, "
                       "words added and removed, active seconds",
            "parameters": [DOC_ID, BUCKET, SINCE, MIN_SEQ],
            "responses": _answer(_obj({"items": {"type": "array", "items": ACTIVITY_ITEM},
                                       "seq": INT}))}},
        doc + "/history-search": {"get": {
            "summary": "When a phrase appeared in the document and when it disappeared "
                       "(case-insensitive), with a link into the time slider",
            "parameters": [DOC_ID, _param("q", "query", STR, "the phrase", required=True),
                           MIN_SEQ],
            "responses": _answer(_obj({"items": {"type": "array", "items": _obj({
                "seq": INT, "time": TIME, "author": STR,
                "change": {"enum": ["appeared", "disappeared"]}, "snippet": STR,
                "link": STR})}, "seq": INT}))}},
        "/api/activity": {"get": {
            "summary": "Activity across every document the caller may read, per bucket and "
                       "author (`seqs`: the seq each document's figures reflect)",
            "parameters": [BUCKET, SINCE],
            "responses": _answer(_obj({"items": {"type": "array", "items": ACTIVITY_ITEM},
                                       "seq": INT, "seqs": {"type": "object"}}))}},
        "/api/activity/presence": {"get": {
            "summary": "Who is in which document now, across every node (from presence; "
                       "never stored)",
            "responses": _answer(_obj({"items": {"type": "array", "items": _obj({
                "id": STR, "users": {"type": "array", "items": STR}})}}))}},
        "/api/activity/stream": {"get": {
            "summary": "Server-Sent Events: one `data:` line of JSON {id, seq, kind} per event "
                       "committed in a document the caller may read, on any node",
            "responses": {"200": {"description": "text/event-stream"}}}},
        "/api/search": {"get": {
            "summary": "Full-text search over the current text of every document the caller "
                       "may read, best first; snippets are HTML with <mark> around matches",
            "parameters": [_param("q", "query", STR, "words, all required", required=True),
                           _param("limit", "query", INT, "at most this many (default 50)")],
            "responses": _answer(_obj({"items": {"type": "array", "items": _obj({
                "id": STR, "title": STR, "snippet": STR, "seq": INT, "score": NUM})}}))}},
    }
