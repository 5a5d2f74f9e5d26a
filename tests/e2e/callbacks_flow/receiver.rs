//! The app's side of a delivery: a small HTTP/1 server on loopback that records every request
//! (headers, body) and answers as the test tells it: a status and body, after a delay, or
//! not at all (`down`: its port closed; `up` opens the same port again).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One request the app got.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the app answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Held until the test adds a permit (then after `delay`): the test acts while the
    /// sidecar waits for this answer.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::status(200)
    }

    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            body: Vec::new(),
            delay: Duration::ZERO,
            gate: None,
        }
    }

    pub fn body(mut self, body: &str) -> Answer {
        self.body = body.as_bytes().to_vec();
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    /// Held until `gate` has a permit; each answer takes one.
    pub fn held(mut self, gate: &Arc<tokio::sync::Semaphore>) -> Answer {
        self.gate = Some(gate.clone());
        self
    }
}

#[derive(Default)]
struct Plan {
    /// Answers used up one per request, then `then`.
    next: VecDeque<Answer>,
    then: Option<Answer>,
}

/// The app.
pub struct Receiver {
    pub addr: SocketAddr,
    got: Arc<Mutex<Vec<Got>>>,
    /// The requests whose answer was written whole (a request cut off by `down` is in `got`
    /// only: the sidecar never had an answer to it).
    answered: Arc<Mutex<Vec<Got>>>,
    plan: Arc<Mutex<Plan>>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    /// Up, answering 200 with an empty body.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            got: Arc::default(),
            answered: Arc::default(),
            plan: Arc::new(Mutex::new(Plan {
                next: VecDeque::new(),
                then: Some(Answer::ok()),
            })),
            accept: Mutex::new(None),
        };
        r.serve(listener);
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/wecom/events", self.addr)
    }

    /// Answers every request from now on with `a`.
    pub fn answer(&self, a: Answer) {
        let mut p = self.plan.lock().unwrap();
        p.next.clear();
        p.then = Some(a);
    }

    /// Answers the next requests with `first`, one each, then with `then`.
    pub fn answer_first(&self, first: Vec<Answer>, then: Answer) {
        let mut p = self.plan.lock().unwrap();
        p.next = first.into();
        p.then = Some(then);
    }

    /// Closes the port: connections are refused.
    pub fn down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Opens the same port again.
    pub async fn up(&self) {
        let mut listener = None;
        for _ in 0..100 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        self.serve(listener.expect("the receiver's port again"));
    }

    /// Every request so far.
    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Every request answered so far (its answer written whole).
    pub fn answered(&self) -> Vec<Got> {
        self.answered.lock().unwrap().clone()
    }

    fn serve(&self, listener: TcpListener) {
        let (got, plan) = (self.got.clone(), self.plan.clone());
        let answered = self.answered.clone();
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (got, plan, answered) = (got.clone(), plan.clone(), answered.clone());
                let task = tokio::spawn(connection(stream, got, answered, plan));
                conns.push(AbortOnDrop(task));
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// A connection's task ends with the accept task that made it (`down` closes them too).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn connection(
    mut stream: TcpStream,
    got: Arc<Mutex<Vec<Got>>>,
    answered: Arc<Mutex<Vec<Got>>>,
    plan: Arc<Mutex<Plan>>,
) {
    let mut buf = Vec::new();
    loop {
        let Some((request, used)) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        buf.drain(..used);
        // Recorded when the answer is chosen: the sidecar sent it, whatever comes back.
        let answer = {
            let mut p = plan.lock().unwrap();
            p.next.pop_front().or_else(|| p.then.clone())
        };
        got.lock().unwrap().push(request.clone());
        let Some(answer) = answer else { return };
        if let Some(gate) = &answer.gate {
            match gate.acquire().await {
                Ok(permit) => permit.forget(),
                Err(_) => return,
            }
        }
        tokio::time::sleep(answer.delay).await;
        let head = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n",
            answer.status,
            answer.body.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&answer.body).await.is_err()
        {
            return;
        }
        answered.lock().unwrap().push(request);
    }
}

/// The next request on the connection, and the bytes of `buf` it used.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Got, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let path = lines.next()?.split(' ').nth(1)?.to_string();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let start = end + 4;
            while buf.len() < start + len {
                read_more(stream, buf).await?;
            }
            let body = buf[start..start + len].to_vec();
            return Some((
                Got {
                    path,
                    headers,
                    body,
                },
                start + len,
            ));
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}
