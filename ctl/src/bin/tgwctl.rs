//! tgwctl: drive a running tgw through its control socket (docs/api.md).
//! `tgwctl --help` lists the verbs, each verb's `--help` its examples.
#![deny(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::Parser;
use ctl::api::{ErrorCode, Response};
use ctl::cli::top::{self, Stop};
use ctl::cli::{render, request, Cli, Shape};
use ctl::client::Client;

/// Exit codes, for scripts (docs/api.md): 1 tgw refused the request, 2
/// the words make no request, 3 tgw cannot be reached or may not be used.
const REFUSED: u8 = 1;
const USAGE: u8 = 2;
const UNREACHABLE: u8 = 3;

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 for --help / --version.
    let cli = Cli::parse();
    let (op, shape) = match request(cli.command, &read) {
        Ok(request) => request,
        Err(usage) => {
            eprintln!("tgwctl: {usage}");
            return ExitCode::from(USAGE);
        }
    };
    if let Shape::Top(args) = shape {
        let (message, code) = match top::run(&cli.socket, args, cli.json) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(Stop::Unreachable(e)) => (e.to_string(), UNREACHABLE),
            Err(Stop::Refused(e)) if e.code == ErrorCode::Permission => {
                (e.to_string(), UNREACHABLE)
            }
            Err(Stop::Refused(e)) => (e.to_string(), REFUSED),
            Err(Stop::Unreadable(why)) => (why, REFUSED),
        };
        eprintln!("tgwctl: {message}");
        return ExitCode::from(code);
    }
    let response = Client::connect(&cli.socket).and_then(|mut tgw| tgw.request(op));
    let response: Response = match response {
        Ok(response) => response,
        Err(e) => {
            eprintln!("tgwctl: {e}");
            return ExitCode::from(UNREACHABLE);
        }
    };
    if !response.ok {
        // A refusal without its error is the peer's fault, said as such
        // (it printed nothing and exited 0).
        let Some(error) = response.error else {
            eprintln!("tgwctl: tgw refused the request without saying why");
            return ExitCode::from(REFUSED);
        };
        eprintln!("tgwctl: {error}");
        // Kept out by the peer check is kept out, as by the file modes.
        return ExitCode::from(if error.code == ErrorCode::Permission {
            UNREACHABLE
        } else {
            REFUSED
        });
    }
    let text = if cli.json {
        render::json(&response.result)
    } else {
        render::human(&response.result, shape)
    };
    // A closed pipe (`tgwctl flow show | head`) is not an error worth a
    // panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    ExitCode::SUCCESS
}

/// A named file's text; `-` is standard input.
fn read(name: &str) -> std::io::Result<String> {
    if name == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text)
    } else {
        std::fs::read_to_string(name)
    }
}
