//! The books (帳簿; issue 15, item 7; R-REC-4, R-REC-7, R-REL-3): `kiban books [--from
//! --to --kind --json]`, `kiban books export --format csv|pdf --out F`, `kiban producer
//! add|list`, `kiban transfer contract|record` and the users' reports `kiban user
//! report-provision|report-erasure` — argument structs and presentation. The work is done
//! by `kiban-pipeline` (`books`) over `kiban-workflow` (`books`); a delivery's entry is
//! written by `kiban release approve` itself.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_pipeline::books::{Books, BooksFormat, BooksKind, kind_ja};
use kiban_pipeline::files::escape_control;
use kiban_workflow::books::items_text;
use kiban_workflow::{
    BookEntry, Direction, Field, NewCorrection, NewOnward, NewProducer, NewTransfer,
    NewTransferContract, NewUserErasure, WorkflowRefusal,
};

use crate::commands::{opt_date, parse_date, print_json};
use crate::ui::{Lang, grid, row, table};

/// `kiban books`: the list, or one of its subcommands.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BooksArgs {
    #[command(subcommand)]
    pub action: Option<BooksCmd>,
    /// First date listed (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last date listed (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// Only one kind: delivery, onward, user_erasure, transfer_out, transfer_in, receipt,
    /// provision, erasure.
    #[arg(long, value_parser = parse_books_kind)]
    pub kind: Option<BooksKind>,
    /// The rows and the fairness figures (fee, turnaround per request) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kiban books …`. A new subcommand is one variant here and its arm in [`run_books`].
#[derive(Subcommand, Debug)]
pub enum BooksCmd {
    /// Write the books for an inspection: CSV (UTF-8 with BOM) or a Japanese PDF.
    Export(BooksExportArgs),
    /// The annual business report's figures (第13条) for fiscal year Y (April Y–March Y+1).
    Report {
        #[arg(long)]
        year: i32,
        #[arg(long)]
        json: bool,
    },
    /// Correct an entry: a new entry of the same kind naming the entry in force; the entry
    /// corrected is never changed (R-REC-4).
    Correct(BooksCorrectArgs),
}

impl BooksArgs {
    /// Everything but `books correct` only reads.
    pub fn reads_only(&self) -> bool {
        !matches!(self.action, Some(BooksCmd::Correct(_)))
    }
}

/// `kiban books correct ENTRY_NO --reason TEXT [--date --items --to --to-address --method]`.
/// There is no option for the kind, the counter-party or the references: they are never
/// corrected.
#[derive(Args, Debug)]
pub struct BooksCorrectArgs {
    /// The entry's number (記載番号; `entry:N` in `kiban books`). A corrected entry's
    /// number corrects the entry now in force of its chain.
    pub entry: i64,
    /// Why (required; kept with the correction).
    #[arg(long)]
    pub reason: String,
    /// The corrected date, YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub date: Option<String>,
    /// The corrected items: TABLE or TABLE.COLUMN, comma-separated (never empty).
    #[arg(long, value_delimiter = ',')]
    pub items: Option<Vec<String>>,
    /// The receiving user's name (onward reports only).
    #[arg(long)]
    pub to: Option<String>,
    /// The receiving user's address (onward reports only).
    #[arg(long)]
    pub to_address: Option<String>,
    /// The method (inter-producer transfers only).
    #[arg(long)]
    pub method: Option<String>,
}

#[derive(Args, Debug)]
pub struct BooksExportArgs {
    /// csv | pdf
    #[arg(long, value_parser = parse_format)]
    pub format: BooksFormat,
    /// The file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
}

/// `kiban producer …`: other certified producers (R-REC-7).
#[derive(Subcommand, Debug)]
pub enum ProducerCmd {
    /// Record a certified producer (--own: this producer itself, the other party of every
    /// inter-producer contract).
    Add(ProducerAddArgs),
    /// Every producer's current version.
    List {
        #[arg(long)]
        json: bool,
    },
}

impl ProducerCmd {
    pub fn reads_only(&self) -> bool {
        matches!(self, ProducerCmd::List { .. })
    }
}

#[derive(Args, Debug)]
pub struct ProducerAddArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub address: String,
    #[arg(long)]
    pub representative: String,
    /// The certification number (認定番号).
    #[arg(long)]
    pub cert_no: String,
    /// This producer's own record.
    #[arg(long)]
    pub own: bool,
}

/// `kiban transfer …`: medical data to / from another certified producer (法25条).
#[derive(Subcommand, Debug)]
pub enum TransferCmd {
    /// Record an inter-producer contract (第23条: both parties, the items, the method).
    Contract(TransferContractArgs),
    /// Record a transfer under its contract (a book entry transfer_out / transfer_in).
    Record(TransferRecordArgs),
}

#[derive(Args, Debug)]
pub struct TransferContractArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub producer: String,
    /// out (we provide) | in (we receive)
    #[arg(long, value_parser = parse_direction)]
    pub direction: Direction,
    #[arg(long)]
    pub signed: String,
    /// TABLE or TABLE.COLUMN, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub items: Vec<String>,
    /// How the data is provided (medium, encryption, line).
    #[arg(long)]
    pub method: String,
}

#[derive(Args, Debug)]
pub struct TransferRecordArgs {
    #[arg(long)]
    pub producer: String,
    #[arg(long, value_parser = parse_direction)]
    pub direction: Direction,
    #[arg(long)]
    pub date: String,
    /// TABLE or TABLE.COLUMN, comma-separated (within the contract's items).
    #[arg(long, value_delimiter = ',')]
    pub items: Vec<String>,
    /// The inter-producer contract's ID (kiban transfer contract).
    #[arg(long)]
    pub contract: String,
}

/// `kiban user report-provision`: a user reports providing delivered data to another user.
#[derive(Args, Debug)]
pub struct ReportProvisionArgs {
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub release: String,
    /// The receiving user's name.
    #[arg(long)]
    pub to: String,
    /// The receiving user's address.
    #[arg(long)]
    pub to_address: String,
    #[arg(long)]
    pub date: String,
    /// TABLE or TABLE.COLUMN, comma-separated (within what was delivered).
    #[arg(long, value_delimiter = ',')]
    pub items: Vec<String>,
}

/// `kiban user report-erasure`: a user reports that delivered data was erased.
#[derive(Args, Debug)]
pub struct ReportErasureArgs {
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub release: String,
    #[arg(long)]
    pub date: String,
    /// TABLE or TABLE.COLUMN, comma-separated (default: everything delivered).
    #[arg(long, value_delimiter = ',')]
    pub items: Vec<String>,
}

fn parse_books_kind(s: &str) -> std::result::Result<BooksKind, String> {
    BooksKind::parse(s).ok_or_else(|| {
        "delivery, onward, user_erasure, transfer_out, transfer_in, receipt, provision, erasure のいずれか / one of delivery, onward, user_erasure, transfer_out, transfer_in, receipt, provision, erasure".into()
    })
}

fn parse_format(s: &str) -> std::result::Result<BooksFormat, String> {
    match s {
        "csv" => Ok(BooksFormat::Csv),
        "pdf" => Ok(BooksFormat::Pdf),
        _ => Err("csv か pdf / csv or pdf".into()),
    }
}

fn parse_direction(s: &str) -> std::result::Result<Direction, String> {
    Direction::parse(s).ok_or_else(|| "out か in / out or in".into())
}

/// A cell: control characters escaped so one entry stays on one line.
fn cell(s: &str) -> String {
    escape_control(s).into_owned()
}

fn opt(s: &Option<String>) -> String {
    s.as_deref().map(cell).unwrap_or_else(|| "-".into())
}

/// `kiban books [export|report|correct]` (a workspace opened for writing for `correct`
/// only, see [`BooksArgs::reads_only`]).
pub async fn run_books(ws: &Workspace, a: BooksArgs, lang: Lang) -> Result<ExitCode> {
    match a.action {
        Some(BooksCmd::Export(e)) => export(ws, e, lang).await,
        Some(BooksCmd::Correct(c)) => correct(ws, c, lang).await,
        Some(BooksCmd::Report { year, json }) => {
            crate::duties_cmds::run_books_report(ws, year, json, lang).await
        }
        None => list(ws, a, lang).await,
    }
}

async fn list(ws: &Workspace, a: BooksArgs, lang: Lang) -> Result<ExitCode> {
    let from = opt_date(&a.from, "--from")?;
    let to = opt_date(&a.to, "--to")?;
    let books = ws.list_books(from, to, a.kind).await?;
    if a.json {
        print_json(&books)?;
    } else {
        print!("{}", books_text(&books, lang));
    }
    Ok(ExitCode::SUCCESS)
}

fn books_text(b: &Books, lang: Lang) -> String {
    let mut out = String::new();
    if b.entries.is_empty() {
        out.push_str(lang.t("帳簿に記載はありません\n", "the books hold no entries\n"));
    } else {
        let h = if lang == Lang::Ja {
            ["日付", "種別", "相手方", "名称", "住所", "項目", "参照"]
        } else {
            [
                "date",
                "kind",
                "counter-party",
                "name",
                "address",
                "items",
                "reference",
            ]
        };
        let rows: Vec<Vec<String>> = b
            .entries
            .iter()
            .map(|r| {
                let mut name = opt(&r.counterparty_name);
                if let Some(n) = &r.to_name {
                    name.push_str(&format!(" → {}", cell(n)));
                }
                let mut address = opt(&r.counterparty_address);
                if let Some(n) = &r.to_address {
                    address.push_str(&format!(" → {}", cell(n)));
                }
                vec![
                    r.date.to_string(),
                    if lang == Lang::Ja {
                        kind_ja(&r.kind).to_string()
                    } else {
                        r.kind.clone()
                    },
                    opt(&r.counterparty_id),
                    name,
                    address,
                    cell(&items_text(&r.items)),
                    reference_text(r, lang),
                ]
            })
            .collect();
        out.push_str(&grid(&h, &rows));
    }
    if !b.fairness.is_empty() {
        out.push('\n');
        out.push_str(lang.t(
            "提供依頼ごとの手数料と処理日数 (R-REL-3)\n",
            "fee and turnaround per request (R-REL-3)\n",
        ));
        let h = if lang == Lang::Ja {
            [
                "提供依頼",
                "版",
                "利用者",
                "手数料(円)",
                "受付日",
                "審査日",
                "日数",
            ]
        } else {
            [
                "request",
                "version",
                "user",
                "fee (yen)",
                "requested",
                "reviewed",
                "days",
            ]
        };
        let dash = || "-".to_string();
        let rows: Vec<Vec<String>> = b
            .fairness
            .iter()
            .map(|f| {
                vec![
                    f.request.clone(),
                    f.version.to_string(),
                    f.user.clone(),
                    f.fee_yen.map(|y| y.to_string()).unwrap_or_else(dash),
                    f.requested_on.to_string(),
                    f.answered_on.map(|d| d.to_string()).unwrap_or_else(dash),
                    f.turnaround_days
                        .map(|d| d.to_string())
                        .unwrap_or_else(dash),
                ]
            })
            .collect();
        out.push_str(&grid(&h, &rows));
    }
    out
}

/// A row's reference with what it corrects or what corrected it.
fn reference_text(r: &kiban_pipeline::books::BooksRow, lang: Lang) -> String {
    let mut s = cell(&r.reference);
    if let Some(n) = r.corrects {
        let why = r.correction_reason.as_deref().map(cell).unwrap_or_default();
        s.push_str(&if lang == Lang::Ja {
            format!(" ［第{n}号の訂正: {why}］")
        } else {
            format!(" [corrects entry {n}: {why}]")
        });
    }
    if let Some(n) = r.corrected_by {
        s.push_str(&if lang == Lang::Ja {
            format!(" ［第{n}号により訂正］")
        } else {
            format!(" [corrected by entry {n}]")
        });
    }
    s
}

/// `kiban books correct`.
async fn correct(ws: &Workspace, a: BooksCorrectArgs, lang: Lang) -> Result<ExitCode> {
    let date = opt_date(&a.date, "--date")?;
    let e = ws
        .correct_book_entry(
            a.entry,
            NewCorrection {
                date,
                items: a.items,
                to_name: a.to,
                to_address: a.to_address,
                method: a.method,
                reason: a.reason,
            },
        )
        .await?;
    print_entry(&e, lang);
    Ok(ExitCode::SUCCESS)
}

async fn export(ws: &Workspace, a: BooksExportArgs, lang: Lang) -> Result<ExitCode> {
    let from = opt_date(&a.from, "--from")?;
    let to = opt_date(&a.to, "--to")?;
    let e = ws.export_books(a.format, &a.out, from, to).await?;
    println!(
        "{}: {} ({} {})",
        lang.t("帳簿を書き出しました", "books exported"),
        a.out.display(),
        e.rows,
        lang.t("件", "rows")
    );
    Ok(ExitCode::SUCCESS)
}

/// `kiban producer add|list`.
pub async fn run_producer(ws: &Workspace, cmd: ProducerCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        ProducerCmd::Add(a) => {
            let p = ws
                .add_producer(NewProducer {
                    id: a.id,
                    name: a.name,
                    address: a.address,
                    representative: a.representative,
                    cert_no: a.cert_no,
                    own: a.own,
                })
                .await?;
            let rows = vec![
                row(lang, "ID", "ID", p.id.clone()),
                row(lang, "版", "version", p.version.to_string()),
                row(lang, "名称", "name", p.name.clone()),
                row(lang, "住所", "address", p.address.clone()),
                row(lang, "代表者", "representative", p.representative.clone()),
                row(lang, "認定番号", "certification", p.cert_no.clone()),
                row(
                    lang,
                    "自事業者",
                    "own",
                    if p.own { lang.t("はい", "yes") } else { "-" },
                ),
            ];
            print!(
                "{}",
                table(
                    lang.t("認定作成事業者を登録しました", "producer recorded"),
                    &rows
                )
            );
        }
        ProducerCmd::List { json } => {
            let ps = ws.list_producers().await?;
            if json {
                print_json(&ps)?;
                return Ok(ExitCode::SUCCESS);
            }
            if ps.is_empty() {
                println!(
                    "{}",
                    lang.t(
                        "認定作成事業者は登録されていません",
                        "no producers recorded"
                    )
                );
                return Ok(ExitCode::SUCCESS);
            }
            let h = if lang == Lang::Ja {
                ["ID", "名称", "住所", "代表者", "認定番号", "版"]
            } else {
                [
                    "ID",
                    "name",
                    "address",
                    "representative",
                    "certification",
                    "version",
                ]
            };
            let rows: Vec<Vec<String>> = ps
                .iter()
                .map(|p| {
                    vec![
                        if p.own {
                            format!("{} *", p.id)
                        } else {
                            p.id.clone()
                        },
                        cell(&p.name),
                        cell(&p.address),
                        cell(&p.representative),
                        cell(&p.cert_no),
                        p.version.to_string(),
                    ]
                })
                .collect();
            print!("{}", grid(&h, &rows));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban transfer contract|record`.
pub async fn run_transfer(ws: &Workspace, cmd: TransferCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        TransferCmd::Contract(a) => {
            let c = ws
                .add_transfer_contract(NewTransferContract {
                    id: a.id,
                    producer: a.producer,
                    direction: a.direction,
                    signed_on: parse_date(&a.signed, "--signed")?,
                    items: a.items,
                    method: a.method,
                })
                .await?;
            let party = |p: &kiban_workflow::Party| {
                format!("{} / {} / {}", p.name, p.address, p.representative)
            };
            let rows = vec![
                row(lang, "契約ID", "contract", c.id.clone()),
                row(lang, "締結日", "signed", c.signed_on.to_string()),
                row(lang, "提供元", "provider", party(&c.provider)),
                row(lang, "提供先", "recipient", party(&c.recipient)),
                row(lang, "項目", "items", items_text(&c.items)),
                row(lang, "提供の方法", "method", c.method.clone()),
            ];
            print!(
                "{}",
                table(
                    lang.t(
                        "認定作成事業者間の契約を記録しました",
                        "inter-producer contract recorded"
                    ),
                    &rows
                )
            );
        }
        TransferCmd::Record(a) => {
            let e = ws
                .record_transfer(NewTransfer {
                    producer: a.producer,
                    direction: a.direction,
                    date: parse_date(&a.date, "--date")?,
                    items: a.items,
                    contract: a.contract,
                })
                .await?;
            print_entry(&e, lang);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban user report-provision`.
pub async fn report_provision(
    ws: &Workspace,
    a: ReportProvisionArgs,
    lang: Lang,
) -> Result<ExitCode> {
    let e = ws
        .report_onward(NewOnward {
            user: a.user,
            release: a.release,
            to_name: a.to,
            to_address: a.to_address,
            date: parse_date(&a.date, "--date")?,
            items: a.items,
        })
        .await?;
    print_entry(&e, lang);
    if kiban_pipeline::books::onward_of_pseudonymized(&e) {
        eprintln!(
            "{}",
            lang.t(
                "警告: 仮名加工医療情報の第三者提供は禁じられています。法違反の疑いとして帳簿に記載しました（監査ログに pseudonymized_onward）。利用者への確認と主務大臣への報告を検討してください。 [R-PSEUDO-2]",
                "warning: pseudonymized data may not be provided to a third party. Entered in the books as a suspected violation (audit: pseudonymized_onward); follow up with the user and consider reporting it to the competent minister. [R-PSEUDO-2]",
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban user report-erasure`.
pub async fn report_erasure(ws: &Workspace, a: ReportErasureArgs, lang: Lang) -> Result<ExitCode> {
    let e = ws
        .report_user_erasure(NewUserErasure {
            user: a.user,
            release: a.release,
            date: parse_date(&a.date, "--date")?,
            items: a.items,
        })
        .await?;
    print_entry(&e, lang);
    Ok(ExitCode::SUCCESS)
}

fn print_entry(e: &BookEntry, lang: Lang) {
    let mut rows = vec![
        row(lang, "記載番号", "entry", e.entry_no.to_string()),
        row(
            lang,
            "種別",
            "kind",
            if lang == Lang::Ja {
                kind_ja(e.kind.as_str())
            } else {
                e.kind.as_str()
            },
        ),
        row(lang, "日付", "date", e.date.to_string()),
        row(lang, "相手方", "counter-party", e.counterparty_id.clone()),
        row(lang, "名称", "name", cell(&e.counterparty_name)),
        row(lang, "住所", "address", cell(&e.counterparty_address)),
    ];
    if let Some(n) = &e.to_name {
        rows.push(row(lang, "提供先", "provided to", cell(n)));
    }
    if let Some(a) = &e.to_address {
        rows.push(row(lang, "提供先の住所", "their address", cell(a)));
    }
    rows.push(row(lang, "項目", "items", items_text(&e.items)));
    if let Some(r) = &e.release {
        rows.push(row(lang, "リリース", "release", r.clone()));
    }
    if let Some(c) = &e.contract {
        rows.push(row(lang, "契約", "contract", c.clone()));
    }
    if let Some(m) = &e.method {
        rows.push(row(lang, "提供の方法", "method", cell(m)));
    }
    if let Some(n) = e.corrects {
        rows.push(row(lang, "訂正した記載", "corrects entry", n.to_string()));
    }
    if let Some(r) = &e.correction_reason {
        rows.push(row(lang, "訂正の理由", "reason", cell(r)));
    }
    let title = if e.corrects.is_some() {
        lang.t(
            "帳簿に訂正を記載しました（訂正前の記載はそのまま残ります）",
            "correction entered in the books (the entry corrected stays as written)",
        )
    } else {
        lang.t("帳簿に記載しました", "entered in the books")
    };
    print!("{}", table(title, &rows));
}

/// The words of the books' fields (called by `workflow_cmds::field_words`).
pub fn field_words(f: Field, lang: Lang) -> &'static str {
    match f {
        Field::ProducerId => lang.t("作成事業者ID", "producer ID"),
        Field::Method => lang.t("提供の方法 (--method)", "--method"),
        Field::OnwardName => lang.t("提供先の名称 (--to)", "--to"),
        Field::OnwardAddress => lang.t("提供先の住所 (--to-address)", "--to-address"),
        Field::Item => lang.t("項目 (--items)", "--items"),
        Field::CorrectionReason => lang.t("訂正の理由 (--reason)", "the reason (--reason)"),
        _ => lang.t("項目", "field"),
    }
}

/// The words of the books' refusals (called by `workflow_cmds::refusal_words`).
pub fn refusal_words(r: &WorkflowRefusal, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match r {
        WorkflowRefusal::ProducerExists { producer } => pick(
            format!("認定作成事業者 {producer} は登録済みです"),
            format!("producer {producer} is already recorded"),
        ),
        WorkflowRefusal::ProducerUnknown { producer } => pick(
            format!("認定作成事業者 {producer} は登録されていません（kiban producer add）"),
            format!("producer {producer} is not recorded (kiban producer add)"),
        ),
        WorkflowRefusal::OwnProducerMissing => pick(
            "自事業者の記録がありません（kiban producer add --own で名称・住所・代表者を登録してください）".into(),
            "this producer's own record is missing (record its name, address and representative with kiban producer add --own)".into(),
        ),
        WorkflowRefusal::OwnProducerConflict { producer } => pick(
            format!("自事業者は {producer} として登録済みです（自事業者との授受や二つ目の自事業者は記録できません）"),
            format!("this producer is recorded as {producer} (no second own record, no transfer with oneself)"),
        ),
        WorkflowRefusal::TransferContractExists { contract } => pick(
            format!("認定作成事業者間の契約 {contract} は登録済みです"),
            format!("inter-producer contract {contract} is already recorded"),
        ),
        WorkflowRefusal::TransferContractUnknown { contract } => pick(
            format!("認定作成事業者間の契約 {contract} は登録されていません（kiban transfer contract）"),
            format!("inter-producer contract {contract} is not recorded (kiban transfer contract)"),
        ),
        WorkflowRefusal::TransferContractMismatch { contract, producer, direction } => pick(
            format!("契約 {contract} は作成事業者 {producer} との {direction} 方向の契約ではありません"),
            format!("contract {contract} is not a contract with producer {producer} for direction {direction}"),
        ),
        WorkflowRefusal::TransferBeforeContract { contract, date, signed_on } => pick(
            format!("授受の日 {date} は契約 {contract} の締結日 {signed_on} より前です"),
            format!("the transfer date {date} is before contract {contract} was signed ({signed_on})"),
        ),
        WorkflowRefusal::ReleaseNotDeliveredTo { release, user } => pick(
            format!("リリース {release} は利用者 {user} に提供されていません（帳簿に提供の記載がありません）"),
            format!("release {release} was not delivered to user {user} (the books show no such delivery)"),
        ),
        WorkflowRefusal::ReportBeforeDelivery { release, date, delivered_on } => pick(
            format!("報告の日 {date} はリリース {release} の提供日 {delivered_on} より前です"),
            format!("the reported date {date} is before release {release} was delivered ({delivered_on})"),
        ),
        WorkflowRefusal::ItemsBeyond { items } => pick(
            format!("提供された（契約にある）項目を超えています: {}", items.join(",")),
            format!("items beyond what was delivered (or contracted): {}", items.join(",")),
        ),
        WorkflowRefusal::ItemInvalid => pick(
            "項目 (--items) は TABLE または TABLE.COLUMN で指定してください".into(),
            "give items (--items) as TABLE or TABLE.COLUMN".into(),
        ),
        WorkflowRefusal::BookEntryUnknown { entry } => pick(
            format!("帳簿に記載番号 {entry} の記載はありません（kiban books の entry:N）"),
            format!("the books hold no entry {entry} (entry:N in kiban books)"),
        ),
        WorkflowRefusal::BookEntryCorrectedMeanwhile { entry } => pick(
            format!(
                "記載 {entry} は同時に別の担当者が訂正しました。kiban books で最新の記載を確認し、訂正し直してください"
            ),
            format!(
                "entry {entry} was corrected by another actor at the same moment: list the books (kiban books) and correct the entry now in force"
            ),
        ),
        WorkflowRefusal::CorrectionFieldNotApplicable { entry, kind, field } => pick(
            format!(
                "記載 {entry}（{}）に{}はありません。種別・相手方は訂正できません",
                kind_ja(kind),
                field_words(*field, lang)
            ),
            format!(
                "entry {entry} ({kind}) has no {}; the kind and the counter-party are never corrected",
                field_words(*field, lang)
            ),
        ),
        other => pick(
            format!("受け付けられません: {other:?}"),
            format!("refused: {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_books_refusal_is_worded_in_both_languages_with_its_code() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default();
        let s = || "X".to_string();
        let all = vec![
            WorkflowRefusal::ProducerExists { producer: s() },
            WorkflowRefusal::ProducerUnknown { producer: s() },
            WorkflowRefusal::OwnProducerMissing,
            WorkflowRefusal::OwnProducerConflict { producer: s() },
            WorkflowRefusal::TransferContractExists { contract: s() },
            WorkflowRefusal::TransferContractUnknown { contract: s() },
            WorkflowRefusal::TransferContractMismatch {
                contract: s(),
                producer: s(),
                direction: "out".into(),
            },
            WorkflowRefusal::TransferBeforeContract {
                contract: s(),
                date: d,
                signed_on: d,
            },
            WorkflowRefusal::ReleaseNotDeliveredTo {
                release: s(),
                user: s(),
            },
            WorkflowRefusal::ReportBeforeDelivery {
                release: s(),
                date: d,
                delivered_on: d,
            },
            WorkflowRefusal::ItemsBeyond { items: vec![s()] },
            WorkflowRefusal::ItemInvalid,
            WorkflowRefusal::BookEntryUnknown { entry: 7 },
            WorkflowRefusal::BookEntryCorrectedMeanwhile { entry: 7 },
            WorkflowRefusal::CorrectionFieldNotApplicable {
                entry: 7,
                kind: "delivery".into(),
                field: Field::OnwardName,
            },
        ];
        for r in &all {
            for lang in [Lang::Ja, Lang::En] {
                let full =
                    crate::refusals::render(&kiban_pipeline::Refusal::Workflow(r.clone()), lang);
                assert!(!full.starts_with("受け付けられません: "), "{full}");
                assert!(!full.starts_with("refused: "), "{full}");
                assert!(
                    full.ends_with(&format!("[workflow.{}]", r.code())),
                    "{full}"
                );
            }
        }
        for f in [
            Field::ProducerId,
            Field::Method,
            Field::OnwardName,
            Field::OnwardAddress,
            Field::Item,
            Field::CorrectionReason,
        ] {
            let w = field_words(f, Lang::En);
            assert!(w != "field", "{f:?}");
        }
    }
}
