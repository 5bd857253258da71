//! The data dictionary of a package (issue 15 item 6): `data_dictionary.csv` (UTF-8 with
//! BOM, so that Excel opens the Japanese text) and `data_dictionary.json`, listed in the
//! manifest with their SHA-256.
//!
//! One entry per file of the package (what it is) and one per column of every written table
//! — the columns are read from each written Parquet file's own schema, not from a list kept
//! here, so a column the writer adds without a description is an error
//! ([`ReleaseError::Spec`]), never an undocumented column. Each column says, in Japanese and
//! English, what it holds, its Arrow type, its code system where there is one, and the
//! processing *this* release applied to it, taken from the spec and the generalization the
//! writer chose (pseudonymized per release, date shifted, generalized to …, suppressed…).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiban_model::Table;
use serde::{Deserialize, Serialize};

use crate::ReleaseError;
use crate::images::ImagesEntry;
use crate::package::{DATE_PRECISION, FileEntry, TableEntry};
use crate::spec::{Birth, CODED_TABLES, Level, Spec};

pub const DICTIONARY_CSV: &str = "data_dictionary.csv";
pub const DICTIONARY_JSON: &str = "data_dictionary.json";

/// The dictionary's file names, for the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DictionaryFiles {
    pub csv: String,
    pub json: String,
}

/// One file of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDescription {
    pub path: String,
    pub description_ja: String,
    pub description_en: String,
}

/// One column of one table (its Parquet and CSV files hold the same columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDescription {
    pub table: String,
    pub parquet: String,
    pub csv: String,
    pub column: String,
    /// The Arrow type as Arrow names it (`Utf8`, `Date32`, `Float64`, …).
    pub arrow_type: String,
    pub nullable: bool,
    pub description_ja: String,
    pub description_en: String,
    /// The code system of the values, where there is one.
    pub code_system: Option<String>,
    /// What this release did to the column.
    pub processing_ja: String,
    pub processing_en: String,
}

/// `data_dictionary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dictionary {
    pub release_id: String,
    pub profile: String,
    pub level: String,
    pub files: Vec<FileDescription>,
    pub columns: Vec<ColumnDescription>,
}

pub(crate) struct DictionaryInput<'a> {
    pub release_id: &'a str,
    pub spec: &'a Spec,
    pub tables: &'a BTreeMap<String, TableEntry>,
    pub generalization: &'a BTreeMap<String, String>,
    /// The files written so far (tables, risk report, images).
    pub files: &'a [FileEntry],
    pub images: Option<&'a ImagesEntry>,
}

pub(crate) struct Written {
    pub files: DictionaryFiles,
    pub paths: Vec<PathBuf>,
}

/// Builds the dictionary of what is in `out` and writes it (CSV and JSON).
pub(crate) fn write_dictionary(
    out: &Path,
    input: &DictionaryInput<'_>,
) -> Result<Written, ReleaseError> {
    let dict = build(out, input)?;
    let json_path = out.join(DICTIONARY_JSON);
    let mut json =
        serde_json::to_vec_pretty(&dict).map_err(|e| ReleaseError::Spec(e.to_string()))?;
    json.push(b'\n');
    std::fs::write(&json_path, json).map_err(|e| ReleaseError::io(&json_path, e))?;
    let csv_path = out.join(DICTIONARY_CSV);
    std::fs::write(&csv_path, to_csv(&dict)).map_err(|e| ReleaseError::io(&csv_path, e))?;
    Ok(Written {
        files: DictionaryFiles {
            csv: DICTIONARY_CSV.into(),
            json: DICTIONARY_JSON.into(),
        },
        paths: vec![csv_path, json_path],
    })
}

fn build(out: &Path, input: &DictionaryInput<'_>) -> Result<Dictionary, ReleaseError> {
    let mut files = Vec::new();
    let mut columns = Vec::new();
    for f in input.files {
        let (ja, en) = describe_file(&f.path, input.tables).ok_or_else(|| {
            ReleaseError::Spec(format!(
                "data dictionary: no description for file {}",
                f.path
            ))
        })?;
        files.push(FileDescription {
            path: f.path.clone(),
            description_ja: ja,
            description_en: en,
        });
    }
    for (name, d) in [
        (DICTIONARY_CSV, "このデータ辞書（CSV、UTF-8 BOM付き）"),
        (DICTIONARY_JSON, "このデータ辞書（JSON）"),
    ] {
        files.push(FileDescription {
            path: name.into(),
            description_ja: d.into(),
            description_en: "this data dictionary: every file and column of the package".into(),
        });
    }
    files.push(FileDescription {
        path: "manifest.json".into(),
        description_ja: "マニフェスト：提供の内容、加工水準、リスク指標、全ファイルのSHA-256".into(),
        description_en: "manifest: what the release holds, its level, risk figures and the SHA-256 of every file".into(),
    });
    for (name, entry) in input.tables {
        let table = Table::ALL
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| ReleaseError::Spec(format!("data dictionary: unknown table {name}")))?;
        let schema = parquet_schema(&out.join(&entry.parquet))?;
        for field in schema.fields() {
            let column = field.name().as_str();
            let (ja, en, code_system) = describe_column(table, column).ok_or_else(|| {
                ReleaseError::Spec(format!(
                    "data dictionary: no description for {name}.{column}"
                ))
            })?;
            let (pja, pen) = processing(
                input.spec,
                input.generalization,
                table,
                column,
                field.data_type(),
            );
            columns.push(ColumnDescription {
                table: name.clone(),
                parquet: entry.parquet.clone(),
                csv: entry.csv.clone(),
                column: column.to_string(),
                arrow_type: field.data_type().to_string(),
                nullable: field.is_nullable(),
                description_ja: ja.into(),
                description_en: en.into(),
                code_system: code_system.map(str::to_string),
                processing_ja: pja,
                processing_en: pen,
            });
        }
    }
    let _ = input.images;
    Ok(Dictionary {
        release_id: input.release_id.to_string(),
        profile: input.spec.name.clone(),
        level: input.spec.level.as_str().to_string(),
        files,
        columns,
    })
}

/// The Arrow schema of a written Parquet file (its footer only).
pub fn parquet_schema(path: &Path) -> Result<arrow::datatypes::SchemaRef, ReleaseError> {
    let f = std::fs::File::open(path).map_err(|e| ReleaseError::io(path, e))?;
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)?;
    Ok(b.schema().clone())
}

fn describe_file(path: &str, tables: &BTreeMap<String, TableEntry>) -> Option<(String, String)> {
    for (name, t) in tables {
        let (ja, en) = table_description(name)?;
        if path == t.parquet {
            return Some((format!("{ja}（Parquet）"), format!("{en} (Parquet)")));
        }
        if path == t.csv {
            return Some((format!("{ja}（CSV、UTF-8）"), format!("{en} (CSV, UTF-8)")));
        }
    }
    Some(match path {
        "risk.json" => (
            "リスク評価報告（JSON：検察官・ジャーナリスト・マーケターリスク、一意、再識別テスト）".into(),
            "risk report (JSON: prosecutor/journalist/marketer risk, uniques, re-identification test)".into(),
        ),
        "risk_report.html" => ("リスク評価報告（HTML）".into(), "risk report (HTML)".into()),
        "risk_report.pdf" => ("リスク評価報告（PDF）".into(), "risk report (PDF)".into()),
        p if p.starts_with("images/") && p.ends_with(".dcm") => (
            "匿名化済みDICOM画像（images/<person_id>/<study_uid>/<sop_instance_uid>.dcm、PS3.15 附属書E 基本プロファイル、日付は本人のずらし幅で移動、UIDは提供ごとに置換）".into(),
            "de-identified DICOM object (images/<person_id>/<study_uid>/<sop_instance_uid>.dcm; PS3.15 Annex E Basic Profile, dates moved by the person's offset, UIDs replaced per release)".into(),
        ),
        _ => return None,
    })
}

fn table_description(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "person" => ("患者（1人1行）", "persons, one row each"),
        "visit_occurrence" => ("受診（外来・入院）", "visits (outpatient, inpatient)"),
        "condition_occurrence" => ("傷病名", "diagnoses"),
        "drug_exposure" => ("処方・投薬", "drug prescriptions and administrations"),
        "measurement" => ("検体検査結果", "laboratory results"),
        "procedure_occurrence" => ("診療行為・処置・手術", "procedures"),
        "observation" => (
            "その他の観察（バイタル等）",
            "other observations (vital signs…)",
        ),
        "image_study" => (
            "画像検査（DICOMスタディ）",
            "imaging studies (DICOM studies)",
        ),
        "note" => ("記録（自由記載）", "notes (free text)"),
        _ => return None,
    })
}

type Described = (&'static str, &'static str, Option<&'static str>);

/// What a released column holds: Japanese, English, code system.
pub fn describe_column(table: Table, column: &str) -> Option<Described> {
    let coded = |ja, en, sys| Some((ja, en, Some(sys)));
    let plain = |ja, en| Some((ja, en, None));
    match (table, column) {
        (_, "person_id") => plain(
            "患者の仮名ID（この提供限り）",
            "the person's pseudonym (this release only)",
        ),
        (_, "visit_id") => plain(
            "受診の仮名ID（この提供・この患者限り）",
            "the visit's pseudonymous key (this release and person only)",
        ),
        (_, DATE_PRECISION) => plain(
            "日付の精度：day（日）または month（月：月初日で表示）",
            "precision of the row's dates: day, or month (shown as the 1st)",
        ),
        (Table::Person, "birth_year") => plain("生年（一般化後）", "birth year (as generalized)"),
        (Table::Person, "birth_year_month") => plain(
            "生年月（一般化後）",
            "birth year and month (as generalized)",
        ),
        (Table::Person, "birth_date") => plain("生年月日（ずらし後）", "birth date (shifted)"),
        (Table::Person, "sex") => {
            coded("性別", "sex", "M / F / O / U（* は一般化 / * generalized）")
        }
        (Table::Person, "prefecture") => coded(
            "都道府県（一般化後：地方、*）",
            "prefecture (as generalized: region, *)",
            "JIS X 0401 都道府県名 / prefecture names",
        ),
        (Table::Person, "id1") => plain(
            "NDB互換ID1（保険者番号・記号番号・生年月日・性別、提供ごとに鍵付き）",
            "NDB-compatible ID1 (insurer, card, birth date, sex; keyed per release)",
        ),
        (Table::Person, "id2") => plain(
            "NDB互換ID2（氏名・生年月日・性別、提供ごとに鍵付き）",
            "NDB-compatible ID2 (name, birth date, sex; keyed per release)",
        ),
        (Table::VisitOccurrence, "visit_type") => coded(
            "受診区分",
            "visit type",
            "outpatient / inpatient / emergency / other",
        ),
        (Table::VisitOccurrence, "start_date") => {
            plain("受診（入院）開始日", "visit (admission) start date")
        }
        (Table::VisitOccurrence, "end_date") => {
            plain("受診（退院）終了日", "visit (discharge) end date")
        }
        (Table::VisitOccurrence, "department") => coded(
            "診療科",
            "department",
            "診療科名（統制語）/ controlled department names",
        ),
        (Table::ConditionOccurrence, "start_date") => {
            plain("発症日・診断日", "onset or diagnosis date")
        }
        (Table::ConditionOccurrence, "end_date") => plain("転帰日", "end (outcome) date"),
        (Table::ConditionOccurrence, "code") => coded(
            "傷病名コード",
            "diagnosis code",
            "ICD-10（ICD10対応標準病名マスター）; generalized labels of its hierarchy",
        ),
        (Table::ConditionOccurrence, "suspected") => plain("疑い病名か", "suspected diagnosis"),
        (Table::ConditionOccurrence, "primary") => plain("主病名か", "primary diagnosis"),
        (Table::ConditionOccurrence, "outcome") => coded(
            "転帰",
            "outcome",
            "治癒 / 死亡 / 中止 / 移行 等の統制語 / controlled values",
        ),
        (Table::DrugExposure, "start_date") => plain(
            "処方・投与開始日",
            "prescription or administration start date",
        ),
        (Table::DrugExposure, "end_date") => plain("投与終了日", "end date"),
        (Table::DrugExposure, "code") => coded(
            "医薬品コード",
            "drug code",
            "YJ / HOT / レセ電算医薬品コード; masked (*) when generalized",
        ),
        (Table::DrugExposure, "quantity") => plain("数量", "quantity"),
        (Table::DrugExposure, "unit") => coded("単位", "unit", "UCUM / 日本語単位（統制語）"),
        (Table::DrugExposure, "days_supply") => plain("日数・回数", "days supplied"),
        (Table::DrugExposure, "route") => coded("投与経路", "route", "統制語 / controlled values"),
        (Table::DrugExposure, "kind") => coded(
            "区分（内服・外用・注射等）",
            "kind (oral, topical, injection…)",
            "統制語 / controlled values",
        ),
        (Table::Measurement, "date") => plain("検査日", "test date"),
        (Table::Measurement, "code") => {
            coded("検査項目コード", "test code", "JLAC10 / JLAC11 / LOINC")
        }
        (Table::Measurement, "value_number") => plain("結果値（数値）", "result value (number)"),
        (Table::Measurement, "value_text") => plain(
            "結果値（定性・上下限コード化の表示）",
            "result value (qualitative, or the top/bottom coding label)",
        ),
        (Table::Measurement, "unit") => coded("単位", "unit", "UCUM / 日本語単位（統制語）"),
        (Table::Measurement, "range_low") => plain("基準値下限", "reference range low"),
        (Table::Measurement, "range_high") => plain("基準値上限", "reference range high"),
        (Table::Measurement, "abnormal_flag") => coded(
            "異常値フラグ",
            "abnormal flag",
            "HL7 v2 Table 0078 (H, L, N…)",
        ),
        (Table::ProcedureOccurrence, "date") => plain("実施日", "date performed"),
        (Table::ProcedureOccurrence, "code") => coded(
            "診療行為コード",
            "procedure code",
            "レセ電算診療行為コード / 点数表区分番号 (K-code) / JJ1017",
        ),
        (Table::ProcedureOccurrence, "quantity") => plain("回数・数量", "count or quantity"),
        (Table::Observation, "date") => plain("観察日", "observation date"),
        (Table::Observation, "code") => coded(
            "観察項目コード",
            "observation code",
            "LOINC / JLAC10 / SNOMED CT",
        ),
        (Table::Observation, "value_number") => plain("値（数値）", "value (number)"),
        (Table::Observation, "value_text") => plain("値（統制語）", "value (controlled text)"),
        (Table::Observation, "unit") => coded("単位", "unit", "UCUM / 日本語単位（統制語）"),
        (Table::ImageStudy, "date") => plain(
            "検査日（DICOM StudyDate と同じ値）",
            "study date (equals the DICOM objects' StudyDate)",
        ),
        (Table::ImageStudy, "modality") => coded(
            "モダリティ",
            "modality",
            "DICOM Modality (PS3.3 C.7.3.1.1.1: CT, MR, CR…)",
        ),
        (Table::ImageStudy, "study_uid") => coded(
            "スタディの仮名UID（images/ の DICOM の StudyInstanceUID と同じ）",
            "the study's pseudonymous UID (equals the StudyInstanceUID of the DICOM objects under images/)",
            "DICOM UID, 2.25. root (ISO/IEC 9834-8)",
        ),
        (Table::ImageStudy, "body_part") => coded(
            "撮影部位",
            "body part examined",
            "DICOM Body Part Examined (PS3.16 CID 4031)",
        ),
        (Table::ImageStudy, "description") => {
            plain("スタディ記述（自由記載）", "study description (free text)")
        }
        (_, "code_system") => plain("code 列のコード体系名", "name of the code system of `code`"),
        (_, "source_code") => plain("提供元のコード", "the source's own code"),
        (_, "source_system") => plain(
            "提供元のコード体系（登録されたOIDまたは既知の体系）",
            "the source's code system (a registered OID or a known system)",
        ),
        (_, "source_name") => plain(
            "提供元の名称（自由記載）",
            "the source's name for the item (free text)",
        ),
        _ => None,
    }
}

/// What this release did to a column, from the spec and the chosen generalization.
fn processing(
    spec: &Spec,
    generalization: &BTreeMap<String, String>,
    table: Table,
    column: &str,
    ty: &arrow::datatypes::DataType,
) -> (String, String) {
    let shift = spec.dates.shift;
    let days = spec.dates.max_shift_days;
    let s = |ja: &str, en: &str| (ja.to_string(), en.to_string());
    let item_table = spec
        .longitudinal
        .item_tables
        .iter()
        .any(|t| t == table.name());
    let text_rule = crate::text_policy::rule(table, column);
    match column {
        "person_id" => {
            return s(
                "仮名化：提供ごとの鍵で作る仮名（内部IDとも他の提供とも結合できない）",
                "pseudonymized: keyed per release (joins neither internal IDs nor other releases)",
            );
        }
        "visit_id" => {
            return s(
                "仮名化：提供ごと・患者ごとの鍵",
                "pseudonymized: keyed per release and person",
            );
        }
        "study_uid" => {
            return s(
                "仮名化：提供ごと・患者ごとの鍵でDICOM UIDを置換（2.25.）",
                "pseudonymized: DICOM UID remapped under a key of this release and person (2.25.)",
            );
        }
        "id1" | "id2" => {
            return s(
                "NDB方式で正規化後、提供ごとの鍵でハッシュ",
                "normalized as NDB does, hashed under this release's key",
            );
        }
        DATE_PRECISION => {
            return s(
                "付加列：月初日の行は月単位で提供",
                "added: rows dated the 1st are released to the month",
            );
        }
        _ => {}
    }
    if table == Table::Person {
        let generalized = generalization
            .iter()
            .find(|(q, _)| column.starts_with(q.as_str()) || q.starts_with(column));
        let top = spec
            .person
            .top_code_age
            .map(|a| {
                (
                    format!("、{a}歳以上はまとめて表示"),
                    format!("; ages {a} and over share one value"),
                )
            })
            .unwrap_or_default();
        return match (column, generalized) {
            ("birth_date", _) if spec.person.birth == Birth::Date && shift => (
                format!("本人のずらし幅（±{days}日）で移動{}", top.0),
                format!("shifted by the person's offset (±{days} days){}", top.1),
            ),
            (_, Some((_, level))) => (
                format!(
                    "準識別子として一般化：{level}{}（k={}）",
                    top.0, spec.person.k
                ),
                format!(
                    "quasi-identifier generalized to: {level}{} (k={})",
                    top.1, spec.person.k
                ),
            ),
            _ => s(
                "提供元の値（統制語以外は空欄）",
                "as recorded (anything but a controlled value emptied)",
            ),
        };
    }
    if *ty == arrow::datatypes::DataType::Date32 {
        return if shift {
            (
                format!(
                    "本人のずらし幅（±{days}日、同一人物の全日付に共通）で移動；月初日の行は移動後の月の1日"
                ),
                format!(
                    "shifted by the person's offset (±{days} days, the same for all of the person's dates); rows on the 1st released to the month they land in"
                ),
            )
        } else {
            s(
                "ずらしなし（仮名加工：正確な日付）",
                "not shifted (pseudonymized: exact dates)",
            )
        };
    }
    match (column, text_rule) {
        ("code", _) if item_table && spec.level == Level::Anonymized => (
            format!(
                "(k, k^m)-匿名化（k={}, m={}）：階層を上位へ一般化、または削除（空欄）",
                spec.person.k, spec.longitudinal.m
            ),
            format!(
                "(k, k^m)-anonymized (k={}, m={}): generalized up its hierarchy or suppressed (empty)",
                spec.person.k, spec.longitudinal.m
            ),
        ),
        ("code", _) if CODED_TABLES.contains(&table) && spec.codes.rare_min_persons > 0 => (
            format!(
                "{}人未満の希少コードは階層を上位へ一般化または削除；形式不正のコードは空欄",
                spec.codes.rare_min_persons
            ),
            format!(
                "codes held by fewer than {} persons generalized up their hierarchy or suppressed; ill-formed codes emptied",
                spec.codes.rare_min_persons
            ),
        ),
        ("code", _) => s(
            "形式の正しいコードのみ（不正なものは空欄）",
            "well-formed codes only (others emptied)",
        ),
        ("source_code" | "source_name", _) if item_table && spec.level == Level::Anonymized => s(
            "削除（常に空欄：一般化したコードの元の値を残さない）",
            "suppressed (always empty: no source value beside a generalized code)",
        ),
        (_, Some(crate::text_policy::Rule::Drop)) => s(
            "削除（自由記載は提供しない：常に空欄）",
            "suppressed (free text is never released: always empty)",
        ),
        ("value_number" | "value_text", _)
            if table == Table::Measurement && spec.measurement.top_bottom_percentile > 0.0 =>
        {
            (
                format!(
                    "項目ごとに上下{}%をトップ・ボトムコーディング（value_text に「X以上／X以下」）",
                    spec.measurement.top_bottom_percentile
                ),
                format!(
                    "top/bottom coded per analyte at {}% (value_text says 「X以上」/「X以下」)",
                    spec.measurement.top_bottom_percentile
                ),
            )
        }
        (_, Some(_)) => s(
            "提供元の値（形式の正しいコード・統制語のみ、それ以外は空欄）",
            "as recorded (well-formed codes and controlled values only, others emptied)",
        ),
        _ => s("提供元の値のまま", "as recorded"),
    }
}

/// The CSV form: a BOM, a header, one row per file, then one per column.
fn to_csv(d: &Dictionary) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    let header = [
        "kind",
        "file",
        "csv",
        "table",
        "column",
        "arrow_type",
        "nullable",
        "description_ja",
        "description_en",
        "code_system",
        "processing_ja",
        "processing_en",
    ];
    push_row(&mut out, header.iter().map(|s| s.to_string()));
    for f in &d.files {
        push_row(
            &mut out,
            [
                "file".into(),
                f.path.clone(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                f.description_ja.clone(),
                f.description_en.clone(),
                String::new(),
                String::new(),
                String::new(),
            ]
            .into_iter(),
        );
    }
    for c in &d.columns {
        push_row(
            &mut out,
            [
                "column".into(),
                c.parquet.clone(),
                c.csv.clone(),
                c.table.clone(),
                c.column.clone(),
                c.arrow_type.clone(),
                c.nullable.to_string(),
                c.description_ja.clone(),
                c.description_en.clone(),
                c.code_system.clone().unwrap_or_default(),
                c.processing_ja.clone(),
                c.processing_en.clone(),
            ]
            .into_iter(),
        );
    }
    out.into_bytes()
}

fn push_row(out: &mut String, fields: impl Iterator<Item = String>) {
    let mut first = true;
    for f in fields {
        if !first {
            out.push(',');
        }
        first = false;
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(&f);
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_released_column_of_every_table_is_described() {
        // The writer's released schemas for both date settings; the person table's columns
        // come from `write_person_table` (birth variants, NDB keys).
        for shifted in [false, true] {
            for t in Table::ALL {
                if t == Table::Person || t == Table::Note {
                    continue;
                }
                for f in crate::package::output_schema(t, shifted).fields() {
                    let (ja, en, _) = describe_column(t, f.name())
                        .unwrap_or_else(|| panic!("{}.{} undescribed", t.name(), f.name()));
                    assert!(!ja.trim().is_empty() && !en.trim().is_empty());
                }
            }
        }
        for c in [
            "person_id",
            "birth_year",
            "birth_year_month",
            "birth_date",
            "sex",
            "prefecture",
            "id1",
            "id2",
        ] {
            assert!(describe_column(Table::Person, c).is_some(), "{c}");
        }
    }

    #[test]
    fn csv_starts_with_a_bom_and_quotes_commas() {
        let d = Dictionary {
            release_id: "r".into(),
            profile: "p".into(),
            level: "anonymized".into(),
            files: vec![FileDescription {
                path: "a.csv".into(),
                description_ja: "表、その1".into(),
                description_en: "a, \"quoted\"".into(),
            }],
            columns: vec![],
        };
        let s = String::from_utf8(to_csv(&d)).unwrap();
        assert!(s.starts_with('\u{feff}'));
        assert!(s.contains("\"表、その1\"") || s.contains("表、その1"));
        assert!(s.contains("\"a, \"\"quoted\"\"\""));
    }
}
