//! `summary.json`: the generator's own counts. Ingest tests compare what they read with these,
//! so every number here is incremented at the moment the record is written, never estimated.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::SynthFormat;
use crate::population::NoiseCounts;

/// Clinical record counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// (hospital, patient) registrations.
    pub registrations: u64,
    /// Visits (one per patient and date).
    pub visits: u64,
    /// Diagnoses (one per problem, recorded at the visit where first diagnosed).
    pub conditions: u64,
    /// Prescribed drugs (one per drug line of a prescription).
    pub drugs: u64,
    /// Lab results (measurements).
    pub labs: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.registrations += o.registrations;
        self.visits += o.visits;
        self.conditions += o.conditions;
        self.drugs += o.drugs;
        self.labs += o.labs;
    }
}

/// What the SS-MIX2 tree holds, file by file and segment by segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ssmix2Counts {
    pub files: u64,
    pub adt00_files: u64,
    pub ppr01_files: u64,
    pub omp01_files: u64,
    pub oml11_files: u64,
    /// PRB segments (= conditions).
    pub prb_segments: u64,
    /// RXE segments (= drugs).
    pub rxe_segments: u64,
    /// OBX segments in OML-11 messages (= labs).
    pub obx_segments: u64,
    /// Distinct (patient, date) folders holding order messages (= visits).
    pub visit_dates: u64,
}

/// What the FHIR bundles hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FhirCounts {
    pub files: u64,
    pub bundles: u64,
    pub patients: u64,
    pub coverages: u64,
    pub encounters: u64,
    pub conditions: u64,
    pub medication_requests: u64,
    pub observations: u64,
}

/// What RECEIPTC.UKE holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UkeCounts {
    /// RE records (one per patient and month with visits).
    pub receipts: u64,
    pub ho_records: u64,
    /// SY records (= conditions; each written once, in the receipt of its diagnosis month).
    pub sy_records: u64,
    /// SI records (= visits: one 初診料/再診料 line per visit day).
    pub si_records: u64,
    /// IY records (= drugs).
    pub iy_records: u64,
}

/// Data rows (header excluded) of each CSV file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CsvCounts {
    pub persons: u64,
    pub visits: u64,
    pub conditions: u64,
    pub drugs: u64,
    pub labs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HospitalSummary {
    pub code: String,
    pub name: String,
    pub formats: Vec<SynthFormat>,
    /// Everything generated for this hospital, whatever the formats.
    pub counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssmix2: Option<Ssmix2Counts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fhir: Option<FhirCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uke: Option<UkeCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvCounts>,
}

/// Opt-out file counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OptoutCounts {
    pub rows: u64,
    pub notices: u64,
    /// Registrations that never received a notice.
    pub never_notified: u64,
    /// Notices dated less than 30 days before the provision date (still waiting).
    pub notices_within_waiting_period: u64,
    pub stops: u64,
    pub deletes: u64,
}

/// The whole of `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SynthSummary {
    pub generator: String,
    pub seed: u64,
    pub persons: u64,
    pub hospitals: u32,
    pub formats: Vec<SynthFormat>,
    pub all_formats_per_hospital: bool,
    pub start_date: String,
    pub end_date: String,
    pub provision_date: String,
    /// Everything generated (each fact once, whatever the number of formats).
    pub totals: Counts,
    /// What a reader of each format should find, summed over the hospitals writing it.
    /// UKE carries no lab results, so its `labs` is 0.
    pub per_format: BTreeMap<String, Counts>,
    pub per_hospital: Vec<HospitalSummary>,
    /// Rows of truth.csv (= totals.registrations).
    pub truth_rows: u64,
    pub noise: NoiseCounts,
    pub optout: OptoutCounts,
}
