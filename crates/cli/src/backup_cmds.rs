//! `kiban backup --out DIR` and `kiban restore --from DIR --to NEWDIR (--live WS |
//! --live-lost)` (R-SEC-5 business continuity; issue 17, item 7). The work is
//! `kiban_pipeline::backup`'s; this module parses and presents.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use kiban_pipeline::backup::{Live, restore};

use crate::commands::{open, print_json};
use crate::ui::{Lang, row, table};

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// A new folder for the backup: data/ (database, lake, audit log, releases…), keys/ (store
    /// it apart from the rest), manifest.json (SHA-256 of every file) and its signature.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("since").required(true).args(["live", "live_lost"])))]
pub struct RestoreArgs {
    /// The backup folder (written by kiban backup).
    #[arg(long)]
    pub from: PathBuf,
    /// Where the backup's keys/ folder is kept, when apart from the backup (default:
    /// FROM/keys).
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// A new folder for the restored workspace.
    #[arg(long)]
    pub to: PathBuf,
    /// The workspace the backup was taken of: every opt-out event it holds since the backup
    /// is carried over and every deletion re-applied, so no deletion is undone.
    #[arg(long)]
    pub live: Option<PathBuf>,
    /// The live workspace is lost: nothing can be re-applied; re-enter the requests received
    /// since the backup's date from the desk's receipts before using the workspace.
    #[arg(long)]
    pub live_lost: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn run_backup(
    workspace: &Path,
    actor: &Option<String>,
    a: BackupArgs,
    lang: Lang,
) -> Result<ExitCode> {
    let ws = open(workspace, actor).await?;
    let r = ws.backup(&a.out).await?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = vec![
        row(lang, "出力先", "folder", r.out.display().to_string()),
        row(lang, "ファイル", "files", r.files.to_string()),
        row(lang, "バイト", "bytes", r.bytes.to_string()),
        row(
            lang,
            "鍵ファイル（keys/）",
            "key files (keys/)",
            r.key_files.to_string(),
        ),
        row(
            lang,
            "監査ログのイベント",
            "audit events",
            r.audit_events.to_string(),
        ),
        row(
            lang,
            "オプトアウトの記録",
            "opt-out events",
            r.consent_events.to_string(),
        ),
    ];
    print!(
        "{}",
        table(
            lang.t("バックアップを作成しました", "backup written"),
            &rows
        )
    );
    println!(
        "{}",
        lang.t(
            "keys/ はデータとは別の場所（別の媒体）に保管してください。削除の求めの後は古い鍵のバックアップを廃棄してください",
            "store keys/ apart from the data (another medium); after a deletion request, destroy older key backups"
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run_restore(actor: &Option<String>, a: RestoreArgs, lang: Lang) -> Result<ExitCode> {
    let live = match a.live {
        Some(p) => Live::Workspace(p),
        None => Live::Lost,
    };
    let actor = actor
        .clone()
        .or_else(|| std::env::var("KIBAN_ACTOR").ok())
        .unwrap_or_else(|| "operator".into());
    let r = restore(&a.from, a.keys.as_deref(), &a.to, &live, &actor).await?;
    if a.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let carried: u64 = r.events_carried.values().sum();
    let rows = vec![
        row(lang, "復元先", "restored to", r.to.display().to_string()),
        row(
            lang,
            "バックアップの日時",
            "backup taken",
            r.backup_created_at.clone(),
        ),
        row(
            lang,
            "ファイル（SHA-256 確認済み）",
            "files (SHA-256 checked)",
            r.files.to_string(),
        ),
        row(
            lang,
            "監査ログ（チェックポイントと照合）",
            "audit log (checked against its checkpoint)",
            r.audit_events.to_string(),
        ),
        row(
            lang,
            "引き継いだオプトアウトの記録",
            "opt-out events carried over",
            carried.to_string(),
        ),
        row(
            lang,
            "削除の求めにより消去した登録",
            "registrations erased (deletion requests)",
            r.registrations_erased.to_string(),
        ),
        row(
            lang,
            "取得元で消去済みの登録",
            "registrations erased as in the live workspace",
            r.registrations_erased_as_live.to_string(),
        ),
        row(
            lang,
            "消去したリリース",
            "releases erased",
            r.releases_erased.to_string(),
        ),
        row(
            lang,
            "監査ログの検証",
            "audit verify",
            if r.audit_intact { "OK" } else { "NG" },
        ),
    ];
    print!(
        "{}",
        table(
            lang.t("ワークスペースを復元しました", "workspace restored"),
            &rows
        )
    );
    if r.live_lost {
        eprintln!(
            "kiban: {}: {}",
            lang.t("警告", "warning"),
            match lang {
                Lang::Ja => format!(
                    "取得元のワークスペースがないため、{} 以降の削除・停止の求めは反映されていません。受付票から入力し直すまで使用しないでください",
                    r.backup_created_at
                ),
                Lang::En => format!(
                    "without the live workspace, deletion and stop requests since {} are not applied; re-enter them from the desk's receipts before using this workspace",
                    r.backup_created_at
                ),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
