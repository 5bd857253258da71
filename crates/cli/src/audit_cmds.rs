//! `kiban audit verify [--checkpoint FILE] [--json]` and `kiban audit checkpoint --export
//! FILE [--json]` (R-SEC-2; issue 17, item 3). Verify checks the hash chain, then every
//! signed checkpoint the control plane holds, then the exported one given, then that every
//! ingest batch, release, erasure record and opt-out event of the control plane has its audit
//! event (`kiban_pipeline::audit_check`); exit 1 naming each finding. In a folder without a
//! workspace (a copy of `audit/`) it checks the chain, and the exported checkpoint against it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiban_pipeline::PipelineError;
use kiban_pipeline::audit_check::{AuditReport, CheckpointSource, ControlObject, Finding};
use kiban_records::{AuditError, Break, Checkpoint, CheckpointFault, VerifyReport};

use crate::commands::{open, open_read, print_json};
use crate::ui::Lang;

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Re-check the hash chain, the signed checkpoints (the control plane's and, with
    /// --checkpoint, one exported earlier) and that every ingest batch, release, erasure and
    /// opt-out event has its audit event; exit 1 naming what is wrong.
    Verify(VerifyArgs),
    /// Sign a checkpoint of the audit log now and export it (JSON with the public key) for
    /// off-site keeping.
    Checkpoint(CheckpointArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// A checkpoint exported earlier with `kiban audit checkpoint --export`.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// Where to write the checkpoint (a new file; keep it away from the workspace).
    #[arg(long)]
    export: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub async fn run(
    cmd: AuditCmd,
    workspace: &Path,
    actor: &Option<String>,
    lang: Lang,
) -> Result<ExitCode> {
    match cmd {
        AuditCmd::Verify(a) => verify(a, workspace, actor, lang).await,
        AuditCmd::Checkpoint(a) => {
            let ws = open(workspace, actor).await?;
            let cp = ws.export_checkpoint(&a.export).await?;
            if a.json {
                print_json(&cp)?;
            } else {
                println!(
                    "{}: {} {} → {}",
                    lang.t(
                        "署名付きチェックポイントを書き出しました",
                        "signed checkpoint exported"
                    ),
                    cp.events,
                    lang.t("件", "events"),
                    a.export.display()
                );
                println!("  hash {}", cp.hash);
                println!("  {} {}", lang.t("公開鍵", "public key"), cp.public_key);
                println!(
                    "{}",
                    lang.t(
                        "ワークスペースとは別の場所に保管し、kiban audit verify --checkpoint で照合してください",
                        "keep it away from the workspace; check the log against it with kiban audit verify --checkpoint"
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn verify(
    a: VerifyArgs,
    workspace: &Path,
    actor: &Option<String>,
    lang: Lang,
) -> Result<ExitCode> {
    let report = if workspace.join("kiban.toml").exists() {
        match open_read(workspace, actor).await {
            Ok(ws) => ws.verify_audit(a.checkpoint.as_deref()).await?,
            // The log's tail is broken (a forged event beyond HEAD, a removed tail): the
            // workspace does not open, and the break is the finding.
            Err(e) => match e.downcast::<PipelineError>() {
                Ok(PipelineError::Audit(AuditError::Broken(b))) => broken_only(*b),
                Ok(other) => return Err(other.into()),
                Err(e) => return Err(e),
            },
        }
    } else {
        folder_only(&workspace.join("audit"), a.checkpoint.as_deref())?
    };
    show(&report, a.json, lang)?;
    Ok(if report.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn broken_only(b: Break) -> AuditReport {
    AuditReport {
        log: Err(b),
        public_key: None,
        checkpoints: 0,
        latest_checkpoint: None,
        exported: None,
        objects_checked: 0,
        findings: Vec::new(),
    }
}

/// A copy of `audit/` without its workspace: the chain, and an exported checkpoint against
/// it under the checkpoint's own key and workspace (nothing to compare them with here).
fn folder_only(dir: &Path, exported: Option<&Path>) -> Result<AuditReport> {
    let cp = match exported {
        Some(p) => {
            let bytes = std::fs::read(p).ok();
            Some(
                bytes
                    .as_deref()
                    .and_then(Checkpoint::from_json)
                    .ok_or_else(|| {
                        PipelineError::from(kiban_pipeline::Refusal::CheckpointUnreadable {
                            path: p.to_path_buf(),
                        })
                    })?,
            )
        }
        None => None,
    };
    let at = cp.iter().map(|c| c.events).collect();
    let log = match kiban_records::verify_each(dir, &at, &mut |_| {}) {
        Ok(l) => l,
        Err(AuditError::Broken(b)) => return Ok(broken_only(*b)),
        Err(e) => return Err(e.into()),
    };
    let mut findings = Vec::new();
    if let Some(cp) = &cp {
        for fault in kiban_records::checkpoint::check(cp, &log, &cp.public_key, &cp.workspace) {
            findings.push(Finding::Checkpoint {
                source: CheckpointSource::Exported,
                events: cp.events,
                fault,
            });
        }
    }
    Ok(AuditReport {
        log: Ok(log),
        public_key: None,
        checkpoints: 0,
        latest_checkpoint: None,
        exported: cp.map(|c| c.events),
        objects_checked: 0,
        findings,
    })
}

fn show(r: &AuditReport, json: bool, lang: Lang) -> Result<()> {
    if json {
        let (events, segments, head) = match &r.log {
            Ok(l) => (l.events, l.segments, Some(&l.head)),
            Err(_) => (0, 0, None),
        };
        print_json(&serde_json::json!({
            "ok": r.intact(),
            "events": events,
            "segments": segments,
            "head": head,
            "break": r.log.as_ref().err().map(|b| b.to_string()),
            "break_kind": r.log.as_ref().err().map(|b| break_code(b)),
            "public_key": r.public_key,
            "checkpoints": r.checkpoints,
            "latest_checkpoint": r.latest_checkpoint,
            "exported_checkpoint": r.exported,
            "objects_checked": r.objects_checked,
            "findings": r.findings.iter().map(finding_json).collect::<Vec<_>>(),
        }))?;
        return Ok(());
    }
    match &r.log {
        Err(b) => {
            eprintln!(
                "{}: {b}",
                lang.t("監査ログの改ざんを検出しました", "audit log is broken")
            );
            return Ok(());
        }
        Ok(l) if r.findings.is_empty() => say_intact(r, l, lang),
        Ok(_) => {
            eprintln!(
                "{} ({} {}):",
                lang.t(
                    "監査ログの改ざんまたは欠落を検出しました",
                    "the audit log was altered or lost events"
                ),
                r.findings.len(),
                lang.t("件", "findings")
            );
            const SHOWN: usize = 20;
            for f in r.findings.iter().take(SHOWN) {
                eprintln!("  - {}", words(f, lang));
            }
            if r.findings.len() > SHOWN {
                eprintln!(
                    "  … {} {}",
                    r.findings.len() - SHOWN,
                    lang.t("件省略（--json で全件）", "more (all with --json)")
                );
            }
        }
    }
    Ok(())
}

fn say_intact(r: &AuditReport, l: &VerifyReport, lang: Lang) {
    println!(
        "{}: {} {}",
        lang.t("監査ログは改ざんされていません", "audit log intact"),
        l.events,
        lang.t("件", "events")
    );
    if r.checkpoints > 0 || r.objects_checked > 0 {
        println!(
            "  {} {} / {} {}",
            lang.t("署名付きチェックポイント", "signed checkpoints"),
            r.checkpoints,
            lang.t("照合した管理データ", "control-plane objects cross-checked"),
            r.objects_checked
        );
    }
    if let Some(n) = r.exported {
        println!(
            "  {} {n}",
            lang.t(
                "書き出したチェックポイントと一致: 件数",
                "matches the exported checkpoint at event"
            )
        );
    }
}

fn break_code(b: &Break) -> &'static str {
    use kiban_records::BreakKind as K;
    match b.kind {
        K::HashMismatch => "hash_mismatch",
        K::BrokenChain => "broken_chain",
        K::SequenceGap { .. } => "sequence_gap",
        K::Truncated => "truncated",
        K::Unparsable => "unparsable",
        K::NotCanonical => "not_canonical",
        K::MissingSegment => "missing_segment",
        K::HeadMismatch => "head_mismatch",
        K::HeadUnparsable => "head_unparsable",
        K::UnclaimedTail => "unclaimed_tail",
    }
}

fn finding_json(f: &Finding) -> serde_json::Value {
    match f {
        Finding::Checkpoint {
            source,
            events,
            fault,
        } => serde_json::json!({
            "kind": "checkpoint",
            "source": source.code(),
            "events": events,
            "fault": fault.code(),
            "log_events": match fault {
                CheckpointFault::BeyondLog { log_events } => Some(*log_events),
                _ => None,
            },
        }),
        Finding::CheckpointsMissing { seq, latest } => serde_json::json!({
            "kind": "checkpoints_missing",
            "seq": seq,
            "latest": latest,
        }),
        Finding::MissingEvent { object, id, time } => {
            let mut v = serde_json::json!({
                "kind": "missing_event",
                "object": object.code(),
                "id": id,
                "time": time,
            });
            match object {
                ControlObject::IngestBatch { handler } => v["handler"] = handler.as_str().into(),
                ControlObject::OptoutEvents { kind, count } => {
                    v["event_kind"] = kind.as_str().into();
                    v["count"] = (*count).into();
                }
                ControlObject::Release | ControlObject::Erasure => {}
            }
            v
        }
    }
}

/// One finding in `lang`, ending with its code.
fn words(f: &Finding, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match f {
        Finding::Checkpoint {
            source,
            events,
            fault,
        } => {
            let src = match source {
                CheckpointSource::Stored => lang.t("管理データ内の", "stored"),
                CheckpointSource::Exported => lang.t("書き出した", "exported"),
            };
            let what = match fault {
                CheckpointFault::BeyondLog { log_events } => pick(
                    format!(
                        "{src}チェックポイントは {events} 件を保証していますが、ログには {log_events} 件しかありません（末尾のイベントが削除されています）"
                    ),
                    format!(
                        "the {src} checkpoint vouches for {events} events, the log holds {log_events}: events were removed from its end"
                    ),
                ),
                CheckpointFault::HashMismatch => pick(
                    format!(
                        "{src}チェックポイントの {events} 件目のハッシュとログが一致しません（ログが書き換えられています）"
                    ),
                    format!(
                        "the log does not hash to the {src} checkpoint at event {events}: the log was rewritten"
                    ),
                ),
                CheckpointFault::SignatureBad => pick(
                    format!("{src}チェックポイント（{events} 件目）の署名が正しくありません"),
                    format!("the {src} checkpoint at event {events} has no valid signature"),
                ),
                CheckpointFault::OtherKey => pick(
                    format!(
                        "{src}チェックポイント（{events} 件目）はこのワークスペースの監査鍵ではない鍵で署名されています"
                    ),
                    format!(
                        "the {src} checkpoint at event {events} is signed by a key that is not this workspace's audit key"
                    ),
                ),
                CheckpointFault::OtherWorkspace => pick(
                    format!("{src}チェックポイント（{events} 件目）は別のワークスペースのものです"),
                    format!("the {src} checkpoint at event {events} belongs to another workspace"),
                ),
                CheckpointFault::UnknownFormat => pick(
                    format!("{src}チェックポイント（{events} 件目）の形式を読めません"),
                    format!("the {src} checkpoint at event {events} is of an unknown format"),
                ),
            };
            format!("{what} [checkpoint.{}]", fault.code())
        }
        Finding::CheckpointsMissing { seq, latest } => pick(
            format!(
                "{seq} 件目の操作の後の署名付きチェックポイントがありません（最新は {latest} 件目）：チェックポイントが削除されています [checkpoints_missing]"
            ),
            format!(
                "no signed checkpoint after the command at event {seq} (the latest is at event {latest}): checkpoints were removed [checkpoints_missing]"
            ),
        ),
        Finding::MissingEvent { object, id, time } => {
            let what = match object {
                ControlObject::IngestBatch { handler } => pick(
                    format!("医療情報取扱事業者 {handler} の取り込みバッチ {id}"),
                    format!("ingest batch {id} of handler {handler}"),
                ),
                ControlObject::Release => pick(format!("リリース {id}"), format!("release {id}")),
                ControlObject::Erasure => {
                    pick(format!("消去の記録 {id}"), format!("erasure record {id}"))
                }
                ControlObject::OptoutEvents { kind, count } => pick(
                    format!("オプトアウト記録（{kind}、{count} 件）"),
                    format!("{count} opt-out event(s) of kind {kind}"),
                ),
            };
            let said = pick(
                format!("{what}（{time} 記録）に対応する監査イベントがありません"),
                format!("{what}, recorded {time}, has no audit event"),
            );
            format!("{said} [missing_event.{}]", object.code())
        }
    }
}
