//! Clinical facts as plain Rust values, the hand-off between format readers and the store.
//!
//! A reader turns a file into [`SourceFacts`] (one patient's identity and facts from one
//! message, resource or receipt). The pipeline then gates the patient, moves the identity to
//! the vault and appends the facts, keyed by an internal registration ID, to Arrow batches
//! ([`crate::FactBatchBuilder`]). Readers never see internal IDs; the store never sees the
//! handler's patient ID next to a fact.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, Sex};
use crate::table::Table;

/// Where a fact came from (R-REC-3: the producer records what it received and from whom).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The handler that sent it.
    pub handler_code: String,
    /// The source file, relative to the ingest root.
    pub source_file: String,
    /// The record inside the file: `line 12`, `PID`, `OBX[3]`, `entry[4]`, `RE 2`.
    pub source_record: String,
}

/// OMOP-like visit type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VisitType {
    Outpatient,
    Inpatient,
    Emergency,
    Home,
    #[default]
    Other,
}

impl VisitType {
    pub fn code(self) -> &'static str {
        match self {
            VisitType::Outpatient => "outpatient",
            VisitType::Inpatient => "inpatient",
            VisitType::Emergency => "emergency",
            VisitType::Home => "home",
            VisitType::Other => "other",
        }
    }

    /// HL7 v2 PV1-2 patient class (O/I/E…), FHIR Encounter.class codes (AMB/IMP/EMER/HH),
    /// and the UKE 入外区分 (1 入院, 2 外来).
    pub fn parse(s: &str) -> VisitType {
        match s.trim().to_ascii_uppercase().as_str() {
            "O" | "AMB" | "OUTPATIENT" | "2" | "外来" => VisitType::Outpatient,
            "I" | "IMP" | "ACUTE" | "NONAC" | "INPATIENT" | "1" | "入院" => VisitType::Inpatient,
            "E" | "EMER" | "EMERGENCY" => VisitType::Emergency,
            "HH" | "HOME" => VisitType::Home,
            _ => VisitType::Other,
        }
    }
}

/// Demographics that the clinical store keeps per registration (OMOP `person`). Birth date is
/// kept whole inside the core zone so that ages can be computed; releases generalize it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonFact {
    pub sex: Sex,
    pub birth_date: Option<NaiveDate>,
    pub death_date: Option<NaiveDate>,
    /// Prefecture (都道府県) only, derived from the address: finer address is identity.
    pub prefecture: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    /// The source's own visit/encounter number, unique within the handler.
    pub source_visit_id: Option<String>,
    pub visit_type: VisitType,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Department (診療科) code or name as the source wrote it.
    pub department: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub source_visit_id: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// ICD-10 code (standard).
    pub code: Option<String>,
    pub code_system: Option<String>,
    /// Japanese source code (標準病名マスター 病名交換用コード, レセ電 傷病名コード, …).
    pub source_code: Option<String>,
    pub source_system: Option<String>,
    /// The diagnosis as written (病名).
    pub source_name: Option<String>,
    /// 疑い病名 (suspected).
    pub suspected: bool,
    /// Main diagnosis (主病名) flag.
    pub primary: bool,
    /// Outcome (転帰): cured, died, stopped, continuing…
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Drug {
    pub source_visit_id: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    /// Standard drug code (YJ, HOT, RxNorm…).
    pub code: Option<String>,
    pub code_system: Option<String>,
    /// Japanese source code (レセ電 医薬品コード, local code…).
    pub source_code: Option<String>,
    pub source_system: Option<String>,
    pub source_name: Option<String>,
    pub quantity: Option<f64>,
    pub unit: Option<String>,
    pub days_supply: Option<i32>,
    pub route: Option<String>,
    /// prescription | injection | administration.
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub source_visit_id: Option<String>,
    pub date: NaiveDate,
    /// JLAC10 / LOINC.
    pub code: Option<String>,
    pub code_system: Option<String>,
    pub source_code: Option<String>,
    pub source_system: Option<String>,
    pub source_name: Option<String>,
    pub value_number: Option<f64>,
    pub value_text: Option<String>,
    pub unit: Option<String>,
    pub range_low: Option<f64>,
    pub range_high: Option<f64>,
    pub abnormal_flag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Procedure {
    pub source_visit_id: Option<String>,
    pub date: NaiveDate,
    pub code: Option<String>,
    pub code_system: Option<String>,
    /// 診療行為コード, K-code…
    pub source_code: Option<String>,
    pub source_system: Option<String>,
    pub source_name: Option<String>,
    pub quantity: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservationFact {
    pub source_visit_id: Option<String>,
    pub date: NaiveDate,
    pub code: Option<String>,
    pub code_system: Option<String>,
    pub source_code: Option<String>,
    pub source_system: Option<String>,
    pub source_name: Option<String>,
    pub value_number: Option<f64>,
    pub value_text: Option<String>,
    pub unit: Option<String>,
}

/// Free text (reports, summaries). Free text can identify a person, so releases drop notes
/// until the free-text de-identification issue lands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub source_visit_id: Option<String>,
    pub date: NaiveDate,
    pub note_type: Option<String>,
    pub title: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageStudy {
    pub source_visit_id: Option<String>,
    pub date: NaiveDate,
    pub modality: Option<String>,
    pub study_uid: Option<String>,
    pub body_part: Option<String>,
    pub description: Option<String>,
    /// Path of the pixel data kept as a file in the workspace, when kept.
    pub file_ref: Option<String>,
}

/// One clinical fact of any table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum Fact {
    Person(PersonFact),
    Visit(Visit),
    Condition(Condition),
    Drug(Drug),
    Measurement(Measurement),
    Procedure(Procedure),
    Observation(ObservationFact),
    Note(Note),
    ImageStudy(ImageStudy),
}

impl Fact {
    pub fn table(&self) -> Table {
        match self {
            Fact::Person(_) => Table::Person,
            Fact::Visit(_) => Table::VisitOccurrence,
            Fact::Condition(_) => Table::ConditionOccurrence,
            Fact::Drug(_) => Table::DrugExposure,
            Fact::Measurement(_) => Table::Measurement,
            Fact::Procedure(_) => Table::ProcedureOccurrence,
            Fact::Observation(_) => Table::Observation,
            Fact::Note(_) => Table::Note,
            Fact::ImageStudy(_) => Table::ImageStudy,
        }
    }

    /// The date the fact happened (for persons: the birth date, if any).
    pub fn date(&self) -> Option<NaiveDate> {
        match self {
            Fact::Person(p) => p.birth_date,
            Fact::Visit(v) => Some(v.start_date),
            Fact::Condition(c) => Some(c.start_date),
            Fact::Drug(d) => Some(d.start_date),
            Fact::Measurement(m) => Some(m.date),
            Fact::Procedure(p) => Some(p.date),
            Fact::Observation(o) => Some(o.date),
            Fact::Note(n) => Some(n.date),
            Fact::ImageStudy(i) => Some(i.date),
        }
    }
}

/// What a reader produces for one unit of input (an HL7 message, a FHIR resource group, a
/// receipt): one patient of one handler, their identity as this unit states it, and facts,
/// each with its provenance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceFacts {
    /// The handler's patient ID. Readers fill it from the message (PID-3, Patient.identifier,
    /// the receipt's カルテ番号); it leaves the pipeline only into the vault.
    pub patient_id: String,
    pub identity: Option<Identity>,
    pub facts: Vec<(Fact, Provenance)>,
}
