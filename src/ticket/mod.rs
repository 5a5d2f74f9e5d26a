//! Ticket custody: the JS-SDK tickets apps sign their web pages with, the corp's
//! `jsapi_ticket` and each app's `agent_config` ticket, kept like tokens (`crate::token`).
//!
//! WeCom allows 400 ticket fetches an hour per corp and 100 per app and says to cache them;
//! SDKs cache per process, so a fleet of app instances would fetch them over and over. The
//! sidecar answers `get_jsapi_ticket` and `ticket/get?type=agent_config` from this cache.
//!
//! Data flow: a call asks the store ([`TicketStore::get`]) for a kind of ticket of an app. A
//! cached ticket not due for refresh is answered at once. A due one (inside
//! `token.refresh_before_expiry`) is refreshed by the first call that sees it, while every other
//! call is served the still-valid ticket; a missing one is fetched once (the slot's fetch lock,
//! then a second look), so 200 callers arriving together cause one fetch. Every fetch passes the
//! token bounds first (`token::bounds`: `min_fetch_interval`, backoff after failures;
//! `token::cap`: `max_fetches`, per corp for jsapi and per app for agent_config). A WeCom
//! frequency refusal (45009, 45033) holds fetches for `min_fetch_interval`. In fleet mode the
//! ticket is shared sealed through Redis (`fleet`, on `token::fleet`'s lease and seal).
//!
//! A fetch (`fetch`) carries the app's `access_token` from the token store; a token WeCom
//! rejects is replaced once (through the token store, bounded as every token fetch is).
//!
//! The rooms: `store` ([`TicketStore`]), `fetch` (one ticket call to WeCom), `fleet` (tickets
//! shared through Redis), `signature` (the JS-SDK signature of a page URL).

mod fetch;
mod fleet;
pub mod signature;
mod store;

pub use store::TicketStore;

/// Which ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// The corp's `jsapi_ticket` (`GET /cgi-bin/get_jsapi_ticket`).
    Jsapi,
    /// The app's ticket (`GET /cgi-bin/ticket/get?type=agent_config`).
    AgentConfig,
}

impl TicketKind {
    /// Both kinds, for status pages and gauges.
    pub const ALL: [TicketKind; 2] = [TicketKind::Jsapi, TicketKind::AgentConfig];

    /// The `kind` label of the ticket metrics and the key in `/admin/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            TicketKind::Jsapi => "jsapi",
            TicketKind::AgentConfig => "agent_config",
        }
    }

    /// The ticket a call asks for: `path`, and for `ticket/get` its `type` query value. Any
    /// other `type` is not answered here (it passes on to WeCom).
    pub fn of_call(path: &str, ticket_type: Option<&str>) -> Option<TicketKind> {
        match (path, ticket_type) {
            ("/cgi-bin/get_jsapi_ticket", _) => Some(TicketKind::Jsapi),
            ("/cgi-bin/ticket/get", Some("agent_config")) => Some(TicketKind::AgentConfig),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_two_ticket_calls_are_tickets() {
        assert_eq!(
            TicketKind::of_call("/cgi-bin/get_jsapi_ticket", None),
            Some(TicketKind::Jsapi)
        );
        assert_eq!(
            TicketKind::of_call("/cgi-bin/ticket/get", Some("agent_config")),
            Some(TicketKind::AgentConfig)
        );
        assert_eq!(
            TicketKind::of_call("/cgi-bin/ticket/get", Some("other")),
            None
        );
        assert_eq!(TicketKind::of_call("/cgi-bin/ticket/get", None), None);
        assert_eq!(TicketKind::of_call("/cgi-bin/user/get", None), None);
    }
}
