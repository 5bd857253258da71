//! レセプト電算処理 (医科) writer: one `RECEIPTC.UKE` per hospital, Shift_JIS (CP932),
//! comma-separated records, CRLF, EOF byte 0x1A — per 「記録条件仕様（医科用）」令和4年4月版.
//!
//! Structure: IR, then per patient and month one receipt (RE, HO, SY…, SI…, IY…), then GO.
//! That spec records every date in 西暦 (YYYYMMDD / YYYYMM), so no 和暦 appears; `wareki`
//! in this module exists for the older layouts that readers also meet.
//!
//! Counting rules (so ingest can compare): each visit is one SI record (初診料 on the first
//! visit of the registration, 再診料 after) with its day flagged; each drug line one IY; each
//! condition one SY, written only in the receipt of the month it was diagnosed. Lab results
//! have no place in claims and are not written.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use chrono::{Datelike, NaiveDate};

use crate::SynthError;
use crate::config::SynthConfig;
use crate::population::{InsuranceKind, Registration};
use crate::summary::UkeCounts;
use crate::tables::{DIAGNOSES, DRUGS};
use crate::text::{encode_sjis, to_fullwidth_kana};
use crate::write::Hospital;

pub struct UkeWriter {
    code: String,
    out: BufWriter<File>,
    total_points: u64,
    pub counts: UkeCounts,
}

/// 和暦 (era code + YYMMDD) as older UKE layouts and many screens print dates:
/// 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和.
pub fn wareki(d: NaiveDate) -> String {
    let eras: [(NaiveDate, u8, i32); 5] = [
        (
            NaiveDate::from_ymd_opt(2019, 5, 1).unwrap_or_default(),
            5,
            2018,
        ),
        (
            NaiveDate::from_ymd_opt(1989, 1, 8).unwrap_or_default(),
            4,
            1988,
        ),
        (
            NaiveDate::from_ymd_opt(1926, 12, 25).unwrap_or_default(),
            3,
            1925,
        ),
        (
            NaiveDate::from_ymd_opt(1912, 7, 30).unwrap_or_default(),
            2,
            1911,
        ),
        (
            NaiveDate::from_ymd_opt(1868, 1, 25).unwrap_or_default(),
            1,
            1867,
        ),
    ];
    for (start, code, offset) in eras {
        if d >= start {
            return format!(
                "{code}{:02}{:02}{:02}",
                d.year() - offset,
                d.month(),
                d.day()
            );
        }
    }
    d.format("%Y%m%d").to_string()
}

impl UkeWriter {
    pub fn open(root: &Path, h: &Hospital, cfg: &SynthConfig) -> Result<Self, SynthError> {
        let what = || format!("uke file of hospital {}", h.code);
        fs::create_dir_all(root).map_err(|e| SynthError::io(what(), e))?;
        let f = File::create(root.join("RECEIPTC.UKE")).map_err(|e| SynthError::io(what(), e))?;
        let mut w = UkeWriter {
            code: h.code.clone(),
            out: BufWriter::new(f),
            total_points: 0,
            counts: UkeCounts::default(),
        };
        let claim = cfg.effective_provision_date();
        // IR: 審査支払機関 1 (社保), 都道府県, 点数表 1 (医科), 医療機関コード (7 digits after
        // prefecture and 点数表), 予備, 名称, 請求年月, マルチボリューム 00, 電話番号.
        let ir = [
            "IR".to_string(),
            "1".into(),
            h.code[..2].to_string(),
            "1".into(),
            h.code[3..].to_string(),
            String::new(),
            h.name.clone(),
            claim.format("%Y%m").to_string(),
            "00".into(),
            h.phone.clone(),
        ];
        w.record(&ir)?;
        Ok(w)
    }

    fn record(&mut self, fields: &[String]) -> Result<(), SynthError> {
        let line = fields.join(",");
        let code = &self.code;
        let io = |e| SynthError::io(format!("uke file of hospital {code}"), e);
        self.out.write_all(&encode_sjis(&line)).map_err(io)?;
        self.out.write_all(b"\r\n").map_err(io)
    }

    pub fn write(&mut self, reg: &Registration) -> Result<(), SynthError> {
        let id = &reg.identity;
        let age = reg
            .visits
            .first()
            .map(|v| v.date.year() - id.birth.year())
            .unwrap_or(0);
        let sex = match id.sex {
            kiban_model::Sex::Male => "1",
            kiban_model::Sex::Female => "2",
            _ => "",
        };
        let name = format!("{}　{}", id.family_kanji, id.given_kanji);
        let kana = to_fullwidth_kana(&format!("{}{}", id.family_kana, id.given_kana));
        let mut i = 0;
        let mut first_visit = true;
        while i < reg.visits.len() {
            let ym = (reg.visits[i].date.year(), reg.visits[i].date.month());
            let mut j = i;
            while j < reg.visits.len()
                && (reg.visits[j].date.year(), reg.visits[j].date.month()) == ym
            {
                j += 1;
            }
            let month = &reg.visits[i..j];
            // Each monthly receipt is claimed to the card valid in that month; when the card
            // changed mid-month, the card at the month's last visit.
            let ins = id.insurance_on(reg.visits[j - 1].date);
            let rtype = match (ins.kind, ins.is_self) {
                (InsuranceKind::Kouki, _) => "1318",
                _ if age < 6 => "1114",
                _ if age >= 70 => "1118",
                (_, true) => "1112",
                (_, false) => "1116",
            };
            self.counts.receipts += 1;
            let mut re = vec![String::new(); 38];
            re[0] = "RE".into();
            re[1] = self.counts.receipts.to_string();
            re[2] = rtype.into();
            re[3] = format!("{}{:02}", ym.0, ym.1);
            re[4] = name.clone();
            re[5] = sex.into();
            re[6] = id.birth.format("%Y%m%d").to_string();
            if ins.kind == InsuranceKind::Kokuho {
                re[7] = "70".into();
            }
            re[13] = reg.patient_id.clone();
            re[36] = kana.clone();
            self.record(&re)?;

            let mut points = 0u64;
            let mut body: Vec<Vec<String>> = Vec::new();
            for v in month {
                for c in &v.conditions {
                    let dx = &DIAGNOSES[c.dx];
                    let main = if body.iter().all(|r| r[0] != "SY") {
                        "01"
                    } else {
                        ""
                    };
                    body.push(vec![
                        "SY".into(),
                        dx.receipt.into(),
                        v.date.format("%Y%m%d").to_string(),
                        "1".into(),
                        String::new(),
                        String::new(),
                        main.into(),
                        String::new(),
                    ]);
                    self.counts.sy_records += 1;
                }
            }
            for v in month {
                let (kind, code, pts) = if first_visit {
                    ("11", "111000110", 288)
                } else {
                    ("12", "112007410", 73)
                };
                first_visit = false;
                let mut si = vec![String::new(); 44];
                si[0] = "SI".into();
                si[1] = kind.into();
                si[2] = "1".into();
                si[3] = code.into();
                si[5] = pts.to_string();
                si[6] = "1".into();
                si[12 + v.date.day() as usize] = "1".into();
                points += pts;
                body.push(si);
                self.counts.si_records += 1;
                for d in &v.drugs {
                    let e = &DRUGS[d.drug];
                    let pts = u64::from((d.per_day * 3).max(1));
                    let mut iy = vec![String::new(); 44];
                    iy[0] = "IY".into();
                    iy[1] = "21".into();
                    iy[2] = "1".into();
                    iy[3] = e.receipt.into();
                    iy[4] = d.per_day.to_string();
                    iy[5] = pts.to_string();
                    iy[6] = d.days.to_string();
                    iy[12 + v.date.day() as usize] = d.days.to_string();
                    points += pts * u64::from(d.days);
                    body.push(iy);
                    self.counts.iy_records += 1;
                }
            }
            let mut insurer = ins.insurer.clone();
            while insurer.len() < 8 {
                insurer.insert(0, ' ');
            }
            let mut ho = vec![String::new(); 15];
            ho[0] = "HO".into();
            ho[1] = insurer;
            ho[2] = ins.symbol.clone();
            ho[3] = ins.number.clone();
            ho[4] = month.len().to_string();
            ho[5] = points.to_string();
            self.record(&ho)?;
            self.counts.ho_records += 1;
            for r in &body {
                self.record(r)?;
            }
            self.total_points += points;
            i = j;
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), SynthError> {
        let go = [
            "GO".to_string(),
            self.counts.receipts.to_string(),
            self.total_points.to_string(),
            "99".into(),
        ];
        self.record(&go)?;
        let code = &self.code;
        let io = |e| SynthError::io(format!("uke file of hospital {code}"), e);
        self.out.write_all(&[0x1A]).map_err(io)?;
        self.out.flush().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wareki_eras() {
        assert_eq!(
            wareki(NaiveDate::from_ymd_opt(2019, 5, 1).unwrap()),
            "5010501"
        );
        assert_eq!(
            wareki(NaiveDate::from_ymd_opt(2019, 4, 30).unwrap()),
            "4310430"
        );
        assert_eq!(
            wareki(NaiveDate::from_ymd_opt(1948, 4, 5).unwrap()),
            "3230405"
        );
        assert_eq!(
            wareki(NaiveDate::from_ymd_opt(1926, 12, 24).unwrap()),
            "2151224"
        );
    }
}
