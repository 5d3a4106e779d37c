//! Helpers for the end-to-end tests: start the real `inferadb` binary on a free loopback
//! port with its own data directory, talk HTTP/1.1 to it, stop or kill it.
//!
//! The binary is the one `cargo test --workspace` builds for the node package's own
//! integration tests (`target/<profile>/inferadb`, beside the test executable's `deps/`).
//! Every node started here is killed when its handle drops, so a failing test leaves no
//! server behind.
#![allow(clippy::disallowed_methods)] // tests wait on wall-clock deadlines

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a node may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one HTTP exchange may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `inferadb` binary built beside this test executable.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("invariant: a test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("invariant: test executables live in target/<profile>/deps");
    let binary = profile_dir.join(format!("inferadb{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test --workspace` (it builds the node binary) or \
         `cargo build -p inferadb-node` first",
        binary.display()
    );
    binary
}

/// A running node.
pub struct Node {
    child: Option<Child>,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// What it printed on stdout after the address line (read on stop).
    stdout: Option<BufReader<std::process::ChildStdout>>,
}

/// How a node is started.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// Extra `INFERADB__…` environment variables.
    pub env: Vec<(String, String)>,
    /// `dev` (default) or `start`.
    pub start: bool,
    /// Extra command-line arguments (cluster flags).
    pub args: Vec<String>,
}

impl Node {
    /// Starts `inferadb dev` on a free port over `data_dir`.
    pub fn start(data_dir: &Path) -> Node {
        Node::start_with(data_dir, &NodeOptions::default())
    }

    /// Starts a node with options.
    pub fn start_with(data_dir: &Path, options: &NodeOptions) -> Node {
        let mut command = Command::new(binary());
        command
            .arg(if options.start { "start" } else { "dev" })
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--http-addr")
            .arg("127.0.0.1:0")
            .args(&options.args)
            // `INFERADB_TEST_LOG` (a `RUST_LOG` filter) turns a failing test's node logs up.
            .env(
                "RUST_LOG",
                std::env::var("INFERADB_TEST_LOG").unwrap_or_else(|_| "warn".to_string()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the inferadb binary starts");
        let stdout = child.stdout.take().expect("invariant: stdout is piped");
        let mut reader = BufReader::new(stdout);
        let addr = read_address(&mut reader);
        Node {
            child: Some(child),
            addr,
            data_dir: data_dir.to_path_buf(),
            stdout: Some(reader),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("invariant: a node handle holds its process until it is consumed")
            .id()
    }

    /// Sends a signal by name (`STOP`, `CONT`): pausing a process is how the tests cut it
    /// off from the cluster without closing its sockets.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status and what the node
    /// printed on stdout.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("invariant: the node is running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("kill(1) runs");
        assert!(status.success());
        let exit = child.wait().expect("the node exits");
        let mut printed = String::new();
        if let Some(mut stdout) = self.stdout.take() {
            let _ = stdout.read_to_string(&mut printed);
        }
        (exit, printed)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        http(&self.addr, "GET", path, None)
    }

    /// `GET path`, or `None` while the node does not answer.
    pub fn try_get(&self, path: &str) -> Option<Response> {
        try_http(&self.addr, "GET", path, None).ok()
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Response {
        http(&self.addr, "POST", path, Some(body.to_string().as_bytes()))
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Response {
        http(&self.addr, "PUT", path, Some(body.to_string().as_bytes()))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Response {
        http(&self.addr, "DELETE", path, None)
    }

    /// `POST path` with raw bytes as a JSON body.
    pub fn post_raw(&self, path: &str, body: &[u8]) -> Response {
        http(&self.addr, "POST", path, Some(body))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_address(reader: &mut BufReader<std::process::ChildStdout>) -> String {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut line = String::new();
    while Instant::now() < deadline {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .expect("node stdout is readable");
        assert!(read > 0, "the node exited before printing its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            return rest
                .split_whitespace()
                .next()
                .expect("invariant: an address follows")
                .to_string();
        }
    }
    panic!("the node did not print its address within {START_TIMEOUT:?}");
}

/// A port that was free a moment ago on 127.0.0.1 (for listeners a test must name before
/// the process that binds them starts, such as cluster addresses every member lists).
pub fn free_port() -> u16 {
    // Below the kernel's ephemeral range (32768 and up): outgoing connections never take
    // these ports, so one probed free stays free until the process that must listen on it
    // binds it. Spread by process id and a counter so parallel tests rarely probe alike.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::from(elapsed.subsec_nanos()));
    let seed = u64::from(std::process::id()) * 7_919 + nanos;
    for _ in 0..1_000 {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + u16::try_from((seed + step * 104_729) % 12_000).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000")
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub json: Value,
    /// The raw body.
    pub text: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 exchange (`Connection: close`); panics if the node cannot be reached.
pub fn http(addr: &str, method: &str, path: &str, body: Option<&[u8]>) -> Response {
    try_http(addr, method, path, body)
        .unwrap_or_else(|error| panic!("{method} {path} on {addr}: {error}"))
}

/// One HTTP/1.1 exchange, or the I/O error that prevented it (the node is restarting its
/// listener, or is gone).
pub fn try_http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    try_http_typed(addr, method, path, "application/json", body)
}

/// One HTTP/1.1 exchange with a body of `content_type`. A server may answer (and close)
/// before it read all of a body it refuses, so a failed body write still reads the answer.
pub fn try_http_typed(
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    let body = body.unwrap_or(b"");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response"))
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some(Response {
        status,
        json: serde_json::from_str(&body).unwrap_or(Value::Null),
        headers,
        text: body,
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
