//! A closed stdout ends the command quietly, with exit status 0.
//!
//! `mgrpo world --show 50 | head -1` or `mgrpo store dump … | head` close the pipe once they
//! have what they want. Rust ignores SIGPIPE, so the next write fails with EPIPE: `println!`
//! panics and `writeln!(…)?` returns an error. Neither is a failure of the command — the reader
//! stopped listening — so both end the process at once with status 0 and nothing on stderr.
use std::io::ErrorKind;

/// Installs the panic hook that turns `println!`'s "failed printing to stdout: Broken pipe"
/// panic into a quiet exit 0; every other panic goes to the default hook.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether a command's error is a write to a closed stdout: a broken pipe in its chain, and
/// stdout itself closed — a broken pipe to a peer's socket is a failure like any other, and
/// must not end the command with status 0. (Checking costs a newline on an open stdout, only
/// on that rare error.)
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
    }) && stdout_closed()
}

/// Whether writing to stdout fails with a broken pipe.
fn stdout_closed() -> bool {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    matches!(
        out.write_all(b"\n").and_then(|()| out.flush()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe
    )
}
