#!/usr/bin/env node
// Builds build/memtube.node: the C addon (src/memtube_node.c) compiled with
// `cc -shared -fPIC` against the Node-API headers and linked statically with
// libmemtube.a. Run by `npm install` (the package's install script).
//
//   MEMTUBE_LIB_DIR  folder holding libmemtube.a; unset: built from this
//                    repository (`cargo build --release -p memtube-ffi`).
//   MEMTUBE_INCLUDE_DIR  folder of memtube.h (default: this repository's
//                    bindings/c/include, else LIB_DIR/../include).
//   CC               the C compiler (default cc).
//   MEMTUBE_CFLAGS   extra compiler flags (e.g. "-O0 -g -fsanitize=address").
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const here = __dirname;
const repo = path.resolve(here, '..', '..');

function fail(msg) {
  process.stderr.write(`memtube: ${msg}\n`);
  process.exit(1);
}

// Node-API headers: the node-api-headers package (devDependency) if it is
// installed, else the headers that ship with node itself.
function napiInclude() {
  try {
    const pkg = path.dirname(require.resolve('node-api-headers/package.json', { paths: [here] }));
    const inc = path.join(pkg, 'include');
    if (fs.existsSync(path.join(inc, 'node_api.h'))) return inc;
  } catch { /* not installed */ }
  const inc = path.resolve(path.dirname(process.execPath), '..', 'include', 'node');
  if (fs.existsSync(path.join(inc, 'node_api.h'))) return inc;
  return fail('no Node-API headers: `npm install node-api-headers` in bindings/node, or a node with include/node');
}

function libDir() {
  if (process.env.MEMTUBE_LIB_DIR) return path.resolve(process.env.MEMTUBE_LIB_DIR);
  if (!fs.existsSync(path.join(repo, 'Cargo.toml'))) {
    return fail('set MEMTUBE_LIB_DIR to the folder of libmemtube.a (no memtube repository around this package)');
  }
  process.stderr.write('memtube: MEMTUBE_LIB_DIR unset, building libmemtube (cargo build --release -p memtube-ffi)\n');
  execFileSync('cargo', ['build', '--release', '-p', 'memtube-ffi'], { cwd: repo, stdio: 'inherit' });
  return path.join(repo, 'target', 'release');
}

const lib = path.join(libDir(), 'libmemtube.a');
if (!fs.existsSync(lib)) fail(`${lib} does not exist`);
// memtube.h: MEMTUBE_INCLUDE_DIR, else this repository's, else the include
// folder beside the library's (the layout of bindings/c/install.sh).
const headers = [
  process.env.MEMTUBE_INCLUDE_DIR,
  path.join(repo, 'bindings', 'c', 'include'),
  path.join(path.dirname(lib), '..', 'include'),
].filter(Boolean);
const header = headers.find((d) => fs.existsSync(path.join(d, 'memtube.h')));
if (!header) fail(`no memtube.h in ${headers.join(', ')} (set MEMTUBE_INCLUDE_DIR)`);
fs.mkdirSync(path.join(here, 'build'), { recursive: true });
const out = path.join(here, 'build', 'memtube.node');
const extra = (process.env.MEMTUBE_CFLAGS || '').split(/\s+/).filter(Boolean);
const args = [
  '-std=c11', '-O2', '-Wall', '-Wextra', '-Werror', '-Wno-unused-parameter',
  '-shared', '-fPIC', '-fvisibility=hidden', ...extra,
  '-I', napiInclude(), '-I', header,
  path.join(here, 'src', 'memtube_node.c'),
  // libmemtube's symbols stay inside the addon: no clash with another
  // copy of memtube loaded in the same process.
  '-Wl,--exclude-libs,ALL', lib, '-lpthread', '-ldl', '-lm',
  '-o', out + '.tmp',
];
try {
  execFileSync(process.env.CC || 'cc', args, { stdio: 'inherit' });
} catch (e) {
  fail(`compiling the addon failed (${e.message})`);
}
fs.renameSync(out + '.tmp', out);
process.stderr.write(`memtube: built ${out}\n`);
