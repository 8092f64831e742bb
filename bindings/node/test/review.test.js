// Regressions for the read-only review of the binding (bugs it found).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const mt = require('..');
const { addr, collect } = require('./helpers');

async function pair(opts = {}) {
  const a = addr('rv');
  const l = mt.listen(a, { duplex: true, ...opts });
  const [server, client] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, { duplex: true, ...opts })]);
  l.close();
  return [server, client];
}

test('a serve handler may return the request or a part of it (echo)', async () => {
  const [s, c] = await pair();
  try {
    let p = c.call(7, 'hello');
    s.serveOneSync((ty, req) => req, 5000);
    let r = await p;
    assert.equal(r.toString(), 'hello');
    r.release();
    p = c.call(7, 'world');
    s.serveOneSync((ty, req) => [ty + 1, req.subarray(1)], 5000);
    r = await p;
    assert.equal(r.typeId, 8);
    assert.equal(r.toString(), 'orld');
    r.release();
    let kept;
    const served = s.serve((ty, req) => { kept = req; return req; });
    r = await c.call(7, 'async!');
    assert.equal(r.toString(), 'async!');
    assert.equal(kept.length, 0, 'the request view is detached after the handler');
    c.close();
    await served;
  } finally {
    c.close();
    s.close();
  }
});

test('close() inside a serveOneSync handler closes the connection', async () => {
  const [s, c] = await pair();
  try {
    const p = c.call(1, 'q');
    s.serveOneSync(() => { s.close(); return 'ok'; }, 5000);
    assert.equal((await p).toString(), 'ok');
    assert.equal(s.closed, true);
    assert.throws(() => s.sender.sendSync('x', 1, 0), (e) => e.code === 'CLOSED');
    // the peer sees the close
    await assert.rejects(c.receiver.recv({ timeout: 2000 }), (e) => e.code === 'CLOSED');
  } finally {
    c.close();
    s.close();
  }
});

test('a grant collected while its connection is busy (pending recv) is aborted', async () => {
  const [s, c] = await pair();
  try {
    (() => { c.sender.reserveSync(64); })();
    const pending = c.receiver.recv({ timeout: 300 }).catch((e) => e.code);
    await collect();
    assert.equal(await pending, 'TIMEOUT');
    c.sender.sendSync('y', 1, 0); // BUSY forever before the fix
    assert.equal((await s.receiver.recv({ timeout: 1000 })).toString(), 'y');
  } finally {
    c.close();
    s.close();
  }
});

test('a collected zero-length grant is aborted', async () => {
  const [s, c] = await pair();
  try {
    (() => { assert.equal(c.sender.reserveSync(0).length, 0); })();
    await collect();
    c.sender.sendSync('x', 1, 0); // BUSY forever before the fix
  } finally {
    c.close();
    s.close();
  }
});

test('a positive timeout that expires gives TIMEOUT, never EMPTY', async () => {
  const [s, c] = await pair();
  try {
    for (let i = 0; i < 50; i++) {
      await assert.rejects(c.receiver.recv({ timeout: 0.00001 }), (e) => e.code === 'TIMEOUT');
    }
    await assert.rejects(c.receiver.recv({ timeout: 0 }), (e) => e.code === 'EMPTY');
    // a message that is there is still received with a tiny timeout
    s.sender.sendSync('m', 1, 0);
    assert.equal((await c.receiver.recv({ timeout: 0.00001 })).toString(), 'm');
  } finally {
    c.close();
    s.close();
  }
});

test('non-integer and out-of-range sizes are RangeErrors', async () => {
  assert.throws(() => mt.listen(addr('rv'), { capacity: 2 ** 32 + 65536 }), RangeError);
  assert.throws(() => mt.listen(addr('rv'), { capacity: 4096.5 }), RangeError);
  const [s, c] = await pair();
  try {
    for (const n of [NaN, 2 ** 64, 1.7, -1, '3', Infinity]) {
      assert.throws(() => c.sender.reserveSync(n), RangeError, String(n));
      await assert.rejects(c.sender.reserve(n), RangeError, String(n));
    }
    const g = c.sender.reserveSync(3);
    assert.equal(g.length, 3);
    c.sender.abort();
    // a huge timeout is no limit (no int64 overflow): a message is received
    s.sender.sendSync('h', 1, 0);
    assert.equal((await c.receiver.recv({ timeout: 1e300 })).toString(), 'h');
  } finally {
    c.close();
    s.close();
  }
});

test('ArrayBuffer.prototype.transfer() refuses views of ring memory (Node >= 21)', () => {
  // Node 20 has no transfer(): stand one in before memtube loads, as Node 21 has.
  const script = `
    ArrayBuffer.prototype.transfer = function () { return 'moved'; };
    const mt = require(${JSON.stringify(path.resolve(__dirname, '..'))});
    (async () => {
      const a = '@memtube-node-' + process.pid + '-tr';
      const l = mt.listen(a, { duplex: true });
      const [s, c] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, { duplex: true })]);
      const out = [];
      const t = (f) => { try { out.push(f()); } catch (e) { out.push(e.code); } };
      s.sender.sendSync('abc', 1, 0); s.sender.sendSync('def', 1, 0);
      const m = c.receiver.recvSync(1000);
      t(() => m.data.buffer.transfer());
      const w = c.receiver.recvView(1000);
      t(() => w.data.buffer.transfer());
      const g = c.sender.reserveSync(8);
      t(() => g.buffer.transfer());
      c.sender.abort();
      const p = s.call(1, 'req');
      c.serveOneSync((ty, req) => { t(() => req.buffer.transfer()); return 'r'; }, 5000);
      await p;
      t(() => new ArrayBuffer(4).transfer());
      console.log(JSON.stringify(out));
      c.close(); s.close(); l.close();
    })();`;
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), ['ERR_INVALID_STATE', 'ERR_INVALID_STATE', 'ERR_INVALID_STATE', 'ERR_INVALID_STATE', 'moved']);
});
