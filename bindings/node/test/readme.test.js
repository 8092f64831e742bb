// The README's example, run as it is written: receiver and sender as two
// processes (the package name and the socket path substituted).
'use strict';
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

test("the README's example works", async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const block = readme.match(/```js\n([\s\S]*?)```/)[1];
  const [recv, send] = block.split(/\n(?=\/\/ sender\.mjs)/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtube-readme-'));
  const sock = path.join(dir, 'demo.sock');
  const pkg = JSON.stringify(path.join(__dirname, '..', 'index.js'));
  const fix = (src) => src.replaceAll("'memtube'", pkg).replaceAll("'/tmp/demo.sock'", JSON.stringify(sock));
  fs.writeFileSync(path.join(dir, 'receiver.mjs'), fix(recv));
  fs.writeFileSync(path.join(dir, 'sender.mjs'), fix(send));
  const r = spawn(process.execPath, [path.join(dir, 'receiver.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  r.stdout.on('data', (d) => { out += d; });
  // 'close', not 'exit': the child's stdout may still hold its output at exit.
  const done = new Promise((res) => r.on('close', res));
  for (let i = 0; !fs.existsSync(sock); i++) {
    assert.ok(i < 500, 'the receiver listens');
    await new Promise((res) => setTimeout(res, 10));
  }
  execFileSync(process.execPath, [path.join(dir, 'sender.mjs')], { stdio: 'inherit', timeout: 10000 });
  assert.equal(await done, 0);
  assert.equal(out, '1 hello\n');
  fs.rmSync(dir, { recursive: true, force: true });
});

test("the top README's Node.js block works", async () => {
  const readme = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
  const from = readme.indexOf('**Node.js.**');
  const block = readme.slice(from).match(/```js\n([\s\S]*?)```/)[1];
  const [recv, send] = block.split('// in another process:\n');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memtube-top-readme-'));
  const name = `@memtube-node-top-readme-${process.pid}`;
  const pkg = JSON.stringify(path.join(__dirname, '..', 'index.js'));
  const imports = recv.split('\n').filter((l) => l.startsWith('import ')).join('\n');
  const fix = (src) => src.replaceAll("'memtube'", pkg).replaceAll("'@demo'", JSON.stringify(name));
  fs.writeFileSync(path.join(dir, 'receiver.mjs'), fix(recv));
  fs.writeFileSync(path.join(dir, 'sender.mjs'), fix(`${imports}\n${send}`));
  const r = spawn(process.execPath, [path.join(dir, 'receiver.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  r.stdout.on('data', (d) => { out += d; });
  // 'close', not 'exit': the child's stdout may still hold its output at exit.
  const done = new Promise((res) => r.on('close', res));
  // An abstract name leaves no file to wait for: retry the sender until it connects.
  for (let i = 0; ; i++) {
    try {
      execFileSync(process.execPath, [path.join(dir, 'sender.mjs')], { stdio: 'pipe', timeout: 10000 });
      break;
    } catch (e) {
      assert.ok(i < 200 && /NO_LISTENER/.test(String(e.stderr)), String(e.stderr));
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  assert.equal(await done, 0);
  assert.equal(out, '1 hello\n');
  fs.rmSync(dir, { recursive: true, force: true });
});
