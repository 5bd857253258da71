//! `kiban`: the command line. Thin on purpose: it parses arguments, calls
//! `kiban-pipeline`, and presents results (Japanese first, `--lang en` / `KIBAN_LANG=en` for
//! English). Exit codes: 0 success, 1 refused or failed (with a message), 2 usage error.
//!
//! A closed output pipe (`kiban link review --json | head`) ends the command quietly with
//! exit code 0, as ripgrep does: the reader asked for no more, which is not a failure, and the
//! Rust runtime ignores SIGPIPE, so the write fails with `BrokenPipe` instead of the process
//! being killed (status 141 in a shell). Both ways a write can fail are caught here, for every
//! command: `println!` (which panics on a failed write) through the panic hook, and an
//! `io::Error` returned up the `anyhow` chain.

mod audit_cmds;
mod backup_cmds;
mod books_cmds;
mod commands;
mod duties_cmds;
mod erase_cmds;
mod incident_cmds;
mod link_cmds;
mod optout_cmds;
mod records_cmds;
mod refusals;
mod release_cmds;
mod ui;
mod workflow_cmds;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kiban",
    version,
    about = "kiban — 次世代医療基盤法の匿名加工・仮名加工医療情報作成事業者のための基盤 / a platform for certified producers under Japan's Next-Generation Medical Infrastructure Act"
)]
pub struct Cli {
    /// Workspace folder (default: the current folder).
    #[arg(long, global = true, env = "KIBAN_WORKSPACE", default_value = ".")]
    pub workspace: PathBuf,
    /// Language of messages: ja (default) or en.
    #[arg(long, global = true)]
    pub lang: Option<String>,
    /// Who is acting (recorded in the audit log).
    #[arg(long, global = true, env = "KIBAN_ACTOR")]
    pub actor: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a workspace: kiban.toml, keys, SQLite database, data folders.
    Init { dir: PathBuf },
    /// Run the whole pipeline on synthetic and bundled sample data, then print a summary.
    Demo(commands::DemoArgs),
    /// Generate a synthetic Japanese population (SS-MIX2, FHIR, UKE, CSV + ground truth).
    Synth(commands::SynthArgs),
    /// Data handlers (医療情報取扱事業者).
    #[command(subcommand)]
    Handler(commands::HandlerCmd),
    /// The opt-out registry: notices, stop and deletion requests, decisions.
    #[command(subcommand)]
    Optout(commands::OptoutCmd),
    /// Ingest files or folders of one handler (SS-MIX2, FHIR R4, UKE, DPC, CSV).
    Ingest(commands::IngestArgs),
    /// Handler side: send eligible patients' data to a producer, with the provision record.
    Export(optout_cmds::ExportArgs),
    /// Retention: the policy of kiban.toml [retention] (release copies, handlers' data after
    /// their contract end), then records past their period (3 years), each leaving a record.
    #[command(subcommand)]
    Retention(erase_cmds::RetentionCmd),
    /// The erasure duty (R-REC-5): erase a release's key and package copy, with its record.
    #[command(subcommand)]
    Erase(erase_cmds::EraseCmd),
    /// The statutory records (receipt, provision, erasure) for inspection, without SQL.
    #[command(subcommand)]
    Records(records_cmds::RecordsCmd),
    /// Counts per table, quarantined, rejected by the gate.
    Stats(JsonFlag),
    /// Input files: the workspace names them by reference (their paths carry patient IDs).
    #[command(subcommand)]
    Files(commands::FilesCmd),
    /// Link registrations into persons (名寄せ).
    Link(commands::LinkArgs),
    /// Table-level anonymization of a CSV file (ARX-style).
    Anonymize(commands::AnonymizeArgs),
    /// Write a release package; under --request, prepare it for a second actor's
    /// `kiban release approve`; `kiban release list` shows every release's status.
    Release(commands::ReleaseArgs),
    /// The recipient's side: `kiban package verify` checks and decrypts a delivered package.
    #[command(subcommand)]
    Package(release_cmds::PackageCmd),
    /// The tamper-evident audit log: verify it (chain, signed checkpoints, control plane),
    /// export a signed checkpoint.
    #[command(subcommand)]
    Audit(audit_cmds::AuditCmd),
    /// The release workflow: `kiban user`, `kiban request`, `kiban review`, `kiban contract`.
    #[command(flatten)]
    Workflow(workflow_cmds::WorkflowCmd),
    /// The books (帳簿, R-REC-4): every delivery, onward provision, erasure and transfer,
    /// with the receipt, provision and erasure records; `kiban books export` for inspection.
    Books(books_cmds::BooksArgs),
    /// Other certified producers (R-REC-7).
    #[command(subcommand)]
    Producer(books_cmds::ProducerCmd),
    /// Medical data to / from another certified producer: contracts and transfers.
    #[command(subcommand)]
    Transfer(books_cmds::TransferCmd),
    /// The producer's duties: `kiban complaint`, `kiban inquiry`, `kiban outsourcing`.
    #[command(flatten)]
    Duties(duties_cmds::DutiesCmd),
    /// Incidents (R-SEC-5): leaks (漏えい), loss (滅失), damage (毀損) — scope, measures, the
    /// report to the minister and the notice to the persons concerned, closing.
    #[command(subcommand)]
    Incident(incident_cmds::IncidentCmd),
    /// Back up the workspace (SQLite): data/, keys/ apart, a manifest with the SHA-256 of
    /// every file, signed with the audit key.
    Backup(backup_cmds::BackupArgs),
    /// Restore a backup into a new folder: every file checked, the audit log verified against
    /// its checkpoint, and the deletions made since the backup re-applied (--live).
    Restore(backup_cmds::RestoreArgs),
}

#[derive(Args, Debug, Clone, Copy)]
pub struct JsonFlag {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Whether a panic is `print!`/`println!` failing on a closed standard output.
fn is_broken_pipe_panic(info: &std::panic::PanicHookInfo<'_>) -> bool {
    let Some(msg) = info.payload_as_str() else {
        return false;
    };
    let broken = std::io::Error::from_raw_os_error(EPIPE).to_string();
    msg.starts_with("failed printing to stdout")
        && (msg.contains(&broken) || msg.contains("os error 32"))
}

/// EPIPE on Linux and the BSDs (macOS).
const EPIPE: i32 = 32;

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Quiet exit on a closed standard output (see the module documentation).
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_broken_pipe_panic(info) {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    owner_only_files();
    exit_quietly_on_broken_pipe();
    let code = run();
    // What is still buffered goes out now; a reader that is gone is not an error.
    match std::io::stdout().flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        _ => code,
    }
}

/// Umask 077 before anything is created: a workspace holds personal data, so every file
/// and folder this process creates (the database and its -wal/-shm, the lake, the audit log,
/// receipts, releases, quarantine copies) is readable by its owner only, 0600/0700. The
/// libraries create their folders 0700 themselves; this covers every file too.
fn owner_only_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn run() -> ExitCode {
    let cli = Cli::parse();
    let lang = ui::Lang::from_arg(cli.lang.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kiban: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli, lang)) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let prefix = lang.t("エラー", "error");
            eprintln!("kiban: {prefix}: {}", message(&e, lang));
            ExitCode::from(1)
        }
    }
}

/// The error's chain as `{:#}` prints it, with a refusal worded in `lang` by
/// [`refusals::render`] (the library gives its code and values only).
fn message(e: &anyhow::Error, lang: ui::Lang) -> String {
    let mut parts = Vec::new();
    for c in e.chain() {
        if let Some(kiban_pipeline::PipelineError::Refusal(r)) =
            c.downcast_ref::<kiban_pipeline::PipelineError>()
        {
            parts.push(refusals::render(r, lang));
            break;
        }
        parts.push(c.to_string());
    }
    parts.join(": ")
}
