"""WeCom's side of callbacks, done by wechatpy 1.8.18 (`wechatpy.enterprise.crypto.WeChatCrypto`):
URL verification, a push and its passive reply, against a callback URL; and opening a message
someone else encrypted. Run by tests/e2e/callbacks_sdk.rs and tests/e2e/callbacks_sdk_sim.rs:

    python3 tests/sdk/wechatpy_callbacks.py verify URL TOKEN AES_KEY CORP_ID
    python3 tests/sdk/wechatpy_callbacks.py push URL TOKEN AES_KEY CORP_ID AGENT_ID CONTENT
    python3 tests/sdk/wechatpy_callbacks.py open TOKEN AES_KEY CORP_ID < request.json

`verify` sends WeCom's GET with an `echostr` wechatpy encrypted and checks the answer is its
plaintext. `push` POSTs a text message wechatpy encrypted and signed in WeCom's envelope, and
opens a passive reply (if the answer has a body) with wechatpy. `open` reads
{"msg_signature", "timestamp", "nonce", "encrypt"} on stdin and prints the plaintext wechatpy
decrypts after checking the signature. Each prints one JSON line; exit 0 when all went as
WeCom expects, 2 when wechatpy is not installed, 1 otherwise.
"""

import json
import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

try:
    import wechatpy
    from wechatpy.enterprise.crypto import WeChatCrypto
except ImportError:
    print("wechatpy is not installed: pip install wechatpy==1.8.18", file=sys.stderr)
    sys.exit(2)


def done(ok, **seen):
    seen["ok"] = ok
    seen["sdk"] = "wechatpy " + wechatpy.__version__
    print(json.dumps(seen))
    sys.exit(0 if ok else 1)


def sealed(crypto, plaintext):
    """wechatpy's encryption of `plaintext`: (encrypt, msg_signature, timestamp, nonce)."""
    nonce = str(random.randint(10**8, 10**10))
    timestamp = str(int(time.time()))
    reply = ET.fromstring(crypto.encrypt_message(plaintext, nonce, timestamp))
    return reply.findtext("Encrypt"), reply.findtext("MsgSignature"), timestamp, nonce


def call(url, params, body=None):
    """One request as WeCom makes it: (status, body bytes)."""
    sep = "&" if urllib.parse.urlsplit(url).query else "?"
    full = url + sep + urllib.parse.urlencode(params)
    req = urllib.request.Request(full, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", "text/xml")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def verify(url, token, key, corp):
    crypto = WeChatCrypto(token, key, corp)
    echo = str(random.randint(10**18, 10**19 - 1))
    encrypt, signature, timestamp, nonce = sealed(crypto, echo)
    status, body = call(
        url,
        {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce, "echostr": encrypt},
    )
    done(status == 200 and body == echo.encode(), status=status, body=body.decode("utf-8", "replace"))


def push(url, token, key, corp, agent, content):
    crypto = WeChatCrypto(token, key, corp)
    now = int(time.time())
    message = (
        f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName>"
        f"<FromUserName><![CDATA[zhangsan]]></FromUserName>"
        f"<CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{now}{random.randint(100000, 999999)}</MsgId><AgentID>{agent}</AgentID></xml>"
    )
    encrypt, signature, timestamp, nonce = sealed(crypto, message)
    envelope = (
        f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName>"
        f"<AgentID><![CDATA[{agent}]]></AgentID>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    )
    status, body = call(
        url,
        {"msg_signature": signature, "timestamp": timestamp, "nonce": nonce},
        envelope.encode(),
    )
    reply = None
    if body.strip():
        try:
            env = ET.fromstring(body)
            reply = crypto.decrypt_message(
                body,
                env.findtext("MsgSignature"),
                env.findtext("TimeStamp"),
                env.findtext("Nonce"),
            )
        except Exception as e:  # a broken envelope or a bad signature alike
            done(False, status=status, body=body.decode("utf-8", "replace"), error=repr(e))
    if isinstance(reply, bytes):
        reply = reply.decode()
    done(status == 200, status=status, message=message, reply=reply)


def open_(token, key, corp):
    crypto = WeChatCrypto(token, key, corp)
    req = json.load(sys.stdin)
    envelope = f"<xml><Encrypt><![CDATA[{req['encrypt']}]]></Encrypt></xml>"
    try:
        plain = crypto.decrypt_message(envelope, req["msg_signature"], req["timestamp"], req["nonce"])
    except Exception as e:
        done(False, error=repr(e))
    if isinstance(plain, bytes):
        plain = plain.decode()
    done(True, plaintext=plain)


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "verify" and len(args) == 4:
        verify(*args)
    elif cmd == "push" and len(args) == 6:
        push(*args)
    elif cmd == "open" and len(args) == 3:
        open_(*args)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
