#!/usr/bin/env node
// The Node.js twin of examples/interop.rs: the same command line, the same
// deterministic sequence of messages, the same checks and closing line, so
// that Node can be run against Rust, C, Python, ... between two real
// processes. examples/interop.rs is the specification; in short:
//
//   node interop.js (--listen ADDR | --connect ADDR) ROLE [OPTIONS]
//     ROLE:    --send N | --recv | --serve | --call N | --echo | --ping N | --dump
//     OPTIONS: --size S (default 256) --capacity C (default 65536)
//              --timeout SECS (default 10) --unchecked --spin
//   closing line: ok count=N bytes=B fnv=HEX secs=T [p50_ns= p99_ns= p999_ns=]
//
// --dump receives until the stream ends and prints every message, checking
// nothing: `msg TYPE HEX` (`-` for an empty payload), then `end closed`, or
// `end KIND` and exit status 1 on any other error (KIND: the error's code in
// lower case, the C status name without MEMTUBE_, e.g. `peer_gone`).
//
// Only the public API of the package is used: zero-copy receive views,
// reserve + commit for --send; for --ping and --echo the path a latency user
// takes: synchronous calls (spinning with --spin), each message copied into
// a preallocated Buffer (recvInto) and sent from there (sendSync). Measured
// faster at 32 bytes than the one-call sendRecv forms (README.md).
'use strict';

const path = require('node:path');
const { performance } = require('node:perf_hooks');
const memtube = require(process.env.MEMTUBE_NODE_PACKAGE || path.join(__dirname, '..'));

function parse(argv) {
  const a = { listen: null, connect: null, role: null, n: 0, size: 256, capacity: 65536, timeout: 10, unchecked: false, spin: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    const int = (s) => {
      if (!/^\d+$/.test(s)) throw new Error(`${arg}: not a number: ${s}`);
      return Number(s);
    };
    switch (arg) {
      case '--listen': a.listen = val(); break;
      case '--connect': a.connect = val(); break;
      case '--send': a.role = 'send'; a.n = int(val()); break;
      case '--recv': a.role = 'recv'; break;
      case '--serve': a.role = 'serve'; break;
      case '--call': a.role = 'call'; a.n = int(val()); break;
      case '--echo': a.role = 'echo'; break;
      case '--ping': a.role = 'ping'; a.n = int(val()); break;
      case '--dump': a.role = 'dump'; break;
      case '--size': a.size = int(val()); break;
      case '--capacity': a.capacity = int(val()); break;
      case '--timeout': a.timeout = Number(val()); if (!(a.timeout >= 0)) throw new Error('--timeout: not a number'); break;
      case '--unchecked': a.unchecked = true; break;
      case '--spin': a.spin = true; break;
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  if ((a.listen === null) === (a.connect === null)) throw new Error('give exactly one of --listen ADDR and --connect ADDR');
  if (a.size < 8) throw new Error('--size must be at least 8');
  if (a.role === null) throw new Error('give a role: --send N, --recv, --serve, --call N, --echo, --ping N or --dump');
  return a;
}

// Byte j of every message is (i * 31 + j) % 256: a window of this pattern.
let pattern = null;
function message(i, size, out) {
  const len = 8 + ((i * 7919) % (size - 7));
  if (pattern === null || pattern.length < size + 256) {
    pattern = Buffer.alloc(size + 256);
    for (let k = 0; k < pattern.length; k++) pattern[k] = k & 255;
  }
  out.writeUInt32LE(i % 0x100000000, 0);
  out.writeUInt32LE(Math.floor(i / 0x100000000), 4);
  const start = (i * 31 + 8) % 256;
  pattern.copy(out, 8, start, start + len - 8);
  return len;
}

// FNV-1a 64 over 32-bit halves (prime 2^40 + 0x1b3).
class Fnv {
  constructor() { this.hi = 0xcbf29ce4; this.lo = 0x84222325; }
  update(b, len = b.length) {
    let hi = this.hi, lo = this.lo;
    for (let k = 0; k < len; k++) {
      lo = (lo ^ b[k]) >>> 0;
      const t = lo * 0x1b3;
      const carry = Math.floor(t / 0x100000000);
      hi = (Math.imul(hi, 0x1b3) + ((lo << 8) >>> 0) + carry) >>> 0;
      lo = t >>> 0;
    }
    this.hi = hi; this.lo = lo;
  }
  hex() { return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0'); }
}

function sleepMs(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function open(a) {
  const duplex = ['serve', 'call', 'echo', 'ping'].includes(a.role);
  const sends = a.role === 'send';
  const listening = a.listen !== null;
  const opts = {
    capacity: a.capacity,
    duplex,
    direction: sends === listening ? 'listenerToConnector' : 'connectorToListener',
    pureSpin: a.spin,
  };
  const ms = a.timeout * 1000;
  if (listening) {
    const l = memtube.listen(a.listen, opts);
    process.stdout.write('listening\n');
    try {
      return l.acceptSync(ms);
    } finally {
      l.close();
    }
  }
  const until = performance.now() + ms;
  for (;;) {
    try {
      return memtube.connectSync(a.connect, opts);
    } catch (e) {
      if (e.code !== 'NO_LISTENER' || performance.now() >= until) throw e;
      sleepMs(10);
    }
  }
}

function run(a) {
  const conn = open(a);
  const ms = a.timeout * 1000;
  const fnv = new Fnv();
  let count = 0, bytes = 0, start = null, extra = '';
  const want = Buffer.alloc(a.size);
  switch (a.role) {
    case 'send': {
      const tx = conn.sender;
      for (let i = 0; i < a.n; i++) {
        // Zero copy: the message is written in place in the ring.
        const len = 8 + ((i * 7919) % (a.size - 7));
        const grant = tx.reserveSync(len, ms);
        message(i, a.size, grant);
        fnv.update(grant, len);
        tx.commit(len, i >>> 0);
        if (start === null) start = performance.now();
        bytes += len;
        count++;
      }
      break;
    }
    case 'recv': {
      const rx = conn.receiver;
      for (;;) {
        let m;
        try {
          m = rx.recvSync(ms);
        } catch (e) {
          if (e.code === 'CLOSED') break;
          throw e;
        }
        if (start === null) start = performance.now();
        if (a.unchecked) {
          bytes += m.length;
          count++;
          continue;
        }
        const len = message(count, a.size, want);
        if (m.typeId !== count >>> 0 || m.length !== len || want.compare(m.data, 0, m.length, 0, len) !== 0) {
          throw new Error(`message ${count} differs: type id ${m.typeId}, ${m.length} bytes (expected ${len} bytes)`);
        }
        fnv.update(m.data);
        bytes += m.length;
        count++;
      }
      break;
    }
    case 'serve': {
      let bad = null;
      conn.serveSync((ty, req) => {
        if (start === null) start = performance.now();
        const len = message(count, a.size, want);
        if (ty !== count >>> 0 || req.length !== len || want.compare(req, 0, req.length, 0, len) !== 0) {
          if (bad === null) bad = count;
        }
        fnv.update(req);
        bytes += req.length;
        count++;
        return [(ty + 1) >>> 0, Buffer.from(req).reverse()];
      });
      if (bad !== null) throw new Error(`request ${bad} differs`);
      break;
    }
    case 'call': {
      for (let i = 0; i < a.n; i++) {
        const len = message(i, a.size, want);
        const req = want.subarray(0, len);
        const reply = conn.callSync(i >>> 0, req, ms);
        if (start === null) start = performance.now();
        const rev = Buffer.from(req).reverse();
        if (reply.typeId !== ((i + 1) >>> 0) || !rev.equals(reply.data)) throw new Error(`reply ${i} differs`);
        fnv.update(req);
        bytes += len;
        count++;
      }
      break;
    }
    case 'echo': {
      // The latency path: synchronous calls (spinning with --spin), each
      // message copied once into a buffer of ours (recvInto: no allocation
      // per message; a zero-copy view costs a Node external ArrayBuffer
      // each, see README.md) and sent from there.
      const { sender: tx, receiver: rx } = conn.split();
      const buf = Buffer.alloc(rx.maxPayload);
      const views = [];
      for (;;) {
        let r;
        try {
          r = rx.recvInto(buf, ms);
        } catch (e) {
          if (e.code === 'CLOSED') break;
          throw e;
        }
        if (start === null) start = performance.now();
        // one view per length, made once (a subarray per message costs more
        // than the round trip's other JS work)
        const view = views[r.length] || (views[r.length] = buf.subarray(0, r.length));
        tx.sendSync(view, r.typeId, ms);
        bytes += r.length;
        count++;
      }
      tx.close();
      rx.close();
      break;
    }
    case 'ping': {
      // Two native calls per round trip, sendSync then recvInto (the echo
      // copied into a preallocated Buffer: at 32 bytes the copy is cheaper
      // than any view object). Measured faster than one sendRecvInto: the
      // second call's set-up overlaps the echo's work (README.md).
      const { sender: tx, receiver: rx } = conn.split();
      const n = a.n;
      const warm = Math.floor(n / 10);
      if (require('node:os').endianness() !== 'LE') throw new Error('--ping assumes a little-endian host');
      const msg = Buffer.alloc(a.size);
      const echo = Buffer.alloc(rx.maxPayload);
      // the index as two 32-bit words (little-endian hosts: x86-64, arm64)
      // through typed views, not Buffer's validating read/write methods
      const msgWords = new Uint32Array(msg.buffer, msg.byteOffset, 2);
      const echoWords = new Uint32Array(echo.buffer, echo.byteOffset, 2);
      const samples = new Float64Array(n);
      let prev = performance.now();
      for (let i = 0; i < warm + n; i++) {
        const lo = i % 0x100000000, hi = Math.floor(i / 0x100000000);
        msgWords[0] = lo;
        msgWords[1] = hi;
        tx.sendSync(msg, lo, ms);
        const r = rx.recvInto(echo, ms);
        if (r.length !== a.size || r.typeId !== lo || echoWords[0] !== lo || echoWords[1] !== hi) {
          throw new Error(`echo ${i} differs`);
        }
        const now = performance.now();
        if (i >= warm) {
          samples[i - warm] = (now - prev) * 1e6;
          if (start === null) start = prev;
          bytes += a.size;
          count++;
        }
        prev = now;
      }
      samples.sort();
      const q = (p) => Math.round(samples[Math.min(Math.floor(samples.length * p), samples.length - 1)]);
      extra = n > 0 ? ` p50_ns=${q(0.5)} p99_ns=${q(0.99)} p999_ns=${q(0.999)}` : '';
      tx.close();
      rx.close();
      break;
    }
  }
  const secs = start === null ? 0 : (performance.now() - start) / 1000;
  if (!conn.closed) conn.close();
  const hash = a.unchecked || a.role === 'echo' || a.role === 'ping' ? '0000000000000000' : fnv.hex();
  return `ok count=${count} bytes=${bytes} fnv=${hash} secs=${secs.toFixed(6)}${extra}`;
}

// --dump: every message as `msg TYPE HEX` until an error ends the stream,
// then `end KIND` (`end closed`: the peer's clean close); whether it was that.
function dump(a) {
  let conn = null;
  let end;
  try {
    conn = open(a);
    const rx = conn.receiver;
    for (;;) {
      const m = rx.recvSync(a.timeout * 1000);
      process.stdout.write(`msg ${m.typeId} ${m.length ? m.data.toString('hex') : '-'}\n`);
      m.release();
    }
  } catch (e) {
    if (!(e instanceof memtube.MemtubeError)) throw e;
    end = e.code.toLowerCase();
  } finally {
    if (conn !== null && !conn.closed) conn.close();
  }
  process.stdout.write(`end ${end}\n`);
  return end === 'closed';
}

try {
  const a = parse(process.argv.slice(2));
  if (a.role === 'dump') {
    if (!dump(a)) process.exitCode = 1;
  } else {
    process.stdout.write(run(a) + '\n');
  }
} catch (e) {
  process.stdout.write(`error: ${e && e.message ? e.message : e}\n`);
  process.exitCode = 1;
}
