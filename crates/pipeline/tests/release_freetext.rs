//! Issue 13 finding 3, replayed as an adversary would: free text carrying names, kana,
//! phone numbers, patient IDs, addresses and e-mail addresses is put into every text-bearing
//! field of every input format (SS-MIX2, FHIR R4, UKE, mapped CSV, DPC EF, DICOM), the files
//! written here by hand, independently of `kiban synth`. An anonymized and a pseudonymized
//! release are made and every file of each (CSV, Parquet string columns, manifest.json,
//! risk.json, risk_report.html) is scanned for every injected token, in its width variants
//! and with the digits of phones and IDs run together. None may appear. The lake is checked too, so that
//! the test fails if ingest stopped taking the injected values (a vacuous pass), per handler
//! for DPC and DICOM, whose lake rows must hold the text in exactly the columns their readers
//! map it to (and so nothing of the identity side: 保険者番号, a DICOM file's institution,
//! physicians, patient comments).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use chrono::NaiveDate;
use common::{released_values as values, strings};
use kiban_model::Table;
use kiban_pipeline::ingest::IngestOptions;
use kiban_pipeline::{NoProgress, Workspace};
use kiban_synth::text::{encode_iso2022jp, encode_sjis};

/// Persons per handler: enough that k = 5 leaves most of them in the anonymized release.
const PERSONS: usize = 12;
/// Handlers (one per format) in the order their patient IDs come in [`patient_ids`].
const FORMATS: usize = 6;
const DPC: &str = "1310000005";
const DICOM: &str = "1310000006";

/// The attack of the issue, word for word, then a longer payload with every kind of
/// identifier (kanji and kana name, phone, patient ID, address, e-mail).
const ISSUE: &str = "田村 友美様 患者ID0003334 家族連絡先 082-311-2778";
const PAYLOAD: &str = "田村 友美様 タムラ トモミ 患者ID0003334 TEL 082-311-2778 東京都新宿区西新宿2-8-1 tamura.tomomi@example.jp";
/// Width variants: full-width digits and ideographic spaces, half-width kana.
const WIDE: &str = "田村　友美　ﾀﾑﾗ ﾄﾓﾐ　患者ＩＤ０００３３３４　０８２－３１１－２７７８";
/// The issue's department and SS-MIX2 OBX ST values.
const DOCTOR: &str = "内科 主治医 小林";
const OBX_ST: &str = "池田 勇様 TEL 043-609-2917";

/// What must never appear in a release (checked after NFKC and lower-casing as well).
const TOKENS: &[&str] = &[
    "田村",
    "友美",
    "タムラ",
    "トモミ",
    "ﾀﾑﾗ",
    "患者",
    "0003334",
    "082-311-2778",
    "0823112778",
    "池田",
    "043-609-2917",
    "0436092917",
    "小林",
    "主治医",
    "西新宿",
    "新宿区",
    "tamura",
    "tomomi",
    "example.jp",
    "家族連絡先",
    // The records' own identity: names, phones, addresses of the patients themselves.
    "試験",
    "シケン",
    "千代田区",
    "09012345",
];

/// The real patient IDs of the records (these must not be released either).
fn patient_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for i in 1..=PERSONS {
        ids.push(format!("9100{i:03}"));
        ids.push(format!("F77{i:04}"));
        ids.push(format!("K55{i:04}"));
        ids.push(format!("C33{i:04}"));
        ids.push(dpc_id(i));
        ids.push(format!("D66{i:04}"));
    }
    ids
}

/// DPC データ識別番号: 10 digits, zero-padded as hospitals write it.
fn dpc_id(i: usize) -> String {
    format!("0088{i:06}")
}

fn given(i: usize) -> &'static str {
    [
        "一郎", "二郎", "三郎", "四郎", "五郎", "花子", "春子", "夏子", "秋子", "冬子", "松子",
        "竹子",
    ][i % 12]
}

fn birth(i: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(1950 + (i % 4) as i32, 1 + (i % 12) as u32, 10).expect("date")
}

fn sex(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "M" } else { "F" }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

// ---------------------------------------------------------------------------------------------
// SS-MIX2 (HL7 v2.5, ISO-2022-JP, CR segment terminators)

fn hl7(segments: &[String]) -> Vec<u8> {
    let mut text = String::new();
    for s in segments {
        text.push_str(s);
        text.push('\r');
    }
    encode_iso2022jp(&text)
}

const MSH: &str = "MSH|^~\\&|HIS|SEND|GW|RCV|20230405100000||";
const MSH_TAIL: &str = "|1|P|2.5||||||~ISO IR87||ISO 2022-1994";

fn ssmix2(root: &Path) {
    for i in 1..=PERSONS {
        let pid = format!("9100{i:03}");
        let dir = root.join(&pid[..3]).join(&pid[3..6]).join(&pid);
        let name = |dtype: &str, date: &str, order: &str| {
            let d = if date.is_empty() { "-" } else { date };
            dir.join(d)
                .join(dtype)
                .join(format!("{pid}_{d}_{dtype}_{order}_20230405100000000_01_1"))
        };
        let pid_seg = format!(
            "PID|0001||{pid}^^^^PI||試験^{g}^^^^^L^I~シケン^{g}^^^^^L^P||{b}|{s}|||^^^^1000001^JPN^H^東京都千代田区千代田1-1||^PRN^PH^^^^^^^^^090-1234-5678",
            g = given(i),
            b = birth(i).format("%Y%m%d"),
            s = sex(i),
        );
        // ADT-00: demographics, OBX of every value type, an allergy with text.
        write(
            &name("ADT-00", "", "999999999999999"),
            &hl7(&[
                format!("{MSH}ADT^A08^ADT_A01{MSH_TAIL}"),
                "EVN||20230405100000".into(),
                pid_seg.clone(),
                format!("OBX|1|ST|5H010000001999911^{PAYLOAD}^JC10||{OBX_ST}||||||F"),
                format!("OBX|2|CWE|5H010000001999911^{WIDE}^JC10||A^{PAYLOAD}^JSHR002||||||F"),
                format!("OBX|3|TX|9N999^{PAYLOAD}^99XYZ||{PAYLOAD}~{WIDE}||||||F"),
                format!("NTE|1||{PAYLOAD}"),
                format!("AL1|1|DA^{PAYLOAD}^HL70127|1^{PAYLOAD}^99XYZ"),
            ]),
        );
        // OMP-01: a prescription; PV1-3 carries the doctor's name, RXE the drug name, unit,
        // route as free text.
        write(
            &name("OMP-01", "20230405", "000000000000001"),
            &hl7(&[
                format!("{MSH}RDE^O11^RDE_O11{MSH_TAIL}"),
                pid_seg.clone(),
                format!("PV1|0001|O|{DOCTOR}^^^^^^^^|||||||{PAYLOAD}"),
                "ORC|NW|555||1|||||20230405".into(),
                format!("RXE||103835401^{PAYLOAD}^HOT9|1||{PAYLOAD}^{PAYLOAD}^MR9P"),
                format!("RXR|{PAYLOAD}^{PAYLOAD}^HL70162"),
                format!("NTE|1||{PAYLOAD}"),
                "TQ1|1||||||20230405".into(),
            ]),
        );
        // PPR-01: a problem with its name and outcome as text.
        write(
            &name("PPR-01", "", "999999999999999"),
            &hl7(&[
                format!("{MSH}PPR^ZD1^PPR_ZD1{MSH_TAIL}"),
                pid_seg.clone(),
                format!(
                    "PRB|AD|20230405|E11.9^{PAYLOAD}^I10^B0NV^{WIDE}^MDCDX2|1|||20230405||||||1^{PAYLOAD}^99XYZ||20230405"
                ),
                format!("NTE|1||{PAYLOAD}"),
            ]),
        );
        // OML-11: lab results with text in name, unit, flag, ST/TX/FT/CWE values; one
        // legitimate qualitative result that must survive.
        write(
            &name("OML-11", "20230405", "000000000000002"),
            &hl7(&[
                format!("{MSH}OUL^R22^OUL_R22{MSH_TAIL}"),
                pid_seg.clone(),
                "PV1|0001|O|01".into(),
                "ORC|SC|556||1|||||20230405".into(),
                format!("OBR|1|556||3D046^{PAYLOAD}^JC10|||20230405"),
                format!(
                    "OBX|1|NM|3D046000001906202^{PAYLOAD}^JC10||6.4|{PAYLOAD}^^ISO+|4.9-6.0|{PAYLOAD}|||F|||20230405"
                ),
                format!("OBX|2|ST|5C070000002302001^{PAYLOAD}^JC10||{ISSUE}||||||F|||20230405"),
                "OBX|3|ST|5C070000002302001^CRP^JC10||陽性||||||F|||20230405".into(),
                format!("OBX|4|FT|9N999^{PAYLOAD}^99XYZ||{PAYLOAD}||||||F|||20230405"),
                format!("OBX|5|NM|3D010000002227101^{WIDE}^JC10||{WIDE}|mg/dL|||||F|||20230405"),
                format!("NTE|1||{PAYLOAD}"),
            ]),
        );
        // OMG-11: a performed study: OBR-4 text (description, procedure name), IPC-5 modality.
        write(
            &name("OMG-11", "20230405", "000000000000003"),
            &hl7(&[
                format!("{MSH}OMG^O19^OMG_O19{MSH_TAIL}"),
                pid_seg,
                "PV1|0001|O|01".into(),
                "ORC|SC|557||1|||||20230405".into(),
                format!("OBR|1|557||3100000000000000^{PAYLOAD}^JJ1017-16M|||20230405"),
                format!("IPC|ACC{i}|REQ{i}|1.2.392.200036.9116.{i}|SPS{i}|{PAYLOAD}"),
            ]),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// FHIR R4 (one Bundle per patient)

fn fhir(root: &Path) {
    for i in 1..=PERSONS {
        let pid = format!("F77{i:04}");
        let subject = serde_json::json!({"reference": format!("Patient/p{i}")});
        let enc = serde_json::json!({"reference": format!("Encounter/e{i}")});
        let cc = |system: &str, code: &str| {
            serde_json::json!({
                "coding": [{"system": system, "code": code, "display": PAYLOAD}],
                "text": ISSUE,
            })
        };
        let resources = vec![
            serde_json::json!({
                "resourceType": "Patient", "id": format!("p{i}"),
                "identifier": [{"system": "urn:oid:1.2.392.100495.20.3.51.11310000001", "value": pid}],
                "name": [{"family": "試験", "given": [given(i)], "text": format!("試験 {}", given(i))}],
                "telecom": [{"system": "phone", "value": "090-1234-5678"}, {"system": "email", "value": "tamura.tomomi@example.jp"}],
                "gender": if i.is_multiple_of(2) { "male" } else { "female" },
                "birthDate": birth(i).to_string(),
                "address": [{"text": "東京都千代田区千代田1-1", "postalCode": "100-0001"}],
            }),
            serde_json::json!({
                "resourceType": "Encounter", "id": format!("e{i}"), "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "serviceType": {"coding": [{"system": "urn:oid:1.2.392.100495.20.2.51", "display": PAYLOAD}], "text": DOCTOR},
                "subject": subject, "period": {"start": "2023-04-05", "end": "2023-04-05"},
            }),
            serde_json::json!({
                "resourceType": "Condition", "subject": subject, "encounter": enc,
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": PAYLOAD}]},
                "code": cc("http://hl7.org/fhir/sid/icd-10", "E11.9"),
                "onsetDateTime": "2023-04-05", "note": [{"text": PAYLOAD}],
            }),
            serde_json::json!({
                "resourceType": "MedicationRequest", "status": "active", "intent": "order",
                "subject": subject, "encounter": enc, "authoredOn": "2023-04-05",
                "medicationCodeableConcept": cc("urn:oid:1.2.392.100495.20.2.74", "2171022F1020"),
                "dosageInstruction": [{
                    "text": PAYLOAD,
                    "route": {"text": PAYLOAD},
                    "doseAndRate": [{"doseQuantity": {"value": 1, "unit": PAYLOAD}}],
                }],
                "note": [{"text": PAYLOAD}],
            }),
            serde_json::json!({
                "resourceType": "Observation", "status": "final", "subject": subject,
                "encounter": enc, "effectiveDateTime": "2023-04-05",
                "code": cc("http://loinc.org", "8302-2"),
                "valueString": ISSUE,
            }),
            serde_json::json!({
                "resourceType": "Observation", "status": "final", "subject": subject,
                "effectiveDateTime": "2023-04-05",
                "code": cc("http://loinc.org", "8302-2"),
                "valueString": WIDE,
            }),
            serde_json::json!({
                "resourceType": "Observation", "status": "final", "subject": subject,
                "effectiveDateTime": "2023-04-05",
                "code": cc("http://loinc.org", "5778-6"),
                "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "display": PAYLOAD}], "text": PAYLOAD},
            }),
            serde_json::json!({
                "resourceType": "Observation", "status": "final", "subject": subject,
                "effectiveDateTime": "2023-04-05",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": cc("http://loinc.org", "4548-4"),
                "valueQuantity": {"value": 6.1, "unit": PAYLOAD, "code": PAYLOAD},
                "interpretation": [{"coding": [{"code": PAYLOAD}], "text": PAYLOAD}],
                "referenceRange": [{"low": {"value": 4.6}, "high": {"value": 6.2}, "text": PAYLOAD}],
            }),
            serde_json::json!({
                "resourceType": "Observation", "status": "final", "subject": subject,
                "effectiveDateTime": "2023-04-05",
                "code": {"coding": [{"system": "http://loinc.org", "code": "5778-6"}]},
                "valueString": "陰性",
            }),
            serde_json::json!({
                "resourceType": "Procedure", "status": "completed", "subject": subject,
                "encounter": enc, "performedDateTime": "2023-04-05",
                "code": cc("http://snomed.info/sct", "80146002"),
                "note": [{"text": PAYLOAD}],
            }),
            serde_json::json!({
                "resourceType": "ImagingStudy", "status": "available", "subject": subject,
                "started": "2023-04-05", "description": PAYLOAD,
                "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:1.2.392.200036.9116.77.{i}")}],
                "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": PAYLOAD}],
                "series": [{"uid": format!("1.2.392.200036.9116.78.{i}"), "description": PAYLOAD,
                            "modality": {"code": "CT"}, "bodySite": {"display": PAYLOAD}}],
            }),
            serde_json::json!({
                "resourceType": "ImagingStudy", "status": "available", "subject": subject,
                "started": "2023-04-06",
                "identifier": [{"system": "urn:dicom:uid", "value": format!("urn:oid:1.2.392.200036.9116.79.{i}")}],
                "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
                "series": [{"uid": format!("1.2.392.200036.9116.80.{i}"), "bodySite": {"code": "51185008"}}],
            }),
            serde_json::json!({
                "resourceType": "AllergyIntolerance", "patient": subject,
                "recordedDate": "2023-04-05", "category": [PAYLOAD],
                "code": cc("http://snomed.info/sct", "91936005"),
            }),
        ];
        let bundle = serde_json::json!({
            "resourceType": "Bundle", "type": "collection",
            "entry": resources.into_iter().enumerate().map(|(n, r)| serde_json::json!({
                "fullUrl": format!("urn:uuid:{i}-{n}"), "resource": r,
            })).collect::<Vec<_>>(),
        });
        write(
            &root.join(format!("bundle-{i}.json")),
            &serde_json::to_vec_pretty(&bundle).expect("json"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// UKE (レセプト電算 医科, CP932, CRLF, EOF 0x1A)

fn uke(root: &Path) {
    let mut lines = vec!["IR,1,13,1,9999999,,架空総合病院,202304,00,03-0000-0000".to_string()];
    for i in 1..=PERSONS {
        let g = given(i);
        let b = birth(i).format("%Y%m%d");
        let s = if i.is_multiple_of(2) { 1 } else { 2 };
        lines.extend([
            format!(
                "RE,{i},1112,202304,試験　{g},{s},{b},,,,,,,K55{i:04},,,,,,,,{DOCTOR},,,,,,,,,,,,,,,シケン{g},"
            ),
            "HO,06139999,１２３,４５６７,2,1023,,,,,,,,,".into(),
            "SN,1,01,,,,01,,".into(),
            "JD,1,,,,,1,,,,,,,,,,,,,,,,,,,,,,,,,,".into(),
            "SY,8833421,20230405,1,,,01,".into(),
            format!("SY,0000999,20230405,1,,{PAYLOAD},,"),
            format!("SY,0000999,20230405,1,8002,{WIDE},,"),
            "SI,11,1,111000110,,288,1,,,,,,,,,,,1,,,,,,,,,,,,,,,,,,,,,,,,,,,,".into(),
            "IY,21,1,620000001,3,30,14,,,,,,,,,,,14,,,,,,,,,,,,,,,,,,,,,,,,,,,".into(),
            format!(
                "TO,50,1,730000001,1,172,1,{PAYLOAD},,,{PAYLOAD},,,,,,,,,,,1,,,,,,,,,,,,,,,,,,,,,,,,,,"
            ),
            format!("CO,21,1,820100001,{PAYLOAD}"),
            format!("SJ,01,{PAYLOAD}"),
            format!("SJ,,{ISSUE}"),
        ]);
    }
    lines.push(format!("GO,{PERSONS},12345,99"));
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    let mut bytes = encode_sjis(&text);
    bytes.push(0x1a);
    write(&root.join("RECEIPTC.UKE"), &bytes);
}

// ---------------------------------------------------------------------------------------------
// Mapped CSV: every free column mapped, the text in each

const CSV_MAPPING: &str = r#"
[defaults]
encoding = "utf-8"
delimiter = ","
header = true
date_format = "%Y-%m-%d"

[[file]]
name = "persons.csv"
table = "person"
patient_id = "patient_id"
[file.columns]
name_kanji = "name"
name_kana = "kana"
birth_date = "birth_date"
sex = "sex"
address = "address"
phone = "phone"
prefecture = "prefecture"

[[file]]
name = "visits.csv"
table = "visit"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
visit_type = "visit_type"
department = "department"

[[file]]
name = "conditions.csv"
table = "condition"
patient_id = "patient_id"
[file.columns]
source_visit_id = "visit_id"
start_date = "date"
code = "code"
code_system = "code_system"
source_code = "source_code"
source_system = "source_system"
source_name = "name"
outcome = "outcome"

[[file]]
name = "drugs.csv"
table = "drug"
patient_id = "patient_id"
[file.columns]
start_date = "date"
code = "code"
code_system = "=YJ"
source_code = "source_code"
source_system = "source_system"
source_name = "name"
quantity = "quantity"
unit = "unit"
route = "route"
kind = "kind"

[[file]]
name = "labs.csv"
table = "measurement"
patient_id = "patient_id"
[file.columns]
date = "date"
code = "code"
code_system = "=JLAC10"
source_name = "name"
value = "value"
unit = "unit"
abnormal_flag = "flag"

[[file]]
name = "observations.csv"
table = "observation"
patient_id = "patient_id"
[file.columns]
date = "date"
source_code = "source_code"
source_name = "name"
value = "value"
unit = "unit"

[[file]]
name = "procedures.csv"
table = "procedure"
patient_id = "patient_id"
[file.columns]
date = "date"
source_code = "source_code"
source_system = "source_system"
source_name = "name"
"#;

fn csv_files(root: &Path) {
    let mut files: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut add = |f: &'static str, header: &str, row: String| {
        files
            .entry(f)
            .or_insert_with(|| vec![header.to_string()])
            .push(row);
    };
    for i in 1..=PERSONS {
        let p = format!("C33{i:04}");
        add(
            "persons.csv",
            "patient_id,name,kana,birth_date,sex,address,phone,prefecture",
            format!(
                "{p},試験 {g},シケン {g},{b},{s},東京都千代田区千代田1-1,090-1234-5678,東京都新宿区西新宿2-8-1 {PAYLOAD}",
                g = given(i),
                b = birth(i),
                s = sex(i),
            ),
        );
        let visits = "patient_id,visit_id,date,visit_type,department";
        add(
            "visits.csv",
            visits,
            format!("{p},V{i},2023-04-05,{PAYLOAD},{DOCTOR}"),
        );
        add(
            "visits.csv",
            visits,
            format!("{p},W{i},2023-04-06,outpatient,循環器内科"),
        );
        let cond =
            "patient_id,visit_id,date,code,code_system,source_code,source_system,name,outcome";
        add(
            "conditions.csv",
            cond,
            format!("{p},V{i},2023-04-05,E11.9,ICD10,8833421,レセ電傷病名,{PAYLOAD},{PAYLOAD}"),
        );
        add(
            "conditions.csv",
            cond,
            format!("{p},V{i},2023-04-05,{ISSUE},{PAYLOAD},{PAYLOAD},{PAYLOAD},{WIDE},治癒"),
        );
        add(
            "drugs.csv",
            "patient_id,date,code,source_code,source_system,name,quantity,unit,route,kind",
            format!(
                "{p},2023-04-05,2171022F1020,{WIDE},{PAYLOAD},{PAYLOAD},1,{PAYLOAD},{PAYLOAD},{PAYLOAD}"
            ),
        );
        let labs = "patient_id,date,code,name,value,unit,flag";
        add(
            "labs.csv",
            labs,
            format!("{p},2023-04-05,3D046000001906202,{PAYLOAD},{ISSUE},{PAYLOAD},{PAYLOAD}"),
        );
        add(
            "labs.csv",
            labs,
            format!("{p},2023-04-05,3D046000001906202,HbA1c,6.2,%,H"),
        );
        add(
            "observations.csv",
            "patient_id,date,source_code,name,value,unit",
            format!("{p},2023-04-05,OBS-1,{PAYLOAD},{WIDE},{PAYLOAD}"),
        );
        add(
            "procedures.csv",
            "patient_id,date,source_code,source_system,name",
            format!("{p},2023-04-05,{PAYLOAD},{PAYLOAD},{PAYLOAD}"),
        );
    }
    for (f, rows) in files {
        write(&root.join(f), (rows.join("\n") + "\n").as_bytes());
    }
    write(&root.join("kiban-csv.toml"), CSV_MAPPING.as_bytes());
}

// ---------------------------------------------------------------------------------------------
// DPC 入院EF統合ファイル (31 tab-separated columns, CP932, CRLF)

/// One EF row of person `i`: the columns `dpc.rs` parses as dates, numbers or keys are
/// well-formed; the text columns (read or not) hold injected text; `set` overrides columns
/// by their EF number (1-based).
fn ef_row(i: usize, admitted: &str, discharged: &str, set: &[(usize, &str)]) -> String {
    let mut c: Vec<String> = vec![
        "131000005".into(),   // EF-1 施設コード
        dpc_id(i),            // EF-2 データ識別番号
        discharged.into(),    // EF-3 退院年月日
        admitted.into(),      // EF-4 入院年月日
        "60".into(),          // EF-5 データ区分
        "0001".into(),        // EF-6 順序番号
        "001".into(),         // EF-7 行為明細番号
        PAYLOAD.into(),       // EF-8 病院点数マスタコード (not read)
        "160000410".into(),   // EF-9 レセプト電算処理システム用コード
        "D4132".into(),       // EF-10 解釈番号
        PAYLOAD.into(),       // EF-11 診療明細名称
        "0000001.000".into(), // EF-12 使用量
        "000".into(),         // EF-13 基準単位
        "00000100".into(),    // EF-14 明細点数・金額
        "0".into(),           // EF-15 円・点区分
        "00000100".into(),    // EF-16 出来高実績点数
        WIDE.into(),          // EF-17 行為明細区分情報 (not read)
        "0".into(),           // EF-18 行為点数
        "0".into(),           // EF-19 行為薬剤料
        "0".into(),           // EF-20 行為材料料
        "001".into(),         // EF-21 行為回数
        "09012345".into(),    // EF-22 保険者番号 (identity: vault only)
        "1119".into(),        // EF-23 レセプト種別コード
        "20230402".into(),    // EF-24 実施年月日
        "20".into(),          // EF-25 レセプト科区分
        DOCTOR.into(),        // EF-26 診療科区分
        OBX_ST.into(),        // EF-27 医師コード (not read)
        PAYLOAD.into(),       // EF-28 病棟コード (not read)
        "0".into(),           // EF-29 病棟区分
        "0".into(),           // EF-30 入外区分
        "".into(),            // EF-31 施設タイプ
    ];
    for (n, v) in set {
        c[*n - 1] = (*v).to_string();
    }
    c.join("\t")
}

fn dpc(root: &Path) {
    let mut lines = vec![
        "施設コード\tデータ識別番号\t退院年月日\t入院年月日\tデータ区分\t順序番号\t行為明細番号\t病院点数マスタコード\tレセプト電算コード\t解釈番号\t診療明細名称\t使用量\t基準単位\t明細点数・金額\t円点区分\t出来高実績点数\t行為明細区分情報\t行為点数\t行為薬剤料\t行為材料料\t行為回数\t保険者番号\tレセプト種別コード\t実施年月日\tレセプト科区分\t診療科区分\t医師コード\t病棟コード\t病棟区分\t入外区分\t施設タイプ".to_string(),
    ];
    for i in 1..=PERSONS {
        let (a, d) = ("20230401", "20230410");
        lines.extend([
            // E row (summary of its F rows: not read).
            ef_row(i, a, d, &[(7, "000"), (11, ISSUE)]),
            // 診療行為: free text as 解釈番号 and 診療明細名称.
            ef_row(i, a, d, &[(9, "160098110"), (10, PAYLOAD), (11, PAYLOAD)]),
            // 診療行為 with a real 解釈番号 and the issue's text as its name.
            ef_row(i, a, d, &[(11, ISSUE)]),
            // No usable レセ電 code: the データ区分 decides (procedure), text everywhere.
            ef_row(i, a, d, &[(5, "50"), (9, PAYLOAD), (10, WIDE), (11, WIDE)]),
            // 医薬品 (内服, 注射): name and 基準単位 as text.
            ef_row(
                i,
                a,
                d,
                &[
                    (5, "21"),
                    (9, "620000001"),
                    (10, ""),
                    (11, PAYLOAD),
                    (13, PAYLOAD),
                ],
            ),
            ef_row(
                i,
                a,
                d,
                &[
                    (5, "33"),
                    (9, "620000002"),
                    (10, ""),
                    (11, WIDE),
                    (13, ISSUE),
                ],
            ),
            // 特定器材 → observation: name and unit as text.
            ef_row(
                i,
                a,
                d,
                &[
                    (5, "40"),
                    (9, "730000001"),
                    (10, ""),
                    (11, PAYLOAD),
                    (13, WIDE),
                ],
            ),
            // コメント and 食事療養 rows (not read).
            ef_row(i, a, d, &[(9, "820100001"), (10, ""), (11, PAYLOAD)]),
            ef_row(i, a, d, &[(5, "97"), (9, "197000470"), (11, PAYLOAD)]),
            // A second stay (outpatient) under a 3-digit 診療科コード, which is released.
            ef_row(
                i,
                "20230501",
                "20230501",
                &[(24, "20230501"), (26, "310"), (30, "1"), (11, WIDE)],
            ),
        ]);
    }
    let mut text = lines.join("\r\n");
    text.push_str("\r\n");
    write(&root.join("EFn_131000005_2304.txt"), &encode_sjis(&text));
}

// ---------------------------------------------------------------------------------------------
// DICOM (Part 10, explicit VR little endian, written byte by byte so that the text can be in
// each character set Japanese modalities use, which dicom-rs does not encode)

#[derive(Clone, Copy)]
enum Charset {
    /// `ISO_IR 192`: UTF-8.
    Utf8,
    /// `\ISO 2022 IR 87`: JIS X 0208 behind `ESC $ B` (no half-width kana).
    Ir87,
    /// `ISO 2022 IR 13\ISO 2022 IR 87`: half-width kana as bytes A1–DF, kanji behind escapes.
    Ir13Ir87,
}

impl Charset {
    fn of(i: usize) -> Self {
        [Charset::Utf8, Charset::Ir87, Charset::Ir13Ir87][i % 3]
    }

    fn term(self) -> &'static str {
        match self {
            Charset::Utf8 => "ISO_IR 192",
            Charset::Ir87 => "\\ISO 2022 IR 87",
            Charset::Ir13Ir87 => "ISO 2022 IR 13\\ISO 2022 IR 87",
        }
    }

    /// The width-variant payload this character set can carry.
    fn wide(self) -> &'static str {
        match self {
            Charset::Ir87 => ISSUE,
            _ => WIDE,
        }
    }

    fn encode(self, s: &str) -> Vec<u8> {
        match self {
            Charset::Utf8 => s.as_bytes().to_vec(),
            Charset::Ir87 => {
                assert!(
                    !s.chars().any(|c| ('\u{FF61}'..='\u{FF9F}').contains(&c)),
                    "IR 87 has no half-width kana"
                );
                encode_iso2022jp(s)
            }
            Charset::Ir13Ir87 => {
                // encode_iso2022jp writes half-width kana as `ESC ( I` … `ESC ( B` runs of
                // 21–5F; in IR 13 they are G1 bytes A1–DF without escapes.
                let b = encode_iso2022jp(s);
                let mut out = Vec::with_capacity(b.len());
                let mut kana = false;
                let mut i = 0;
                while i < b.len() {
                    if b[i..].starts_with(b"\x1b(I") {
                        kana = true;
                        i += 3;
                    } else if kana && b[i..].starts_with(b"\x1b(B") {
                        kana = false;
                        i += 3;
                    } else {
                        out.push(if kana { b[i] + 0x80 } else { b[i] });
                        i += 1;
                    }
                }
                out
            }
        }
    }
}

/// One element, explicit VR little endian, padded to even length.
fn element(out: &mut Vec<u8>, (g, e): (u16, u16), vr: &str, value: &[u8]) {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if matches!(vr, "UI" | "OB") { 0 } else { b' ' });
    }
    out.extend_from_slice(&g.to_le_bytes());
    out.extend_from_slice(&e.to_le_bytes());
    out.extend_from_slice(vr.as_bytes());
    if matches!(vr, "OB" | "OW" | "SQ" | "UT" | "UN") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&u16::try_from(v.len()).expect("short value").to_le_bytes());
    }
    out.extend_from_slice(&v);
}

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

/// One CT header (no pixel data) of person `i`: the identity, the fields `read.rs` takes into
/// `image_study` (modality, body part, study or series description) with injected text, and
/// the attributes it does not read (institution, physicians, operators, comments, protocol)
/// with injected text too.
fn dicom_file(i: usize) -> Vec<u8> {
    let cs = Charset::of(i);
    let sop = format!("1.2.392.200036.9116.2.6.1.{i}");
    let mut meta = Vec::new();
    element(&mut meta, (0x0002, 0x0001), "OB", &[0, 1]);
    element(
        &mut meta,
        (0x0002, 0x0002),
        "UI",
        CT_IMAGE_STORAGE.as_bytes(),
    );
    element(&mut meta, (0x0002, 0x0003), "UI", sop.as_bytes());
    element(&mut meta, (0x0002, 0x0010), "UI", b"1.2.840.10008.1.2.1");
    element(&mut meta, (0x0002, 0x0012), "UI", b"1.2.392.200036.9999.1");
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(
        &mut out,
        (0x0002, 0x0000),
        "UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    out.extend_from_slice(&meta);

    let t = |s: &str| cs.encode(s);
    let wide = cs.wide();
    let odd = i % 2 == 1;
    let g = given(i);
    let mut ds: Vec<((u16, u16), &str, Vec<u8>)> = vec![
        ((0x0008, 0x0005), "CS", cs.term().as_bytes().to_vec()),
        ((0x0008, 0x0016), "UI", CT_IMAGE_STORAGE.as_bytes().to_vec()),
        ((0x0008, 0x0018), "UI", sop.as_bytes().to_vec()),
        ((0x0008, 0x0020), "DA", b"20230405".to_vec()),
        ((0x0008, 0x0050), "SH", b"0003334".to_vec()), // AccessionNumber
        // Modality, BodyPartExamined: text for odd persons, defined terms for even ones.
        (
            (0x0008, 0x0060),
            "CS",
            if odd { t(PAYLOAD) } else { b"MR".to_vec() },
        ),
        ((0x0008, 0x0080), "LO", t(PAYLOAD)), // InstitutionName
        ((0x0008, 0x0081), "ST", t(PAYLOAD)), // InstitutionAddress
        ((0x0008, 0x0090), "PN", t("小林^主治医")), // ReferringPhysicianName
        ((0x0008, 0x1010), "SH", t("池田")),  // StationName
        ((0x0008, 0x103E), "LO", t(wide)),    // SeriesDescription
        ((0x0008, 0x1040), "LO", t(DOCTOR)),  // InstitutionalDepartmentName
        ((0x0008, 0x1050), "PN", t("池田^勇")), // PerformingPhysicianName
        ((0x0008, 0x1070), "PN", t("田村^友美")), // OperatorsName
        (
            (0x0010, 0x0010),
            "PN",
            t(&format!("Shiken^{g}=試験^{g}=シケン^{g}")),
        ),
        ((0x0010, 0x0020), "LO", format!("D66{i:04}").into_bytes()),
        (
            (0x0010, 0x0030),
            "DA",
            birth(i).format("%Y%m%d").to_string().into_bytes(),
        ),
        ((0x0010, 0x0040), "CS", sex(i).as_bytes().to_vec()),
        ((0x0010, 0x1000), "LO", b"0003334\\0823112778".to_vec()), // OtherPatientIDs
        ((0x0010, 0x1040), "LO", t("東京都千代田区千代田1-1")),    // PatientAddress
        ((0x0010, 0x2154), "SH", b"090-1234-5678".to_vec()),       // PatientTelephoneNumbers
        ((0x0010, 0x21B0), "LT", t(PAYLOAD)),                      // AdditionalPatientHistory
        ((0x0010, 0x4000), "LT", t(wide)),                         // PatientComments
        (
            (0x0018, 0x0015),
            "CS",
            if odd { t(wide) } else { b"CHEST".to_vec() },
        ),
        ((0x0018, 0x1030), "LO", t(PAYLOAD)), // ProtocolName
        (
            (0x0020, 0x000D),
            "UI",
            format!("1.2.392.200036.9116.2.6.{i}").into_bytes(),
        ),
        (
            (0x0020, 0x000E),
            "UI",
            format!("1.2.392.200036.9116.2.6.2.{i}").into_bytes(),
        ),
        ((0x0020, 0x0010), "SH", b"0003334".to_vec()), // StudyID
        ((0x0020, 0x4000), "LT", t(ISSUE)),            // ImageComments
        ((0x0028, 0x0301), "CS", b"NO".to_vec()),      // BurnedInAnnotation
        ((0x0032, 0x1060), "LO", t(PAYLOAD)),          // RequestedProcedureDescription
        ((0x0040, 0x0254), "LO", t(PAYLOAD)),          // PerformedProcedureStepDescription
    ];
    // StudyDescription for three persons in four; the others fall back to the series'.
    if !i.is_multiple_of(4) {
        ds.push(((0x0008, 0x1030), "LO", t(ISSUE)));
    }
    ds.sort_by_key(|(tag, _, _)| *tag);
    for (tag, vr, v) in ds {
        element(&mut out, tag, vr, &v);
    }
    out
}

fn dicom(root: &Path) {
    for i in 1..=PERSONS {
        write(
            &root.join(format!("STUDY{i:03}")).join("IM0001.dcm"),
            &dicom_file(i),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Scanning

/// Full-width ASCII to ASCII and the ideographic space to a space: the width variants an
/// attacker uses (NFKC does this and more; half-width kana are tokens of their own).
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect()
}

/// The tokens found in one text: as written, width-folded, lower-cased, and with the digits
/// of a phone or ID joined across separators (`082-311-2778` → `0823112778`).
fn leaks(text: &str) -> BTreeSet<String> {
    let folded = fold(text);
    let lower = folded.to_lowercase();
    let joined: String = folded
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '(' | ')' | '.' | '\u{2212}' | '\u{2010}'))
        .collect();
    let mut found = BTreeSet::new();
    for t in TOKENS {
        if text.contains(t)
            || folded.contains(t)
            || lower.contains(&t.to_lowercase())
            || joined.contains(t)
        {
            found.insert(t.to_string());
        }
    }
    for id in patient_ids() {
        if folded.contains(&id) {
            found.insert(id);
        }
    }
    found
}

/// `(handler, table, column)` → number of lake values holding any token: proves ingest took
/// the injected text in, and from which handler's files.
type Hits = BTreeMap<(String, String, String), u64>;

fn lake_hits(ws: &Workspace) -> Hits {
    let mut hits = Hits::new();
    for t in Table::ALL {
        for b in ws.lake().scan(t).expect("scan") {
            let b = b.expect("batch");
            let schema = b.schema();
            let handler = strings(&b, "handler_code");
            for (c, field) in schema.fields().iter().enumerate() {
                if *field.data_type() != DataType::Utf8 {
                    continue;
                }
                let a = b
                    .column(c)
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .expect("text");
                for i in 0..a.len() {
                    if !a.is_null(i) && !leaks(a.value(i)).is_empty() {
                        let key = (
                            handler.value(i).to_string(),
                            t.name().to_string(),
                            field.name().clone(),
                        );
                        *hits.entry(key).or_default() += 1;
                    }
                }
            }
        }
    }
    hits
}

/// The `(table, column)`s of one handler's lake rows that hold injected text.
fn hit_columns(hits: &Hits, handler: &str) -> BTreeSet<(String, String)> {
    hits.keys()
        .filter(|(h, _, _)| h == handler)
        .map(|(_, t, c)| (t.clone(), c.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------

/// Writes one handler's input folder.
type WriteInput = fn(&Path);

struct Setup {
    dir: tempfile::TempDir,
    ws: Workspace,
    today: NaiveDate,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input");
    let formats: [(&str, WriteInput); FORMATS] = [
        ("1310000001", ssmix2),
        ("1310000002", fhir),
        ("1310000003", uke),
        ("1310000004", csv_files),
        (DPC, dpc),
        (DICOM, dicom),
    ];
    let mut handlers = String::from("code,name,address,representative,filed,published,own\n");
    let mut optout = String::from("handler_code,patient_id,event,date\n");
    let ids = patient_ids();
    for (n, (code, make)) in formats.iter().enumerate() {
        make(&input.join(code));
        handlers.push_str(&format!(
            "{code},架空病院{n},東京都架空区1-1,架空 代表,2019-01-04,2019-02-01,2019-02-01\n"
        ));
        for id in ids.iter().skip(n).step_by(formats.len()) {
            optout.push_str(&format!("{code},{id},notice,2020-01-06\n"));
        }
    }
    write(&dir.path().join("handlers.csv"), handlers.as_bytes());
    write(&dir.path().join("optout.csv"), optout.as_bytes());

    let ws = Workspace::init(&dir.path().join("ws")).await.expect("init");
    for h in kiban_pipeline::handlers::read_handlers_csv(&dir.path().join("handlers.csv"))
        .expect("handlers")
    {
        ws.add_handler(&h).await.expect("add handler");
    }
    let imported = ws
        .import_optout(&dir.path().join("optout.csv"))
        .await
        .expect("optout");
    assert_eq!(imported.rejected, 0, "{imported:?}");
    let today = common::today();
    for (code, _) in formats {
        let r = ws
            .ingest(
                &[input.join(code)],
                &IngestOptions {
                    handler: code.to_string(),
                    format: None,
                    received_on: today,
                },
                &NoProgress,
            )
            .await
            .expect("ingest");
        assert_eq!(r.units_rejected, 0, "{code}: {:?}", r.rejected_by_reason);
        assert_eq!(r.units_quarantined, 0, "{code}: {:?}", r.quarantine);
        assert!(r.units_accepted >= PERSONS as u64, "{code}: {r:?}");
    }
    Setup { dir, ws, today }
}

async fn release(s: &Setup, profile: &str) -> (PathBuf, kiban_release::Manifest) {
    let out = s.dir.path().join(format!("rel-{profile}"));
    let r = common::release(&s.ws, common::profile(profile), &out, s.today).await;
    (out, r.manifest)
}

/// Issue 13 "done when": 0 identifiers from injected free text in either profile.
#[tokio::test]
async fn injected_free_text_reaches_no_release_of_either_profile() {
    let s = setup().await;

    // Not vacuous: the lake holds the injected text in every text-bearing field each format
    // has (the release is what must drop it).
    let hits = lake_hits(&s.ws);
    for (table, column) in [
        ("visit_occurrence", "department"),
        ("condition_occurrence", "source_name"),
        ("condition_occurrence", "outcome"),
        ("condition_occurrence", "code"),
        ("condition_occurrence", "code_system"),
        ("condition_occurrence", "source_system"),
        ("drug_exposure", "source_name"),
        ("drug_exposure", "unit"),
        ("drug_exposure", "route"),
        ("drug_exposure", "kind"),
        ("drug_exposure", "source_system"),
        ("measurement", "source_name"),
        ("measurement", "value_text"),
        ("measurement", "unit"),
        ("measurement", "abnormal_flag"),
        ("observation", "source_name"),
        ("observation", "value_text"),
        ("observation", "unit"),
        ("procedure_occurrence", "source_name"),
        ("procedure_occurrence", "source_code"),
        ("note", "text"),
        ("image_study", "description"),
        ("image_study", "modality"),
        ("image_study", "body_part"),
        ("person", "prefecture"),
    ] {
        assert!(
            hits.keys().any(|(_, t, c)| t == table && c == column),
            "the lake's {table}.{column} holds no injected text: the attack did not arrive ({hits:?})"
        );
    }
    // DPC and DICOM: the text is in exactly the columns their readers map it to — and in no
    // other, so nothing of what they leave out (DPC 保険者番号, 医師コード, 病棟コード; the
    // DICOM patient's name, address and phone, institution, physicians, operators, comments,
    // protocol, accession and study IDs) reached the lake.
    let pairs = |list: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        list.iter()
            .map(|(t, c)| (t.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(
        hit_columns(&hits, DPC),
        pairs(&[
            ("visit_occurrence", "department"),
            ("procedure_occurrence", "code"),
            ("procedure_occurrence", "source_name"),
            ("drug_exposure", "source_name"),
            ("drug_exposure", "unit"),
            ("observation", "source_name"),
            ("observation", "unit"),
        ]),
        "DPC EF: {hits:?}"
    );
    assert_eq!(
        hit_columns(&hits, DICOM),
        pairs(&[
            ("image_study", "description"),
            ("image_study", "modality"),
            ("image_study", "body_part"),
        ]),
        "DICOM: {hits:?}"
    );
    // …and legibly in every character set the DICOM files use (UTF-8, ISO 2022 IR 87, IR 13
    // with IR 87): each file's study or series description holds the name.
    let mut descriptions = 0;
    for b in s.ws.lake().scan(Table::ImageStudy).expect("scan") {
        let b = b.expect("batch");
        let (handler, description) = (strings(&b, "handler_code"), strings(&b, "description"));
        for i in 0..b.num_rows() {
            if handler.value(i) == DICOM {
                assert!(
                    description.value(i).contains("田村"),
                    "{:?}",
                    description.value(i)
                );
                descriptions += 1;
            }
        }
    }
    assert_eq!(descriptions, PERSONS);

    for profile in ["anonymized", "pseudonymized"] {
        let (out, manifest) = release(&s, profile).await;
        assert!(
            manifest.persons >= (PERSONS * FORMATS * 3 / 4) as u64,
            "{profile}: {} persons released",
            manifest.persons
        );
        let mut found = common::scan_release(&out, &leaks);
        // The data dictionary describes columns in words of its own ("患者の仮名ID"): the
        // payload's generic word 患者 is no leak there, every other token still is.
        for (file, hits) in found.iter_mut() {
            if file.starts_with("data_dictionary.") {
                hits.remove("患者");
            }
        }
        found.retain(|_, hits| !hits.is_empty());
        assert!(
            found.is_empty(),
            "{profile}: injected identifiers in the release: {found:?}"
        );
        // The policy dropped the text and said so, per table and column.
        for key in [
            "text_dropped.observation.value_text",
            "text_dropped.visit_occurrence.department",
            "text_dropped.drug_exposure.unit",
            "text_dropped.measurement.value_text",
            "text_dropped.image_study.description",
            // DPC 解釈番号 with free text: dropped as an ill-formed code in both profiles
            // (by the item models in the anonymized one, by the text policy otherwise).
            "text_dropped.procedure_occurrence.code",
            "text_dropped.image_study.body_part",
            "text_dropped.image_study.modality",
        ] {
            assert!(
                manifest.peculiar_values.get(key).is_some_and(|n| *n > 0),
                "{profile}: {key} not counted: {:?}",
                manifest.peculiar_values
            );
        }
        // The prefecture column is released as it is only where the demographics are not
        // generalized (the anonymized profile may release regions or `*` instead).
        if manifest
            .generalization
            .get("prefecture")
            .is_none_or(|g| g == "value")
        {
            assert!(
                manifest
                    .peculiar_values
                    .get("text_dropped.person.prefecture")
                    .is_some_and(|n| *n > 0),
                "{profile}: text_dropped.person.prefecture not counted"
            );
        }
        // Legitimate values survive: a standard department, qualitative results, units,
        // codes and their systems (the policy is a list, not a blanket drop). DPC: a 3-digit
        // 診療科コード and a 点数表区分番号 (解釈番号); DICOM: defined terms of Modality and
        // Body Part Examined (the FHIR studies have CT and a SNOMED code).
        let mut kept = vec![
            ("observation", "value_text", "陽性"),
            ("observation", "value_text", "陰性"),
            ("measurement", "unit", "mg/dL"),
            ("visit_occurrence", "department", "循環器内科"),
            ("visit_occurrence", "department", "310"),
            ("visit_occurrence", "visit_type", "outpatient"),
            ("drug_exposure", "code", "2171022F1020"),
            ("drug_exposure", "kind", "prescription"),
            ("condition_occurrence", "code_system", "ICD10"),
            ("condition_occurrence", "source_system", "レセ電傷病名"),
            ("procedure_occurrence", "code", "D4132"),
            ("image_study", "modality", "CT"),
            ("image_study", "modality", "MR"),
            ("image_study", "body_part", "CHEST"),
        ];
        if profile == "pseudonymized" {
            kept.extend([
                // (the anonymized profile may generalize it to the region)
                ("person", "prefecture", "東京都"),
                // No rare-code generalization here: the ICD-10 code itself is released.
                ("condition_occurrence", "code", "E11.9"),
            ]);
        }
        for (table, column, value) in kept {
            let released = values(&out, table, column);
            assert!(
                released.contains(value),
                "{profile}: {table}.{column} lost {value}: {released:?}"
            );
        }
        // Free-text columns are empty in every release.
        for (table, column) in [
            ("condition_occurrence", "source_name"),
            ("drug_exposure", "source_name"),
            ("measurement", "source_name"),
            ("observation", "source_name"),
            ("procedure_occurrence", "source_name"),
            ("image_study", "description"),
        ] {
            assert_eq!(
                values(&out, table, column),
                BTreeSet::new(),
                "{profile}: {table}.{column}"
            );
        }
    }
}
