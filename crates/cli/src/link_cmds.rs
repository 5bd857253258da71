//! `kiban link review` (clerical review queue and decisions, R-LINK-2) and the presentation
//! of `kiban link` / `kiban link --incremental` reports. The work is done by
//! `kiban-pipeline` (`Workspace::link`, `link_incremental`, `link_review`, `link_decide`).

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use kiban_pipeline::Workspace;
use kiban_pipeline::link::{ExpectedMatches, LinkReport, expected_matches, probability_interval};

use crate::ui::{Lang, row, table};

/// `kiban link review`: list the queue, or record a decision with `--decide A B same|different`.
#[derive(Args, Debug)]
pub struct LinkReviewArgs {
    /// Record a decision: two registration IDs and `same` or `different`.
    #[arg(long, num_args = 3, value_names = ["A", "B", "same|different"])]
    pub decide: Option<Vec<String>>,
    /// Who decided (default: the workspace actor).
    #[arg(long)]
    pub by: Option<String>,
    /// Show at most this many pairs.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Prints a linkage report (`kiban link`, `kiban link --incremental`).
pub fn print_link_report(r: &LinkReport, json: bool, lang: Lang) -> Result<ExitCode> {
    if json {
        print_json(r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mode = if r.mode == "incremental" {
        lang.t("差分", "incremental")
    } else {
        lang.t("全件", "full")
    };
    print!(
        "{}",
        table(
            lang.t("名寄せ", "linkage"),
            &[
                row(lang, "実行", "run", format!("{} ({mode})", r.run_id)),
                row(
                    lang,
                    "登録患者",
                    "registrations",
                    r.registrations.to_string()
                ),
                row(
                    lang,
                    "今回の新規登録",
                    "new registrations",
                    r.new_registrations.to_string()
                ),
                row(lang, "人", "persons", r.persons.to_string()),
                row(
                    lang,
                    "要確認ペア",
                    "pairs for review",
                    r.review_pairs.to_string()
                ),
                row(
                    lang,
                    "要確認ペアの期待一致数",
                    "expected matches among them",
                    count_with_interval(&r.review_expected_matches)
                ),
                row(
                    lang,
                    "予算超過でモデルが判定",
                    "left to the model (over the review budget)",
                    r.review_over_budget.to_string()
                ),
                row(
                    lang,
                    "阻止した結合",
                    "blocked merges",
                    r.blocked_merges.to_string()
                ),
                row(
                    lang,
                    "適用した判定",
                    "decisions applied",
                    r.decisions_applied.to_string()
                ),
                row(
                    lang,
                    "推定誤結合率（区間）",
                    "est. false-merge rate (interval)",
                    rate_with_interval(
                        r.false_merge_interval.point,
                        r.false_merge_interval.lower,
                        r.false_merge_interval.upper,
                    )
                ),
                row(
                    lang,
                    "推定結合漏れ率（区間）",
                    "est. missed-merge rate (interval)",
                    rate_with_interval(
                        r.missed_merge_interval.point,
                        r.missed_merge_interval.lower,
                        r.missed_merge_interval.upper,
                    )
                ),
                row(
                    lang,
                    "確認後の推定結合漏れ率（区間）",
                    "est. missed-merge rate after review (interval)",
                    rate_with_interval(
                        r.missed_merge_after_review_interval.point,
                        r.missed_merge_after_review_interval.lower,
                        r.missed_merge_after_review_interval.upper,
                    )
                ),
            ]
        )
    );
    for m in &r.blocked {
        println!(
            "{} {} ↔ {} (p={:.3}, {}: {} ↔ {}, {:?})",
            lang.t("結合阻止", "blocked"),
            m.a,
            m.b,
            m.probability,
            lang.t("衝突", "conflict"),
            m.conflict_a,
            m.conflict_b,
            m.reason
        );
    }
    if r.review_pairs > 0 {
        println!(
            "{}",
            lang.t(
                "要確認ペアは `kiban link review` で確認し、`--decide A B same|different` で判定してください。",
                "Review pairs with `kiban link review`; decide with `--decide A B same|different`."
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiban link review [--decide A B same|different] [--by NAME] [--json]`.
pub async fn run_review(ws: &Workspace, a: LinkReviewArgs, lang: Lang) -> Result<ExitCode> {
    if let Some(d) = &a.decide {
        let [x, y, verdict] = d.as_slice() else {
            bail!("--decide needs A B same|different");
        };
        let same = match verdict.as_str() {
            "same" | "同一" => true,
            "different" | "別人" => false,
            other => bail!("--decide: {other:?} は same か different / must be same or different"),
        };
        let rec = ws.link_decide(x, y, same, a.by.as_deref()).await?;
        if a.json {
            print_json(&rec)?;
        } else {
            println!(
                "{}: {} ↔ {} = {} ({} {})",
                lang.t("判定を記録しました", "decision recorded"),
                rec.a,
                rec.b,
                if rec.same_person {
                    lang.t("同一人物", "same person")
                } else {
                    lang.t("別人", "different persons")
                },
                lang.t("判定者", "by"),
                rec.decided_by
            );
            println!(
                "{}",
                lang.t(
                    "次回の `kiban link` から反映されます。",
                    "It applies from the next `kiban link` run."
                )
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let queue = ws.link_review().await?;
    let expected = expected_matches(&queue);
    if a.json {
        print_json(&serde_json::json!({
            "expected_matches": expected,
            "pairs": queue,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {}",
        lang.t("要確認ペア", "pairs for review"),
        queue.len()
    );
    println!(
        "{}: {}",
        lang.t(
            "うち同一人物と見込まれる数（確率の和、区間）",
            "expected matches among them (sum of probabilities, interval)"
        ),
        count_with_interval(&expected)
    );
    for q in queue.iter().take(a.limit) {
        let reason = match &q.reason {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let (low, high) = probability_interval(q.probability, q.match_weight_bits);
        let p = if high - low > 0.0005 {
            format!("p={:.3} ({low:.3}–{high:.3})", q.probability)
        } else {
            format!("p={:.3}", q.probability)
        };
        println!(
            "{} ↔ {}  {p} ({:+.1} bits) [{}]",
            q.a, q.b, q.match_weight_bits, reason
        );
        let levels: Vec<String> = q.levels.iter().map(|(c, l)| format!("{c}: {l}")).collect();
        println!("    {}", levels.join(" / "));
    }
    if queue.len() > a.limit {
        println!(
            "… {} {}",
            queue.len() - a.limit,
            lang.t("件省略 (--limit)", "more (--limit)")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An expected count with its interval: `12.4 (8.1–17.9)`.
fn count_with_interval(e: &ExpectedMatches) -> String {
    format!("{:.1} ({:.1}–{:.1})", e.point, e.lower, e.upper)
}

/// An estimated rate with the interval the model vouches for: `0.01669 (0.01452–0.01908)`
/// — where the model cannot tell, the interval says so rather than a precise-looking point.
fn rate_with_interval(point: f64, lower: f64, upper: f64) -> String {
    format!("{point:.5} ({lower:.5}–{upper:.5})")
}
