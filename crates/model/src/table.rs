//! The tables of the clinical store and their Arrow schemas.
//!
//! Every table starts with `registration_id` (the internal, random key of one handler's
//! patient; linkage maps registrations to persons) and ends with the provenance columns
//! `handler_code`, `source_file`, `source_record`, `ingest_batch`. Releases drop provenance
//! and replace `registration_id` with a per-release pseudonym.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Column kinds used by the clinical schemas (kept small on purpose: strings, dates, numbers,
/// flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    Str,
    Date,
    F64,
    I32,
    Bool,
}

impl ColKind {
    pub fn data_type(self) -> DataType {
        match self {
            ColKind::Str => DataType::Utf8,
            ColKind::Date => DataType::Date32,
            ColKind::F64 => DataType::Float64,
            ColKind::I32 => DataType::Int32,
            ColKind::Bool => DataType::Boolean,
        }
    }
}

/// The internal key column every table starts with.
pub const REGISTRATION_ID: &str = "registration_id";
/// Provenance columns every table ends with.
pub const PROVENANCE_COLUMNS: [&str; 4] = [
    "handler_code",
    "source_file",
    "source_record",
    "ingest_batch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Person,
    VisitOccurrence,
    ConditionOccurrence,
    DrugExposure,
    Measurement,
    ProcedureOccurrence,
    Observation,
    Note,
    ImageStudy,
}

use ColKind::*;

const PERSON: &[(&str, ColKind)] = &[
    ("sex", Str),
    ("birth_date", Date),
    ("death_date", Date),
    ("prefecture", Str),
];
const VISIT: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("visit_type", Str),
    ("start_date", Date),
    ("end_date", Date),
    ("department", Str),
];
const CONDITION: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("start_date", Date),
    ("end_date", Date),
    ("code", Str),
    ("code_system", Str),
    ("source_code", Str),
    ("source_system", Str),
    ("source_name", Str),
    ("suspected", Bool),
    ("primary", Bool),
    ("outcome", Str),
];
const DRUG: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("start_date", Date),
    ("end_date", Date),
    ("code", Str),
    ("code_system", Str),
    ("source_code", Str),
    ("source_system", Str),
    ("source_name", Str),
    ("quantity", F64),
    ("unit", Str),
    ("days_supply", I32),
    ("route", Str),
    ("kind", Str),
];
const MEASUREMENT: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("date", Date),
    ("code", Str),
    ("code_system", Str),
    ("source_code", Str),
    ("source_system", Str),
    ("source_name", Str),
    ("value_number", F64),
    ("value_text", Str),
    ("unit", Str),
    ("range_low", F64),
    ("range_high", F64),
    ("abnormal_flag", Str),
];
const PROCEDURE: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("date", Date),
    ("code", Str),
    ("code_system", Str),
    ("source_code", Str),
    ("source_system", Str),
    ("source_name", Str),
    ("quantity", F64),
];
const OBSERVATION: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("date", Date),
    ("code", Str),
    ("code_system", Str),
    ("source_code", Str),
    ("source_system", Str),
    ("source_name", Str),
    ("value_number", F64),
    ("value_text", Str),
    ("unit", Str),
];
const NOTE: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("date", Date),
    ("note_type", Str),
    ("title", Str),
    ("text", Str),
];
const IMAGE_STUDY: &[(&str, ColKind)] = &[
    ("source_visit_id", Str),
    ("date", Date),
    ("modality", Str),
    ("study_uid", Str),
    ("body_part", Str),
    ("description", Str),
    ("file_ref", Str),
];

impl Table {
    pub const ALL: [Table; 9] = [
        Table::Person,
        Table::VisitOccurrence,
        Table::ConditionOccurrence,
        Table::DrugExposure,
        Table::Measurement,
        Table::ProcedureOccurrence,
        Table::Observation,
        Table::Note,
        Table::ImageStudy,
    ];

    /// The table's name in the store, in releases and in `stats --json`.
    pub fn name(self) -> &'static str {
        match self {
            Table::Person => "person",
            Table::VisitOccurrence => "visit_occurrence",
            Table::ConditionOccurrence => "condition_occurrence",
            Table::DrugExposure => "drug_exposure",
            Table::Measurement => "measurement",
            Table::ProcedureOccurrence => "procedure_occurrence",
            Table::Observation => "observation",
            Table::Note => "note",
            Table::ImageStudy => "image_study",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's own columns, between `registration_id` and the provenance columns.
    pub fn fact_columns(self) -> &'static [(&'static str, ColKind)] {
        match self {
            Table::Person => PERSON,
            Table::VisitOccurrence => VISIT,
            Table::ConditionOccurrence => CONDITION,
            Table::DrugExposure => DRUG,
            Table::Measurement => MEASUREMENT,
            Table::ProcedureOccurrence => PROCEDURE,
            Table::Observation => OBSERVATION,
            Table::Note => NOTE,
            Table::ImageStudy => IMAGE_STUDY,
        }
    }

    /// Names of the date columns (they are shifted per person in releases).
    pub fn date_columns(self) -> impl Iterator<Item = &'static str> {
        self.fact_columns()
            .iter()
            .filter(|(_, k)| *k == ColKind::Date)
            .map(|(n, _)| *n)
    }

    /// The full Arrow schema of the table in the clinical store.
    pub fn schema(self) -> SchemaRef {
        let mut fields = Vec::with_capacity(self.fact_columns().len() + 5);
        fields.push(Field::new(REGISTRATION_ID, DataType::Utf8, false));
        for (name, kind) in self.fact_columns() {
            let nullable = !matches!(*kind, ColKind::Bool);
            fields.push(Field::new(*name, kind.data_type(), nullable));
        }
        for name in PROVENANCE_COLUMNS {
            fields.push(Field::new(name, DataType::Utf8, false));
        }
        Arc::new(Schema::new(fields))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_key_and_provenance() {
        for t in Table::ALL {
            let s = t.schema();
            assert_eq!(s.field(0).name(), REGISTRATION_ID);
            let n = s.fields().len();
            for (i, p) in PROVENANCE_COLUMNS.iter().enumerate() {
                assert_eq!(s.field(n - 4 + i).name(), p);
            }
            assert_eq!(Table::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn coded_tables_keep_japanese_source_code_beside_standard_code() {
        for t in [
            Table::ConditionOccurrence,
            Table::DrugExposure,
            Table::Measurement,
            Table::ProcedureOccurrence,
            Table::Observation,
        ] {
            let s = t.schema();
            for c in [
                "code",
                "code_system",
                "source_code",
                "source_system",
                "source_name",
            ] {
                assert!(s.field_with_name(c).is_ok(), "{t} lacks {c}");
            }
        }
    }

    #[test]
    fn identity_columns_never_in_clinical_schemas() {
        for t in Table::ALL {
            for f in t.schema().fields() {
                for forbidden in [
                    "name_kanji",
                    "kana",
                    "address",
                    "postal",
                    "phone",
                    "insur",
                    "patient_id",
                ] {
                    assert!(
                        !f.name().contains(forbidden),
                        "{t}.{} looks like identity",
                        f.name()
                    );
                }
            }
        }
    }
}
