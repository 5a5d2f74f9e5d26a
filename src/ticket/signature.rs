//! The JS-SDK signature of a page (WeCom's "签名算法"): SHA-1, in hex, of
//! `jsapi_ticket=<ticket>&noncestr=<nonce>&timestamp=<unix s>&url=<page url>`, the url taken
//! without its fragment (`#…`). Used by `GET /sidecar/jsapi/signature`, so an app can sign a
//! page without holding a ticket at all.

use rand::distr::{Alphanumeric, SampleString};
use sha1::{Digest, Sha1};

/// Length of the `nonceStr` the sidecar makes.
const NONCE_LEN: usize = 16;

/// The page URL as it is signed: without its fragment.
pub fn signed_url(url: &str) -> &str {
    url.split_once('#').map_or(url, |(before, _)| before)
}

/// The signature of `url` (taken without its fragment) under `ticket`.
pub fn sign(ticket: &str, nonce: &str, timestamp: u64, url: &str) -> String {
    let text = format!(
        "jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={}",
        signed_url(url)
    );
    hex::encode(Sha1::digest(text.as_bytes()))
}

/// A fresh `nonceStr`: 16 random letters and digits.
pub fn nonce() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), NONCE_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the JS-SDK documentation.
    #[test]
    fn signs_the_documented_example() {
        let ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
        let url = "http://mp.weixin.qq.com?params=value";
        let want = "0f9de62fce790f9a083d5c99e95740ceb90c27ed";
        assert_eq!(sign(ticket, "Wm3WZYTPz0wzccnW", 1414587457, url), want);
        // The fragment is not signed.
        let with_fragment = format!("{url}#/inbox?x=1");
        assert_eq!(
            sign(ticket, "Wm3WZYTPz0wzccnW", 1414587457, &with_fragment),
            want
        );
    }

    #[test]
    fn nonces_are_alphanumeric_and_differ() {
        let (a, b) = (nonce(), nonce());
        assert_eq!(a.len(), NONCE_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }
}
