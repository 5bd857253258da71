//! SS-MIX2 standardized storage writer: one HL7 v2.5 message per file, CR segment
//! terminators, ISO-2022-JP, laid out as
//! `{id[0..3]}/{id[3..6]}/{id}/{date|-}/{type}/{id}_{date|-}_{type}_{order}_{timestamp}_{dept|-}_{flag}`.
//! Message shapes follow the nhoHQ sample data and the JAMI SS-MIX2→FHIR ConceptMaps.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::SynthError;
use crate::population::{RegIdentity, Registration, VisitRec};
use crate::summary::Ssmix2Counts;
use crate::tables::{DEPARTMENTS, DIAGNOSES, DOCTORS, DRUGS, LABS};
use crate::text::encode_iso2022jp;
use crate::write::Hospital;

/// The variable parts of an SS-MIX2 file name besides patient, date and data type.
struct FileKey<'a> {
    order: u64,
    stamp: &'a str,
    dept: Option<&'a str>,
}

pub struct Ssmix2Writer {
    root: PathBuf,
    code: String,
    pub counts: Ssmix2Counts,
    msg_seq: u64,
}

/// Builds one segment from (field number, value) pairs; missing fields stay empty.
fn seg(name: &str, fields: &[(usize, String)]) -> String {
    let max = fields.iter().map(|f| f.0).max().unwrap_or(0);
    let mut v = vec![""; max + 1];
    for (i, s) in fields {
        v[*i] = s.as_str();
    }
    v[0] = name;
    let mut s = v.join("|");
    s.push('\r');
    s
}

/// mkdir that accepts an existing folder.
fn mkdir(p: &Path) -> std::io::Result<()> {
    match fs::create_dir(p) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn d8(d: NaiveDate) -> String {
    d.format("%Y%m%d").to_string()
}

fn ts(d: NaiveDate, secs: u32, millis: u32) -> String {
    format!(
        "{}{:02}{:02}{:02}{:03}",
        d8(d),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        millis % 1000
    )
}

fn sex_code(id: &RegIdentity) -> &'static str {
    match id.sex {
        kiban_model::Sex::Male => "M",
        kiban_model::Sex::Female => "F",
        kiban_model::Sex::Other => "O",
        kiban_model::Sex::Unknown => "U",
    }
}

fn doctor(dept: usize) -> String {
    let d = DOCTORS[dept % DOCTORS.len()];
    format!("{}^{}^{}^^^^^^^L^^^^^I", d.0, d.1, d.2)
}

impl Ssmix2Writer {
    pub fn open(root: &Path, h: &Hospital) -> Result<Self, SynthError> {
        fs::create_dir_all(root)
            .map_err(|e| SynthError::io(format!("ssmix2 folder of hospital {}", h.code), e))?;
        Ok(Ssmix2Writer {
            root: root.to_path_buf(),
            code: h.code.clone(),
            counts: Ssmix2Counts::default(),
            msg_seq: 0,
        })
    }

    fn msh(&mut self, h: &Hospital, stamp: &str, msg_type: &str) -> String {
        self.msg_seq += 1;
        // Field-for-field as in the nhoHQ samples, including MSH-18 `~ISO IR87`.
        format!(
            "MSH|^~\\&|KIBANSYN|{}|GW|RCV|{}.{}||{}|{}{:08}|P|2.5||||||~ISO IR87||ISO 2022-1994|SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO\r",
            h.code,
            &stamp[..14],
            &stamp[14..],
            msg_type,
            &h.code[..4],
            self.msg_seq
        )
    }

    fn pid(reg: &Registration, full: bool, stamp: &str) -> String {
        let id = &reg.identity;
        let mut f = vec![
            (1, "0001".to_string()),
            (3, format!("{}^^^^PI", reg.patient_id)),
            (
                5,
                format!(
                    "{}^{}^^^^^L^I~{}^{}^^^^^L^P",
                    id.family_kanji, id.given_kanji, id.family_kana, id.given_kana
                ),
            ),
            (7, d8(id.birth)),
            (8, sex_code(id).to_string()),
            (11, format!("^^^^{}^JPN^H^{}", id.postal, id.address())),
        ];
        if full {
            f.push((13, format!("^PRN^PH^^^^^^^^^{}", id.phone)));
            f.push((33, stamp[..14].to_string()));
        }
        seg("PID", &f)
    }

    fn pv1(v: &VisitRec) -> String {
        let dept = DEPARTMENTS[v.dept].0;
        seg(
            "PV1",
            &[
                (1, "0001".into()),
                (2, if v.emergency { "E".into() } else { "O".into() }),
                (3, format!("{dept}^^^^^C")),
                (7, doctor(v.dept)),
                (10, dept.to_string()),
                (
                    44,
                    format!(
                        "{}{:02}{:02}",
                        d8(v.date),
                        v.time_secs / 3600,
                        v.time_secs / 60 % 60
                    ),
                ),
            ],
        )
    }

    fn orc(
        h: &Hospital,
        order_no: u64,
        group: usize,
        v: &VisitRec,
        stamp: &str,
        ctrl: &str,
    ) -> String {
        let (dcode, dname) = DEPARTMENTS[v.dept];
        seg(
            "ORC",
            &[
                (1, ctrl.into()),
                (2, format!("{order_no:015}")),
                (4, group.to_string()),
                (9, stamp[..14].to_string()),
                (12, doctor(v.dept)),
                (17, format!("{dcode}^{dname}^99Z01")),
                (21, h.name.clone()),
                (29, "O^外来患者オーダ^HL70482".into()),
            ],
        )
    }

    fn write_file(
        &mut self,
        reg: &Registration,
        date: Option<NaiveDate>,
        kind: &str,
        key: FileKey<'_>,
        msg: &str,
    ) -> Result<(), SynthError> {
        let FileKey { order, stamp, dept } = key;
        let pid = &reg.patient_id;
        let date_s = date.map(d8).unwrap_or_else(|| "-".to_string());
        let what = || format!("ssmix2 {kind} file of hospital {}", self.code);
        // The patient folder is made once per registration (ADT-00 is always written first);
        // below it single mkdir calls suffice. One file per message makes SS-MIX2 output
        // filesystem-bound, so avoiding create_dir_all's failing probes matters.
        let patient_dir = self.root.join(&pid[..3]).join(&pid[3..6]).join(pid);
        if kind == "ADT-00" {
            fs::create_dir_all(&patient_dir).map_err(|e| SynthError::io(what(), e))?;
        }
        let date_dir = patient_dir.join(&date_s);
        mkdir(&date_dir).map_err(|e| SynthError::io(what(), e))?;
        let dir = date_dir.join(kind);
        mkdir(&dir).map_err(|e| SynthError::io(what(), e))?;
        let name = format!(
            "{pid}_{date_s}_{kind}_{order:015}_{stamp}_{}_1",
            dept.unwrap_or("-")
        );
        fs::write(dir.join(name), encode_iso2022jp(msg)).map_err(|e| SynthError::io(what(), e))?;
        self.counts.files += 1;
        Ok(())
    }

    pub fn write(&mut self, h: &Hospital, reg: &Registration) -> Result<(), SynthError> {
        let Some(first) = reg.visits.first() else {
            return Ok(());
        };
        let id = &reg.identity;
        let reg_stamp = ts(first.date, first.time_secs.saturating_sub(600), 0);

        // ADT-00: patient master (identity, insurance), under the `-` date folder.
        let mut m = self.msh(h, &reg_stamp, "ADT^A08^ADT_A01");
        m.push_str(&seg(
            "EVN",
            &[(2, reg_stamp[..12].to_string()), (7, "KIBAN".into())],
        ));
        m.push_str(&Self::pid(reg, true, &reg_stamp));
        m.push_str(&seg("PV1", &[(1, "0001".into()), (2, "O".into())]));
        // The patient master is a snapshot: the card on file at export, with its
        // 資格取得年月日 in IN1-12.
        let ins = &id.insurance;
        let (plan_code, plan_name) = ins.kind.label();
        let relation = if ins.is_self {
            "SEL^本人^HL70063"
        } else {
            "FMB^家族^HL70063"
        };
        m.push_str(&seg(
            "IN1",
            &[
                (1, "1".into()),
                (2, format!("{plan_code}^{plan_name}^JHSD0001")),
                (3, ins.insurer.clone()),
                (10, ins.symbol.clone()),
                (11, ins.number.clone()),
                (12, d8(ins.since)),
                (17, relation.into()),
            ],
        ));
        self.write_file(
            reg,
            None,
            "ADT-00",
            FileKey {
                order: 0,
                stamp: &reg_stamp,
                dept: None,
            },
            &m,
        )?;
        self.counts.adt00_files += 1;

        // PPR-01: the problem list, also under `-`.
        let n_cond: usize = reg.visits.iter().map(|v| v.conditions.len()).sum();
        if n_cond > 0 {
            let last = reg
                .visits
                .iter()
                .rev()
                .find(|v| !v.conditions.is_empty())
                .unwrap_or(first);
            let stamp = ts(last.date, last.time_secs, 500);
            let mut m = self.msh(h, &stamp, "PPR^ZD1^PPR_ZD1");
            m.push_str(&Self::pid(reg, false, &stamp));
            let mut first_problem = 0;
            let mut k = 0;
            for v in &reg.visits {
                for c in &v.conditions {
                    let dx = &DIAGNOSES[c.dx];
                    if first_problem == 0 {
                        first_problem = c.problem_no;
                    }
                    let mut f = vec![
                        (1, "AD".to_string()),
                        (2, d8(v.date)),
                        (3, format!("{}^{}^MDCDX2", dx.receipt, dx.name)),
                        (4, format!("{:015}", c.problem_no)),
                        (7, d8(v.date)),
                        (
                            10,
                            format!("{}^{}^I10^O^外来時^JHSD0004", dx.icd10, dx.name),
                        ),
                        (16, d8(v.date)),
                    ];
                    if k == 0 {
                        f.push((18, "1^主診断^JHSD0007".into()));
                    }
                    m.push_str(&seg("PRB", &f));
                    m.push_str(&seg(
                        "ZPR",
                        &[
                            (2, format!("{}^{}^MDCDX2", dx.exchange, dx.name)),
                            (5, format!("{}^{}^MDCDX2", dx.exchange, dx.name)),
                        ],
                    ));
                    self.counts.prb_segments += 1;
                    k += 1;
                }
            }
            let dept = DEPARTMENTS[first.dept].0;
            self.write_file(
                reg,
                None,
                "PPR-01",
                FileKey {
                    order: first_problem,
                    stamp: &stamp,
                    dept: Some(dept),
                },
                &m,
            )?;
            self.counts.ppr01_files += 1;
        }

        for v in &reg.visits {
            let dept = DEPARTMENTS[v.dept].0;
            if !v.drugs.is_empty() {
                let stamp = ts(v.date, v.time_secs, 100);
                let mut m = self.msh(h, &stamp, "RDE^O11^RDE_O11");
                m.push_str(&Self::pid(reg, false, &stamp));
                m.push_str(&Self::pv1(v));
                for (i, d) in v.drugs.iter().enumerate() {
                    let e = &DRUGS[d.drug];
                    let times = if d.per_day % 3 == 0 {
                        3
                    } else if d.per_day % 2 == 0 {
                        2
                    } else {
                        1
                    };
                    let usage = match times {
                        3 => "1013044400000000&内服・経口・１日３回朝昼夕食後&JAMISDP01",
                        2 => "1012040400000000&内服・経口・１日２回朝夕食後&JAMISDP01",
                        _ => "1011000400000000&内服・経口・１日１回朝食後&JAMISDP01",
                    };
                    m.push_str(&Self::orc(h, v.rx_order, i + 1, v, &stamp, "NW"));
                    let unit = format!("{}^{}^MR9P", e.unit_code, e.unit);
                    m.push_str(&seg(
                        "RXE",
                        &[
                            (2, format!("{}^{}^YJ", e.yj, e.name)),
                            (3, (d.per_day / times).to_string()),
                            (5, unit.clone()),
                            (10, (d.per_day * d.days).to_string()),
                            (11, unit),
                            (15, format!("{:015}", v.rx_order)),
                            (19, format!("{}^{}&{}&MR9P", d.per_day, e.unit_code, e.unit)),
                            (21, "OHP^外来処方^MR9P~OHI^院内処方^MR9P".into()),
                        ],
                    ));
                    m.push_str(&seg(
                        "TQ1",
                        &[
                            (1, "1".into()),
                            (3, usage.into()),
                            (6, format!("{}^d", d.days)),
                            (7, format!("{}00", &stamp[..8])),
                        ],
                    ));
                    m.push_str("RXR|PO^口^HL70162\r");
                    self.counts.rxe_segments += 1;
                }
                self.write_file(
                    reg,
                    Some(v.date),
                    "OMP-01",
                    FileKey {
                        order: v.rx_order,
                        stamp: &stamp,
                        dept: Some(dept),
                    },
                    &m,
                )?;
                self.counts.omp01_files += 1;
            }
            if !v.labs.is_empty() {
                let stamp = ts(v.date, v.time_secs + 3600, 200);
                let taken = format!(
                    "{}{:02}{:02}",
                    d8(v.date),
                    v.time_secs / 3600,
                    v.time_secs / 60 % 60
                );
                let mut m = self.msh(h, &stamp, "OUL^R22^OUL_R22");
                m.push_str(&Self::pid(reg, false, &stamp));
                m.push_str(&Self::pv1(v));
                m.push_str(&seg(
                    "SPM",
                    &[
                        (1, "1".into()),
                        (2, format!("{:015}", v.lab_order)),
                        (4, "023^血清^JC10".into()),
                        (17, taken.clone()),
                    ],
                ));
                m.push_str(&seg(
                    "OBR",
                    &[
                        (1, "1".into()),
                        (2, format!("{:015}", v.lab_order)),
                        (3, format!("{:015}", v.lab_order)),
                        (4, "E001^検体検査^99O03".into()),
                        (7, d8(v.date)),
                        (8, d8(v.date)),
                        (16, doctor(v.dept)),
                        (22, stamp[..14].to_string()),
                    ],
                ));
                m.push_str(&Self::orc(h, v.lab_order, 1, v, &stamp, "SC"));
                for (i, l) in v.labs.iter().enumerate() {
                    let t = &LABS[l.lab];
                    m.push_str(&seg(
                        "OBX",
                        &[
                            (1, (i + 1).to_string()),
                            (2, "NM".into()),
                            (3, format!("{}^{}^JC10", t.jlac10, t.name)),
                            (5, l.value.clone()),
                            (6, format!("{}^{}^ISO+", t.unit, t.unit)),
                            (7, format!("{}-{}", t.ref_low, t.ref_high)),
                            (11, "F".into()),
                            (14, taken.clone()),
                        ],
                    ));
                    self.counts.obx_segments += 1;
                }
                self.write_file(
                    reg,
                    Some(v.date),
                    "OML-11",
                    FileKey {
                        order: v.lab_order,
                        stamp: &stamp,
                        dept: Some(dept),
                    },
                    &m,
                )?;
                self.counts.oml11_files += 1;
            }
            self.counts.visit_dates += 1;
        }
        Ok(())
    }
}
