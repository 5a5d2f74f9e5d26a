// A page signature made by wecom-sidecar's GET /sidecar/jsapi/signature, checked with WeCom's
// own @wecom/crypto (pinned in package.json; `npm ci` here installs it): getJsApiSignature,
// given the ticket the sidecar answers, the page URL without its fragment and the sidecar's
// nonceStr and timestamp, must make the same signature. Run by tests/e2e/tickets/sdk.rs:
//
//   node tests/sdk/wecom-crypto/jsapi_signature.mjs BASE APP KIND PAGE_URL
//
// KIND is corp (the jsapi_ticket, from get_jsapi_ticket) or agent (the agent_config ticket).
// Prints one JSON line; exits 0 when the signatures agree, 2 without @wecom/crypto, 1 otherwise.
let sdk;
try {
  sdk = await import('@wecom/crypto');
} catch (e) {
  console.error('@wecom/crypto is not installed: run `npm ci` in tests/sdk/wecom-crypto');
  process.exit(2);
}
const { getJsApiSignature } = sdk;
const [base, app, kind, page] = process.argv.slice(2);

async function json(path) {
  const r = await fetch(base + path, { headers: { 'X-WeCom-App': app } });
  return r.json();
}

const ticketPath = kind === 'agent' ? '/cgi-bin/ticket/get?type=agent_config' : '/cgi-bin/get_jsapi_ticket';
const t = await json(ticketPath);
const s = await json(`/sidecar/jsapi/signature?kind=${kind}&url=${encodeURIComponent(page)}`);
const url = page.split('#')[0];
const mine = getJsApiSignature({ url, ticket: t.ticket, nonceStr: s.nonceStr, timestamp: s.timestamp });
const ok = t.errcode === 0 && s.errcode === 0 && mine.signature === s.signature;
console.log(JSON.stringify({ ok, kind, errcode: s.errcode, corpid: s.corpid, agentid: s.agentid, agree: mine.signature === s.signature }));
process.exit(ok ? 0 : 1);
