//! Interop of WeCom's callback crypto with two independent implementations, WeCom's own
//! `@wecom/crypto` (npm, `tests/sdk/wecom-crypto/`) and wechatpy's `WeChatCrypto` (PyPI,
//! `tests/sdk/wechatpy_callbacks.py`): each SDK, as WeCom, verifies a callback URL (GET with
//! `echostr`), pushes an encrypted message and opens the passive reply. [`simulator`] holds the
//! scripts to the simulator's own crypto (its pushes open with each SDK; each SDK's push opens
//! with the simulator's reference endpoint); [`sidecar`] runs them against the real sidecar.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::sim::SimApp;

mod sidecar;
mod simulator;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The two SDKs, each run as its script in `tests/sdk/`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sdk {
    Wechatpy,
    WecomCrypto,
}

pub(crate) const SDKS: [Sdk; 2] = [Sdk::WecomCrypto, Sdk::Wechatpy];

impl Sdk {
    fn command(self) -> Command {
        let repo = Path::new(REPO);
        let (program, script) = match self {
            Sdk::Wechatpy => ("python3", repo.join("tests/sdk/wechatpy_callbacks.py")),
            Sdk::WecomCrypto => ("node", repo.join("tests/sdk/wecom-crypto/callbacks.mjs")),
        };
        let mut c = Command::new(program);
        c.arg(script);
        c
    }

    /// Runs the script with `args` (and `stdin`): whether it exited 0, and its JSON line.
    /// Panics saying how to install the SDK when it is missing (exit 2).
    pub(crate) async fn run(self, args: Vec<String>, stdin: Option<String>) -> (bool, Value) {
        let out = tokio::task::spawn_blocking(move || {
            let mut child = self
                .command()
                .args(&args)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{self:?} cannot be run ({e}): README Prerequisites"));
            if let Some(input) = stdin {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(2),
            "{self:?} is not installed (.ci/run installs it: wechatpy 1.8.18 with pip, \
             @wecom/crypto with `npm ci` in tests/sdk/wecom-crypto): {stderr}"
        );
        let seen: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|_| panic!("{self:?} printed no JSON line:\n{stdout}\n{stderr}"));
        (out.status.success(), seen)
    }

    /// WeCom's URL verification of `url` for `app`.
    pub(crate) async fn verify(self, url: &str, app: &SimApp) -> (bool, Value) {
        self.run(
            vec![
                "verify".into(),
                url.into(),
                app.callback_token.clone(),
                app.callback_aes_key.clone(),
                app.corp_id.clone(),
            ],
            None,
        )
        .await
    }

    /// A text push of `content` to `url` for `app`, the reply opened.
    pub(crate) async fn push(self, url: &str, app: &SimApp, content: &str) -> (bool, Value) {
        self.run(
            vec![
                "push".into(),
                url.into(),
                app.callback_token.clone(),
                app.callback_aes_key.clone(),
                app.corp_id.clone(),
                app.agent_id.to_string(),
                content.into(),
            ],
            None,
        )
        .await
    }

    /// Opens a message someone else encrypted and signed.
    pub(crate) async fn open(
        self,
        app: &SimApp,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> (bool, Value) {
        let input = serde_json::json!({
            "msg_signature": msg_signature,
            "timestamp": timestamp,
            "nonce": nonce,
            "encrypt": encrypt,
        });
        self.run(
            vec![
                "open".into(),
                app.callback_token.clone(),
                app.callback_aes_key.clone(),
                app.corp_id.clone(),
            ],
            Some(input.to_string()),
        )
        .await
    }
}

/// The text of `<{name}>` in WeCom's envelope (CDATA or plain).
pub(crate) fn xml_field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = &xml[start..end];
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .to_string(),
    )
}

/// A query parameter, decoded.
pub(crate) fn query_param(query: &str, name: &str) -> String {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// What the interop tests need is pinned and said: @wecom/crypto 1.0.1 exactly in
/// package.json and its lock (with its integrity hash), installed by .ci/run with `npm ci`,
/// and named in the README's prerequisites with wechatpy.
#[test]
fn the_sdks_the_interop_tests_need_are_pinned_installed_and_named() {
    let read = |rel: &str| std::fs::read_to_string(Path::new(REPO).join(rel)).unwrap();
    let package: Value =
        serde_json::from_str(&read("tests/sdk/wecom-crypto/package.json")).unwrap();
    assert_eq!(
        package["dependencies"]["@wecom/crypto"], "1.0.1",
        "{package}"
    );
    let lock: Value =
        serde_json::from_str(&read("tests/sdk/wecom-crypto/package-lock.json")).unwrap();
    let locked = &lock["packages"]["node_modules/@wecom/crypto"];
    assert_eq!(locked["version"], "1.0.1", "{lock}");
    assert!(
        locked["integrity"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha512-")),
        "{lock}"
    );
    let ci = read(".ci/run");
    assert!(
        ci.contains("npm ci") && ci.contains("tests/sdk/wecom-crypto"),
        ".ci/run does not install @wecom/crypto"
    );
    assert!(
        ci.contains("wechatpy==1.8.18"),
        ".ci/run does not install wechatpy"
    );
    let readme = read("README.md");
    let prerequisites = readme
        .split("Prerequisites:")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap();
    for needed in ["node", "npm", "@wecom/crypto", "1.0.1", "wechatpy"] {
        assert!(
            prerequisites.contains(needed),
            "README prerequisites lack {needed}"
        );
    }
}
