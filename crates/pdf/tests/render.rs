//! Documents written with kiban-pdf: valid PDF with the font subset embedded, and the text
//! a PDF reader extracts (poppler's `pdftotext`) is the text drawn. `pdftotext` (Debian
//! `poppler-utils`) is optional outside CI, where its absence fails the test.

use kiban_pdf::testing::{pdftotext, squash};
use kiban_pdf::{Align, BarChart, Column, Document, Paper, PdfError, Table};

const LINE: &str = "次世代医療基盤法に基づく提供停止の求め（受付番号 H1-0001）";

fn sample(paper: Paper) -> Vec<u8> {
    let mut doc = Document::new().unwrap();
    doc.page(paper, 40.0, |p| {
        let (left, right) = (p.left(), p.right());
        let mut y = p.top_baseline(16.0);
        p.text(left, y, 16.0, "見出し Heading");
        y += 24.0;
        p.text(left, y, 10.0, LINE);
        y += 18.0;
        y = p.paragraph(
            left,
            y,
            p.content_width(),
            (10.0, 16.0),
            "医療法人社団さくら会 Medical Center for Longitudinal Health Research の\
             医療情報は、求めを受けた日から提供しません。",
        );
        let table = Table {
            columns: vec![
                Column {
                    x: left,
                    align: Align::Left,
                    wrap: None,
                },
                Column {
                    x: right,
                    align: Align::Right,
                    wrap: None,
                },
            ],
            size: 9.0,
            line_height: 14.0,
            row_gap: 0.0,
            rules: Some((left, right)),
            rule_above: 10.0,
            bottom: Some(p.bottom()),
        };
        y = p.table(
            &table,
            y + 12.0,
            &[["公開人数 Released persons", "1234"], ["秘匿人数", "5"]],
        );
        p.bar_chart(&BarChart {
            title: "図1 分布",
            x: left,
            y,
            width: p.content_width(),
            height: 150.0,
            bars: &[("1".into(), 3.0), ("2-4".into(), 0.0), ("5+".into(), 9.0)],
            value_label: &|v| format!("{v:.0}"),
        });
    })
    .unwrap();
    doc.finish().unwrap()
}

#[test]
fn a_document_is_a_small_pdf_with_a_subset_font() {
    for paper in [Paper::A4, Paper::A5] {
        let pdf = sample(paper);
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(pdf.windows(9).any(|w| w == b"FontFile2"), "font embedded");
        // A subset: far below the 6 MB font.
        assert!(pdf.len() < 100_000, "{} bytes", pdf.len());
        assert_eq!(pdf, sample(paper), "deterministic");
    }
}

#[test]
fn a_margin_that_leaves_no_page_is_refused() {
    let mut doc = Document::new().unwrap();
    let e = doc.page(Paper::A5, 300.0, |_| ()).unwrap_err();
    assert!(matches!(e, PdfError::Margin(_)), "{e}");
    assert!(doc.page(Paper::A5, -1.0, |_| ()).is_err());
}

#[test]
fn pdftotext_reads_the_japanese_back() {
    let Some(text) = pdftotext(&sample(Paper::A4)) else {
        return;
    };
    // A line drawn whole comes back as the same line.
    assert!(text.lines().any(|l| l.trim() == LINE), "{text}");
    let all = squash(&text);
    for m in [
        "見出しHeading",
        "MedicalCenterforLongitudinalHealthResearch",
        "求めを受けた日から提供しません。",
        "公開人数Releasedpersons",
        "1234",
        "図1分布",
    ] {
        assert!(all.contains(m), "{m:?} missing:\n{text}");
    }
}
