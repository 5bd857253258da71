//! Per-hospital output writers. Each hospital keeps its writers open for the whole run so a
//! registration is written the moment it is generated (streaming, flat memory).

pub mod csvout;
pub mod fhir;
pub mod ssmix2;
pub mod uke;

use std::path::Path;

use chrono::NaiveDate;

use crate::SynthError;
use crate::config::{SynthConfig, SynthFormat};
use crate::population::{OrderCounter, Registration};
use crate::summary::{Counts, HospitalSummary};

/// A synthetic hospital (医療情報取扱事業者).
#[derive(Debug, Clone)]
pub struct Hospital {
    pub index: u32,
    /// 10-digit 医療機関コード-like: prefecture (2) + 点数表 1 (医科) + area (2) + number (4)
    /// + check digit.
    pub code: String,
    pub name: String,
    pub address: String,
    pub phone: String,
    pub representative: String,
    pub filed: NaiveDate,
    pub published: NaiveDate,
    pub own_published: NaiveDate,
    pub formats: Vec<SynthFormat>,
    pub weight: u32,
    /// Patient IDs are a bijection of a counter onto `pid_digits`-digit numbers, so they look
    /// random but never collide.
    pub pid_digits: u32,
    pub pid_mult: u64,
    pub pid_offset: u64,
    pub next_patient: u64,
    pub orders: OrderCounter,
}

impl Hospital {
    /// The next patient ID of this hospital.
    pub fn next_patient_id(&mut self) -> Result<String, SynthError> {
        let modulus = 10u64.pow(self.pid_digits);
        if self.next_patient >= modulus {
            return Err(SynthError::TooManyPatients {
                hospital: self.code.clone(),
            });
        }
        let n = (self.next_patient as u128 * self.pid_mult as u128 + self.pid_offset as u128)
            % modulus as u128;
        self.next_patient += 1;
        Ok(format!("{:0width$}", n, width = self.pid_digits as usize))
    }
}

pub struct HospitalWriters {
    ssmix2: Option<ssmix2::Ssmix2Writer>,
    fhir: Option<fhir::FhirWriter>,
    uke: Option<uke::UkeWriter>,
    csv: Option<csvout::CsvWriter>,
    pub summary: HospitalSummary,
    /// Per format: what a reader of that format finds.
    pub per_format: Vec<(SynthFormat, Counts)>,
}

impl HospitalWriters {
    pub fn open(out: &Path, h: &Hospital, cfg: &SynthConfig) -> Result<Self, SynthError> {
        let dir = out.join("hospitals").join(&h.code);
        let mut w = HospitalWriters {
            ssmix2: None,
            fhir: None,
            uke: None,
            csv: None,
            summary: HospitalSummary {
                code: h.code.clone(),
                name: h.name.clone(),
                formats: h.formats.clone(),
                ..Default::default()
            },
            per_format: h.formats.iter().map(|f| (*f, Counts::default())).collect(),
        };
        for f in &h.formats {
            match f {
                SynthFormat::Ssmix2 => {
                    w.ssmix2 = Some(ssmix2::Ssmix2Writer::open(&dir.join("ssmix2"), h)?)
                }
                SynthFormat::Fhir => {
                    w.fhir = Some(fhir::FhirWriter::open(
                        &dir.join("fhir"),
                        h,
                        cfg.fhir_patients_per_bundle,
                    )?)
                }
                SynthFormat::Uke => w.uke = Some(uke::UkeWriter::open(&dir.join("uke"), h, cfg)?),
                SynthFormat::Csv => w.csv = Some(csvout::CsvWriter::open(&dir.join("csv"), h)?),
            }
        }
        Ok(w)
    }

    pub fn write(&mut self, h: &Hospital, reg: &Registration) -> Result<(), SynthError> {
        let visits = reg.visits.len() as u64;
        let conditions: u64 = reg.visits.iter().map(|v| v.conditions.len() as u64).sum();
        let drugs: u64 = reg.visits.iter().map(|v| v.drugs.len() as u64).sum();
        let labs: u64 = reg.visits.iter().map(|v| v.labs.len() as u64).sum();
        let all = Counts {
            registrations: 1,
            visits,
            conditions,
            drugs,
            labs,
        };
        self.summary.counts.add(&all);
        if let Some(w) = self.ssmix2.as_mut() {
            w.write(h, reg)?;
        }
        if let Some(w) = self.fhir.as_mut() {
            w.write(h, reg)?;
        }
        if let Some(w) = self.uke.as_mut() {
            w.write(reg)?;
        }
        if let Some(w) = self.csv.as_mut() {
            w.write(reg)?;
        }
        for (f, c) in self.per_format.iter_mut() {
            if *f == SynthFormat::Uke {
                c.add(&Counts {
                    labs: 0,
                    ..all.clone()
                });
            } else {
                c.add(&all);
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<(HospitalSummary, Vec<(SynthFormat, Counts)>), SynthError> {
        if let Some(mut w) = self.fhir.take() {
            w.finish()?;
            self.summary.fhir = Some(w.counts);
        }
        if let Some(mut w) = self.uke.take() {
            w.finish()?;
            self.summary.uke = Some(w.counts);
        }
        if let Some(mut w) = self.csv.take() {
            w.finish()?;
            self.summary.csv = Some(w.counts);
        }
        if let Some(w) = self.ssmix2.take() {
            self.summary.ssmix2 = Some(w.counts);
        }
        Ok((self.summary, self.per_format))
    }
}
