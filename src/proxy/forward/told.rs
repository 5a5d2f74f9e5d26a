//! What WeCom's answers told beside their errcode, recorded: recipients a send did not reach
//! (`wecom_message_undelivered_total`, and the counts in the call's access line) and the
//! address it refused as untrusted (60020: `wecom_egress_ip_info`, `/admin/status`, and one
//! WARN line per address and app with the fix).

use std::net::IpAddr;

use crate::metrics::Metrics;
use crate::proxy::RequestCtx;
use crate::state::Shared;
use crate::token::TokenError;
use crate::wecom::facts::{self, Undelivered};
use crate::wecom::{apis, egress, errcode};

/// A message API's (`name` in the API table) errcode-0 answer that did not reach every
/// recipient, counted under the call's `api` label.
pub(super) fn undelivered(
    metrics: &Metrics,
    ctx: &mut RequestCtx,
    (name, api): (&str, &str),
    app: &str,
    u: Undelivered,
) {
    if u.is_empty() || !is_message_api(name) {
        return;
    }
    for (kind, n) in u.kinds() {
        if n > 0 {
            metrics
                .message_undelivered
                .with_label_values(&[api, app, kind])
                .inc_by(u64::from(n));
        }
    }
    ctx.undelivered = Some(u);
}

/// The message APIs whose answers list unreached recipients.
fn is_message_api(api: &str) -> bool {
    apis::caps_recipients(api) || api == "appchat/send"
}

/// WeCom refused `app`'s call from `ip` (60020).
pub(super) fn untrusted(shared: &Shared, app: &str, ip: IpAddr, via: &'static str) {
    let news = shared.egress.saw(ip, app);
    if news.new_latest {
        let info = &shared.metrics.egress_ip_info;
        info.reset();
        info.with_label_values(&[&ip.to_string()]).set(1);
    }
    if news.first_for_app {
        tracing::warn!(
            ip = %ip,
            app = %app,
            via,
            errcode = errcode::IP_NOT_TRUSTED,
            fix = %egress::fix(ip, app),
            "WeCom refused this sidecar's address as untrusted (60020)"
        );
    }
}

/// A gettoken WeCom refused with 60020 (the call's `no-token` answer says it too).
pub(super) fn untrusted_gettoken(shared: &Shared, app: &str, e: &TokenError) {
    if let TokenError::Rejected {
        errcode: errcode::IP_NOT_TRUSTED,
        errmsg,
    } = e
    {
        if let Some(ip) = facts::from_ip(errmsg) {
            untrusted(shared, app, ip, "gettoken");
        }
    }
}
