//! FHIR R4 writer, JP Core style: collection bundles of up to N patients per file
//! (`bundle-000001.json` …), each patient with Patient, Coverage, Encounter, Condition,
//! MedicationRequest and Observation resources. The bundle is streamed: entries are written
//! as they are produced and the file is closed when it holds N patients.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::SynthError;
use crate::population::Registration;
use crate::summary::FhirCounts;
use crate::tables::{DEPARTMENTS, DIAGNOSES, DRUGS, LABS};
use crate::write::Hospital;

const EN_REP: &str = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation";
const JPC: &str = "http://jpfhir.jp/fhir/core";

pub struct FhirWriter {
    root: PathBuf,
    code: String,
    per_bundle: u32,
    file: Option<BufWriter<File>>,
    in_bundle: u32,
    first_entry: bool,
    seq: u64,
    hospital_index: u32,
    pub counts: FhirCounts,
}

/// A deterministic UUID-shaped id (splitmix64 of hospital and sequence): stable across runs
/// without consuming the population's random stream.
fn uuid(hospital: u32, seq: u64) -> String {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let a = mix(((hospital as u64) << 40) ^ seq);
    let b = mix(a ^ seq.rotate_left(17));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

impl FhirWriter {
    pub fn open(root: &Path, h: &Hospital, per_bundle: u32) -> Result<Self, SynthError> {
        fs::create_dir_all(root)
            .map_err(|e| SynthError::io(format!("fhir folder of hospital {}", h.code), e))?;
        Ok(FhirWriter {
            root: root.to_path_buf(),
            code: h.code.clone(),
            per_bundle,
            file: None,
            in_bundle: 0,
            first_entry: true,
            seq: 0,
            hospital_index: h.index,
            counts: FhirCounts::default(),
        })
    }

    fn err(&self, e: std::io::Error) -> SynthError {
        SynthError::io(format!("fhir bundle of hospital {}", self.code), e)
    }

    fn next_url(&mut self) -> String {
        self.seq += 1;
        format!("urn:uuid:{}", uuid(self.hospital_index, self.seq))
    }

    fn start_bundle(&mut self) -> Result<(), SynthError> {
        self.counts.files += 1;
        self.counts.bundles += 1;
        let path = self
            .root
            .join(format!("bundle-{:06}.json", self.counts.files));
        let mut f = BufWriter::new(File::create(path).map_err(|e| self.err(e))?);
        let id = uuid(self.hospital_index, u64::MAX - self.counts.files);
        write!(
            f,
            "{{\"resourceType\":\"Bundle\",\"id\":\"{id}\",\"type\":\"collection\",\"entry\":["
        )
        .map_err(|e| self.err(e))?;
        self.file = Some(f);
        self.in_bundle = 0;
        self.first_entry = true;
        Ok(())
    }

    fn end_bundle(&mut self) -> Result<(), SynthError> {
        if let Some(mut f) = self.file.take() {
            f.write_all(b"]}\n").map_err(|e| self.err(e))?;
            f.flush().map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn entry(&mut self, full_url: &str, resource: &Value) -> Result<(), SynthError> {
        let code = self.code.clone();
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        let io = |e: std::io::Error| SynthError::io(format!("fhir bundle of hospital {code}"), e);
        if !self.first_entry {
            f.write_all(b",").map_err(io)?;
        }
        self.first_entry = false;
        let e = json!({"fullUrl": full_url, "resource": resource});
        serde_json::to_writer(&mut *f, &e).map_err(|e| SynthError::Json {
            what: format!("fhir bundle of hospital {code}"),
            source: e,
        })?;
        Ok(())
    }

    pub fn write(&mut self, h: &Hospital, reg: &Registration) -> Result<(), SynthError> {
        if self.file.is_none() {
            self.start_bundle()?;
        }
        let id = &reg.identity;
        let patient_url = self.next_url();
        let gender = match id.sex {
            kiban_model::Sex::Male => "male",
            kiban_model::Sex::Female => "female",
            kiban_model::Sex::Other => "other",
            kiban_model::Sex::Unknown => "unknown",
        };
        let patient = json!({
            "resourceType": "Patient",
            "meta": {"profile": [format!("{JPC}/StructureDefinition/JP_Patient")]},
            "identifier": [{"system": format!("urn:oid:1.2.392.100495.20.3.51.1{}", h.code), "value": reg.patient_id}],
            "name": [
                {"extension": [{"url": EN_REP, "valueCode": "IDE"}], "use": "official",
                 "text": id.name_kanji(), "family": id.family_kanji, "given": [id.given_kanji]},
                {"extension": [{"url": EN_REP, "valueCode": "SYL"}], "use": "official",
                 "text": id.name_kana(), "family": id.family_kana, "given": [id.given_kana]}
            ],
            "telecom": [{"system": "phone", "value": id.phone, "use": "home"}],
            "gender": gender,
            "birthDate": id.birth.format("%Y-%m-%d").to_string(),
            "address": [{"text": id.address(), "postalCode": id.postal, "country": "JP",
                         "state": id.prefecture, "city": id.city, "line": [id.address_line]}]
        });
        self.entry(&patient_url, &patient)?;
        self.counts.patients += 1;

        // The card on file at export (valid at the last visit); period.start is its
        // 資格取得年月日.
        let ins = &id.insurance;
        let (plan_code, plan_name) = ins.kind.label();
        let mut ext = Vec::new();
        if !ins.symbol.is_empty() {
            ext.push(json!({"url": format!("{JPC}/Extension/StructureDefinition/JP_Coverage_InsuredPersonSymbol"), "valueString": ins.symbol}));
        }
        ext.push(json!({"url": format!("{JPC}/Extension/StructureDefinition/JP_Coverage_InsuredPersonNumber"), "valueString": ins.number}));
        if !ins.branch.is_empty() {
            ext.push(json!({"url": format!("{JPC}/Extension/StructureDefinition/JP_Coverage_InsuredPersonSubNumber"), "valueString": ins.branch}));
        }
        let coverage = json!({
            "resourceType": "Coverage",
            "extension": ext,
            "status": "active",
            "type": {"coding": [{"system": "urn:oid:1.2.392.100495.20.2.61", "code": plan_code, "display": plan_name}]},
            "subscriberId": if ins.symbol.is_empty() { ins.number.clone() } else { format!("{}・{}", ins.symbol, ins.number) },
            "beneficiary": {"reference": patient_url},
            "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                         "code": if ins.is_self { "self" } else { "other" }}]},
            "payor": [{"identifier": {"system": "urn:oid:1.2.392.100495.20.3.61", "value": ins.insurer}}],
            "period": {"start": ins.since.format("%Y-%m-%d").to_string()}
        });
        let cov_url = self.next_url();
        self.entry(&cov_url, &coverage)?;
        self.counts.coverages += 1;

        for v in &reg.visits {
            let enc_url = self.next_url();
            let date = v.date.format("%Y-%m-%d").to_string();
            let (dcode, dname) = DEPARTMENTS[v.dept];
            let (cls, cls_name) = if v.emergency {
                ("EMER", "emergency")
            } else {
                ("AMB", "ambulatory")
            };
            let enc = json!({
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": cls, "display": cls_name},
                "serviceType": {"coding": [{"system": "urn:oid:1.2.392.100495.20.2.51", "code": dcode, "display": dname}]},
                "subject": {"reference": patient_url},
                "period": {"start": date, "end": date}
            });
            self.entry(&enc_url, &enc)?;
            self.counts.encounters += 1;
            for c in &v.conditions {
                let dx = &DIAGNOSES[c.dx];
                let cond = json!({
                    "resourceType": "Condition",
                    "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
                    "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
                    "code": {"coding": [
                        {"system": "http://hl7.org/fhir/sid/icd-10", "code": dx.icd10, "display": dx.name},
                        {"system": "urn:oid:1.2.392.200119.4.101.6", "code": dx.exchange, "display": dx.name}
                    ], "text": dx.name},
                    "subject": {"reference": patient_url},
                    "encounter": {"reference": enc_url},
                    "onsetDateTime": date,
                    "recordedDate": date
                });
                let url = self.next_url();
                self.entry(&url, &cond)?;
                self.counts.conditions += 1;
            }
            for d in &v.drugs {
                let e = &DRUGS[d.drug];
                let mr = json!({
                    "resourceType": "MedicationRequest",
                    "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.11", "value": format!("{:015}", v.rx_order)}],
                    "status": "completed",
                    "intent": "order",
                    "medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.2.392.100495.20.2.73", "code": e.yj, "display": e.name}], "text": e.name},
                    "subject": {"reference": patient_url},
                    "encounter": {"reference": enc_url},
                    "authoredOn": date,
                    "dosageInstruction": [{
                        "timing": {"repeat": {"boundsDuration": {"value": d.days, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d"}}},
                        "doseAndRate": [{"doseQuantity": {"value": d.per_day, "unit": e.unit, "system": "urn:oid:1.2.392.100495.20.2.101", "code": e.unit_code}}]
                    }],
                    "dispenseRequest": {
                        "quantity": {"value": d.per_day * d.days, "unit": e.unit, "system": "urn:oid:1.2.392.100495.20.2.101", "code": e.unit_code},
                        "expectedSupplyDuration": {"value": d.days, "unit": "日", "system": "http://unitsofmeasure.org", "code": "d"}
                    }
                });
                let url = self.next_url();
                self.entry(&url, &mr)?;
                self.counts.medication_requests += 1;
            }
            for l in &v.labs {
                let t = &LABS[l.lab];
                let value: f64 = l.value.parse().unwrap_or(0.0);
                let obs = json!({
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                    "code": {"coding": [{"system": "urn:oid:1.2.392.200119.4.504", "code": t.jlac10, "display": t.name}], "text": t.name},
                    "subject": {"reference": patient_url},
                    "encounter": {"reference": enc_url},
                    "effectiveDateTime": date,
                    "valueQuantity": {"value": value, "unit": t.unit, "system": "http://unitsofmeasure.org", "code": t.unit},
                    "referenceRange": [{"low": {"value": t.ref_low, "unit": t.unit}, "high": {"value": t.ref_high, "unit": t.unit}}]
                });
                let url = self.next_url();
                self.entry(&url, &obs)?;
                self.counts.observations += 1;
            }
        }
        self.in_bundle += 1;
        if self.in_bundle >= self.per_bundle {
            self.end_bundle()?;
        }
        Ok(())
    }

    pub fn finish(&mut self) -> Result<(), SynthError> {
        self.end_bundle()
    }
}
