//! FHIR R4: Bundles (transaction, collection, document — JP-CLINS, 健診結果報告書, Synthea),
//! single resources, and Bulk Data NDJSON, with JP Core conventions.
//!
//! The serde model covers only the resources and elements kiban reads; every element is
//! optional so that profiles that leave things out still parse. Units: a Bundle is split into
//! patient groups (the Patient and every resource that references it) and each group is
//! accepted or quarantined as a whole; an NDJSON line is a unit of its own. NDJSON resources
//! reference `Patient/{id}`: the [`FhirContext`] resolves that id to the handler's patient ID
//! through the export's `Patient*.ndjson` file, read once per folder and keeping only ids.
//!
//! JP Core conventions: the kanji name carries the iso21090-EN-representation extension
//! `IDE`, the kana name `SYL`; the hospital patient ID is the identifier whose system is
//! `urn:oid:1.2.392.100495.20.3.51.1{医療機関コード}`; insurance symbol/number/branch are the
//! Coverage extensions `JP_Coverage_InsuredPersonSymbol|Number|SubNumber` (and the JP-CLINS
//! `JP_Insurance_memberID` identifier `insurer:symbol:number:branch`); 資格取得年月日 is
//! Coverage.period.start (as the JAMI SS-MIX2→FHIR map puts IN1-12 there).

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use kiban_model::{
    Condition, Drug, Fact, Identity, ImageStudy, Measurement, ObservationFact, PersonFact,
    Procedure, Provenance, Sex, SourceFacts, Visit, VisitType,
};
use serde::Deserialize;
use serde_json::Value;

use crate::limits::{BoundedLines, Limits, Line, read_capped, too_large_reason};
use crate::util::{
    iso, opt, parse_date, parse_day, prefecture_of, source_system_name, standard_system,
};
use crate::{Emitter, IngestError, Item, QuarantineCode, SourceFile};

/// Why bytes are not FHIR JSON. Positions only, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    #[error("not valid JSON (line {line}, column {column})")]
    Json { line: usize, column: usize },
    #[error("not UTF-8 text (invalid byte sequence at byte {offset}); FHIR JSON must be UTF-8")]
    NotUtf8 { offset: usize },
    #[error("not a FHIR resource: the JSON object has no resourceType")]
    NoResourceType,
    #[error("not a FHIR resource: the JSON value is not an object")]
    NotObject,
}

impl FhirError {
    /// The quarantine code of this error.
    pub fn code(&self) -> QuarantineCode {
        match self {
            FhirError::Json { .. } | FhirError::NotObject => QuarantineCode::Parse,
            FhirError::NotUtf8 { .. } => QuarantineCode::Encoding,
            FhirError::NoResourceType => QuarantineCode::MissingField,
        }
    }
}

/// The JSON error for `bytes`, refined to [`FhirError::NotUtf8`] when the bytes are not text
/// at all (only computed on the error path, so valid input pays nothing).
fn json_error(bytes: &[u8], e: &serde_json::Error) -> FhirError {
    match std::str::from_utf8(bytes) {
        Err(u) => FhirError::NotUtf8 {
            offset: u.valid_up_to(),
        },
        Ok(_) => FhirError::Json {
            line: e.line(),
            column: e.column(),
        },
    }
}

/// A parsed FHIR JSON document.
#[derive(Debug, Clone, PartialEq)]
pub enum FhirDocument {
    /// A Bundle: its type and entries (fullUrl, resource).
    Bundle {
        bundle_type: Option<String>,
        entries: Vec<(Option<String>, Option<Value>)>,
    },
    /// Any other resource.
    Resource(Value),
}

/// Parses one FHIR JSON document (a Bundle or a resource). Never panics (serde_json limits
/// nesting depth), whatever the bytes.
pub fn parse_fhir_json(bytes: &[u8]) -> Result<FhirDocument, FhirError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| json_error(bytes, &e))?;
    document_from_value(v)
}

fn document_from_value(mut v: Value) -> Result<FhirDocument, FhirError> {
    let obj = v.as_object_mut().ok_or(FhirError::NotObject)?;
    let rt = obj
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(FhirError::NoResourceType)?;
    if rt != "Bundle" {
        return Ok(FhirDocument::Resource(v));
    }
    let bundle_type = obj.get("type").and_then(Value::as_str).map(str::to_string);
    let entries = match obj.remove("entry") {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|mut e| {
                let full = e.get("fullUrl").and_then(Value::as_str).map(str::to_string);
                let res = e.as_object_mut().and_then(|o| o.remove("resource"));
                (full, res)
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(FhirDocument::Bundle {
        bundle_type,
        entries,
    })
}

// ---------------------------------------------------------------- serde model (subset of R4)

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Coding {
    system: Option<String>,
    code: Option<String>,
    display: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CodeableConcept {
    coding: Vec<Coding>,
    text: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Reference {
    reference: Option<String>,
    display: Option<String>,
    identifier: Option<Identifier>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Identifier {
    system: Option<String>,
    value: Option<String>,
    #[serde(rename = "type")]
    kind: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Extension {
    url: String,
    value_code: Option<String>,
    value_string: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct HumanName {
    extension: Vec<Extension>,
    #[serde(rename = "use")]
    use_: Option<String>,
    text: Option<String>,
    family: Option<String>,
    given: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Address {
    text: Option<String>,
    line: Vec<String>,
    city: Option<String>,
    district: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ContactPoint {
    system: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Period {
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Quantity {
    value: Option<f64>,
    unit: Option<String>,
    code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RefRange {
    low: Option<Quantity>,
    high: Option<Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Patient {
    id: Option<String>,
    identifier: Vec<Identifier>,
    name: Vec<HumanName>,
    telecom: Vec<ContactPoint>,
    gender: Option<String>,
    birth_date: Option<String>,
    deceased_date_time: Option<String>,
    address: Vec<Address>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ClassHistory {
    period: Option<Period>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Encounter {
    id: Option<String>,
    identifier: Vec<Identifier>,
    class: Option<Coding>,
    class_history: Vec<ClassHistory>,
    period: Option<Period>,
    service_type: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ConditionR {
    code: Option<CodeableConcept>,
    clinical_status: Option<CodeableConcept>,
    verification_status: Option<CodeableConcept>,
    onset_date_time: Option<String>,
    onset_period: Option<Period>,
    recorded_date: Option<String>,
    abatement_date_time: Option<String>,
    encounter: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DoseAndRate {
    dose_quantity: Option<Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Dosage {
    route: Option<CodeableConcept>,
    dose_and_rate: Vec<DoseAndRate>,
    dose: Option<Quantity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DispenseRequest {
    expected_supply_duration: Option<Quantity>,
    validity_period: Option<Period>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Medication {
    medication_codeable_concept: Option<CodeableConcept>,
    medication_reference: Option<Reference>,
    authored_on: Option<String>,
    effective_date_time: Option<String>,
    effective_period: Option<Period>,
    date_asserted: Option<String>,
    dosage_instruction: Vec<Dosage>,
    dosage: Option<Dosage>,
    dispense_request: Option<DispenseRequest>,
    encounter: Option<Reference>,
    context: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Immunization {
    vaccine_code: Option<CodeableConcept>,
    occurrence_date_time: Option<String>,
    encounter: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Component {
    code: Option<CodeableConcept>,
    value_quantity: Option<Quantity>,
    value_string: Option<String>,
    value_codeable_concept: Option<CodeableConcept>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Observation {
    status: Option<String>,
    category: Vec<CodeableConcept>,
    code: Option<CodeableConcept>,
    effective_date_time: Option<String>,
    effective_period: Option<Period>,
    effective_instant: Option<String>,
    issued: Option<String>,
    value_quantity: Option<Quantity>,
    value_string: Option<String>,
    value_codeable_concept: Option<CodeableConcept>,
    value_boolean: Option<bool>,
    value_integer: Option<i64>,
    interpretation: Vec<CodeableConcept>,
    reference_range: Vec<RefRange>,
    component: Vec<Component>,
    encounter: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ProcedureR {
    status: Option<String>,
    code: Option<CodeableConcept>,
    performed_date_time: Option<String>,
    performed_period: Option<Period>,
    encounter: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Series {
    modality: Option<Coding>,
    body_site: Option<Coding>,
    started: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ImagingStudyR {
    identifier: Vec<Identifier>,
    started: Option<String>,
    modality: Vec<Coding>,
    series: Vec<Series>,
    description: Option<String>,
    encounter: Option<Reference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Coverage {
    extension: Vec<Extension>,
    subscriber_id: Option<String>,
    dependent: Option<String>,
    payor: Vec<Reference>,
    period: Option<Period>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Allergy {
    code: Option<CodeableConcept>,
    category: Vec<String>,
    recorded_date: Option<String>,
    onset_date_time: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Organization {
    identifier: Vec<Identifier>,
}

// ---------------------------------------------------------------- helpers

fn rtype(v: &Value) -> &str {
    v.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

/// The reference to the patient a resource is about (subject, patient, beneficiary).
fn patient_ref(v: &Value) -> Option<String> {
    ["subject", "patient", "beneficiary"]
        .iter()
        .find_map(|k| {
            v.get(*k)
                .and_then(|r| r.get("reference"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
}

/// Resources kiban reads (clinical facts or identity parts).
fn is_read(rt: &str) -> bool {
    matches!(
        rt,
        "Patient"
            | "Encounter"
            | "Condition"
            | "MedicationRequest"
            | "MedicationStatement"
            | "MedicationAdministration"
            | "Immunization"
            | "Observation"
            | "Procedure"
            | "ImagingStudy"
            | "Coverage"
            | "AllergyIntolerance"
    )
}

struct Codes {
    code: Option<String>,
    code_system: Option<String>,
    source_code: Option<String>,
    source_system: Option<String>,
    source_name: Option<String>,
}

/// Standard code (ICD-10, SNOMED, LOINC, JLAC10, YJ, HOT, RxNorm) and the Japanese source code
/// (MEDIS 病名, local `urn:oid:1.2.392…` systems) side by side.
fn codes(cc: Option<&CodeableConcept>) -> Codes {
    let empty = CodeableConcept::default();
    let cc = cc.unwrap_or(&empty);
    let sys = |c: &Coding| c.system.clone().unwrap_or_default();
    let std = cc
        .coding
        .iter()
        .find(|c| c.code.is_some() && standard_system(&sys(c)).is_some());
    let jp = cc.coding.iter().find(|c| {
        let s = sys(c);
        c.code.is_some()
            && (s.contains("1.2.392")
                || s.contains("medis.or.jp")
                || s.contains("jpfhir")
                || s.contains("jami.jp"))
    });
    let src = jp.or(std).or(cc.coding.iter().find(|c| c.code.is_some()));
    Codes {
        code: std.and_then(|c| c.code.clone()),
        code_system: std
            .and_then(|c| standard_system(&sys(c)))
            .map(str::to_string),
        source_code: src.and_then(|c| c.code.clone()),
        source_system: src.and_then(|c| opt(source_system_name(&sys(c)))),
        source_name: cc.text.clone().and_then(opt).or_else(|| {
            cc.coding
                .iter()
                .find_map(|c| c.display.clone().and_then(opt))
        }),
    }
}

fn cc_code(cc: Option<&CodeableConcept>) -> Option<String> {
    cc.and_then(|c| c.coding.iter().find_map(|x| x.code.clone()))
}

fn visit_ref(r: &Option<Reference>) -> Option<String> {
    r.as_ref()
        .and_then(|r| r.reference.clone())
        .map(|s| s.rsplit(['/', ':']).next().unwrap_or(&s).to_string())
}

/// The handler's patient ID among a Patient's identifiers (see the module doc for the order).
fn preferred_patient_id(p: &Patient, full_url: Option<&str>) -> Option<String> {
    let val = |i: &Identifier| i.value.clone().and_then(opt);
    let sys = |i: &Identifier| i.system.clone().unwrap_or_default();
    let insurance = |i: &Identifier| sys(i).to_ascii_lowercase().contains("insurance");
    p.identifier
        .iter()
        .find(|i| sys(i).starts_with("urn:oid:1.2.392.100495.20.3.51."))
        .and_then(val)
        .or_else(|| {
            p.identifier
                .iter()
                .find(|i| {
                    i.kind
                        .as_ref()
                        .is_some_and(|k| k.coding.iter().any(|c| c.code.as_deref() == Some("MR")))
                })
                .and_then(val)
        })
        .or_else(|| {
            p.identifier
                .iter()
                .find(|i| sys(i).starts_with("urn:oid:1.2.392.200119.6.102."))
                .and_then(val)
        })
        .or_else(|| {
            p.identifier
                .iter()
                .find(|i| !insurance(i) && val(i).is_some())
                .and_then(val)
        })
        .or_else(|| p.id.clone().and_then(opt))
        .or_else(|| full_url.map(str::to_string))
}

enum NameKind {
    Kanji,
    Kana,
    Alpha,
}

fn name_kind(n: &HumanName, text: &str) -> NameKind {
    let rep = n
        .extension
        .iter()
        .find(|e| e.url.ends_with("iso21090-EN-representation"))
        .and_then(|e| e.value_code.clone());
    match rep.as_deref() {
        Some("IDE") => NameKind::Kanji,
        Some("SYL") => NameKind::Kana,
        Some("ABC") => NameKind::Alpha,
        _ => {
            let letters: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
            if letters.iter().all(|c| c.is_ascii()) {
                NameKind::Alpha
            } else if letters
                .iter()
                .all(|c| matches!(*c as u32, 0x3040..=0x30FF | 0xFF65..=0xFF9F))
            {
                NameKind::Kana
            } else {
                NameKind::Kanji
            }
        }
    }
}

fn identity_of(p: &Patient, patient_id: &str) -> Identity {
    let mut id = Identity::new(patient_id);
    // Official names first; maiden and old names do not describe the patient today.
    let mut names: Vec<&HumanName> = p.name.iter().collect();
    names.sort_by_key(|n| match n.use_.as_deref() {
        Some("official") | Some("usual") | None => 0,
        _ => 1,
    });
    for n in names {
        let text = n.text.clone().and_then(opt).unwrap_or_else(|| {
            let mut parts: Vec<String> = n.family.iter().cloned().collect();
            parts.push(n.given.join(" "));
            parts
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        });
        if text.is_empty() {
            continue;
        }
        let slot = match name_kind(n, &text) {
            NameKind::Kanji => &mut id.name_kanji,
            NameKind::Kana => &mut id.name_kana,
            NameKind::Alpha => &mut id.name_alpha,
        };
        if slot.is_none() {
            *slot = Some(text);
        }
    }
    id.birth_date = p.birth_date.as_deref().and_then(parse_date).map(iso);
    // a birthDate that is no date stays linkage evidence (kiban_model::date)
    id.birth_date_text = p
        .birth_date
        .as_deref()
        .filter(|_| id.birth_date.is_none())
        .and_then(opt);
    id.death_date = p
        .deceased_date_time
        .as_deref()
        .and_then(parse_date)
        .map(iso);
    id.sex = Sex::parse(p.gender.as_deref().unwrap_or(""));
    if let Some(a) = p.address.first() {
        id.postal_code = a.postal_code.clone().and_then(opt);
        id.address = a.text.clone().and_then(opt).or_else(|| {
            let parts: Vec<String> = [a.state.clone(), a.city.clone(), a.district.clone()]
                .into_iter()
                .flatten()
                .chain(a.line.iter().cloned())
                .collect();
            opt(parts.join(" "))
        });
    }
    id.phone = p
        .telecom
        .iter()
        .find(|t| t.system.as_deref() == Some("phone"))
        .and_then(|t| t.value.clone())
        .and_then(opt);
    // JP-CLINS: `insurer:symbol:number:branch`.
    if let Some(m) = p.identifier.iter().find(|i| {
        i.system
            .as_deref()
            .is_some_and(|s| s.ends_with("JP_Insurance_memberID"))
    }) {
        let parts: Vec<String> = m
            .value
            .clone()
            .unwrap_or_default()
            .split(':')
            .map(str::to_string)
            .collect();
        id.insurer_number = parts.first().cloned().and_then(opt);
        id.insured_symbol = parts.get(1).cloned().and_then(opt);
        id.insured_number = parts.get(2).cloned().and_then(opt);
        id.insured_branch = parts.get(3).cloned().and_then(opt);
    }
    id
}

fn person_of(id: &Identity, p: &Patient) -> PersonFact {
    PersonFact {
        sex: id.sex,
        birth_date: id.birth_date.as_deref().and_then(parse_date),
        death_date: id.death_date.as_deref().and_then(parse_date),
        prefecture: p.address.first().and_then(|a| {
            a.state
                .as_deref()
                .and_then(prefecture_of)
                .or_else(|| id.address.as_deref().and_then(prefecture_of))
        }),
    }
}

/// What one resource contributes.
enum Mapped {
    Patient(Box<Identity>, PersonFact),
    Facts(Vec<Fact>),
    /// Insurance fields for the identity (Coverage), and what was dropped from them (counted
    /// as ignored: an optional field is not worth the unit).
    Insurance(Box<Identity>, Option<&'static str>),
    Ignored(String),
}

/// Why a resource could not be read: the field and reason, never a value.
struct ResErr {
    field: Option<String>,
    code: QuarantineCode,
    reason: String,
}

fn shape_err(rt: &str) -> ResErr {
    ResErr {
        field: Some(rt.to_string()),
        code: QuarantineCode::Parse,
        reason: format!(
            "{rt} does not match the FHIR R4 shape (an element has the wrong JSON type)"
        ),
    }
}

fn de<T: for<'a> Deserialize<'a>>(v: &Value, rt: &str) -> Result<T, ResErr> {
    T::deserialize(v).map_err(|_| shape_err(rt))
}

fn date_of(cands: &[Option<&str>]) -> Option<NaiveDate> {
    cands.iter().flatten().find_map(|s| parse_date(s))
}

/// Maps one resource. `orgs` resolves Coverage.payor to the insurer number.
fn map_resource(
    v: &Value,
    full_url: Option<&str>,
    orgs: &HashMap<String, String>,
) -> Result<Mapped, ResErr> {
    let rt = rtype(v);
    match rt {
        "Patient" => {
            let p: Patient = de(v, rt)?;
            let pid = preferred_patient_id(&p, full_url).ok_or_else(|| ResErr {
                field: Some("Patient.identifier".into()),
                code: QuarantineCode::MissingField,
                reason: "the Patient has no identifier and no id".into(),
            })?;
            let id = identity_of(&p, &pid);
            let person = person_of(&id, &p);
            Ok(Mapped::Patient(Box::new(id), person))
        }
        "Coverage" => {
            let c: Coverage = de(v, rt)?;
            let mut id = Identity::new("");
            let ext = |suffix: &str| {
                c.extension
                    .iter()
                    .find(|e| e.url.ends_with(suffix))
                    .and_then(|e| e.value_string.clone())
                    .and_then(opt)
            };
            id.insured_symbol = ext("JP_Coverage_InsuredPersonSymbol");
            id.insured_number = ext("JP_Coverage_InsuredPersonNumber").or_else(|| {
                // Without the JP extensions the subscriberId is the insured number.
                if id.insured_symbol.is_none() {
                    c.subscriber_id.clone().and_then(opt)
                } else {
                    None
                }
            });
            id.insured_branch = ext("JP_Coverage_InsuredPersonSubNumber")
                .or_else(|| c.dependent.clone().and_then(opt));
            id.insurer_number = c.payor.iter().find_map(|p| {
                p.identifier
                    .as_ref()
                    .and_then(|i| i.value.clone())
                    .or_else(|| p.reference.as_ref().and_then(|r| orgs.get(r).cloned()))
            });
            // 資格取得年月日. A value that is not a whole day is dropped, like a bad birthDate,
            // so the patient's group stays.
            let start = c.period.as_ref().and_then(|p| p.start.as_deref());
            id.insured_since = start.and_then(parse_day).map(iso);
            let dropped = (id.insured_since.is_none()
                && start.is_some_and(|s| !s.trim().is_empty()))
            .then_some("Coverage.period.start not a full date: 資格取得日 dropped");
            Ok(Mapped::Insurance(Box::new(id), dropped))
        }
        "Encounter" => {
            let e: Encounter = de(v, rt)?;
            let start = date_of(&[
                e.period.as_ref().and_then(|p| p.start.as_deref()),
                e.class_history
                    .first()
                    .and_then(|h| h.period.as_ref())
                    .and_then(|p| p.start.as_deref()),
            ]);
            let Some(start_date) = start else {
                return Ok(Mapped::Ignored("Encounter without a date".into()));
            };
            let vt = VisitType::parse(
                e.class
                    .as_ref()
                    .and_then(|c| c.code.as_deref())
                    .unwrap_or(""),
            );
            Ok(Mapped::Facts(vec![Fact::Visit(Visit {
                source_visit_id: e
                    .identifier
                    .iter()
                    .find_map(|i| i.value.clone())
                    .or(e.id.clone()),
                visit_type: vt,
                start_date,
                end_date: e
                    .period
                    .as_ref()
                    .and_then(|p| p.end.as_deref())
                    .and_then(parse_date)
                    .filter(|d| *d >= start_date),
                department: e.service_type.as_ref().and_then(|s| {
                    s.text.clone().or_else(|| {
                        s.coding
                            .iter()
                            .find_map(|c| c.display.clone().or(c.code.clone()))
                    })
                }),
            })]))
        }
        "Condition" => {
            let c: ConditionR = de(v, rt)?;
            let ver = cc_code(c.verification_status.as_ref()).unwrap_or_default();
            if ver == "entered-in-error" || ver == "refuted" {
                return Ok(Mapped::Ignored(format!("Condition {ver}")));
            }
            let Some(start_date) = date_of(&[
                c.onset_date_time.as_deref(),
                c.onset_period.as_ref().and_then(|p| p.start.as_deref()),
                c.recorded_date.as_deref(),
            ]) else {
                return Ok(Mapped::Ignored(
                    "Condition without onset or recorded date".into(),
                ));
            };
            let k = codes(c.code.as_ref());
            if k.source_code.is_none() && k.source_name.is_none() {
                return Ok(Mapped::Ignored("Condition without code or text".into()));
            }
            Ok(Mapped::Facts(vec![Fact::Condition(Condition {
                source_visit_id: visit_ref(&c.encounter),
                start_date,
                end_date: c
                    .abatement_date_time
                    .as_deref()
                    .and_then(parse_date)
                    .filter(|d| *d >= start_date),
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                suspected: matches!(ver.as_str(), "provisional" | "differential" | "unconfirmed"),
                primary: false,
                outcome: cc_code(c.clinical_status.as_ref()),
            })]))
        }
        "MedicationRequest" | "MedicationStatement" | "MedicationAdministration" => {
            let m: Medication = de(v, rt)?;
            let start = date_of(&[
                m.authored_on.as_deref(),
                m.effective_date_time.as_deref(),
                m.effective_period.as_ref().and_then(|p| p.start.as_deref()),
                m.dispense_request
                    .as_ref()
                    .and_then(|d| d.validity_period.as_ref())
                    .and_then(|p| p.start.as_deref()),
                m.date_asserted.as_deref(),
            ]);
            let Some(start_date) = start else {
                return Ok(Mapped::Ignored(format!("{rt} without a date")));
            };
            let mut k = codes(m.medication_codeable_concept.as_ref());
            if k.source_code.is_none() && k.source_name.is_none() {
                k.source_name = m
                    .medication_reference
                    .as_ref()
                    .and_then(|r| r.display.clone());
                if k.source_name.is_none() {
                    return Ok(Mapped::Ignored(format!(
                        "{rt} without a medication code (medicationReference not resolved)"
                    )));
                }
            }
            let dosage = m.dosage_instruction.first().or(m.dosage.as_ref());
            let dose = dosage.and_then(|d| {
                d.dose_and_rate
                    .first()
                    .and_then(|r| r.dose_quantity.clone())
                    .or(d.dose.clone())
            });
            let days = m
                .dispense_request
                .as_ref()
                .and_then(|d| d.expected_supply_duration.as_ref())
                .and_then(|q| {
                    let unit = q
                        .code
                        .clone()
                        .or(q.unit.clone())
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    (unit == "d" || unit.starts_with("day") || unit == "日")
                        .then_some(q.value)
                        .flatten()
                        .map(|v| v as i32)
                });
            let route = dosage
                .and_then(|d| d.route.as_ref())
                .and_then(|r| cc_code(Some(r)).or(r.text.clone()));
            let kind = match rt {
                "MedicationAdministration" => "administration",
                _ if route.as_deref().is_some_and(|r| {
                    let r = r.to_ascii_lowercase();
                    r.contains("iv") || r.contains("inj") || r.contains("注")
                }) =>
                {
                    "injection"
                }
                _ => "prescription",
            };
            let end = m
                .effective_period
                .as_ref()
                .and_then(|p| p.end.as_deref())
                .and_then(parse_date)
                .or_else(|| {
                    days.filter(|d| *d > 0)
                        .and_then(|d| start_date.checked_add_days(chrono::Days::new(d as u64 - 1)))
                });
            Ok(Mapped::Facts(vec![Fact::Drug(Drug {
                source_visit_id: visit_ref(&m.encounter).or_else(|| visit_ref(&m.context)),
                start_date,
                end_date: end.filter(|e| *e >= start_date),
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                quantity: dose.as_ref().and_then(|q| q.value),
                unit: dose.and_then(|q| q.unit.or(q.code)),
                days_supply: days,
                route,
                kind: Some(kind.to_string()),
            })]))
        }
        "Immunization" => {
            let i: Immunization = de(v, rt)?;
            let Some(start_date) = date_of(&[i.occurrence_date_time.as_deref()]) else {
                return Ok(Mapped::Ignored("Immunization without a date".into()));
            };
            let k = codes(i.vaccine_code.as_ref());
            Ok(Mapped::Facts(vec![Fact::Drug(Drug {
                source_visit_id: visit_ref(&i.encounter),
                start_date,
                end_date: None,
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                kind: Some("immunization".into()),
                ..Default::default()
            })]))
        }
        "Observation" => map_observation(v),
        "AllergyIntolerance" => {
            let a: Allergy = de(v, rt)?;
            let Some(date) = date_of(&[a.onset_date_time.as_deref(), a.recorded_date.as_deref()])
            else {
                return Ok(Mapped::Ignored("AllergyIntolerance without a date".into()));
            };
            let k = codes(a.code.as_ref());
            Ok(Mapped::Facts(vec![Fact::Observation(ObservationFact {
                source_visit_id: None,
                date,
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                value_number: None,
                value_text: Some(format!("allergy: {}", a.category.join(","))),
                unit: None,
            })]))
        }
        "Procedure" => {
            let p: ProcedureR = de(v, rt)?;
            if matches!(
                p.status.as_deref(),
                Some("entered-in-error" | "not-done" | "preparation")
            ) {
                return Ok(Mapped::Ignored(format!(
                    "Procedure {}",
                    p.status.unwrap_or_default()
                )));
            }
            let Some(date) = date_of(&[
                p.performed_date_time.as_deref(),
                p.performed_period.as_ref().and_then(|x| x.start.as_deref()),
            ]) else {
                return Ok(Mapped::Ignored("Procedure without a date".into()));
            };
            let k = codes(p.code.as_ref());
            Ok(Mapped::Facts(vec![Fact::Procedure(Procedure {
                source_visit_id: visit_ref(&p.encounter),
                date,
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                quantity: None,
            })]))
        }
        "ImagingStudy" => {
            let s: ImagingStudyR = de(v, rt)?;
            let Some(date) = date_of(&[
                s.started.as_deref(),
                s.series.first().and_then(|x| x.started.as_deref()),
            ]) else {
                return Ok(Mapped::Ignored("ImagingStudy without a date".into()));
            };
            Ok(Mapped::Facts(vec![Fact::ImageStudy(ImageStudy {
                source_visit_id: visit_ref(&s.encounter),
                date,
                modality: s
                    .modality
                    .first()
                    .or(s.series.first().and_then(|x| x.modality.as_ref()))
                    .and_then(|c| c.code.clone()),
                study_uid: s
                    .identifier
                    .iter()
                    .find_map(|i| i.value.clone())
                    .map(|u| u.trim_start_matches("urn:oid:").to_string()),
                body_part: s
                    .series
                    .first()
                    .and_then(|x| x.body_site.as_ref())
                    .and_then(|c| c.display.clone().or(c.code.clone())),
                description: s.description,
                file_ref: None,
            })]))
        }
        other => Ok(Mapped::Ignored(format!("{other}: not read"))),
    }
}

fn map_observation(v: &Value) -> Result<Mapped, ResErr> {
    let o: Observation = de(v, "Observation")?;
    if matches!(o.status.as_deref(), Some("entered-in-error" | "cancelled")) {
        return Ok(Mapped::Ignored(format!(
            "Observation {}",
            o.status.unwrap_or_default()
        )));
    }
    let Some(date) = date_of(&[
        o.effective_date_time.as_deref(),
        o.effective_period.as_ref().and_then(|p| p.start.as_deref()),
        o.effective_instant.as_deref(),
        o.issued.as_deref(),
    ]) else {
        return Ok(Mapped::Ignored("Observation without a date".into()));
    };
    let cats: Vec<String> = o
        .category
        .iter()
        .flat_map(|c| c.coding.iter().filter_map(|x| x.code.clone()))
        .collect();
    let lab_like = cats.iter().any(|c| {
        matches!(
            c.as_str(),
            "laboratory" | "vital-signs" | "body-measurement"
        )
    });
    let (lo, hi) = o
        .reference_range
        .first()
        .map(|r| {
            (
                r.low.as_ref().and_then(|q| q.value),
                r.high.as_ref().and_then(|q| q.value),
            )
        })
        .unwrap_or((None, None));
    let flag = o.interpretation.first().and_then(|i| cc_code(Some(i)));
    let visit = visit_ref(&o.encounter);
    let mut facts = Vec::new();
    let mut one = |cc: Option<&CodeableConcept>,
                   q: Option<&Quantity>,
                   s: Option<String>,
                   c: Option<&CodeableConcept>,
                   with_range: bool| {
        let k = codes(cc);
        let measurable = q.is_some()
            && (lab_like || matches!(k.code_system.as_deref(), Some("LOINC" | "JLAC10")));
        let text = s.or_else(|| {
            c.and_then(|c| {
                c.text.clone().or_else(|| {
                    c.coding
                        .iter()
                        .find_map(|x| x.display.clone().or(x.code.clone()))
                })
            })
        });
        if measurable || (lab_like && q.is_some()) {
            facts.push(Fact::Measurement(Measurement {
                source_visit_id: visit.clone(),
                date,
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                value_number: q.and_then(|q| q.value),
                value_text: None,
                unit: q.and_then(|q| q.unit.clone().or(q.code.clone())),
                range_low: if with_range { lo } else { None },
                range_high: if with_range { hi } else { None },
                abnormal_flag: if with_range { flag.clone() } else { None },
            }));
        } else if q.is_some() || text.is_some() {
            facts.push(Fact::Observation(ObservationFact {
                source_visit_id: visit.clone(),
                date,
                code: k.code,
                code_system: k.code_system,
                source_code: k.source_code,
                source_system: k.source_system,
                source_name: k.source_name,
                value_number: q.and_then(|q| q.value),
                value_text: text,
                unit: q.and_then(|q| q.unit.clone().or(q.code.clone())),
            }));
        }
    };
    let scalar = o
        .value_string
        .clone()
        .or(o.value_boolean.map(|b| b.to_string()))
        .or(o.value_integer.map(|i| i.to_string()));
    let int_q = o.value_integer.map(|i| Quantity {
        value: Some(i as f64),
        ..Default::default()
    });
    let q = o.value_quantity.as_ref().or(int_q.as_ref());
    if q.is_some() || scalar.is_some() || o.value_codeable_concept.is_some() {
        one(
            o.code.as_ref(),
            q,
            if q.is_some() { None } else { scalar },
            o.value_codeable_concept.as_ref(),
            true,
        );
    }
    for c in &o.component {
        one(
            c.code.as_ref(),
            c.value_quantity.as_ref(),
            c.value_string.clone(),
            c.value_codeable_concept.as_ref(),
            false,
        );
    }
    if facts.is_empty() {
        return Ok(Mapped::Ignored(
            "Observation without a value (panel or narrative)".into(),
        ));
    }
    Ok(Mapped::Facts(facts))
}

// ---------------------------------------------------------------- readers

/// Resolves `Patient/{id}` references of a Bulk Data export, per folder.
#[derive(Debug, Default)]
pub struct FhirContext {
    /// folder → (reference or logical id → handler patient ID)
    patients: HashMap<PathBuf, HashMap<String, String>>,
    limits: Limits,
}

impl FhirContext {
    fn patients_of(&mut self, dir: &Path) -> &HashMap<String, String> {
        let limits = self.limits;
        self.patients
            .entry(dir.to_path_buf())
            .or_insert_with(|| scan_patients(dir, &limits))
    }

    pub(crate) fn read(
        &mut self,
        file: &SourceFile,
        handler: &str,
        limits: &Limits,
        em: &mut Emitter<'_>,
    ) -> Result<(), IngestError> {
        self.limits = *limits;
        let io = |source| IngestError::Io {
            path: file.path.clone(),
            source,
        };
        let lower = file.rel_path.to_ascii_lowercase();
        let dir = file.path.parent().unwrap_or(Path::new("")).to_path_buf();
        if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
            let f = std::fs::File::open(&file.path).map_err(io)?;
            // A line is held up to the limit; a longer one is skipped unread and quarantined
            // (it is one unit: the lines beside it are read as usual).
            let mut r = BoundedLines::new(BufReader::new(f), limits.max_line);
            let mut buf = Vec::new();
            let mut lineno = 0usize;
            while let Some(got) = r.next_line(&mut buf).map_err(io)? {
                lineno += 1;
                let loc = format!("line {lineno}");
                if let Line::TooLong { .. } = got {
                    em.summary.units += 1;
                    em.quarantine(
                        &file.label,
                        loc,
                        None,
                        QuarantineCode::TooLarge,
                        too_large_reason("NDJSON line", limits.max_line, "max_line_bytes"),
                    );
                    continue;
                }
                let line = trim_ascii(&buf);
                if line.is_empty() {
                    continue;
                }
                em.summary.units += 1;
                match serde_json::from_slice::<Value>(line) {
                    Err(e) => {
                        let err = json_error(line, &e);
                        let reason = match &err {
                            FhirError::Json { column, .. } => {
                                format!("not valid JSON (column {column})")
                            }
                            other => other.to_string(),
                        };
                        em.quarantine(&file.label, loc, None, err.code(), reason)
                    }
                    Ok(v) => self.single(v, file, &dir, handler, loc, em),
                }
            }
            return Ok(());
        }
        let Some(bytes) = read_capped(&file.path, limits.max_document).map_err(io)? else {
            em.summary.units += 1;
            em.quarantine(
                &file.label,
                "file",
                None,
                QuarantineCode::TooLarge,
                too_large_reason("JSON document", limits.max_document, "max_document_bytes"),
            );
            return Ok(());
        };
        match parse_fhir_json(&bytes) {
            Err(e) => {
                em.summary.units += 1;
                em.quarantine(&file.label, "file", None, e.code(), e.to_string());
            }
            Ok(FhirDocument::Resource(v)) => {
                em.summary.units += 1;
                self.single(v, file, &dir, handler, "resource".into(), em);
            }
            Ok(FhirDocument::Bundle { entries, .. }) => read_bundle(entries, file, handler, em),
        }
        Ok(())
    }

    /// One resource standing alone (an NDJSON line or a single-resource file).
    fn single(
        &mut self,
        v: Value,
        file: &SourceFile,
        dir: &Path,
        handler: &str,
        loc: String,
        em: &mut Emitter<'_>,
    ) {
        let rt = rtype(&v).to_string();
        if rt.is_empty() {
            if v.get("exportId").is_some() || v.get("eventId").is_some() {
                em.summary.accepted += 1;
                em.summary
                    .ignore("Bulk Data export log entry: not clinical");
            } else {
                em.quarantine(
                    &file.label,
                    loc,
                    Some("resourceType"),
                    FhirError::NoResourceType.code(),
                    FhirError::NoResourceType.to_string(),
                );
            }
            return;
        }
        if rt == "Bundle" {
            match document_from_value(v) {
                Ok(FhirDocument::Bundle { entries, .. }) => read_bundle(entries, file, handler, em),
                _ => em.quarantine(
                    &file.label,
                    loc,
                    None,
                    QuarantineCode::Parse,
                    "malformed Bundle",
                ),
            }
            return;
        }
        if !is_read(&rt) {
            em.summary.accepted += 1;
            em.summary.ignore(format!("{rt}: not read"));
            return;
        }
        let prov = Provenance {
            handler_code: handler.to_string(),
            source_file: file.label.clone(),
            source_record: loc.clone(),
        };
        let mapped = match map_resource(&v, None, &HashMap::new()) {
            Ok(m) => m,
            Err(e) => {
                em.quarantine(&file.label, loc, e.field.as_deref(), e.code, e.reason);
                return;
            }
        };
        match mapped {
            Mapped::Patient(id, person) => {
                let pid = id.patient_id.clone();
                em.emit(Item::Facts(SourceFacts {
                    patient_id: pid,
                    identity: Some(*id),
                    facts: vec![(Fact::Person(person), prov)],
                }));
            }
            Mapped::Ignored(why) => {
                em.summary.accepted += 1;
                em.summary.ignore(why);
            }
            other => {
                let Some(reference) = patient_ref(&v) else {
                    em.quarantine(
                        &file.label,
                        loc,
                        Some(&format!("{rt}.subject")),
                        QuarantineCode::MissingField,
                        format!("{rt} names no patient (no subject/patient reference)"),
                    );
                    return;
                };
                let key = reference
                    .rsplit('/')
                    .next()
                    .unwrap_or(&reference)
                    .to_string();
                let found = {
                    let map = self.patients_of(dir);
                    map.get(&reference).or_else(|| map.get(&key)).cloned()
                };
                let Some(patient_id) = found else {
                    em.quarantine(
                        &file.label,
                        loc,
                        Some(&format!("{rt}.subject")),
                        QuarantineCode::UnresolvedReference,
                        format!("{rt} references a Patient that is not in this export (no Patient file beside it resolves the reference)"),
                    );
                    return;
                };
                let (identity, facts) = match other {
                    Mapped::Facts(fs) => {
                        (None, fs.into_iter().map(|f| (f, prov.clone())).collect())
                    }
                    Mapped::Insurance(mut ins, dropped) => {
                        if let Some(why) = dropped {
                            em.summary.ignore(why);
                        }
                        ins.patient_id = patient_id.clone();
                        (Some(*ins), Vec::new())
                    }
                    _ => (None, Vec::new()),
                };
                em.emit(Item::Facts(SourceFacts {
                    patient_id,
                    identity,
                    facts,
                }));
            }
        }
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let end = b.len()
        - b[start..]
            .iter()
            .rev()
            .take_while(|c| c.is_ascii_whitespace())
            .count();
    &b[start..end]
}

/// Reads the Patient resources of a folder (files named `Patient*`, NDJSON or JSON) into an
/// id → handler patient ID map. Unreadable lines are skipped here: the Patient file's own read
/// quarantines them.
fn scan_patients(dir: &Path, limits: &Limits) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return map;
    };
    // Regular files only: a symbolic link is read (if at all) where `discover` decides.
    let mut files: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            n.starts_with("patient")
                && (n.ends_with(".ndjson") || n.ends_with(".json") || n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    for path in files {
        let is_nd = path.extension().is_none_or(|e| e != "json");
        let mut add = |v: Value| {
            if rtype(&v) != "Patient" {
                return;
            }
            if let Ok(p) = Patient::deserialize(&v)
                && let (Some(lid), Some(pid)) = (p.id.clone(), preferred_patient_id(&p, None))
            {
                map.insert(format!("Patient/{lid}"), pid.clone());
                map.insert(lid, pid);
            }
        };
        // Within the same limits as the file's own read (which quarantines what is over).
        if is_nd {
            let Ok(f) = std::fs::File::open(&path) else {
                continue;
            };
            let mut r = BoundedLines::new(BufReader::new(f), limits.max_line);
            let mut buf = Vec::new();
            while let Ok(Some(got)) = r.next_line(&mut buf) {
                if got == Line::Line
                    && let Ok(v) = serde_json::from_slice::<Value>(trim_ascii(&buf))
                {
                    add(v);
                }
            }
        } else if let Ok(Some(bytes)) = read_capped(&path, limits.max_document)
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        {
            add(v);
        }
    }
    map
}

/// Splits a Bundle into patient groups and emits each as one unit.
fn read_bundle(
    entries: Vec<(Option<String>, Option<Value>)>,
    file: &SourceFile,
    handler: &str,
    em: &mut Emitter<'_>,
) {
    // Patients: every key a reference may use → group index.
    let mut keys: HashMap<String, usize> = HashMap::new();
    let mut patients: Vec<usize> = Vec::new();
    let mut orgs: HashMap<String, String> = HashMap::new();
    for (i, (full, res)) in entries.iter().enumerate() {
        let Some(v) = res else { continue };
        match rtype(v) {
            "Patient" => {
                let g = patients.len();
                patients.push(i);
                if let Some(f) = full {
                    keys.insert(f.clone(), g);
                }
                if let Some(id) = v.get("id").and_then(Value::as_str) {
                    keys.insert(format!("Patient/{id}"), g);
                    keys.insert(id.to_string(), g);
                }
            }
            "Organization" => {
                if let Ok(o) = Organization::deserialize(v) {
                    let insurer = o
                        .identifier
                        .iter()
                        .find(|i| {
                            i.system
                                .as_deref()
                                .is_some_and(|s| s.ends_with("1.2.392.100495.20.3.61"))
                        })
                        .or(o.identifier.first())
                        .and_then(|i| i.value.clone());
                    if let Some(ins) = insurer {
                        if let Some(f) = full {
                            orgs.insert(f.clone(), ins.clone());
                        }
                        if let Some(id) = v.get("id").and_then(Value::as_str) {
                            orgs.insert(format!("Organization/{id}"), ins);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    // Assign entries to groups; entries about no known patient become units of their own.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); patients.len()];
    for (i, (_, res)) in entries.iter().enumerate() {
        let Some(v) = res else {
            em.summary.ignore("Bundle entry without a resource");
            continue;
        };
        let rt = rtype(v);
        if rt == "Patient" {
            continue;
        }
        if !is_read(rt) {
            em.summary.ignore(format!(
                "{}: not read",
                if rt.is_empty() {
                    "entry without resourceType"
                } else {
                    rt
                }
            ));
            continue;
        }
        let group = match patient_ref(v) {
            Some(r) => keys.get(&r).copied(),
            // A document about one patient: resources without a subject (the checkup Encounter) are theirs.
            None if patients.len() == 1 => Some(0),
            None => None,
        };
        match group {
            Some(g) => members[g].push(i),
            None => {
                em.summary.units += 1;
                let (code, reason) = if patient_ref(v).is_some() {
                    (
                        QuarantineCode::UnresolvedReference,
                        format!("{rt} references a Patient that is not in this Bundle"),
                    )
                } else {
                    (
                        QuarantineCode::MissingField,
                        format!("{rt} names no patient and the Bundle holds several or none"),
                    )
                };
                em.quarantine(
                    &file.label,
                    format!("entry[{i}]"),
                    Some(&format!("{rt}.subject")),
                    code,
                    reason,
                );
            }
        }
    }
    for (g, &pi) in patients.iter().enumerate() {
        em.summary.units += 1;
        let prov = |i: usize| Provenance {
            handler_code: handler.to_string(),
            source_file: file.label.clone(),
            source_record: format!("entry[{i}]"),
        };
        let (full, Some(pv)) = &entries[pi] else {
            continue;
        };
        let result = (|| -> Result<SourceFacts, (usize, ResErr)> {
            let Mapped::Patient(mut identity, person) =
                map_resource(pv, full.as_deref(), &orgs).map_err(|e| (pi, e))?
            else {
                return Err((
                    pi,
                    ResErr {
                        field: None,
                        code: QuarantineCode::Parse,
                        reason: "Patient could not be read".into(),
                    },
                ));
            };
            let mut facts = vec![(Fact::Person(person), prov(pi))];
            let mut ignored: Vec<String> = Vec::new();
            for &i in &members[g] {
                let (f, Some(v)) = &entries[i] else { continue };
                match map_resource(v, f.as_deref(), &orgs).map_err(|e| (i, e))? {
                    Mapped::Facts(fs) => facts.extend(fs.into_iter().map(|x| (x, prov(i)))),
                    Mapped::Insurance(ins, dropped) => {
                        identity.merge_missing(&ins);
                        ignored.extend(dropped.map(str::to_string));
                    }
                    Mapped::Ignored(why) => ignored.push(why),
                    Mapped::Patient(..) => {}
                }
            }
            for why in ignored {
                em.summary.ignore(why);
            }
            Ok(SourceFacts {
                patient_id: identity.patient_id.clone(),
                identity: Some(*identity),
                facts,
            })
        })();
        match result {
            Ok(sf) => em.emit(Item::Facts(sf)),
            Err((i, e)) => em.quarantine(
                &file.label,
                format!("entry[{i}] (patient group of entry[{pi}])"),
                e.field.as_deref(),
                e.code,
                format!("{}; the patient's whole group is quarantined", e.reason),
            ),
        }
    }
}

/// Per-table counts helper for tests and summaries.
pub fn count_tables(items: &[Item]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for it in items {
        if let Item::Facts(sf) = it {
            for (f, _) in &sf.facts {
                *m.entry(f.table().name().to_string()).or_default() += 1;
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jp_core_patient_names_ids_and_insurance() {
        let v: Value = serde_json::from_str(
            r#"{"resourceType":"Patient","id":"x","identifier":[
                {"system":"http://jpfhir.jp/fhir/clins/Idsystem/JP_Insurance_memberID","value":"00012345:あいう:１８７:05"},
                {"system":"urn:oid:1.2.392.100495.20.3.51.11318814790","value":"000999739"}],
              "name":[{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation","valueCode":"SYL"}],"text":"マキノ ランマン"},
                      {"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation","valueCode":"IDE"}],"family":"牧野","given":["爛漫"]}],
              "gender":"female","birthDate":"1930-06-28","address":[{"text":"東京都文京区","postalCode":"113-0033"}]}"#,
        )
        .unwrap();
        let Ok(Mapped::Patient(id, person)) = map_resource(&v, None, &HashMap::new()) else {
            panic!("not a patient")
        };
        assert_eq!(id.patient_id, "000999739");
        assert_eq!(id.name_kanji.as_deref(), Some("牧野 爛漫"));
        assert_eq!(id.name_kana.as_deref(), Some("マキノ ランマン"));
        assert_eq!(id.insurer_number.as_deref(), Some("00012345"));
        assert_eq!(id.insured_symbol.as_deref(), Some("あいう"));
        assert_eq!(id.insured_number.as_deref(), Some("１８７"));
        assert_eq!(id.insured_branch.as_deref(), Some("05"));
        assert_eq!(person.sex, Sex::Female);
        assert_eq!(person.prefecture.as_deref(), Some("東京都"));
    }

    #[test]
    fn coverage_period_start_to_insured_since() {
        let cov = |period: &str| {
            let v: Value = serde_json::from_str(&format!(
                r#"{{"resourceType":"Coverage","subscriberId":"111","period":{period}}}"#
            ))
            .unwrap();
            let Ok(Mapped::Insurance(id, dropped)) = map_resource(&v, None, &HashMap::new()) else {
                panic!("not insurance")
            };
            (id.insured_since.clone(), dropped.is_some())
        };
        assert_eq!(
            cov(r#"{"start":"2020-04-01"}"#),
            (Some("2020-04-01".into()), false)
        );
        assert_eq!(
            cov(r#"{"start":"2020-04-01T09:00:00+09:00"}"#),
            (Some("2020-04-01".into()), false)
        );
        assert_eq!(cov(r#"{"end":"2030-03-31"}"#), (None, false));
        assert_eq!(cov(r#"{"start":"2020"}"#), (None, true), "year only");
        assert_eq!(cov(r#"{"start":"2020-13-01"}"#), (None, true));
    }

    #[test]
    fn parse_fhir_json_reports_positions_not_content() {
        let e = parse_fhir_json(b"{\"resourceType\": \"Patient\", \"name\": [}").unwrap_err();
        assert!(matches!(e, FhirError::Json { line: 1, .. }));
        assert_eq!(
            parse_fhir_json(b"{\"a\":1}"),
            Err(FhirError::NoResourceType)
        );
        assert_eq!(parse_fhir_json(b"[1]"), Err(FhirError::NotObject));
        assert!(matches!(
            parse_fhir_json(b"{\"resourceType\":\"Bundle\",\"entry\":[{}]}"),
            Ok(FhirDocument::Bundle { .. })
        ));
    }

    #[test]
    fn observation_lab_vs_other() {
        let v: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","category":[{"coding":[{"code":"laboratory"}]}],
               "code":{"coding":[{"system":"urn:oid:1.2.392.200119.4.504","code":"3A010000002327101","display":"総蛋白"}]},
               "effectiveDateTime":"2020-04-04","valueQuantity":{"value":7.2,"unit":"g/dL"},
               "referenceRange":[{"low":{"value":6.7},"high":{"value":8.3}}]}"#,
        )
        .unwrap();
        let Ok(Mapped::Facts(f)) = map_observation(&v) else {
            panic!()
        };
        let Fact::Measurement(m) = &f[0] else {
            panic!("not a measurement")
        };
        assert_eq!(m.code_system.as_deref(), Some("JLAC10"));
        assert_eq!(m.value_number, Some(7.2));
        assert_eq!((m.range_low, m.range_high), (Some(6.7), Some(8.3)));
        let v: Value = serde_json::from_str(
            r#"{"resourceType":"Observation","code":{"text":"腹部所見"},"effectiveDateTime":"2021-07-05","valueString":"圧痛なし"}"#,
        )
        .unwrap();
        let Ok(Mapped::Facts(f)) = map_observation(&v) else {
            panic!()
        };
        assert!(
            matches!(&f[0], Fact::Observation(o) if o.value_text.as_deref() == Some("圧痛なし"))
        );
    }
}
