'use strict';
// Starts a real custos node for a test file and wraps its HTTP API and CLI.
// Nothing here encodes or verifies custos formats: that is lib/cose.js and
// lib/rfc9162.js, written from the RFCs, so the checks stay independent of
// the C++ code under test.

const {spawn, spawnSync} = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');

const INTEROP_DIR = path.resolve(__dirname, '..');
// CUSTOS_BIN: the custos binary (relative paths from the current
// directory); default ../../build/custos from tests/interop.
const CUSTOS_BIN = process.env.CUSTOS_BIN
  ? path.resolve(process.env.CUSTOS_BIN)
  : path.resolve(INTEROP_DIR, '../../build/custos');

const STARTUP_TIMEOUT_MS = 15000;

// Every request on its own connection (Connection: close): custos keeps idle
// keep-alive connections open for 30 s, and SIGTERM waits for them, so a
// pooled client would make each node take ~30 s to stop.
const agent = new http.Agent({keepAlive: false});

// Minimal HTTP client: {status, headers, body (Buffer)}.
function request(url, {method = 'GET', headers = {}, body} = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {method, headers, agent}, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks)}));
      res.on('error', reject);
    });
    req.setTimeout(20000, () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

class CustosNode {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-interop-'));
    this.dataDir = path.join(this.dir, 'data');
    this.url = null;
    this.child = null;
    this.log = '';
  }

  get adminKey() { return path.join(this.dataDir, 'keys', 'admin.key'); }
  get nodePubPath() { return path.join(this.dataDir, 'keys', 'node.pub'); }
  get genesisPath() { return path.join(this.dataDir, 'genesis.json'); }
  file(name) { return path.join(this.dir, name); }

  // Starts `custos node --dev` on a kernel-chosen port (127.0.0.1:0) and waits
  // for the "listening on http://..." log line, then for GET /healthz.
  async start() {
    if (!fs.existsSync(CUSTOS_BIN)) {
      throw new Error(`custos binary not found at ${CUSTOS_BIN} (set CUSTOS_BIN)`);
    }
    this.child = spawn(CUSTOS_BIN, ['node', '--dev', '--data-dir', this.dataDir,
      '--listen', '127.0.0.1:0', '--log-level', 'info'], {stdio: ['ignore', 'pipe', 'pipe']});
    // Never leave a node behind if the test process dies first.
    const child = this.child;
    const killOnExit = () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); };
    process.once('exit', killOnExit);
    const exited = new Promise((resolve) => this.child.once('exit', (code, signal) => {
      process.removeListener('exit', killOnExit);
      resolve({code, signal});
    }));
    this.exited = exited;
    const listening = new Promise((resolve, reject) => {
      const onData = (chunk) => {
        this.log += chunk.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(this.log);
        if (m) resolve(m[1]);
      };
      this.child.stdout.on('data', onData);
      this.child.stderr.on('data', onData);
      exited.then(({code, signal}) =>
        reject(new Error(`custos node exited early (code ${code}, signal ${signal}):\n${this.log}`)));
      setTimeout(() => reject(new Error(`custos node did not start within ${STARTUP_TIMEOUT_MS} ms:\n${this.log}`)),
        STARTUP_TIMEOUT_MS).unref();
    });
    this.url = await listening;
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      try {
        const r = await request(`${this.url}/healthz`);
        if (r.status === 200 && JSON.parse(r.body).status === 'ok') break;
      } catch (_) { /* not up yet */ }
      if (Date.now() > deadline) throw new Error(`custos node never became healthy:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    this.nodePubPem = fs.readFileSync(this.nodePubPath, 'utf8');
    return this;
  }

  async stop() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, {recursive: true, force: true});
  }

  // Runs the custos CLI; returns {status, stdout, stderr}.
  cli(...args) {
    const r = spawnSync(CUSTOS_BIN, args, {encoding: 'utf8', timeout: 20000});
    if (r.error) throw r.error;
    return {status: r.status, stdout: r.stdout, stderr: r.stderr};
  }

  // Like cli() but throws unless the exit status is 0.
  cliOk(...args) {
    const r = this.cli(...args);
    if (r.status !== 0) {
      throw new Error(`custos ${args.join(' ')} exited ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
    return r;
  }

  registerKey(pubPemPath, name, roles = ['issuer']) {
    const r = this.cliOk('keys', 'register', '--node', this.url, '--admin-key', this.adminKey,
      '--key', pubPemPath, '--name', name, '--roles', ...roles, '--json');
    return JSON.parse(r.stdout);
  }

  // POST /v1/entries with a raw statement. Returns {status, contentType, body}.
  async postStatement(bytes) {
    const r = await request(`${this.url}/v1/entries`, {
      method: 'POST',
      headers: {'Content-Type': 'application/cose'},
      body: Buffer.from(bytes),
    });
    let body = r.body.toString('utf8');
    try { body = JSON.parse(body); } catch (_) { /* keep text */ }
    return {status: r.status, contentType: r.headers['content-type'] || '', body};
  }

  async getBytes(urlPath, accept) {
    const r = await request(`${this.url}${urlPath}`, {headers: accept ? {Accept: accept} : {}});
    if (r.status !== 200) throw new Error(`GET ${urlPath}: ${r.status} ${r.body}`);
    return r.body;
  }

  async getJson(urlPath) {
    const r = await request(`${this.url}${urlPath}`, {headers: {Accept: 'application/json'}});
    if (r.status !== 200) throw new Error(`GET ${urlPath}: ${r.status} ${r.body}`);
    return JSON.parse(r.body);
  }

  // The node keys of the genesis file, in genesis order (PEM strings).
  genesisNodeKeys() {
    return JSON.parse(fs.readFileSync(this.genesisPath, 'utf8')).nodes.map((n) => n.public_key_pem);
  }

  // The served receipt: one COSE_Sign1 today, a bundle [+ COSE_Sign1] of the
  // consortium nodes' receipts once the node serves them.
  receipt(id) { return this.getBytes(`/v1/entries/${id}/receipt`); }
  checkpoint() { return this.getBytes('/v1/checkpoint', 'application/cose'); }
  block(height) { return this.getJson(`/v1/blocks/${height}`); }
  consistency(from, to) { return this.getJson(`/v1/proofs/consistency?from=${from}&to=${to}`); }

  // Every entry in log order, via GET /v1/entries (paged) and the statement
  // bytes of each via GET /v1/entries/{id} with Accept: application/cose.
  async allStatements() {
    const entries = [];
    let cursor = null;
    for (;;) {
      const page = await this.getJson(`/v1/entries?limit=100${cursor === null ? '' : `&cursor=${cursor}`}`);
      entries.push(...page.entries);
      if (page.next_cursor === null) break;
      cursor = page.next_cursor;
    }
    entries.sort((a, b) => a.index - b.index);
    const out = [];
    for (const e of entries) out.push(await this.getBytes(`/v1/entries/${e.id}`, 'application/cose'));
    return {entries, statements: out};
  }
}

module.exports = {CustosNode, CUSTOS_BIN, request};
