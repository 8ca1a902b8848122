"""docs/ws-message-v3.schema.json, built from the models: ``scripts/schema`` writes it.

The root is ``MessageV3``, what a client may send (as before); ``$defs`` adds every frame the
server sends, with ``$defs/ServerMessage`` their ``oneOf``. Validate a received frame with
``{"$ref": "ws-message-v3.schema.json#/$defs/ServerMessage"}``.
"""

from __future__ import annotations

import json
from typing import Any

from .messages import MessageV3
from .server_messages import SERVER_MESSAGE

SCHEMA_ID = "https://json-schema.org/draft/2020-12/schema"


def schema_document() -> dict[str, Any]:
    """The published schema: ``MessageV3`` at the root, the server's frames in ``$defs``."""
    root = MessageV3.model_json_schema()
    server = SERVER_MESSAGE.json_schema()
    defs: dict[str, Any] = dict(server.pop("$defs"))
    defs["ServerMessage"] = {
        "title": "ServerMessage",
        "description": (
            "Any frame the gateway sends on a V3 socket: exactly one of these, told apart by "
            "msg_type and target (and a resync by having no from_id)."
        ),
        **server,
    }
    return {"$schema": SCHEMA_ID, **root, "$defs": defs}


def schema_text() -> str:
    return json.dumps(schema_document(), indent=2) + "\n"
