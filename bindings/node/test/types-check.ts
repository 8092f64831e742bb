// Compiled by `tsc -p tsconfig.json` (never run): the README's example and
// each part of the API type-check against index.d.ts.
import * as memtube from '..';
import { MemtubeError, type Message, type Connection } from '..';

async function receiver(): Promise<void> {
  const listener = memtube.listen('/tmp/demo.sock', { capacity: 1 << 16, uidPolicy: 'same' });
  const conn: Connection = await listener.accept({ timeout: 5000 });
  for await (const msg of conn.receiver) {
    const m: Message = msg;
    console.log(m.typeId, m.data.toString('utf8'), m.address === 0n);
  }
  conn.close();
  listener.close();
}

async function sender(): Promise<void> {
  const conn = await memtube.connect('/tmp/demo.sock');
  await conn.sender.send('hello', 1);
  const buf: Buffer = conn.sender.reserveSync(5);
  buf.write('world');
  conn.sender.commit(5, 2);
  const ok: boolean = conn.sender.trySend(new Uint8Array(3));
  void ok;
  conn.close();
}

async function duplex(): Promise<void> {
  const conn = await memtube.connect('@rpc', { duplex: true, pureSpin: false, direction: 'connectorToListener' });
  const reply = await conn.call(7, Buffer.from('req'), { timeout: 1000 });
  reply.release();
  await conn.serve((ty, req) => [ty + 1, Buffer.from(req).reverse()]);
  conn.serveOneSync(() => 'text', 0);
  const { sender, receiver } = conn.split();
  sender?.close();
  const r = receiver?.recvInto(Buffer.alloc(64), 10);
  if (r) console.log(r.length, r.typeId);
  receiver?.close();
}

async function exchange(): Promise<void> {
  const conn = await memtube.connect('@echo', { duplex: true, pureSpin: true });
  const m: Message = conn.sendRecvSync('ping', 1, 1000);
  const w: Message = conn.sendRecvView(m.data, m.typeId, 1000);
  const r = conn.sendRecvInto(w.data, 2, Buffer.alloc(conn.receiver.maxPayload));
  const p: Message = await conn.sendRecv(new Uint8Array(r.length), 3, { timeout: 100 });
  const { sender, receiver } = conn.split();
  if (sender && receiver) {
    const v: Message = receiver.recvView(10);
    const n: Message = await sender.sendRecv(v.data, v.typeId, receiver);
    sender.sendRecvSync(n.data, 4, receiver, 10).release();
    sender.sendRecvView('x', 5, receiver);
    sender.sendRecvInto('y', 6, receiver, Buffer.alloc(64), 0);
  }
  void p;
}

function errors(e: unknown): string {
  if (e instanceof MemtubeError && e.sent === true) return 'sent';
  if (e instanceof MemtubeError && e.code === 'PEER_GONE') return e.message;
  return String(e);
}

void receiver;
void sender;
void duplex;
void errors;
void exchange;
console.log(memtube.version, memtube.abiVersion, memtube.codes.length);
