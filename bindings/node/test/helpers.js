// Shared by the tests: unique addresses, the collector, descriptor counts
// and the Rust interop peer.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');

let n = 0;
/** A fresh abstract address for this process and test. */
function addr(tag = 't') {
  return `@memtube-node-${process.pid}-${tag}-${n++}`;
}

v8.setFlagsFromString('--expose-gc');
const gcFn = vm.runInNewContext('gc');

/** Collect, then let the deferred (setImmediate) finalizers run. */
async function collect() {
  for (let i = 0; i < 4; i++) {
    gcFn();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Open descriptors of this process. */
function fdCount() {
  return fs.readdirSync('/proc/self/fd').length;
}

/** The Rust interop peer (examples/interop.rs): $MEMTUBE_INTEROP, else
 * $MEMTUBE_LIB_DIR/interop, else the repository's cargo build. null when
 * none is built. */
function rustInterop() {
  const repo = path.resolve(__dirname, '..', '..', '..');
  const cands = [
    process.env.MEMTUBE_INTEROP,
    process.env.MEMTUBE_LIB_DIR && path.join(process.env.MEMTUBE_LIB_DIR, 'interop'),
    path.join(repo, 'target', 'release', 'examples', 'interop'),
    path.join(repo, 'target', 'debug', 'examples', 'interop'),
  ];
  for (const c of cands) if (c && fs.existsSync(c)) return c;
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = { addr, collect, fdCount, rustInterop, sleep };
