"""wechatpy 1.8.18 through a wecom-sidecar: the setting README "SDKs" gives, then user,
department, tag, message, media, group chat and misc calls, each checked against what WeCom
documents it answers. Run by tests/e2e/newcomer/sdk.rs:

    python3 tests/sdk/wechatpy_calls.py http://127.0.0.1:8080 wwdev0000000000001 hr-bot

Prints one JSON line of what it saw; exits 0 when every call answered as expected, 2 when
wechatpy is not installed, 1 otherwise.
"""

import io
import json
import sys

try:
    import wechatpy
    from wechatpy.enterprise import WeChatClient
    from wechatpy.exceptions import WeChatClientException
except ImportError:
    print("wechatpy is not installed: pip install wechatpy==1.8.18", file=sys.stderr)
    sys.exit(2)


def check(what, ok, got):
    if not ok:
        print(f"FAILED {what}: {got!r}", file=sys.stderr)
        sys.exit(1)


def main():
    base, corp_id, app = sys.argv[1], sys.argv[2], sys.argv[3]
    # The README row: fetch_access_token hard-codes https://qyapi.weixin.qq.com, so the token
    # is given up front (the sidecar takes the app's name as its token) and API_BASE_URL is
    # pointed at the sidecar. The secret is never used.
    client = WeChatClient(corp_id, "unused", access_token=app)
    client.API_BASE_URL = base + "/cgi-bin/"
    seen = {"wechatpy": wechatpy.__version__}

    # Members.
    r = client.user.create("newcomer1", "New Comer", department=[2], position="Intern")
    check("user.create", r["errcode"] == 0, r)
    u = client.user.get("newcomer1")
    check("user.get", u["name"] == "New Comer" and u["department"] == [2], u)
    r = client.user.update("newcomer1", position="Engineer")
    check("user.update", r["errcode"] == 0, r)
    check("user.get after update", client.user.get("newcomer1")["position"] == "Engineer", None)
    members = client.user.list(2)
    check("user.list", "newcomer1" in [m["userid"] for m in members], members)
    simple = client.department.get_users(1, fetch_child=1)
    check("user.simplelist", {"zhangsan", "newcomer1"} <= {m["userid"] for m in simple}, simple)
    r = client.user.convert_to_openid("newcomer1")
    check("user.convert_to_openid", r["openid"], r)
    back = client.user.convert_to_user_id(r["openid"])
    check("user.convert_to_userid", back == "newcomer1", back)
    try:
        client.user.create("newcomer1", "Again")
        check("user.create twice", False, "accepted")
    except WeChatClientException as e:
        check("user.create twice", e.errcode == 60102, e.errcode)
    seen["users"] = len(members)

    # Departments.
    r = client.department.create("Ops", parent_id=1)
    dept = r["id"]
    depts = client.department.get()
    check("department.list", dept in [d["id"] for d in depts], depts)
    r = client.department.update(dept, name="Operations")
    check("department.update", r["errcode"] == 0, r)
    names = {d["id"]: d["name"] for d in client.department.get(1)}
    check("department.list id=1", names.get(dept) == "Operations", names)
    r = client.department.delete(dept)
    check("department.delete", r["errcode"] == 0, r)
    check("department gone", dept not in [d["id"] for d in client.department.get()], None)
    seen["department"] = dept

    # Tags.
    r = client.tag.create("oncall")
    tag = r["tagid"]
    tags = client.tag.list()
    check("tag.list", {"tagid": tag, "tagname": "oncall"} in tags, tags)
    r = client.tag.add_users(tag, ["zhangsan", "newcomer1", "ghost"])
    check("tag.addtagusers", r["errcode"] == 0 and r.get("invalidlist") == "ghost", r)
    got = client.tag.get_users(tag)
    check("tag.get", sorted(u["userid"] for u in got["userlist"]) == ["newcomer1", "zhangsan"], got)
    r = client.tag.delete_users(tag, ["zhangsan"])
    check("tag.deltagusers", r["errcode"] == 0, r)
    check("tag.get after del", [u["userid"] for u in client.tag.get_users(tag)["userlist"]] == ["newcomer1"], None)
    r = client.tag.delete(tag)
    check("tag.delete", r["errcode"] == 0, r)
    check("tag gone", all(t["tagid"] != tag for t in client.tag.list()), None)
    seen["tag"] = tag

    # Messages.
    r = client.message.send_text(1000002, "zhangsan|newcomer1", "hello from wechatpy")
    check("message.send", r["errcode"] == 0 and r["msgid"], r)

    # Media: upload, then download. media.download and media.get_url build
    # https://qyapi.weixin.qq.com/... themselves, so the download goes through the client.
    data = bytes(range(256)) * 40
    r = client.media.upload("file", ("report.bin", io.BytesIO(data)))
    media_id = r["media_id"]
    check("media.upload", media_id and r["type"] == "file", r)
    res = client._get("media/get", params={"media_id": media_id})
    check("media.get", getattr(res, "content", None) == data, type(res))
    seen["media_bytes"] = len(data)

    # Group chats.
    r = client.appchat.create(name="standup", owner="zhangsan", user_list=["zhangsan", "lisi"])
    chat = r["chatid"]
    info = client.appchat.get(chat)
    check("appchat.get", info["name"] == "standup" and info["userlist"] == ["zhangsan", "lisi"], info)
    r = client.appchat.send_text(chat, "standup in 5")
    check("appchat.send", r["errcode"] == 0, r)

    # Misc.
    ips = client.misc.get_wechat_ips()
    check("getcallbackip", isinstance(ips, list) and ips, ips)

    # The user is deleted last: gone from user.get too.
    r = client.user.delete("newcomer1")
    check("user.delete", r["errcode"] == 0, r)
    try:
        client.user.get("newcomer1")
        check("user.get after delete", False, "found")
    except WeChatClientException as e:
        check("user.get after delete", e.errcode == 60111, e.errcode)

    print(json.dumps(seen))


if __name__ == "__main__":
    main()
