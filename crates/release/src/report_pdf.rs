//! The risk report as PDF (R-ANON-7): the same content as the HTML report, two A4 pages
//! (figures on the second), drawn through kiban-pdf (the embedded IPAex Gothic font,
//! subsetted; its ruled table and bar chart, shared with the receipt).

use kiban_pdf::{Align, BarChart, Column, Document, Page, Paper, PdfError, Table};

use crate::ReleaseError;
use crate::report_html::{ReportContext, class_bars, pct, risk_bars, summary_rows};
use crate::risk::RiskAssessment;

const MARGIN: f32 = 50.0;

fn pdf_err(e: PdfError) -> ReleaseError {
    ReleaseError::Spec(format!("risk report PDF: {e}"))
}

/// Renders the report as PDF bytes. Deterministic for the same input.
pub fn render_pdf(ctx: &ReportContext, r: &RiskAssessment) -> Result<Vec<u8>, ReleaseError> {
    let mut doc = Document::new().map_err(pdf_err)?;
    doc.page(Paper::A4, MARGIN, |p| summary_page(p, ctx, r))
        .map_err(pdf_err)?;
    doc.page(Paper::A4, MARGIN, |p| figures_page(p, r))
        .map_err(pdf_err)?;
    doc.finish().map_err(pdf_err)
}

fn summary_page(p: &mut Page<'_, '_>, ctx: &ReportContext, r: &RiskAssessment) {
    let (left, right) = (p.left(), p.right());
    let mut y = p.top_baseline(16.0);
    p.text(left, y, 16.0, "再識別リスク報告書");
    y += 18.0;
    p.text(left, y, 10.0, "Re-identification risk report (R-ANON-7)");
    y += 22.0;
    let mut meta = vec![
        format!("提供ID Release: {}", ctx.release_id),
        format!(
            "プロファイル Profile: {} ／ 水準 Level: {} ／ 作成日 Created: {}",
            ctx.profile, ctx.level, ctx.created_on
        ),
    ];
    if let Some(k) = ctx.k {
        meta.push(format!("k = {k}"));
    }
    meta.push(format!(
        "準識別子 Quasi-identifiers: {}",
        r.quasi_identifiers
            .iter()
            .zip(&r.levels)
            .map(|(q, l)| format!("{q} (level {l})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (q, g) in &ctx.generalization {
        meta.push(format!("一般化 Generalization: {q} → {g}"));
    }
    y = p.lines((left, Align::Left), y, 9.0, 14.0, &meta);
    y += 10.0;
    p.text(left, y, 12.0, "リスク指標 Risk measures");
    y += 16.0;
    let mut rows: Vec<[String; 2]> = summary_rows(r)
        .into_iter()
        .map(|(ja, en, v)| [format!("{ja}  {en}"), v])
        .collect();
    rows.extend(ctx.peculiar.iter().map(|(l, v)| [l.clone(), v.clone()]));
    let table = Table {
        columns: vec![
            Column {
                x: left + 2.0,
                align: Align::Left,
                wrap: None,
            },
            Column {
                x: right - 2.0,
                align: Align::Right,
                wrap: None,
            },
        ],
        size: 8.5,
        line_height: 14.5,
        row_gap: 0.0,
        rules: Some((left, right)),
        rule_above: 10.0,
        // One page: rows past its foot are left out rather than drawn off the paper.
        bottom: Some(p.bottom()),
    };
    p.table(&table, y, &rows);
}

fn figures_page(p: &mut Page<'_, '_>, r: &RiskAssessment) {
    let (left, top, width) = (p.left(), p.margin(), p.content_width());
    p.bar_chart(&BarChart {
        title: "図1 同値クラスの大きさの分布（クラス数） / Class sizes",
        x: left,
        y: top,
        width,
        height: 300.0,
        bars: &class_bars(r),
        value_label: &|v| format!("{v:.0}"),
    });
    p.bar_chart(&BarChart {
        title: "図2 リスクの分布（レコードの割合） / Risk distribution",
        x: left,
        y: top + 340.0,
        width,
        height: 300.0,
        bars: &risk_bars(r),
        value_label: &|v| pct(v),
    });
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::person::PersonQi;
    use crate::risk::assess_release;

    fn sample() -> (ReportContext, RiskAssessment) {
        let p = |b: &str, s: &str, pref: &str| PersonQi {
            birth: b.into(),
            sex: s.into(),
            prefecture: pref.into(),
        };
        let persons = vec![
            p("1950", "M", "東京都"),
            p("1951", "M", "東京都"),
            p("1952", "M", "東京都"),
            p("1980", "F", "沖縄県"),
            p("1981", "F", "沖縄県"),
        ];
        let qis: Vec<String> = ["birth_year", "sex", "prefecture"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut r = assess_release(
            &qis,
            &[1, 0, 1],
            &persons,
            &HashSet::new(),
            &persons,
            0.2,
            0.5,
        )
        .unwrap();
        // The measured time is not drawn, but keep the input fixed all the same.
        r.elapsed_ms = 0;
        let ctx = ReportContext {
            release_id: "rel-2024-001".into(),
            profile: "anonymized".into(),
            level: "匿名加工".into(),
            created_on: "2024-05-01".into(),
            k: Some(2),
            generalization: vec![("birth_year".into(), "5年階級 5-year bands".into())],
            peculiar: vec![("希少傷病名の一般化 Rare ICD-10 lifted".into(), "3".into())],
        };
        (ctx, r)
    }

    #[test]
    fn report_pdf_is_deterministic_and_embeds_a_subset_font_r_anon_7() {
        let (ctx, r) = sample();
        let pdf = render_pdf(&ctx, &r).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.windows(9).any(|w| w == b"FontFile2"), "font embedded");
        assert!(pdf.len() < 100_000, "{} bytes", pdf.len());
        assert_eq!(pdf, render_pdf(&ctx, &r).unwrap());
    }

    /// A reader extracts the report's figures (poppler's `pdftotext`; skipped when it is not
    /// installed, except in CI).
    #[test]
    fn report_pdf_text_reads_back_r_anon_7() {
        let (ctx, r) = sample();
        let Some(text) = kiban_pdf::testing::pdftotext(&render_pdf(&ctx, &r).unwrap()) else {
            return;
        };
        let text = kiban_pdf::testing::squash(&text);
        for m in [
            "再識別リスク報告書",
            "提供ID Release: rel-2024-001",
            "公開人数 Released persons",
            "検察官モデル 最大リスク",
            "50.00%",
            "希少傷病名の一般化 Rare ICD-10 lifted",
            "図1 同値クラスの大きさの分布",
            "図2 リスクの分布",
        ] {
            let m = kiban_pdf::testing::squash(m);
            assert!(text.contains(&m), "{m:?} missing:\n{text}");
        }
    }
}
