// Names for parts of the generated message types (src/generated.ts, from the schema), and the
// types of this client's own bookkeeping. No frame shape is written here: they are generated.

import type {
  BroadcastMessage,
  DirectMessage,
  EchoMessage,
  ErrorPayload,
  GroupMessage,
  PresenceEventPayload,
  ResyncPayload,
  ServerMessage,
} from "./generated.js";

/** `payload.code` of an `error` reply (guide section 5). */
export type ErrorCode = ErrorPayload["code"];

/** Every `msg_type` a client can receive: the schema's, and the server-only `error`. */
export type ServerMsgType = ServerMessage["msg_type"];

/** A stream a message belongs to, named after its `target` (guide section 10). */
export type StreamName = NonNullable<ResyncPayload["stream"]>;

/**
 * Why messages may have been lost: the server's `resync` reasons, and this client's own
 * `no-position` (it reconnected without a position for that stream, so it was not replayed).
 */
export type ResyncReason = ResyncPayload["reason"] | "no-position";

/** `payload` of a presence event (the generated `PresenceEventPayload`). */
export type PresenceEvent = PresenceEventPayload;

/** A `msg` or `cmd` a client or the platform sent, on any target. */
export type DeliveredMessage = GroupMessage | DirectMessage | BroadcastMessage | EchoMessage;

/** A `msg` message (any target), as received. */
export type MsgMessage = DeliveredMessage & { msg_type: "msg" };

/** A `cmd` message (any target), as received; server `resync` notices are not delivered as these. */
export type CmdMessage = DeliveredMessage & { msg_type: "cmd" };

/** The position of the last message received on a stream. */
export interface Position {
  epoch: string;
  offset: number;
}

/** Positions by stream, as sent in `?recover=`. */
export type Positions = Partial<Record<StreamName, Position>>;
