//! Output to a reader that went away (`berth inspect C | head -n1`): every command ends quietly,
//! as Docker's CLI (a Go program dies of SIGPIPE on a write to a closed stdout) and coreutils do.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `EPIPE`: `println!` panics with
//! "failed printing to stdout", `writeln!` returns an error. Both paths end here, in one place,
//! instead of each output site handling it.

use std::process::ExitCode;

/// Install a panic hook that turns the panic of `print!`/`println!` on a closed stdout (or
/// stderr) into a quiet death by SIGPIPE; any other panic goes to the default hook.
pub fn end_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains(&epipe_text()) {
            die_of_sigpipe();
        }
        default(info);
    }));
}

/// The text of `EPIPE` as `std::io::Error` displays it ("Broken pipe (os error 32)").
fn epipe_text() -> String {
    std::io::Error::from_raw_os_error(libc::EPIPE).to_string()
}

/// Whether an error (or one of its causes) is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// End the process as a broken pipe ends it: killed by SIGPIPE (status 141 in a shell).
pub fn broken_pipe_exit() -> ExitCode {
    die_of_sigpipe()
}

fn die_of_sigpipe() -> ! {
    // SAFETY: restoring the default disposition of SIGPIPE and raising it only ends this
    // process; no Rust state is observed after it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached unless SIGPIPE is blocked: exit with the status a shell would show.
    std::process::exit(128 + libc::SIGPIPE)
}

#[cfg(test)]
mod tests {
    #[test]
    fn broken_pipe_errors_are_recognised_through_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(io).context("writing the table");
        assert!(super::is_broken_pipe(&e));
        assert!(!super::is_broken_pipe(&anyhow::anyhow!(
            "no such container"
        )));
        assert!(super::epipe_text().contains("Broken pipe"));
    }
}
