// GENERATED FILE: do not edit. Source: docs/ws-message-v3.schema.json
// Regenerate with `npm run gen` (scripts/gen-types.mjs); `npm run build` fails while it is stale.

/** Values of `msg_type` in the schema. */
export type MsgType = "msg" | "cmd" | "heartbeat" | "presence";
export const MSG_TYPES: readonly MsgType[] = ["msg","cmd","heartbeat","presence"];

/** Values of `target` in the schema. */
export type Target = "direct" | "group" | "broadcast" | "echo";
export const TARGETS: readonly Target[] = ["direct","group","broadcast","echo"];

/**
 * One V3 message. Unknown fields, wrong types and foreign versions are rejected.
 * JSON Schema title: `WS_Message_V3`.
 */
export interface WSMessageV3 {
  version?: "3";
  msg_type: MsgType;
  target: Target;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id?: string | null;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  to_id?: string | null;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id?: string | null;
  cmd?: string | null;
  msg?: string | null;
  payload?: { [key: string]: unknown } | null;
  /** Schema: format `date-time`. */
  sent_at?: string | null;
  /**
   * position in its stream (server-filled)
   * Schema: minimum 1.
   */
  offset?: number | null;
  /** the stream's history generation (server-filled) */
  epoch?: string | null;
}

/** Every field the schema allows (anything else is `unknown-field`). */
export const FIELDS: readonly (keyof WSMessageV3)[] = ["version","msg_type","target","from_id","to_id","group_id","cmd","msg","payload","sent_at","offset","epoch"];

/** The fields a message must have. */
export const REQUIRED_FIELDS: readonly (keyof WSMessageV3)[] = ["msg_type","target"];

/** The regular expression (as a string) each patterned field must match. */
export const FIELD_PATTERNS: { readonly [field: string]: string } = {
  "from_id": "^(?!-?\\d+$)[A-Za-z0-9_-]{1,64}$",
  "to_id": "^(?!-?\\d+$)[A-Za-z0-9_-]{1,64}$",
  "group_id": "^(?!-?\\d+$)[A-Za-z0-9_-]{1,64}$"
};
