//! The producer's duties besides releases (issue 15, item 7 in part): `kiban complaint`,
//! `kiban inquiry`, `kiban outsourcing`, and the annual business report's figures,
//! `kiban books report --year Y` ([`run_books_report`], called by `books_cmds`). Argument
//! structs, presentation, and the words of the duties' refusals ([`refusal_words`], called
//! by the `refusals` module). The work is done by `kiban-pipeline` over
//! `kiban_workflow::duties`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_pipeline::duties::AnnualReport;
use kiban_workflow::duties::{
    Complaint, Inquiry, NewAnswer, NewComplaint, NewInquiry, NewOutsourcing, NewResolution,
    NewSupervision, Outsourcing, OutsourcingItems, Party,
};
use kiban_workflow::{DutyField, DutyRefusal, PartyKind};

use crate::commands::{opt_date, parse_date, print_json};
use crate::ui::{Lang, grid, row, table};

/// The duties' commands, flattened into the top level (`kiban complaint …`).
#[derive(Subcommand, Debug)]
pub enum DutiesCmd {
    /// Complaints (苦情, R-REC-6, 第24条): received, then resolved with the cause found and
    /// the improvement made; kept 3 years from the resolution.
    #[command(subcommand)]
    Complaint(ComplaintCmd),
    /// Inquiries (相談, 第5条第八号) from patients, handlers and users, kept apart from
    /// complaints; `kiban inquiry answer --escalate C` makes one a complaint.
    #[command(subcommand)]
    Inquiry(InquiryCmd),
    /// Outsourcing contracts with certified contractors (第21条: the seven items) and their
    /// supervision (第22条).
    #[command(subcommand)]
    Outsourcing(OutsourcingCmd),
}

impl DutiesCmd {
    /// Whether the command only reads (the workspace lock is then taken shared).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            DutiesCmd::Complaint(ComplaintCmd::List { .. } | ComplaintCmd::Show { .. })
                | DutiesCmd::Inquiry(InquiryCmd::List { .. })
                | DutiesCmd::Outsourcing(OutsourcingCmd::List { .. })
        )
    }
}

#[derive(Args, Debug)]
pub struct PartyArgs {
    /// Who it came from: patient | handler | user | other.
    #[arg(long = "from", value_parser = parse_party)]
    pub from: PartyKind,
    /// For a handler its code, for a user its ID (never given for a patient or another
    /// person: kiban keeps no name).
    #[arg(long)]
    pub from_ref: Option<String>,
    /// How it came in (窓口, 電話, 書面, メール…).
    #[arg(long)]
    pub channel: String,
}

#[derive(Subcommand, Debug)]
pub enum ComplaintCmd {
    /// Record a complaint received.
    Add(ComplaintAddArgs),
    /// Record its resolution: the cause found and the improvement made (a new version).
    Resolve(ComplaintResolveArgs),
    /// Every complaint's current version (`--json`: with every field).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Every version of one complaint: its receipt, then its resolution.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ComplaintAddArgs {
    #[arg(long)]
    pub id: String,
    /// The day it was received (default: today).
    #[arg(long)]
    pub received: Option<String>,
    #[command(flatten)]
    pub party: PartyArgs,
    /// What the complaint is about (the desk's summary; write no names).
    #[arg(long)]
    pub content: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ComplaintResolveArgs {
    pub id: String,
    /// The day it was resolved (default: today).
    #[arg(long)]
    pub date: Option<String>,
    /// The cause found (原因究明の結果).
    #[arg(long)]
    pub cause: String,
    /// The improvement made (改善措置).
    #[arg(long)]
    pub improvement: String,
    /// Who resolved it (default: the actor).
    #[arg(long)]
    pub by: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum InquiryCmd {
    /// Record an inquiry received.
    Add(InquiryAddArgs),
    /// Record its answer (a new version); `--escalate C` also records it as complaint C.
    Answer(InquiryAnswerArgs),
    /// Every inquiry's current version.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct InquiryAddArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub received: Option<String>,
    #[command(flatten)]
    pub party: PartyArgs,
    /// The question (the desk's summary; write no names).
    #[arg(long)]
    pub question: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct InquiryAnswerArgs {
    pub id: String,
    #[arg(long)]
    pub date: Option<String>,
    #[arg(long)]
    pub answer: String,
    /// Escalate to a complaint of this (new) ID, received on the answer's date.
    #[arg(long)]
    pub escalate: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum OutsourcingCmd {
    /// Record an outsourcing contract with a certified contractor (第21条第1項の七項目).
    Add(OutsourcingAddArgs),
    /// Record a supervision of the contractor (第22条).
    Supervise(SuperviseArgs),
    /// Every outsourcing contract with its supervisions.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct OutsourcingAddArgs {
    #[arg(long)]
    pub id: String,
    /// The certified contractor (認定医療情報等取扱受託事業者).
    #[arg(long)]
    pub contractor: String,
    /// The contractor's certification number.
    #[arg(long)]
    pub cert_no: String,
    #[arg(long)]
    pub signed: String,
    #[arg(long)]
    pub valid_until: String,
    /// 一 The scope of the outsourced work.
    #[arg(long)]
    pub scope: String,
    /// 二 The procedures of the work.
    #[arg(long)]
    pub procedures: String,
    /// 三 That the producer may verify the work follows those procedures.
    #[arg(long)]
    pub verification: String,
    /// 四 Instructions to the contractor.
    #[arg(long)]
    pub instructions: String,
    /// 五 That the producer may verify the measures taken on its instructions.
    #[arg(long)]
    pub instruction_check: String,
    /// 六 The contractor's reports to the producer.
    #[arg(long)]
    pub reporting: String,
    /// 七 Other necessary matters.
    #[arg(long)]
    pub other: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SuperviseArgs {
    pub id: String,
    #[arg(long)]
    pub date: Option<String>,
    /// What was checked (e.g. an audit of its safety management).
    #[arg(long)]
    pub checked: String,
    #[arg(long)]
    pub findings: String,
    /// Who supervised (default: the actor).
    #[arg(long)]
    pub supervisor: Option<String>,
    #[arg(long)]
    pub json: bool,
}

fn parse_party(s: &str) -> std::result::Result<PartyKind, String> {
    PartyKind::parse(s).ok_or_else(|| {
        "patient, handler, user, other のいずれか / one of patient, handler, user, other".into()
    })
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

fn party(p: PartyArgs) -> (Party, String) {
    (
        Party {
            kind: p.from,
            reference: p.from_ref,
        },
        p.channel,
    )
}

/// Runs one duties command on an open workspace.
pub async fn run(ws: &Workspace, cmd: DutiesCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        DutiesCmd::Complaint(c) => complaint(ws, c, lang).await,
        DutiesCmd::Inquiry(c) => inquiry(ws, c, lang).await,
        DutiesCmd::Outsourcing(c) => outsourcing(ws, c, lang).await,
    }
}

async fn complaint(ws: &Workspace, cmd: ComplaintCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        ComplaintCmd::Add(a) => {
            let (from, channel) = party(a.party);
            let c = ws
                .add_complaint(NewComplaint {
                    id: a.id,
                    received_on: opt_date(&a.received, "--received")?.unwrap_or_else(today),
                    from,
                    channel,
                    content: a.content,
                })
                .await?;
            show_complaint(
                &c,
                a.json,
                lang.t("苦情を受け付けました", "complaint recorded"),
                lang,
            )
        }
        ComplaintCmd::Resolve(a) => {
            let c = ws
                .resolve_complaint(NewResolution {
                    complaint: a.id,
                    resolved_on: opt_date(&a.date, "--date")?.unwrap_or_else(today),
                    cause: a.cause,
                    improvement: a.improvement,
                    resolved_by: a.by,
                })
                .await?;
            show_complaint(
                &c,
                a.json,
                lang.t(
                    "苦情の処理結果を記録しました",
                    "complaint resolution recorded",
                ),
                lang,
            )
        }
        ComplaintCmd::Show { id, json } => {
            let versions = ws.complaint_versions(&id).await?;
            if versions.is_empty() {
                return Err(
                    kiban_pipeline::PipelineError::Refusal(kiban_pipeline::Refusal::Duty(
                        DutyRefusal::ComplaintUnknown { complaint: id },
                    ))
                    .into(),
                );
            }
            if json {
                print_json(&versions)?;
                return Ok(ExitCode::SUCCESS);
            }
            for c in &versions {
                let title = format!("{} {} ({})", lang.t("苦情", "complaint"), c.id, c.version);
                show_complaint(c, false, &title, lang)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ComplaintCmd::List { json } => {
            let all = ws.list_complaints().await?;
            if json {
                print_json(&all)?;
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!(
                    "{}",
                    lang.t("苦情の記録はありません", "no complaints recorded")
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|c| {
                    vec![
                        c.id.clone(),
                        c.received_on.to_string(),
                        party_words(c.from.kind, lang).to_string(),
                        match &c.resolution {
                            Some(r) => {
                                format!("{} {}", lang.t("処理済", "resolved"), r.resolved_on)
                            }
                            None => lang.t("未処理", "open").to_string(),
                        },
                        c.escalated_from.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let h = if lang == Lang::Ja {
                ["ID", "受付日", "申出者", "状態", "相談から"]
            } else {
                ["ID", "received", "from", "status", "from inquiry"]
            };
            print!("{}", grid(&h, &rows));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_complaint(c: &Complaint, json: bool, title: &str, lang: Lang) -> Result<ExitCode> {
    if json {
        print_json(c)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        row(lang, "ID", "ID", c.id.clone()),
        row(lang, "版", "version", c.version.to_string()),
        row(lang, "受付日", "received", c.received_on.to_string()),
        row(lang, "申出者", "from", party_text(&c.from, lang)),
        row(lang, "受付方法", "channel", c.channel.clone()),
        row(lang, "内容", "content", c.content.clone()),
    ];
    if let Some(q) = &c.escalated_from {
        rows.push(row(lang, "相談から", "escalated from", q.clone()));
    }
    if let Some(r) = &c.resolution {
        rows.push(row(lang, "処理日", "resolved", r.resolved_on.to_string()));
        rows.push(row(lang, "原因", "cause", r.cause.clone()));
        rows.push(row(lang, "改善措置", "improvement", r.improvement.clone()));
        rows.push(row(lang, "処理者", "resolved by", r.resolved_by.clone()));
    }
    print!("{}", table(title, &rows));
    Ok(ExitCode::SUCCESS)
}

async fn inquiry(ws: &Workspace, cmd: InquiryCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        InquiryCmd::Add(a) => {
            let (from, channel) = party(a.party);
            let q = ws
                .add_inquiry(NewInquiry {
                    id: a.id,
                    received_on: opt_date(&a.received, "--received")?.unwrap_or_else(today),
                    from,
                    channel,
                    question: a.question,
                })
                .await?;
            show_inquiry(
                &q,
                None,
                a.json,
                lang.t("相談を受け付けました", "inquiry recorded"),
                lang,
            )
        }
        InquiryCmd::Answer(a) => {
            let (q, c) = ws
                .answer_inquiry(NewAnswer {
                    inquiry: a.id,
                    answered_on: opt_date(&a.date, "--date")?.unwrap_or_else(today),
                    answer: a.answer,
                    escalate_to: a.escalate,
                })
                .await?;
            show_inquiry(
                &q,
                c.as_ref(),
                a.json,
                lang.t("相談への回答を記録しました", "inquiry answer recorded"),
                lang,
            )
        }
        InquiryCmd::List { json } => {
            let all = ws.list_inquiries().await?;
            if json {
                print_json(&all)?;
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!(
                    "{}",
                    lang.t("相談の記録はありません", "no inquiries recorded")
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|q| {
                    vec![
                        q.id.clone(),
                        q.received_on.to_string(),
                        party_words(q.from.kind, lang).to_string(),
                        q.answered_on
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| lang.t("未回答", "open").to_string()),
                        q.escalated_to.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let h = if lang == Lang::Ja {
                ["ID", "受付日", "相談者", "回答日", "苦情へ"]
            } else {
                ["ID", "received", "from", "answered", "complaint"]
            };
            print!("{}", grid(&h, &rows));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show_inquiry(
    q: &Inquiry,
    c: Option<&Complaint>,
    json: bool,
    title: &str,
    lang: Lang,
) -> Result<ExitCode> {
    if json {
        print_json(&serde_json::json!({ "inquiry": q, "complaint": c }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        row(lang, "ID", "ID", q.id.clone()),
        row(lang, "版", "version", q.version.to_string()),
        row(lang, "受付日", "received", q.received_on.to_string()),
        row(lang, "相談者", "from", party_text(&q.from, lang)),
        row(lang, "受付方法", "channel", q.channel.clone()),
        row(lang, "相談内容", "question", q.question.clone()),
    ];
    if let (Some(a), Some(on)) = (&q.answer, q.answered_on) {
        rows.push(row(lang, "回答日", "answered", on.to_string()));
        rows.push(row(lang, "回答", "answer", a.clone()));
    }
    if let Some(cid) = &q.escalated_to {
        rows.push(row(
            lang,
            "苦情として受付",
            "escalated to complaint",
            cid.clone(),
        ));
    }
    print!("{}", table(title, &rows));
    Ok(ExitCode::SUCCESS)
}

async fn outsourcing(ws: &Workspace, cmd: OutsourcingCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        OutsourcingCmd::Add(a) => {
            let o = ws
                .add_outsourcing(NewOutsourcing {
                    id: a.id,
                    contractor: a.contractor,
                    contractor_cert_no: a.cert_no,
                    signed_on: parse_date(&a.signed, "--signed")?,
                    valid_until: parse_date(&a.valid_until, "--valid-until")?,
                    items: OutsourcingItems {
                        work_scope: a.scope,
                        procedures: a.procedures,
                        verification: a.verification,
                        instructions: a.instructions,
                        instruction_check: a.instruction_check,
                        reporting: a.reporting,
                        other_matters: a.other,
                    },
                })
                .await?;
            if a.json {
                print_json(&o)?;
                return Ok(ExitCode::SUCCESS);
            }
            print!(
                "{}",
                table(
                    lang.t("委託契約を記録しました", "outsourcing contract recorded"),
                    &outsourcing_rows(&o, lang)
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        OutsourcingCmd::Supervise(a) => {
            let s = ws
                .supervise_outsourcing(NewSupervision {
                    contract: a.id,
                    supervised_on: opt_date(&a.date, "--date")?.unwrap_or_else(today),
                    checked: a.checked,
                    findings: a.findings,
                    supervisor: a.supervisor,
                })
                .await?;
            if a.json {
                print_json(&s)?;
                return Ok(ExitCode::SUCCESS);
            }
            print!(
                "{}",
                table(
                    lang.t("委託先の監督を記録しました", "supervision recorded"),
                    &[
                        row(lang, "委託契約", "contract", s.contract.clone()),
                        row(lang, "番号", "number", s.no.to_string()),
                        row(lang, "実施日", "date", s.supervised_on.to_string()),
                        row(lang, "確認事項", "checked", s.checked.clone()),
                        row(lang, "結果", "findings", s.findings.clone()),
                        row(lang, "実施者", "supervisor", s.supervisor.clone()),
                    ]
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        OutsourcingCmd::List { json } => {
            let all = ws.list_outsourcing().await?;
            if json {
                print_json(&all)?;
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!(
                    "{}",
                    lang.t(
                        "委託契約の記録はありません",
                        "no outsourcing contracts recorded"
                    )
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|o| {
                    vec![
                        o.id.clone(),
                        o.contractor.clone(),
                        format!("{}..{}", o.signed_on, o.valid_until),
                        o.supervisions.len().to_string(),
                        o.supervisions
                            .last()
                            .map(|s| s.supervised_on.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let h = if lang == Lang::Ja {
                ["ID", "受託者", "契約期間", "監督回数", "最終監督日"]
            } else {
                [
                    "ID",
                    "contractor",
                    "term",
                    "supervisions",
                    "last supervised",
                ]
            };
            print!("{}", grid(&h, &rows));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn outsourcing_rows(o: &Outsourcing, lang: Lang) -> Vec<(String, String)> {
    let i = &o.items;
    vec![
        row(lang, "ID", "ID", o.id.clone()),
        row(lang, "受託者", "contractor", o.contractor.clone()),
        row(
            lang,
            "認定番号",
            "certification",
            o.contractor_cert_no.clone(),
        ),
        row(lang, "締結日", "signed", o.signed_on.to_string()),
        row(lang, "有効期限", "valid until", o.valid_until.to_string()),
        row(
            lang,
            "一 業務の範囲",
            "1 scope of the work",
            i.work_scope.clone(),
        ),
        row(lang, "二 業務の手順", "2 procedures", i.procedures.clone()),
        row(
            lang,
            "三 確認できる旨",
            "3 right to verify",
            i.verification.clone(),
        ),
        row(lang, "四 指示", "4 instructions", i.instructions.clone()),
        row(
            lang,
            "五 指示に基づく措置を確認できる旨",
            "5 right to verify instructions were followed",
            i.instruction_check.clone(),
        ),
        row(lang, "六 報告", "6 reporting", i.reporting.clone()),
        row(
            lang,
            "七 その他必要な事項",
            "7 other matters",
            i.other_matters.clone(),
        ),
    ]
}

fn party_words(k: PartyKind, lang: Lang) -> &'static str {
    match k {
        PartyKind::Patient => lang.t("本人（患者）", "patient"),
        PartyKind::Handler => lang.t("医療情報取扱事業者", "handler"),
        PartyKind::User => lang.t("利用者", "user"),
        PartyKind::Other => lang.t("その他", "other"),
    }
}

fn party_text(p: &Party, lang: Lang) -> String {
    match &p.reference {
        Some(r) => format!("{} {r}", party_words(p.kind, lang)),
        None => party_words(p.kind, lang).to_string(),
    }
}

/// `kiban books report --year Y [--json]`: the figures of the annual business report
/// (第13条) for fiscal year Y (1 April Y to 31 March Y+1).
pub async fn run_books_report(
    ws: &Workspace,
    year: i32,
    json: bool,
    lang: Lang,
) -> Result<ExitCode> {
    let r = ws.annual_report(year).await?;
    if json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", report_text(&r, lang));
    Ok(ExitCode::SUCCESS)
}

fn by_key(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "0".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report_text(r: &AnnualReport, lang: Lang) -> String {
    let title = if lang == Lang::Ja {
        format!(
            "事業報告書の数値 {}年度（{} 〜 {}）",
            r.fiscal_year, r.from, r.to
        )
    } else {
        format!(
            "annual business report figures, fiscal year {} ({} to {})",
            r.fiscal_year, r.from, r.to
        )
    };
    let rows = vec![
        row(
            lang,
            "提供（作成）・加工の程度別",
            "releases made, by level",
            by_key(&r.releases.made_by_level),
        ),
        row(
            lang,
            "うち内部評価",
            "of which internal evaluation",
            r.releases.internal_evaluation.to_string(),
        ),
        row(
            lang,
            "承認された提供・加工の程度別",
            "releases approved, by level",
            by_key(&r.releases.approved_by_level),
        ),
        row(
            lang,
            "消去した提供データ",
            "releases erased",
            r.releases.erased.to_string(),
        ),
        row(
            lang,
            "利用者（年度末・種別）",
            "users at year end, by kind",
            by_key(&r.users.at_year_end_by_kind),
        ),
        row(
            lang,
            "新規利用者（種別）",
            "new users, by kind",
            by_key(&r.users.new_by_kind),
        ),
        row(
            lang,
            "届出のあった医療情報取扱事業者",
            "handlers filed",
            r.handlers.filed.to_string(),
        ),
        row(
            lang,
            "契約を終了した医療情報取扱事業者",
            "handlers whose contract ended",
            r.handlers.contract_ended.to_string(),
        ),
        row(
            lang,
            "年度末の医療情報取扱事業者",
            "handlers active at year end",
            r.handlers.active_at_year_end.to_string(),
        ),
        row(
            lang,
            "受領記録",
            "receipt records",
            r.receipts.records.to_string(),
        ),
        row(
            lang,
            "受領した患者（延べ）",
            "patients received (total)",
            r.receipts.patients.to_string(),
        ),
        row(
            lang,
            "受領した患者（実数）",
            "patients received (distinct)",
            r.receipts.distinct_patients.to_string(),
        ),
        row(lang, "提供停止の求め", "stop requests", r.stops.to_string()),
        row(
            lang,
            "削除の求め",
            "deletion requests",
            r.deletions.to_string(),
        ),
        row(
            lang,
            "苦情の受付",
            "complaints received",
            r.complaints.received.to_string(),
        ),
        row(
            lang,
            "苦情の処理",
            "complaints resolved",
            r.complaints.resolved.to_string(),
        ),
        row(
            lang,
            "年度末の未処理の苦情",
            "complaints open at year end",
            r.complaints.open_at_year_end.to_string(),
        ),
        row(
            lang,
            "相談の受付",
            "inquiries received",
            r.inquiries.received.to_string(),
        ),
        row(
            lang,
            "相談への回答",
            "inquiries answered",
            r.inquiries.answered.to_string(),
        ),
        row(
            lang,
            "うち苦情へ移行",
            "of which escalated",
            r.inquiries.escalated.to_string(),
        ),
        row(
            lang,
            "有効な委託契約",
            "outsourcing contracts in force",
            r.outsourcing.in_force.to_string(),
        ),
        row(
            lang,
            "委託先の監督",
            "supervisions",
            r.outsourcing.supervisions.to_string(),
        ),
        row(
            lang,
            "帳簿の記載（種類別）",
            "book entries, by kind",
            by_key(&r.book_entries),
        ),
        row(
            lang,
            "漏えい等の事案（種類別）",
            "incidents discovered, by kind",
            by_key(&r.incidents.discovered_by_kind),
        ),
        row(
            lang,
            "事案の完了",
            "incidents closed",
            r.incidents.closed.to_string(),
        ),
        row(
            lang,
            "年度末の対応中の事案",
            "incidents open at year end",
            r.incidents.open_at_year_end.to_string(),
        ),
        row(
            lang,
            "主務大臣への報告",
            "reports to the minister",
            r.incidents.reported_to_minister.to_string(),
        ),
    ];
    table(&title, &rows)
}

fn field_words(f: DutyField, lang: Lang) -> &'static str {
    match f {
        DutyField::ComplaintId => lang.t("苦情ID", "complaint ID"),
        DutyField::InquiryId => lang.t("相談ID", "inquiry ID"),
        DutyField::ContractId => lang.t("委託契約ID", "contract ID"),
        DutyField::Reference => lang.t("申出者の識別子", "reference"),
        DutyField::Channel => lang.t("受付方法", "channel"),
        DutyField::Content => lang.t("苦情の内容", "content"),
        DutyField::Cause => lang.t("原因", "cause"),
        DutyField::Improvement => lang.t("改善措置", "improvement"),
        DutyField::Question => lang.t("相談内容", "question"),
        DutyField::Answer => lang.t("回答", "answer"),
        DutyField::Contractor => lang.t("受託者", "contractor"),
        DutyField::CertificationNumber => lang.t("認定番号", "certification number"),
        DutyField::WorkScope => lang.t("業務の範囲", "scope of the work"),
        DutyField::Procedures => lang.t("業務の手順", "procedures"),
        DutyField::Verification => lang.t("確認できる旨", "right to verify"),
        DutyField::Instructions => lang.t("指示に関する事項", "instructions"),
        DutyField::InstructionCheck => lang.t(
            "指示に基づく措置を確認できる旨",
            "right to verify instructions",
        ),
        DutyField::Reporting => lang.t("報告に関する事項", "reporting"),
        DutyField::OtherMatters => lang.t("その他必要な事項", "other matters"),
        DutyField::Checked => lang.t("確認事項", "what was checked"),
        DutyField::Findings => lang.t("結果", "findings"),
        DutyField::Supervisor => lang.t("実施者", "by whom"),
    }
}

/// The words of a duties refusal (`refusals::render` adds `[duty.CODE]`).
pub fn refusal_words(r: &DutyRefusal, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match r {
        DutyRefusal::IdInvalid { field } => pick(
            format!(
                "{}は 1〜64 文字の英数字と - _ . で指定してください",
                field_words(*field, lang)
            ),
            format!(
                "the {} must be 1-64 letters, digits, '-', '_' or '.'",
                field_words(*field, lang)
            ),
        ),
        DutyRefusal::FieldEmpty { field } => pick(
            format!(
                "{}を指定してください（空にはできません）",
                field_words(*field, lang)
            ),
            format!("{} must not be empty", field_words(*field, lang)),
        ),
        DutyRefusal::ComplaintExists { complaint } => pick(
            format!("苦情 {complaint} は記録済みです"),
            format!("complaint {complaint} is already recorded"),
        ),
        DutyRefusal::ComplaintUnknown { complaint } => pick(
            format!("苦情 {complaint} は記録にありません（kiban complaint add）"),
            format!("complaint {complaint} is not on record (kiban complaint add)"),
        ),
        DutyRefusal::ComplaintResolved {
            complaint,
            resolved_on,
        } => pick(
            format!(
                "苦情 {complaint} は {resolved_on} に処理済みです（処理結果は記録に残っています）"
            ),
            format!(
                "complaint {complaint} was already resolved on {resolved_on} (its resolution is on record)"
            ),
        ),
        DutyRefusal::InquiryExists { inquiry } => pick(
            format!("相談 {inquiry} は記録済みです"),
            format!("inquiry {inquiry} is already recorded"),
        ),
        DutyRefusal::InquiryUnknown { inquiry } => pick(
            format!("相談 {inquiry} は記録にありません（kiban inquiry add）"),
            format!("inquiry {inquiry} is not on record (kiban inquiry add)"),
        ),
        DutyRefusal::InquiryAnswered {
            inquiry,
            answered_on,
        } => pick(
            format!("相談 {inquiry} には {answered_on} に回答済みです"),
            format!("inquiry {inquiry} was already answered on {answered_on}"),
        ),
        DutyRefusal::OutsourcingExists { contract } => pick(
            format!("委託契約 {contract} は記録済みです"),
            format!("outsourcing contract {contract} is already recorded"),
        ),
        DutyRefusal::OutsourcingUnknown { contract } => pick(
            format!("委託契約 {contract} は記録にありません（kiban outsourcing add）"),
            format!("outsourcing contract {contract} is not on record (kiban outsourcing add)"),
        ),
        DutyRefusal::DateInFuture { date, today } => pick(
            format!("日付 {date} は今日 ({today}) より後です"),
            format!("the date {date} is after today ({today})"),
        ),
        DutyRefusal::DateBeforeReceipt { date, received_on } => pick(
            format!("日付 {date} は受付日 {received_on} より前です"),
            format!("the date {date} is before it was received ({received_on})"),
        ),
        DutyRefusal::OutsourcingDates {
            signed_on,
            valid_until,
        } => pick(
            format!("有効期限 {valid_until} が締結日 {signed_on} より前です"),
            format!("the contract ends ({valid_until}) before it is signed ({signed_on})"),
        ),
        DutyRefusal::SupervisionBeforeContract {
            contract,
            date,
            signed_on,
        } => pick(
            format!("監督の日 {date} は委託契約 {contract} の締結日 {signed_on} より前です"),
            format!(
                "the supervision ({date}) is before contract {contract} was signed ({signed_on})"
            ),
        ),
        DutyRefusal::ReferenceNotAllowed { kind } => pick(
            format!(
                "{}の氏名や患者IDは記録しません（--from-ref は医療情報取扱事業者のコードか利用者IDにだけ指定できます）",
                party_words(*kind, lang)
            ),
            format!(
                "kiban keeps no name or patient ID of a {} (--from-ref is only for a handler's code or a user's ID)",
                party_words(*kind, lang)
            ),
        ),
        DutyRefusal::ReferenceRequired { kind } => pick(
            format!(
                "{}は --from-ref でコードかIDを指定してください",
                party_words(*kind, lang)
            ),
            format!(
                "give the {}'s code or ID with --from-ref",
                party_words(*kind, lang)
            ),
        ),
        DutyRefusal::ReferenceUnknown { kind } => pick(
            format!(
                "--from-ref の{}は登録されていません",
                party_words(*kind, lang)
            ),
            format!(
                "the {} given with --from-ref is not on record",
                party_words(*kind, lang)
            ),
        ),
        DutyRefusal::YearOutOfRange { year } => pick(
            format!("年度 {year} は扱えません"),
            format!("fiscal year {year} is out of range"),
        ),
        other => pick(
            format!("受け付けられません: {}", other.code()),
            format!("refused: {}", other.code()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    /// Every duties refusal has its own words in both languages and ends with its
    /// `[duty.CODE]` (none falls to the catch-all).
    #[test]
    fn every_duty_refusal_is_worded() {
        let d = NaiveDate::from_ymd_opt(2026, 4, 1).expect("date");
        let s = || "X-1".to_string();
        let all = vec![
            DutyRefusal::IdInvalid {
                field: DutyField::ComplaintId,
            },
            DutyRefusal::FieldEmpty {
                field: DutyField::Cause,
            },
            DutyRefusal::ComplaintExists { complaint: s() },
            DutyRefusal::ComplaintUnknown { complaint: s() },
            DutyRefusal::ComplaintResolved {
                complaint: s(),
                resolved_on: d,
            },
            DutyRefusal::InquiryExists { inquiry: s() },
            DutyRefusal::InquiryUnknown { inquiry: s() },
            DutyRefusal::InquiryAnswered {
                inquiry: s(),
                answered_on: d,
            },
            DutyRefusal::OutsourcingExists { contract: s() },
            DutyRefusal::OutsourcingUnknown { contract: s() },
            DutyRefusal::DateInFuture { date: d, today: d },
            DutyRefusal::DateBeforeReceipt {
                date: d,
                received_on: d,
            },
            DutyRefusal::OutsourcingDates {
                signed_on: d,
                valid_until: d,
            },
            DutyRefusal::SupervisionBeforeContract {
                contract: s(),
                date: d,
                signed_on: d,
            },
            DutyRefusal::ReferenceNotAllowed {
                kind: PartyKind::Patient,
            },
            DutyRefusal::ReferenceRequired {
                kind: PartyKind::User,
            },
            DutyRefusal::ReferenceUnknown {
                kind: PartyKind::Handler,
            },
            DutyRefusal::YearOutOfRange { year: 999_999 },
        ];
        for r in &all {
            let ja = refusal_words(r, Lang::Ja);
            let en = refusal_words(r, Lang::En);
            assert!(!ja.starts_with("受け付けられません: "), "{ja}");
            assert!(!en.starts_with("refused: "), "{en}");
            let full = crate::refusals::render(&kiban_pipeline::Refusal::Duty(r.clone()), Lang::En);
            assert!(full.ends_with(&format!("[duty.{}]", r.code())), "{full}");
        }
    }
}
