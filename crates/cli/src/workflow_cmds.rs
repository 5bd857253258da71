//! The release workflow (issue 15): `kiban user`, `kiban request`, `kiban review`,
//! `kiban contract` — argument structs, presentation, and the words of the workflow's
//! refusals ([`refusal_words`], called by the `refusals` module). The work is done by
//! `kiban-pipeline` (`Workspace::add_user`, …) over `kiban-workflow`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_workflow::{
    Certification, Contract, ContractChange, Decision, Field, History, HistoryEntry, Level,
    NewContract, NewRequest, NewReview, NewUser, Request, RequestChange, Review, User, UserChange,
    UserKind, WorkflowRefusal,
};

use crate::commands::{opt_date, parse_date, print_json};
use crate::ui::{Lang, grid, row, table};

/// The workflow's commands, flattened into the top level (`kiban user …`, `kiban request …`).
#[derive(Subcommand, Debug)]
pub enum WorkflowCmd {
    /// Recipients of releases (利用者): anonymized-data users and certified
    /// pseudonymized-data users (Type I, Type II).
    #[command(subcommand)]
    User(UserCmd),
    /// Release requests (提供依頼), versioned: a change is a new version, reviewed again.
    #[command(subcommand)]
    Request(RequestCmd),
    /// The review committee's decisions (R-REL-1).
    #[command(subcommand)]
    Review(ReviewCmd),
    /// Contracts with users (R-REL-2, R-SEC-6).
    #[command(subcommand)]
    Contract(ContractCmd),
}

impl WorkflowCmd {
    /// Whether the command only reads (the workspace lock is then taken shared).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            WorkflowCmd::User(UserCmd::List { .. })
                | WorkflowCmd::Request(
                    RequestCmd::Show { .. } | RequestCmd::Check(_) | RequestCmd::List { .. }
                )
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Record a user (the ID must be new; change a user with `kiban user update`).
    Add(UserAddArgs),
    /// Record a new version of a user: a renewed certification, a new address or key.
    Update(UserUpdateArgs),
    /// Every user's current version.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The user reports providing delivered data to another user (a book entry, onward).
    ReportProvision(crate::books_cmds::ReportProvisionArgs),
    /// The user reports that delivered data was erased (a book entry, user_erasure).
    ReportErasure(crate::books_cmds::ReportErasureArgs),
}

#[derive(Args, Debug)]
pub struct UserAddArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub address: String,
    #[arg(long)]
    pub representative: String,
    /// anonymized | pseudonymized-type1 | pseudonymized-type2
    #[arg(long, value_parser = parse_kind)]
    pub kind: UserKind,
    /// Certification number (certified kinds).
    #[arg(long)]
    pub cert_no: Option<String>,
    /// Last day the certification is valid (certified kinds).
    #[arg(long)]
    pub cert_valid_until: Option<String>,
    /// The user's age X25519 public key (age1…), to which packages are encrypted.
    #[arg(long)]
    pub recipient: String,
}

#[derive(Args, Debug)]
pub struct UserUpdateArgs {
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub address: Option<String>,
    #[arg(long)]
    pub representative: Option<String>,
    #[arg(long, requires = "cert_valid_until")]
    pub cert_no: Option<String>,
    #[arg(long, requires = "cert_no")]
    pub cert_valid_until: Option<String>,
    #[arg(long)]
    pub recipient: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RequestCmd {
    /// Record a request (the ID must be new; change one with `kiban request update`).
    Add(RequestAddArgs),
    /// Record a new version of a request; it is not approved until reviewed again.
    Update(RequestUpdateArgs),
    /// The whole history: every version, review and contract, in the order recorded.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Whether a release under the request would be allowed, and why not.
    Check(RequestCheckArgs),
    /// Every request version with its fee and turnaround (R-REL-3).
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct RequestAddArgs {
    #[arg(long)]
    pub id: String,
    /// The user (recipient) ID.
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub purpose: String,
    /// anonymized | pseudonymized
    #[arg(long, value_parser = parse_level)]
    pub level: Level,
    /// Clinical tables, comma-separated (person,condition_occurrence,…).
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// The release spec the request came with (its SHA-256 is recorded).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// The data period asked for: FROM..TO.
    #[arg(long)]
    pub period: Option<String>,
    /// The fee, in yen.
    #[arg(long)]
    pub fee: Option<i64>,
    /// The day the request was received (default: today).
    #[arg(long)]
    pub requested_on: Option<String>,
}

#[derive(Args, Debug)]
pub struct RequestUpdateArgs {
    pub id: String,
    #[arg(long)]
    pub purpose: Option<String>,
    #[arg(long, value_parser = parse_level)]
    pub level: Option<Level>,
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
    #[arg(long)]
    pub spec: Option<PathBuf>,
    #[arg(long)]
    pub period: Option<String>,
    #[arg(long)]
    pub fee: Option<i64>,
    /// The day the change was received (default: today).
    #[arg(long)]
    pub requested_on: Option<String>,
}

#[derive(Args, Debug)]
pub struct RequestCheckArgs {
    pub id: String,
    #[arg(long, value_parser = parse_level)]
    pub level: Level,
    #[arg(long, value_delimiter = ',')]
    pub tables: Vec<String>,
    /// The release date (default: today).
    #[arg(long)]
    pub on: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ReviewCmd {
    /// Record the committee's decision about the request's current version.
    Record(ReviewArgs),
}

#[derive(Args, Debug)]
pub struct ReviewArgs {
    pub request: String,
    /// approved | rejected
    #[arg(long, value_parser = parse_decision)]
    pub decision: Decision,
    /// The committee members, comma-separated.
    #[arg(long)]
    pub members: String,
    #[arg(long)]
    pub date: String,
    /// Scientific validity, fit with the basic policy.
    #[arg(long)]
    pub reasons: String,
    #[arg(long)]
    pub conditions: Option<String>,
    /// The approved level (default: the request's).
    #[arg(long, value_parser = parse_level)]
    pub level: Option<Level>,
    /// The approved tables (default: the request's).
    #[arg(long, value_delimiter = ',')]
    pub tables: Option<Vec<String>>,
}

#[derive(Subcommand, Debug)]
pub enum ContractCmd {
    /// Record a contract under a request.
    Add(ContractAddArgs),
    /// Record an amendment (a new version) of a contract.
    Update(ContractUpdateArgs),
}

#[derive(Args, Debug)]
pub struct ContractAddArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub request: String,
    #[arg(long)]
    pub signed: String,
    #[arg(long)]
    pub valid_until: String,
    /// The last day the user may keep the data.
    #[arg(long)]
    pub retention_until: String,
    #[arg(long)]
    pub purpose: String,
    #[arg(long)]
    pub sharing_scope: String,
    /// The user's security measures.
    #[arg(long)]
    pub security: String,
}

#[derive(Args, Debug)]
pub struct ContractUpdateArgs {
    pub id: String,
    #[arg(long)]
    pub signed: Option<String>,
    #[arg(long)]
    pub valid_until: Option<String>,
    #[arg(long)]
    pub retention_until: Option<String>,
    #[arg(long)]
    pub purpose: Option<String>,
    #[arg(long)]
    pub sharing_scope: Option<String>,
    #[arg(long)]
    pub security: Option<String>,
}

fn parse_kind(s: &str) -> std::result::Result<UserKind, String> {
    UserKind::parse(s).ok_or_else(|| {
        "anonymized, pseudonymized-type1, pseudonymized-type2 のいずれか / one of anonymized, pseudonymized-type1, pseudonymized-type2".into()
    })
}

fn parse_level(s: &str) -> std::result::Result<Level, String> {
    Level::parse(s)
        .ok_or_else(|| "anonymized か pseudonymized / anonymized or pseudonymized".into())
}

fn parse_decision(s: &str) -> std::result::Result<Decision, String> {
    Decision::parse(s).ok_or_else(|| "approved か rejected / approved or rejected".into())
}

fn parse_period(s: &Option<String>) -> Result<Option<kiban_workflow::Period>> {
    let Some(s) = s else {
        return Ok(None);
    };
    let Some((from, to)) = s.split_once("..") else {
        bail!("--period: FROM..TO の形で指定してください / give FROM..TO");
    };
    Ok(Some(kiban_workflow::Period {
        from: parse_date(from, "--period")?,
        to: parse_date(to, "--period")?,
    }))
}

fn today() -> NaiveDate {
    chrono::Local::now().date_naive()
}

fn list(v: &[String]) -> String {
    v.join(",")
}

/// Runs one workflow command on an open workspace.
pub async fn run(ws: &Workspace, cmd: WorkflowCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        WorkflowCmd::User(c) => user(ws, c, lang).await,
        WorkflowCmd::Request(c) => request(ws, c, lang).await,
        WorkflowCmd::Review(ReviewCmd::Record(a)) => review(ws, a, lang).await,
        WorkflowCmd::Contract(c) => contract(ws, c, lang).await,
    }
}

async fn user(ws: &Workspace, cmd: UserCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        UserCmd::ReportProvision(a) => {
            return crate::books_cmds::report_provision(ws, a, lang).await;
        }
        UserCmd::ReportErasure(a) => return crate::books_cmds::report_erasure(ws, a, lang).await,
        UserCmd::Add(a) => {
            let certification = match (
                a.cert_no,
                opt_date(&a.cert_valid_until, "--cert-valid-until")?,
            ) {
                (Some(number), Some(valid_until)) => Some(Certification {
                    number,
                    valid_until,
                }),
                (None, None) => None,
                _ => bail!(
                    "--cert-no と --cert-valid-until は両方指定してください / give both --cert-no and --cert-valid-until"
                ),
            };
            let u = ws
                .add_user(NewUser {
                    id: a.id,
                    name: a.name,
                    address: a.address,
                    representative: a.representative,
                    kind: a.kind,
                    certification,
                    recipient: a.recipient,
                })
                .await?;
            print!(
                "{}",
                table(
                    lang.t("利用者を登録しました", "user recorded"),
                    &user_rows(&u, lang)
                )
            );
        }
        UserCmd::Update(a) => {
            let certification = match (
                a.cert_no,
                opt_date(&a.cert_valid_until, "--cert-valid-until")?,
            ) {
                (Some(number), Some(valid_until)) => Some(Certification {
                    number,
                    valid_until,
                }),
                _ => None,
            };
            let u = ws
                .update_user(
                    &a.id,
                    UserChange {
                        name: a.name,
                        address: a.address,
                        representative: a.representative,
                        certification,
                        recipient: a.recipient,
                    },
                )
                .await?;
            print!(
                "{}",
                table(
                    lang.t(
                        "利用者の新しい版を記録しました",
                        "new version of the user recorded"
                    ),
                    &user_rows(&u, lang)
                )
            );
        }
        UserCmd::List { json } => {
            let users = ws.list_users().await?;
            if json {
                print_json(&users)?;
                return Ok(ExitCode::SUCCESS);
            }
            if users.is_empty() {
                println!(
                    "{}",
                    lang.t("利用者は登録されていません", "no users recorded")
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.id.clone(),
                        u.name.clone(),
                        kind_words(u.kind, lang).to_string(),
                        u.certification
                            .as_ref()
                            .map(|c| format!("{} ({})", c.number, c.valid_until))
                            .unwrap_or_else(|| "-".into()),
                        u.version.to_string(),
                    ]
                })
                .collect();
            let h = if lang == Lang::Ja {
                ["ID", "名称", "種別", "認定（有効期限）", "版"]
            } else {
                [
                    "ID",
                    "name",
                    "kind",
                    "certification (valid until)",
                    "version",
                ]
            };
            print!("{}", grid(&h, &rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_words(k: UserKind, lang: Lang) -> &'static str {
    match k {
        UserKind::Anonymized => lang.t("匿名加工医療情報の利用者", "anonymized-data user"),
        UserKind::PseudonymizedType1 => lang.t(
            "認定仮名加工医療情報利用事業者（第一種）",
            "certified pseudonymized-data user, Type I",
        ),
        UserKind::PseudonymizedType2 => lang.t(
            "認定仮名加工医療情報利用事業者（第二種）",
            "certified pseudonymized-data user, Type II",
        ),
    }
}

fn level_words(l: Level, lang: Lang) -> &'static str {
    match l {
        Level::Anonymized => lang.t("匿名加工 (anonymized)", "anonymized"),
        Level::Pseudonymized => lang.t("仮名加工 (pseudonymized)", "pseudonymized"),
    }
}

fn user_rows(u: &User, lang: Lang) -> Vec<(String, String)> {
    let mut rows = vec![
        row(lang, "ID", "ID", u.id.clone()),
        row(lang, "版", "version", u.version.to_string()),
        row(lang, "名称", "name", u.name.clone()),
        row(lang, "住所", "address", u.address.clone()),
        row(lang, "代表者", "representative", u.representative.clone()),
        row(lang, "種別", "kind", kind_words(u.kind, lang)),
    ];
    if let Some(c) = &u.certification {
        rows.push(row(lang, "認定番号", "certification", c.number.clone()));
        rows.push(row(
            lang,
            "認定の有効期限",
            "valid until",
            c.valid_until.to_string(),
        ));
    }
    rows.push(row(
        lang,
        "受取人の公開鍵",
        "recipient key",
        u.recipient.clone(),
    ));
    rows.push(row(lang, "記録者", "recorded by", u.recorded.by.clone()));
    rows
}

async fn request(ws: &Workspace, cmd: RequestCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        RequestCmd::Add(a) => {
            let r = ws
                .add_request(
                    NewRequest {
                        id: a.id,
                        user: a.user,
                        purpose: a.purpose,
                        level: a.level,
                        tables: a.tables,
                        spec_sha256: None,
                        period: parse_period(&a.period)?,
                        fee_yen: a.fee,
                        requested_on: opt_date(&a.requested_on, "--requested-on")?
                            .unwrap_or_else(today),
                    },
                    a.spec.as_deref(),
                )
                .await?;
            print!(
                "{}",
                table(
                    lang.t("提供依頼を登録しました", "request recorded"),
                    &request_rows(&r, lang)
                )
            );
        }
        RequestCmd::Update(a) => {
            let r = ws
                .update_request(
                    &a.id,
                    RequestChange {
                        purpose: a.purpose,
                        level: a.level,
                        tables: a.tables,
                        spec_sha256: None,
                        period: parse_period(&a.period)?,
                        fee_yen: a.fee,
                        requested_on: opt_date(&a.requested_on, "--requested-on")?
                            .unwrap_or_else(today),
                    },
                    a.spec.as_deref(),
                )
                .await?;
            print!(
                "{}",
                table(
                    lang.t(
                        "提供依頼の新しい版を記録しました（審査を受けるまで承認されていません）",
                        "new version of the request recorded (not approved until reviewed)"
                    ),
                    &request_rows(&r, lang)
                )
            );
        }
        RequestCmd::Show { id, json } => {
            let h = ws.request_history(&id).await?;
            if json {
                print_json(&h)?;
            } else {
                print!("{}", history_text(&h, lang));
            }
        }
        RequestCmd::Check(a) => {
            let on = opt_date(&a.on, "--on")?.unwrap_or_else(today);
            let result = ws
                .check_release_request(&a.id, a.level, &a.tables, on)
                .await;
            return match result {
                Ok(ok) => {
                    if a.json {
                        print_json(&serde_json::json!({"allowed": true, "release": ok}))?;
                    } else {
                        print!(
                            "{}",
                            table(
                                lang.t("提供できます", "a release would be allowed"),
                                &[
                                    row(
                                        lang,
                                        "提供依頼",
                                        "request",
                                        format!("{} (v{})", ok.request, ok.request_version)
                                    ),
                                    row(lang, "利用者", "user", ok.user.clone()),
                                    row(lang, "加工の程度", "level", level_words(ok.level, lang)),
                                    row(lang, "テーブル", "tables", list(&ok.tables)),
                                    row(
                                        lang,
                                        "審査",
                                        "review",
                                        format!("#{} ({})", ok.review_no, ok.review_date)
                                    ),
                                    row(
                                        lang,
                                        "契約",
                                        "contract",
                                        format!(
                                            "{} (v{}, {} {})",
                                            ok.contract,
                                            ok.contract_version,
                                            lang.t("有効期限", "valid until"),
                                            ok.contract_valid_until
                                        )
                                    ),
                                    row(lang, "提供日", "release date", ok.on.to_string()),
                                ],
                            )
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(kiban_pipeline::PipelineError::Refusal(r)) if a.json => {
                    print_json(&serde_json::json!({
                        "allowed": false,
                        "code": r.code(),
                        "reason": crate::refusals::render(&r, lang),
                    }))?;
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            };
        }
        RequestCmd::List { json } => {
            let rows = ws.request_fairness().await?;
            if json {
                print_json(&rows)?;
                return Ok(ExitCode::SUCCESS);
            }
            if rows.is_empty() {
                println!("{}", lang.t("提供依頼はありません", "no requests recorded"));
                return Ok(ExitCode::SUCCESS);
            }
            let g: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        format!("{} v{}", r.request, r.version),
                        r.user.clone(),
                        r.level.as_str().to_string(),
                        r.fee_yen.map_or_else(|| "-".into(), |f| f.to_string()),
                        r.requested_on.to_string(),
                        r.answered_on.map_or_else(|| "-".into(), |d| d.to_string()),
                        r.decision
                            .map_or_else(|| "-".into(), |d| d.as_str().to_string()),
                        r.turnaround_days
                            .map_or_else(|| "-".into(), |d| d.to_string()),
                    ]
                })
                .collect();
            let h = if lang == Lang::Ja {
                [
                    "提供依頼",
                    "利用者",
                    "加工",
                    "手数料(円)",
                    "受付日",
                    "回答日",
                    "審査結果",
                    "日数",
                ]
            } else {
                [
                    "request",
                    "user",
                    "level",
                    "fee (yen)",
                    "requested",
                    "answered",
                    "decision",
                    "days",
                ]
            };
            print!("{}", grid(&h, &g));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn request_rows(r: &Request, lang: Lang) -> Vec<(String, String)> {
    let mut rows = vec![
        row(lang, "ID", "ID", r.id.clone()),
        row(lang, "版", "version", r.version.to_string()),
        row(lang, "利用者", "user", r.user.clone()),
        row(lang, "目的", "purpose", r.purpose.clone()),
        row(lang, "加工の程度", "level", level_words(r.level, lang)),
        row(lang, "テーブル", "tables", list(&r.tables)),
        row(lang, "受付日", "requested on", r.requested_on.to_string()),
    ];
    if let Some(p) = r.period {
        rows.push(row(
            lang,
            "対象期間",
            "period",
            format!("{}..{}", p.from, p.to),
        ));
    }
    if let Some(f) = r.fee_yen {
        rows.push(row(lang, "手数料（円）", "fee (yen)", f.to_string()));
    }
    if let Some(s) = &r.spec_sha256 {
        rows.push(row(lang, "仕様の SHA-256", "spec SHA-256", s.clone()));
    }
    rows.push(row(lang, "記録者", "recorded by", r.recorded.by.clone()));
    rows
}

fn review_rows(r: &Review, lang: Lang) -> Vec<(String, String)> {
    let mut rows = vec![
        row(
            lang,
            "提供依頼",
            "request",
            format!("{} (v{})", r.request, r.request_version),
        ),
        row(lang, "審査番号", "review", format!("#{}", r.review_no)),
        row(
            lang,
            "結果",
            "decision",
            match r.decision {
                Decision::Approved => lang.t("承認", "approved"),
                Decision::Rejected => lang.t("不承認", "rejected"),
            },
        ),
        row(lang, "審査日", "date", r.date.to_string()),
        row(lang, "委員", "members", r.members.join(", ")),
        row(lang, "理由", "reasons", r.reasons.clone()),
    ];
    if let Some(c) = &r.conditions {
        rows.push(row(lang, "条件", "conditions", c.clone()));
    }
    if let Some(s) = &r.scope {
        rows.push(row(
            lang,
            "承認した加工の程度",
            "approved level",
            level_words(s.level, lang),
        ));
        rows.push(row(
            lang,
            "承認したテーブル",
            "approved tables",
            list(&s.tables),
        ));
    }
    rows.push(row(lang, "記録者", "recorded by", r.recorded.by.clone()));
    rows
}

fn contract_rows(c: &Contract, lang: Lang) -> Vec<(String, String)> {
    vec![
        row(lang, "ID", "ID", c.id.clone()),
        row(lang, "版", "version", c.version.to_string()),
        row(lang, "提供依頼", "request", c.request.clone()),
        row(lang, "締結日", "signed", c.signed_on.to_string()),
        row(lang, "有効期限", "valid until", c.valid_until.to_string()),
        row(
            lang,
            "保管期限",
            "retention until",
            c.retention_until.to_string(),
        ),
        row(lang, "利用目的", "purpose", c.purpose.clone()),
        row(lang, "共有の範囲", "sharing scope", c.sharing_scope.clone()),
        row(
            lang,
            "安全管理措置",
            "security measures",
            c.security.clone(),
        ),
        row(lang, "記録者", "recorded by", c.recorded.by.clone()),
    ]
}

fn history_text(h: &History, lang: Lang) -> String {
    let mut out = format!(
        "{} {}\n",
        lang.t("提供依頼の履歴:", "history of request"),
        h.request
    );
    for e in &h.entries {
        let (title, rows) = match e {
            HistoryEntry::Request(r) => (
                format!("{} v{}", lang.t("提供依頼", "request"), r.version),
                request_rows(r, lang),
            ),
            HistoryEntry::Review(r) => (
                format!("{} #{}", lang.t("審査", "review"), r.review_no),
                review_rows(r, lang),
            ),
            HistoryEntry::Contract(c) => (
                format!("{} {} v{}", lang.t("契約", "contract"), c.id, c.version),
                contract_rows(c, lang),
            ),
        };
        let r = e.recorded();
        out.push('\n');
        out.push_str(&table(&format!("[{}] {title} ({})", r.seq, r.at), &rows));
    }
    out
}

async fn review(ws: &Workspace, a: ReviewArgs, lang: Lang) -> Result<ExitCode> {
    let r = ws
        .record_review(NewReview {
            request: a.request,
            decision: a.decision,
            members: a.members.split(',').map(str::to_string).collect(),
            date: parse_date(&a.date, "--date")?,
            reasons: a.reasons,
            conditions: a.conditions,
            level: a.level,
            tables: a.tables,
        })
        .await?;
    print!(
        "{}",
        table(
            lang.t("審査の結果を記録しました", "review recorded"),
            &review_rows(&r, lang)
        )
    );
    Ok(ExitCode::SUCCESS)
}

async fn contract(ws: &Workspace, cmd: ContractCmd, lang: Lang) -> Result<ExitCode> {
    let c = match cmd {
        ContractCmd::Add(a) => {
            ws.add_contract(NewContract {
                id: a.id,
                request: a.request,
                signed_on: parse_date(&a.signed, "--signed")?,
                valid_until: parse_date(&a.valid_until, "--valid-until")?,
                retention_until: parse_date(&a.retention_until, "--retention-until")?,
                purpose: a.purpose,
                sharing_scope: a.sharing_scope,
                security: a.security,
            })
            .await?
        }
        ContractCmd::Update(a) => {
            ws.update_contract(
                &a.id,
                ContractChange {
                    signed_on: opt_date(&a.signed, "--signed")?,
                    valid_until: opt_date(&a.valid_until, "--valid-until")?,
                    retention_until: opt_date(&a.retention_until, "--retention-until")?,
                    purpose: a.purpose,
                    sharing_scope: a.sharing_scope,
                    security: a.security,
                },
            )
            .await?
        }
    };
    print!(
        "{}",
        table(
            lang.t("契約を記録しました", "contract recorded"),
            &contract_rows(&c, lang)
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn field_words(f: Field, lang: Lang) -> &'static str {
    match f {
        Field::UserId => lang.t("利用者ID", "user ID"),
        Field::RequestId => lang.t("提供依頼ID", "request ID"),
        Field::ContractId => lang.t("契約ID", "contract ID"),
        Field::Name => lang.t("名称 (--name)", "--name"),
        Field::Address => lang.t("住所 (--address)", "--address"),
        Field::Representative => lang.t("代表者 (--representative)", "--representative"),
        Field::CertificationNumber => lang.t("認定番号 (--cert-no)", "--cert-no"),
        Field::Purpose => lang.t("目的 (--purpose)", "--purpose"),
        Field::Reasons => lang.t("理由 (--reasons)", "--reasons"),
        Field::Member => lang.t("委員 (--members)", "--members"),
        Field::SharingScope => lang.t("共有の範囲 (--sharing-scope)", "--sharing-scope"),
        Field::Security => lang.t("安全管理措置 (--security)", "--security"),
        Field::SpecDigest => lang.t("仕様の SHA-256", "the spec's SHA-256"),
        f => crate::books_cmds::field_words(f, lang),
    }
}

/// The words of a workflow refusal in `lang` (the `refusals` module adds the code).
pub fn refusal_words(r: &WorkflowRefusal, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match r {
        WorkflowRefusal::IdInvalid { field } => pick(
            format!(
                "{}は 1〜64 文字の英数字と - _ . で指定してください",
                field_words(*field, lang)
            ),
            format!(
                "the {} must be 1-64 letters, digits, '-', '_' or '.'",
                field_words(*field, lang)
            ),
        ),
        WorkflowRefusal::FieldEmpty { field } => pick(
            format!("{}を指定してください（空にはできません）", field_words(*field, lang)),
            format!("{} must not be empty", field_words(*field, lang)),
        ),
        WorkflowRefusal::UserExists { user } => pick(
            format!("利用者 {user} は登録済みです（変更は kiban user update）"),
            format!("user {user} is already recorded (change it with kiban user update)"),
        ),
        WorkflowRefusal::UserUnknown { user } => pick(
            format!("利用者 {user} は登録されていません（kiban user add で登録してください）"),
            format!("user {user} is not recorded (record it with kiban user add)"),
        ),
        WorkflowRefusal::RequestExists { request } => pick(
            format!("提供依頼 {request} は登録済みです（変更は kiban request update で新しい版として記録します）"),
            format!("request {request} already exists (change it with kiban request update, which records a new version)"),
        ),
        WorkflowRefusal::RequestUnknown { request } => pick(
            format!("提供依頼 {request} は登録されていません（kiban request add）"),
            format!("request {request} is not recorded (kiban request add)"),
        ),
        WorkflowRefusal::ContractExists { contract } => pick(
            format!("契約 {contract} は登録済みです（変更は kiban contract update）"),
            format!("contract {contract} already exists (amend it with kiban contract update)"),
        ),
        WorkflowRefusal::ContractUnknown { contract } => pick(
            format!("契約 {contract} は登録されていません"),
            format!("contract {contract} is not recorded"),
        ),
        WorkflowRefusal::RecipientKeyInvalid => pick(
            "--recipient は age の X25519 公開鍵（age1… で始まる）を指定してください。秘密鍵（AGE-SECRET-KEY-…）は渡さないでください".into(),
            "--recipient must be an age X25519 public key (starting age1…); never give a secret key (AGE-SECRET-KEY-…)".into(),
        ),
        WorkflowRefusal::CertificationRequired { kind } => pick(
            format!("{}には認定番号と有効期限（--cert-no, --cert-valid-until）が必要です", kind_words(*kind, lang)),
            format!("a {} needs a certification number and validity (--cert-no, --cert-valid-until)", kind_words(*kind, lang)),
        ),
        WorkflowRefusal::CertificationNotForKind { kind } => pick(
            format!("{}に認定番号は記録しません（認定事業者なら --kind pseudonymized-type1|type2）", kind_words(*kind, lang)),
            format!("an {} has no certification (a certified user is --kind pseudonymized-type1|type2)", kind_words(*kind, lang)),
        ),
        WorkflowRefusal::TablesEmpty => pick(
            "テーブル (--tables) を 1 つ以上指定してください".into(),
            "give at least one table (--tables)".into(),
        ),
        WorkflowRefusal::TableUnknown { table } => pick(
            format!("テーブル {table} はありません（person, visit_occurrence, condition_occurrence, drug_exposure, measurement, procedure_occurrence, observation, image_study）"),
            format!("there is no table {table} (person, visit_occurrence, condition_occurrence, drug_exposure, measurement, procedure_occurrence, observation, image_study)"),
        ),
        WorkflowRefusal::TableNotReleasable { table } => pick(
            format!("テーブル {table} は提供できません（自由記載は提供しません）"),
            format!("table {table} is never released (free text is not released)"),
        ),
        WorkflowRefusal::PeriodInverted { from, to } => pick(
            format!("期間の終わり {to} が始まり {from} より前です"),
            format!("the period ends ({to}) before it starts ({from})"),
        ),
        WorkflowRefusal::FeeNegative => pick(
            "手数料 (--fee) は 0 円以上です".into(),
            "the fee (--fee) cannot be negative".into(),
        ),
        WorkflowRefusal::DateInFuture { date, today } => pick(
            format!("日付 {date} は未来の日付です（今日は {today}）"),
            format!("the date {date} is in the future (today is {today})"),
        ),
        WorkflowRefusal::ReviewBeforeRequest { request, version, review_date, requested_on } => pick(
            format!("審査日 {review_date} は提供依頼 {request}（版 {version}）の受付日 {requested_on} より前です"),
            format!("the review date {review_date} is before request {request} (version {version}) was received ({requested_on})"),
        ),
        WorkflowRefusal::MembersInvalid => pick(
            "審査委員 (--members) を重複なく 1 名以上指定してください".into(),
            "give the committee members (--members), each once".into(),
        ),
        WorkflowRefusal::ScopeBeyondRequest { request, level, tables } => pick(
            format!("承認する範囲が提供依頼 {request} の範囲を超えています（加工の程度 {level}、依頼にないテーブル: {}）", list_or_none(tables, lang)),
            format!("the approved scope goes beyond request {request} (level {level}, tables not requested: {})", list_or_none(tables, lang)),
        ),
        WorkflowRefusal::ScopeWithoutApproval => pick(
            "不承認 (rejected) の審査に承認範囲 (--level, --tables) は指定できません".into(),
            "a rejection has no approved scope (--level, --tables)".into(),
        ),
        WorkflowRefusal::ContractDates { signed_on, valid_until, retention_until } => pick(
            format!("契約の有効期限 {valid_until} と保管期限 {retention_until} は締結日 {signed_on} 以降にしてください"),
            format!("the contract's validity ({valid_until}) and retention ({retention_until}) must not end before it is signed ({signed_on})"),
        ),
        WorkflowRefusal::NothingToChange => pick(
            "変更する項目がありません（現在の版と同じです）".into(),
            "nothing to change (the same as the current version)".into(),
        ),
        WorkflowRefusal::RequestNotApproved { request, version, approved_version } => match approved_version {
            Some(v) => pick(
                format!("提供依頼 {request} の版 {version} は審査で承認されていません（承認されたのは版 {v} で、その後に変更されました。kiban review record で審査を記録してください）"),
                format!("version {version} of request {request} is not approved (version {v} was approved, then the request changed; record a review with kiban review record)"),
            ),
            None => pick(
                format!("提供依頼 {request}（版 {version}）は提供日の時点で審査により承認されていません（kiban review record）"),
                format!("request {request} (version {version}) is not approved by a review as of the release date (kiban review record)"),
            ),
        },
        WorkflowRefusal::RequestRejected { request, version, review_date } => pick(
            format!("提供依頼 {request}（版 {version}）は {review_date} の審査で承認されませんでした"),
            format!("request {request} (version {version}) was rejected by the review of {review_date}"),
        ),
        WorkflowRefusal::ContractMissing { request, on } => pick(
            format!("提供依頼 {request} には {on} に有効な契約がありません（kiban contract add）"),
            format!("request {request} has no contract in force on {on} (kiban contract add)"),
        ),
        WorkflowRefusal::ContractExpired { request, contract, valid_until, on } => pick(
            format!("提供依頼 {request} の契約 {contract} は {valid_until} に期限切れです（提供日 {on}）"),
            format!("contract {contract} of request {request} expired on {valid_until} (release date {on})"),
        ),
        WorkflowRefusal::LevelBeyondApproval { asked, approved } => pick(
            format!("加工の程度 {asked} は審査で承認された {approved} を超えています"),
            format!("the level {asked} goes beyond the approved {approved}"),
        ),
        WorkflowRefusal::TablesBeyondApproval { tables } => pick(
            format!("審査で承認されていないテーブルです: {}", list(tables)),
            format!("tables not approved by the review: {}", list(tables)),
        ),
        WorkflowRefusal::UserNotCertified { user, kind } => pick(
            format!("仮名加工医療情報は認定仮名加工医療情報利用事業者（第一種）にだけ提供できます。利用者 {user} は{}です", kind_words(*kind, lang)),
            format!("pseudonymized data goes only to a certified pseudonymized-data user (Type I); user {user} is an {}", kind_words(*kind, lang)),
        ),
        WorkflowRefusal::CertificationExpired { user, valid_until, on } => pick(
            format!("利用者 {user} の認定は {valid_until} に期限切れです（提供日 {on}）"),
            format!("user {user}'s certification expired on {valid_until} (release date {on})"),
        ),
        WorkflowRefusal::UserType2 { user } => pick(
            format!("利用者 {user} は第二種の認定利用事業者です。データは作成事業者の外に出さず、リモート解析環境でだけ利用できます"),
            format!("user {user} is a Type II certified user: their data never leaves the producer (remote analysis environment only)"),
        ),
        books @ (WorkflowRefusal::ProducerExists { .. }
        | WorkflowRefusal::ProducerUnknown { .. }
        | WorkflowRefusal::OwnProducerMissing
        | WorkflowRefusal::OwnProducerConflict { .. }
        | WorkflowRefusal::TransferContractExists { .. }
        | WorkflowRefusal::TransferContractUnknown { .. }
        | WorkflowRefusal::TransferContractMismatch { .. }
        | WorkflowRefusal::TransferBeforeContract { .. }
        | WorkflowRefusal::ReleaseNotDeliveredTo { .. }
        | WorkflowRefusal::ReportBeforeDelivery { .. }
        | WorkflowRefusal::ItemsBeyond { .. }
        | WorkflowRefusal::ItemInvalid
        | WorkflowRefusal::BookEntryUnknown { .. }
        | WorkflowRefusal::BookEntryCorrectedMeanwhile { .. }
        | WorkflowRefusal::CorrectionFieldNotApplicable { .. }) => {
            crate::books_cmds::refusal_words(books, lang)
        }
        other => pick(
            format!("受け付けられません: {other:?}"),
            format!("refused: {other:?}"),
        ),
    }
}

fn list_or_none(v: &[String], lang: Lang) -> String {
    if v.is_empty() {
        lang.t("なし", "none").to_string()
    } else {
        list(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workflow_refusal_is_worded_in_both_languages() {
        let d = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default();
        let s = || "X".to_string();
        let all = vec![
            WorkflowRefusal::IdInvalid {
                field: Field::UserId,
            },
            WorkflowRefusal::FieldEmpty {
                field: Field::Purpose,
            },
            WorkflowRefusal::UserExists { user: s() },
            WorkflowRefusal::UserUnknown { user: s() },
            WorkflowRefusal::RequestExists { request: s() },
            WorkflowRefusal::RequestUnknown { request: s() },
            WorkflowRefusal::ContractExists { contract: s() },
            WorkflowRefusal::ContractUnknown { contract: s() },
            WorkflowRefusal::RecipientKeyInvalid,
            WorkflowRefusal::CertificationRequired {
                kind: UserKind::PseudonymizedType1,
            },
            WorkflowRefusal::CertificationNotForKind {
                kind: UserKind::Anonymized,
            },
            WorkflowRefusal::TablesEmpty,
            WorkflowRefusal::TableUnknown { table: s() },
            WorkflowRefusal::TableNotReleasable { table: s() },
            WorkflowRefusal::PeriodInverted { from: d, to: d },
            WorkflowRefusal::FeeNegative,
            WorkflowRefusal::DateInFuture { date: d, today: d },
            WorkflowRefusal::ReviewBeforeRequest {
                request: s(),
                version: 1,
                review_date: d,
                requested_on: d,
            },
            WorkflowRefusal::MembersInvalid,
            WorkflowRefusal::ScopeBeyondRequest {
                request: s(),
                level: Level::Pseudonymized,
                tables: vec![],
            },
            WorkflowRefusal::ScopeWithoutApproval,
            WorkflowRefusal::ContractDates {
                signed_on: d,
                valid_until: d,
                retention_until: d,
            },
            WorkflowRefusal::NothingToChange,
            WorkflowRefusal::RequestNotApproved {
                request: s(),
                version: 2,
                approved_version: Some(1),
            },
            WorkflowRefusal::RequestRejected {
                request: s(),
                version: 1,
                review_date: d,
            },
            WorkflowRefusal::ContractMissing {
                request: s(),
                on: d,
            },
            WorkflowRefusal::ContractExpired {
                request: s(),
                contract: s(),
                valid_until: d,
                on: d,
            },
            WorkflowRefusal::LevelBeyondApproval {
                asked: Level::Pseudonymized,
                approved: Level::Anonymized,
            },
            WorkflowRefusal::TablesBeyondApproval { tables: vec![s()] },
            WorkflowRefusal::UserNotCertified {
                user: s(),
                kind: UserKind::Anonymized,
            },
            WorkflowRefusal::CertificationExpired {
                user: s(),
                valid_until: d,
                on: d,
            },
            WorkflowRefusal::UserType2 { user: s() },
        ];
        for r in &all {
            let ja = refusal_words(r, Lang::Ja);
            let en = refusal_words(r, Lang::En);
            assert!(!ja.starts_with("受け付けられません: "), "{ja}");
            assert!(!en.starts_with("refused: "), "{en}");
            let full =
                crate::refusals::render(&kiban_pipeline::Refusal::Workflow(r.clone()), Lang::En);
            assert!(
                full.ends_with(&format!("[workflow.{}]", r.code())),
                "{full}"
            );
        }
    }
}
