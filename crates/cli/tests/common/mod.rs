//! Helpers shared by the CLI test binaries: run the built `kiban` and check its outcome.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// `kiban ARGS`, in English.
pub fn kiban_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiban"));
    c.args(args).env("KIBAN_LANG", "en");
    c
}

/// `kiban --workspace WS ARGS`, in English, run to completion.
pub fn kiban_in(ws: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("KIBAN_LANG", "en")
        .output()
        .expect("run kiban")
}

/// The standard output of a run that must succeed (its standard error otherwise).
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kiban failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
