//! The built-in table of WeCom APIs: the one place that says which calls are reads (safe to
//! repeat), which carry media, and which authenticate with a robot `key` instead of a token.
//!
//! The HTTP method does not tell reads from writes on WeCom: `user/delete`, `tag/delete` and
//! `department/delete` are GET writes; `user/list_id`, `externalcontact/batch/get_by_user`,
//! `externalcontact/groupchat/list` and `externalcontact/get_corp_tag_list` are POST reads. APIs
//! not in this table are treated as writes (never repeated) and counted under the `other` label
//! unless a route names them. A route's `idempotent` overrides the table.

/// How the body of a call travels through the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// Small JSON (or empty) request and JSON answer: both buffered so `errcode` can be read.
    Json,
    /// Multipart upload up to 20 MB: spooled to a temporary file, never held in memory whole.
    Upload,
    /// Binary download: streamed to the app as it arrives (JSON error answers are still read).
    Download,
}

/// How a call authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `access_token` query parameter, injected by the sidecar.
    Token,
    /// Group robot `key` query parameter, sent by the app; nothing is injected.
    RobotKey,
}

/// What the sidecar knows about one WeCom API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiInfo {
    /// Path after `/cgi-bin/`, also the metric label.
    pub name: &'static str,
    /// Safe to send twice: a read, or a write that is naturally idempotent.
    pub idempotent: bool,
    pub body: BodyKind,
    pub auth: Auth,
}

const fn read(name: &'static str) -> ApiInfo {
    ApiInfo {
        name,
        idempotent: true,
        body: BodyKind::Json,
        auth: Auth::Token,
    }
}
const fn write(name: &'static str) -> ApiInfo {
    ApiInfo {
        name,
        idempotent: false,
        body: BodyKind::Json,
        auth: Auth::Token,
    }
}

/// Every API the sidecar knows by name. Lookup is by exact path after `/cgi-bin/`.
pub static APIS: &[ApiInfo] = &[
    // Contacts: members
    read("user/get"),
    read("user/simplelist"),
    read("user/list"),
    read("user/list_id"),
    read("user/getuserid"),
    read("user/get_userid_by_email"),
    read("user/convert_to_openid"),
    read("user/convert_to_userid"),
    write("user/create"),
    write("user/update"),
    write("user/delete"),
    write("user/batchdelete"),
    write("user/authsucc"),
    // Contacts: departments
    read("department/list"),
    read("department/simplelist"),
    read("department/get"),
    write("department/create"),
    write("department/update"),
    write("department/delete"),
    // Contacts: tags
    read("tag/get"),
    read("tag/list"),
    write("tag/create"),
    write("tag/update"),
    write("tag/delete"),
    write("tag/addtagusers"),
    write("tag/deltagusers"),
    // Apps and identity (`gettoken` is answered by the sidecar itself)
    read("gettoken"),
    read("agent/get"),
    read("agent/list"),
    write("agent/set"),
    read("auth/getuserinfo"),
    read("auth/getuserdetail"),
    read("getcallbackip"),
    read("get_api_domain_ip"),
    read("corp/get_join_qrcode"),
    read("ticket/get"),
    read("get_jsapi_ticket"),
    // Messages: never repeated unless the body asks WeCom to drop duplicates
    write("message/send"),
    write("message/recall"),
    write("message/update_template_card"),
    read("message/get_statistics"),
    write("appchat/create"),
    write("appchat/update"),
    read("appchat/get"),
    write("appchat/send"),
    write("linkedcorp/message/send"),
    // External contacts
    read("externalcontact/get"),
    read("externalcontact/list"),
    read("externalcontact/batch/get_by_user"),
    read("externalcontact/get_follow_user_list"),
    read("externalcontact/groupchat/list"),
    read("externalcontact/groupchat/get"),
    read("externalcontact/get_corp_tag_list"),
    read("externalcontact/get_contact_way"),
    read("externalcontact/get_groupmsg_list_v2"),
    write("externalcontact/add_corp_tag"),
    write("externalcontact/edit_corp_tag"),
    write("externalcontact/del_corp_tag"),
    write("externalcontact/mark_tag"),
    write("externalcontact/remark"),
    write("externalcontact/add_msg_template"),
    write("externalcontact/send_welcome_msg"),
    write("externalcontact/add_contact_way"),
    // Office apps (reads that are POSTs)
    read("checkin/getcheckindata"),
    read("checkin/getcheckinoption"),
    read("oa/getapprovalinfo"),
    read("oa/getapprovaldetail"),
    read("oa/gettemplatedetail"),
    write("oa/applyevent"),
    // Media
    ApiInfo {
        name: "media/upload",
        idempotent: false,
        body: BodyKind::Upload,
        auth: Auth::Token,
    },
    ApiInfo {
        name: "media/uploadimg",
        idempotent: false,
        body: BodyKind::Upload,
        auth: Auth::Token,
    },
    ApiInfo {
        name: "media/upload_attachment",
        idempotent: false,
        body: BodyKind::Upload,
        auth: Auth::Token,
    },
    ApiInfo {
        name: "media/get",
        idempotent: true,
        body: BodyKind::Download,
        auth: Auth::Token,
    },
    ApiInfo {
        name: "media/get/jssdk",
        idempotent: true,
        body: BodyKind::Download,
        auth: Auth::Token,
    },
    // Group robots: authenticated by their key
    ApiInfo {
        name: "webhook/send",
        idempotent: false,
        body: BodyKind::Json,
        auth: Auth::RobotKey,
    },
    ApiInfo {
        name: "webhook/upload_media",
        idempotent: false,
        body: BodyKind::Upload,
        auth: Auth::RobotKey,
    },
];

/// Looks an API up by its path after `/cgi-bin/` (e.g. `user/get`).
pub fn lookup(name: &str) -> Option<&'static ApiInfo> {
    APIS.iter().find(|api| api.name == name)
}

/// Message APIs whose `touser` members WeCom caps (30 a minute, 1,000 an hour per member from
/// one app), silently dropping the excess.
pub fn caps_recipients(name: &str) -> bool {
    matches!(name, "message/send" | "linkedcorp/message/send")
}

/// Message APIs that accept `enable_duplicate_check` and `duplicate_check_interval`.
pub fn accepts_duplicate_check(name: &str) -> bool {
    matches!(
        name,
        "message/send" | "appchat/send" | "linkedcorp/message/send"
    )
}

/// What the sidecar assumes of an API it does not know: a JSON write with a token.
pub const UNKNOWN: ApiInfo = ApiInfo {
    name: "other",
    idempotent: false,
    body: BodyKind::Json,
    auth: Auth::Token,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_does_not_decide() {
        assert!(!lookup("user/delete").unwrap().idempotent);
        assert!(!lookup("tag/delete").unwrap().idempotent);
        assert!(!lookup("department/delete").unwrap().idempotent);
        assert!(lookup("user/list_id").unwrap().idempotent);
        assert!(
            lookup("externalcontact/batch/get_by_user")
                .unwrap()
                .idempotent
        );
        assert!(lookup("externalcontact/groupchat/list").unwrap().idempotent);
        assert!(
            lookup("externalcontact/get_corp_tag_list")
                .unwrap()
                .idempotent
        );
        assert!(!lookup("message/send").unwrap().idempotent);
    }

    #[test]
    fn media_and_robots() {
        assert_eq!(lookup("media/upload").unwrap().body, BodyKind::Upload);
        assert_eq!(lookup("media/get").unwrap().body, BodyKind::Download);
        assert_eq!(lookup("webhook/send").unwrap().auth, Auth::RobotKey);
        assert!(lookup("nonexistent/api").is_none());
        const { assert!(!UNKNOWN.idempotent) };
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = APIS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn only_message_apis_cap_members_or_take_a_duplicate_check() {
        for name in ["message/send", "linkedcorp/message/send"] {
            assert!(caps_recipients(name), "{name}");
            assert!(accepts_duplicate_check(name), "{name}");
        }
        // A group chat message has no members WeCom counts, but does take the check.
        assert!(!caps_recipients("appchat/send"));
        assert!(accepts_duplicate_check("appchat/send"));
        for name in ["user/get", "webhook/send", "media/upload", "other", ""] {
            assert!(!caps_recipients(name), "{name}");
            assert!(!accepts_duplicate_check(name), "{name}");
        }
    }
}
