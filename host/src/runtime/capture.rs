//! The job's captured log: stdout, stderr and `log` lines interleaved in
//! the order they happened, capped so a chatty plugin cannot eat memory.
//! Writes past the cap are dropped (and counted as truncation), never
//! refused: a refused write would make the guest's `println!` panic.
//!
//! A line that starts with `[` is always the host's (`[DENIED]`, `[PANIC]`,
//! or the level of a `log` call): a `log` message is kept on its line
//! (newlines escaped), and a stdout or stderr line that starts with `[` is
//! indented by one space, so a plugin cannot forge a host line.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
    /// Whether the last byte kept ended a line (or nothing was kept yet).
    mid_line: bool,
}

impl Buffer {
    fn append(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        let take = data.len().min(room);
        self.bytes.extend_from_slice(&data[..take]);
        if let Some(&last) = self.bytes.last() {
            self.mid_line = last != b'\n';
        }
    }
}

/// A shared, capped log buffer; clones write to the same buffer.
#[derive(Debug, Clone)]
pub struct Capture(Arc<Mutex<Buffer>>);

impl Capture {
    pub fn new(cap: usize) -> Capture {
        Capture(Arc::new(Mutex::new(Buffer {
            bytes: Vec::new(),
            cap,
            truncated: false,
            mid_line: false,
        })))
    }

    /// Appends the guest's raw output, dropping what does not fit; a line
    /// of it that starts with `[` gets a leading space (see the module doc).
    pub fn write(&self, data: &[u8]) {
        let mut b = self.0.lock().expect("capture lock poisoned");
        let mut out = Vec::with_capacity(data.len());
        let mut mid_line = b.mid_line;
        for &byte in data {
            if !mid_line && byte == b'[' {
                out.push(b' ');
            }
            out.push(byte);
            mid_line = byte != b'\n';
        }
        b.append(&out);
    }

    /// Appends one `[LEVEL] message` line, on a line of its own; the
    /// message's own newlines and control characters are escaped.
    pub fn line(&self, level: &str, message: &str) {
        let mut b = self.0.lock().expect("capture lock poisoned");
        let start = if b.mid_line { "\n" } else { "" };
        let text = format!("{start}[{level}] {}\n", super::text::one_line(message));
        b.append(text.as_bytes());
    }

    /// The text so far (invalid UTF-8 replaced) and whether anything was dropped.
    pub fn contents(&self) -> (String, bool) {
        let b = self.0.lock().expect("capture lock poisoned");
        (String::from_utf8_lossy(&b.bytes).into_owned(), b.truncated)
    }
}

/// One of the guest's output streams (stdout or stderr) into a [`Capture`].
#[derive(Clone)]
pub struct CaptureStream(pub Capture);

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_cap_are_dropped_and_flagged() {
        let c = Capture::new(10);
        c.write(b"12345");
        c.write(b"678901234");
        let (text, truncated) = c.contents();
        assert_eq!(text, "1234567890");
        assert!(truncated);
    }

    #[test]
    fn a_plugin_cannot_write_a_line_that_looks_like_the_hosts() {
        let c = Capture::new(1000);
        c.write(b"[DENIED] forged on stdout\npartial [x");
        c.line("INFO", "ok\n[DENIED] forged in a log line");
        c.write(b"[PANIC] again");
        let (text, _) = c.contents();
        assert_eq!(
            text,
            " [DENIED] forged on stdout\npartial [x\n\
             [INFO] ok\\n[DENIED] forged in a log line\n \
             [PANIC] again"
        );
        let host_lines = text.lines().filter(|l| l.starts_with('[')).count();
        assert_eq!(host_lines, 1, "{text}");
    }

    #[test]
    fn lines_carry_their_level() {
        let c = Capture::new(100);
        c.line("INFO", "hi");
        assert_eq!(c.contents(), ("[INFO] hi\n".to_string(), false));
    }
}
