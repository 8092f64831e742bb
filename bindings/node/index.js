// memtube for Node.js: lock-free SPSC message rings in shared memory between
// processes, zero copy both ways. A Node-API addon (src/memtube_node.c) over
// the memtube C ABI; this file gives it its JavaScript shape. README.md is
// the guide; index.d.ts the typed reference.
'use strict';

const path = require('node:path');
const native = require(path.join(__dirname, 'build', 'memtube.node'));

// [typeId, generation, copied length, unused], written by the addon after a
// receive (read right after the call, before any other memtube call).
const scratch = new Uint32Array(4);
native.init(scratch);

const [VERSION, ABI_VERSION, HEADER_ABI_VERSION] = native.versions();
if (ABI_VERSION >>> 16 !== HEADER_ABI_VERSION >>> 16) {
  throw new Error(`memtube: the addon was built for ABI ${HEADER_ABI_VERSION >>> 16}.x and linked a library of ABI ${ABI_VERSION >>> 16}.x`);
}

// The C ABI's statuses, by number (memtube.h, enum memtube_status). The
// codes are the status names without the MEMTUBE_ prefix.
const CODES = [
  'OK', 'EMPTY', 'FULL', 'TIMEOUT', 'CLOSED', 'PEER_GONE', 'CANCELLED',
  'TOO_LARGE', 'REPLY_TOO_LARGE', 'CORRUPT', 'HANDSHAKE', 'PROTOCOL',
  'PERMISSION_DENIED', 'ADDR_IN_USE', 'NO_LISTENER', 'NOT_A_SOCKET',
  'NO_SUCH_HANDLE', 'UNSUPPORTED', 'OS', 'INVALID_ARGUMENT', 'BUSY',
  'BAD_REGION', 'ROLE_TAKEN', 'PANIC',
];
const EMPTY = 1, FULL = 2, TIMEOUT = 3, CLOSED = 4, TOO_LARGE = 7;
// sendRecv's result forms (src/memtube_node.c)
const SR_VIEW = 0, SR_WINDOW = 1, SR_COPY = 2;
const FOREVER = -1;
// Symbol.dispose (`using`), or Node's own name for it where the language
// has none yet.
const kDispose = Symbol.dispose ?? Symbol.for('nodejs.dispose');

/** Every failure memtube reports: `code` is the kind ('PEER_GONE', ...). */
class MemtubeError extends Error {
  constructor(status, message, errno) {
    const code = CODES[status] || `UNKNOWN_${status}`;
    super(message ? `${message} (${code})` : code);
    this.name = 'MemtubeError';
    this.code = code;
    this.status = status;
    if (errno) this.errno = errno;
  }
}

// The error of the failed call just made on this thread.
function lastError(status) {
  return new MemtubeError(status, native.lastError(), native.lastOsError());
}

// A failed sendRecv: `sent` says whether the message went out (the
// receive failed: continue with a plain receive, never send it again).
function sendRecvError(status, sent) {
  const e = lastError(status);
  e.sent = sent;
  return e;
}

function asyncError(status, message, errno) {
  return new MemtubeError(status, message, errno);
}

/** Milliseconds (undefined, null or Infinity: no limit) to the ABI's ns. */
function toNs(ms, what = 'timeout') {
  if (ms === undefined || ms === null || ms === Infinity) return FOREVER;
  if (typeof ms !== 'number' || !(ms >= 0)) {
    const e = new RangeError(`${what} must be a number of milliseconds >= 0 (or Infinity), not ${ms}`);
    e.code = 'ERR_OUT_OF_RANGE';
    throw e;
  }
  // Beyond 2^63 ns (292 years) the ABI's int64 would overflow: no limit.
  const ns = Math.round(ms * 1e6);
  return ns >= 2 ** 63 ? FOREVER : ns;
}

/** A byte count (reserve's length): an integer from 0 to 2^53-1. */
function byteCount(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) {
    const e = new RangeError(`${what} must be an integer >= 0, not ${typeof n === 'string' ? JSON.stringify(n) : n}`);
    e.code = 'ERR_OUT_OF_RANGE';
    throw e;
  }
  return n;
}

function typeId(t) {
  if (t === undefined) return 0;
  if (!Number.isInteger(t) || t < 0 || t > 0xffffffff) {
    const e = new RangeError(`typeId must be an integer from 0 to 2^32-1, not ${t}`);
    e.code = 'ERR_OUT_OF_RANGE';
    throw e;
  }
  return t;
}

function bytes(data) {
  return typeof data === 'string' ? Buffer.from(data) : data;
}

const DIRECTIONS = { connectorToListener: 0, listenerToConnector: 1 };

function normalize(o = {}) {
  if (o === null || typeof o !== 'object') throw new TypeError('options must be an object');
  const n = {};
  const num = (k, v) => {
    if (v === undefined) return;
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      const e = new RangeError(`options.${k} must be an integer from 0 to 2^32-1, not ${v}`);
      e.code = 'ERR_OUT_OF_RANGE';
      throw e;
    }
    n[k] = v;
  };
  const bool = (k) => { if (o[k] !== undefined) n[k] = o[k] ? 1 : 0; };
  num('capacity', o.capacity);
  num('maxCapacity', o.maxCapacity);
  bool('duplex'); bool('isolation'); bool('pureSpin'); bool('hugePages'); bool('mlock');
  if (o.direction !== undefined) {
    if (!(o.direction in DIRECTIONS)) {
      throw new TypeError(`options.direction is 'connectorToListener' or 'listenerToConnector', not ${o.direction}`);
    }
    n.direction = DIRECTIONS[o.direction];
  }
  if (o.connectTimeout !== undefined) n.connectTimeoutNs = toNs(o.connectTimeout, 'options.connectTimeout');
  if (o.handshakeTimeout !== undefined) n.handshakeTimeoutNs = toNs(o.handshakeTimeout, 'options.handshakeTimeout');
  const p = o.uidPolicy;
  if (p === undefined || p === 'same') n.uidPolicy = 0;
  else if (p === 'any') n.uidPolicy = 1;
  else if (Array.isArray(p)) {
    n.uidPolicy = 2;
    n.uids = p.map((u) => {
      if (!Number.isInteger(u) || u < 0 || u > 0xffffffff) throw new RangeError(`bad uid ${u}`);
      return u;
    });
  } else throw new TypeError("options.uidPolicy is 'same', 'any' or an array of uids");
  return n;
}

const PEER_STATES = ['alive', 'closed', 'gone'];

// Lazily: worker_threads.markAsUntransferable keeps a view's ArrayBuffer out
// of postMessage transfer lists (a transferred copy could not be detached).
let markAsUntransferable = null;
function untransferable(buf) {
  if (ringMemory !== null) ringMemory.add(buf.buffer);
  if (buf.byteLength === 0) return;
  if (markAsUntransferable === null) markAsUntransferable = require('node:worker_threads').markAsUntransferable || (() => {});
  markAsUntransferable(buf.buffer);
}

// ArrayBuffer.prototype.transfer() / transferToFixedLength() (Node >= 21)
// detach the ArrayBuffer they are called on and move its memory into a NEW
// ArrayBuffer, which the addon does not track and so could never detach: a
// view of ring memory would outlive release()/close() (and read unmapped
// memory after close). Node-API has no way to forbid it (no detach key), so
// this module wraps both methods, once, to refuse the ArrayBuffers of its
// views (ringMemory: every one it hands out). Code that saved the original
// methods before loading memtube bypasses this: don't transfer views.
let ringMemory = null;
for (const name of ['transfer', 'transferToFixedLength']) {
  const original = ArrayBuffer.prototype[name];
  if (typeof original !== 'function') continue;
  if (ringMemory === null) ringMemory = globalThis[Symbol.for('memtube.ringMemory')] ??= new WeakSet();
  if (original[Symbol.for('memtube.guard')]) continue; // another copy of memtube wrapped it
  const rings = ringMemory;
  const guarded = {
    [name](...args) {
      if (rings.has(this)) {
        const e = new TypeError(`memtube: ${name}() of a view of ring memory (it would outlive its message): copy it instead`);
        e.code = 'ERR_INVALID_STATE';
        throw e;
      }
      return original.apply(this, args);
    },
  }[name];
  guarded[Symbol.for('memtube.guard')] = true;
  Object.defineProperty(ArrayBuffer.prototype, name, { value: guarded, writable: true, configurable: true, enumerable: false });
}

// The windows of recvView(): Buffers (Buffer.prototype is in their chain,
// so Buffer.isBuffer, toString, equals, ... work) made in JS over the
// receiver's ring ArrayBuffer, without a Node-API call per message.
class RingView extends Uint8Array {}
Object.setPrototypeOf(RingView.prototype, Buffer.prototype);
const EMPTY_VIEW = new RingView(0);

/**
 * A received message (or call reply) in place in the ring. `data` is a
 * Buffer over the ring memory (no copy), valid until release(), the next
 * receive on the same receiver (or call/serve on its connection), or
 * close(); then its ArrayBuffer is detached: `data.length` becomes 0 and
 * the bytes can no longer be read through it or any view of it.
 */
class Message {
  #owner;
  #core;
  #gen;
  constructor(owner, core, data, typeId, gen, windowed = false) {
    this.#owner = owner; // keeps the handle (and the ring) reachable
    this.#core = core;
    this.#gen = gen;
    /** The payload: a Buffer over ring memory. */
    this.data = data;
    /** The type id the sender gave it. */
    this.typeId = typeId;
    // (a window's ring ArrayBuffer was marked once, when it was made)
    if (!windowed) untransferable(data);
  }

  /** The payload's length (0 once released). */
  get length() { return this.data.length; }

  /** Whether the message was released (its view detached). */
  get released() { return !native.held(this.#core, this.#gen); }

  /** Give the ring space back to the sender; `data` becomes empty. */
  release() {
    const st = native.release(this.#core, this.#gen);
    if (st !== 0) throw lastError(st);
  }

  /** Where the payload is in this process's memory (a BigInt; 0n once
   * released or when empty): inside the shared ring, never a copy. */
  get address() { return native.addressOf(this.data); }

  /** A copy of the bytes that outlives the message. */
  toBuffer() { return Buffer.from(this.data); }

  toString(encoding = 'utf8') { return this.data.toString(encoding); }

  [kDispose]() { this.release(); }
}

function closeHandle(core) {
  native.close(core);
}

// Shared by the classes below: the handle wrapper holding a native core.
class Handle {
  _core;
  constructor(core) { this._core = core; }
  /** True once close() was called (or the connection was split). */
  get closed() { return native.isClosed(this._core); }
}

/** The writing end of a ring. */
class Sender extends Handle {
  #owner;
  #owned;
  #grantLen = -1;
  constructor(core, owner) {
    super(core);
    this.#owner = owner; // a borrowed sender keeps its connection reachable
    this.#owned = owner === null;
  }

  /** Copy `data` in as one message and publish it; waits (off the event
   * loop) for room at most `timeout` ms (default: no limit). */
  send(data, type = 0, { timeout } = {}) {
    data = bytes(data);
    const t = toNs(timeout);
    const ty = typeId(type);
    const st = native.send(this._core, data, ty, 0);
    if (st === 0) return Promise.resolve();
    if (st !== FULL || t === 0) return Promise.reject(st === FULL && t === 0 ? lastError(FULL) : lastError(st));
    return pending((done) => native.sendAsync(this._core, data, ty, t, done), () => undefined);
  }

  /** send() on this thread: blocks the event loop while the ring is full
   * (at most `timeout` ms; 0: throws FULL at once). */
  sendSync(data, type = 0, timeout = Infinity) {
    const st = native.send(this._core, bytes(data), typeId(type), toNs(timeout));
    if (st !== 0) throw lastError(st);
  }

  /** send() without waiting: false when the ring is full now. */
  trySend(data, type = 0) {
    const st = native.send(this._core, bytes(data), typeId(type), 0);
    if (st === 0) return true;
    if (st === FULL) return false;
    throw lastError(st);
  }

  /** Copy a message in without publishing it (FULL when there is no room). */
  sendStaged(data, type = 0) {
    const st = native.sendStaged(this._core, bytes(data), typeId(type));
    if (st !== 0) throw lastError(st);
  }

  /** Publish the staged messages together. */
  publish() {
    const st = native.publish(this._core);
    if (st !== 0) throw lastError(st);
  }

  /** Reserve `n` bytes in the ring (zero copy): a writable Buffer over them,
   * valid until commit() or abort() (then detached). Waits off the event
   * loop for room, at most `timeout` ms. */
  reserve(n, { timeout } = {}) {
    try { byteCount(n, 'reserve length'); } catch (e) { return Promise.reject(e); }
    const t = toNs(timeout);
    const r = native.reserve(this._core, n, 0);
    if (typeof r !== 'number') return Promise.resolve(this.#granted(r));
    if (r !== FULL || t === 0) return Promise.reject(lastError(r));
    return pending((done) => native.reserveAsync(this._core, n, t, done), (buf) => this.#granted(buf));
  }

  /** reserve() on this thread (blocks the event loop while full). */
  reserveSync(n, timeout = Infinity) {
    byteCount(n, 'reserve length');
    const r = native.reserve(this._core, n, toNs(timeout));
    if (typeof r === 'number') throw lastError(r);
    return this.#granted(r);
  }

  #granted(buf) {
    this.#grantLen = buf.length;
    untransferable(buf);
    return buf;
  }

  /** Publish the first `length` bytes of the reserved Buffer (default: all
   * of it) as one message of type `typeId`. The Buffer is detached. */
  commit(length, type = 0) {
    const len = length === undefined ? this.#grantLen : length;
    if (!Number.isInteger(len) || len < 0) {
      const e = new RangeError(`commit length must be an integer >= 0, not ${length}`);
      e.code = 'ERR_OUT_OF_RANGE';
      throw e;
    }
    const st = native.commit(this._core, len, typeId(type));
    if (st !== 0) throw lastError(st);
    this.#grantLen = -1;
  }

  /** Drop the reservation: nothing is sent. The Buffer is detached. */
  abort() {
    const st = native.abort(this._core);
    if (st !== 0) throw lastError(st);
    this.#grantLen = -1;
  }

  /** Send `data` as one message of type `typeId` (as send()), then wait for
   * the next message on `receiver` (as recv()): a lockstep exchange in one
   * call (memtube_sendrecv). `receiver` is this connection's own receiver
   * or any other (split halves). Resolves to a Message; rejects with a
   * MemtubeError whose `sent` says which step failed: false, nothing was
   * sent; true, the message went out and the receive failed (continue
   * with receiver.recv(), never send it again). The wait runs off the event
   * loop (at most `timeout` ms per wait). `data` may be a view of the
   * message `receiver` holds (an echo forwards it); when the ring is full
   * the bytes are copied and that message released before the wait. */
  sendRecv(data, type, receiver, { timeout } = {}) {
    data = bytes(data);
    const ty = typeId(type);
    const rx = asReceiver(receiver);
    const t = toNs(timeout);
    const r = native.sendRecv(this._core, data, ty, rx._core, 0, SR_VIEW);
    if (typeof r !== 'number') return Promise.resolve(new Message(rx, rx._core, r, scratch[0], scratch[1]));
    const sent = scratch[3] === 1;
    if (t === 0 || (sent ? -r !== EMPTY : -r !== FULL)) return Promise.reject(sendRecvError(-r, sent));
    // Wait on the pool, both handles busy meanwhile: for room and the reply
    // (not sent: FULL), or (sent: EMPTY) only for the reply.
    return pending((done, resolve, reject) => native.sendRecvAsync(this._core, data, ty, rx._core, t, (s, buf, extra, wasSent) => {
      if (s === 0) resolve(new Message(rx, rx._core, buf, scratch[0], scratch[1]));
      else {
        const e = asyncError(s, buf, extra);
        e.sent = wasSent;
        reject(e);
      }
    }, sent), undefined, (st) => sendRecvError(st, sent));
  }

  /** sendRecv() on this thread (blocks the event loop; with `pureSpin`
   * connections it spins): the Message received (a detaching view, as
   * recvSync). Throws a MemtubeError with `sent` (see sendRecv). When the
   * send fails, a message `receiver` held is still held (its view valid). */
  sendRecvSync(data, type, receiver, timeout = Infinity) {
    const rx = asReceiver(receiver);
    const r = native.sendRecv(this._core, bytes(data), typeId(type), rx._core, toNs(timeout), SR_VIEW);
    if (typeof r === 'number') throw sendRecvError(-r, scratch[3] === 1);
    return new Message(rx, rx._core, r, scratch[0], scratch[1]);
  }

  /** sendRecvSync() returning the message as a window of the ring, as
   * receiver.recvView() (cheaper; a stale window reads newer bytes). */
  sendRecvView(data, type, receiver, timeout = Infinity) {
    const rx = asReceiver(receiver);
    const r = native.sendRecv(this._core, bytes(data), typeId(type), rx._core, toNs(timeout), SR_WINDOW);
    if (r < 0) throw sendRecvError(-r, scratch[3] === 1);
    return windowMessage(rx, r);
  }

  /** sendRecvSync() copying the message received into `buf` (as
   * receiver.recvInto: each byte read once, released at once) and
   * returning `{length, typeId}`. A message larger than `buf`: TOO_LARGE
   * with `sent` true and `length` (the room it needs), the message kept
   * for the next receive. */
  sendRecvInto(data, type, receiver, buf, timeout = Infinity) {
    const rx = asReceiver(receiver);
    if (!ArrayBuffer.isView(buf) && !(buf instanceof ArrayBuffer)) {
      const e = new TypeError('buf must be a Buffer, TypedArray, DataView or ArrayBuffer');
      e.code = 'ERR_INVALID_ARG_TYPE';
      throw e;
    }
    const r = native.sendRecv(this._core, bytes(data), typeId(type), rx._core, toNs(timeout), SR_COPY, buf);
    if (r < 0) throw copyError(sendRecvError(-r, scratch[3] === 1), r);
    return { length: r, typeId: scratch[0] };
  }

  /** The largest payload this ring takes. */
  get maxPayload() { return sizes(this._core).txMaxPayload; }
  /** The ring's data-area bytes. */
  get capacity() { return sizes(this._core).txCapacity; }
  /** The ring's counters (may be slightly stale). */
  stats() { return stats(this._core, 0); }
  /** 'alive', 'closed' or 'gone'; probe: ask the kernel now (else cached). */
  peerState({ probe = true } = {}) { return peerState(this._core, 0, probe); }
  isPeerAlive() { return this.peerState() === 'alive'; }
  setNontemporalThreshold(bytes) { check(native.setNontemporalThreshold(this._core, bytes)); }
  setLinePadding(on) { check(native.setLinePadding(this._core, !!on)); }

  /** Close a sender from Connection.split() (the peer gets CLOSED after the
   * last message). A connection's own sender closes with the connection. */
  close() {
    if (!this.#owned) throw new MemtubeError(19, "a connection's sender closes with its connection (close the connection, or split() it)");
    closeHandle(this._core);
  }
  [kDispose]() { if (this.#owned) this.close(); }
}

/** The reading end of a ring. Async iteration receives until the peer
 * closes: `for await (const msg of receiver) { ... }`. */
class Receiver extends Handle {
  #owner;
  #owned;
  constructor(core, owner) {
    super(core);
    this.#owner = owner;
    this.#owned = owner === null;
  }

  _ring = null; // the ring window's ArrayBuffer (recvView), made once

  #message(buf) {
    return new Message(this, this._core, buf, scratch[0], scratch[1]);
  }

  /** recvSync() with a cheaper view: `data` is a window of ONE ArrayBuffer
   * over this receiver's whole ring, made once (no Node-API object per
   * message). The catch: release() (or the next receive) does NOT empty
   * it: a stale window reads whatever the ring holds there later (newer
   * messages). It is emptied (detached) with the receiver, so it never
   * reads unmapped memory. Read-only like every received view. */
  recvView(timeout = Infinity) {
    const r = native.recvWindow(this._core, toNs(timeout));
    if (r < 0) throw lastError(-r);
    return windowMessage(this, r);
  }

  /** The next message, waited for off the event loop (at most `timeout` ms;
   * default no limit). The previous message is released first. Rejects
   * with CLOSED / PEER_GONE after the last message. */
  recv({ timeout } = {}) {
    const t = toNs(timeout);
    const r = native.recv(this._core, 0);
    if (typeof r !== 'number') return Promise.resolve(this.#message(r));
    if (r !== EMPTY) return Promise.reject(lastError(r));
    if (t === 0) return Promise.reject(lastError(EMPTY));
    return pending((done) => native.recvAsync(this._core, t, done), (buf, ty) => new Message(this, this._core, buf, ty, scratch[1]));
  }

  /** recv() on this thread: blocks the event loop up to `timeout` ms
   * (0: throws EMPTY when nothing is there). With `pureSpin` connections
   * this is the spin variant for latency work. */
  recvSync(timeout = Infinity) {
    const r = native.recv(this._core, toNs(timeout));
    if (typeof r === 'number') throw lastError(r);
    return new Message(this, this._core, r, scratch[0], scratch[1]);
  }

  /** The next message if one is there now, else null. */
  tryRecv() {
    const r = native.recv(this._core, 0);
    if (typeof r !== 'number') return this.#message(r);
    if (r === EMPTY) return null;
    throw lastError(r);
  }

  /** Receive the next message by copying it into `buf` (each byte read
   * once: for senders you do not trust), on this thread. Returns
   * `{length, typeId}`; TOO_LARGE (err.length = the size needed, the
   * message kept) when `buf` is too small. */
  recvInto(buf, timeout = Infinity) {
    const r = native.recvCopy(this._core, buf, toNs(timeout));
    if (r < 0) throw copyError(lastError(-r), r);
    return { length: r, typeId: scratch[0] };
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      let m;
      try {
        m = await this.recv();
      } catch (e) {
        if (e.code === 'CLOSED') return;
        throw e;
      }
      yield m;
    }
  }

  /** The largest payload this ring carries. */
  get maxPayload() { return sizes(this._core).rxMaxPayload; }
  stats() { return stats(this._core, 1); }
  peerState({ probe = true } = {}) { return peerState(this._core, 1, probe); }
  isPeerAlive() { return this.peerState() === 'alive'; }

  /** Close a receiver from Connection.split() (a held message is released,
   * the peer's sender gets CLOSED). */
  close() {
    if (!this.#owned) throw new MemtubeError(19, "a connection's receiver closes with its connection (close the connection, or split() it)");
    closeHandle(this._core);
  }
  [kDispose]() { if (this.#owned) this.close(); }
}

// A serve handler whose request view (ring memory, detached when the
// handler returns) cannot be transferred out of the addon's reach.
function guardRequest(handler) {
  return (type, request) => {
    untransferable(request);
    return handler(type, request);
  };
}

function check(st) { if (st !== 0) throw lastError(st); }

// The promise of an async native call: start(done, resolve, reject) queues
// it with `done`, the callback (status, result, extra) that resolves with
// ok(result, extra) or rejects with the failure; a status returned instead
// (the call could not start) rejects with fail(status).
function pending(start, ok, fail = lastError) {
  return new Promise((resolve, reject) => {
    const done = (s, r, extra) => (s === 0 ? resolve(ok(r, extra)) : reject(asyncError(s, r, extra)));
    const st = start(done, resolve, reject);
    if (typeof st === 'number') reject(fail(st));
  });
}

// The failure of a copying receive (-r): TOO_LARGE carries the length needed.
function copyError(e, r) {
  if (-r === TOO_LARGE) e.length = scratch[2];
  return e;
}

// A Message from native.recvWindow / sendRecv(SR_WINDOW) on receiver `rx`:
// a window of the ring (r = its offset), or a detaching view (r = a Buffer)
// when the ring has no window.
function windowMessage(rx, r) {
  if (typeof r !== 'number') return new Message(rx, rx._core, r, scratch[0], scratch[1]);
  const len = scratch[2];
  if (len === 0) return new Message(rx, rx._core, EMPTY_VIEW, scratch[0], scratch[1], true);
  let ring = rx._ring;
  if (ring === null) {
    ring = rx._ring = native.ringBuffer(rx._core);
    // a transferred copy of the ring could outlive its mapping
    untransferable(new Uint8Array(ring, 0, 1));
  }
  return new Message(rx, rx._core, new RingView(ring, r, len), scratch[0], scratch[1], true);
}

function asReceiver(r) {
  if (!(r instanceof Receiver)) {
    const e = new TypeError('receiver must be a memtube Receiver (connection.receiver or a split half)');
    e.code = 'ERR_INVALID_ARG_TYPE';
    throw e;
  }
  return r;
}

function sizes(core) {
  const r = native.sizes(core);
  if (typeof r === 'number') throw lastError(r);
  return r;
}

function stats(core, side) {
  const r = native.stats(core, side);
  if (typeof r === 'number') throw lastError(r);
  return r;
}

function peerState(core, side, probe) {
  const r = native.peerState(core, side, !!probe);
  if (r < 0) throw lastError(-r);
  return PEER_STATES[r];
}

/** A connection: one ring (one-way) or two (duplex). One call at a time
 * (BUSY otherwise); split() for independent sender and receiver. */
class Connection extends Handle {
  #sender = null;
  #receiver = null;

  /** This side's sender (NO_SUCH_HANDLE on the receiving side of a one-way
   * connection). Borrowed: it closes with the connection. */
  get sender() {
    return (this.#sender ??= (this.#side(1, 'send'), new Sender(this._core, this)));
  }

  /** This side's receiver (NO_SUCH_HANDLE on the sending side). */
  get receiver() {
    return (this.#receiver ??= (this.#side(2, 'receive'), new Receiver(this._core, this)));
  }

  // Throws unless this end has the side `bit` (1 sends, 2 receives).
  #side(bit, verb) {
    const s = native.sides(this._core);
    if (s < 0) throw lastError(-s);
    if (!(s & bit)) throw new MemtubeError(16, `this side of the connection does not ${verb}`);
  }

  /** The peer's credentials when it connected: {pid, uid, gid}. */
  get peer() {
    const r = native.peerCred(this._core);
    if (typeof r === 'number') throw lastError(r);
    return r;
  }

  /** The largest request body call() sends (duplex connections). */
  get maxRequest() { return sizes(this._core).maxRequest ?? 0; }

  peerState({ probe = true } = {}) { return peerState(this._core, 2, probe); }
  isPeerAlive() { return this.peerState() === 'alive'; }

  /** Send a request and wait (off the event loop) for its reply, a Message
   * held like a received one. Duplex connections. */
  call(type, data, { timeout } = {}) {
    const t = toNs(timeout);
    const ty = typeId(type);
    return pending((done) => native.callAsync(this._core, ty, bytes(data), t, done), (buf, rty) => new Message(this, this._core, buf, rty, scratch[1]));
  }

  /** call() on this thread (blocks the event loop until the reply). */
  callSync(type, data, timeout = Infinity) {
    const r = native.call(this._core, typeId(type), bytes(data), toNs(timeout));
    if (typeof r === 'number') throw lastError(r);
    return new Message(this, this._core, r, scratch[0], scratch[1]);
  }

  /** Serve one request on this thread: `handler(typeId, request)` returns
   * the reply: undefined (empty), bytes or a string (with the request's
   * type id), or `[typeId, bytes]`. `request` is a Buffer over the ring,
   * valid during the handler only. A handler that throws: the caller gets
   * PROTOCOL and the exception propagates here. Waits at most `timeout` ms
   * (0: EMPTY when no request is there). */
  serveOneSync(handler, timeout = Infinity) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    const st = native.serveOne(this._core, toNs(timeout), guardRequest(handler));
    if (st !== 0) throw lastError(st);
  }

  /** Serve requests until the peer closes (resolves) or an error
   * (rejects), without blocking the event loop: a pool thread waits for
   * each request, and `handler` (as for serveOneSync) runs on this thread.
   * A handler that throws: the caller gets PROTOCOL and the promise rejects
   * with the exception. close() ends it (CANCELLED). */
  serve(handler) {
    if (typeof handler !== 'function') throw new TypeError('handler must be a function');
    // s === -1: the handler threw `r`.
    return pending((done, resolve, reject) => native.serveAsync(this._core, guardRequest(handler), (s, r, extra) => (s === -1 ? reject(r) : done(s, r, extra))), () => undefined);
  }

  /** Serve requests on this thread until the peer closes (returns) or an
   * error (throws). Blocks the event loop: run it in a worker thread or a
   * process of its own. */
  serveSync(handler) {
    for (;;) {
      try {
        this.serveOneSync(handler);
      } catch (e) {
        if (e.code === 'CLOSED') return;
        throw e;
      }
    }
  }

  /** sender.sendRecv(data, typeId, receiver) on this duplex connection's
   * own sender and receiver. */
  sendRecv(data, type, options) { return this.sender.sendRecv(data, type, this.receiver, options); }
  /** sender.sendRecvSync on this connection's own sender and receiver. */
  sendRecvSync(data, type, timeout) { return this.sender.sendRecvSync(data, type, this.receiver, timeout); }
  /** sender.sendRecvView on this connection's own sender and receiver. */
  sendRecvView(data, type, timeout) { return this.sender.sendRecvView(data, type, this.receiver, timeout); }
  /** sender.sendRecvInto on this connection's own sender and receiver. */
  sendRecvInto(data, type, buf, timeout) { return this.sender.sendRecvInto(data, type, this.receiver, buf, timeout); }

  /** Owned halves that can be used at the same time (and closed apart):
   * `{sender, receiver}` (null for a side this end does not have). The
   * connection is consumed; a held message is released and an outstanding
   * grant aborted first. */
  split() {
    const r = native.split(this._core);
    if (typeof r === 'number') throw lastError(r);
    return {
      sender: r[0] === null ? null : new Sender(r[0], null),
      receiver: r[1] === null ? null : new Receiver(r[1], null),
    };
  }

  /** Close: the peer gets CLOSED after the last message. A pending call on
   * it rejects with CANCELLED (within ~50 ms). Idempotent. */
  close() { closeHandle(this._core); }
  [kDispose]() { this.close(); }
}

/** A listening socket. */
class Listener extends Handle {
  constructor(core, address) {
    super(core);
    /** The address it listens on. */
    this.address = address;
  }

  /** Accept one connection, waiting off the event loop at most `timeout` ms
   * (default no limit). */
  accept({ timeout } = {}) {
    const t = toNs(timeout);
    return pending((done) => native.acceptAsync(this._core, t, done), (c) => new Connection(c));
  }

  /** accept() on this thread (blocks the event loop). */
  acceptSync(timeout = Infinity) {
    const r = native.acceptSync(this._core, toNs(timeout));
    if (typeof r === 'number') throw lastError(r);
    return new Connection(r);
  }

  /** The listening socket's descriptor (readable: a peer is waiting). */
  get fd() {
    const fd = native.listenerFd(this._core);
    if (fd < 0) throw lastError(-fd);
    return fd;
  }

  /** Stop listening (the socket file is removed); a pending accept rejects
   * with CANCELLED within ~50 ms. Accepted connections live on. */
  close() { closeHandle(this._core); }
  [kDispose]() { this.close(); }
}

/** Listen on `address`: a socket path, or "@name" (Linux abstract). */
function listen(address, options) {
  if (typeof address !== 'string') throw new TypeError('address must be a string');
  const r = native.listen(address, normalize(options));
  if (typeof r === 'number') throw lastError(r);
  return new Listener(r, address);
}

/** Connect to the listener at `address` (the handshake runs off the event
 * loop). NO_LISTENER when nothing listens there. */
function connect(address, options) {
  if (typeof address !== 'string') throw new TypeError('address must be a string');
  const n = normalize(options);
  return pending((done) => native.connectAsync(address, n, done), (c) => new Connection(c));
}

/** connect() on this thread (blocks the event loop for the handshake). */
function connectSync(address, options) {
  if (typeof address !== 'string') throw new TypeError('address must be a string');
  const r = native.connectSync(address, normalize(options));
  if (typeof r === 'number') throw lastError(r);
  return new Connection(r);
}

/** Where the bytes of a Buffer or TypedArray are in this process (BigInt;
 * 0n when empty or detached): a grant or message view lies in the ring. */
function addressOf(view) { return native.addressOf(view); }

module.exports = {
  addressOf,
  listen, connect, connectSync,
  Listener, Connection, Sender, Receiver, Message, MemtubeError,
  version: VERSION,
  abiVersion: ABI_VERSION,
  codes: Object.freeze(CODES.slice(1)),
};
