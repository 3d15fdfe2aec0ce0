//! Headless Chromium driven over the W3C WebDriver protocol: the test
//! starts Debian's `chromedriver` on a free 127.0.0.1 port and speaks the
//! protocol's JSON over the suite's own HTTP/1.1 client. (A WebDriver crate
//! such as fantoccini would add a second HTTP stack and TLS to build on a
//! busy machine for the dozen commands used here.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::http_client::raw;

/// The W3C key under which an element reference travels.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    /// Keeps the profile until the browser is gone.
    _profile: tempfile::TempDir,
}

/// A reference to an element of the current page.
#[derive(Clone)]
pub struct Element(String);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn program(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Where the tests write screenshots: `target/dashboard-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    /// Starts chromedriver (`$CHROMEDRIVER`, default `chromedriver`) and a
    /// headless Chromium (`$CHROMIUM`, default `/usr/bin/chromium`) with a
    /// fresh profile and no traffic of its own.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new(program("CHROMEDRIVER", "chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (apt-get install chromium chromium-driver; .ci/run does)");
        let addr = format!("127.0.0.1:{port}");
        // Ready once it answers /status; the ceiling is only for a hang.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(&addr).is_ok()
                && raw(&addr, "GET", "/status", None, None, "application/json").json()["value"]["ready"]
                    == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": program("CHROMIUM", "/usr/bin/chromium"),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let created = browser.call("POST", "/session", Some(caps));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// One WebDriver command; panics with the driver's message on an error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let r = raw(
            &self.addr,
            method,
            path,
            None,
            body.as_deref().map(str::as_bytes),
            "application/json",
        );
        let v = r.json();
        assert_eq!(r.status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    pub fn title(&self) -> String {
        self.cmd("GET", "/title", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The first element matching `css`; panics naming it when none does.
    pub fn find(&self, css: &str) -> Element {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        Element(
            v[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element {css:?}: {v}"))
                .to_string(),
        )
    }

    /// Every element matching `css`.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
        .collect()
    }

    /// The element's rendered text.
    pub fn text(&self, e: &Element) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The text of the first element matching `css`.
    pub fn text_of(&self, css: &str) -> String {
        self.text(&self.find(css))
    }

    /// Clicks `e`.
    pub fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Clicks `e`, a submit button, and waits until the next page has
    /// loaded (the old page's marker is gone, the new one complete).
    pub fn submit(&self, e: &Element) {
        self.eval("window.__taskhostOld = true; return null;");
        self.click(e);
        self.wait_for(
            "window.__taskhostOld === undefined && document.readyState === 'complete'",
            "the form to lead to a new page",
        );
    }

    /// Waits until the JavaScript expression `condition` holds in the page;
    /// the minute is only a ceiling for a hang.
    pub fn wait_for(&self, condition: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.eval(&format!("return Boolean({condition});")) != true {
            assert!(Instant::now() < deadline, "waited a minute for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resizes the window (a phone's viewport, say).
    pub fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Types `text` into `e`.
    pub fn type_into(&self, e: &Element, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        );
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// The rows of the table matching `css` as cell texts.
    pub fn table(&self, css: &str) -> Vec<Vec<String>> {
        let v = self.eval(&format!(
            "return [...document.querySelectorAll({:?} + ' tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim()));",
            css
        ));
        serde_json::from_value(v).unwrap()
    }

    /// Writes a PNG of the viewport to `target/dashboard-screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
    }
}

impl Drop for Browser {
    /// Ends the session and the driver, also when a test fails midway.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = raw(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
                None,
                "application/json",
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
