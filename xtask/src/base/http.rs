//! Just enough HTTP/1.0 client to ask the VM for a page (one GET with a chosen
//! Host header, the status and the body back) and to talk to a registry on
//! this host (`send`: any method, a body from memory or a file).

use std::{
    fs::File,
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::Duration,
};

use anyhow::{bail, Context, Result};

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// What a request sends after its headers.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A file of the given length, streamed.
    File(&'a Path, u64),
}

/// What a port answered a GET with: HTTP, or something else (a database, say).
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Http(Response),
    /// The first bytes of an answer that is not HTTP/1.x.
    Other(Vec<u8>),
    /// Nothing, but a connection that says nothing either is held open: a
    /// server that waits for its own protocol's first words (PostgreSQL
    /// closes on a GET without a word, where QEMU's forwarding closes at once
    /// when nothing listens in the guest).
    Held,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Http(r) => write!(f, "HTTP {}", r.status),
            Answer::Other(raw) => write!(f, "not HTTP: {:?}", String::from_utf8_lossy(&raw[..raw.len().min(40)])),
            Answer::Held => write!(f, "not HTTP: closed on a GET, held a silent connection open"),
        }
    }
}

/// How long a silent connection must stay open to count as served.
const HELD_FOR: Duration = Duration::from_secs(3);

/// GET `path` from `addr` with `Host: host`; an answer that is not HTTP is
/// still an answer, and so is a port that closes on the GET but holds a
/// silent connection open ([`Answer::Held`]). No answer at all is an error.
pub fn ask(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<Answer> {
    let raw = exchange(addr, host, path, timeout)?;
    if raw.is_empty() {
        if holds_silent_connection(addr, HELD_FOR.min(timeout)) {
            return Ok(Answer::Held);
        }
        return parse(&raw).map(Answer::Http);
    }
    Ok(match parse(&raw) {
        Ok(r) => Answer::Http(r),
        Err(_) if !raw.starts_with(b"HTTP/") => Answer::Other(raw),
        Err(e) => return Err(e),
    })
}

/// GET `path` from `addr` with `Host: host`. HTTP/1.0, so the server closes the
/// connection after the response and the body is everything that follows.
pub fn get(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<Response> {
    parse(&exchange(addr, host, path, timeout)?)
}

/// Does `addr` keep a connection on which nothing is sent open for `hold`?
/// (A read that times out: the peer neither spoke nor closed.)
fn holds_silent_connection(addr: SocketAddr, hold: Duration) -> bool {
    let Ok(mut stream) = connect(addr, hold) else {
        return false;
    };
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// A connection to `addr` on which every connect, read and write gives up after `timeout`.
fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

fn exchange(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Result<Vec<u8>> {
    let mut stream = connect(addr, timeout)?;
    // One write: a request split over several segments can meet a server that
    // answers and closes after the first, and the close then resets our read.
    // `Accept: */*` as curl and a page's fetch() send it: Create React App's
    // dev server hands a GET to its `proxy` (the app's API) only when the
    // request has an Accept header without text/html, and answers any other
    // with its index page.
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: cargo-xtask\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A server that speaks first and waits (or resets) after a request it
        // does not understand: what it said is its answer.
        Err(_) if !raw.is_empty() => Ok(raw),
        Err(e) => Err(e.into()),
    }
}

/// `method path` to `addr` with `Host: host`, `body` and its content type;
/// HTTP/1.0, so the answer is everything up to the server's close.
pub fn send(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    content_type: Option<&str>,
    body: Body,
    timeout: Duration,
) -> Result<Response> {
    let mut stream = connect(addr, timeout)?;
    let length = match &body {
        Body::Empty => 0,
        Body::Bytes(b) => b.len() as u64,
        Body::File(_, n) => *n,
    };
    let mut head =
        format!("{method} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: cargo-xtask\r\nContent-Length: {length}\r\n");
    if let Some(t) = content_type {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match body {
        Body::Empty => {}
        Body::Bytes(b) => stream.write_all(b)?,
        Body::File(p, _) => {
            io::copy(
                &mut File::open(p).with_context(|| format!("reading {}", p.display()))?,
                &mut stream,
            )?;
        }
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> Result<Response> {
    if raw.is_empty() {
        // QEMU accepts forwarded connections before anything listens in the guest,
        // then closes them: an empty answer means "not up yet".
        bail!("connection closed without a response");
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response has no end of headers")?;
    let head = std::str::from_utf8(&raw[..split]).context("response headers are not UTF-8")?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        bail!("malformed status line {status_line:?}");
    };
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1.x response: {status_line:?}");
    }
    let status = code
        .parse()
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
    Ok(Response { status, headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nServer: nginx\r\n\r\nhi\n").unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                headers: vec![("content-length".into(), "3".into()), ("server".into(), "nginx".into())],
                body: "hi\n".into()
            }
        );
        let r = parse(b"HTTP/1.0 404 Not Found\r\n\r\n404 page not found\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "404 page not found\n"));
    }

    #[test]
    fn a_silent_listener_is_held_and_a_closing_one_is_not() {
        use std::net::TcpListener;
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let keep = std::thread::spawn(move || {
            // Reads the GET, closes without a word; keeps the next one open.
            let (mut first, _) = silent.accept().unwrap();
            let _ = first.read(&mut [0u8; 256]);
            drop(first);
            let (second, _) = silent.accept().unwrap();
            std::thread::sleep(Duration::from_millis(600));
            drop(second);
        });
        assert_eq!(ask(addr, "x", "/", Duration::from_millis(300)).unwrap(), Answer::Held);
        keep.join().unwrap();
        let closing = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closing.local_addr().unwrap();
        std::thread::spawn(move || {
            // Reads what it is sent (so its close is a FIN, not a reset), says nothing.
            for stream in closing.incoming().take(2) {
                let mut stream = stream.unwrap();
                stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let _ = stream.read(&mut [0u8; 256]);
            }
        });
        let err = ask(addr, "x", "/", Duration::from_millis(300)).unwrap_err().to_string();
        assert!(err.contains("without a response"), "{err}");
    }

    #[test]
    fn rejects_non_responses() {
        for (raw, want) in [
            (&b""[..], "without a response"),
            (b"HTTP/1.1 200 OK\r\nhalf", "no end of headers"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "malformed status line"),
            (b"ICY 200 OK\r\n\r\n", "not an HTTP/1.x response"),
        ] {
            let err = parse(raw).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }

    /// A server on a free port that takes one request, read until it ends
    /// with `until`, answers `reply`, and hands back the request it read.
    fn serve_once(until: &'static [u8], reply: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(until) {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before the end of its request");
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(reply).unwrap();
            String::from_utf8(req).unwrap()
        });
        (addr, server)
    }

    #[test]
    fn talks_to_a_real_socket() {
        let (addr, server) = serve_once(b"\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nbody");
        let r = get(addr, "a.localhost", "/x", Duration::from_secs(5)).unwrap();
        assert_eq!(
            r,
            Response {
                status: 200,
                headers: vec![],
                body: "body".into()
            }
        );
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /x HTTP/1.0\r\nHost: a.localhost\r\n"), "{req}");
        assert!(req.contains("\r\nAccept: */*\r\n"), "{req}");
    }

    #[test]
    fn sends_a_body_and_reads_headers() {
        let (addr, server) = serve_once(b"blob", b"HTTP/1.1 202 Accepted\r\nLocation: /v2/x/uploads/1\r\n\r\n");
        let r = send(
            addr,
            "PUT",
            "127.0.0.1",
            "/v2/x",
            Some("application/octet-stream"),
            Body::Bytes(b"blob"),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!((r.status, r.header("location")), (202, Some("/v2/x/uploads/1")));
        let req = server.join().unwrap();
        assert!(req.starts_with("PUT /v2/x HTTP/1.0\r\nHost: 127.0.0.1\r\n"), "{req}");
        assert!(
            req.contains("Content-Length: 4\r\nContent-Type: application/octet-stream\r\n\r\nblob"),
            "{req}"
        );
    }
}
