//! Log lines written off the request path: events are appended to a
//! buffer and a thread of their own writes it to stderr a few milliseconds
//! later, many lines a write. A write to stderr per request (the access log)
//! cost every request a system call on its worker thread, and a blocked
//! stderr would have stalled the workers; now a full buffer drops lines
//! (counted in `log_lines_dropped_total`) instead.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Lines wait at most this long to be written.
const LINGER: Duration = Duration::from_millis(5);
/// Beyond this much unwritten text, new lines are dropped.
const CAPACITY: usize = 16 << 20;

#[derive(Default)]
struct Shared {
    buf: Mutex<Vec<u8>>,
    ready: Condvar,
}

/// The `MakeWriter` of the tracing subscriber; cheap to clone.
#[derive(Clone)]
pub struct LogWriter(Arc<Shared>);

impl LogWriter {
    /// Starts the thread that writes to stderr.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let for_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("llmops-log".into())
            .spawn(move || {
                loop {
                    {
                        let guard = for_thread.buf.lock().unwrap_or_else(|p| p.into_inner());
                        let _unused = for_thread
                            .ready
                            .wait_while(guard, |b| b.is_empty())
                            .unwrap_or_else(|p| p.into_inner());
                    }
                    std::thread::sleep(LINGER);
                    write_out(&for_thread);
                }
            });
        if spawned.is_err() {
            // No thread: lines stay buffered until `flush` (at exit).
            eprintln!("llmops: could not start the log writer thread");
        }
        Self(shared)
    }

    /// Writes what is buffered now (at exit).
    pub fn flush(&self) {
        write_out(&self.0);
    }
}

fn write_out(shared: &Shared) {
    let out = std::mem::take(&mut *shared.buf.lock().unwrap_or_else(|p| p.into_inner()));
    if !out.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&out);
        let _ = err.flush();
    }
}

/// One event's writer.
pub struct Line(Arc<Shared>);

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.0.buf.lock().unwrap_or_else(|p| p.into_inner());
        if buf.len() + bytes.len() > CAPACITY {
            metrics::counter!("log_lines_dropped_total").increment(1);
            return Ok(bytes.len());
        }
        let was_empty = buf.is_empty();
        buf.extend_from_slice(bytes);
        drop(buf);
        if was_empty {
            self.0.ready.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(self.0.clone())
    }
}
