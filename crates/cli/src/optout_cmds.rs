//! `kiban optout notice|stop|delete|withdraw|consent|consent-withdraw|guardianship|deceased|
//! apply-deletions`, `kiban handler update|history|notice-version`, `kiban export`,
//! `kiban retention run`: argument structs and presentation. The work is done by
//! `kiban-pipeline` (`record_optout_event`, `record_patient_status`, `update_handler`,
//! `add_notice_version`, `apply_deletions`, `export`, `retention_run`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use kiban_consent::{
    Channel, DeletionScope, EventKind, HandlerUpdate, NoticeVersion, Relation, StatusKind,
};
use kiban_model::Sex;
use kiban_pipeline::Workspace;
use kiban_pipeline::deletion::DeletionReport;
use kiban_pipeline::desk_find::{FindQuery, MatchedOn};
use kiban_pipeline::export::ExportOptions;
use kiban_pipeline::optout_events::OptoutEventRequest;
use kiban_receipt::Paper;

use crate::commands::{opt_date, parse_date, print_json};
use crate::ui::{Lang, grid, row, table};

/// One opt-out event of one patient, named by --handler and --patient, or by --registration
/// (a registration found by `kiban optout find`).
#[derive(Args, Debug)]
pub struct OptoutEventArgs {
    /// Handler code (with --patient).
    #[arg(long)]
    pub handler: Option<String>,
    /// The handler's patient ID (with --handler).
    #[arg(long, visible_alias = "patient-id")]
    pub patient: Option<String>,
    /// The registration ID shown by `kiban optout find`, instead of --handler and --patient.
    #[arg(long, value_name = "REG_ID")]
    pub registration: Option<String>,
    /// Date of the notice or of receipt of the request (default: today).
    #[arg(long)]
    pub date: Option<String>,
    /// Who made the request (required for stop and delete: printed on the receipt).
    #[arg(long)]
    pub requester: Option<String>,
    /// The requester's relation to the patient (R-OPT-8; default self): self | guardian (a
    /// patient under 16 on the request date, or recorded under guardianship) | spouse, child,
    /// parent, grandchild, grandparent, sibling (a patient recorded as deceased).
    #[arg(long)]
    pub relation: Option<String>,
    /// Requests by a guardian: the patient's birth date (checked against the ingested
    /// identity when there is one).
    #[arg(long, value_name = "DATE")]
    pub patient_birth: Option<String>,
    /// Consent: what the patient consented to (同意の範囲). Delete: what the request reaches —
    /// `handler` (default: that handler's data of the patient) or `person` (every
    /// registration the last `kiban link` run linked to the same person, across handlers).
    #[arg(long)]
    pub scope: Option<String>,
    /// desk | producer | mail | online | oral | written
    #[arg(long)]
    pub channel: Option<String>,
    /// Notice: how it was given.
    #[arg(long)]
    pub method: Option<String>,
    /// Notice: the notice version given.
    #[arg(long)]
    pub notice_version: Option<String>,
    /// Notice: a guardian was notified as well.
    #[arg(long)]
    pub guardian_notified: bool,
    /// Stop/delete: also write the receipt PDF here (a copy is always stored in the
    /// workspace's receipts/ folder).
    #[arg(long)]
    pub pdf: Option<PathBuf>,
    /// Receipt paper: a4 | a5.
    #[arg(long, default_value = "a4")]
    pub paper: String,
    /// Receipt date of issue (default: today).
    #[arg(long)]
    pub issued: Option<String>,
    /// A producer issuing the receipt on the handler's behalf: its name (with
    /// --issuer-address). Default: the handler issues it.
    #[arg(long, requires = "issuer_address")]
    pub issuer_name: Option<String>,
    #[arg(long, requires = "issuer_name")]
    pub issuer_address: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `kiban optout guardianship|deceased`.
#[derive(Args, Debug)]
pub struct PatientStatusArgs {
    /// Handler code (with --patient).
    #[arg(long)]
    pub handler: Option<String>,
    /// The handler's patient ID (with --handler).
    #[arg(long, visible_alias = "patient-id")]
    pub patient: Option<String>,
    /// The registration ID shown by `kiban optout find`, instead of --handler and --patient.
    #[arg(long, value_name = "REG_ID")]
    pub registration: Option<String>,
    /// From when the guardianship holds, or the date of death.
    #[arg(long)]
    pub date: String,
    #[arg(long)]
    pub json: bool,
}

/// `kiban handler update CODE`.
#[derive(Args, Debug)]
pub struct HandlerUpdateArgs {
    /// Handler code.
    pub code: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub address: Option<String>,
    #[arg(long)]
    pub representative: Option<String>,
    /// Date of filing (届出) with the minister.
    #[arg(long, value_name = "DATE")]
    pub filed: Option<String>,
    /// Date the minister published the filing.
    #[arg(long, value_name = "DATE")]
    pub published: Option<String>,
    /// Date of the handler's own publication.
    #[arg(long, value_name = "DATE")]
    pub own_published: Option<String>,
    /// Waiting period between notice and first provision, in days (R-OPT-2), for notices
    /// whose version has none.
    #[arg(long)]
    pub waiting_days: Option<u32>,
    /// End of the handler's contract with the producer: the retention policy erases its
    /// data a set number of days later (kiban.toml [retention]).
    #[arg(long, value_name = "DATE")]
    pub contract_end: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum NoticeVersionCmd {
    /// Add a version of the notice (a change of items needs a new version).
    Add(NoticeVersionAddArgs),
    /// List the handler's notice versions.
    List {
        code: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct NoticeVersionAddArgs {
    /// Handler code.
    pub code: String,
    /// The version's name (e.g. v1), referred to by notices (--notice-version).
    #[arg(long)]
    pub version: String,
    /// The items of information provided (comma-separated or repeated).
    #[arg(long, required = true, value_delimiter = ',')]
    pub items: Vec<String>,
    /// How the data is provided (提供の方法).
    #[arg(long)]
    pub method: String,
    /// The waiting period after a notice of this version, in days (R-OPT-2).
    #[arg(long)]
    pub period_days: u32,
    /// The notice document given to patients (a copy is kept in the workspace).
    #[arg(long)]
    pub document: Option<PathBuf>,
    /// The first day a notice of this version may be dated (default: today).
    #[arg(long, value_name = "DATE")]
    pub valid_from: Option<String>,
    /// How the handler obtained the data (取得の方法).
    #[arg(long, default_value = "診療の過程で取得")]
    pub acquisition_method: String,
    /// How the data provided is updated (更新の方法).
    #[arg(long, default_value = "定期的に差分を提供")]
    pub update_method: String,
    /// How to ask for provision to stop.
    #[arg(
        long,
        default_value = "医療機関の窓口または認定作成事業者への申し出（書面・口頭）"
    )]
    pub stop_method: String,
    #[arg(long)]
    pub json: bool,
}

/// `kiban optout find`: the desk's identity search.
#[derive(Args, Debug)]
pub struct FindArgs {
    /// The patient's name as they give it (kanji, kana or Latin letters; spaces, width,
    /// hiragana/katakana and variant kanji do not matter).
    #[arg(long)]
    pub name: String,
    /// The name in kana, when known (compared with the registrations' kana names).
    #[arg(long)]
    pub kana: Option<String>,
    /// Birth date (exact).
    #[arg(long, value_name = "DATE")]
    pub birth: String,
    /// M | F
    #[arg(long)]
    pub sex: String,
    #[arg(long)]
    pub json: bool,
}

/// `kiban optout receipt`: a stored receipt copy, opened and written out again.
#[derive(Args, Debug)]
pub struct ReceiptArgs {
    /// The receipt number (受付番号), as printed on the receipt.
    #[arg(long)]
    pub number: String,
    /// Where to write the PDF.
    #[arg(long)]
    pub pdf: PathBuf,
}

/// Writes the stored copy of a receipt to `--pdf` (owner-only: it names the patient).
pub async fn run_receipt(ws: &Workspace, a: ReceiptArgs, lang: Lang) -> Result<ExitCode> {
    let pdf = ws.receipt_copy(&a.number).await?;
    if a.pdf.exists() {
        anyhow::bail!(
            "{}",
            lang.t(
                "--pdf のファイルは既にあります（上書きしません）",
                "the --pdf file already exists (not overwritten)"
            )
        );
    }
    std::fs::write(&a.pdf, &pdf)?;
    println!(
        "{}: {}",
        lang.t("受付書を書き出しました", "receipt written"),
        a.pdf.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct ApplyDeletionsArgs {
    /// Apply deletion requests in force on this date (default: today).
    #[arg(long)]
    pub on: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// `kiban export`: the handler side (R-REC-1).
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Files or folders to export from.
    #[arg(required = true)]
    pub sources: Vec<PathBuf>,
    /// The producer's name (提供先).
    #[arg(long = "to")]
    pub to: String,
    /// The producer's address.
    #[arg(long)]
    pub producer_address: String,
    /// This handler's code.
    #[arg(long)]
    pub handler: String,
    /// Output folder (must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Provision date (default: today); the gate decides as of this date.
    #[arg(long)]
    pub on: Option<String>,
    /// auto | ssmix2 | fhir | uke | dpc | csv
    #[arg(long, default_value = "auto")]
    pub format: String,
    #[arg(long)]
    pub json: bool,
}

/// The patient named by `--handler` with `--patient`, or by `--registration`: exactly one of
/// the two forms. Returns (handler, patient ID, registration), the unused form empty.
fn patient_form(
    handler: Option<String>,
    patient: Option<String>,
    registration: Option<String>,
    lang: Lang,
) -> Result<(String, String, Option<String>)> {
    match (handler, patient, registration) {
        (None, None, Some(r)) => Ok((String::new(), String::new(), Some(r))),
        (Some(h), Some(p), None) => Ok((h, p, None)),
        (_, _, Some(_)) => bail!(
            "{}",
            lang.t(
                "患者は --registration か --handler と --patient のどちらか一方で指定してください",
                "name the patient either by --registration or by --handler with --patient, not both"
            )
        ),
        _ => bail!(
            "{}",
            lang.t(
                "患者を --handler と --patient（両方）、または --registration（kiban optout find で確認）で指定してください",
                "name the patient by --handler with --patient, or by --registration (see kiban optout find)"
            )
        ),
    }
}

fn date_or_today(s: &Option<String>, what: &str) -> Result<NaiveDate> {
    Ok(opt_date(s, what)?.unwrap_or_else(|| chrono::Local::now().date_naive()))
}

fn kind_ja(kind: EventKind, lang: Lang) -> &'static str {
    match kind {
        EventKind::Notice => lang.t("通知", "notice"),
        EventKind::Stop => lang.t("提供停止の求め", "stop request"),
        EventKind::Delete => lang.t("削除の求め", "deletion request"),
        EventKind::Withdraw => lang.t("停止の求めの撤回", "withdrawal of a stop"),
        EventKind::Consent => lang.t("同意", "consent"),
        EventKind::ConsentWithdraw => lang.t("同意の撤回", "withdrawal of consent"),
    }
}

fn deletion_rows(d: &DeletionReport, lang: Lang) -> Vec<(String, String)> {
    let mut rows = vec![
        row(
            lang,
            "削除した登録患者",
            "registrations erased",
            d.registrations.to_string(),
        ),
        row(
            lang,
            "破棄した本人情報（暗号鍵）",
            "identities crypto-shredded",
            d.identities_shredded.to_string(),
        ),
    ];
    for (t, n) in &d.facts_removed {
        rows.push((format!("  {t}"), n.to_string()));
    }
    rows.push(row(
        lang,
        "消去の記録",
        "erasure records",
        d.erasure_records.len().to_string(),
    ));
    rows
}

/// `kiban optout notice|stop|delete|withdraw`.
pub async fn run_event(
    ws: &Workspace,
    kind: EventKind,
    a: OptoutEventArgs,
    lang: Lang,
) -> Result<ExitCode> {
    let date = date_or_today(&a.date, "--date")?;
    let (handler, patient, registration) =
        patient_form(a.handler, a.patient, a.registration, lang)?;
    let mut req = match &registration {
        Some(r) => OptoutEventRequest::for_registration(r, kind, date),
        None => OptoutEventRequest::new(&handler, &patient, kind, date),
    };
    req.issued_on = date_or_today(&a.issued, "--issued")?.max(date);
    if !kind.is_request()
        && (a.requester.is_some()
            || a.relation.is_some()
            || a.channel.is_some()
            || a.patient_birth.is_some())
    {
        bail!(
            "{}",
            lang.t(
                "--requester/--relation/--channel/--patient-birth は求め・同意（stop, delete, withdraw, consent, consent-withdraw）にのみ指定できます",
                "--requester/--relation/--channel/--patient-birth belong to requests and consents (stop, delete, withdraw, consent, consent-withdraw)"
            )
        );
    }
    match (kind, a.scope) {
        (EventKind::Consent, Some(s)) => req.scope = Some(s),
        (EventKind::Consent, None) => bail!(
            "{}",
            lang.t(
                "同意 (consent) には同意の範囲 (--scope) が必要です",
                "a consent needs its scope (--scope)"
            )
        ),
        (EventKind::Delete, Some(s)) => {
            req.deletion_scope = DeletionScope::parse(&s).with_context(|| {
                format!(
                    "{} {s:?}: handler, person",
                    lang.t("削除の範囲 --scope", "deletion scope --scope")
                )
            })?;
        }
        (_, Some(_)) => bail!(
            "{}",
            lang.t(
                "--scope は同意 (consent: 同意の範囲) と削除の求め (delete: handler|person) にのみ指定できます",
                "--scope belongs to consents (what was consented to) and deletion requests (handler|person)"
            )
        ),
        (_, None) => {}
    }
    req.patient_birth = a
        .patient_birth
        .as_deref()
        .map(|b| parse_date(b, "--patient-birth"))
        .transpose()?;
    if kind != EventKind::Notice
        && (a.method.is_some() || a.notice_version.is_some() || a.guardian_notified)
    {
        bail!(
            "{}",
            lang.t(
                "--method/--notice-version/--guardian-notified は通知 (notice) にのみ指定できます",
                "--method/--notice-version/--guardian-notified belong to notices"
            )
        );
    }
    req.requester = a.requester;
    req.relation = match &a.relation {
        Some(r) => Some(Relation::parse(r).with_context(|| {
            format!(
                "--relation {r:?}: self, guardian, spouse, child, parent, grandchild, grandparent, sibling"
            )
        })?),
        None => None,
    };
    req.channel = match &a.channel {
        Some(c) => Some(Channel::parse(c).with_context(|| {
            format!("--channel {c:?}: desk, producer, mail, online, oral, written")
        })?),
        None => None,
    };
    req.method = a.method;
    req.notice_version = a.notice_version;
    req.guardian_notified = a.guardian_notified;
    req.paper = match a.paper.to_ascii_lowercase().as_str() {
        "a4" => Paper::A4,
        "a5" => Paper::A5,
        other => bail!("--paper {other:?}: a4, a5"),
    };
    req.producer_issuer = a.issuer_name.zip(a.issuer_address);
    if a.pdf.is_some() && !kind.needs_receipt() {
        bail!(
            "{}",
            lang.t(
                "--pdf は stop と delete で受付書を出力するときに指定します",
                "--pdf writes the receipt of a stop or delete request"
            )
        );
    }
    req.pdf_out = a.pdf;
    let out = ws.record_optout_event(&req).await?;
    if a.json {
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        row(lang, "事象", "event", kind_ja(kind, lang).to_string()),
        row(lang, "医療情報取扱事業者", "handler", out.handler.clone()),
        row(lang, "日付", "date", date.to_string()),
        row(
            lang,
            "登録",
            "recorded",
            if out.new_event {
                lang.t("新規", "new")
            } else {
                lang.t("登録済み（同一の事象）", "already recorded (same event)")
            }
            .to_string(),
        ),
    ];
    if let Some(scope) = out.deletion_scope {
        rows.push(row(
            lang,
            "削除の範囲",
            "deletion scope",
            match scope {
                DeletionScope::Handler => lang.t(
                    "当該医療情報取扱事業者の分 (handler)",
                    "this handler's data (handler)",
                ),
                DeletionScope::Person => lang.t(
                    "名寄せされた同一人物の全登録 (person)",
                    "every registration linked to the person (person)",
                ),
            }
            .to_string(),
        ));
        rows.push(row(
            lang,
            "対象の登録（医療情報取扱事業者）",
            "registrations reached (handlers)",
            format!(
                "{} ({})",
                out.registrations_reached,
                out.handlers_reached.join(", ")
            ),
        ));
    }
    if let Some(n) = &out.receipt_number {
        rows.push(row(lang, "受付番号", "receipt number", n.clone()));
    }
    if let Some(p) = &out.receipt_pdf {
        rows.push(row(lang, "受付書", "receipt", p.display().to_string()));
    }
    if let Some(p) = &out.receipt_copy {
        rows.push(row(
            lang,
            "受付書の控え（3年保存）",
            "receipt copy (kept 3 years)",
            p.display().to_string(),
        ));
    }
    let verdict = match &out.decision.eligibility {
        kiban_consent::Eligibility::Eligible => lang.t("提供可", "eligible").to_string(),
        kiban_consent::Eligibility::Ineligible(r) => format!(
            "{}: {}",
            lang.t("提供不可", "ineligible"),
            match lang {
                Lang::Ja => r.to_string(),
                Lang::En => r.message_en(),
            }
        ),
    };
    rows.push(row(lang, "判定", "decision", verdict));
    if let Some(d) = &out.deletion {
        rows.extend(deletion_rows(d, lang));
    }
    print!(
        "{}",
        table(
            lang.t("オプトアウト事象を登録しました", "opt-out event recorded"),
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// `kiban optout guardianship|deceased`.
pub async fn run_status(
    ws: &Workspace,
    kind: StatusKind,
    a: PatientStatusArgs,
    lang: Lang,
) -> Result<ExitCode> {
    let date = parse_date(&a.date, "--date")?;
    let (handler, patient, registration) =
        patient_form(a.handler, a.patient, a.registration, lang)?;
    let out = ws
        .record_patient_status_for(&handler, &patient, registration.as_deref(), kind, date)
        .await?;
    if a.json {
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (what, title) = match kind {
        StatusKind::Guardianship => (
            lang.t("成年後見等（開始日）", "under guardianship since"),
            lang.t("成年後見等を記録しました", "guardianship recorded"),
        ),
        StatusKind::Deceased => (
            lang.t("死亡日", "date of death"),
            lang.t("死亡を記録しました", "death recorded"),
        ),
    };
    let mut rows = vec![
        row(
            lang,
            "医療情報取扱事業者",
            "handler",
            if handler.is_empty() {
                registration
                    .map(|r| format!("-（{r}）"))
                    .unwrap_or_default()
            } else {
                handler
            },
        ),
        (what.to_string(), date.to_string()),
    ];
    if let Some(p) = out.previous {
        rows.push(row(
            lang,
            "訂正前の日付",
            "date corrected from",
            p.to_string(),
        ));
    }
    print!("{}", table(title, &rows));
    Ok(ExitCode::SUCCESS)
}

fn date_cell(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "-".to_string(), |d| d.to_string())
}

/// `kiban handler update CODE`.
pub async fn run_handler_update(
    ws: &Workspace,
    a: HandlerUpdateArgs,
    lang: Lang,
) -> Result<ExitCode> {
    let update = HandlerUpdate {
        name: a.name,
        address: a.address,
        representative: a.representative,
        filed_date: opt_date(&a.filed, "--filed")?,
        minister_published_date: opt_date(&a.published, "--published")?,
        own_published_date: opt_date(&a.own_published, "--own-published")?,
        waiting_days: a.waiting_days,
        contract_end_date: opt_date(&a.contract_end, "--contract-end")?,
    };
    let change = ws.update_handler(&a.code, &update).await?;
    if a.json {
        print_json(&serde_json::json!({ "changed": change.is_some(), "change": change }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(c) = change else {
        println!(
            "{}: {}",
            lang.t(
                "変更はありません（同じ内容です）",
                "nothing changed (same values)"
            ),
            a.code
        );
        return Ok(ExitCode::SUCCESS);
    };
    let b = c.before.clone().unwrap_or_else(|| c.after.clone());
    let n = &c.after;
    let mut rows = vec![row(lang, "医療情報取扱事業者", "handler", n.code.clone())];
    let mut diff = |ja: &str, en: &str, old: String, new: String| {
        if old != new {
            rows.push(row(lang, ja, en, format!("{old} → {new}")));
        }
    };
    diff("名称", "name", b.name.clone(), n.name.clone());
    diff("住所", "address", b.address.clone(), n.address.clone());
    diff(
        "代表者",
        "representative",
        b.representative.clone().unwrap_or_else(|| "-".into()),
        n.representative.clone().unwrap_or_else(|| "-".into()),
    );
    diff(
        "届出日",
        "filed",
        date_cell(b.filed_date),
        date_cell(n.filed_date),
    );
    diff(
        "大臣による公表日",
        "published by the minister",
        date_cell(b.minister_published_date),
        date_cell(n.minister_published_date),
    );
    diff(
        "事業者による公表日",
        "own publication",
        date_cell(b.own_published_date),
        date_cell(n.own_published_date),
    );
    diff(
        "待機期間（日）",
        "waiting days",
        b.waiting_days.to_string(),
        n.waiting_days.to_string(),
    );
    diff(
        "契約終了日",
        "contract end",
        date_cell(b.contract_end_date),
        date_cell(n.contract_end_date),
    );
    rows.push(row(lang, "変更ID", "change ID", c.change_id.clone()));
    print!(
        "{}",
        table(
            lang.t(
                "医療情報取扱事業者の登録内容を変更しました（変更前の内容は履歴に残ります）",
                "handler updated (the previous record is kept in its history)"
            ),
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// `kiban handler history CODE`.
pub async fn run_handler_history(
    ws: &Workspace,
    code: &str,
    json: bool,
    lang: Lang,
) -> Result<ExitCode> {
    let hist = ws.handler_history(code).await?;
    if json {
        print_json(&hist)?;
        return Ok(ExitCode::SUCCESS);
    }
    for c in &hist {
        let h = &c.after;
        println!(
            "{}	{}	{}	{}	{}	{}	{}	{}",
            c.changed_at,
            c.changed_by,
            if c.before.is_none() {
                lang.t("登録", "registered")
            } else {
                lang.t("変更", "changed")
            },
            h.name,
            date_cell(h.filed_date),
            date_cell(h.minister_published_date),
            date_cell(h.own_published_date),
            h.waiting_days
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban handler notice-version add|list`.
pub async fn run_notice_version(
    ws: &Workspace,
    c: NoticeVersionCmd,
    lang: Lang,
) -> Result<ExitCode> {
    match c {
        NoticeVersionCmd::Add(a) => {
            let v = NoticeVersion {
                version: a.version.trim().to_string(),
                items: a
                    .items
                    .iter()
                    .map(|i| i.trim().to_string())
                    .filter(|i| !i.is_empty())
                    .collect(),
                acquisition_method: a.acquisition_method,
                provision_method: a.method,
                update_method: a.update_method,
                stop_method: a.stop_method,
                valid_from: date_or_today(&a.valid_from, "--valid-from")?,
                waiting_days: Some(a.period_days),
                document: None,
            };
            let v = ws
                .add_notice_version(&a.code, &v, a.document.as_deref())
                .await?;
            if a.json {
                print_json(&v)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut rows = vec![
                row(lang, "医療情報取扱事業者", "handler", a.code.clone()),
                row(lang, "版", "version", v.version.clone()),
                row(lang, "提供する項目", "items", v.items.join("、")),
                row(lang, "提供の方法", "method", v.provision_method.clone()),
                row(
                    lang,
                    "待機期間（日）",
                    "waiting days",
                    a.period_days.to_string(),
                ),
                row(lang, "適用開始日", "valid from", v.valid_from.to_string()),
            ];
            if let Some(d) = &v.document {
                rows.push(row(
                    lang,
                    "通知文書",
                    "document",
                    format!("{} (sha256 {})", d.name, d.sha256),
                ));
            }
            print!(
                "{}",
                table(
                    lang.t("通知の版を登録しました", "notice version added"),
                    &rows
                )
            );
        }
        NoticeVersionCmd::List { code, json } => {
            let vs = ws.list_notice_versions(&code).await?;
            if json {
                print_json(&vs)?;
                return Ok(ExitCode::SUCCESS);
            }
            let handler_days = ws
                .list_handlers()
                .await?
                .into_iter()
                .find(|h| h.code == code)
                .map_or(0, |h| h.waiting_days);
            for v in vs {
                println!(
                    "{}	{}	{}	{}	{}",
                    v.version,
                    v.valid_from,
                    v.waiting_days.unwrap_or(handler_days),
                    v.items.join(","),
                    v.document.map_or_else(|| "-".to_string(), |d| d.name)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban optout find`: the registrations of the person the desk describes, across handlers.
/// Only matches are printed; none is said plainly (exit 0).
pub async fn run_find(ws: &Workspace, a: FindArgs, lang: Lang) -> Result<ExitCode> {
    // Personal data: a date that does not read is refused without echoing it.
    let birth = kiban_model::date::parse_day(&a.birth).map_err(|_| {
        anyhow::anyhow!(
            "{}",
            lang.t(
                "--birth は生年月日（例: 1960-01-02、昭和35年1月2日）で指定してください",
                "--birth must be a birth date to the day (e.g. 1960-01-02, 昭和35年1月2日)"
            )
        )
    })?;
    let sex = match a.sex.trim().to_ascii_uppercase().as_str() {
        "M" | "男" => Sex::Male,
        "F" | "女" => Sex::Female,
        _ => bail!("{}", lang.t("--sex は M または F です", "--sex: M or F")),
    };
    let q = FindQuery {
        name: a.name,
        kana: a.kana,
        birth,
        sex,
    };
    let r = ws.find_registrations(&q).await?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    if r.matches.is_empty() {
        println!(
            "{}",
            lang.t(
                "該当する登録はありません（氏名・カナ・生年月日・性別が一致するものなし）",
                "no registration matches (name or kana, birth date and sex)"
            )
        );
        return Ok(ExitCode::SUCCESS);
    }
    let headers = match lang {
        Lang::Ja => [
            "登録ID",
            "医療情報取扱事業者",
            "患者ID",
            "名寄せ（人物キー）",
            "一致",
            "判定",
        ],
        Lang::En => [
            "registration",
            "handler",
            "patient ID",
            "person (link cluster)",
            "matched on",
            "status",
        ],
    };
    let rows: Vec<Vec<String>> = r
        .matches
        .iter()
        .map(|m| {
            vec![
                m.registration_id.clone(),
                format!("{} {}", m.handler_code, m.handler_name),
                m.patient_id.clone(),
                m.person_key.clone().unwrap_or_else(|| "-".into()),
                match m.matched_on {
                    MatchedOn::Name => lang.t("氏名", "name"),
                    MatchedOn::Kana => lang.t("カナ", "kana"),
                    MatchedOn::Both => lang.t("氏名・カナ", "name, kana"),
                }
                .to_string(),
                m.status.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        match lang {
            Lang::Ja => format!("該当する登録 {} 件", r.matches.len()),
            Lang::En => format!("{} matching registrations", r.matches.len()),
        }
    );
    print!("{}", grid(&headers, &rows));
    if !r.linkage_run {
        println!(
            "{}",
            lang.t(
                "名寄せ（kiban link）が未実行のため人物キーはありません",
                "no linkage run yet (kiban link): no person keys"
            )
        );
    }
    println!(
        "{}",
        lang.t(
            "停止・削除は --registration 登録ID で指定できます（本人単位の削除: optout delete --scope person）",
            "stop or delete by --registration REG_ID (the whole linked person: optout delete --scope person)"
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// `kiban optout apply-deletions`.
pub async fn run_apply_deletions(
    ws: &Workspace,
    a: ApplyDeletionsArgs,
    lang: Lang,
) -> Result<ExitCode> {
    let on = date_or_today(&a.on, "--on")?;
    let r = ws.apply_deletions(on).await?;
    if a.json {
        print_json(&r)?;
    } else {
        print!(
            "{}",
            table(
                lang.t("削除の求めの反映", "deletion requests applied"),
                &deletion_rows(&r, lang)
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban export`.
pub async fn run_export(ws: &Workspace, a: ExportArgs, lang: Lang) -> Result<ExitCode> {
    let opts = ExportOptions {
        handler: a.handler,
        producer_name: a.to,
        producer_address: a.producer_address,
        sources: a.sources,
        out: a.out,
        on: date_or_today(&a.on, "--on")?,
        format: kiban_ingest::parse_format_arg(&a.format)?,
    };
    let r = ws.export(&opts).await?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![
        row(lang, "提供先", "producer", r.producer.clone()),
        row(lang, "提供日", "date", r.on.clone()),
        row(lang, "出力先", "folder", r.out.display().to_string()),
        row(lang, "ファイル", "files", r.files_seen.to_string()),
        row(lang, "そのまま複製", "copied", r.files_copied.to_string()),
        row(
            lang,
            "対象者の行のみ出力",
            "filtered (NDJSON)",
            r.files_filtered.to_string(),
        ),
        row(lang, "提供しない", "withheld", r.files_withheld.to_string()),
    ];
    for (why, n) in &r.withheld_by_reason {
        rows.push((format!("  {why}"), n.to_string()));
    }
    rows.push(row(
        lang,
        "提供した患者",
        "patients provided",
        r.patients_exported.to_string(),
    ));
    rows.push(row(
        lang,
        "提供しない患者",
        "patients withheld",
        r.patients_withheld.to_string(),
    ));
    for (why, n) in &r.patients_withheld_by_reason {
        rows.push((format!("  {why}"), n.to_string()));
    }
    rows.push(row(
        lang,
        "提供の記録",
        "provision record",
        r.provision_record
            .clone()
            .unwrap_or_else(|| lang.t("なし（提供なし）", "none (nothing provided)").into()),
    ));
    print!(
        "{}",
        table(
            lang.t("認定作成事業者への提供", "export to producer"),
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
