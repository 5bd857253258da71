//! The risk report as one self-contained HTML file (R-ANON-7): Japanese first with English,
//! no external resources (inline CSS and SVG), so it opens offline and can be archived as is.

use std::fmt::Write;

use crate::risk::{RiskAssessment, class_size_buckets};

/// What the report says about the release besides the risk figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportContext {
    pub release_id: String,
    pub profile: String,
    pub level: String,
    pub created_on: String,
    pub k: Option<u32>,
    /// Quasi-identifier → generalization in words.
    pub generalization: Vec<(String, String)>,
    /// Rare-value and top/bottom-coding counts, as (Japanese / English label, value).
    pub peculiar: Vec<(String, String)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// The rows of the summary table: (日本語, English, value). Shared with the PDF.
pub(crate) fn summary_rows(r: &RiskAssessment) -> Vec<(&'static str, &'static str, String)> {
    let reid = &r.reidentification;
    vec![
        ("公開人数", "Released persons", r.records.to_string()),
        ("秘匿人数", "Suppressed persons", r.suppressed.to_string()),
        ("同値クラス数", "Equivalence classes", r.classes.to_string()),
        (
            "検察官モデル 最大リスク",
            "Prosecutor risk, highest",
            pct(r.prosecutor_highest),
        ),
        (
            "検察官モデル 平均リスク",
            "Prosecutor risk, average",
            pct(r.prosecutor_average),
        ),
        (
            "ジャーナリストモデル 最大リスク",
            "Journalist risk, highest",
            pct(r.journalist_highest),
        ),
        (
            "ジャーナリストモデル 平均リスク",
            "Journalist risk, average",
            pct(r.journalist_average),
        ),
        ("マーケターモデル リスク", "Marketer risk", pct(r.marketer)),
        (
            "閾値超過レコード",
            "Records at risk (> threshold)",
            format!(
                "{} (閾値 threshold {})",
                pct(r.records_at_risk),
                pct(r.threshold)
            ),
        ),
        (
            "標本一意",
            "Sample uniques",
            format!("{} ({})", r.sample_uniques, pct(r.sample_uniques_share)),
        ),
        (
            "母集団一意（推定）",
            "Population uniques (estimate)",
            format!(
                "{:.1} ({}), Zayatz, 抽出率 sampling fraction {}",
                r.population_uniques,
                pct(r.population_uniques_share),
                r.sampling_fraction
            ),
        ),
        (
            "再識別テスト 攻撃レコード",
            "Re-identification test: attack records",
            reid.attacked.to_string(),
        ),
        (
            "再識別テスト 一意一致",
            "Re-identification test: unique matches",
            reid.unique_matches.to_string(),
        ),
        (
            "再識別テスト 複数一致",
            "Re-identification test: ambiguous matches",
            reid.ambiguous_matches.to_string(),
        ),
        (
            "再識別テスト 不一致",
            "Re-identification test: no match",
            reid.no_match.to_string(),
        ),
        (
            "再識別テスト 期待正解数",
            "Re-identification test: expected correct",
            format!("{:.2}", reid.expected_correct),
        ),
    ]
}

/// A vertical bar chart as inline SVG.
pub fn svg_bars(
    id: &str,
    title: &str,
    bars: &[(String, f64)],
    value_label: &dyn Fn(f64) -> String,
) -> String {
    let (w, h, left, bottom, top) = (640.0, 300.0, 50.0, 50.0, 30.0);
    let plot_h = h - bottom - top;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-12);
    let slot = (w - left - 10.0) / bars.len().max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = esc(title)
    );
    let _ = write!(
        s,
        r##"<text x="{x}" y="18" font-size="14" text-anchor="middle">{t}</text><line x1="{left}" y1="{y0}" x2="{x2}" y2="{y0}" stroke="#333"/>"##,
        x = w / 2.0,
        t = esc(title),
        y0 = h - bottom,
        x2 = w - 10.0
    );
    for (i, (label, v)) in bars.iter().enumerate() {
        let bh = if *v > 0.0 {
            (v / max * plot_h).max(1.0)
        } else {
            0.0
        };
        let x = left + i as f64 * slot + slot * 0.15;
        let bw = slot * 0.7;
        let y = h - bottom - bh;
        let _ = write!(
            s,
            r##"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{bw:.1}" height="{bh:.1}" fill="#3b6ea8"><title>{l}: {vl}</title></rect><text x="{cx:.1}" y="{ly:.1}" font-size="10" text-anchor="middle">{l}</text><text x="{cx:.1}" y="{vy:.1}" font-size="9" text-anchor="middle">{vl}</text>"##,
            l = esc(label),
            vl = esc(&value_label(*v)),
            cx = x + bw / 2.0,
            ly = h - bottom + 14.0,
            vy = (y - 3.0).max(top),
        );
    }
    s.push_str("</svg>");
    s
}

/// Bars of the class-size distribution: (class size, classes).
pub(crate) fn class_bars(r: &RiskAssessment) -> Vec<(String, f64)> {
    class_size_buckets(&r.class_sizes)
        .into_iter()
        .map(|(l, n)| (l, n as f64))
        .collect()
}

/// Bars of the risk distribution: (risk range, share of records).
pub(crate) fn risk_bars(r: &RiskAssessment) -> Vec<(String, f64)> {
    r.risk_distribution
        .iter()
        .map(|b| (format!("≤{:.0}%", b.high * 100.0), b.share))
        .collect()
}

/// Renders the report.
pub fn render_html(ctx: &ReportContext, r: &RiskAssessment) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html>
<html lang="ja"><head><meta charset="utf-8"><title>再識別リスク報告書 / Re-identification risk report — {id}</title>
<style>body{{font-family:"IPAexGothic","Hiragino Sans","Noto Sans JP",sans-serif;max-width:760px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:4px 6px;text-align:left}}td.v{{text-align:right}}
.en{{color:#666;font-size:90%}}figure{{margin:1.5em 0}}</style></head><body>
<h1>再識別リスク報告書 <span class="en">Re-identification risk report</span></h1>
<p>提供ID Release: <b>{id}</b> ／ プロファイル Profile: {profile} ／ 加工の水準 Level: {level} ／ 作成日 Created: {on}{k}</p>
<p>対象の準識別子 Quasi-identifiers (person level): {qis}</p>
"#,
        id = esc(&ctx.release_id),
        profile = esc(&ctx.profile),
        level = esc(&ctx.level),
        on = esc(&ctx.created_on),
        k = ctx.k.map(|k| format!(" ／ k = {k}")).unwrap_or_default(),
        qis = esc(&r
            .quasi_identifiers
            .iter()
            .zip(&r.levels)
            .map(|(q, l)| format!("{q} (level {l})"))
            .collect::<Vec<_>>()
            .join(", ")),
    );
    if !ctx.generalization.is_empty() {
        s.push_str("<h2>一般化 <span class=\"en\">Generalization</span></h2><table>");
        for (q, g) in &ctx.generalization {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", esc(q), esc(g));
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>リスク指標 <span class=\"en\">Risk measures</span></h2><table>");
    for (ja, en, v) in summary_rows(r) {
        let _ = write!(
            s,
            "<tr><td>{} <span class=\"en\">{}</span></td><td class=\"v\">{}</td></tr>",
            esc(ja),
            esc(en),
            esc(&v)
        );
    }
    s.push_str("</table>");
    if !ctx.peculiar.is_empty() {
        s.push_str("<h2>特異な記述の処理 <span class=\"en\">Peculiar values</span></h2><table>");
        for (l, v) in &ctx.peculiar {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"v\">{}</td></tr>",
                esc(l),
                esc(v)
            );
        }
        s.push_str("</table>");
    }
    let _ = write!(
        s,
        "<h2>図 <span class=\"en\">Figures</span></h2><figure>{}<figcaption>図1 同値クラスの大きさの分布（クラス数） / Figure 1: class-size distribution (number of classes)</figcaption></figure><figure>{}<figcaption>図2 リスクの分布（レコードの割合、1/クラスの大きさ） / Figure 2: risk distribution (share of records by 1/class size)</figcaption></figure>",
        svg_bars(
            "class-sizes",
            "同値クラスの大きさ / Class sizes",
            &class_bars(r),
            &|v| format!("{v:.0}")
        ),
        svg_bars(
            "risk-distribution",
            "リスクの分布 / Risk distribution",
            &risk_bars(r),
            &|v| pct(v)
        ),
    );
    s.push_str(
        "<p class=\"en\">検察官モデル: 攻撃者は対象者が提供データに含まれることを知っている。ジャーナリストモデル: 含まれるか知らない（母集団 = 公開人数 / 抽出率）。マーケターモデル: 全員の再識別を試みる場合の期待割合。再識別テスト: 作成事業者自身が保有する加工前の準識別子で提供データを照合した結果。<br>Prosecutor: the attacker knows the target is in the release. Journalist: does not (population = released persons / sampling fraction). Marketer: expected share re-identified when all are attacked. Re-identification test: the producer's own unprocessed quasi-identifiers matched against the release.</p></body></html>\n",
    );
    s
}
