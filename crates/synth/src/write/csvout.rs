//! Plain CSV export (UTF-8, header row): persons.csv with the identity columns, and
//! visits/conditions/drugs/labs keyed by patient_id and visit_id — the shape of an ad-hoc
//! hospital export that the CSV-with-mapping reader handles.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use crate::SynthError;
use crate::population::Registration;
use crate::summary::CsvCounts;
use crate::tables::{DEPARTMENTS, DIAGNOSES, DRUGS, LABS};
use crate::write::Hospital;

type W = csv::Writer<BufWriter<File>>;

pub const PERSONS_HEADER: &[&str] = &[
    "patient_id",
    "name_kanji",
    "name_kana",
    "birth_date",
    "sex",
    "postal_code",
    "address",
    "phone",
    "insurer_number",
    "insured_symbol",
    "insured_number",
    "insured_branch",
    // 資格取得年月日 of the card on file (ISO date).
    "insured_since",
];
pub const VISITS_HEADER: &[&str] = &["patient_id", "visit_id", "date", "visit_type", "department"];
pub const CONDITIONS_HEADER: &[&str] = &[
    "patient_id",
    "visit_id",
    "date",
    "icd10",
    "receipt_code",
    "exchange_code",
    "name",
];
pub const DRUGS_HEADER: &[&str] = &[
    "patient_id",
    "visit_id",
    "date",
    "yj_code",
    "receipt_code",
    "name",
    "quantity_per_day",
    "unit",
    "days",
];
pub const LABS_HEADER: &[&str] = &[
    "patient_id",
    "visit_id",
    "date",
    "jlac10",
    "name",
    "value",
    "unit",
    "ref_low",
    "ref_high",
];

pub struct CsvWriter {
    code: String,
    persons: W,
    visits: W,
    conditions: W,
    drugs: W,
    labs: W,
    pub counts: CsvCounts,
}

impl CsvWriter {
    pub fn open(root: &Path, h: &Hospital) -> Result<Self, SynthError> {
        let what = || format!("csv folder of hospital {}", h.code);
        fs::create_dir_all(root).map_err(|e| SynthError::io(what(), e))?;
        // The column mapping that makes this export readable by `kiban ingest` as it is.
        fs::write(
            root.join(kiban_ingest::csvmap::MAPPING_FILE),
            kiban_ingest::csvmap::SYNTH_CSV_MAPPING,
        )
        .map_err(|e| SynthError::io(what(), e))?;
        let open = |name: &str, header: &[&str]| -> Result<W, SynthError> {
            let f = File::create(root.join(name)).map_err(|e| SynthError::io(what(), e))?;
            let mut w = csv::Writer::from_writer(BufWriter::new(f));
            w.write_record(header).map_err(|e| SynthError::Csv {
                what: what(),
                source: e,
            })?;
            Ok(w)
        };
        Ok(CsvWriter {
            code: h.code.clone(),
            persons: open("persons.csv", PERSONS_HEADER)?,
            visits: open("visits.csv", VISITS_HEADER)?,
            conditions: open("conditions.csv", CONDITIONS_HEADER)?,
            drugs: open("drugs.csv", DRUGS_HEADER)?,
            labs: open("labs.csv", LABS_HEADER)?,
            counts: CsvCounts::default(),
        })
    }

    pub fn write(&mut self, reg: &Registration) -> Result<(), SynthError> {
        let code = self.code.clone();
        let err = |e: csv::Error| SynthError::Csv {
            what: format!("csv files of hospital {code}"),
            source: e,
        };
        let id = &reg.identity;
        let pid = reg.patient_id.as_str();
        let birth = id.birth.format("%Y-%m-%d").to_string();
        self.persons
            .write_record([
                pid,
                &id.name_kanji(),
                &id.name_kana(),
                &birth,
                id.sex.code(),
                &id.postal,
                &id.address(),
                &id.phone,
                &id.insurance.insurer,
                &id.insurance.symbol,
                &id.insurance.number,
                &id.insurance.branch,
                &id.insurance.since.format("%Y-%m-%d").to_string(),
            ])
            .map_err(err)?;
        self.counts.persons += 1;
        for (vi, v) in reg.visits.iter().enumerate() {
            let visit_id = format!("{pid}-{:03}", vi + 1);
            let date = v.date.format("%Y-%m-%d").to_string();
            let vt = if v.emergency {
                "emergency"
            } else {
                "outpatient"
            };
            self.visits
                .write_record([pid, &visit_id, &date, vt, DEPARTMENTS[v.dept].1])
                .map_err(err)?;
            self.counts.visits += 1;
            for c in &v.conditions {
                let dx = &DIAGNOSES[c.dx];
                self.conditions
                    .write_record([
                        pid,
                        &visit_id,
                        &date,
                        dx.icd10,
                        dx.receipt,
                        dx.exchange,
                        dx.name,
                    ])
                    .map_err(err)?;
                self.counts.conditions += 1;
            }
            for d in &v.drugs {
                let e = &DRUGS[d.drug];
                self.drugs
                    .write_record([
                        pid,
                        &visit_id,
                        &date,
                        e.yj,
                        e.receipt,
                        e.name,
                        &d.per_day.to_string(),
                        e.unit,
                        &d.days.to_string(),
                    ])
                    .map_err(err)?;
                self.counts.drugs += 1;
            }
            for l in &v.labs {
                let t = &LABS[l.lab];
                self.labs
                    .write_record([
                        pid,
                        &visit_id,
                        &date,
                        t.jlac10,
                        t.name,
                        &l.value,
                        t.unit,
                        &t.ref_low.to_string(),
                        &t.ref_high.to_string(),
                    ])
                    .map_err(err)?;
                self.counts.labs += 1;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), SynthError> {
        let code = self.code.clone();
        let err = |e: std::io::Error| SynthError::io(format!("csv files of hospital {code}"), e);
        for w in [
            &mut self.persons,
            &mut self.visits,
            &mut self.conditions,
            &mut self.drugs,
            &mut self.labs,
        ] {
            w.flush().map_err(err)?;
        }
        Ok(())
    }
}
