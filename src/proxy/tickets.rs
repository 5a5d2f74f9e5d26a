//! The JS-SDK answers made from the ticket cache (`crate::ticket`): the app's
//! `get_jsapi_ticket` and `ticket/get?type=agent_config`, WeCom-shaped with the real ticket (the
//! app signs with it) and its remaining `expires_in`; and `GET /sidecar/jsapi/signature`, the
//! page signature made here, so an app need not hold a ticket at all.

use std::sync::{Arc, LazyLock};

use pingora::protocols::http::ServerSession as Session;

use super::refusal::Refusal;
use super::{authenticate, read_body, request, RequestCtx};
use crate::state::{Runtime, Shared};
use crate::ticket::{signature, TicketKind};
use crate::token::{AppTokens, Token};
use crate::wecom::answer::{LocalAnswer, Reason};
use crate::wecom::apis::BodyKind;
use crate::wecom::errcode;

/// The signature endpoint, on the app port.
pub const SIGNATURE_PATH: &str = "/sidecar/jsapi/signature";
/// Its `api` label.
static SIGNATURE_API: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("sidecar/jsapi/signature"));

/// The valid ticket of `kind` for `app`, from the cache (fetched once when none is), within
/// the route's `deadline`.
async fn ticket(
    shared: &Shared,
    rt: &Runtime,
    app: &AppTokens,
    kind: TicketKind,
    deadline: std::time::Duration,
) -> Result<Arc<Token>, Refusal> {
    let src = rt.token_source(&shared.resolver);
    let got = tokio::time::timeout(
        deadline,
        shared.tickets.get(kind, app, &shared.tokens, &src),
    )
    .await
    .map_err(|_| Refusal::Deadline { deadline })?;
    got.map_err(|error| Refusal::NoTicket {
        app: app.app.name.clone(),
        kind: kind.as_str(),
        error,
    })
}

/// `get_jsapi_ticket` / `ticket/get?type=agent_config`, answered locally.
pub(super) async fn answer_ticket(
    shared: &Shared,
    rt: &Runtime,
    app: &AppTokens,
    kind: TicketKind,
    deadline: std::time::Duration,
) -> Result<LocalAnswer, Refusal> {
    let t = ticket(shared, rt, app, kind, deadline).await?;
    let mut extra = serde_json::Map::new();
    extra.insert("ticket".into(), t.expose().into());
    let left = t.expires_in(std::time::Instant::now()).as_secs();
    extra.insert("expires_in".into(), left.into());
    let mut a = LocalAnswer::new(200, Reason::Ticket, errcode::OK, "ok");
    a.extra = Some(extra);
    Ok(a)
}

/// `GET /sidecar/jsapi/signature?url=…&kind=corp|agent` (`kind` defaults to corp). With
/// `clients:` set, the call must be signed like every call, and its client may use the app.
pub(super) async fn answer_signature(
    shared: &Shared,
    rt: &Runtime,
    session: &mut Session,
    noted: &request::Noted,
    ctx: &mut RequestCtx,
    path: &str,
    query: &str,
) -> Result<LocalAnswer, Refusal> {
    ctx.api = SIGNATURE_API.clone();
    if session.req_header().method != http::Method::GET {
        return Err(Refusal::Method);
    }
    let client = if rt.config.clients.is_empty() {
        None
    } else {
        let (_, hash) = read_body::read_body(session, noted, BodyKind::Json, true).await?;
        let clients = &rt.config.clients;
        let c = authenticate::authenticate(shared, clients, session, path, query, &hash)?;
        ctx.client = Some(c.name.clone());
        Some(c)
    };
    let app = request::choose_app(rt, noted.app(), query)?;
    ctx.app = Some(app.app.name.clone());
    if let Some(c) = client {
        authenticate::may_use(shared, c, &app.app.name)?;
    }
    let kind = match request::query_value(query, "kind").as_deref() {
        None | Some("corp") => TicketKind::Jsapi,
        Some("agent") => TicketKind::AgentConfig,
        Some(_) => {
            return Err(Refusal::SignatureRequest {
                why: "takes kind=corp (the corp's jsapi_ticket, for wx.config) or kind=agent (the app's, for wx.agentConfig)",
            })
        }
    };
    let url = request::query_value(query, "url")
        .filter(|u| !u.is_empty())
        .ok_or(Refusal::SignatureRequest {
            why: "needs url=<the page URL, percent-encoded>",
        })?;
    let deadline = rt.config.defaults.deadline;
    let t = ticket(shared, rt, app, kind, deadline).await?;
    let timestamp = crate::signing::now_secs();
    let nonce = signature::nonce();
    let mut extra = serde_json::Map::new();
    match kind {
        TicketKind::Jsapi => extra.insert("corpid".into(), app.app.corp_id.as_str().into()),
        TicketKind::AgentConfig => extra.insert("agentid".into(), app.app.agent_id.into()),
    };
    extra.insert("timestamp".into(), timestamp.into());
    extra.insert(
        "signature".into(),
        signature::sign(t.expose(), &nonce, timestamp, &url).into(),
    );
    extra.insert("nonceStr".into(), nonce.into());
    let mut a = LocalAnswer::new(200, Reason::Ticket, errcode::OK, "ok");
    a.extra = Some(extra);
    Ok(a)
}
