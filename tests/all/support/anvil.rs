//! A local EVM node for the `chain` tests: anvil (Foundry) on a free
//! 127.0.0.1 port, one per test, killed when dropped.
//!
//! Where anvil comes from, first match wins: `$ANVIL`; the npm package
//! `@foundry-rs/anvil-linux-amd64` under the repository's `node_modules`
//! (`.bin/anvil` or the package's `bin/anvil`); `anvil` on `PATH`. When
//! none is there and `npm` is, the package is installed into the
//! repository's `node_modules` (git-ignored), as `.ci/run` does. Without
//! anvil the tests fail, they do not skip.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

const PACKAGE: &str = "@foundry-rs/anvil-linux-amd64";

/// anvil's chain id.
pub const CHAIN_ID: u64 = 31337;

pub struct Anvil {
    pub port: u16,
    child: Child,
    /// Whether transactions are mined as they arrive (anvil's default).
    automine: std::sync::atomic::AtomicBool,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate is inside the repository")
        .to_path_buf()
}

fn find_local() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ANVIL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ANVIL={} does not exist", p.display());
        return Some(p);
    }
    let modules = repo_root().join("node_modules");
    let candidates = [
        modules.join(".bin/anvil"),
        modules.join(PACKAGE).join("bin/anvil"),
    ];
    if let Some(p) = candidates.into_iter().find(|p| p.exists()) {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("anvil"))
            .find(|p| p.is_file())
    })
}

/// The anvil binary, installed with npm on first use when missing.
pub fn anvil_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = find_local() {
            return p;
        }
        let root = repo_root();
        let how = format!(
            "install it with `npm install --no-save --prefix {} {PACKAGE}` (as .ci/run does), \
             put `anvil` on PATH, or set ANVIL=/path/to/anvil",
            root.display()
        );
        let installed = Command::new("npm")
            .args(["install", "--no-save", "--no-package-lock", "--prefix"])
            .arg(&root)
            .arg(PACKAGE)
            .stdin(Stdio::null())
            .output();
        match installed {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "anvil not found, and `npm install {PACKAGE}` failed:\n{}\n{how}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("anvil not found, and npm cannot run ({e}): {how}"),
        }
        find_local().unwrap_or_else(|| panic!("anvil still not found after npm install: {how}"))
    })
}

impl Anvil {
    /// A fresh node (its own chain) on a free loopback port, ready for requests.
    pub fn start() -> Anvil {
        let bin = anvil_bin();
        let mut last = String::new();
        // Another process may take the port between our probe and anvil's bind.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    last = format!("anvil exited ({status}): {err}");
                    break;
                }
                if try_rpc(port, "eth_blockNumber", json!([])).is_ok() {
                    return Anvil {
                        port,
                        child,
                        automine: std::sync::atomic::AtomicBool::new(true),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("anvil did not answer on 127.0.0.1:{port} within 30 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("anvil did not start: {last}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A JSON-RPC call; panics on any error.
    pub fn rpc(&self, method: &str, params: Json) -> Json {
        try_rpc(self.port, method, params.clone())
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }

    /// anvil's prefunded, unlocked accounts.
    pub fn accounts(&self) -> Vec<String> {
        self.rpc("eth_accounts", json!([]))
            .as_array()
            .expect("a list of accounts")
            .iter()
            .map(|a| a.as_str().unwrap().to_ascii_lowercase())
            .collect()
    }

    /// `eth_sendTransaction` from an unlocked account; returns the hash.
    /// With automine on, waits until the transaction is mined: anvil mines
    /// in the background, and on a loaded machine the answer can come first.
    pub fn send(&self, tx: Json) -> String {
        let hash = self
            .rpc("eth_sendTransaction", json!([tx]))
            .as_str()
            .expect("a transaction hash")
            .to_string();
        if self.automine.load(std::sync::atomic::Ordering::Relaxed) {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while self.receipt(&hash).is_null() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "transaction {hash} was not mined within 30 s"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        hash
    }

    /// Mines `blocks` blocks now.
    pub fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", json!([format!("0x{blocks:x}")]));
    }

    pub fn set_automine(&self, on: bool) {
        self.rpc("evm_setAutomine", json!([on]));
        self.automine
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn block_number(&self) -> u64 {
        hex_u128(&self.rpc("eth_blockNumber", json!([]))) as u64
    }

    /// Native balance in wei.
    pub fn balance(&self, address: &str) -> u128 {
        hex_u128(&self.rpc("eth_getBalance", json!([address, "latest"])))
    }

    pub fn receipt(&self, hash: &str) -> Json {
        self.rpc("eth_getTransactionReceipt", json!([hash]))
    }

    /// Deploys the test ERC-20 (`tests/data/erc20`, 18 decimals) from
    /// `from`, which receives the whole supply; answers its address
    /// (lower-case). Needs automine on.
    pub fn deploy_test_token(&self, from: &str) -> String {
        let bytecode = std::fs::read_to_string(repo_root().join("tests/data/erc20/TestToken.bin"))
            .expect("the token's bytecode");
        let hash = self.send(json!({"from": from, "data": bytecode.trim(), "gas": "0x300000"}));
        let receipt = self.receipt(&hash);
        assert_eq!(receipt["status"], json!("0x1"), "deploy failed: {receipt}");
        receipt["contractAddress"]
            .as_str()
            .expect("a contract address")
            .to_ascii_lowercase()
    }

    /// Sends `value` (smallest units) of ERC-20 `token` from `from` to `to`;
    /// answers the transaction hash.
    pub fn send_token(&self, token: &str, from: &str, to: &str, value: u128) -> String {
        self.send(
            json!({"from": from, "to": token, "data": transfer_call(to, value), "gas": "0x100000"}),
        )
    }

    /// Takes a snapshot of the chain (`evm_snapshot`); answers its id.
    pub fn snapshot(&self) -> Json {
        self.rpc("evm_snapshot", json!([]))
    }

    /// Reverts the chain to a snapshot: the blocks mined since are gone.
    pub fn revert(&self, snapshot: &Json) {
        let ok = self.rpc("evm_revert", json!([snapshot]));
        assert_eq!(ok, json!(true), "evm_revert {snapshot}");
    }
}

/// `transfer(to, value)` calldata of an ERC-20.
pub fn transfer_call(to: &str, value: u128) -> String {
    format!("0xa9059cbb{:0>64}{value:064x}", &to[2..])
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A hex quantity (`"0x…"`) as a number.
pub fn hex_u128(v: &Json) -> u128 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a hex quantity: {v}"));
    u128::from_str_radix(s.trim_start_matches("0x"), 16)
        .unwrap_or_else(|e| panic!("not a hex quantity: {s}: {e}"))
}

/// One JSON-RPC request over a fresh HTTP/1.1 connection (blocking; the
/// node is local and answers at once).
pub fn try_rpc(port: u16, method: &str, params: Json) -> Result<Json, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        tcp,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(tcp);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(|e| e.to_string())?;
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut raw = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        raw.resize(n, 0);
        reader.read_exact(&mut raw).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    }
    let answer: Json =
        serde_json::from_slice(&raw).map_err(|e| format!("{}: not JSON ({e})", status.trim()))?;
    match answer.get("error") {
        Some(err) if !err.is_null() => Err(format!("JSON-RPC error: {err}")),
        _ => Ok(answer.get("result").cloned().unwrap_or(Json::Null)),
    }
}

/// A loopback port nothing listens on (at the moment of asking).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
