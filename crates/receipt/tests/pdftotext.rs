//! R-OPT-5: the receipt's text, as a PDF reader extracts it (poppler's `pdftotext`), contains
//! every item the regulation requires. Needs `pdftotext` (Debian `poppler-utils`): skipped
//! with a note when absent, unless `CI=true`, where its absence fails the test.

use chrono::NaiveDate;
use kiban_pdf::testing::{pdftotext, squash};
use kiban_receipt::{
    DeletionReach, Issuer, IssuerRole, Paper, Receipt, RequestKind, date_ja, render,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn receipt(kind: RequestKind, paper: Paper) -> Receipt {
    Receipt {
        receipt_number: "H1-20240501-ABCD1234".into(),
        kind,
        requester_name: "山田 花子".into(),
        relation: "法定代理人".into(),
        patient_reference: Some("患者ID 0001234".into()),
        handler_name: "さくら総合病院".into(),
        channel: Some("窓口（書面）".into()),
        received: d("2024-05-01"),
        stop_date: d("2024-05-01"),
        issued: d("2024-05-07"),
        issuer: Issuer {
            role: IssuerRole::Handler,
            name: "さくら総合病院".into(),
            address: "東京都千代田区霞が関1-2-3".into(),
            representative: Some("院長 佐藤 一郎".into()),
        },
        paper,
        deletion_reach: None,
    }
}

#[test]
fn r_opt_5_receipt_text_has_every_required_item() {
    for (kind, paper) in [
        (RequestKind::Stop, Paper::A5),
        (RequestKind::Stop, Paper::A4),
        (RequestKind::Delete, Paper::A4),
    ] {
        let r = receipt(kind, paper);
        let pdf = render(&r).unwrap();
        assert!(pdf.len() < 100_000, "{} bytes", pdf.len());
        let Some(text) = pdftotext(&pdf).map(|t| squash(&t)) else {
            return;
        };
        let must = [
            // that a request was made
            "提供の停止".to_string(),
            "求めがありました".to_string(),
            // who made it, enough to identify them
            squash(&r.requester_name),
            "本人との関係：法定代理人".to_string(),
            "患者ID0001234".to_string(),
            // the date received
            format!("求めを受けた年月日{}", date_ja(r.received)),
            // that this receipt is issued
            "本書を交付します".to_string(),
            // the date provision stops
            format!("提供を停止する年月日{}", date_ja(r.stop_date)),
            // the date of issue
            format!("本書の交付年月日{}", date_ja(r.issued)),
            // receipt number and issuer
            r.receipt_number.clone(),
            "交付者（医療情報取扱事業者）".to_string(),
            squash(&r.issuer.address),
        ];
        for m in &must {
            assert!(
                text.contains(m.as_str()),
                "{kind:?}/{paper:?}: {m:?} missing from receipt text:\n{text}"
            );
        }
        if kind == RequestKind::Delete {
            assert!(text.contains("削除の求め"), "{text}");
        }
    }
}

/// Issue 14, item 4: a deletion receipt says what the request reaches — the handler's data,
/// or every registration linked to the person, with how many and which handlers (never
/// another handler's patient ID).
#[test]
fn r_opt_6_deletion_receipt_states_its_scope() {
    for paper in [Paper::A4, Paper::A5] {
        let mut r = receipt(RequestKind::Delete, paper);
        r.deletion_reach = Some(DeletionReach::Person {
            registrations: 3,
            handlers: vec![
                "さくら総合病院".into(),
                "みなと診療所".into(),
                "ひかり病院".into(),
            ],
        });
        let Some(text) = pdftotext(&render(&r).unwrap()).map(|t| squash(&t)) else {
            return;
        };
        for m in ["削除の範囲", "名寄せ", "3件", "みなと診療所", "ひかり病院"] {
            assert!(text.contains(m), "{paper:?}: {m:?} missing:\n{text}");
        }
        r.deletion_reach = Some(DeletionReach::Handler);
        let text = squash(&pdftotext(&render(&r).unwrap()).unwrap_or_default());
        assert!(
            text.contains("削除の範囲") && text.contains("当該医療情報取扱事業者の分のみ"),
            "{text}"
        );
    }
}
