// sendRecv (memtube_sendrecv: send, then receive, in one call) in all its
// forms, and the ring windows of recvView.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const readline = require('node:readline');
const mt = require('..');
const { addr, collect, rustInterop, sleep } = require('./helpers');

async function pair(opts = {}) {
  const a = addr('sr');
  const l = mt.listen(a, { duplex: true, ...opts });
  const [server, client] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, { duplex: true, ...opts })]);
  l.close();
  return [server, client];
}

function isCode(code, sent) {
  return (e) => {
    assert.ok(e instanceof mt.MemtubeError, `a MemtubeError, got ${e}`);
    assert.equal(e.code, code, e.message);
    if (sent !== undefined) assert.equal(e.sent, sent, `sent, for ${e.message}`);
    return true;
  };
}

// Message i: length 1 + (i * 37) % max, byte j = (i * 13 + j * 7) & 255.
function payload(i, max) {
  const b = Buffer.alloc(1 + ((i * 37) % max));
  for (let j = 0; j < b.length; j++) b[j] = (i * 13 + j * 7) & 255;
  return b;
}

// Every message the other side has now, as strings.
function drain(rx) {
  const got = [];
  for (let m; (m = rx.tryRecv()) !== null;) got.push(m.toString());
  return got;
}

// Receives exactly n filler messages (100 bytes of 2, type 1) and no more, so
// a message the peer sends as soon as room appears stays for the caller.
function takeFillers(rx, n) {
  for (let i = 0; i < n; i++) {
    const m = rx.tryRecv();
    assert.ok(m !== null, `filler ${i} of ${n} is there`);
    assert.equal(m.typeId, 1);
    assert.ok(m.data.equals(Buffer.alloc(100, 2)));
    m.release();
  }
}

test('sendRecv in lockstep against the Rust echo: every byte, every form', async (t) => {
  const interop = rustInterop();
  if (!interop) {
    if (process.env.CI === 'true') throw new Error('CI: the Rust interop peer is not built');
    return t.skip('the Rust interop peer is not built');
  }
  const a = addr('echo');
  const echo = spawn(interop, ['--listen', a, '--echo', '--capacity', '8192', '--timeout', '10'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: echo.stdout });
  const it = lines[Symbol.asyncIterator]();
  assert.equal((await it.next()).value, 'listening');
  const c = mt.connectSync(a, { duplex: true, capacity: 8192 });
  const max = c.sender.maxPayload;
  const into = Buffer.alloc(c.receiver.maxPayload);
  let bytes = 0;
  const n = 1200;
  for (let i = 0; i < n; i++) {
    const p = payload(i, max);
    let data, typeId;
    switch (i % 4) {
      case 0: { const m = c.sendRecvSync(p, i, 5000); data = m.data; typeId = m.typeId; break; }
      case 1: { const m = c.sendRecvView(p, i, 5000); data = m.data; typeId = m.typeId; break; }
      case 2: { const r = c.sendRecvInto(p, i, into, 5000); data = into.subarray(0, r.length); typeId = r.typeId; break; }
      default: { const m = await c.sendRecv(p, i, { timeout: 5000 }); data = m.data; typeId = m.typeId; }
    }
    assert.equal(typeId, i);
    assert.equal(data.length, p.length, `echo ${i}: length`);
    assert.ok(p.equals(data), `echo ${i}: bytes`);
    bytes += p.length;
  }
  c.close();
  const closing = (await it.next()).value;
  assert.match(closing, new RegExp(`^ok count=${n} bytes=${bytes} `));
  await new Promise((r) => echo.on('exit', r));
});

test('sendRecv between two Node ends: a Promise echo forwarding its held message, split halves', async () => {
  const [s, c] = await pair({ capacity: 4096 });
  const { sender: etx, receiver: erx } = s.split();
  const n = 300;
  const echo = (async () => {
    let m = await erx.recv({ timeout: 5000 });
    for (let k = 1; ; k++) {
      try {
        // forward the view of the held message itself (zero copy)
        m = await etx.sendRecv(m.data, m.typeId, erx, { timeout: 5000 });
      } catch (e) {
        assert.equal(e.sent, true, e.message);
        assert.equal(e.code, 'CLOSED');
        return k;
      }
    }
  })();
  const max = c.sender.maxPayload;
  for (let i = 0; i < n; i++) {
    const p = payload(i, max);
    const m = await c.sendRecv(p, i, { timeout: 5000 });
    assert.equal(m.typeId, i);
    assert.ok(p.equals(m.data), `echo ${i}`);
  }
  c.close();
  assert.equal(await echo, n);
  etx.close();
  erx.close();
});

test('a failed send: nothing sent (sent false), the held message still held and readable', async () => {
  const [s, c] = await pair({ capacity: 1024 });
  s.sender.sendSync('held', 9);
  const m = c.receiver.recvSync(1000);
  let queued = 0;
  while (c.sender.trySend(Buffer.alloc(100, 1), 1)) queued++;
  assert.throws(() => c.sendRecvSync('x', 2, 0), isCode('FULL', false));
  assert.throws(() => c.sendRecvSync('x', 2, 20), isCode('TIMEOUT', false));
  assert.throws(() => c.sendRecvView('x', 2, 0), isCode('FULL', false));
  assert.throws(() => c.sendRecvInto('x', 2, Buffer.alloc(c.receiver.maxPayload), 0), isCode('FULL', false));
  // forwarding the held message itself when the ring is full: still held
  assert.throws(() => c.sendRecvSync(m.data, m.typeId, 0), isCode('FULL', false));
  await assert.rejects(c.sendRecv('x', 2, { timeout: 0 }), isCode('FULL', false));
  assert.equal(m.released, false);
  assert.equal(m.toString(), 'held');
  assert.equal(m.typeId, 9);
  // the other side got exactly what trySend queued, never 'x'
  const got = drain(s.receiver);
  assert.equal(got.length, queued);
  assert.ok(got.every((g) => g.length === 100));
  s.close();
  c.close();
});

test('the receive failed after the send: sent true, the message went out once, a plain receive continues', async () => {
  const [s, c] = await pair();
  s.sender.sendSync('first');
  const m = c.receiver.recvSync(1000);
  assert.throws(() => c.sendRecvSync('ping', 7, 20), isCode('TIMEOUT', true));
  assert.equal(m.released, true, 'the held message was released by the send');
  assert.equal(m.length, 0, 'and its view detached');
  assert.throws(() => c.sendRecvView('ping2', 8, 0), isCode('EMPTY', true));
  assert.throws(() => c.sendRecvInto('ping3', 9, Buffer.alloc(c.receiver.maxPayload), 0), isCode('EMPTY', true));
  await assert.rejects(c.sendRecv('ping4', 10, { timeout: 30 }), isCode('TIMEOUT', true));
  assert.deepEqual(drain(s.receiver), ['ping', 'ping2', 'ping3', 'ping4']);
  // continue with a plain receive: the reply arrives, nothing was sent twice
  s.sender.sendSync('pong');
  assert.equal(c.receiver.recvSync(1000).toString(), 'pong');
  assert.deepEqual(drain(s.receiver), []);
  s.close();
  c.close();
});

test('sendRecv (Promise) waits for room and for the reply off the event loop, in slices, sending once', async () => {
  const [s, c] = await pair({ capacity: 1024 });
  let queued = 0;
  while (c.sender.trySend(Buffer.alloc(100, 2), 1)) queued++;
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const p = c.sendRecv('req', 3, { timeout: 2000 });
  await sleep(120); // longer than a slice: the pool thread retries
  assert.ok(ticks >= 5, `the event loop ran (${ticks} ticks)`);
  takeFillers(s.receiver, queued); // room now; then 'req' (never drained with them)
  let got = null;
  for (let i = 0; i < 100 && got === null; i++) {
    got = s.receiver.tryRecv();
    if (got === null) await sleep(5);
  }
  assert.equal(got.toString(), 'req');
  await sleep(120); // the reply's wait also spans slices
  s.sender.sendSync('rep', 4);
  const m = await p;
  clearInterval(timer);
  assert.equal(m.toString(), 'rep');
  assert.equal(m.typeId, 4);
  assert.deepEqual(drain(s.receiver), [], 'req went out once');
  // a pool wait whose receive times out after the send: sent true
  let queued2 = 0;
  while (c.sender.trySend(Buffer.alloc(100, 2), 1)) queued2++;
  const q = c.sendRecv('req2', 5, { timeout: 200 });
  await sleep(60);
  takeFillers(s.receiver, queued2);
  await assert.rejects(q, isCode('TIMEOUT', true));
  assert.deepEqual(drain(s.receiver), ['req2']);
  s.close();
  c.close();
});

test('sendRecv misuse: closed handles, BUSY on either handle, bad arguments', async () => {
  const [s, c] = await pair();
  assert.throws(() => c.sender.sendRecvSync('x', 1, {}), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => c.sendRecvSync('x', -1), { code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => c.sendRecvInto('x', 1, 'not bytes', 0), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.deepEqual(drain(s.receiver), [], 'nothing sent for a bad buf');
  // a reply larger than buf: TOO_LARGE after the send, the reply kept
  s.sender.sendSync('a longer reply', 6);
  assert.throws(() => c.sendRecvInto('x', 1, Buffer.alloc(4), 0), (e) => isCode('TOO_LARGE', true)(e) && e.length === 14);
  assert.deepEqual(drain(s.receiver), ['x']);
  const small = Buffer.alloc(64);
  assert.deepEqual(c.receiver.recvInto(small, 0), { length: 14, typeId: 6 });
  assert.equal(small.toString('utf8', 0, 14), 'a longer reply');
  // a copy into the held message's view (read-only ring memory) is refused,
  // after the send (sent true), never a fault
  s.sender.sendSync('view');
  const v = c.receiver.recvSync(1000);
  assert.throws(() => c.sendRecvInto('y', 1, v.data, 0), isCode('INVALID_ARGUMENT', true));
  const big = Buffer.alloc(c.receiver.maxPayload);
  assert.deepEqual(drain(s.receiver), ['y']);

  // split halves: a pending receive makes the receiver BUSY for sendRecv,
  // a pending sendRecv makes both halves BUSY
  const { sender: tx, receiver: rx } = c.split();
  const pending = rx.recv({ timeout: 5000 });
  assert.throws(() => rx.recvInto(big, 0), isCode('BUSY'));
  assert.throws(() => tx.sendRecvSync('y', 1, rx, 0), isCode('BUSY', false));
  assert.throws(() => tx.sendRecvView('y', 1, rx, 0), isCode('BUSY', false));
  await assert.rejects(tx.sendRecv('y', 1, rx), isCode('BUSY', false));
  assert.deepEqual(drain(s.receiver), [], 'nothing sent while BUSY');
  s.sender.sendSync('z');
  assert.equal((await pending).toString(), 'z');
  const p = tx.sendRecv('q', 2, rx, { timeout: 5000 });
  assert.throws(() => rx.recvSync(0), isCode('BUSY'));
  assert.throws(() => tx.sendSync('w'), isCode('BUSY'));
  assert.throws(() => tx.sendRecvSync('w', 1, rx, 0), isCode('BUSY', false));
  assert.equal(s.receiver.recvSync(1000).toString(), 'q');
  s.sender.sendSync('a');
  assert.equal((await p).toString(), 'a');
  // close() of the receiver ends a pending sendRecv: CANCELLED
  const q = tx.sendRecv('r', 3, rx, { timeout: 5000 });
  await sleep(10);
  rx.close();
  await assert.rejects(q, isCode('CANCELLED', true));
  assert.throws(() => tx.sendRecvSync('x', 1, rx, 0), isCode('CLOSED', false));
  // recvInto on a closed or busy handle throws too (it used to return the
  // status as a length)
  assert.throws(() => rx.recvInto(big, 0), isCode('CLOSED'));
  tx.close();
  assert.throws(() => tx.sendRecvSync('x', 1, rx, 0), isCode('CLOSED', false));
  s.close();
});

test('recvView: windows of one ArrayBuffer over the ring, no copy, detached with the receiver', async () => {
  const [s, c] = await pair({ capacity: 4096 });
  s.sender.sendSync('one', 1);
  s.sender.sendSync('two', 2);
  const rx = c.receiver;
  const a = rx.recvView(1000);
  assert.ok(Buffer.isBuffer(a.data));
  assert.equal(a.toString(), 'one');
  assert.equal(a.typeId, 1);
  const ab = a.data.buffer;
  const b = rx.recvView(1000);
  assert.equal(b.toString(), 'two');
  assert.equal(b.data.buffer, ab, 'the same ArrayBuffer: the ring, made once');
  assert.equal(a.released, true);
  const base = mt.addressOf(new Uint8Array(ab));
  assert.ok(b.address >= base && b.address < base + BigInt(ab.byteLength), 'the window lies in the ring mapping');
  assert.equal(b.address, base + BigInt(b.data.byteOffset));
  // the documented cost: a released window keeps its length and reads the ring
  b.release();
  assert.equal(b.released, true);
  assert.equal(b.data.length, 3);
  // a copy into ring memory is refused, never a fault
  s.sender.sendSync('three', 3);
  assert.throws(() => rx.recvInto(b.data, 1000), isCode('INVALID_ARGUMENT'));
  assert.equal(rx.recvView(1000).toString(), 'three');
  // an empty message
  s.sender.sendSync('', 4);
  const e = rx.recvView(1000);
  assert.equal(e.length, 0);
  assert.equal(e.typeId, 4);
  c.close();
  assert.equal(ab.byteLength, 0, 'detached at close');
  assert.equal(b.data.length, 0);
  assert.throws(() => rx.recvView(0), isCode('CLOSED'));
  s.close();
});

test('windows and detaching views of the same ring memory mix', async () => {
  const [s, c] = await pair({ capacity: 1024 });
  const rx = c.receiver;
  const kept = [];
  for (let i = 0; i < 200; i++) { // wraps the ring: views land on window bytes
    s.sender.sendSync(`m${i}`, i);
    const m = i % 2 ? rx.recvView(1000) : rx.recvSync(1000);
    assert.equal(m.toString(), `m${i}`);
    assert.equal(m.typeId, i);
    if (i % 3 === 0) {
      // forward the held message (view or window) in place; the reply is there
      s.sender.sendSync(`r${i}`, i);
      const r = i % 2 ? c.sendRecvView(m.data, m.typeId, 0) : c.sendRecvSync(m.data, m.typeId, 0);
      assert.equal(r.toString(), `r${i}`);
      assert.equal(s.receiver.recvSync(0).toString(), `m${i}`);
      kept.push(r);
    }
    kept.push(m);
  }
  assert.ok(kept.filter((m) => m.released).length === kept.length - 1, 'all released but the last');
  assert.ok(kept.some((m) => m.length === 0) && kept.some((m) => m.length > 0), 'detaching views emptied, windows not');
  s.close();
  c.close();
});

test('a ring window is detached when its forgotten connection is collected', async () => {
  let window;
  await (async () => {
    const [s, c] = await pair();
    s.sender.sendSync('gc me');
    window = c.receiver.recvView(1000).data;
    s.close();
  })();
  assert.equal(window.toString(), 'gc me');
  await collect();
  assert.equal(window.length, 0, 'detached by the finalizer before the ring was unmapped');
});
