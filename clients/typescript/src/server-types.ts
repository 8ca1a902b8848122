// HAND-WRITTEN, NOT GENERATED. Shapes the gateway sends that docs/ws-message-v3.schema.json does
// not describe yet: the server-only `error` reply and its codes, the payloads of presence events,
// of the member list and of `resync`, and the names of the recovery streams. They follow
// docs/v3-frontend-guide.md (sections 5, 7, 9 and 10). When the schema gains them, generate them
// in src/generated.ts and delete this file's copies.

import type { MsgType, WSMessageV3 } from "./generated.js";

/** `payload.code` of an `error` reply (guide section 5). Unknown future codes stay strings. */
export type ErrorCode =
  | "invalid-json"
  | "not-an-object"
  | "unknown-field"
  | "invalid-field"
  | "missing-field"
  | "invalid-version"
  | "invalid-id"
  | "missing-to-id"
  | "server-only-type"
  | "invalid-target"
  | "spoofed-from-id"
  | "spoofed-group-id"
  | "broadcast-forbidden"
  | "publish-failed"
  | "untranslatable"
  | "rate-limited"
  | (string & {});

/** Every `msg_type` a client can receive: the schema's, and the server-only `error`. */
export type ServerMsgType = MsgType | "error";

/** A stream a message belongs to, named after its `target` (guide section 10). */
export type StreamName = "group" | "client" | "broadcast";

/** The position of the last message received on a stream. */
export interface Position {
  epoch: string;
  offset: number;
}

/** Positions by stream, as sent in `?recover=`. */
export type Positions = Partial<Record<StreamName, Position>>;

/** Any frame the server sends: the schema's message with `msg_type` widened to `error`. */
export type ServerMessage = Omit<WSMessageV3, "msg_type"> & { version: "3"; msg_type: ServerMsgType };

/** A `msg` message (any target), as received. */
export type MsgMessage = ServerMessage & { msg_type: "msg" };

/** A `cmd` message (any target), as received; server `resync` notices are not delivered as these. */
export type CmdMessage = ServerMessage & { msg_type: "cmd"; cmd?: string };

/** The echo of a heartbeat. */
export type HeartbeatMessage = ServerMessage & { msg_type: "heartbeat"; target: "echo" };

/** `payload` of a presence event (target `group`). */
export interface PresenceEvent {
  event: "join" | "leave";
  client_id: string;
}

export type PresenceEventMessage = ServerMessage & {
  msg_type: "presence";
  target: "group";
  payload: PresenceEvent;
};

/** The answer to `{"msg_type":"presence","target":"echo"}`: the group's members, sorted. */
export type PresenceListMessage = ServerMessage & {
  msg_type: "presence";
  target: "echo";
  payload: { clients: string[] };
};

/** `payload` of an `error` reply. */
export interface ErrorPayload {
  code: ErrorCode;
  /** With `rate-limited`: seconds until a message is accepted again. */
  retry_after?: number;
  [key: string]: unknown;
}

/** The one reply to a rejected frame; the socket stays open. */
export type ErrorMessage = ServerMessage & {
  msg_type: "error";
  target: "echo";
  msg: string;
  payload: ErrorPayload;
};

/** `payload.reason` of a server `resync` notice (guide section 9), or this client's own. */
export type ResyncReason =
  | "broker-reconnected"
  | "broker-restarted"
  | "history-gap"
  /** Client-side: reconnected without a position for this stream, so it was not replayed. */
  | "no-position"
  | (string & {});

/** `payload` of a server `resync` notice: `{"msg_type":"cmd","cmd":"resync","target":"echo"}`. */
export interface ResyncPayload {
  reason: ResyncReason;
  /** The one stream that may have lost messages; absent: all of them may have. */
  stream?: StreamName;
}

export type ResyncMessage = ServerMessage & {
  msg_type: "cmd";
  cmd: "resync";
  target: "echo";
  payload: ResyncPayload;
};
