//! The mongo stand-in's `mongosh` (images/mongo/mongosh), run on the host
//! against a server on a local port that answers one OP_MSG: the ping a
//! healthcheck sends reaches it as MongoDB's `ping` command, its answer
//! decides the exit status, and any other script is refused.

use std::{
    io::{Read, Write},
    net::TcpListener,
    path::Path,
    process::{Command, Output, Stdio},
    thread::{self, JoinHandle},
};

/// OP_MSG { ping: 1, $db: "admin" }, as MongoDB's drivers send it.
const PING: [u8; 51] = [
    0x33, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0, // header
    0, 0, 0, 0, 0, // flags, body section
    0x1e, 0, 0, 0, 0x10, b'p', b'i', b'n', b'g', 0, 1, 0, 0, 0, // ping: 1
    0x02, b'$', b'd', b'b', 0, 6, 0, 0, 0, b'a', b'd', b'm', b'i', b'n', 0, 0, // $db: "admin"
];

/// An OP_MSG reply { ok: OK } (a double).
fn reply(ok: f64) -> Vec<u8> {
    let mut doc = vec![0x11, 0, 0, 0, 0x01, b'o', b'k', 0];
    doc.extend(ok.to_le_bytes());
    doc.push(0);
    let mut msg = Vec::new();
    msg.extend(38u32.to_le_bytes());
    msg.extend(2u32.to_le_bytes());
    msg.extend(1u32.to_le_bytes());
    msg.extend(2013u32.to_le_bytes());
    msg.extend([0, 0, 0, 0, 0]);
    msg.extend(doc);
    msg
}

/// A server on a free local port that reads one message, answers it with
/// { ok: OK }, and returns what it read.
fn server(ok: f64) -> (u16, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = vec![0; PING.len()];
        conn.read_exact(&mut got).unwrap();
        conn.write_all(&reply(ok)).unwrap();
        got
    });
    (port, handle)
}

fn mongosh(args: &[&str], stdin: Option<&str>) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/mongo/mongosh");
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_healthchecks_ping_is_sent_as_mongodbs_ping_and_answered_as_mongosh_does() {
    let (port, answered) = server(1.0);
    let port = port.to_string();
    let out = mongosh(
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--quiet",
            "--eval",
            "db.adminCommand('ping')",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{ ok: 1 }\n");
    assert_eq!(answered.join().unwrap(), PING);

    // The script on standard input, the server in a connection string.
    let (port, answered) = server(1.0);
    let out = mongosh(
        &[
            &format!("mongodb://root:example@127.0.0.1:{port}/test?authSource=admin"),
            "--quiet",
        ],
        Some("db.runCommand(\"ping\").ok\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n");
    assert_eq!(answered.join().unwrap(), PING);
}

#[test]
fn a_ping_not_answered_ok_fails() {
    let (port, answered) = server(0.0);
    let out = mongosh(
        &[&format!("127.0.0.1:{port}"), "--eval", "db.adminCommand('ping')"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did not answer ping with ok: 1"),
        "{}",
        text(&out.stderr)
    );
    answered.join().unwrap();

    // Nothing listening.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = mongosh(
        &["--port", &port.to_string(), "--eval", "db.adminCommand('ping')"],
        None,
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("ECONNREFUSED"), "{}", text(&out.stderr));
}

#[test]
fn any_other_script_is_refused_saying_why() {
    for (args, stdin) in [
        (vec!["--eval", "db.users.insertOne({ name: 'a' })"], None),
        (vec!["/docker-entrypoint-initdb.d/init.js"], None),
        (vec!["--quiet"], Some("show dbs\n")),
    ] {
        let out = mongosh(&args, stdin);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("has no MongoDB shell"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
