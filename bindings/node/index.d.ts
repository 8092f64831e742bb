// Type declarations of memtube for Node.js (index.js). README.md is the guide.
/// <reference types="node" />

/** The failure kinds, as `MemtubeError.code` (the C ABI's status names). */
export type ErrorCode =
  | 'EMPTY' | 'FULL' | 'TIMEOUT' | 'CLOSED' | 'PEER_GONE' | 'CANCELLED'
  | 'TOO_LARGE' | 'REPLY_TOO_LARGE' | 'CORRUPT' | 'HANDSHAKE' | 'PROTOCOL'
  | 'PERMISSION_DENIED' | 'ADDR_IN_USE' | 'NO_LISTENER' | 'NOT_A_SOCKET'
  | 'NO_SUCH_HANDLE' | 'UNSUPPORTED' | 'OS' | 'INVALID_ARGUMENT' | 'BUSY'
  | 'BAD_REGION' | 'ROLE_TAKEN' | 'PANIC';

/** Every failure memtube reports. Wrong JS argument types throw TypeError /
 * RangeError (Node's `ERR_INVALID_ARG_TYPE` / `ERR_OUT_OF_RANGE`) instead. */
export class MemtubeError extends Error {
  readonly code: ErrorCode;
  /** The C ABI's status number. */
  readonly status: number;
  /** The errno behind an `OS` failure. */
  readonly errno?: number;
  /** From sendRecv*: true when the message went out and the receive
   * failed (continue with a plain receive, never send it again); false when
   * nothing was sent. */
  readonly sent?: boolean;
  /** With TOO_LARGE from recvInto: the bytes the message needs. */
  length?: number;
}

/** Bytes memtube can send: copied in during the call. */
export type Bytes = ArrayBufferView | ArrayBuffer | string;

export type PeerState = 'alive' | 'closed' | 'gone';

/** A timeout in milliseconds; undefined or Infinity: no limit; 0: do not wait. */
export type Millis = number;

export interface Options {
  /** Data-area bytes per ring: a power of two, 64 to 2^31 (default 65536);
   * the largest message is half of it less 8 bytes. */
  capacity?: number;
  /** The largest ring a connector accepts from a listener (default 64 MiB). */
  maxCapacity?: number;
  /** Two rings, one each way (call/serve need it). Must match the listener's. */
  duplex?: boolean;
  /** Each side maps the other's pages read-only (default true). */
  isolation?: boolean;
  /** Waits only spin, never sleep: lowest latency, burns a core per wait. */
  pureSpin?: boolean;
  hugePages?: boolean;
  mlock?: boolean;
  /** Which side sends in a one-way connection (default 'connectorToListener'). */
  direction?: 'connectorToListener' | 'listenerToConnector';
  /** Who may connect: 'same' uid (default), 'any', or a list of uids. */
  uidPolicy?: 'same' | 'any' | number[];
  /** How long connect waits for the listener's backlog (ms, default 5000). */
  connectTimeout?: Millis;
  /** How long either side waits for the handshake (ms, default 5000). */
  handshakeTimeout?: Millis;
}

export interface WaitOptions {
  /** Milliseconds; default: no limit. */
  timeout?: Millis;
}

export interface Stats {
  messagesCommitted: number;
  bytesCommitted: number;
  fullEvents: number;
  producerWakes: number;
  messagesReleased: number;
  bytesReleased: number;
  consumerWakes: number;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

/** A serve handler's reply: empty, bytes (with the request's type id), or
 * `[typeId, bytes]`. */
export type Reply = undefined | null | Bytes | [number, Bytes | undefined | null];
/** `request` is a view of the ring, valid during the call only. */
export type Handler = (typeId: number, request: Buffer) => Reply;

/** A received message or call reply, in place in the ring. */
export class Message {
  private constructor();
  /** The payload over ring memory (no copy); detached (length 0) once the
   * message is released. */
  readonly data: Buffer;
  readonly typeId: number;
  readonly length: number;
  readonly released: boolean;
  /** The payload's address in this process (0n once released or empty). */
  readonly address: bigint;
  /** Give the space back to the sender; `data` becomes empty. Harmless twice. */
  release(): void;
  /** A copy of the bytes that outlives the message. */
  toBuffer(): Buffer;
  toString(encoding?: BufferEncoding): string;
  [Symbol.dispose](): void;
}

export class Sender {
  private constructor();
  readonly closed: boolean;
  readonly maxPayload: number;
  readonly capacity: number;
  /** Copy in and publish; waits off the event loop while the ring is full. */
  send(data: Bytes, typeId?: number, options?: WaitOptions): Promise<void>;
  /** send() on this thread (blocks the event loop while full). */
  sendSync(data: Bytes, typeId?: number, timeout?: Millis): void;
  /** Send, then wait for the next message on `receiver` (memtube_sendrecv),
   * off the event loop; both handles are busy until it settles. A failure
   * has `sent`. `data` may be the view of the message `receiver` holds. */
  sendRecv(data: Bytes, typeId: number, receiver: Receiver, options?: WaitOptions): Promise<Message>;
  /** sendRecv() on this thread: a detaching view, as recvSync(). */
  sendRecvSync(data: Bytes, typeId: number, receiver: Receiver, timeout?: Millis): Message;
  /** sendRecvSync() returning a ring window, as Receiver.recvView(). */
  sendRecvView(data: Bytes, typeId: number, receiver: Receiver, timeout?: Millis): Message;
  /** sendRecvSync() copying the message into `buf` (at least
   * receiver.maxPayload bytes) and releasing it. */
  sendRecvInto(data: Bytes, typeId: number, receiver: Receiver, buf: ArrayBufferView | ArrayBuffer, timeout?: Millis): { length: number; typeId: number };
  /** false when the ring is full now. */
  trySend(data: Bytes, typeId?: number): boolean;
  sendStaged(data: Bytes, typeId?: number): void;
  publish(): void;
  /** A writable Buffer over `n` bytes of the ring, valid until commit/abort. */
  reserve(n: number, options?: WaitOptions): Promise<Buffer>;
  reserveSync(n: number, timeout?: Millis): Buffer;
  /** Publish the first `length` bytes (default: all) of the reservation. */
  commit(length?: number, typeId?: number): void;
  abort(): void;
  stats(): Stats;
  peerState(options?: { probe?: boolean }): PeerState;
  isPeerAlive(): boolean;
  setNontemporalThreshold(bytes: number): void;
  setLinePadding(on: boolean): void;
  /** Close a sender from split(). */
  close(): void;
  [Symbol.dispose](): void;
}

export class Receiver implements AsyncIterable<Message> {
  private constructor();
  readonly closed: boolean;
  readonly maxPayload: number;
  /** The next message, waited for off the event loop; releases the previous. */
  recv(options?: WaitOptions): Promise<Message>;
  /** recv() on this thread (blocks the event loop; spins with pureSpin). */
  recvSync(timeout?: Millis): Message;
  /** The next message if one is there now, else null. */
  tryRecv(): Message | null;
  /** Copy the next message into `buf` (each byte read once). */
  recvInto(buf: ArrayBufferView | ArrayBuffer, timeout?: Millis): { length: number; typeId: number };
  /** recvSync() as a window of one ArrayBuffer over the whole ring (no
   * Node-API object per message). release() does NOT empty the window: a
   * stale one reads newer ring bytes. Emptied when the receiver closes. */
  recvView(timeout?: Millis): Message;
  [Symbol.asyncIterator](): AsyncIterator<Message>;
  stats(): Stats;
  peerState(options?: { probe?: boolean }): PeerState;
  isPeerAlive(): boolean;
  /** Close a receiver from split(). */
  close(): void;
  [Symbol.dispose](): void;
}

export class Connection {
  private constructor();
  readonly closed: boolean;
  /** Borrowed: closes with the connection. NO_SUCH_HANDLE on the receiving side. */
  readonly sender: Sender;
  readonly receiver: Receiver;
  readonly peer: PeerCred;
  readonly maxRequest: number;
  peerState(options?: { probe?: boolean }): PeerState;
  isPeerAlive(): boolean;
  call(typeId: number, data: Bytes, options?: WaitOptions): Promise<Message>;
  callSync(typeId: number, data: Bytes, timeout?: Millis): Message;
  /** sender.sendRecv(data, typeId, receiver) on this connection's own handles. */
  sendRecv(data: Bytes, typeId: number, options?: WaitOptions): Promise<Message>;
  sendRecvSync(data: Bytes, typeId: number, timeout?: Millis): Message;
  sendRecvView(data: Bytes, typeId: number, timeout?: Millis): Message;
  sendRecvInto(data: Bytes, typeId: number, buf: ArrayBufferView | ArrayBuffer, timeout?: Millis): { length: number; typeId: number };
  /** Serve until the peer closes, off the event loop (the handler runs on it). */
  serve(handler: Handler): Promise<void>;
  serveOneSync(handler: Handler, timeout?: Millis): void;
  serveSync(handler: Handler): void;
  split(): { sender: Sender | null; receiver: Receiver | null };
  close(): void;
  [Symbol.dispose](): void;
}

export class Listener {
  private constructor();
  readonly address: string;
  readonly closed: boolean;
  readonly fd: number;
  accept(options?: WaitOptions): Promise<Connection>;
  acceptSync(timeout?: Millis): Connection;
  close(): void;
  [Symbol.dispose](): void;
}

/** Listen on a socket path or "@name" (Linux abstract name). */
export function listen(address: string, options?: Options): Listener;
/** Connect (the handshake runs off the event loop). */
export function connect(address: string, options?: Options): Promise<Connection>;
export function connectSync(address: string, options?: Options): Connection;
/** Where a view's bytes are in this process (0n when empty or detached). */
export function addressOf(view: ArrayBufferView | ArrayBuffer): bigint;

/** The library's version ("0.1.0"). */
export const version: string;
/** The loaded library's ABI version: major << 16 | minor. */
export const abiVersion: number;
export const codes: readonly ErrorCode[];
