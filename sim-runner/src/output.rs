//! Standard output that remembers its first failure, so that every command
//! ends the same way when it cannot write: a closed pipe
//! (`sim-runner rules | head -1`) ends quietly with status 141, as a tool
//! killed by SIGPIPE would; any other failure (a full disk, `/dev/full`) is
//! reported on standard error with status 2.

use crate::exit;
use std::io::{self, Write};

/// A writer that records the first error of the writer it wraps; after it,
/// every write fails at once with the same kind of error, so a command
/// stops producing output it cannot deliver.
#[derive(Debug)]
pub struct Guarded<W: Write> {
    inner: W,
    failed: Option<io::Error>,
}

impl<W: Write> Guarded<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        Guarded {
            inner,
            failed: None,
        }
    }

    /// The first error met, if any.
    pub fn failure(&self) -> Option<&io::Error> {
        self.failed.as_ref()
    }

    /// Flush, then turn a failure into the exit status: `status` when all
    /// output was written, [`exit::BROKEN_PIPE`] quietly for a closed pipe,
    /// else [`exit::REJECTED`] with the reason on `err`.
    pub fn finish(mut self, status: u8, err: &mut dyn Write) -> u8 {
        let _ = self.flush();
        match &self.failed {
            None => status,
            Some(e) if e.kind() == io::ErrorKind::BrokenPipe => exit::BROKEN_PIPE,
            Some(e) => {
                let _ = writeln!(err, "error: cannot write the output: {e}");
                exit::REJECTED
            }
        }
    }

    fn record<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result {
            if e.kind() != io::ErrorKind::Interrupted && self.failed.is_none() {
                self.failed = Some(io::Error::new(e.kind(), e.to_string()));
            }
        }
        result
    }

    fn refuse(&self) -> Option<io::Error> {
        self.failed
            .as_ref()
            .map(|e| io::Error::new(e.kind(), format!("output failed earlier: {e}")))
    }
}

impl<W: Write> Write for Guarded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        let result = self.inner.write(buf);
        self.record(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        let result = self.inner.flush();
        self.record(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `room` bytes, then fails with `kind`.
    struct Failing {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::new(self.kind, "no"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn status_after(kind: io::ErrorKind) -> (u8, String) {
        let mut out = Guarded::new(Failing { room: 4, kind });
        let _ = out.write_all(b"hello world");
        assert!(
            out.write_all(b"more").is_err(),
            "writes after a failure fail"
        );
        let mut err = Vec::new();
        let status = out.finish(0, &mut err);
        (status, String::from_utf8_lossy(&err).into_owned())
    }

    #[test]
    fn broken_pipe_is_quiet_141() {
        assert_eq!(
            status_after(io::ErrorKind::BrokenPipe),
            (141, String::new())
        );
    }

    #[test]
    fn other_failures_say_why_with_status_2() {
        let (status, err) = status_after(io::ErrorKind::StorageFull);
        assert_eq!(status, 2);
        assert!(err.starts_with("error: cannot write the output:"), "{err}");
    }

    #[test]
    fn success_keeps_the_status() {
        let mut out = Guarded::new(Vec::new());
        out.write_all(b"ok").unwrap();
        assert_eq!(out.finish(1, &mut Vec::new()), 1);
    }
}
