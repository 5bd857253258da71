//! Every command exits quietly when its reader goes away (`kiban link review --json | head`):
//! exit code 0, as ripgrep does, and nothing on standard error — never a panic message.

mod common;

use std::process::{Command, Stdio};

use common::{kiban_cmd, ok};

/// Runs `kiban --workspace WS ARGS` with its standard output a pipe whose reading end is
/// already closed, so that its first write fails with EPIPE. Returns (status, stderr).
fn run_into_closed_pipe(ws: &std::path::Path, args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_kiban"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("KIBAN_LANG", "en")
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run kiban");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    ok(kiban_cmd(&["init", ws.to_str().unwrap()]).output().unwrap());
    for args in [
        &["link", "review", "--json"][..],
        &["link", "review"],
        &["stats", "--json"],
        &["stats"],
        &["audit", "verify"],
        &["--help"],
    ] {
        let (status, stderr) = run_into_closed_pipe(&ws, args);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
