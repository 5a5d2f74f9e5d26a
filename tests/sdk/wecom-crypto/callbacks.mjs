// WeCom's side of callbacks, done by WeCom's own @wecom/crypto 1.0.1 (pinned in package.json
// and package-lock.json; `npm ci` here installs it, .ci/run does): URL verification, a push
// and its passive reply, against a callback URL; and opening a message someone else
// encrypted. The same commands and output as tests/sdk/wechatpy_callbacks.py:
//
//   node tests/sdk/wecom-crypto/callbacks.mjs verify URL TOKEN AES_KEY CORP_ID
//   node tests/sdk/wecom-crypto/callbacks.mjs push URL TOKEN AES_KEY CORP_ID AGENT_ID CONTENT
//   node tests/sdk/wecom-crypto/callbacks.mjs open TOKEN AES_KEY CORP_ID < request.json
//
// @wecom/crypto does the signature and the AES; the XML around it is WeCom's fixed shape,
// read here with one pattern per field (CDATA or plain text).
import { readFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';

let sdk;
try {
  sdk = await import('@wecom/crypto');
} catch (e) {
  console.error('@wecom/crypto is not installed: run `npm ci` in tests/sdk/wecom-crypto');
  process.exit(2);
}
const { getSignature, encrypt, decrypt } = sdk;
const VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/@wecom/crypto/package.json', import.meta.url)),
).version;

function done(ok, seen) {
  console.log(JSON.stringify({ ...seen, ok, sdk: `@wecom/crypto ${VERSION}` }));
  process.exit(ok ? 0 : 1);
}

function field(xml, name) {
  const m = xml.match(new RegExp(`<${name}>(?:<!\\[CDATA\\[([\\s\\S]*?)\\]\\]>|([^<]*))</${name}>`));
  return m ? (m[1] ?? m[2]) : undefined;
}

function sealed(token, key, corp, plaintext) {
  const ciphered = encrypt(key, plaintext, corp);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = String(randomInt(100000000, 2 ** 47));
  return { ciphered, timestamp, nonce, signature: getSignature(token, timestamp, nonce, ciphered) };
}

async function call(url, params, body) {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.append(k, v);
  const r = await fetch(u, {
    method: body === undefined ? 'GET' : 'POST',
    body,
    headers: body === undefined ? {} : { 'content-type': 'text/xml' },
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, body: await r.text() };
}

async function verify(url, token, key, corp) {
  const echo = String(randomInt(1, 2 ** 47)) + String(randomInt(1, 2 ** 47));
  const s = sealed(token, key, corp, echo);
  const r = await call(url, {
    msg_signature: s.signature, timestamp: s.timestamp, nonce: s.nonce, echostr: s.ciphered,
  });
  done(r.status === 200 && r.body === echo, { status: r.status, body: r.body });
}

async function push(url, token, key, corp, agent, content) {
  const now = Math.floor(Date.now() / 1000);
  const message = `<xml><ToUserName><![CDATA[${corp}]]></ToUserName>`
    + '<FromUserName><![CDATA[zhangsan]]></FromUserName>'
    + `<CreateTime>${now}</CreateTime><MsgType><![CDATA[text]]></MsgType>`
    + `<Content><![CDATA[${content}]]></Content>`
    + `<MsgId>${now}${randomInt(100000, 999999)}</MsgId><AgentID>${agent}</AgentID></xml>`;
  const s = sealed(token, key, corp, message);
  const envelope = `<xml><ToUserName><![CDATA[${corp}]]></ToUserName>`
    + `<AgentID><![CDATA[${agent}]]></AgentID><Encrypt><![CDATA[${s.ciphered}]]></Encrypt></xml>`;
  const r = await call(url, { msg_signature: s.signature, timestamp: s.timestamp, nonce: s.nonce }, envelope);
  let reply = null;
  if (r.body.trim() !== '') {
    const enc = field(r.body, 'Encrypt');
    const sig = field(r.body, 'MsgSignature');
    const ts = field(r.body, 'TimeStamp');
    const nonce = field(r.body, 'Nonce');
    if (!enc || getSignature(token, ts ?? '', nonce ?? '', enc) !== sig) {
      done(false, { status: r.status, body: r.body, error: 'the reply signature does not match' });
    }
    const opened = decrypt(key, enc);
    if (opened.id !== corp) {
      done(false, { status: r.status, body: r.body, error: `the reply is for ${opened.id}` });
    }
    reply = opened.message;
  }
  done(r.status === 200, { status: r.status, message, reply });
}

function open(token, key, corp) {
  const req = JSON.parse(readFileSync(0, 'utf8'));
  if (getSignature(token, req.timestamp, req.nonce, req.encrypt) !== req.msg_signature) {
    done(false, { error: 'the signature does not match' });
  }
  let opened;
  try {
    opened = decrypt(key, req.encrypt);
  } catch (e) {
    done(false, { error: String(e) });
  }
  if (opened.id !== corp) done(false, { error: `the receive id is ${opened.id}` });
  done(true, { plaintext: opened.message });
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'verify' && args.length === 4) await verify(...args);
  else if (cmd === 'push' && args.length === 6) await push(...args);
  else if (cmd === 'open' && args.length === 3) open(...args);
  else {
    console.error('usage: callbacks.mjs verify|push URL TOKEN AES_KEY CORP_ID [AGENT_ID CONTENT] | open TOKEN AES_KEY CORP_ID');
    process.exit(1);
  }
} catch (e) {
  done(false, { error: String(e) });
}
