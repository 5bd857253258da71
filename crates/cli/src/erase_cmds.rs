//! The erasure duty (R-REC-5): `kiban erase release ID` and `kiban retention run`: argument
//! structs and presentation. The work is done by `kiban-pipeline` (`erase_release`,
//! `retention`).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_pipeline::release_erasure::ReleaseErasure;
use kiban_pipeline::retention::RetentionReport;

use crate::commands::{opt_date, print_json};
use crate::ui::{Lang, row, table};

#[derive(Subcommand, Debug)]
pub enum EraseCmd {
    /// Erase a release's key and the producer's copy of its package, with the erasure record.
    Release(EraseReleaseArgs),
}

#[derive(Args, Debug)]
pub struct EraseReleaseArgs {
    /// The release ID (rel-YYYYMMDD-…, as `kiban release` printed it).
    pub release_id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum RetentionCmd {
    /// Apply the retention policy ([retention] in kiban.toml: release copies, handlers'
    /// data after their contract end), then purge records and stored receipt copies older
    /// than the retention period (R-REC-8).
    Run(RetentionRunArgs),
}

#[derive(Args, Debug)]
pub struct RetentionRunArgs {
    /// Retention period of the statutory records in years (at least 3, the legal minimum).
    #[arg(long, default_value_t = 3)]
    pub years: u32,
    /// Run as of this date (default: today).
    #[arg(long)]
    pub today: Option<String>,
    /// List what would be erased and purged; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// `kiban erase release ID`.
pub async fn run_erase(ws: &Workspace, cmd: EraseCmd, lang: Lang) -> Result<ExitCode> {
    let EraseCmd::Release(a) = cmd;
    let r = ws.erase_release(&a.release_id, today()).await?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!(
        "{}",
        table(
            lang.t("リリースを消去しました", "release erased"),
            &erasure_rows(&r, lang)
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn erasure_rows(r: &ReleaseErasure, lang: Lang) -> Vec<(String, String)> {
    let yes_no = |b: bool| {
        lang.t(
            if b { "はい" } else { "いいえ" },
            if b { "yes" } else { "no" },
        )
    };
    let mut rows = vec![
        row(lang, "リリース", "release", r.release_id.clone()),
        row(lang, "消去日", "erased on", r.erased_date.to_string()),
        row(
            lang,
            "鍵の消去",
            "key destroyed",
            yes_no(r.key_destroyed).to_string(),
        ),
        row(
            lang,
            "消去したファイル",
            "files erased",
            r.files_deleted.to_string(),
        ),
    ];
    if r.copy_missing {
        rows.push(row(
            lang,
            "控え",
            "copy",
            lang.t("すでにありませんでした", "already gone (nothing to delete)"),
        ));
    }
    if r.others_left > 0 {
        rows.push(row(
            lang,
            "残したもの（kiban 以外）",
            "left in place (not kiban's)",
            format!("{} ({})", r.others_left, r.out_dir),
        ));
    }
    rows.push(row(
        lang,
        "消去の記録",
        "erasure record",
        r.erasure_record.clone(),
    ));
    rows
}

/// `kiban retention run`.
pub async fn run_retention(ws: &Workspace, cmd: RetentionCmd, lang: Lang) -> Result<ExitCode> {
    let RetentionCmd::Run(a) = cmd;
    let on = opt_date(&a.today, "--today")?.unwrap_or_else(today);
    let r = ws.retention(on, a.years, a.dry_run).await?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", retention_text(&r, lang));
    Ok(ExitCode::SUCCESS)
}

fn retention_text(r: &RetentionReport, lang: Lang) -> String {
    let mut out = String::new();
    let days = |d: Option<u32>| match d {
        Some(d) => format!("{d} {}", lang.t("日", "days")),
        None => lang
            .t(
                "設定なし（自動では消去しません）",
                "not set (nothing erased automatically)",
            )
            .to_string(),
    };
    out.push_str(&table(
        lang.t(
            "保存方針 (kiban.toml [retention])",
            "retention policy (kiban.toml [retention])",
        ),
        &[
            row(
                lang,
                "提供データの控えと鍵",
                "release copies and keys",
                days(r.policy.release_copies_days),
            ),
            row(
                lang,
                "契約終了後の医療情報取扱事業者のデータ",
                "handler data after contract end",
                days(r.policy.handler_data_after_contract_end_days),
            ),
        ],
    ));
    let (erased_ja, erased_en) = if r.dry_run {
        ("消去予定", "would erase")
    } else {
        ("消去済み", "erased")
    };
    for rel in &r.releases {
        let status = match (&rel.erased, &rel.refused) {
            (_, Some(r)) => format!(
                "{}: {}",
                lang.t("拒否", "refused"),
                crate::refusals::render(r, lang)
            ),
            (Some(e), _) => format!(
                "{} ({} {})",
                lang.t(erased_ja, erased_en),
                e.files_deleted,
                lang.t("ファイル", "files")
            ),
            (None, None) => lang.t(erased_ja, erased_en).to_string(),
        };
        out.push_str(&table(
            &format!("{} {}", lang.t("リリース", "release"), rel.release_id),
            &[
                row(lang, "作成日", "made on", rel.created_on.to_string()),
                row(lang, "保存期限", "kept until", rel.kept_until.to_string()),
                row(lang, "状態", "status", status),
            ],
        ));
    }
    for h in &r.handlers {
        let mut rows = vec![
            row(
                lang,
                "契約終了日",
                "contract end",
                h.contract_end.to_string(),
            ),
            row(lang, "保存期限", "kept until", h.kept_until.to_string()),
            row(
                lang,
                if r.dry_run {
                    "消去予定の登録"
                } else {
                    "消去した登録"
                },
                if r.dry_run {
                    "registrations to erase"
                } else {
                    "registrations erased"
                },
                h.registrations.to_string(),
            ),
        ];
        if !r.dry_run {
            rows.push(row(
                lang,
                "本人情報（暗号鍵の破棄）",
                "identities crypto-shredded",
                h.identities_shredded.to_string(),
            ));
            rows.push(row(
                lang,
                "削除した診療データ（行）",
                "clinical rows removed",
                h.facts_removed.to_string(),
            ));
            rows.push(row(
                lang,
                "消去の記録",
                "erasure records",
                h.erasure_records.to_string(),
            ));
        }
        out.push_str(&table(
            &format!(
                "{} {}",
                lang.t("医療情報取扱事業者", "handler"),
                h.handler_code
            ),
            &rows,
        ));
    }
    let rows = vec![
        row(lang, "基準日", "cutoff", r.records.cutoff.to_string()),
        row(
            lang,
            "受領の記録",
            "receipt records",
            r.records.receipts.to_string(),
        ),
        row(
            lang,
            "消去の記録",
            "erasure records",
            r.records.erasures.to_string(),
        ),
        row(
            lang,
            "提供の記録",
            "provision records",
            r.records.provisions.to_string(),
        ),
        row(
            lang,
            "受付書の控え",
            "receipt copies",
            r.receipt_copies_deleted.to_string(),
        ),
    ];
    out.push_str(&table(
        if r.dry_run {
            lang.t(
                "保存期間を過ぎた記録（試行：何も変更していません）",
                "records past retention (dry run: nothing changed)",
            )
        } else {
            lang.t(
                "保存期間を過ぎた記録を削除しました",
                "records past retention purged",
            )
        },
        &rows,
    ));
    out.push_str(&workflow_text(r, lang));
    out
}

/// The workflow records of the run (requests, users, complaints, inquiries, outsourcing,
/// book entries, transfer contracts, producers): due or purged, and held past their period.
fn workflow_text(r: &RetentionReport, lang: Lang) -> String {
    let plan = &r.workflow.plan;
    if plan.due.is_empty() && plan.held.is_empty() {
        return String::new();
    }
    let mut counts: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for d in &plan.due {
        counts.entry(d.kind.purge_kind()).or_default().0 += 1;
    }
    for d in &plan.held {
        counts.entry(d.kind.purge_kind()).or_default().1 += 1;
    }
    let rows: Vec<_> = counts
        .iter()
        .map(|(kind, (due, held))| {
            let (ja, en) = workflow_kind_words(kind);
            row(
                lang,
                ja,
                en,
                lang.t(
                    &format!("{due} 件（保持中 {held} 件）"),
                    &format!("{due} ({held} held)"),
                )
                .to_string(),
            )
        })
        .collect();
    table(
        if r.dry_run {
            lang.t(
                "保存期間を過ぎた業務記録（試行：保持中は提供物がまだ保管されているもの）",
                "workflow records past retention (dry run; held: a release under them is still kept)",
            )
        } else {
            lang.t(
                "保存期間を過ぎた業務記録を削除しました（保持中は残しています）",
                "workflow records past retention purged (held ones kept)",
            )
        },
        &rows,
    )
}

fn workflow_kind_words(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "workflow_request" => (
            "提供依頼（審査・契約を含む）",
            "requests (with reviews, contracts)",
        ),
        "workflow_user" => ("利用者", "users"),
        "complaint" => ("苦情", "complaints"),
        "inquiry" => ("問い合わせ", "inquiries"),
        "outsourcing" => ("委託契約", "outsourcing contracts"),
        "book_entry" => ("帳簿の記載", "book entries"),
        "transfer_contract" => ("事業者間の契約", "inter-producer contracts"),
        "producer" => ("他の認定事業者", "other producers"),
        _ => ("その他", "other"),
    }
}
