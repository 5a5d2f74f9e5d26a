"""wechatpy 1.8.18's JS-SDK ticket calls through a wecom-sidecar, cold and all at once: N
threads, each with its own client (so its own empty ticket cache, as N app processes would
have), call `client.jsapi.get_jsapi_ticket()` and `client.jsapi.get_agent_ticket()` together;
then the sidecar's `GET /sidecar/jsapi/signature` answer is checked with wechatpy's own
`get_jsapi_signature`. Run by tests/e2e/tickets/sdk.rs:

    python3 tests/sdk/wechatpy_tickets.py http://127.0.0.1:8080 wwtest0000000001 hr-bot 200 URL

Prints one JSON line (how many distinct tickets each kind got, whether the signatures agree);
exits 0 when every call answered a ticket and both signatures agree, 2 when wechatpy is not
installed, 1 otherwise.
"""

import json
import sys
import threading
import urllib.parse
import urllib.request

try:
    from wechatpy.enterprise import WeChatClient
except ImportError:
    print("wechatpy is not installed: pip install wechatpy==1.8.18", file=sys.stderr)
    sys.exit(2)


def client_for(base, corp_id, app):
    c = WeChatClient(corp_id, "unused", access_token=app)
    c.API_BASE_URL = base + "/cgi-bin/"
    return c


def main():
    base, corp_id, app, n, page = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    start = threading.Barrier(n)
    jsapi, agent, failures = [], [], []
    lock = threading.Lock()

    def one():
        c = client_for(base, corp_id, app)
        start.wait()
        try:
            t = c.jsapi.get_jsapi_ticket()
            a = c.jsapi.get_agent_ticket()
            with lock:
                jsapi.append(t)
                agent.append(a["ticket"])
        except Exception as e:  # noqa: BLE001 - every failure is reported
            with lock:
                failures.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    c = client_for(base, corp_id, app)
    agree = {}
    for kind, ticket in (("corp", c.jsapi.get_jsapi_ticket()), ("agent", c.jsapi.get_agent_ticket()["ticket"])):
        q = urllib.parse.urlencode({"kind": kind, "url": page})
        req = urllib.request.Request(f"{base}/sidecar/jsapi/signature?{q}", headers={"X-WeCom-App": app})
        s = json.loads(urllib.request.urlopen(req).read())
        mine = c.jsapi.get_jsapi_signature(s["nonceStr"], ticket, s["timestamp"], page.split("#")[0])
        agree[kind] = s["errcode"] == 0 and mine == s["signature"]

    seen = {
        "calls": len(jsapi),
        "failures": failures[:3],
        "distinct_jsapi": len(set(jsapi)),
        "distinct_agent": len(set(agent)),
        "signatures_agree": agree,
    }
    print(json.dumps(seen))
    ok = not failures and len(jsapi) == n and len(set(jsapi)) == 1 and len(set(agent)) == 1
    sys.exit(0 if ok and all(agree.values()) else 1)


if __name__ == "__main__":
    main()
