//! The serial console: everything QEMU's serial port prints, in a log file and in memory.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct Inner {
    text: String,
    /// Matching starts here (see [`Console::mark`]).
    mark: usize,
    closed: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Console {
    inner: Arc<(Mutex<Inner>, Condvar)>,
}

/// Drops terminal escape sequences (GRUB and SeaBIOS draw with them) so matching sees text.
fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

impl Console {
    /// Reads `from` until EOF, appending to `log` and to memory.
    pub fn capture(&self, mut from: impl std::io::Read + Send + 'static, mut log: std::fs::File) {
        let me = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = std::io::Write::write_all(&mut log, &buf[..n]);
                        let text = strip_escapes(&String::from_utf8_lossy(&buf[..n]));
                        let (m, cv) = &*me.inner;
                        if let Ok(mut g) = m.lock() {
                            g.text.push_str(&text);
                        }
                        cv.notify_all();
                    }
                }
            }
            let (m, cv) = &*me.inner;
            if let Ok(mut g) = m.lock() {
                g.closed = true;
            }
            cv.notify_all();
        });
    }

    /// Puts text printed before this QEMU started (a resumed snapshot's boot) in front.
    pub fn seed(&self, text: &str) {
        if let Ok(mut g) = self.inner.0.lock() {
            g.text.push_str(&strip_escapes(text));
        }
    }

    /// Later waits only see text printed from now on.
    pub fn mark(&self) {
        if let Ok(mut g) = self.inner.0.lock() {
            g.mark = g.text.len();
            g.closed = false;
        }
    }

    pub fn text(&self) -> String {
        self.inner.0.lock().map(|g| g.text.clone()).unwrap_or_default()
    }

    /// Text since the mark.
    pub fn since_mark(&self) -> String {
        self.inner.0.lock().map(|g| g.text[g.mark..].to_owned()).unwrap_or_default()
    }

    /// Waits for a complete line containing `needle` after the mark; moves the mark past it,
    /// so the next wait for the same text needs a new occurrence.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        crate::wait_on(&self.inner, timeout, |g| {
            let at = g.mark + g.text[g.mark..].find(needle)?;
            let start = g.text[..at].rfind('\n').map(|s| s + 1).unwrap_or(0);
            let end = at + g.text[at..].find('\n')?;
            g.mark = end;
            Some(g.text[start..end].to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_whole_lines_after_the_mark() {
        let c = Console::default();
        let (r, mut w) = std::io::pipe().expect("pipe");
        let log = tempfile_log();
        c.capture(r, log);
        std::io::Write::write_all(&mut w, b"\x1b[2Jfirst READY one\nsecond READY ").expect("write");
        assert_eq!(c.wait_for("READY", Duration::from_secs(5)).as_deref(), Some("first READY one"));
        assert_eq!(c.wait_for("READY", Duration::from_millis(200)), None, "an unfinished line is not matched");
        std::io::Write::write_all(&mut w, b"two\n").expect("write");
        assert_eq!(c.wait_for("READY", Duration::from_secs(5)).as_deref(), Some("second READY two"));
    }

    fn tempfile_log() -> std::fs::File {
        let p = std::env::temp_dir().join(format!("cairn-console-{}.log", std::process::id()));
        std::fs::File::create(p).expect("log")
    }
}
