//! One test per Annex E action code on a constructed object (R-ANON-1, R-ANON-2), and the
//! checker catching each kind of leftover.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, DicomValue, Length, PrimitiveValue, Tag, VR};
use kiban_dicom::{CheckOptions, DeidOptions, InMemDicomObject, annex_e_violations, deidentify};

fn el(g: u16, e: u16, vr: VR, v: &str) -> dicom_object::mem::InMemElement {
    DataElement::new(Tag(g, e), vr, PrimitiveValue::from(v))
}

fn sample() -> InMemDicomObject {
    let content_item = InMemDicomObject::from_element_iter([
        el(0x0040, 0xA123, VR::PN, "Doctor^Who"), // Person Name: D
        el(0x0010, 0x1010, VR::AS, "045Y"),       // Patient's Age inside an item: X
        el(0x0008, 0x1155, VR::UI, "1.2.3.99"),   // Referenced SOP Instance UID: U
    ]);
    InMemDicomObject::from_element_iter([
        el(0x0008, 0x0018, VR::UI, "1.2.3.4"),  // SOP Instance UID: U
        el(0x0008, 0x0020, VR::DA, "20200115"), // Study Date: Z (modified dates: C)
        el(0x0008, 0x0030, VR::TM, "101500"),   // Study Time: Z
        el(0x0008, 0x0050, VR::SH, "ACC123"),   // Accession Number: Z
        el(0x0008, 0x0060, VR::CS, "US"),       // Modality: not in the table
        el(0x0008, 0x0080, VR::LO, "Kiban Hospital"), // Institution Name: X/Z/D
        el(0x0010, 0x0010, VR::PN, "Yamada^Tarou"), // Patient's Name: Z
        el(0x0010, 0x0020, VR::LO, "PID-1"),    // Patient ID: Z/D
        el(0x0010, 0x1010, VR::AS, "045Y"),     // Patient's Age: X
        el(0x0012, 0x0010, VR::LO, "Sponsor Inc"), // Clinical Trial Sponsor Name: D
        el(0x0009, 0x0010, VR::LO, "ACME 1.0"), // private creator
        el(0x0009, 0x1001, VR::LO, "secret"),   // private data
        el(0x0011, 0x0010, VR::LO, "SAFE"),     // private creator (safe)
        el(0x0011, 0x1001, VR::LO, "ok"),       // private data (safe)
        DataElement::new(
            Tag(0x5000, 0x3000),
            VR::OW,
            PrimitiveValue::U16([1u16, 2].as_slice().into()),
        ), // curve: X
        DataElement::new(
            Tag(0x6000, 0x3000),
            VR::OW,
            PrimitiveValue::U16([1u16].as_slice().into()),
        ), // overlay data: X
        DataElement::new(Tag(0x6000, 0x0010), VR::US, PrimitiveValue::from(8u16)), // overlay rows: kept
        DataElement::new(
            Tag(0x0040, 0xA730), // Content Sequence: D → its items are de-identified
            VR::SQ,
            DicomValue::from(DataSetSequence::new(vec![content_item], Length::UNDEFINED)),
        ),
    ])
}

fn s(o: &InMemDicomObject, g: u16, e: u16) -> Option<String> {
    o.get(Tag(g, e))
        .map(|x| x.to_str().unwrap().trim().to_string())
}

fn key() -> Vec<u8> {
    vec![42u8; 32]
}

#[test]
fn each_action_code_basic_profile() {
    let orig = sample();
    let mut o = sample();
    let opts = DeidOptions::new(key());
    let rep = deidentify(&mut o, &opts).unwrap();
    // X and X/… codes: removed.
    for (g, e) in [
        (0x0008, 0x0080),
        (0x0010, 0x1010),
        (0x5000, 0x3000),
        (0x6000, 0x3000),
    ] {
        assert!(o.get(Tag(g, e)).is_none(), "({g:04X},{e:04X})");
    }
    // Z, Z/D: emptied.
    for (g, e) in [
        (0x0008, 0x0020),
        (0x0008, 0x0030),
        (0x0008, 0x0050),
        (0x0010, 0x0010),
        (0x0010, 0x0020),
    ] {
        assert_eq!(s(&o, g, e).as_deref(), Some(""), "({g:04X},{e:04X})");
    }
    // D: dummy.
    assert_eq!(s(&o, 0x0012, 0x0010).as_deref(), Some("ANONYMIZED"));
    // U: remapped under 2.25.
    let uid = s(&o, 0x0008, 0x0018).unwrap();
    assert!(uid.starts_with("2.25.") && uid != "1.2.3.4");
    // Not in the table: kept; overlay rows (60xx,0010) are not a wildcard row.
    assert_eq!(s(&o, 0x0008, 0x0060).as_deref(), Some("US"));
    assert!(o.get(Tag(0x6000, 0x0010)).is_some());
    // Private: removed (creator and data).
    assert!(o.get(Tag(0x0009, 0x0010)).is_none() && o.get(Tag(0x0009, 0x1001)).is_none());
    assert!(o.get(Tag(0x0011, 0x1001)).is_none());
    assert_eq!(rep.private_removed, 4);
    // Nested: the content item keeps its structure, its X removed, D replaced, U remapped.
    let seq = o.get(Tag(0x0040, 0xA730)).unwrap();
    let item = &seq.items().unwrap()[0];
    assert!(item.get(Tag(0x0010, 0x1010)).is_none());
    assert_eq!(s(item, 0x0040, 0xA123).as_deref(), Some("ANONYMIZED"));
    assert!(s(item, 0x0008, 0x1155).unwrap().starts_with("2.25."));
    // Marking (PS3.15 E.1.1).
    assert_eq!(s(&o, 0x0012, 0x0062).as_deref(), Some("YES"));
    assert_eq!(s(&o, 0x0028, 0x0303).as_deref(), Some("REMOVED"));
    let codes = o.get(Tag(0x0012, 0x0064)).unwrap().items().unwrap();
    assert_eq!(s(&codes[0], 0x0008, 0x0100).as_deref(), Some("113100"));
    // Burned in: US without Burned In Annotation.
    assert!(rep.burned_in_risk);
    assert!(annex_e_violations(&o, Some(&orig), &CheckOptions::default()).is_empty());
}

#[test]
fn options_shift_dates_pseudonym_and_safe_private_r_anon_6a() {
    let orig = sample();
    let mut o = sample();
    let mut opts = DeidOptions::new(key());
    opts.date_shift_days = Some(20);
    opts.pseudonym = Some("PSN-9".into());
    opts.safe_private_creators = vec!["SAFE".into()];
    let rep = deidentify(&mut o, &opts).unwrap();
    assert_eq!(s(&o, 0x0008, 0x0020).as_deref(), Some("20200204"));
    assert_eq!(
        s(&o, 0x0008, 0x0030).as_deref(),
        Some("101500"),
        "time of day kept"
    );
    assert_eq!(s(&o, 0x0010, 0x0020).as_deref(), Some("PSN-9"));
    assert_eq!(s(&o, 0x0010, 0x0010).as_deref(), Some("PSN-9"));
    assert_eq!(s(&o, 0x0011, 0x1001).as_deref(), Some("ok"));
    assert!(o.get(Tag(0x0009, 0x1001)).is_none());
    assert_eq!(rep.private_retained, 2);
    assert_eq!(rep.dates_shifted, 1);
    assert_eq!(s(&o, 0x0028, 0x0303).as_deref(), Some("MODIFIED"));
    let codes: Vec<String> = o
        .get(Tag(0x0012, 0x0064))
        .unwrap()
        .items()
        .unwrap()
        .iter()
        .map(|i| s(i, 0x0008, 0x0100).unwrap())
        .collect();
    assert_eq!(codes, ["113100", "113107", "113111"]);
    assert!(annex_e_violations(&o, Some(&orig), &CheckOptions::from(&opts)).is_empty());
    // The same output judged as if no option had been used: the kept time of day and the
    // private block are violations (a shifted date differs from the original, which Z allows
    // as a dummy).
    let strict = annex_e_violations(&o, Some(&orig), &CheckOptions::default());
    assert!(strict.iter().any(|v| v.tag == "(0008,0030)"));
    assert!(strict.iter().any(|v| v.name == "private attribute"));
}

#[test]
fn checker_flags_each_kind_of_leftover() {
    let orig = sample();
    let mut o = sample();
    deidentify(&mut o, &DeidOptions::new(key())).unwrap();
    let check = |o: &InMemDicomObject| annex_e_violations(o, Some(&orig), &CheckOptions::default());
    let flagged = |mut o: InMemDicomObject, e: dicom_object::mem::InMemElement, reason: &str| {
        let tag = e.header().tag;
        o.put(e);
        let v = check(&o);
        assert!(
            v.iter()
                .any(|v| v.tag == format!("({:04X},{:04X})", tag.0, tag.1)
                    && v.reason.contains(reason)),
            "{tag:?}: {v:?}"
        );
    };
    flagged(
        o.clone(),
        el(0x0008, 0x0080, VR::LO, "Kiban Hospital"),
        "removed (X)",
    );
    flagged(
        o.clone(),
        el(0x0010, 0x0010, VR::PN, "Yamada^Tarou"),
        "original value (Z)",
    );
    flagged(
        o.clone(),
        el(0x0012, 0x0010, VR::LO, "Sponsor Inc"),
        "original value (D)",
    );
    flagged(
        o.clone(),
        el(0x0008, 0x0018, VR::UI, "1.2.3.4"),
        "original UID (U)",
    );
    flagged(
        o.clone(),
        el(0x0008, 0x0018, VR::UI, "1.02.x"),
        "not a valid UID",
    );
    flagged(o.clone(), el(0x0009, 0x1001, VR::LO, "x"), "private");
    flagged(o.clone(), el(0x6002, 0x3000, VR::OW, ""), "removed (X)");
    // Without the original, a Z attribute must be empty.
    let mut p = o.clone();
    p.put(el(0x0010, 0x0010, VR::PN, "Someone"));
    assert!(
        annex_e_violations(&p, None, &CheckOptions::default())
            .iter()
            .any(|v| v.reason == "must be empty (Z)")
    );
    // The clean output has none.
    assert!(check(&o).is_empty());
}

#[test]
fn bad_options_are_refused() {
    let mut o = sample();
    assert!(deidentify(&mut o, &DeidOptions::new(vec![1u8; 4])).is_err());
    let mut opts = DeidOptions::new(key());
    opts.pseudonym = Some("a^b".into());
    assert!(deidentify(&mut o, &opts).is_err());
    assert!(
        !format!("{opts:?}").contains("a^b"),
        "pseudonym not in Debug"
    );
}
