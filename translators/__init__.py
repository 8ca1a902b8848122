"""Translators between the legacy V2 dialect and WS_Message_V3."""

__all__: list[str] = []
