// The binding's API in one process: connections, every way to send and
// receive, views and their lifetimes, call/serve, errors, threads.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const mt = require('..');
const { addr, sleep } = require('./helpers');

/** A connected pair: [listener's side, connector's side]. */
async function pair(opts = {}) {
  const a = addr();
  const l = mt.listen(a, opts);
  const [server, client] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, opts)]);
  l.close();
  return [server, client];
}

function rejectsCode(p, code) {
  return assert.rejects(p, (e) => {
    assert.ok(e instanceof mt.MemtubeError, `a MemtubeError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof mt.MemtubeError, `a MemtubeError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

test('listen, accept and connect with options; one-way by default', async () => {
  const [s, c] = await pair({ capacity: 4096 });
  assert.equal(c.sender.capacity, 4096);
  assert.equal(c.sender.maxPayload, 4096 / 2 - 8);
  assert.equal(s.receiver.maxPayload, 4096 / 2 - 8);
  throwsCode(() => c.receiver, 'NO_SUCH_HANDLE');
  throwsCode(() => s.sender, 'NO_SUCH_HANDLE');
  assert.equal(c.peer.pid, process.pid);
  assert.equal(s.peer.uid, process.getuid());
  c.sender.sendSync('x');
  assert.equal(s.receiver.recvSync(1000).toString(), 'x');
  c.close();
  s.close();
  assert.equal(c.closed, true);
});

test('direction listenerToConnector reverses a one-way connection', async () => {
  const [s, c] = await pair({ direction: 'listenerToConnector' });
  s.sender.sendSync(Buffer.from([1, 2, 3]), 5);
  const m = c.receiver.recvSync(1000);
  assert.deepEqual([...m.data], [1, 2, 3]);
  assert.equal(m.typeId, 5);
  s.close();
  c.close();
});

test('setup errors: NO_LISTENER, ADDR_IN_USE, HANDSHAKE, TIMEOUT, bad options', async () => {
  const a = addr();
  await rejectsCode(mt.connect(a), 'NO_LISTENER');
  throwsCode(() => mt.connectSync(a), 'NO_LISTENER');
  // the C library's message, kept past the frees that follow the failure
  assert.throws(() => mt.connectSync(a), (e) => e.message.includes(a) && e.errno === 111);
  await assert.rejects(mt.connect(a), (e) => e.message.includes(a));
  assert.throws(() => mt.listen(addr(), { capacity: 1000 }), /power of two/);
  const l = mt.listen(a, { duplex: true });
  throwsCode(() => mt.listen(a), 'ADDR_IN_USE');
  // duplex mismatch: the handshake is refused on both sides
  await Promise.all([
    rejectsCode(l.accept({ timeout: 5000 }), 'HANDSHAKE'),
    rejectsCode(mt.connect(a, { duplex: false, handshakeTimeout: 2000 }), 'HANDSHAKE'),
  ]);
  const t0 = Date.now();
  await rejectsCode(l.accept({ timeout: 100 }), 'TIMEOUT');
  assert.ok(Date.now() - t0 >= 90);
  throwsCode(() => l.acceptSync(0), 'TIMEOUT');
  assert.throws(() => l.acceptSync(0), /timed out/);
  assert.ok(l.fd > 2);
  l.close();
  throwsCode(() => l.fd, 'CLOSED');
  throwsCode(() => mt.listen(addr(), { capacity: 1000 }), 'INVALID_ARGUMENT');
  assert.throws(() => mt.listen(addr(), { direction: 'sideways' }), TypeError);
  assert.throws(() => mt.listen(addr(), { capacity: -1 }), RangeError);
  assert.throws(() => mt.listen(42), TypeError);
  assert.throws(() => mt.listen(addr(), { uidPolicy: 'nobody' }), TypeError);
  const l2 = mt.listen(addr(), { uidPolicy: [process.getuid()] });
  l2.close();
});

test('the uid policy refuses a peer that is not listed', async () => {
  const a = addr();
  const l = mt.listen(a, { uidPolicy: [] });
  await Promise.all([
    rejectsCode(l.accept({ timeout: 5000 }), 'PERMISSION_DENIED'),
    assert.rejects(mt.connect(a, { handshakeTimeout: 2000 }), (e) => e instanceof mt.MemtubeError),
  ]);
  l.close();
});

test('copying send, trySend, FULL, TOO_LARGE, EMPTY, TIMEOUT, CLOSED', async () => {
  const [s, c] = await pair({ capacity: 256 });
  const tx = c.sender;
  const rx = s.receiver;
  assert.equal(rx.tryRecv(), null);
  throwsCode(() => rx.recvSync(0), 'EMPTY');
  throwsCode(() => rx.recvSync(30), 'TIMEOUT');
  await rejectsCode(rx.recv({ timeout: 0 }), 'EMPTY');
  await rejectsCode(rx.recv({ timeout: 30 }), 'TIMEOUT');
  throwsCode(() => tx.sendSync(Buffer.alloc(tx.maxPayload + 1)), 'TOO_LARGE');
  let sent = 0;
  while (tx.trySend(Buffer.alloc(100), sent)) sent++;
  assert.ok(sent >= 1);
  throwsCode(() => tx.sendSync(Buffer.alloc(100), 0, 0), 'FULL');
  throwsCode(() => tx.sendSync(Buffer.alloc(100), 0, 20), 'TIMEOUT');
  await rejectsCode(tx.send(Buffer.alloc(100), 0, { timeout: 0 }), 'FULL');
  await rejectsCode(tx.send(Buffer.alloc(100), 0, { timeout: 30 }), 'TIMEOUT');
  // an async send that waits for room (off the event loop) and gets it
  const p = tx.send(Buffer.from('after'), 99, { timeout: 5000 });
  for (let i = 0; i < sent; i++) {
    const m = await rx.recv({ timeout: 1000 });
    assert.equal(m.typeId, i);
    assert.equal(m.length, 100);
  }
  await p;
  assert.equal((await rx.recv({ timeout: 1000 })).toString(), 'after');
  c.close();
  await rejectsCode(rx.recv({ timeout: 1000 }), 'CLOSED');
  throwsCode(() => rx.recvSync(0), 'CLOSED');
  throwsCode(() => tx.sendSync('x'), 'CLOSED'); // our own handle, closed
  s.close();
});

test('data types: strings, TypedArrays, DataViews, ArrayBuffers; bad arguments', async () => {
  const [s, c] = await pair();
  c.sender.sendSync(new Uint16Array([0x0201, 0x0403]));
  c.sender.sendSync(new DataView(new Uint8Array([9, 8]).buffer));
  c.sender.sendSync(new Uint8Array([7]).buffer);
  c.sender.sendSync('');
  assert.deepEqual([...s.receiver.recvSync(1000).data], [1, 2, 3, 4]);
  assert.deepEqual([...s.receiver.recvSync(1000).data], [9, 8]);
  assert.deepEqual([...s.receiver.recvSync(1000).data], [7]);
  const empty = s.receiver.recvSync(1000);
  assert.equal(empty.length, 0);
  assert.equal(empty.address, 0n);
  assert.throws(() => c.sender.sendSync(42), TypeError);
  assert.throws(() => c.sender.sendSync('x', -1), RangeError);
  assert.throws(() => c.sender.sendSync('x', 2 ** 32), RangeError);
  assert.throws(() => c.sender.sendSync('x', 0, -5), RangeError);
  assert.throws(() => s.receiver.recvSync(NaN), RangeError);
  c.close();
  s.close();
});

test('reserve + commit is zero copy; abort sends nothing; views are detached after', async () => {
  const [s, c] = await pair({ capacity: 4096 });
  const tx = c.sender;
  const g = tx.reserveSync(64);
  assert.equal(g.length, 64);
  assert.ok(mt.addressOf(g) !== 0n);
  // one grant at a time: every other writing call is BUSY
  throwsCode(() => tx.reserveSync(8), 'BUSY');
  throwsCode(() => tx.sendSync('x'), 'BUSY');
  g.write('hello');
  tx.commit(5, 3);
  assert.equal(g.length, 0, 'the grant view is detached after commit');
  assert.equal(g.buffer.byteLength, 0);
  throwsCode(() => tx.commit(1), 'INVALID_ARGUMENT'); // nothing outstanding
  const m = s.receiver.recvSync(1000);
  assert.equal(m.toString(), 'hello');
  assert.equal(m.typeId, 3);

  const g2 = await tx.reserve(16);
  g2.fill(1);
  throwsCode(() => tx.commit(17), 'INVALID_ARGUMENT'); // more than reserved: still outstanding
  assert.equal(g2.length, 16);
  tx.abort();
  assert.equal(g2.length, 0, 'the grant view is detached after abort');
  tx.abort(); // nothing outstanding: fine
  assert.equal(s.receiver.tryRecv(), null, 'abort sent nothing');
  const g3 = tx.reserveSync(10);
  g3.write('0123456789');
  tx.commit(); // all of it, type 0
  const m3 = s.receiver.recvSync(1000);
  assert.equal(m3.toString(), '0123456789');
  assert.equal(m3.typeId, 0);
  c.close();
  s.close();
});

test('send_staged + publish: nothing visible before publish, all of it after', async () => {
  const [s, c] = await pair();
  for (let i = 0; i < 5; i++) c.sender.sendStaged(`m${i}`, i);
  assert.equal(s.receiver.tryRecv(), null);
  c.sender.publish();
  for (let i = 0; i < 5; i++) {
    const m = s.receiver.tryRecv();
    assert.equal(m.toString(), `m${i}`);
    assert.equal(m.typeId, i);
  }
  assert.equal(s.receiver.tryRecv(), null);
  c.close();
  s.close();
});

test('received views are ring memory, not copies', async () => {
  const cap = 4096;
  const [s, c] = await pair({ capacity: cap });
  const seen = new Map();
  let lo = null, hi = null, repeats = 0;
  for (let i = 0; i < 200; i++) {
    c.sender.sendSync(Buffer.alloc(100, i & 255), i);
    const m = s.receiver.recvSync(1000);
    const a = m.address;
    // the Buffer's bytes are where memtube put the message
    assert.equal(mt.addressOf(m.data), a);
    assert.equal(mt.addressOf(new Uint8Array(m.data.buffer)), a, 'views of one message share memory');
    assert.equal(m.data.buffer.byteLength, 100, 'an ArrayBuffer of the message alone (external), not a pool slice');
    lo = lo === null || a < lo ? a : lo;
    hi = hi === null || a > hi ? a : hi;
    if (seen.has(a)) repeats++;
    seen.set(a, i);
    assert.equal(m.data[99], i & 255);
    m.release();
  }
  // 200 messages of 100 bytes went through a 4096-byte ring: every view lay
  // inside one ring-sized window, and the ring's memory came round again
  assert.ok(hi - lo < BigInt(cap), `addresses span ${hi - lo} bytes`);
  assert.ok(repeats > 100, `${repeats} addresses reused`);
  c.close();
  s.close();
});

test('release: stale views read nothing, a stale release leaves the new message alone', async () => {
  const [s, c] = await pair({ capacity: 4096 });
  const tx = c.sender;
  const rx = s.receiver;
  tx.sendSync('first', 1);
  tx.sendSync('second', 2);
  const m1 = rx.recvSync(1000);
  const view = m1.data;
  const other = new Uint8Array(view.buffer, 1, 2);
  assert.equal(m1.released, false);
  assert.equal(other.length, 2);
  const m2 = rx.recvSync(1000); // releases m1 first
  assert.equal(m1.released, true);
  assert.equal(view.length, 0);
  assert.equal(other.length, 0);
  assert.equal(view[0], undefined);
  assert.equal(m1.address, 0n);
  m1.release(); // stale: does not release m2
  assert.equal(m2.released, false);
  assert.equal(m2.toString(), 'second');
  m2.release();
  m2.release(); // twice: harmless
  assert.equal(m2.released, true);
  assert.equal(m2.length, 0);
  // Symbol.dispose (what `using m = rx.recvSync()` calls) releases
  tx.sendSync('disposed');
  const m3 = rx.recvSync(1000);
  assert.equal(m3.toString(), 'disposed');
  m3[Symbol.dispose ?? Symbol.for('nodejs.dispose')]();
  assert.equal(m3.released, true);
  assert.equal(m3.length, 0);
  // close detaches a held view: it never reads unmapped memory
  tx.sendSync('held at close');
  const m4 = rx.recvSync(1000);
  const v4 = m4.data;
  s.close();
  assert.equal(v4.length, 0);
  assert.equal(m4.released, true);
  c.close();
});

test('views of the held message passed back in: refused or copied, never read after release', async () => {
  const [s, c] = await pair({ duplex: true });
  c.sender.sendSync('0123456789', 1);
  let m = s.receiver.recvSync(1000);
  // recvInto releases the held message first: its view is empty by then
  c.sender.sendSync('abc', 2);
  assert.throws(() => s.receiver.recvInto(m.data, 1000), (e) => e.code === 'TOO_LARGE' && e.length === 3);
  m = s.receiver.recvSync(1000); // kept by TOO_LARGE
  assert.throws(() => s.callSync(1, m.data, 1000), (e) => e.code === 'INVALID_ARGUMENT');
  assert.equal(m.toString(), 'abc', 'refused before anything was released');
  const p = s.call(5, m.data.subarray(1), { timeout: 5000 }); // copied before the release
  assert.equal(m.data.length, 0);
  c.serveOneSync((ty, req) => [ty, Buffer.concat([req, Buffer.from('!')])], 5000);
  assert.equal((await p).toString(), 'bc!');
  c.close();
  s.close();
});

test('release() while the connection is busy detaches now and releases after', async () => {
  const [s, c] = await pair({ duplex: true, capacity: 256 });
  c.sender.sendSync('held', 1);
  const m = s.receiver.recvSync(1000);
  const big = Buffer.alloc(s.sender.maxPayload);
  while (s.sender.trySend(big));
  const pending = s.sender.send(big, 2, { timeout: 5000 }); // waits on the pool
  m.release();
  assert.equal(m.data.length, 0);
  assert.equal(m.released, true);
  let done = false;
  pending.then(() => { done = true; });
  while (!done) if (c.receiver.tryRecv() === null) await sleep(1); // drain: room for the send
  await pending;
  c.sender.sendSync('next', 3);
  assert.equal(s.receiver.recvSync(1000).toString(), 'next');
  c.close();
  s.close();
});

test('a view cannot be transferred to a worker (it could not be detached there)', async () => {
  const { MessageChannel } = require('node:worker_threads');
  const [s, c] = await pair();
  c.sender.sendSync('stay');
  const m = s.receiver.recvSync(1000);
  const ch = new MessageChannel();
  try {
    ch.port1.postMessage(m.data, [m.data.buffer]);
  } catch {
    // refused: fine as well
  }
  assert.equal(m.data.length, 4, 'still ours (not detached by a transfer)');
  assert.equal(m.toString(), 'stay');
  ch.port1.close();
  m.release();
  assert.equal(m.data.length, 0);
  c.close();
  s.close();
});

test('call and serve: sync server, async and sync calls, handler errors', async () => {
  const [s, c] = await pair({ duplex: true });
  assert.ok(c.maxRequest > 0);
  // the async call waits on the thread pool while this thread serves
  const p = c.call(7, 'ping', { timeout: 5000 });
  let reqView = null;
  s.serveOneSync((ty, req) => {
    assert.equal(ty, 7);
    assert.equal(req.toString(), 'ping');
    reqView = req;
    throwsCode(() => s.receiver.tryRecv(), 'BUSY'); // no re-entry from the handler
    return [ty + 1, Buffer.from('pong')];
  }, 5000);
  assert.equal(reqView.length, 0, 'the request view is detached after the handler');
  const r = await p;
  assert.equal(r.typeId, 8);
  assert.equal(r.toString(), 'pong');
  // string and undefined replies keep the request's type id
  const p2 = c.call(3, 'a');
  s.serveOneSync(() => 'text');
  const r2 = await p2;
  assert.equal(r2.toString(), 'text');
  assert.equal(r2.typeId, 3);
  const p3 = c.call(4, Buffer.alloc(0));
  s.serveOneSync(() => undefined);
  const r3 = await p3;
  assert.equal(r3.length, 0);
  assert.equal(r3.typeId, 4);
  // a handler that throws: the caller gets PROTOCOL, the server the exception
  const p4 = c.call(5, 'boom');
  assert.throws(() => s.serveOneSync(() => { throw new Error('handler failed'); }), /handler failed/);
  await rejectsCode(p4, 'PROTOCOL');
  const p5 = c.call(6, 'bad');
  assert.throws(() => s.serveOneSync(() => 42), TypeError);
  await rejectsCode(p5, 'PROTOCOL');
  throwsCode(() => s.serveOneSync(() => {}, 0), 'EMPTY');
  throwsCode(() => s.serveOneSync(() => {}, 20), 'TIMEOUT');
  await rejectsCode(c.call(1, 'x', { timeout: 50 }), 'TIMEOUT');
  throwsCode(() => c.callSync(1, Buffer.alloc(c.maxRequest + 1)), 'TOO_LARGE');
  c.close();
  throwsCode(() => s.serveOneSync(() => {}), 'CLOSED');
  s.close();
  const [s1, c1] = await pair();
  await rejectsCode(c1.call(1, 'x'), 'NO_SUCH_HANDLE');
  s1.close();
  c1.close();
});

test('serve() answers calls without blocking the event loop; errors reject it', async () => {
  const [s, c] = await pair({ duplex: true });
  let ticks = 0;
  const iv = setInterval(() => ticks++, 5);
  let seen = 0;
  const served = s.serve((ty, req) => {
    seen++;
    assert.throws(() => s.receiver.tryRecv(), (e) => e.code === 'BUSY');
    return [ty * 2, Buffer.from(req).reverse()];
  });
  for (let i = 1; i <= 20; i++) {
    const r = await c.call(i, `req${i}`, { timeout: 5000 });
    assert.equal(r.typeId, i * 2);
    assert.equal(r.toString(), [...`req${i}`].reverse().join(""));
  }
  await new Promise((r) => setTimeout(r, 100)); // idle: the server waits on the pool
  const r = await c.call(1, 'again', { timeout: 5000 });
  assert.equal(r.toString(), 'niaga');
  c.close();
  await served; // resolves when the peer closes
  clearInterval(iv);
  assert.equal(seen, 21);
  assert.ok(ticks >= 10, `${ticks} ticks`);
  s.close();

  const [s2, c2] = await pair({ duplex: true });
  await Promise.all([
    assert.rejects(s2.serve(() => { throw new Error('no such method'); }), /no such method/),
    rejectsCode(c2.call(1, 'x', { timeout: 5000 }), 'PROTOCOL'),
  ]);
  await Promise.all([
    assert.rejects(s2.serve(() => 17), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_RETURN_VALUE'),
    rejectsCode(c2.call(1, 'x', { timeout: 5000 }), 'PROTOCOL'),
  ]);
  const pending = s2.serve(() => 'never');
  await sleep(20);
  s2.close();
  await rejectsCode(pending, 'CANCELLED');
  c2.close();
});

test('one pending call per handle: a second one is BUSY, never a race', async () => {
  const [s, c] = await pair({ duplex: true });
  const rx = s.receiver;
  const p = rx.recv({ timeout: 5000 });
  await rejectsCode(rx.recv(), 'BUSY');
  throwsCode(() => rx.recvSync(0), 'BUSY');
  throwsCode(() => s.sender.sendSync('x'), 'BUSY'); // the connection's other side too
  throwsCode(() => rx.stats(), 'BUSY');
  c.sender.sendSync('done');
  assert.equal((await p).toString(), 'done');
  s.sender.sendSync('free again');
  assert.equal(c.receiver.recvSync(1000).toString(), 'free again');
  c.close();
  s.close();
});

test('split: both directions at once, closed apart', async () => {
  const [s, c] = await pair({ duplex: true });
  const { sender, receiver } = s.split();
  assert.equal(s.closed, true);
  throwsCode(() => s.sender, 'CLOSED');
  const p = receiver.recv({ timeout: 5000 });
  sender.sendSync('out'); // while the receiver waits on the pool
  assert.equal(c.receiver.recvSync(1000).toString(), 'out');
  c.sender.sendSync('in');
  assert.equal((await p).toString(), 'in');
  sender.close();
  await rejectsCode(c.receiver.recv({ timeout: 1000 }), 'CLOSED');
  c.sender.sendSync('still');
  assert.equal(receiver.recvSync(1000).toString(), 'still');
  receiver.close();
  assert.throws(() => c.sender.close(), (e) => e.code === 'INVALID_ARGUMENT');
  c.close();
  const one = await pair();
  const halves = one[1].split();
  assert.equal(halves.receiver, null);
  halves.sender.close();
  one[0].close();
});

test('close() ends a pending receive, accept and call with CANCELLED', async () => {
  const [s, c] = await pair({ duplex: true });
  const p = s.receiver.recv();
  const t0 = Date.now();
  s.close();
  await rejectsCode(p, 'CANCELLED');
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(s.closed, true);
  c.close();
  const [s2, c2] = await pair({ duplex: true });
  const pc = c2.call(1, 'nobody serves');
  await sleep(20);
  const t1 = Date.now();
  c2.close();
  await rejectsCode(pc, 'CANCELLED');
  assert.ok(Date.now() - t1 < 1000);
  s2.close();
  const l = mt.listen(addr());
  const pa = l.accept();
  const t2 = Date.now();
  l.close();
  await rejectsCode(pa, 'CANCELLED');
  assert.ok(Date.now() - t2 < 1000);
});

test('async iteration receives until the peer closes', async () => {
  const [s, c] = await pair();
  for (let i = 0; i < 10; i++) c.sender.sendSync(`n${i}`, i);
  c.close();
  const got = [];
  for await (const m of s.receiver) got.push(`${m.typeId}:${m}`);
  assert.equal(got.length, 10);
  assert.equal(got[9], '9:n9');
  s.close();
});

test('recvInto copies (for untrusted senders); TOO_LARGE keeps the message', async () => {
  const [s, c] = await pair();
  c.sender.sendSync('0123456789', 4);
  const small = Buffer.alloc(4);
  assert.throws(() => s.receiver.recvInto(small, 1000), (e) => e.code === 'TOO_LARGE' && e.length === 10);
  const big = Buffer.alloc(64);
  assert.deepEqual(s.receiver.recvInto(big, 1000), { length: 10, typeId: 4 });
  assert.equal(big.subarray(0, 10).toString(), '0123456789');
  assert.throws(() => s.receiver.recvInto(big, 0), (e) => e.code === 'EMPTY');
  c.close();
  s.close();
});

test('stats and peer state', async () => {
  const [s, c] = await pair();
  for (let i = 0; i < 3; i++) c.sender.sendSync(Buffer.alloc(10));
  const st = c.sender.stats();
  assert.equal(st.messagesCommitted, 3);
  assert.equal(st.bytesCommitted, 30);
  for (const k of ['fullEvents', 'producerWakes', 'messagesReleased', 'bytesReleased', 'consumerWakes']) assert.equal(typeof st[k], 'number');
  s.receiver.recvSync(1000);
  s.receiver.recvSync(1000);
  assert.equal(typeof s.receiver.stats().messagesReleased, 'number'); // released lazily
  assert.equal(c.peerState(), 'alive');
  assert.equal(c.sender.isPeerAlive(), true);
  assert.equal(s.receiver.peerState({ probe: false }), 'alive');
  c.close();
  assert.equal(s.receiver.recvSync(1000).length, 10); // the last one still comes
  assert.throws(() => s.receiver.recvSync(1000), (e) => e.code === 'CLOSED');
  assert.equal(s.receiver.peerState(), 'closed');
  assert.equal(s.isPeerAlive(), false);
  s.close();
  assert.ok(mt.version.length > 0);
  assert.equal(mt.abiVersion >>> 16, 1);
  assert.ok(mt.codes.includes('PEER_GONE'));
});

test('sender settings', async () => {
  const [s, c] = await pair();
  c.sender.setNontemporalThreshold(1024);
  c.sender.setLinePadding(true);
  c.sender.reserveSync(8);
  assert.throws(() => c.sender.setLinePadding(false), (e) => e.code === 'BUSY');
  c.sender.abort();
  c.close();
  s.close();
});
