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

// What the server sends: `$defs` of the schema.

/**
 * A message of the broadcast stream, to every connection on the platform.
 * JSON Schema: `#/$defs/BroadcastMessage`.
 */
export interface BroadcastMessage {
  version: "3";
  msg_type: "msg" | "cmd";
  target: "broadcast";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id?: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  to_id?: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id?: string;
  cmd?: string;
  msg?: string;
  payload?: { [key: string]: unknown };
  /** Schema: format `date-time`. */
  sent_at: string;
  /**
   * position in its stream, from 1
   * Schema: minimum 1.
   */
  offset?: number;
  /**
   * the stream's history generation
   * Schema: pattern `^[A-Za-z0-9_-]{1,64}$`.
   */
  epoch?: string;
}

/**
 * A message of the recipient's client stream; ``group_id`` is the sender's group.
 * JSON Schema: `#/$defs/DirectMessage`.
 */
export interface DirectMessage {
  version: "3";
  msg_type: "msg" | "cmd";
  target: "direct";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id?: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  to_id: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id?: string;
  cmd?: string;
  msg?: string;
  payload?: { [key: string]: unknown };
  /** Schema: format `date-time`. */
  sent_at: string;
  /**
   * position in its stream, from 1
   * Schema: minimum 1.
   */
  offset?: number;
  /**
   * the stream's history generation
   * Schema: pattern `^[A-Za-z0-9_-]{1,64}$`.
   */
  epoch?: string;
}

/**
 * A ``msg``/``cmd`` the connection sent itself with target ``echo``, stamped.
 * JSON Schema: `#/$defs/EchoMessage`.
 */
export interface EchoMessage {
  version: "3";
  msg_type: "msg" | "cmd";
  target: "echo";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  to_id?: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id: string;
  cmd?: string;
  msg?: string;
  payload?: { [key: string]: unknown };
  /** Schema: format `date-time`. */
  sent_at: string;
}

/**
 * The one reply to a rejected frame (delivered to no one); the socket stays open.
 * JSON Schema: `#/$defs/ErrorMessage`.
 */
export interface ErrorMessage {
  version: "3";
  msg_type: "error";
  target: "echo";
  /** for people; program against payload.code */
  msg: string;
  payload: ErrorPayload;
}

/**
 * `payload` of an error reply: the stable code, and detail for some codes.
 * JSON Schema: `#/$defs/ErrorPayload`.
 */
export interface ErrorPayload {
  code: "invalid-json" | "not-an-object" | "unknown-field" | "invalid-field" | "missing-field" | "invalid-version" | "invalid-id" | "missing-to-id" | "server-only-type" | "invalid-target" | "spoofed-from-id" | "spoofed-group-id" | "broadcast-forbidden" | "publish-failed" | "untranslatable" | "rate-limited";
  /** with rate-limited: seconds until a message is accepted again */
  retry_after?: number;
}

/**
 * A message of the group stream, from a member (``from_id``) or the platform (none).
 * JSON Schema: `#/$defs/GroupMessage`.
 */
export interface GroupMessage {
  version: "3";
  msg_type: "msg" | "cmd";
  target: "group";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id?: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  to_id?: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id: string;
  cmd?: string;
  msg?: string;
  payload?: { [key: string]: unknown };
  /** Schema: format `date-time`. */
  sent_at: string;
  /**
   * position in its stream, from 1
   * Schema: minimum 1.
   */
  offset?: number;
  /**
   * the stream's history generation
   * Schema: pattern `^[A-Za-z0-9_-]{1,64}$`.
   */
  epoch?: string;
}

/**
 * The echo of a heartbeat.
 * JSON Schema: `#/$defs/HeartbeatMessage`.
 */
export interface HeartbeatMessage {
  version: "3";
  msg_type: "heartbeat";
  target: "echo";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id: string;
  /** Schema: format `date-time`. */
  sent_at: string;
}

/**
 * A member came online (its first connection) or went offline (its last); group stream.
 * JSON Schema: `#/$defs/PresenceEventMessage`.
 */
export interface PresenceEventMessage {
  version: "3";
  msg_type: "presence";
  target: "group";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id: string;
  payload: PresenceEventPayload;
  /** Schema: format `date-time`. */
  sent_at: string;
  /**
   * position in its stream, from 1
   * Schema: minimum 1.
   */
  offset?: number;
  /**
   * the stream's history generation
   * Schema: pattern `^[A-Za-z0-9_-]{1,64}$`.
   */
  epoch?: string;
}

/**
 * `payload` of a presence event: who came or went.
 * JSON Schema: `#/$defs/PresenceEventPayload`.
 */
export interface PresenceEventPayload {
  event: "join" | "leave";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  client_id: string;
}

/**
 * The answer to ``{"msg_type": "presence", "target": "echo"}``: who is online.
 * JSON Schema: `#/$defs/PresenceListMessage`.
 */
export interface PresenceListMessage {
  version: "3";
  msg_type: "presence";
  target: "echo";
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  from_id: string;
  /** Schema: pattern `^(?!-?\d+$)[A-Za-z0-9_-]{1,64}$`. */
  group_id: string;
  payload: PresenceListPayload;
  /** Schema: format `date-time`. */
  sent_at: string;
}

/**
 * `payload` of the member list.
 * JSON Schema: `#/$defs/PresenceListPayload`.
 */
export interface PresenceListPayload {
  /** the group's members online, sorted */
  clients: Array<string>;
}

/**
 * Messages may have been lost: refetch. No ``from_id``, unlike an echoed ``resync``.
 * JSON Schema: `#/$defs/ResyncMessage`.
 */
export interface ResyncMessage {
  version: "3";
  msg_type: "cmd";
  target: "echo";
  cmd: "resync";
  payload: ResyncPayload;
  /** Schema: format `date-time`. */
  sent_at: string;
}

/**
 * `payload` of a resync notice: why, and which stream (absent: all).
 * JSON Schema: `#/$defs/ResyncPayload`.
 */
export interface ResyncPayload {
  reason: "broker-reconnected" | "broker-restarted" | "history-gap";
  /** the one stream that may have lost messages; absent: all of them */
  stream?: "group" | "client" | "broadcast";
}

/**
 * Any frame the gateway sends on a V3 socket: exactly one of these, told apart by msg_type and target (and a resync by having no from_id).
 * JSON Schema: `#/$defs/ServerMessage`.
 */
export type ServerMessage =
  | GroupMessage
  | DirectMessage
  | BroadcastMessage
  | EchoMessage
  | HeartbeatMessage
  | PresenceListMessage
  | PresenceEventMessage
  | ResyncMessage
  | ErrorMessage;

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
