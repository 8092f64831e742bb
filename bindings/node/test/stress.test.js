// close(), collection and messages racing pending calls: every promise
// settles, nothing crashes, no descriptor is left behind.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const mt = require('..');
const { addr, collect, fdCount, sleep } = require('./helpers');

test('close racing pending receives, sends and calls', async (t) => {
  await collect();
  const before = fdCount();
  const codes = new Map();
  const note = (p) => p.then(() => 'OK', (e) => e.code || String(e)).then((c) => codes.set(c, (codes.get(c) || 0) + 1));
  const round = async (i) => {
    const a = addr('stress');
    const l = mt.listen(a, { duplex: true, capacity: 256 });
    const [s, c] = await Promise.all([l.accept({ timeout: 5000 }), mt.connect(a, { duplex: true, capacity: 256 })]);
    l.close();
    const ps = [];
    const { sender, receiver } = s.split();
    // the call's request reaches `receiver`; the call itself waits for a
    // reply nobody sends; the send waits for room the call's reply wait makes
    ps.push(note(receiver.recv({ timeout: 2000 })));
    ps.push(note(c.call(i, 'q', { timeout: 2000 })));
    const l2 = mt.listen(addr('stress'));
    ps.push(note(l2.accept({ timeout: 2000 }))); // nobody connects
    const big = Buffer.alloc(sender.maxPayload);
    while (sender.trySend(big));
    ps.push(note(sender.send(big, 1, { timeout: 2000 })));
    await sleep(i % 5);
    // close in some order while everything is pending (or just finishing)
    if (i % 2) { receiver.close(); c.close(); sender.close(); l2.close(); } else { l2.close(); c.close(); sender.close(); receiver.close(); }
    await Promise.all(ps);
  };
  for (let i = 0; i < 60; i++) await round(i);
  await collect();
  assert.equal(fdCount(), before);
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(codes))}`);
  for (const k of codes.keys()) assert.ok(['OK', 'CANCELLED', 'CLOSED', 'PEER_GONE', 'TIMEOUT'].includes(k), `unexpected ${k}`);
});
