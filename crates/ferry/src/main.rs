//! The `ferry` binary: parses the command line, calls the library crates,
//! prints. No pipeline logic lives here.

mod admin;
mod artifacts;
mod ci;
mod cli;
mod commands;
mod cost;
mod ctx;
mod data;
mod exit;
mod export;
mod hooks;
mod lineage;
mod monitor;
mod place;
mod remote;
mod report;
mod serve;
mod stage;
mod ui;

use clap::Parser;

// The servers allocate per request (bodies, JSON, tensors); mimalloc's
// thread-local free lists beat glibc's arenas there. Without transparent
// huge pages (`no_thp`): with them, the first touch of each 2 MiB of its
// arenas zeroes a whole huge page, 3-4 per command (a sixth of a no-op
// `ferry run`'s system time), for requests that live in a few small pages.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

/// The error and its causes, `: `-separated, leaving out a cause whose text
/// the message already holds (many errors quote their source).
fn chain(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if msg.contains(&c) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&c);
    }
    msg
}

fn main() -> ExitCode {
    // `ferry runs list | head` must end quietly, as other Unix tools do,
    // not panic on a closed pipe.
    // SAFETY: restoring the default disposition of SIGPIPE at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = exit::of_error(&e);
            let msg = chain(&e);
            if msg.starts_with("error: ") {
                eprintln!("{msg}");
            } else {
                eprintln!("error: {msg}");
            }
            ExitCode::from(code)
        }
    }
}
