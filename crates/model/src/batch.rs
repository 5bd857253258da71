//! Builds Arrow record batches of the clinical tables from [`Fact`]s.
//!
//! One builder per ingest batch: facts of every table are appended row by row and flushed as
//! one [`RecordBatch`] per table. Callers flush whenever [`FactBatchBuilder::len`] passes their
//! batch size, so memory stays bounded whatever the input size.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, StringBuilder,
};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;

use crate::fact::{Fact, Provenance};
use crate::table::{ColKind, Table};

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

/// One cell, borrowed from a fact.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Str(Option<&'a str>),
    Date(Option<NaiveDate>),
    F64(Option<f64>),
    I32(Option<i32>),
    Bool(bool),
}

/// Days since 1970-01-01, Arrow's Date32.
pub fn date_to_days(d: NaiveDate) -> i32 {
    // 719_163 = days from 0001-01-01 (CE day 1) to 1970-01-01.
    chrono::Datelike::num_days_from_ce(&d) - 719_163
}

/// Inverse of [`date_to_days`].
pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(719_163)?)
}

/// The cells of a fact in the order of [`Table::fact_columns`].
pub fn cells(fact: &Fact) -> Vec<Cell<'_>> {
    use Cell::*;
    fn s(o: &Option<String>) -> Option<&str> {
        o.as_deref()
    }
    match fact {
        Fact::Person(p) => vec![
            Str(Some(p.sex.code())),
            Date(p.birth_date),
            Date(p.death_date),
            Str(s(&p.prefecture)),
        ],
        Fact::Visit(v) => vec![
            Str(s(&v.source_visit_id)),
            Str(Some(v.visit_type.code())),
            Date(Some(v.start_date)),
            Date(v.end_date),
            Str(s(&v.department)),
        ],
        Fact::Condition(c) => vec![
            Str(s(&c.source_visit_id)),
            Date(Some(c.start_date)),
            Date(c.end_date),
            Str(s(&c.code)),
            Str(s(&c.code_system)),
            Str(s(&c.source_code)),
            Str(s(&c.source_system)),
            Str(s(&c.source_name)),
            Bool(c.suspected),
            Bool(c.primary),
            Str(s(&c.outcome)),
        ],
        Fact::Drug(d) => vec![
            Str(s(&d.source_visit_id)),
            Date(Some(d.start_date)),
            Date(d.end_date),
            Str(s(&d.code)),
            Str(s(&d.code_system)),
            Str(s(&d.source_code)),
            Str(s(&d.source_system)),
            Str(s(&d.source_name)),
            F64(d.quantity),
            Str(s(&d.unit)),
            I32(d.days_supply),
            Str(s(&d.route)),
            Str(s(&d.kind)),
        ],
        Fact::Measurement(m) => vec![
            Str(s(&m.source_visit_id)),
            Date(Some(m.date)),
            Str(s(&m.code)),
            Str(s(&m.code_system)),
            Str(s(&m.source_code)),
            Str(s(&m.source_system)),
            Str(s(&m.source_name)),
            F64(m.value_number),
            Str(s(&m.value_text)),
            Str(s(&m.unit)),
            F64(m.range_low),
            F64(m.range_high),
            Str(s(&m.abnormal_flag)),
        ],
        Fact::Procedure(p) => vec![
            Str(s(&p.source_visit_id)),
            Date(Some(p.date)),
            Str(s(&p.code)),
            Str(s(&p.code_system)),
            Str(s(&p.source_code)),
            Str(s(&p.source_system)),
            Str(s(&p.source_name)),
            F64(p.quantity),
        ],
        Fact::Observation(o) => vec![
            Str(s(&o.source_visit_id)),
            Date(Some(o.date)),
            Str(s(&o.code)),
            Str(s(&o.code_system)),
            Str(s(&o.source_code)),
            Str(s(&o.source_system)),
            Str(s(&o.source_name)),
            F64(o.value_number),
            Str(s(&o.value_text)),
            Str(s(&o.unit)),
        ],
        Fact::Note(n) => vec![
            Str(s(&n.source_visit_id)),
            Date(Some(n.date)),
            Str(s(&n.note_type)),
            Str(s(&n.title)),
            Str(Some(n.text.as_str())),
        ],
        Fact::ImageStudy(i) => vec![
            Str(s(&i.source_visit_id)),
            Date(Some(i.date)),
            Str(s(&i.modality)),
            Str(s(&i.study_uid)),
            Str(s(&i.body_part)),
            Str(s(&i.description)),
            Str(s(&i.file_ref)),
        ],
    }
}

enum Col {
    Str(StringBuilder),
    Date(Date32Builder),
    F64(Float64Builder),
    I32(Int32Builder),
    Bool(BooleanBuilder),
}

impl Col {
    fn new(kind: ColKind) -> Col {
        match kind {
            ColKind::Str => Col::Str(StringBuilder::new()),
            ColKind::Date => Col::Date(Date32Builder::new()),
            ColKind::F64 => Col::F64(Float64Builder::new()),
            ColKind::I32 => Col::I32(Int32Builder::new()),
            ColKind::Bool => Col::Bool(BooleanBuilder::new()),
        }
    }

    fn push(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (Col::Str(b), Cell::Str(v)) => b.append_option(v),
            (Col::Date(b), Cell::Date(v)) => b.append_option(v.map(date_to_days)),
            (Col::F64(b), Cell::F64(v)) => b.append_option(v.filter(|x| x.is_finite())),
            (Col::I32(b), Cell::I32(v)) => b.append_option(v),
            (Col::Bool(b), Cell::Bool(v)) => b.append_value(v),
            // The cell order is fixed by `cells`, tested against the schema below; a mismatch
            // is a programming error caught by `cells_match_schema`.
            (Col::Str(b), _) => b.append_null(),
            (Col::Date(b), _) => b.append_null(),
            (Col::F64(b), _) => b.append_null(),
            (Col::I32(b), _) => b.append_null(),
            (Col::Bool(b), _) => b.append_value(false),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::Bool(b) => Arc::new(b.finish()),
        }
    }
}

struct TableBuilder {
    registration: StringBuilder,
    cols: Vec<Col>,
    provenance: [StringBuilder; 4],
    rows: usize,
}

impl TableBuilder {
    fn new(table: Table) -> Self {
        TableBuilder {
            registration: StringBuilder::new(),
            cols: table
                .fact_columns()
                .iter()
                .map(|(_, k)| Col::new(*k))
                .collect(),
            provenance: Default::default(),
            rows: 0,
        }
    }
}

/// Accumulates facts of all tables for one ingest batch.
pub struct FactBatchBuilder {
    ingest_batch: String,
    tables: BTreeMap<Table, TableBuilder>,
    rows: usize,
}

impl FactBatchBuilder {
    /// `ingest_batch` is the ID of the ingest batch these facts belong to (provenance).
    pub fn new(ingest_batch: impl Into<String>) -> Self {
        FactBatchBuilder {
            ingest_batch: ingest_batch.into(),
            tables: BTreeMap::new(),
            rows: 0,
        }
    }

    /// Appends one fact for the registration `registration_id`.
    pub fn push(&mut self, registration_id: &str, fact: &Fact, prov: &Provenance) {
        let table = fact.table();
        let tb = self
            .tables
            .entry(table)
            .or_insert_with(|| TableBuilder::new(table));
        tb.registration.append_value(registration_id);
        for (col, cell) in tb.cols.iter_mut().zip(cells(fact)) {
            col.push(cell);
        }
        tb.provenance[0].append_value(&prov.handler_code);
        tb.provenance[1].append_value(&prov.source_file);
        tb.provenance[2].append_value(&prov.source_record);
        tb.provenance[3].append_value(&self.ingest_batch);
        tb.rows += 1;
        self.rows += 1;
    }

    /// Rows buffered across all tables.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Finishes one record batch per table that received rows and resets the builder.
    pub fn finish(&mut self) -> Result<Vec<(Table, RecordBatch)>, BatchError> {
        let mut out = Vec::new();
        for (table, tb) in std::mem::take(&mut self.tables) {
            let mut tb = tb;
            if tb.rows == 0 {
                continue;
            }
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(tb.cols.len() + 5);
            arrays.push(Arc::new(tb.registration.finish()));
            for c in &mut tb.cols {
                arrays.push(c.finish());
            }
            for p in &mut tb.provenance {
                arrays.push(Arc::new(p.finish()));
            }
            out.push((table, RecordBatch::try_new(table.schema(), arrays)?));
        }
        self.rows = 0;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::*;
    use crate::identity::Sex;

    fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, dd).expect("valid date")
    }

    fn one_of_each() -> Vec<Fact> {
        vec![
            Fact::Person(PersonFact {
                sex: Sex::Female,
                birth_date: Some(d(1950, 1, 2)),
                ..Default::default()
            }),
            Fact::Visit(Visit {
                start_date: d(2020, 1, 1),
                ..Default::default()
            }),
            Fact::Condition(Condition {
                start_date: d(2020, 1, 1),
                code: Some("E11".into()),
                ..Default::default()
            }),
            Fact::Drug(Drug {
                start_date: d(2020, 1, 1),
                days_supply: Some(14),
                quantity: Some(f64::NAN),
                ..Default::default()
            }),
            Fact::Measurement(Measurement {
                date: d(2020, 1, 1),
                value_number: Some(6.5),
                ..Default::default()
            }),
            Fact::Procedure(Procedure {
                date: d(2020, 1, 1),
                ..Default::default()
            }),
            Fact::Observation(ObservationFact {
                date: d(2020, 1, 1),
                ..Default::default()
            }),
            Fact::Note(Note {
                date: d(2020, 1, 1),
                text: "所見".into(),
                ..Default::default()
            }),
            Fact::ImageStudy(ImageStudy {
                date: d(2020, 1, 1),
                ..Default::default()
            }),
        ]
    }

    #[test]
    fn cells_match_schema() {
        for f in one_of_each() {
            let t = f.table();
            let cols = t.fact_columns();
            let cs = cells(&f);
            assert_eq!(cs.len(), cols.len(), "{t}");
            for (c, (name, kind)) in cs.iter().zip(cols) {
                let ok = matches!(
                    (c, kind),
                    (Cell::Str(_), ColKind::Str)
                        | (Cell::Date(_), ColKind::Date)
                        | (Cell::F64(_), ColKind::F64)
                        | (Cell::I32(_), ColKind::I32)
                        | (Cell::Bool(_), ColKind::Bool)
                );
                assert!(ok, "{t}.{name}");
            }
        }
    }

    #[test]
    fn builds_one_batch_per_table() {
        let mut b = FactBatchBuilder::new("B1");
        let prov = Provenance {
            handler_code: "H1".into(),
            source_file: "f".into(),
            source_record: "r".into(),
        };
        for f in one_of_each() {
            b.push("R1", &f, &prov);
        }
        assert_eq!(b.len(), 9);
        let batches = b.finish().expect("batches");
        assert_eq!(batches.len(), 9);
        for (t, rb) in &batches {
            assert_eq!(rb.num_rows(), 1, "{t}");
            assert_eq!(rb.schema(), t.schema());
        }
        assert!(b.is_empty());
    }

    #[test]
    fn date_conversion_round_trips() {
        for date in [d(1970, 1, 1), d(1900, 2, 28), d(2024, 2, 29)] {
            assert_eq!(days_to_date(date_to_days(date)), Some(date));
        }
        assert_eq!(date_to_days(d(1970, 1, 2)), 1);
    }
}
