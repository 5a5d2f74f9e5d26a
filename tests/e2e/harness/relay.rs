//! A recording TCP relay: put between the sidecar and the simulator, it passes every byte
//! through and keeps what the sidecar sent, so a test can assert the exact bytes that went
//! upstream (headers dropped, nothing smuggled).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay in front of the simulator that keeps every byte the sidecar sent it, one buffer
/// per connection.
pub struct Relay {
    /// `http://` and the relay's address: the upstream URL to give the sidecar.
    pub url: String,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Relay {
    /// Listens on a loopback port and relays every connection to `to`.
    pub async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(up) = TcpStream::connect(to).await else {
                        return;
                    };
                    let index = {
                        let mut r = record.lock().unwrap();
                        r.push(Vec::new());
                        r.len() - 1
                    };
                    let (mut down_rd, mut down_wr) = down.into_split();
                    let (mut up_rd, mut up_wr) = up.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut up_rd, &mut down_wr).await;
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = down_rd.read(&mut buf).await {
                        record.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                        if up_wr.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = up_wr.shutdown().await;
                    let _ = back.await;
                });
            }
        });
        Relay { url, seen }
    }

    /// Everything sent upstream so far, connections separated by a marker line.
    pub fn seen(&self) -> Vec<u8> {
        let seen = self.seen.lock().unwrap();
        let used: Vec<&[u8]> = seen
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| c.as_slice())
            .collect();
        used.join(&b"\n--- next connection ---\n"[..])
    }

    /// [`Relay::seen`] as text.
    pub fn seen_text(&self) -> String {
        String::from_utf8_lossy(&self.seen()).into_owned()
    }

    /// Forgets what was seen so far.
    pub fn clear(&self) {
        for c in self.seen.lock().unwrap().iter_mut() {
            c.clear();
        }
    }
}
