"""Translators between the legacy V2 dialect and WS_Message_V3, and the legacy ID mapping."""

from .dialect import V2Dialect
from .id_mapping import IdMapper, ResolvedId, canonical_legacy
from .id_stores import IdStore, MemoryIdStore, Namespace, RedisIdStore
from .tags import legacy_tags
from .upstream import IdLookup, UpstreamIdLookup
from .v2_inbound import V2Frame, V3Frame, parse_v2_frame, v3_json
from .v2_outbound import LegacyLookup, render_v2, render_v2_error
from .wiring import open_id_mapper

__all__ = [
    "IdLookup",
    "IdMapper",
    "IdStore",
    "LegacyLookup",
    "MemoryIdStore",
    "Namespace",
    "RedisIdStore",
    "ResolvedId",
    "UpstreamIdLookup",
    "V2Dialect",
    "V2Frame",
    "V3Frame",
    "canonical_legacy",
    "legacy_tags",
    "open_id_mapper",
    "parse_v2_frame",
    "render_v2",
    "render_v2_error",
    "v3_json",
]
