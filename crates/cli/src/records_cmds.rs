//! `kiban records list receipt|provision|erasure [--from DATE] [--to DATE] [--json]`: the
//! statutory records shown without SQL (R-REC-8; issue 14 item 3). The table has Japanese
//! headers (English with `--lang en`); `--json` prints the rows of
//! `kiban_pipeline::records` as an array with their stable field names (`[]` when none).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use kiban_pipeline::Workspace;
use kiban_pipeline::files::escape_control;
use kiban_pipeline::records::RecordRows;
use kiban_records::{Items, RecordKind};

use crate::ui::{Lang, grid};

#[derive(Subcommand, Debug)]
pub enum RecordsCmd {
    /// List the receipt (R-REC-3), provision (R-REC-1) or erasure (R-REC-5) records, ordered
    /// by their date; --from/--to (inclusive) on the date received, provided or erased.
    List(RecordsListArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum KindArg {
    /// 受領の記録: the producer's receipt records, with the handler's declaration.
    Receipt,
    /// 提供の記録: the handler's provision records.
    Provision,
    /// 消去の記録: erasure records.
    Erasure,
}

impl From<KindArg> for RecordKind {
    fn from(k: KindArg) -> RecordKind {
        match k {
            KindArg::Receipt => RecordKind::Receipt,
            KindArg::Provision => RecordKind::Provision,
            KindArg::Erasure => RecordKind::Erasure,
        }
    }
}

#[derive(Args, Debug)]
pub struct RecordsListArgs {
    #[arg(value_enum)]
    pub kind: KindArg,
    /// First date listed (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Last date listed (inclusive), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub async fn run_records(ws: &Workspace, cmd: RecordsCmd, lang: Lang) -> Result<ExitCode> {
    let RecordsCmd::List(a) = cmd;
    let from = crate::commands::opt_date(&a.from, "--from")?;
    let to = crate::commands::opt_date(&a.to, "--to")?;
    let rows = ws.list_records(a.kind.into(), from, to).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", records_table(&rows, lang));
    }
    Ok(ExitCode::SUCCESS)
}

/// `person=3, visit_occurrence=5`.
fn items_text(items: &Items) -> String {
    items
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cell: control characters escaped so that one record stays on one line.
fn cell(s: &str) -> String {
    escape_control(s).into_owned()
}

fn opt(s: &Option<impl ToString>) -> String {
    s.as_ref()
        .map(|v| cell(&v.to_string()))
        .unwrap_or_else(|| "-".into())
}

/// The first 8 hex digits of a record ID (`--json` gives it whole).
fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

fn records_table(rows: &RecordRows, lang: Lang) -> String {
    let (title, headers, body): (&str, Vec<&str>, Vec<Vec<String>>) = match rows {
        RecordRows::Receipt(v) => (
            lang.t("受領の記録 (R-REC-3)", "receipt records (R-REC-3)"),
            vec![
                lang.t("受領日", "received"),
                lang.t("取扱事業者", "handler"),
                lang.t("名称", "name"),
                lang.t("住所", "address"),
                lang.t("代表者", "representative"),
                lang.t("取得の経緯", "acquisition"),
                lang.t("通知版", "notice"),
                lang.t("申告の確認", "declaration"),
                lang.t("公表", "published"),
                lang.t("患者数", "patients"),
                lang.t("項目", "items"),
                lang.t("記録ID", "record"),
            ],
            v.iter()
                .map(|r| {
                    let check = match r.declaration_check.as_deref() {
                        Some("first") => lang.t("初回", "first").to_string(),
                        Some("changed") => lang.t("変更あり", "changed").to_string(),
                        Some("unchanged") => format!(
                            "{} ({} {})",
                            lang.t("変更なし", "unchanged"),
                            lang.t("確認日", "since"),
                            opt(&r.declaration_since)
                        ),
                        Some(other) => cell(other),
                        None => "-".into(),
                    };
                    vec![
                        r.received_date.to_string(),
                        cell(&r.handler_code),
                        cell(&r.handler_name),
                        cell(&r.handler_address),
                        opt(&r.handler_representative),
                        opt(&r.acquisition),
                        opt(&r.notice_version),
                        check,
                        if r.filing_published {
                            lang.t("済", "yes")
                        } else {
                            lang.t("未", "no")
                        }
                        .to_string(),
                        r.patient_count.to_string(),
                        items_text(&r.items),
                        short_id(&r.record_id),
                    ]
                })
                .collect(),
        ),
        RecordRows::Provision(v) => (
            lang.t("提供の記録 (R-REC-1)", "provision records (R-REC-1)"),
            vec![
                lang.t("提供日", "provided"),
                lang.t("最終提供日", "last provided"),
                lang.t("取扱事業者", "handler"),
                lang.t("提供先", "producer"),
                lang.t("提供先の住所", "producer address"),
                lang.t("患者数", "patients"),
                lang.t("項目", "items"),
                lang.t("記録ID", "record"),
            ],
            v.iter()
                .map(|r| {
                    vec![
                        r.provided_date.to_string(),
                        r.last_provided_date.to_string(),
                        cell(&r.handler_code),
                        cell(&r.producer_name),
                        cell(&r.producer_address),
                        r.patient_count.to_string(),
                        items_text(&r.items),
                        short_id(&r.record_id),
                    ]
                })
                .collect(),
        ),
        RecordRows::Erasure(v) => (
            lang.t("消去の記録 (R-REC-5)", "erasure records (R-REC-5)"),
            vec![
                lang.t("消去日", "erased"),
                lang.t("取扱事業者", "handler"),
                lang.t("理由", "reason"),
                lang.t("項目", "items"),
                lang.t("記録ID", "record"),
            ],
            v.iter()
                .map(|r| {
                    let reason = match r.reason.as_str() {
                        "deletion_request" => lang.t("削除の求め", "deletion request"),
                        "retention" => lang.t("保存期間経過", "retention"),
                        other => other,
                    };
                    // A deletion request's scope and receipt number (issue 14, item 4).
                    let reason = match (r.request_scope.as_deref(), &r.request_receipt) {
                        (Some(scope), receipt) => format!(
                            "{reason} ({}{})",
                            match scope {
                                "person" => lang.t("範囲: 本人の全登録", "scope: person"),
                                "handler" => lang.t("範囲: 当該事業者", "scope: handler"),
                                other => other,
                            },
                            receipt
                                .as_deref()
                                .map(|n| format!(", {n}"))
                                .unwrap_or_default()
                        ),
                        (None, _) => reason.to_string(),
                    };
                    vec![
                        r.erased_date.to_string(),
                        opt(&r.handler_code),
                        cell(&reason),
                        items_text(&r.items),
                        short_id(&r.record_id),
                    ]
                })
                .collect(),
        ),
    };
    let count = match lang {
        Lang::Ja => format!("{} 件", rows.len()),
        Lang::En => format!("{} records", rows.len()),
    };
    format!("{title}: {count}\n{}", grid(&headers, &body))
}
