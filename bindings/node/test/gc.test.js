// Forgotten handles, messages and grants are freed by the collector: no
// crash, no descriptor leaked, ring space given back.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const mt = require('..');
const { addr, collect, fdCount } = require('./helpers');

async function pair(opts = {}) {
  const a = addr('gc');
  const l = mt.listen(a, opts);
  const [server, client] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, opts)]);
  l.close();
  return [server, client];
}

test('forgotten listeners and connections close when collected (descriptors counted)', async () => {
  // warm up (lazy descriptors of the runtime, the thread pool)
  {
    const [s, c] = await pair({ duplex: true });
    s.close();
    c.close();
  }
  await collect();
  const before = fdCount();
  // each in a function of its own, so that no frame keeps the last one alive
  const forget = async (i) => {
    const a = addr('gc');
    const l = mt.listen(a, { duplex: i % 2 === 0 });
    const [s, c] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, { duplex: i % 2 === 0 })]);
    // held messages, split halves and grants are forgotten with them
    if (i % 2 === 0) {
      c.sender.sendSync('x');
      s.receiver.recvSync(1000);
      const { sender } = c.split();
      sender.reserveSync(8);
    } else {
      c.sender.reserveSync(8);
    }
  };
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10; i++) await forget(i);
    assert.ok(fdCount() > before, 'the connections hold descriptors while they live');
    await collect();
  }
  await collect();
  assert.equal(fdCount(), before, 'every descriptor was closed by the finalizers');
});

test('a forgotten message is released when collected', async () => {
  // capacity 256: one message of the largest payload fills the ring (the
  // consumer hands back space lazily, by bytes: a whole ring's worth is
  // handed back at once)
  const [s, c] = await pair({ capacity: 256 });
  const tx = c.sender;
  const rx = s.receiver;
  const big = Buffer.alloc(tx.maxPayload, 7);
  tx.sendSync(big, 1, 1000);
  assert.equal(tx.trySend(big), false, 'full');
  rx.recvSync(1000).release();
  assert.equal(tx.trySend(big, 2), true, 'a released message gives its space back');
  (() => {
    const m = rx.recvSync(1000); // held, then forgotten (never released)
    assert.equal(m.typeId, 2);
  })();
  assert.equal(tx.trySend(big, 3), false, 'the forgotten message still holds its space');
  await collect();
  assert.equal(tx.trySend(big, 3), true, 'the finalizer released it');
  assert.equal(rx.recvSync(1000).typeId, 3);
  c.close();
  s.close();
});

test('a forgotten grant is aborted when collected (nothing sent)', async () => {
  const [s, c] = await pair();
  const tx = c.sender;
  (() => {
    const g = tx.reserveSync(16);
    g.fill(1);
  })();
  assert.throws(() => tx.sendSync('x'), (e) => e.code === 'BUSY');
  await collect();
  tx.sendSync('after', 9);
  const m = s.receiver.recvSync(1000);
  assert.equal(m.typeId, 9, 'the aborted grant sent nothing');
  assert.equal(m.toString(), 'after');
  c.close();
  s.close();
});

test('a view kept after its connection was collected is detached, never dangling', async () => {
  let view;
  await (async () => {
    const [s, c] = await pair();
    c.sender.sendSync('kept');
    view = s.receiver.recvSync(1000).data;
    assert.equal(view.toString(), 'kept');
    c.close();
  })();
  await collect();
  // the Message and connection are gone: the ring was unmapped, the view detached
  assert.equal(view.length, 0);
  assert.equal(view[0], undefined);
});
