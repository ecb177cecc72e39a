//! Secrets typed by a person (an API key, a password): read from standard
//! input without echo when it is a terminal, one line from a pipe otherwise.

use std::io::{BufRead, IsTerminal, Read, Write};

use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};

/// Ctrl-C typed at the prompt: the terminal is restored and nothing is read.
fn cancelled() -> anyhow::Error {
    crate::exit::JobFailed {
        code: bv_job::codes::CANCELLED.into(),
        message: "cancelled at the prompt; nothing was changed".into(),
    }
    .into()
}

/// Reads bytes up to the end of the line with the terminal in raw mode,
/// handling what line editing would have: backspace, Ctrl-C, Ctrl-D.
fn raw_line() -> anyhow::Result<String> {
    let mut line = String::new();
    let mut pending = Vec::new(); // the bytes of a character not yet whole
    let mut stdin = std::io::stdin().lock();
    let mut b = [0u8; 1];
    loop {
        if stdin.read(&mut b)? == 0 {
            break;
        }
        match b[0] {
            b'\n' | b'\r' => break,
            0x03 => return Err(cancelled()),
            0x04 if line.is_empty() => break,
            0x7f | 0x08 => {
                pending.clear();
                line.pop();
            }
            byte => {
                pending.push(byte);
                if let Ok(s) = std::str::from_utf8(&pending) {
                    line.push_str(s);
                    pending.clear();
                } else if pending.len() >= 4 {
                    pending.clear();
                }
            }
        }
    }
    Ok(line)
}

/// Reads one line after `prompt` (shown only on a terminal); the typed
/// characters are not echoed. The line ending is removed.
pub fn read(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let before = tcgetattr(&stdin)?;
    let mut quiet = before.clone();
    // No echo, no line editing and no signals from the terminal: Ctrl-C
    // arrives as a byte that [`raw_line`] answers after the terminal is
    // restored, instead of ending the process with echo still off.
    quiet
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    quiet.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    quiet.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
    // The prompt only once the terminal is quiet: whatever is typed after
    // it (even at once) is neither echoed nor turned into a signal.
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let line = raw_line();
    // Echo comes back whatever the read gave.
    tcsetattr(&stdin, SetArg::TCSANOW, &before)?;
    eprintln!();
    line
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
