// index.d.ts matches index.js: tsc type-checks the declarations and
// test/types-check.ts, and every runtime export and public method is declared.
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const mt = require('..');

const root = path.join(__dirname, '..');
const dts = fs.readFileSync(path.join(root, 'index.d.ts'), 'utf8');

let tsc = null;
try {
  tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
} catch { /* not installed */ }
const skip = tsc === null ? 'typescript is not installed (npm install in bindings/node)' : false;
if (skip && process.env.CI === 'true') throw new Error(`CI: ${skip}`);

test('tsc --noEmit accepts index.d.ts and test/types-check.ts', { skip }, () => {
  execFileSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'pipe' });
});

test('every export and public method of index.js is declared', () => {
  for (const name of Object.keys(mt)) {
    assert.match(dts, new RegExp(`export (declare )?(class|function|const) ${name}\\b`), `export ${name}`);
  }
  for (const cls of ['Listener', 'Connection', 'Sender', 'Receiver', 'Message']) {
    const body = dts.slice(dts.indexOf(`export class ${cls} `));
    const decl = body.slice(0, body.indexOf('\n}'));
    for (const k of Object.getOwnPropertyNames(mt[cls].prototype)) {
      if (k === 'constructor') continue;
      assert.match(decl, new RegExp(`\\b${k}\\b`), `${cls}.${k}`);
    }
  }
});
