//! Secrets typed by a person (an API key, a password): read from standard
//! input without echo when it is a terminal, one line from a pipe otherwise.

use std::io::{BufRead, IsTerminal, Write};

use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};

/// Reads one line after `prompt` (shown only on a terminal); the typed
/// characters are not echoed. The line ending is removed.
pub fn read(prompt: &str) -> std::io::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let before = tcgetattr(&stdin)?;
    let mut quiet = before.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    // Echo of the newline stays on, so the next output starts on its own line.
    quiet.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Echo comes back whatever the read gave.
    tcsetattr(&stdin, SetArg::TCSANOW, &before)?;
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// A new secret: on a terminal asked twice, and refused unless both match.
pub fn read_new(prompt: &str) -> anyhow::Result<String> {
    let first = read(prompt)?;
    if std::io::stdin().is_terminal() {
        let again = read("again: ")?;
        anyhow::ensure!(
            first == again,
            "the two entries differ; nothing was changed"
        );
    }
    Ok(first)
}
