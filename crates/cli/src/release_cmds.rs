//! A release under a request (issue 15, items 4 and 5): `kiban release approve`, `kiban
//! release list` and the recipient's `kiban package verify`: argument structs and
//! presentation. The work is done by `kiban-pipeline` (`release_approval`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_pipeline::release_approval::{
    ApprovalReport, ReleaseRow, VerifyOptions, VerifyReport, verify_package,
};

use crate::commands::print_json;
use crate::ui::{Bars, Lang, grid, row, table};

#[derive(Subcommand, Debug)]
pub enum ReleaseCmd {
    /// Approve a release prepared under a request (a different actor from the one who
    /// prepared it): the gate again as of today, then the package encrypted to the user's
    /// age key with the signed manifest, written to the --out given at preparation.
    Approve(ApproveArgs),
    /// Every release with its status (written, awaiting-approval, approved, erased).
    List(ListArgs),
}

impl ReleaseCmd {
    /// Whether the command only reads the workspace.
    pub fn reads_only(&self) -> bool {
        matches!(self, ReleaseCmd::List(_))
    }
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The release ID printed by the preparation (rel-YYYYMMDD-…).
    pub release_id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum PackageCmd {
    /// The recipient's check of a delivered package: the producer's signature, the hash of
    /// the encrypted file, decryption with your age identity, the hash of every file.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The delivery folder (package.tar.age, manifest.json, manifest.sig, producer.pub).
    pub dir: PathBuf,
    /// Your age identity file (AGE-SECRET-KEY-1…).
    #[arg(long)]
    pub identity: PathBuf,
    /// The producer's public key obtained apart from the package (default: DIR/producer.pub).
    #[arg(long)]
    pub producer_key: Option<PathBuf>,
    /// Where to extract the files (empty or absent).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

/// `kiban release approve|list` on an open workspace.
pub async fn run(ws: &Workspace, cmd: ReleaseCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        ReleaseCmd::Approve(a) => {
            let bars = Bars::new(a.json, lang);
            let r = ws.approve_release(&a.release_id, &bars).await?;
            if a.json {
                print_json(&r)?;
            } else {
                print!("{}", approval_text(&r, lang));
            }
        }
        ReleaseCmd::List(a) => {
            let rows = ws.list_releases().await?;
            if a.json {
                print_json(&rows)?;
            } else {
                print!("{}", list_text(&rows, lang));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban package verify`: needs no workspace.
pub fn run_package(cmd: PackageCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        PackageCmd::Verify(a) => {
            let r = verify_package(&VerifyOptions {
                dir: a.dir,
                identity: a.identity,
                producer_key: a.producer_key,
                out: a.out,
            })?;
            if a.json {
                print_json(&r)?;
            } else {
                print!("{}", verify_text(&r, lang));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn approval_text(r: &ApprovalReport, lang: Lang) -> String {
    let rows = vec![
        row(lang, "提供ID", "release", r.release_id.clone()),
        row(lang, "提供依頼", "request", r.request.clone()),
        row(lang, "利用者", "user", r.user.clone()),
        row(lang, "加工の種類", "level", r.level.clone()),
        row(lang, "作成者", "prepared by", r.prepared_by.clone()),
        row(lang, "承認者", "approved by", r.approved_by.clone()),
        row(lang, "承認日", "approved on", r.approved_on.to_string()),
        row(lang, "人数", "persons", r.persons.to_string()),
        row(
            lang,
            "承認時のオプトアウト等で除外",
            "excluded by gate at approval",
            r.excluded_by_gate.values().sum::<u64>().to_string(),
        ),
        row(lang, "出力先", "folder", r.out.display().to_string()),
        row(lang, "ファイル", "files", r.files.join(", ")),
        row(
            lang,
            "暗号化先（利用者の鍵）",
            "encrypted to (user's key)",
            r.recipient.clone(),
        ),
        row(
            lang,
            "作成者の公開鍵",
            "producer key",
            r.producer_key.clone(),
        ),
    ];
    table(
        lang.t(
            "提供データを承認し、暗号化・署名しました",
            "release approved, encrypted and signed",
        ),
        &rows,
    )
}

fn status_word(status: &str, erased: bool, lang: Lang) -> String {
    if erased {
        return lang.t("消去済み", "erased").to_string();
    }
    match status {
        "awaiting-approval" => lang.t("承認待ち", "awaiting approval").to_string(),
        "approved" => lang.t("承認済み", "approved").to_string(),
        "written" => lang.t("内部評価用", "internal evaluation").to_string(),
        other => other.to_string(),
    }
}

fn list_text(rows: &[ReleaseRow], lang: Lang) -> String {
    if rows.is_empty() {
        return format!(
            "{}\n",
            lang.t("提供データはありません", "no releases on record")
        );
    }
    let headers = if lang == Lang::Ja {
        [
            "提供ID",
            "状態",
            "加工",
            "提供依頼",
            "人数",
            "作成者",
            "承認者",
            "作成日時",
        ]
    } else {
        [
            "release", "status", "level", "request", "persons", "prepared", "approved", "created",
        ]
    };
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.release_id.clone(),
                format!(
                    "{} ({})",
                    status_word(&r.status, r.erased_date.is_some(), lang),
                    r.status
                ),
                r.level.clone(),
                r.request.clone().unwrap_or_else(|| "-".into()),
                r.persons.to_string(),
                r.prepared_by.clone().unwrap_or_else(|| "-".into()),
                r.approved_by.clone().unwrap_or_else(|| "-".into()),
                r.created_at.clone(),
            ]
        })
        .collect();
    grid(&headers, &body)
}

fn verify_text(r: &VerifyReport, lang: Lang) -> String {
    let mut rows = vec![
        row(lang, "提供ID", "release", r.release_id.clone()),
        row(lang, "提供依頼", "request", r.request.clone()),
        row(lang, "契約", "contract", r.contract.clone()),
        row(lang, "加工の種類", "level", r.level.clone()),
        row(
            lang,
            "作成者の公開鍵",
            "producer key",
            r.producer_key.clone(),
        ),
        row(lang, "展開先", "extracted to", r.out.display().to_string()),
        row(lang, "ファイル数", "files", r.files.len().to_string()),
    ];
    rows.push(row(
        lang,
        "確認",
        "checks",
        lang.t(
            "署名・暗号ファイルのハッシュ・復号・全ファイルのハッシュ すべて一致",
            "signature, encrypted file hash, decryption, every file's hash: all OK",
        ),
    ));
    table(
        lang.t("提供データを検証しました", "package verified"),
        &rows,
    )
}
