//! A WeCom simulator: the upstream of the tests and of `wecom-sidecar --dev`.
//!
//! It behaves like WeCom where the sidecar cares. Every answer is HTTP 200 JSON
//! `{"errcode": .., "errmsg": ..}` with a `Content-Length`, over HTTP/1.1 keep-alive, unless a
//! fault says otherwise:
//!
//! - `GET /cgi-bin/gettoken?corpid=&corpsecret=`: 40013 unknown corp, 40001 wrong secret, else a
//!   new random `access_token` (96 hex characters) with `expires_in` = [`SimConfig::token_ttl`].
//!   Older tokens of the app stay valid until their own expiry. [`SimConfig`] can make it
//!   answer like the real WeCom (the still-valid token again, with its remaining `expires_in`),
//!   make each token good for one call only, or answer another `expires_in` (e.g. 0).
//! - Business APIs want `access_token`: 41001 missing, 40014 unknown or invalidated, 42001 expired.
//! - Contacts ([`directory`]): `user/*`, `department/*`, `tag/*` on a corp that starts with
//!   three departments and six members and keeps what is created (`user/get` with an empty or
//!   deleted `userid`: 60111; `user/list_id` is a POST read paged by `cursor`/`limit`;
//!   `user/delete` a GET write). Group chats ([`appchat`]). `getcallbackip` and
//!   `get_api_domain_ip` (`ip_list`). `message/send` and
//!   `linkedcorp/message/send` (47001 on bad JSON; counts deliveries per `touser` entry; a
//!   deleted member, or a `toparty`/`totag` id with no department or tag, is not reached and
//!   named in `invaliduser`, `invalidparty`, `invalidtag` of the errcode-0 answer; with
//!   `enable_duplicate_check: 1`, identical JSON from the same app inside
//!   `duplicate_check_interval` (default 1800 s, at most 14400 s) is answered but not delivered),
//!   `media/upload` (multipart, field `media`; 44001 without it), `media/get` (binary;
//!   `media_id=gen-N` streams N deterministic bytes, see [`body::generated_bytes`]; 40007 unknown).
//! - JS-SDK tickets ([`ticket`]): `get_jsapi_ticket` (the corp's) and
//!   `ticket/get?type=agent_config` (the app's) want `access_token` like any API and answer
//!   `{"errcode":0,"errmsg":"ok","ticket":…,"expires_in":…}`, a new ticket each fetch, counted in
//!   [`Counters::tickets`]; past [`SimConfig::ticket_limit_per_corp`] (400) or
//!   [`SimConfig::ticket_limit_per_app`] (100) fetches in an hour, 45009; another `type`, 40058.
//! - Group robots, `webhook/send` and `webhook/upload_media`, want `key` instead of a token
//!   (93000 without). What each delivered message said is kept in order
//!   ([`Counters::messages`], [`Counters::robot_messages`]).
//! - Any other `/cgi-bin/` path: HTTP 404 with `{"errcode":404,"errmsg":"not found: …"}`, token
//!   or not ([`Simulator::implemented_apis`] lists the rest). Any path not under `/cgi-bin/` or
//!   `/sim/`: HTTP 404.
//!
//! # Control API
//!
//! On the same listener (the examples use `--dev`'s address, `127.0.0.1:18480`). Control calls
//! are not counted in `calls`.
//!
//! | call | effect |
//! | --- | --- |
//! | `POST /sim/faults` (body: a fault) | inject a fault (400 with the reason if malformed) |
//! | `GET /sim/faults` | the faults in force, in order, with the `times` they have left |
//! | `DELETE /sim/faults` | clear every fault |
//! | `POST /sim/tokens/expire` | every token issued so far now answers 42001 |
//! | `POST /sim/tokens/invalidate` | every token issued so far now answers 40014 |
//! | `GET /sim/counters` | [`Counters`] as JSON |
//! | `POST /sim/counters/reset` | zero the counters |
//! | `POST /sim/down` `{"for": "60s"}` | WeCom down ([`Simulator::go_down`]): every `/cgi-bin/` call gets, in turn, a reset and a 503, for that long (body empty or without `for`: until cleared) |
//! | `GET /sim/down` | `{"down": true\|false}` |
//! | `DELETE /sim/down` | WeCom up again |
//! | `GET /sim/messages` | `{"total": N, "messages": [{"n", "app", "path", "body"}]}`: the messages delivered (`message/send`, `linkedcorp/message/send`, `appchat/send`, `webhook/send`, app `webhook`), oldest first, bodies as received (the last 100,000; one the duplicate check held back is not there) |
//! | `DELETE /sim/messages` | forget the delivered messages |
//! | `POST /sim/callbacks/push` (body: a push) | push to a callback URL as WeCom does (below); answers what each attempt got |
//! | `POST /sim/callbacks/verify` `{"to": URL, "app": A}` | WeCom's URL verification: a GET with `echostr`; `ok` when the answer is the decrypted `echostr` |
//! | `GET\|POST /sim/callbacks/endpoint/{app}` | a reference callback URL: answers as a correct implementation (echostr; 403 on a bad push; the receiver's told body as an encrypted passive reply) |
//! | `POST /sim/receiver` | the `--dev` app: records the delivery (query, headers, body), answers as told |
//! | `GET /sim/receiver` | `{"total": N, "deliveries": [{"n", "query", "headers", "body"}]}`, oldest first (the last 10,000) |
//! | `DELETE /sim/receiver` | forget the deliveries |
//! | `POST /sim/receiver/reply` `{"status": 200, "body": "<xml>…</xml>", "delay": "4s"}` | how the receiver answers from now on (each key optional; a body is the app's passive reply) |
//! | `DELETE /sim/receiver/reply` | the receiver answers 200, empty, at once again |
//!
//! A push (`POST /sim/callbacks/push`) is JSON `{"to": URL, "app": A, "kind": "text"|"event",
//! "content": C, "event": E, "event_key": K, "from": U, "repeat": N, "fresh": false}` (only `to`
//! and `app` required; defaults: text, "hello", "click", "", "zhangsan", 1). It builds the
//! message XML WeCom pushes (`ToUserName` = the corp id, `FromUserName`, `CreateTime`,
//! `MsgType`, `Content` and `MsgId` or `Event` and `EventKey`, `AgentID`), encrypts and signs it
//! with app `A`'s callback Token and EncodingAESKey ([`SimApp`]; [`callback::crypto`] is the
//! simulator's own implementation), and POSTs `<xml><ToUserName/><AgentID/><Encrypt/></xml>`
//! to `URL?msg_signature=&timestamp=&nonce=`, waiting 5 s for each answer as WeCom does. `N`
//! (1 to 10) sends the same request N times in all, as WeCom's retries do (`fresh`: each one
//! encrypted anew, the same message inside). The answer: `{"ok", "app", "message", "msg_id",
//! "attempts": [{"status", "body", "reply", "reply_error", "ms"} or {"error", "ms"}]}`, where
//! `reply` is the passive reply decrypted (its signature checked), `null` for an empty answer,
//! and `ok` says every attempt got 200 with a reply that opened (or none).
//!
//! ```sh
//! # --dev: push a text to hr-bot's callback URL, WeCom's 3 retries included; then an event.
//! curl -X POST localhost:18480/sim/callbacks/push \
//!      -d '{"to":"http://127.0.0.1:8090/callback/hr-bot","app":"hr-bot","content":"hi","repeat":4}'
//! curl -X POST localhost:18480/sim/callbacks/push \
//!      -d '{"to":"http://127.0.0.1:8090/callback/hr-bot","app":"hr-bot","kind":"event","event":"click"}'
//! curl -X POST localhost:18480/sim/callbacks/verify -d '{"to":"http://127.0.0.1:8090/callback/hr-bot","app":"hr-bot"}'
//! curl localhost:18480/sim/receiver
//! ```
//!
//! ```sh
//! # The next 2 user/get calls get HTTP 502; then 3 calls to any path get errcode -1.
//! curl -X POST localhost:18480/sim/faults -d '{"path":"/cgi-bin/user/get","kind":{"Status":502},"times":2}'
//! curl -X POST localhost:18480/sim/faults -d '{"path":"*","kind":{"Errcode":-1},"times":3}'
//! # A slow gettoken until cleared ("times" absent or null: until cleared).
//! curl -X POST localhost:18480/sim/faults -d '{"path":"/cgi-bin/gettoken","kind":{"Delay":"2s"}}'
//! curl localhost:18480/sim/faults
//! curl -X DELETE localhost:18480/sim/faults
//! curl -X POST localhost:18480/sim/tokens/expire
//! curl -X POST localhost:18480/sim/tokens/invalidate
//! curl localhost:18480/sim/counters
//! # {"calls":{"/cgi-bin/gettoken":1,"/cgi-bin/user/get":3},"gettoken":{"hr-bot":1},
//! #  "messages_delivered":0,"duplicates_suppressed":0,"delivered_per_user":{},"uploaded_bytes":0}
//! curl -X POST localhost:18480/sim/counters/reset
//! ```
//!
//! # Faults
//!
//! A fault is JSON `{"path": P, "kind": K, "times": N}`. `P` is an exact path
//! (`/cgi-bin/user/get`) or `*` (every `/cgi-bin/` path). `N` is how many calls it applies to;
//! absent or `null`: until cleared. Faults are checked in injection order before anything else
//! (tokens included); the first that matches applies and uses up one of its `times`. `K` is:
//!
//! | `kind` | the call gets |
//! | --- | --- |
//! | `{"Status":502}` | that HTTP status, short text body |
//! | `"Hang"` | no answer for an hour (ends when the client drops the connection) |
//! | `"Reset"` | the connection closed (TCP reset), no answer |
//! | `"Garbage"` | HTTP 200, `Content-Type: application/json`, `<html>oops...` |
//! | `"Truncated"` | `Content-Length: 100`, 10 bytes, then the connection closed |
//! | `{"Errcode":45009}` | HTTP 200 `{"errcode":45009,"errmsg":"api freq out of limit"}` (any code) |
//! | `{"Delay":"250ms"}` | the normal answer, late (`"2s"`, `250` ms, `{"secs":0,"nanos":250000000}`) |
//! | `"LoseAnswer"` | the call is carried out (a message IS delivered), the answer lost: reset |
//! | `"RedirectAbsolute"` | HTTP 302, `Location: http://<Host><path>?<query>` (the call's own URL, token included) |
//! | `"RedirectRelative"` | HTTP 302, `Location: <path>?<query>` |
//! | `"Echo"` | HTTP 200 JSON `errcode` 0 whose body and headers (`Content-Location`, `X-Echo-Url`, `Link`, `X-Echo-Token`) quote the request URL and its `access_token` |
//! | `"GzipEcho"` | HTTP 400, `Content-Encoding: gzip` (not asked for), the compressed body quoting the request URL |
//! | `{"ErrcodeEcho":40001}` | HTTP 200 JSON with that errcode and an errmsg quoting the request URL (on gettoken: the `corpsecret`) |
//! | `"EscapedEcho"` | HTTP 200 JSON `errcode` 0 echoing the request's `access_token`, every character a `\uXXXX` escape |
//! | `"DayLimit"` | HTTP 200 `{"errcode":45009,"errmsg":"reach max api daily quota limit"}` (a daily quota spent) |
//! | `{"UntrustedIp":"203.0.113.7"}` | HTTP 200 errcode 60020, `errmsg` naming that address (`..., from ip: 203.0.113.7, more info at ...`), as WeCom refuses an address the app's trusted IPs lack |
//!
//! WeCom's concurrency limit: after [`Simulator::limit_concurrency`]`(n)`, a business call
//! arriving while `n` calls of its API are in flight gets 45033 (`api concurrent out of
//! limit`) at once; [`Simulator::peak_in_flight`] is the most calls of an API seen at once.
//!
//! A simulator listens on one address; [`Simulator::also_listen`] adds another address of the
//! same simulated WeCom (same tokens, counters and faults), as a standby endpoint is.

mod appchat;
pub mod body;
pub mod callback;
mod concurrency;
mod control;
mod delivered;
mod directory;
mod handlers;
mod multipart;
mod outage;
mod server;
mod state;
mod ticket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use delivered::Delivered;
use state::{lock, ListenerState, State};
pub use state::{Counters, Fault, FaultKind};

/// An app the simulated WeCom knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimApp {
    pub name: String,
    pub corp_id: String,
    pub secret: String,
    /// Its `AgentID` (pushes carry it).
    pub agent_id: u32,
    /// The callback `Token` set in WeCom's console for the app (up to 32 letters and digits).
    pub callback_token: String,
    /// The callback `EncodingAESKey` (43 base64 characters).
    pub callback_aes_key: String,
}

impl SimApp {
    /// An app with callback credentials made from its name ([`dev_callback_credentials`]).
    pub fn new(name: &str, corp_id: &str, secret: &str, agent_id: u32) -> SimApp {
        let (callback_token, callback_aes_key) = dev_callback_credentials(name);
        SimApp {
            name: name.into(),
            corp_id: corp_id.into(),
            secret: secret.into(),
            agent_id,
            callback_token,
            callback_aes_key,
        }
    }
}

/// Dev callback credentials for the app `name`: the Token `devcb` + the name's letters and
/// digits (at most 32 characters), and an `EncodingAESKey` made from SHA-1s of the name.
/// Deterministic, so `--dev`'s config can stand them in; never a real corp's.
pub fn dev_callback_credentials(name: &str) -> (String, String) {
    use base64::Engine;
    use sha1::{Digest, Sha1};
    let mut token: String = "devcb".into();
    token.extend(name.chars().filter(char::is_ascii_alphanumeric));
    token.truncate(32);
    let mut key = Sha1::digest(format!("wecom-sim key {name}")).to_vec();
    key.extend_from_slice(&Sha1::digest(format!("wecom-sim key 2 {name}"))[..12]);
    let mut encoded = base64::engine::general_purpose::STANDARD.encode(key);
    encoded.pop(); // 32 bytes are 44 characters, the last one `=`; WeCom's key has 43.
    (token, encoded)
}

/// The simulated corp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    pub apps: Vec<SimApp>,
    /// `expires_in` of issued tokens (WeCom: 7200 s).
    pub token_ttl: Duration,
    /// WeCom's real behaviour: a `gettoken` while one of the app's tokens is still valid
    /// answers that same token with its remaining `expires_in` (off: a new token each time).
    pub reuse_valid_token: bool,
    /// Each token answers 40014 after its first successful use (a hostile upstream).
    pub one_use_tokens: bool,
    /// The `expires_in` gettoken answers, whatever the token's real life (`token_ttl`).
    pub expires_in_override: Option<u64>,
    /// `expires_in` of issued JS-SDK tickets (WeCom: 7200 s).
    pub ticket_ttl: Duration,
    /// Ticket fetches WeCom allows per hour: `get_jsapi_ticket` per corp (400) and
    /// `ticket/get?type=agent_config` per app (100); past them, 45009.
    pub ticket_limit_per_corp: u32,
    pub ticket_limit_per_app: u32,
}

impl SimConfig {
    /// The apps of `conf/dev.yaml`: `hr-bot` (agent 1000002) and `ops-bot` (1000003) of corp
    /// `wwdev0000000000001`, with callback credentials from [`dev_callback_credentials`].
    pub fn dev() -> Self {
        let corp = "wwdev0000000000001";
        let app =
            |name: &str, agent_id| SimApp::new(name, corp, &format!("dev-secret-{name}"), agent_id);
        SimConfig {
            apps: vec![app("hr-bot", 1000002), app("ops-bot", 1000003)],
            token_ttl: Duration::from_secs(7200),
            reuse_valid_token: false,
            one_use_tokens: false,
            expires_in_override: None,
            ticket_ttl: Duration::from_secs(7200),
            ticket_limit_per_corp: 400,
            ticket_limit_per_app: 100,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self::dev()
    }
}

/// A running simulator: a cheap handle, clones share it. The listener stops on
/// [`Simulator::shutdown`] or when its last handle is dropped.
#[derive(Clone)]
pub struct Simulator {
    addr: SocketAddr,
    state: Arc<State>,
    here: Arc<ListenerState>,
    stop: Arc<watch::Sender<bool>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Binds `addr` (port 0 picks one) and serves on the current tokio runtime.
    pub async fn start(addr: SocketAddr, cfg: SimConfig) -> std::io::Result<Simulator> {
        Self::listen(addr, Arc::new(State::new(cfg))).await
    }

    /// Like [`Simulator::start`], on a tokio runtime of its own in a new thread (for `--dev`,
    /// where pingora owns the other runtimes). The thread ends when the simulator stops.
    pub fn start_on_thread(addr: SocketAddr, cfg: SimConfig) -> std::io::Result<Simulator> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wecom-simulator")
            .enable_all()
            .build()?;
        let sim = rt.block_on(Simulator::start(addr, cfg))?;
        let mut stopped = sim.stop.subscribe();
        std::thread::Builder::new()
            .name("wecom-simulator".into())
            .spawn(move || {
                rt.block_on(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
            })?;
        Ok(sim)
    }

    /// Another listener of the same simulated WeCom (same tokens, counters and faults): the
    /// same WeCom behind another address, as a standby endpoint is. It has calls counts and
    /// faults of its own too ([`Simulator::calls_here`], [`Simulator::inject_here`]) and stops
    /// on its own.
    pub async fn also_listen(&self, addr: SocketAddr) -> std::io::Result<Simulator> {
        Self::listen(addr, self.state.clone()).await
    }

    async fn listen(addr: SocketAddr, state: Arc<State>) -> std::io::Result<Simulator> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let here = Arc::new(ListenerState::default());
        tokio::spawn(server::serve(
            listener,
            state.clone(),
            here.clone(),
            stopped,
        ));
        Ok(Simulator {
            addr,
            state,
            here,
            stop: Arc::new(stop),
        })
    }

    /// Every business API the simulator answers (besides `gettoken` and the robot calls).
    pub fn implemented_apis() -> Vec<&'static str> {
        handlers::implemented_apis()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects a fault (at every listener of this simulated WeCom).
    pub fn inject(&self, fault: Fault) {
        self.state.faults.push(fault);
    }

    /// Injects a fault at this listener only (e.g. at a standby address of the same WeCom);
    /// checked before the shared ones.
    pub fn inject_here(&self, fault: Fault) {
        self.here.faults.push(fault);
    }

    /// The faults in force (shared ones), with the `times` they have left.
    pub fn faults(&self) -> Vec<Fault> {
        self.state.faults.list()
    }

    /// Clears the shared faults and this listener's own.
    pub fn clear_faults(&self) {
        self.here.faults.clear();
        self.state.faults.clear();
    }

    /// WeCom's concurrency limit: past `n` calls of one API in flight, 45033 (0: no limit).
    pub fn limit_concurrency(&self, n: usize) {
        self.state.concurrency.set_limit(n);
    }

    /// The most calls of `path` this simulated WeCom had in flight at once.
    pub fn peak_in_flight(&self, path: &str) -> usize {
        self.state.concurrency.peak(path)
    }

    /// WeCom down from now on: every `/cgi-bin/` call (gettoken included) gets, in turn, a
    /// connection reset and an HTTP 503, for `lasting` (`None`: until [`Simulator::come_back`]).
    pub fn go_down(&self, lasting: Option<Duration>) {
        self.state.outage.start(lasting);
    }

    /// Ends an outage [`Simulator::go_down`] started.
    pub fn come_back(&self) {
        self.state.outage.end();
    }

    /// Whether an outage is on.
    pub fn is_down(&self) -> bool {
        self.state.outage.is_down()
    }

    /// The messages delivered so far (the last 100,000), oldest first, with their bodies.
    pub fn delivered_messages(&self) -> Vec<Delivered> {
        lock(&self.state.delivered).list()
    }

    /// Forgets the delivered messages.
    pub fn clear_delivered_messages(&self) {
        lock(&self.state.delivered).clear();
    }

    /// Every token issued so far answers 42001 (access_token expired) from now on.
    pub fn expire_all_tokens(&self) {
        self.state.revoke_all(42001);
    }

    /// Every token issued so far answers 40014 (invalid access_token) from now on.
    pub fn invalidate_all_tokens(&self) {
        self.state.revoke_all(40014);
    }

    /// A snapshot of the counters (shared by every listener).
    pub fn counters(&self) -> Counters {
        self.state.counters()
    }

    pub fn reset_counters(&self) {
        self.state.reset_counters();
    }

    /// Calls to `path` this listener took (faulted ones included; not reset by
    /// [`Simulator::reset_counters`]).
    pub fn calls_here(&self, path: &str) -> u64 {
        lock(&self.here.calls).get(path).copied().unwrap_or(0)
    }

    /// Every access_token ever issued, oldest first.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.issued_tokens()
    }

    /// Stops accepting and closes this listener's connections (calls in flight get no answer).
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }
}
