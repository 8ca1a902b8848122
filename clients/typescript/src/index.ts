// @aether/ws-client: a client for the Aether gateway's V3 WebSocket protocol.
export { connect, isVisionId, recoverParam, socketUrl } from "./client.js";
export type {
  AetherClient,
  ClientEvents,
  ClientState,
  ClientStats,
  CloseInfo,
  ConnectOptions,
  EventName,
  Handler,
  OpenInfo,
  ResyncInfo,
  SendBody,
  SendInput,
  SendResult,
  Sender,
  Timers,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { NO_RETRY_CODES, backoffDelay, shouldRetry } from "./policy.js";
export type { ReconnectOptions } from "./policy.js";
export { FIELDS, FIELD_PATTERNS, MSG_TYPES, REQUIRED_FIELDS, TARGETS } from "./generated.js";
export type {
  BroadcastMessage,
  DirectMessage,
  EchoMessage,
  ErrorMessage,
  ErrorPayload,
  GroupMessage,
  HeartbeatMessage,
  MsgType,
  PresenceEventMessage,
  PresenceEventPayload,
  PresenceListMessage,
  PresenceListPayload,
  ResyncMessage,
  ResyncPayload,
  ServerMessage,
  Target,
  WSMessageV3,
} from "./generated.js";
export type * from "./derived-types.js";
