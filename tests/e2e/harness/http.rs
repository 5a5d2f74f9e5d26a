//! HTTP clients for the tests, and JSON calls that say what came back when it is not JSON.

use std::net::SocketAddr;
use std::time::Duration;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// GET a sidecar URL and parse the JSON answer.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let r = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e:?}"));
    json_answer(r).await
}

/// POST JSON to a sidecar URL and parse the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let r = client.post(url).json(body).send().await.unwrap();
    json_answer(r).await
}

async fn json_answer(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().await.unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, headers, v)
}

/// The socket address of an `http://host:port` base URL.
pub fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}
