//! `kiban incident add|update|close|list|show` (R-SEC-5; issue 17, item 7): leaks (漏えい),
//! loss (滅失) and damage (毀損), their scope, measures, the report to the minister and the
//! notice to the persons concerned, and the closing with the cause and the recurrence
//! prevention. Argument structs, presentation, and the words of the incidents' refusals
//! ([`refusal_words`], called by the `refusals` module). The work is done by
//! `kiban-pipeline` over `kiban_workflow::incidents`.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use kiban_pipeline::Workspace;
use kiban_workflow::IncidentRefusal;
use kiban_workflow::incidents::{
    Incident, IncidentClosing, IncidentField, IncidentKind, IncidentUpdate, Measure,
    MinisterReport, NewIncident, PersonsNotice, Undecided, looks_like_identifier,
};

use crate::commands::{opt_date, parse_date, print_json};
use crate::ui::{Lang, grid, row, table};

#[derive(Subcommand, Debug)]
pub enum IncidentCmd {
    /// Record an incident: kind, discovered (and occurred) date, what happened, its scope.
    Add(AddArgs),
    /// Record what changed (a new version; earlier ones are kept) and append a measure taken.
    Update(UpdateArgs),
    /// Close it with the cause found and the recurrence prevention (once the report to the
    /// minister and the notice to the persons concerned are decided).
    Close(CloseArgs),
    /// Every incident in force (`--json`: with every field and measure).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Every version of one incident and its measures.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

impl IncidentCmd {
    /// Whether the command only reads (the workspace lock is then taken shared).
    pub fn reads_only(&self) -> bool {
        matches!(self, IncidentCmd::List { .. } | IncidentCmd::Show { .. })
    }
}

#[derive(Args, Debug)]
pub struct AddArgs {
    #[arg(long)]
    pub id: String,
    /// leak (漏えい) | loss (滅失) | damage (毀損) | other.
    #[arg(long, value_parser = parse_kind)]
    pub kind: IncidentKind,
    /// The day it was discovered (default: today).
    #[arg(long)]
    pub discovered: Option<String>,
    /// The day it occurred, when known.
    #[arg(long)]
    pub occurred: Option<String>,
    /// What happened (write no names or patient IDs).
    #[arg(long)]
    pub what: String,
    /// Which data it reaches (tables, items, media).
    #[arg(long)]
    pub scope: String,
    /// Persons affected, when known.
    #[arg(long)]
    pub persons: Option<u64>,
    /// A handler it reaches (its code; repeat for several).
    #[arg(long = "handler")]
    pub handlers: Vec<String>,
    /// A release it reaches (its ID; repeat for several).
    #[arg(long = "release")]
    pub releases: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    pub id: String,
    /// The day it occurred, now known.
    #[arg(long, conflicts_with = "occurred_unknown")]
    pub occurred: Option<String>,
    /// The day it occurred is not known (clears a date given before).
    #[arg(long)]
    pub occurred_unknown: bool,
    #[arg(long)]
    pub scope: Option<String>,
    #[arg(long)]
    pub persons: Option<u64>,
    /// Replaces the handlers it reaches (repeat for several).
    #[arg(long = "handler")]
    pub handlers: Vec<String>,
    /// Replaces the releases it reaches (repeat for several).
    #[arg(long = "release")]
    pub releases: Vec<String>,
    /// A measure taken (appended; earlier measures are kept).
    #[arg(long)]
    pub measure: Option<String>,
    /// The day the measure was taken (default: today).
    #[arg(long, requires = "measure")]
    pub measure_date: Option<String>,
    /// The day it was reported to the minister (主務大臣への報告).
    #[arg(long, conflicts_with = "minister_not_required")]
    pub minister_reported: Option<String>,
    /// Why no report to the minister is required.
    #[arg(long)]
    pub minister_not_required: Option<String>,
    /// The day the persons concerned were notified (本人への通知); needs --notice-method.
    #[arg(
        long,
        conflicts_with = "persons_not_notified",
        requires = "notice_method"
    )]
    pub persons_notified: Option<String>,
    /// How they were notified (書面, 電話, 公表…).
    #[arg(long, requires = "persons_notified")]
    pub notice_method: Option<String>,
    /// Why the persons concerned are not notified.
    #[arg(long)]
    pub persons_not_notified: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CloseArgs {
    pub id: String,
    /// The day it was closed (default: today).
    #[arg(long)]
    pub date: Option<String>,
    /// The cause found (原因).
    #[arg(long)]
    pub cause: String,
    /// The recurrence prevention (再発防止策).
    #[arg(long)]
    pub prevention: String,
    #[arg(long)]
    pub json: bool,
}

fn parse_kind(s: &str) -> std::result::Result<IncidentKind, String> {
    IncidentKind::parse(s).ok_or_else(|| {
        "leak, loss, damage, other のいずれか / one of leak, loss, damage, other".into()
    })
}

fn today() -> chrono::NaiveDate {
    chrono::Local::now().date_naive()
}

/// Warns (on standard error) when a text looks like it holds a patient ID or a phone
/// number; the text is never repeated.
fn warn_identifiers(fields: &[(IncidentField, Option<&str>)], lang: Lang) {
    for (field, text) in fields {
        if text.is_some_and(looks_like_identifier) {
            eprintln!(
                "kiban: {}: {}",
                lang.t("警告", "warning"),
                match lang {
                    Lang::Ja => format!(
                        "{}に患者IDや電話番号のような数字の並びがあります。インシデントの記録には患者の個人情報を書かないでください",
                        field_words(*field, lang)
                    ),
                    Lang::En => format!(
                        "the {} holds a run of digits like a patient ID or a phone number; write no patient's personal data into an incident",
                        field_words(*field, lang)
                    ),
                }
            );
        }
    }
}

/// Runs one incident command on an open workspace.
pub async fn run(ws: &Workspace, cmd: IncidentCmd, lang: Lang) -> Result<ExitCode> {
    match cmd {
        IncidentCmd::Add(a) => {
            warn_identifiers(
                &[
                    (IncidentField::Summary, Some(&a.what)),
                    (IncidentField::Scope, Some(&a.scope)),
                ],
                lang,
            );
            let i = ws
                .add_incident(NewIncident {
                    id: a.id,
                    kind: a.kind,
                    discovered_on: opt_date(&a.discovered, "--discovered")?.unwrap_or_else(today),
                    occurred_on: opt_date(&a.occurred, "--occurred")?,
                    summary: a.what,
                    scope: a.scope,
                    persons_affected: a.persons,
                    handlers: a.handlers,
                    releases: a.releases,
                })
                .await?;
            show(
                &i,
                a.json,
                lang.t("インシデントを記録しました", "incident recorded"),
                lang,
            )
        }
        IncidentCmd::Update(a) => {
            warn_identifiers(
                &[
                    (IncidentField::Scope, a.scope.as_deref()),
                    (IncidentField::Measure, a.measure.as_deref()),
                ],
                lang,
            );
            let occurred_on = if a.occurred_unknown {
                Some(None)
            } else {
                opt_date(&a.occurred, "--occurred")?.map(Some)
            };
            let minister = match (&a.minister_reported, a.minister_not_required) {
                (Some(d), _) => Some(MinisterReport::Reported {
                    on: parse_date(d, "--minister-reported")?,
                }),
                (None, Some(reason)) => Some(MinisterReport::NotRequired { reason }),
                (None, None) => None,
            };
            let persons_notice = match (&a.persons_notified, a.persons_not_notified) {
                (Some(d), _) => Some(PersonsNotice::Notified {
                    on: parse_date(d, "--persons-notified")?,
                    method: a.notice_method.unwrap_or_default(),
                }),
                (None, Some(reason)) => Some(PersonsNotice::NotNotified { reason }),
                (None, None) => None,
            };
            let i = ws
                .update_incident(IncidentUpdate {
                    incident: a.id,
                    occurred_on,
                    scope: a.scope,
                    persons_affected: a.persons,
                    handlers: (!a.handlers.is_empty()).then_some(a.handlers),
                    releases: (!a.releases.is_empty()).then_some(a.releases),
                    measure: a.measure,
                    measure_on: opt_date(&a.measure_date, "--measure-date")?,
                    minister,
                    persons_notice,
                })
                .await?;
            show(
                &i,
                a.json,
                lang.t(
                    "インシデントの更新を記録しました",
                    "incident update recorded",
                ),
                lang,
            )
        }
        IncidentCmd::Close(a) => {
            warn_identifiers(
                &[
                    (IncidentField::Cause, Some(&a.cause)),
                    (IncidentField::Prevention, Some(&a.prevention)),
                ],
                lang,
            );
            let i = ws
                .close_incident(IncidentClosing {
                    incident: a.id,
                    closed_on: opt_date(&a.date, "--date")?.unwrap_or_else(today),
                    cause: a.cause,
                    prevention: a.prevention,
                })
                .await?;
            show(
                &i,
                a.json,
                lang.t("インシデントを完了しました", "incident closed"),
                lang,
            )
        }
        IncidentCmd::List { json } => {
            let all = ws.list_incidents().await?;
            if json {
                print_json(&all)?;
                return Ok(ExitCode::SUCCESS);
            }
            if all.is_empty() {
                println!(
                    "{}",
                    lang.t("インシデントの記録はありません", "no incidents recorded")
                );
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = all
                .iter()
                .map(|i| {
                    vec![
                        i.id.clone(),
                        kind_words(i.kind, lang).to_string(),
                        i.discovered_on.to_string(),
                        i.persons_affected
                            .map_or_else(|| "-".into(), |n| n.to_string()),
                        match &i.closed {
                            Some(c) => format!("{} {}", lang.t("完了", "closed"), c.closed_on),
                            None => lang.t("対応中", "open").to_string(),
                        },
                    ]
                })
                .collect();
            let h = if lang == Lang::Ja {
                ["ID", "種類", "発見日", "影響人数", "状態"]
            } else {
                ["ID", "kind", "discovered", "persons", "status"]
            };
            print!("{}", grid(&h, &rows));
            Ok(ExitCode::SUCCESS)
        }
        IncidentCmd::Show { id, json } => {
            let h = ws.incident_history(&id).await?;
            if json {
                print_json(&h)?;
                return Ok(ExitCode::SUCCESS);
            }
            for i in &h.versions {
                let title = format!(
                    "{} {} ({})",
                    lang.t("インシデント", "incident"),
                    i.id,
                    i.version
                );
                print!("{}", table(&title, &rows(i, lang)));
            }
            print!("{}", measures_table(&h.measures, lang));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(i: &Incident, json: bool, title: &str, lang: Lang) -> Result<ExitCode> {
    if json {
        print_json(i)?;
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(title, &rows(i, lang)));
    print!("{}", measures_table(&i.measures, lang));
    Ok(ExitCode::SUCCESS)
}

fn measures_table(m: &[Measure], lang: Lang) -> String {
    if m.is_empty() {
        return String::new();
    }
    let rows: Vec<Vec<String>> = m
        .iter()
        .map(|m| vec![m.no.to_string(), m.taken_on.to_string(), m.measure.clone()])
        .collect();
    let h = if lang == Lang::Ja {
        ["措置", "実施日", "内容"]
    } else {
        ["measure", "taken", "what"]
    };
    grid(&h, &rows)
}

fn kind_words(k: IncidentKind, lang: Lang) -> &'static str {
    match k {
        IncidentKind::Leak => lang.t("漏えい", "leak"),
        IncidentKind::Loss => lang.t("滅失", "loss"),
        IncidentKind::Damage => lang.t("毀損", "damage"),
        IncidentKind::Other => lang.t("その他", "other"),
    }
}

fn rows(i: &Incident, lang: Lang) -> Vec<(String, String)> {
    let unknown = lang.t("不明", "unknown").to_string();
    let none = lang.t("なし", "none").to_string();
    let undecided = lang.t("未定", "not decided").to_string();
    let mut rows = vec![
        row(lang, "ID", "ID", i.id.clone()),
        row(lang, "版", "version", i.version.to_string()),
        row(lang, "種類", "kind", kind_words(i.kind, lang)),
        row(lang, "発見日", "discovered", i.discovered_on.to_string()),
        row(
            lang,
            "発生日",
            "occurred",
            i.occurred_on.map_or(unknown.clone(), |d| d.to_string()),
        ),
        row(lang, "事象", "what happened", i.summary.clone()),
        row(lang, "範囲", "scope", i.scope.clone()),
        row(
            lang,
            "影響を受けた人数",
            "persons affected",
            i.persons_affected.map_or(unknown, |n| n.to_string()),
        ),
        row(
            lang,
            "医療情報取扱事業者",
            "handlers",
            if i.handlers.is_empty() {
                none.clone()
            } else {
                i.handlers.join(", ")
            },
        ),
        row(
            lang,
            "提供（リリース）",
            "releases",
            if i.releases.is_empty() {
                none
            } else {
                i.releases.join(", ")
            },
        ),
        row(
            lang,
            "主務大臣への報告",
            "report to the minister",
            match &i.minister {
                Some(MinisterReport::Reported { on }) => on.to_string(),
                Some(MinisterReport::NotRequired { reason }) => {
                    format!("{}: {reason}", lang.t("不要", "not required"))
                }
                None => undecided.clone(),
            },
        ),
        row(
            lang,
            "本人への通知",
            "notice to the persons",
            match &i.persons_notice {
                Some(PersonsNotice::Notified { on, method }) => format!("{on} ({method})"),
                Some(PersonsNotice::NotNotified { reason }) => {
                    format!("{}: {reason}", lang.t("通知しない", "not notified"))
                }
                None => undecided,
            },
        ),
    ];
    if let Some(c) = &i.closed {
        rows.push(row(lang, "完了日", "closed", c.closed_on.to_string()));
        rows.push(row(lang, "原因", "cause", c.cause.clone()));
        rows.push(row(lang, "再発防止策", "prevention", c.prevention.clone()));
        rows.push(row(lang, "完了者", "closed by", c.closed_by.clone()));
    }
    rows.push(row(
        lang,
        "記録",
        "recorded",
        format!("{} {}", i.recorded.at, i.recorded.by),
    ));
    rows
}

fn field_words(f: IncidentField, lang: Lang) -> &'static str {
    match f {
        IncidentField::IncidentId => lang.t("インシデントID", "incident ID"),
        IncidentField::Summary => lang.t("事象（--what）", "description (--what)"),
        IncidentField::Scope => lang.t("範囲（--scope）", "scope (--scope)"),
        IncidentField::Measure => lang.t("措置（--measure）", "measure (--measure)"),
        IncidentField::MinisterNotRequired => lang.t(
            "報告不要の理由（--minister-not-required）",
            "reason no report is required (--minister-not-required)",
        ),
        IncidentField::NoticeMethod => lang.t(
            "通知の方法（--notice-method）",
            "notice method (--notice-method)",
        ),
        IncidentField::PersonsNotNotified => lang.t(
            "通知しない理由（--persons-not-notified）",
            "reason for not notifying (--persons-not-notified)",
        ),
        IncidentField::Cause => lang.t("原因（--cause）", "cause (--cause)"),
        IncidentField::Prevention => {
            lang.t("再発防止策（--prevention）", "prevention (--prevention)")
        }
        IncidentField::Handler => lang.t("医療情報取扱事業者コード", "handler code"),
        IncidentField::Release => lang.t("リリースID", "release ID"),
    }
}

fn duty_words(d: Undecided, lang: Lang) -> &'static str {
    match d {
        Undecided::MinisterReport => lang.t(
            "主務大臣への報告（--minister-reported 日付 か --minister-not-required 理由）",
            "the report to the minister (--minister-reported DATE or --minister-not-required REASON)",
        ),
        Undecided::PersonsNotice => lang.t(
            "本人への通知（--persons-notified 日付 --notice-method 方法 か --persons-not-notified 理由）",
            "the notice to the persons concerned (--persons-notified DATE --notice-method HOW or --persons-not-notified REASON)",
        ),
    }
}

/// The words of an incidents refusal (`refusals::render` adds `[incident.CODE]`).
pub fn refusal_words(r: &IncidentRefusal, lang: Lang) -> String {
    let ja = lang == Lang::Ja;
    let pick = |j: String, e: String| if ja { j } else { e };
    match r {
        IncidentRefusal::IdInvalid { field } => pick(
            format!(
                "{}は 1〜64 文字の英数字と - _ . で指定してください",
                field_words(*field, lang)
            ),
            format!(
                "the {} must be 1-64 letters, digits, '-', '_' or '.'",
                field_words(*field, lang)
            ),
        ),
        IncidentRefusal::FieldEmpty { field } => pick(
            format!(
                "{}を指定してください（空にはできません）",
                field_words(*field, lang)
            ),
            format!("the {} must not be empty", field_words(*field, lang)),
        ),
        IncidentRefusal::IncidentExists { incident } => pick(
            format!("インシデント {incident} は記録済みです"),
            format!("incident {incident} is already recorded"),
        ),
        IncidentRefusal::IncidentUnknown { incident } => pick(
            format!("インシデント {incident} は記録にありません（kiban incident add）"),
            format!("incident {incident} is not on record (kiban incident add)"),
        ),
        IncidentRefusal::IncidentClosed {
            incident,
            closed_on,
        } => pick(
            format!(
                "インシデント {incident} は {closed_on} に完了しています。完了したインシデントは更新できません（新しい事象は kiban incident add で記録してください）"
            ),
            format!(
                "incident {incident} was closed on {closed_on}; a closed incident is not updated (record a new event with kiban incident add)"
            ),
        ),
        IncidentRefusal::DateInFuture { date, today } => pick(
            format!("日付 {date} は今日 ({today}) より後です"),
            format!("the date {date} is after today ({today})"),
        ),
        IncidentRefusal::OccurredAfterDiscovery {
            occurred_on,
            discovered_on,
        } => pick(
            format!("発生日 {occurred_on} が発見日 {discovered_on} より後です"),
            format!("it occurred ({occurred_on}) after it was discovered ({discovered_on})"),
        ),
        IncidentRefusal::DateBeforeDiscovery {
            date,
            discovered_on,
        } => pick(
            format!("日付 {date} は発見日 {discovered_on} より前です"),
            format!("the date {date} is before the incident was discovered ({discovered_on})"),
        ),
        IncidentRefusal::NoticeMethodMissing => pick(
            "本人への通知には方法（--notice-method）を指定してください".to_string(),
            "a notice to the persons concerned needs its method (--notice-method)".to_string(),
        ),
        IncidentRefusal::IncidentUndecided { incident, missing } => pick(
            format!(
                "インシデント {incident} はまだ完了できません: {}が決まっていません（kiban incident update）",
                duty_words(*missing, lang)
            ),
            format!(
                "incident {incident} cannot be closed yet: {} is not decided (kiban incident update)",
                duty_words(*missing, lang)
            ),
        ),
        IncidentRefusal::ReferenceUnknown { field, id } => pick(
            format!("{} {id} は記録にありません", field_words(*field, lang)),
            format!("{} {id} is not on record", field_words(*field, lang)),
        ),
        IncidentRefusal::NothingToUpdate { incident } => pick(
            format!("インシデント {incident} の更新内容がありません"),
            format!("nothing to update for incident {incident}"),
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

    /// Every incidents refusal has its own words in both languages and ends with its
    /// `[incident.CODE]` (none falls to the catch-all).
    #[test]
    fn every_incident_refusal_is_worded() {
        let d = NaiveDate::from_ymd_opt(2026, 4, 1).expect("date");
        let s = || "INC-1".to_string();
        let all = vec![
            IncidentRefusal::IdInvalid {
                field: IncidentField::IncidentId,
            },
            IncidentRefusal::FieldEmpty {
                field: IncidentField::Cause,
            },
            IncidentRefusal::IncidentExists { incident: s() },
            IncidentRefusal::IncidentUnknown { incident: s() },
            IncidentRefusal::IncidentClosed {
                incident: s(),
                closed_on: d,
            },
            IncidentRefusal::DateInFuture { date: d, today: d },
            IncidentRefusal::OccurredAfterDiscovery {
                occurred_on: d,
                discovered_on: d,
            },
            IncidentRefusal::DateBeforeDiscovery {
                date: d,
                discovered_on: d,
            },
            IncidentRefusal::NoticeMethodMissing,
            IncidentRefusal::IncidentUndecided {
                incident: s(),
                missing: Undecided::PersonsNotice,
            },
            IncidentRefusal::ReferenceUnknown {
                field: IncidentField::Handler,
                id: s(),
            },
            IncidentRefusal::NothingToUpdate { incident: s() },
        ];
        for r in &all {
            let ja = refusal_words(r, Lang::Ja);
            let en = refusal_words(r, Lang::En);
            assert!(!ja.starts_with("受け付けられません: "), "{ja}");
            assert!(!en.starts_with("refused: "), "{en}");
            let full =
                crate::refusals::render(&kiban_pipeline::Refusal::Incident(r.clone()), Lang::En);
            assert!(
                full.ends_with(&format!("[incident.{}]", r.code())),
                "{full}"
            );
        }
    }
}
