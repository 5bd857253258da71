//! One function per command: parse → call the pipeline → present.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_pipeline::files::escape_control;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::release::ReleaseOptions;

use crate::ui::{Bars, Lang, row, table};
use crate::{Cli, Command, JsonFlag};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Folder for the demo (workspace, synthetic data, releases). Replaced if it holds an
    /// earlier demo; refused if it holds anything else.
    #[arg(long, default_value = "kiban-demo")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 600)]
    pub persons: u64,
    #[arg(long, default_value_t = 4)]
    pub hospitals: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    #[arg(long)]
    pub persons: u64,
    /// Hospitals (handlers); default 4, or 10 with --claims.
    #[arg(long)]
    pub hospitals: Option<u32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub out: PathBuf,
    /// A claims-only population (レセプト電算): no address or phone, insurance changes by
    /// life event (job change, 後期高齢者医療 at 75, a dependant leaving the family card),
    /// rare and common names, twins, namesakes as common as their names. With --formats,
    /// the same persons in those formats instead (e.g. uke,fhir,ssmix2 for a mix).
    #[arg(long)]
    pub claims: bool,
    /// Comma-separated: ssmix2,fhir,uke,csv (default: all; uke with --claims).
    #[arg(long, value_delimiter = ',')]
    pub formats: Vec<String>,
    /// Write every format for every hospital (for per-format count checks).
    #[arg(long)]
    pub all_formats: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum HandlerCmd {
    /// Register a data handler with its filing and publication dates (R-OPT-3).
    Add {
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        address: String,
        #[arg(long)]
        representative: Option<String>,
        /// Date of filing (届出) with the minister.
        #[arg(long)]
        filed: Option<String>,
        /// Date the minister published the filing.
        #[arg(long)]
        published: Option<String>,
        /// Date of the handler's own publication (default: the minister's).
        #[arg(long)]
        own_published: Option<String>,
        /// Waiting period between notice and first provision, in days (R-OPT-2).
        #[arg(long, default_value_t = 30)]
        waiting_days: u32,
        /// How the handler spells its patient IDs: `as-is` (Unicode NFKC and trimming only)
        /// or `digits:N` (digits only, zero-padded to N: with digits:7, 16241, 0016241 and
        /// ００１６２４１ are one patient). Every ID — ingest, opt-out commands and imports,
        /// export — is normalized with it; an ID that does not fit is refused (opt-out) or
        /// quarantined (ingest). Cannot be changed later by this command.
        #[arg(long, default_value = "as-is", value_name = "as-is|digits:N")]
        patient_id_format: String,
    },
    /// List registered handlers.
    List(JsonFlag),
    /// Change a handler's filing and publication dates, name, address, representative or
    /// waiting period (e.g. once its filing is published). The record replaced is kept in the
    /// handler's history (`kiban handler history`); audited.
    Update(crate::optout_cmds::HandlerUpdateArgs),
    /// A handler's history: its registration and every change, oldest first.
    History {
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Versions of the handler's notice to patients (R-OPT-1), each with its waiting period.
    #[command(subcommand)]
    NoticeVersion(crate::optout_cmds::NoticeVersionCmd),
}

#[derive(Subcommand, Debug)]
pub enum OptoutCmd {
    /// Import notices, stop and deletion requests from CSV
    /// (header handler_code,patient_id,event,date[,channel,requester,relation]).
    Import {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Record a notice (通知) for one patient.
    Notice(crate::optout_cmds::OptoutEventArgs),
    /// Record a stop request (提供停止の求め) and issue its receipt (PDF).
    Stop(crate::optout_cmds::OptoutEventArgs),
    /// Record a deletion request, issue its receipt, and erase the patient's data.
    Delete(crate::optout_cmds::OptoutEventArgs),
    /// Record the withdrawal of a stop request.
    Withdraw(crate::optout_cmds::OptoutEventArgs),
    /// Record an explicit consent (opt-in, with --scope): the patient may be provided without
    /// the notice's waiting period.
    Consent(crate::optout_cmds::OptoutEventArgs),
    /// Record the withdrawal of an explicit consent: provision stops from its date.
    ConsentWithdraw(crate::optout_cmds::OptoutEventArgs),
    /// Record that a patient is under guardianship (16 or older without capacity) from a
    /// date: a guardian may then act for them (R-OPT-8).
    Guardianship(crate::optout_cmds::PatientStatusArgs),
    /// Record that a patient died on a date: the bereaved family may then act (R-OPT-8).
    Deceased(crate::optout_cmds::PatientStatusArgs),
    /// Erase every patient with a deletion request (vault key, lake rows, links).
    ApplyDeletions(crate::optout_cmds::ApplyDeletionsArgs),
    /// Print a stop or deletion receipt again from its stored copy (sealed in the workspace;
    /// opens while the patient exists and the copy is within its retention period).
    Receipt(crate::optout_cmds::ReceiptArgs),
    /// Find a patient's registrations across handlers by name or kana, birth date and sex
    /// (the desk's search; audited): then stop or delete by --registration.
    Find(crate::optout_cmds::FindArgs),
    /// Show the gate's decision for one patient.
    Status {
        #[arg(long)]
        handler: String,
        #[arg(long)]
        patient: String,
        /// Decide as of this date (default: today).
        #[arg(long)]
        on: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long)]
    pub handler: String,
    /// auto | ssmix2 | fhir
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Date of receipt (default: today); the gate decides as of this date.
    #[arg(long)]
    pub received: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub cmd: Option<LinkCmd>,
    /// Match probability at or above which records are linked.
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Link only registrations new since the last run, with the stored model.
    #[arg(long)]
    pub incremental: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LinkCmd {
    /// The clerical review queue; record a decision with --decide A B same|different.
    Review(crate::link_cmds::LinkReviewArgs),
    /// Write handler_code,patient_id,person_key.
    Export { file: PathBuf },
    /// Pairwise and cluster precision/recall/F1 against facility_code,patient_id,person_id.
    Evaluate {
        truth: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct AnonymizeArgs {
    pub table: PathBuf,
    #[arg(long)]
    pub hierarchies: PathBuf,
    #[arg(long)]
    pub k: u32,
    /// Largest share of records that may be suppressed (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub suppression: f64,
    /// loss (default) | precision | discernibility | entropy
    #[arg(long, default_value = "loss")]
    pub metric: String,
    /// l of l-diversity (needs --sensitive).
    #[arg(long)]
    pub l: Option<f64>,
    /// distinct (default) | entropy | recursive
    #[arg(long, default_value = "distinct")]
    pub l_variant: String,
    /// c of recursive (c,l)-diversity.
    #[arg(long, default_value_t = 3.0)]
    pub c: f64,
    /// t of t-closeness (needs --sensitive).
    #[arg(long)]
    pub t: Option<f64>,
    /// equal (default) | hierarchical
    #[arg(long, default_value = "equal")]
    pub t_variant: String,
    #[arg(long)]
    pub sensitive: Option<String>,
    #[arg(long, value_delimiter = ',')]
    pub qi: Vec<String>,
    #[arg(long, default_value = ";")]
    pub sep: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReleaseArgs {
    /// `approve RELEASE_ID` or `list`, instead of writing a release.
    #[command(subcommand)]
    pub action: Option<crate::release_cmds::ReleaseCmd>,
    /// A release spec (TOML); or use --profile.
    pub spec: Option<PathBuf>,
    /// A built-in profile: anonymized | pseudonymized.
    #[arg(long)]
    pub profile: Option<String>,
    /// Print a built-in profile's spec and exit.
    #[arg(long, value_name = "NAME")]
    pub print_profile: Option<String>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// An approved request (the release workflow): the release is prepared in the workspace,
    /// awaiting a second actor's `kiban release approve`, which writes the encrypted package
    /// to --out. Without it: internal evaluation.
    #[arg(long)]
    pub request: Option<String>,
    /// The date the gate decides as of (default and only choice for a deliverable release:
    /// today). An earlier date needs --rerun-of and may not precede the latest consent event.
    #[arg(long)]
    pub on: Option<String>,
    /// Label of the earlier internal evaluation this release re-runs as of --on.
    #[arg(long, value_name = "LABEL")]
    pub rerun_of: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum FilesCmd {
    /// Print the original path of file references (f-…) shown by ingest, quarantine and
    /// gate rejections: REF, handler, path, tab-separated. Audited.
    Show {
        #[arg(required = true)]
        refs: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn parse_date(s: &str, what: &str) -> Result<NaiveDate> {
    let t = s.trim().replace('/', "-");
    NaiveDate::parse_from_str(&t, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(&t, "%Y%m%d"))
        .with_context(|| format!("{what}: {s:?} is not a date (YYYY-MM-DD)"))
}

pub(crate) fn opt_date(s: &Option<String>, what: &str) -> Result<Option<NaiveDate>> {
    s.as_deref().map(|d| parse_date(d, what)).transpose()
}

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

/// The language of messages printed outside a command's own output (set by [`run`]).
static LANG: std::sync::OnceLock<Lang> = std::sync::OnceLock::new();

/// Says once, on standard error, that the command waits for another one holding the
/// workspace lock (see `kiban_pipeline::lock`).
/// Said once: the open narrowed folders or files that group or others could read.
fn say_tightened(n: usize) {
    if n == 0 {
        return;
    }
    let lang = LANG.get().copied().unwrap_or(Lang::Ja);
    eprintln!(
        "{}",
        lang.t(
            &format!(
                "ワークスペースの {n} 個のフォルダ・ファイルが他のユーザーから読める状態だったため、所有者のみ (0700/0600) に変更しました"
            ),
            &format!(
                "{n} workspace folders or files were readable by other users; narrowed to owner-only (0700/0600)"
            )
        )
    );
}

fn say_waiting(w: kiban_pipeline::lock::LockWait) {
    let lang = LANG.get().copied().unwrap_or(Lang::Ja);
    eprintln!(
        "{} ({} {} s)",
        lang.t(
            "ワークスペースは他の kiban コマンドが使用中です。終了を待っています…",
            "the workspace is in use by another kiban command; waiting for it to finish…"
        ),
        lang.t("最大", "at most"),
        w.timeout.as_secs()
    );
}

/// Opens the workspace to change it (the lock held exclusively; waits for other commands).
pub(crate) async fn open(cli_ws: &Path, actor: &Option<String>) -> Result<Workspace> {
    open_as(cli_ws, actor, kiban_pipeline::lock::Access::Write).await
}

/// Opens the workspace to read it (the lock shared with other readers; waits for a writer).
pub(crate) async fn open_read(cli_ws: &Path, actor: &Option<String>) -> Result<Workspace> {
    open_as(cli_ws, actor, kiban_pipeline::lock::Access::Read).await
}

async fn open_as(
    cli_ws: &Path,
    actor: &Option<String>,
    access: kiban_pipeline::lock::Access,
) -> Result<Workspace> {
    let mut ws = Workspace::open_with(cli_ws, access, &mut say_waiting).await?;
    say_tightened(ws.permissions_tightened());
    if let Some(a) = actor {
        ws.set_actor(a.clone());
    }
    Ok(ws)
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn run(cli: Cli, lang: Lang) -> Result<ExitCode> {
    let ok = ExitCode::SUCCESS;
    let _ = LANG.set(lang);
    match cli.command {
        Command::Init { dir } => {
            let ws = Workspace::init(&dir).await?;
            println!(
                "{}: {}",
                lang.t("ワークスペースを作成しました", "workspace created"),
                ws.root().display()
            );
            Ok(ok)
        }
        Command::Demo(a) => demo(a, lang).await,
        Command::Synth(a) => synth(a, lang),
        Command::Handler(HandlerCmd::Add {
            code,
            name,
            address,
            representative,
            filed,
            published,
            own_published,
            waiting_days,
            patient_id_format,
        }) => {
            let patient_id_format: kiban_consent::PatientIdFormat =
                patient_id_format.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "--patient-id-format: {e} / 患者IDの形式は as-is または digits:N で指定してください"
                    )
                })?;
            let ws = open(&cli.workspace, &cli.actor).await?;
            let mut h = kiban_consent::HandlerInfo::new(code, name, address);
            h.patient_id_format = patient_id_format;
            h.representative = representative;
            h.filed_date = opt_date(&filed, "--filed")?;
            h.minister_published_date = opt_date(&published, "--published")?;
            h.own_published_date =
                opt_date(&own_published, "--own-published")?.or(h.minister_published_date);
            h.waiting_days = waiting_days;
            ws.add_handler(&h).await?;
            println!(
                "{}: {} ({}: {})",
                lang.t("医療情報取扱事業者を登録しました", "handler registered"),
                h.code,
                lang.t("患者IDの形式", "patient ID format"),
                h.patient_id_format
            );
            Ok(ok)
        }
        Command::Handler(HandlerCmd::List(j)) => {
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            let hs = ws.list_handlers().await?;
            if j.json {
                print_json(&hs)?;
            } else {
                for h in hs {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        h.code,
                        h.name,
                        h.filed_date.map(|d| d.to_string()).unwrap_or("-".into()),
                        h.minister_published_date
                            .map(|d| d.to_string())
                            .unwrap_or("-".into()),
                        h.waiting_days,
                        h.patient_id_format
                    );
                }
            }
            Ok(ok)
        }
        Command::Handler(HandlerCmd::Update(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_handler_update(&ws, a, lang).await
        }
        Command::Handler(HandlerCmd::History { code, json }) => {
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_handler_history(&ws, &code, json, lang).await
        }
        Command::Handler(HandlerCmd::NoticeVersion(c)) => {
            // Listing only reads: it waits for no writer's recovery.
            let ws = match c {
                crate::optout_cmds::NoticeVersionCmd::List { .. } => {
                    open_read(&cli.workspace, &cli.actor).await?
                }
                crate::optout_cmds::NoticeVersionCmd::Add(_) => {
                    open(&cli.workspace, &cli.actor).await?
                }
            };
            crate::optout_cmds::run_notice_version(&ws, c, lang).await
        }
        Command::Optout(OptoutCmd::Import { file, json }) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            let r = ws.import_optout(&file).await?;
            if json {
                print_json(&r)?;
            } else {
                print!(
                    "{}",
                    table(
                        lang.t("オプトアウト取り込み", "opt-out import"),
                        &[
                            row(lang, "取り込み", "imported", r.imported.to_string()),
                            row(lang, "重複", "duplicates", r.duplicates.to_string()),
                            row(lang, "不備", "rejected", r.rejected.to_string()),
                        ]
                    )
                );
                for rej in r.rejections.iter().take(20) {
                    eprintln!("  {rej}");
                }
            }
            Ok(ok)
        }
        Command::Optout(OptoutCmd::Status {
            handler,
            patient,
            on,
            json,
        }) => {
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            let on = opt_date(&on, "--on")?.unwrap_or_else(today);
            let d = ws.optout_status(&handler, &patient, on).await?;
            if json {
                print_json(&d)?;
            } else {
                let verdict = match &d.eligibility {
                    kiban_consent::Eligibility::Eligible => {
                        lang.t("提供可（受領できます）", "eligible").to_string()
                    }
                    kiban_consent::Eligibility::Ineligible(r) => format!(
                        "{}: {}",
                        lang.t("提供不可", "ineligible"),
                        match lang {
                            Lang::Ja => r.to_string(),
                            Lang::En => r.message_en(),
                        }
                    ),
                };
                print!(
                    "{}",
                    table(
                        lang.t("オプトアウト判定", "opt-out decision"),
                        &[
                            row(
                                lang,
                                "医療情報取扱事業者",
                                "handler",
                                d.handler_code.clone()
                            ),
                            row(lang, "判定日", "as of", d.on.to_string()),
                            row(lang, "判定", "decision", verdict),
                            row(
                                lang,
                                "参照した事象",
                                "events considered",
                                d.events_considered.to_string()
                            ),
                        ]
                    )
                );
            }
            Ok(ok)
        }
        Command::Optout(OptoutCmd::Notice(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_event(&ws, kiban_consent::EventKind::Notice, a, lang).await
        }
        Command::Optout(OptoutCmd::Stop(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_event(&ws, kiban_consent::EventKind::Stop, a, lang).await
        }
        Command::Optout(OptoutCmd::Delete(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_event(&ws, kiban_consent::EventKind::Delete, a, lang).await
        }
        Command::Optout(OptoutCmd::Withdraw(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_event(&ws, kiban_consent::EventKind::Withdraw, a, lang).await
        }
        Command::Optout(OptoutCmd::Consent(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_event(&ws, kiban_consent::EventKind::Consent, a, lang).await
        }
        Command::Optout(OptoutCmd::ConsentWithdraw(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_event(&ws, kiban_consent::EventKind::ConsentWithdraw, a, lang)
                .await
        }
        Command::Optout(OptoutCmd::Guardianship(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_status(&ws, kiban_consent::StatusKind::Guardianship, a, lang)
                .await
        }
        Command::Optout(OptoutCmd::Deceased(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_status(&ws, kiban_consent::StatusKind::Deceased, a, lang).await
        }
        Command::Optout(OptoutCmd::Find(a)) => {
            // A read (audited): waits for no writer's recovery.
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_find(&ws, a, lang).await
        }
        Command::Optout(OptoutCmd::Receipt(a)) => {
            // A read (audited): the copy is opened through the vault.
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_receipt(&ws, a, lang).await
        }
        Command::Optout(OptoutCmd::ApplyDeletions(a)) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_apply_deletions(&ws, a, lang).await
        }
        Command::Export(a) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::optout_cmds::run_export(&ws, a, lang).await
        }
        Command::Retention(c) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::erase_cmds::run_retention(&ws, c, lang).await
        }
        Command::Erase(c) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::erase_cmds::run_erase(&ws, c, lang).await
        }
        Command::Ingest(a) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            let format = kiban_ingest::parse_format_arg(&a.format)?;
            let opts = IngestOptions {
                handler: a.handler,
                format,
                received_on: opt_date(&a.received, "--received")?.unwrap_or_else(today),
            };
            let bars = Bars::new(a.json, lang);
            let r = ws.ingest(&a.paths, &opts, &bars).await?;
            if a.json {
                print_json(&r)?;
            } else {
                print!("{}", ingest_table(&r, lang));
                print_quarantine(&r, lang);
            }
            Ok(ok)
        }
        Command::Files(FilesCmd::Show { refs, json }) => {
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            let shown = ws.show_files(&refs).await?;
            if json {
                print_json(&shown)?;
            }
            let mut unknown = 0;
            for f in &shown {
                match (&f.handler, &f.path) {
                    (Some(h), Some(p)) => {
                        if !json {
                            // One record per line, three fields: a TAB or newline in a
                            // name is escaped (--json gives names exactly).
                            println!(
                                "{}\t{}\t{}",
                                f.file_ref,
                                escape_control(h),
                                escape_control(p)
                            );
                        }
                    }
                    _ => {
                        unknown += 1;
                        eprintln!(
                            "{}: {}",
                            lang.t(
                                "このワークスペースにないファイル参照です",
                                "no such file reference in this workspace"
                            ),
                            f.file_ref
                        );
                    }
                }
            }
            Ok(if unknown > 0 { ExitCode::from(1) } else { ok })
        }
        Command::Records(cmd) => {
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            crate::records_cmds::run_records(&ws, cmd, lang).await
        }
        Command::Stats(j) => {
            let ws = open_read(&cli.workspace, &cli.actor).await?;
            let s = ws.stats().await?;
            if j.json {
                print_json(&s)?;
            } else {
                let mut rows = vec![
                    row(
                        lang,
                        "登録患者",
                        "registrations",
                        s.registrations.to_string(),
                    ),
                    row(
                        lang,
                        "人（名寄せ後）",
                        "persons (linked)",
                        s.persons.to_string(),
                    ),
                ];
                for (t, n) in &s.tables {
                    rows.push((t.clone(), n.to_string()));
                }
                rows.push(row(lang, "隔離", "quarantined", s.quarantined.to_string()));
                // Per reason code (stable machine codes, the same in --json).
                for (code, n) in &s.quarantined_by_reason {
                    rows.push((format!("  {code}"), n.to_string()));
                }
                rows.push(row(
                    lang,
                    "ゲートで拒否",
                    "rejected by gate",
                    s.rejected.to_string(),
                ));
                for (code, n) in &s.rejected_by_reason {
                    rows.push((format!("  {code}"), n.to_string()));
                }
                if s.facts_retracted > 0 || !s.orders_retracted.is_empty() {
                    rows.push(row(
                        lang,
                        "取消・差替で削除した事実",
                        "facts retracted (invalidated/replaced orders)",
                        s.facts_retracted.to_string(),
                    ));
                }
                if s.attachments > 0 {
                    rows.push(row(
                        lang,
                        "添付ファイル",
                        "attachments",
                        s.attachments.to_string(),
                    ));
                }
                rows.push(row(
                    lang,
                    "データと一致しない停止・削除の求め（要確認）",
                    "opt-out requests matching no data (check)",
                    s.optout_events_unmatched.to_string(),
                ));
                rows.push(row(
                    lang,
                    "データと一致しない通知",
                    "notices matching no data",
                    s.optout_notices_unmatched.to_string(),
                ));
                print!(
                    "{}",
                    table(lang.t("ワークスペースの内容", "workspace contents"), &rows)
                );
            }
            Ok(ok)
        }
        Command::Link(a) => link(&cli.workspace, &cli.actor, a, lang).await,
        Command::Anonymize(a) => anonymize(a, lang),
        Command::Release(mut a) => match a.action.take() {
            Some(cmd) => {
                let ws = if cmd.reads_only() {
                    open_read(&cli.workspace, &cli.actor).await?
                } else {
                    open(&cli.workspace, &cli.actor).await?
                };
                crate::release_cmds::run(&ws, cmd, lang).await
            }
            None => release(&cli.workspace, &cli.actor, a, lang).await,
        },
        Command::Package(c) => crate::release_cmds::run_package(c, lang),
        Command::Books(a) => {
            let ws = if a.reads_only() {
                open_read(&cli.workspace, &cli.actor).await?
            } else {
                open(&cli.workspace, &cli.actor).await?
            };
            crate::books_cmds::run_books(&ws, a, lang).await
        }
        Command::Producer(c) => {
            let ws = if c.reads_only() {
                open_read(&cli.workspace, &cli.actor).await?
            } else {
                open(&cli.workspace, &cli.actor).await?
            };
            crate::books_cmds::run_producer(&ws, c, lang).await
        }
        Command::Transfer(c) => {
            let ws = open(&cli.workspace, &cli.actor).await?;
            crate::books_cmds::run_transfer(&ws, c, lang).await
        }
        Command::Duties(c) => {
            let ws = if c.reads_only() {
                open_read(&cli.workspace, &cli.actor).await?
            } else {
                open(&cli.workspace, &cli.actor).await?
            };
            crate::duties_cmds::run(&ws, c, lang).await
        }
        Command::Incident(c) => {
            let ws = if c.reads_only() {
                open_read(&cli.workspace, &cli.actor).await?
            } else {
                open(&cli.workspace, &cli.actor).await?
            };
            crate::incident_cmds::run(&ws, c, lang).await
        }
        Command::Backup(a) => {
            crate::backup_cmds::run_backup(&cli.workspace, &cli.actor, a, lang).await
        }
        Command::Restore(a) => crate::backup_cmds::run_restore(&cli.actor, a, lang).await,
        Command::Workflow(c) => {
            let ws = if c.reads_only() {
                open_read(&cli.workspace, &cli.actor).await?
            } else {
                open(&cli.workspace, &cli.actor).await?
            };
            crate::workflow_cmds::run(&ws, c, lang).await
        }
        Command::Audit(cmd) => crate::audit_cmds::run(cmd, &cli.workspace, &cli.actor, lang).await,
    }
}

/// Quarantined units of an ingest run (at most 20), files named by reference.
fn print_quarantine(r: &kiban_pipeline::ingest::IngestReport, lang: Lang) {
    const SHOWN: usize = 20;
    if r.quarantine.is_empty() {
        return;
    }
    println!(
        "{}",
        lang.t(
            "隔離（ファイル参照・位置・項目・理由）:",
            "quarantined (file reference, location, field, reason):"
        )
    );
    for q in r.quarantine.iter().take(SHOWN) {
        println!(
            "  {}  {}  {}  {}: {}",
            q.file,
            q.location,
            q.field.as_deref().unwrap_or("-"),
            q.code,
            q.reason
        );
    }
    if r.units_quarantined > SHOWN as u64 {
        println!(
            "  … {} {}",
            r.units_quarantined - SHOWN as u64,
            lang.t(
                "件ほか（隔離テーブルに記録）",
                "more (in the quarantine table)"
            )
        );
    }
    println!(
        "{}",
        lang.t(
            "元のファイルパスの表示: kiban files show 参照…",
            "original paths: kiban files show REF…"
        )
    );
}

fn ingest_table(r: &kiban_pipeline::ingest::IngestReport, lang: Lang) -> String {
    let mut rows = vec![
        row(lang, "ファイル", "files", r.files.to_string()),
        row(
            lang,
            "取り込み済みのため省略",
            "already ingested",
            r.files_already_ingested.to_string(),
        ),
        row(lang, "受領", "accepted", r.units_accepted.to_string()),
        row(
            lang,
            "ゲートで拒否",
            "rejected by gate",
            r.units_rejected.to_string(),
        ),
        row(lang, "隔離", "quarantined", r.units_quarantined.to_string()),
        row(
            lang,
            "版管理で置換",
            "superseded",
            r.units_superseded.to_string(),
        ),
        row(
            lang,
            "新規登録患者",
            "new registrations",
            r.new_registrations.to_string(),
        ),
    ];
    for (t, n) in &r.facts {
        rows.push((format!("  {t}"), n.to_string()));
    }
    for (reason, n) in &r.rejected_by_reason {
        rows.push((
            format!("  {}: {reason}", lang.t("拒否理由", "rejected")),
            n.to_string(),
        ));
    }
    // A stop or deletion filed under a spelling of the ID that no data uses never applies:
    // the desk checks these (a count, never the patients).
    rows.push(row(
        lang,
        "データと一致しない停止・削除の求め（要確認）",
        "opt-out requests matching no data (check)",
        r.optout_requests_unmatched.to_string(),
    ));
    // The handler's declaration confirmed on receipt (R-REC-2), kept in the receipt record.
    if let Some(d) = &r.declaration {
        use kiban_records::DeclarationStatus as S;
        let check = match d.status {
            S::First => lang.t("初回確認", "confirmed (first)").to_string(),
            S::Changed => lang
                .t("変更あり・再確認", "changed, confirmed again")
                .to_string(),
            S::Unchanged => match lang {
                Lang::Ja => format!("{} から変更なし", d.since),
                Lang::En => format!("unchanged since {}", d.since),
            },
        };
        rows.push(row(
            lang,
            "事業者の申告（受領時確認）",
            "handler's declaration",
            check,
        ));
        rows.push(row(
            lang,
            "  取得の経緯",
            "  acquisition",
            match (&d.acquisition, &d.notice_version) {
                (Some(a), Some(v)) => format!("{a} ({v})"),
                (Some(a), None) => a.clone(),
                _ => lang
                    .t("申告なし（通知版なし）", "not declared (no notice version)")
                    .to_string(),
            },
        ));
    }
    table(
        &format!(
            "{} ({})",
            lang.t("取り込み結果", "ingest summary"),
            r.handler
        ),
        &rows,
    )
}

async fn release(
    ws_dir: &Path,
    actor: &Option<String>,
    a: ReleaseArgs,
    lang: Lang,
) -> Result<ExitCode> {
    if let Some(name) = &a.print_profile {
        match kiban_release::profile_text(name) {
            Some(t) => {
                print!("{t}");
                return Ok(ExitCode::SUCCESS);
            }
            None => bail!(
                "{} {name:?} (anonymized, pseudonymized)",
                lang.t("不明なプロファイル", "unknown profile")
            ),
        }
    }
    let spec = match (&a.spec, &a.profile) {
        (Some(p), None) => {
            let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
            kiban_release::Spec::parse(&text)?
        }
        (None, Some(name)) => kiban_release::Spec::profile(name)?,
        _ => bail!(
            "{}",
            lang.t(
                "SPEC.toml か --profile のどちらか一方を指定してください",
                "give either SPEC.toml or --profile"
            )
        ),
    };
    let Some(out) = a.out.clone() else {
        bail!(
            "{}",
            lang.t("--out を指定してください", "--out is required")
        );
    };
    let ws = open(ws_dir, actor).await?;
    let opts = ReleaseOptions {
        spec,
        out,
        on: opt_date(&a.on, "--on")?.unwrap_or_else(today),
        request: a.request.clone(),
        rerun_of: a.rerun_of.clone(),
    };
    let bars = Bars::new(a.json, lang);
    let r = ws.release(&opts, &bars).await?;
    if a.json {
        print_json(&r.manifest)?;
    } else {
        print!("{}", release_table(&r, lang));
        if r.status == kiban_pipeline::release_approval::STATUS_AWAITING {
            println!(
                "{}",
                lang.t(
                    "承認待ちです。作成者とは別の担当者が kiban release approve で承認すると、暗号化した提供データが --out に書かれます",
                    "awaiting approval: a different actor runs kiban release approve, which writes the encrypted package to --out"
                )
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn release_table(r: &kiban_pipeline::release::ReleaseReport, lang: Lang) -> String {
    let m = &r.manifest;
    let mut rows = vec![
        row(lang, "提供ID", "release", m.release_id.clone()),
        row(lang, "加工の種類", "level", m.level.as_str().to_string()),
        row(lang, "出力先", "folder", r.out.display().to_string()),
        row(lang, "人数", "persons", m.persons.to_string()),
        row(
            lang,
            "秘匿（抑制）",
            "suppressed",
            m.persons_suppressed.to_string(),
        ),
        row(
            lang,
            "オプトアウト等で除外",
            "excluded by gate",
            r.excluded_by_gate.values().sum::<u64>().to_string(),
        ),
    ];
    if let Some(k) = m.k {
        rows.push(("k".into(), k.to_string()));
    }
    for (t, e) in &m.tables {
        rows.push((format!("  {t}"), e.rows.to_string()));
    }
    if m.internal_evaluation {
        rows.push(row(
            lang,
            "区分",
            "kind",
            lang.t(
                "内部評価用（提供不可）",
                "internal evaluation (not for delivery)",
            )
            .to_string(),
        ));
    }
    if let Some(k) = &r.recipient {
        // The preparer sees the key the approval will seal to; a change before the approval
        // refuses it (recipient_changed).
        rows.push(row(
            lang,
            "暗号化先（利用者の鍵）",
            "will be encrypted to (user's key)",
            k.clone(),
        ));
    }
    table(lang.t("提供データ", "release package"), &rows)
}

fn synth(a: SynthArgs, lang: Lang) -> Result<ExitCode> {
    let mut cfg = if a.claims {
        kiban_synth::SynthConfig::claims(a.persons, a.hospitals.unwrap_or(10), a.seed)
    } else {
        kiban_synth::SynthConfig {
            persons: a.persons,
            hospitals: a.hospitals.unwrap_or(4),
            seed: a.seed,
            ..Default::default()
        }
    };
    cfg.all_formats_per_hospital = a.all_formats;
    if !a.formats.is_empty() {
        cfg.formats = a
            .formats
            .iter()
            .map(|f| {
                kiban_synth::SynthFormat::parse(f).with_context(|| {
                    format!("--formats: unknown format {f:?} (ssmix2, fhir, uke, csv)")
                })
            })
            .collect::<Result<_>>()?;
    }
    let bars = Bars::new(a.json, lang);
    kiban_pipeline::Progress::stage(&bars, "synth", Some(cfg.persons));
    let mut last = 0u64;
    let summary = kiban_synth::generate(&cfg, &a.out, &mut |done, _total| {
        kiban_pipeline::Progress::advance(&bars, done.saturating_sub(last));
        last = done;
    })?;
    kiban_pipeline::Progress::finish_stage(&bars);
    if a.json {
        print_json(&summary)?;
    } else {
        println!(
            "{}: {} ({} {}, {} {})",
            lang.t("合成データを出力しました", "synthetic data written"),
            a.out.display(),
            summary.persons,
            lang.t("人", "persons"),
            summary.totals.registrations,
            lang.t("登録", "registrations"),
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn demo(a: DemoArgs, lang: Lang) -> Result<ExitCode> {
    let bars = Bars::new(a.json, lang);
    let opts = kiban_pipeline::demo::DemoOptions {
        out: a.out,
        persons: a.persons,
        hospitals: a.hospitals,
        seed: a.seed,
        today: today(),
    };
    let r = kiban_pipeline::demo::run(&opts, &bars).await?;
    if a.json {
        print_json(&r)?;
        return Ok(if r.audit_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let mut rows = vec![
        row(
            lang,
            "合成した人数",
            "synthetic persons",
            r.synth_persons.to_string(),
        ),
        row(
            lang,
            "医療情報取扱事業者",
            "handlers",
            r.handlers.to_string(),
        ),
        row(
            lang,
            "オプトアウト事象",
            "opt-out events",
            r.optout_imported.to_string(),
        ),
    ];
    for i in &r.ingests {
        rows.push((
            format!("{} {}", lang.t("取り込み", "ingest"), i.handler),
            format!(
                "{} {} / {} {} / {} {} / {} {}",
                lang.t("受領", "accepted"),
                i.units_accepted,
                lang.t("拒否", "rejected"),
                i.units_rejected,
                lang.t("隔離", "quarantined"),
                i.units_quarantined,
                lang.t("事実", "facts"),
                i.total_facts()
            ),
        ));
    }
    if let Some(l) = &r.link {
        rows.push(row(
            lang,
            "名寄せ",
            "linkage",
            format!(
                "{} → {} {}",
                l.registrations,
                l.persons,
                lang.t("人", "persons")
            ),
        ));
    }
    for rel in &r.releases {
        rows.push((
            format!(
                "{} {}",
                lang.t("提供データ", "release"),
                rel.manifest.profile
            ),
            format!(
                "{} {} / {} {} / {}",
                rel.manifest.persons,
                lang.t("人", "persons"),
                rel.manifest.persons_suppressed,
                lang.t("人秘匿", "suppressed"),
                rel.out.display()
            ),
        ));
    }
    rows.push(row(
        lang,
        "監査ログ",
        "audit log",
        format!(
            "{} {} ({})",
            r.audit_events,
            lang.t("件", "events"),
            if r.audit_ok {
                lang.t("検証OK", "verified")
            } else {
                lang.t("改ざん検出", "BROKEN")
            }
        ),
    ));
    print!("{}", table(lang.t("デモの結果", "demo summary"), &rows));
    let s = &r.stats;
    let mut trows = vec![];
    for (t, n) in &s.tables {
        trows.push((t.clone(), n.to_string()));
    }
    trows.push(row(lang, "隔離", "quarantined", s.quarantined.to_string()));
    trows.push(row(
        lang,
        "ゲートで拒否",
        "rejected by gate",
        s.rejected.to_string(),
    ));
    print!(
        "{}",
        table(lang.t("臨床データストア", "clinical store"), &trows)
    );
    println!(
        "{}: {}",
        lang.t("ワークスペース", "workspace"),
        r.workspace.display()
    );
    Ok(if r.audit_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn link(ws_dir: &Path, actor: &Option<String>, a: LinkArgs, lang: Lang) -> Result<ExitCode> {
    let ws = open(ws_dir, actor).await?;
    match a.cmd {
        None => {
            let r = if a.incremental {
                ws.link_incremental(a.threshold).await?
            } else {
                ws.link(a.threshold).await?
            };
            return crate::link_cmds::print_link_report(&r, a.json, lang);
        }
        Some(LinkCmd::Review(r)) => return crate::link_cmds::run_review(&ws, r, lang).await,
        Some(LinkCmd::Export { file }) => {
            let n = ws.link_export(&file).await?;
            println!("{}: {n}", lang.t("書き出した行", "rows written"));
        }
        Some(LinkCmd::Evaluate { truth, json }) => {
            let m = ws.link_evaluate(&truth).await?;
            if json {
                print_json(&m)?;
            } else {
                print!(
                    "{}",
                    table(
                        lang.t("名寄せの評価", "linkage evaluation"),
                        &[
                            row(lang, "対象レコード", "records", m.records.to_string()),
                            row(
                                lang,
                                "ペア適合率",
                                "pairwise precision",
                                format!("{:.4}", m.precision)
                            ),
                            row(
                                lang,
                                "ペア再現率",
                                "pairwise recall",
                                format!("{:.4}", m.recall)
                            ),
                            ("F1".into(), format!("{:.4}", m.f1)),
                            row(
                                lang,
                                "クラスタ適合率",
                                "cluster precision",
                                format!("{:.4}", m.cluster_precision)
                            ),
                            row(
                                lang,
                                "クラスタ再現率",
                                "cluster recall",
                                format!("{:.4}", m.cluster_recall)
                            ),
                            row(
                                lang,
                                "誤結合クラスタ",
                                "merged clusters",
                                m.merged_clusters.to_string()
                            ),
                            row(
                                lang,
                                "分割された人",
                                "split persons",
                                m.split_persons.to_string()
                            ),
                        ]
                    )
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn anonymize(a: AnonymizeArgs, lang: Lang) -> Result<ExitCode> {
    let sep = match a.sep.as_bytes() {
        [b] => *b,
        _ if a.sep == "\\t" || a.sep == "tab" => b'\t',
        _ => bail!(
            "{}: {:?}",
            lang.t(
                "--sep は1バイトの区切り文字です",
                "--sep takes one single-byte separator"
            ),
            a.sep
        ),
    };
    let mut opts =
        kiban_anon::AnonymizeOptions::new(&a.table, &a.hierarchies, a.k as usize, a.suppression);
    opts.metric = a.metric.parse()?;
    opts.l_diversity = match (a.l, a.l_variant.as_str()) {
        (None, _) => None,
        (Some(l), "distinct") => Some(kiban_anon::LDiversity::Distinct {
            l: l.round().max(1.0) as usize,
        }),
        (Some(l), "entropy") => Some(kiban_anon::LDiversity::Entropy { l }),
        (Some(l), "recursive") => Some(kiban_anon::LDiversity::Recursive {
            c: a.c,
            l: l.round().max(1.0) as usize,
        }),
        (Some(_), v) => bail!("--l-variant: unknown {v:?} (distinct, entropy, recursive)"),
    };
    opts.t_closeness = match (a.t, a.t_variant.as_str()) {
        (None, _) => None,
        (Some(t), "equal") => Some(kiban_anon::TCloseness::EqualDistance { t }),
        (Some(t), "hierarchical") => Some(kiban_anon::TCloseness::Hierarchical { t }),
        (Some(_), v) => bail!("--t-variant: unknown {v:?} (equal, hierarchical)"),
    };
    opts.sensitive = a.sensitive;
    opts.qis = (!a.qi.is_empty()).then_some(a.qi);
    opts.separator = sep;
    opts.output = Some(a.out.clone());
    let r = kiban_anon::anonymize_csv(&opts)?;
    if a.json {
        print_json(&r)?;
    } else {
        let mut rows: Vec<(String, String)> = r
            .levels
            .iter()
            .map(|(attr, l)| (attr.clone(), format!("{} {l}", lang.t("レベル", "level"))))
            .collect();
        rows.push(row(
            lang,
            "情報損失",
            "information loss",
            format!("{:.6}", r.information_loss),
        ));
        rows.push(row(
            lang,
            "秘匿レコード",
            "suppressed records",
            r.suppressed.to_string(),
        ));
        rows.push(row(lang, "同値クラス", "classes", r.classes.to_string()));
        rows.push(row(
            lang,
            "評価した変換",
            "transformations checked",
            r.transformations_checked.to_string(),
        ));
        rows.push(row(lang, "出力", "output", a.out.display().to_string()));
        print!(
            "{}",
            table(lang.t("匿名加工の結果", "anonymization result"), &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}
