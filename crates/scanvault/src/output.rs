//! Standard output of the command-line commands (`openapi`, `apikey`, `ingest`).

use std::io::Write;

/// Writes one line to standard output. A reader that went away (`scanvault openapi | head`)
/// ends the process quietly with SIGPIPE's status, 141, as a closed pipe ends other
/// command-line tools; `println!` would panic instead.
pub fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// `println!` for the commands: see [`line`].
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
