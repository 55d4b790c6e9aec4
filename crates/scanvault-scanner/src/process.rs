//! Running a child process with a wall-clock limit, cancellation and concurrent pipe reading.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use crate::args::{display_command, format_duration};
use crate::diagnose::diagnose;
use crate::error::{ErrorClass, ScanError};

/// How much of stderr is kept (the end of it, where Trivy's fatal error is).
pub(crate) const STDERR_TAIL_BYTES: usize = 8 * 1024;
/// After the process exited: how long to wait for its pipes to reach EOF. Only matters when a
/// leftover child of it (e.g. of a wrapper script) still holds them open.
const DRAIN_GRACE: Duration = Duration::from_secs(5);
/// After SIGKILL: how long to wait for the process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr_tail: String,
}

enum End {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
    Io(&'static str, std::io::Error),
}

/// Kills the child's process group (the child is started with `process_group(0)`, so its
/// PGID is its PID) if dropped while armed, i.e. when the caller drops the scan future.
/// Declared after the `Child` so that it runs before the child is dropped (and possibly
/// reaped), while the PGID cannot have been reused.
struct GroupGuard {
    pgid: Option<u32>,
}

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.pgid.and_then(|p| i32::try_from(p).ok()) {
            // ESRCH (already gone) is fine.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `program args...` with stdin null, stdout captured fully, the last
/// [`STDERR_TAIL_BYTES`] of stderr captured, the environment inherited unchanged.
pub(crate) async fn run(
    program: &Path,
    args: &[String],
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Output, ScanError> {
    run_with_env(program, args, &[], limit, cancel).await
}

/// [`run`] with `env` added to the inherited environment (never logged: it may hold
/// registry credentials).
pub(crate) async fn run_with_env(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    limit: Duration,
    cancel: &CancellationToken,
) -> Result<Output, ScanError> {
    let shown = display_command(&program.to_string_lossy(), args);
    tracing::debug!(command = %shown, timeout = %format_duration(limit), "running trivy");
    let started = Instant::now();

    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Own process group: on timeout/cancel we kill everything it started (a wrapper
        // script's trivy would otherwise keep running and keep the cache lock).
        .process_group(0)
        .spawn()
        .map_err(|cause| ScanError::Spawn {
            path: program.to_path_buf(),
            cause,
        })?;
    let pid = child.id();
    let mut group = GroupGuard { pgid: pid };

    let (mut stdout, mut stderr) = match (child.stdout.take(), child.stderr.take()) {
        (Some(o), Some(e)) => (o, e),
        _ => {
            return Err(ScanError::Io {
                context: "taking trivy's pipes",
                cause: std::io::Error::other("stdout/stderr not piped"),
            })
        }
    };

    let mut out: Vec<u8> = Vec::new();
    let mut tail = Tail::new(STDERR_TAIL_BYTES);
    let mut chunk = vec![0u8; 16 * 1024];
    let (mut out_open, mut err_open) = (true, true);
    let mut status: Option<ExitStatus> = None;

    let deadline = sleep(limit);
    tokio::pin!(deadline);
    // Re-armed when the process exits.
    let drain = sleep(Duration::from_secs(86_400));
    tokio::pin!(drain);
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);

    let end = loop {
        if let Some(s) = status {
            if !out_open && !err_open {
                break End::Exited(s);
            }
        }
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(64 * 1024);
        }
        tokio::select! {
            biased;
            _ = &mut cancelled, if status.is_none() => break End::Cancelled,
            _ = &mut deadline, if status.is_none() => break End::TimedOut,
            r = child.wait(), if status.is_none() => match r {
                Ok(s) => {
                    status = Some(s);
                    drain.as_mut().reset(Instant::now() + DRAIN_GRACE);
                }
                Err(e) => break End::Io("waiting for trivy", e),
            },
            r = stdout.read_buf(&mut out), if out_open => match r {
                Ok(0) => out_open = false,
                Ok(_) => {}
                Err(e) => break End::Io("reading trivy's stdout", e),
            },
            r = read_some(&mut stderr, &mut chunk), if err_open => match r {
                Ok(0) => err_open = false,
                Ok(n) => tail.push(&chunk[..n]),
                Err(e) => break End::Io("reading trivy's stderr", e),
            },
            _ = &mut drain, if status.is_some() => {
                tracing::warn!(
                    pid,
                    "trivy exited but its stdout/stderr stayed open for {}s \
                     (a leftover child process?); killing its process group",
                    DRAIN_GRACE.as_secs()
                );
                group.kill();
                break End::Exited(status.unwrap_or_default());
            }
        }
    };

    let elapsed_ms = started.elapsed().as_millis() as u64;
    match end {
        End::Exited(status) => {
            group.disarm();
            tracing::debug!(
                pid,
                elapsed_ms,
                exit = ?status,
                stdout_bytes = out.len(),
                "trivy finished"
            );
            Ok(Output {
                status,
                stdout: out,
                stderr_tail: tail.into_string(),
            })
        }
        other => {
            group.kill();
            let _ = child.start_kill();
            drop((stdout, stderr));
            match tokio::time::timeout(REAP_TIMEOUT, child.wait()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(pid, error = %e, "waiting for killed trivy failed"),
                Err(_) => tracing::warn!(
                    pid,
                    "killed trivy was not reaped within {}s",
                    REAP_TIMEOUT.as_secs()
                ),
            }
            group.disarm();
            let stderr_tail = tail.into_string();
            tracing::debug!(pid, elapsed_ms, stderr_tail = %stderr_tail, "trivy killed");
            Err(match other {
                End::TimedOut => ScanError::Timeout {
                    timeout: limit,
                    stderr_tail,
                },
                End::Cancelled => ScanError::Cancelled,
                End::Io(context, cause) => ScanError::Io { context, cause },
                End::Exited(_) => unreachable!("handled above"),
            })
        }
    }
}

async fn read_some<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    r.read(buf).await
}

/// Builds [`ScanError::Failed`] from an unsuccessful run.
pub(crate) fn failed(out: &Output) -> ScanError {
    let d = diagnose(&out.stderr_tail);
    let exit_code = out.status.code();
    if let Some(sig) = out.status.signal() {
        // Not us (we report Timeout/Cancelled for our kills): the OOM killer, an operator,
        // a node shutting down. Retrying later can succeed.
        let mut message = format!("trivy was killed by signal {sig}");
        if !d.message.is_empty() {
            message.push_str("; ");
            message.push_str(&d.message);
        }
        return ScanError::Failed {
            class: ErrorClass::Transient,
            message,
            exit_code,
        };
    }
    let message = if d.message.is_empty() {
        format!(
            "trivy exited with code {} and printed no error message",
            exit_code.unwrap_or(-1)
        )
    } else {
        d.message
    };
    ScanError::Failed {
        class: d.class,
        message,
        exit_code,
    }
}

/// Keeps the last `cap` bytes written to it.
struct Tail {
    buf: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Tail {
    fn new(cap: usize) -> Self {
        Tail {
            buf: Vec::new(),
            cap,
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }

    /// Lossy UTF-8; when bytes were dropped, starts at the first complete line.
    fn into_string(mut self) -> String {
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.truncated = true;
        }
        let mut start = 0;
        if self.truncated {
            if let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
                if nl + 1 < self.buf.len() {
                    start = nl + 1;
                }
            }
        }
        String::from_utf8_lossy(&self.buf[start..]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end_from_a_line_start() {
        let mut t = Tail::new(16);
        t.push(b"short\n");
        assert_eq!(t.into_string(), "short\n");

        let mut t = Tail::new(16);
        for i in 0..100 {
            t.push(format!("line {i}\n").as_bytes());
        }
        assert!(t.buf.len() <= 32);
        let s = t.into_string();
        assert!(s.len() <= 16, "{s:?}");
        assert!(s.starts_with("line "), "{s:?}");
        assert!(s.ends_with("line 99\n"), "{s:?}");
    }
}
