//! The Parquet lake: atomic parts, streaming scans, footer counts, rollback and compaction.

use std::collections::BTreeMap;
use std::fs::File;

use arrow::array::{Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use kiban_model::{Fact, FactBatchBuilder, Measurement, Provenance, Table, Visit};
use kiban_store::lake::{self, Lake, LakeError};
use parquet::file::reader::{FileReader, SerializedFileReader};

fn prov(i: usize) -> Provenance {
    Provenance {
        handler_code: "H1".into(),
        source_file: "labs.csv".into(),
        source_record: format!("line {i}"),
    }
}

/// `n` measurements of the given registrations (round robin), value = row index.
fn measurements(batch_id: &str, regs: &[&str], start: usize, n: usize) -> RecordBatch {
    let mut b = FactBatchBuilder::new(batch_id);
    for i in start..start + n {
        let f = Fact::Measurement(Measurement {
            date: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            code: Some("3D010000001926101".into()),
            value_number: Some(i as f64),
            unit: Some("mg/dL".into()),
            ..Default::default()
        });
        b.push(regs[i % regs.len()], &f, &prov(i));
    }
    let mut out = b.finish().unwrap();
    assert_eq!(out.len(), 1);
    out.pop().unwrap().1
}

fn visits(batch_id: &str, reg: &str, n: usize) -> RecordBatch {
    let mut b = FactBatchBuilder::new(batch_id);
    for i in 0..n {
        let f = Fact::Visit(Visit {
            start_date: NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
            ..Default::default()
        });
        b.push(reg, &f, &prov(i));
    }
    b.finish().unwrap().pop().unwrap().1
}

fn scan_values(lake: &Lake) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for b in lake.scan(Table::Measurement).unwrap() {
        let b = b.unwrap();
        let ids = b
            .column_by_name("registration_id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .clone();
        let vals = b
            .column_by_name("value_number")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .clone();
        for i in 0..b.num_rows() {
            out.push((ids.value(i).to_string(), vals.value(i)));
        }
    }
    out
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn writes_scans_and_counts_parts_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    for t in Table::ALL {
        assert!(lake.table_dir(t).is_dir(), "{t} folder created");
        assert_eq!(lake.count_rows(t).unwrap(), 0);
    }

    let mut w = lake.writer(Table::Measurement, "B1").unwrap();
    w.write(&measurements("B1", &["rA"], 0, 10)).unwrap();
    w.write(&measurements("B1", &["rA"], 10, 5)).unwrap();
    let p1 = w.finish().unwrap();
    assert_eq!(p1.rows, 15);
    assert_eq!(
        p1.path,
        dir.path().join("measurement/part-B1-000000.parquet")
    );

    let mut w = lake.writer(Table::Measurement, "B1").unwrap();
    w.write(&measurements("B1", &["rB"], 15, 3)).unwrap();
    let p2 = w.finish().unwrap();
    assert!(p2.path.ends_with("part-B1-000001.parquet"));

    assert_eq!(
        lake.parts(Table::Measurement).unwrap(),
        vec![p1.path, p2.path]
    );
    assert_eq!(lake.count_rows(Table::Measurement).unwrap(), 18);
    let vals = scan_values(&lake);
    assert_eq!(vals.len(), 18);
    // Deterministic order: part 0 rows then part 1 rows, each in write order.
    let expected: Vec<f64> = (0..18).map(|i| i as f64).collect();
    assert_eq!(vals.iter().map(|v| v.1).collect::<Vec<_>>(), expected);
    assert_eq!(lake.batches().unwrap(), vec!["B1".to_string()]);

    // Files are ZSTD-compressed Parquet.
    let r = SerializedFileReader::new(
        File::open(lake.parts(Table::Measurement).unwrap()[0].clone()).unwrap(),
    )
    .unwrap();
    let col = r.metadata().row_group(0).column(0);
    assert!(matches!(
        col.compression(),
        parquet::basic::Compression::ZSTD(_)
    ));
}

#[test]
fn unfinished_writer_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let tdir = lake.table_dir(Table::Measurement);
    {
        let mut w = lake.writer(Table::Measurement, "B1").unwrap();
        w.write(&measurements("B1", &["rA"], 0, 100)).unwrap();
        // While writing, only a hidden temporary file exists: scans see nothing.
        assert!(lake.parts(Table::Measurement).unwrap().is_empty());
        assert_eq!(lake.scan(Table::Measurement).unwrap().count(), 0);
        assert_eq!(files_in(&tdir).len(), 1);
        assert!(files_in(&tdir)[0].starts_with(".part-B1-"));
        // dropped here without finish
    }
    assert!(files_in(&tdir).is_empty(), "abandoned writer cleaned up");

    // A crash (no drop at all) leaves a hidden temporary that scans ignore and the batch
    // rollback removes.
    let mut w = lake.writer(Table::Measurement, "B2").unwrap();
    w.write(&measurements("B2", &["rA"], 0, 10)).unwrap();
    std::mem::forget(w);
    assert_eq!(lake.count_rows(Table::Measurement).unwrap(), 0);
    assert_eq!(lake.scan(Table::Measurement).unwrap().count(), 0);
    assert_eq!(files_in(&tdir).len(), 1);
    assert_eq!(lake.remove_batch("B2").unwrap(), 0, "no finished part");
    assert!(files_in(&tdir).is_empty(), "rollback removed the temporary");
}

#[test]
fn rejects_batches_of_another_schema() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let mut w = lake.writer(Table::VisitOccurrence, "B1").unwrap();
    let err = w.write(&measurements("B1", &["rA"], 0, 3)).unwrap_err();
    assert!(
        matches!(
            err,
            LakeError::Schema {
                table: Table::VisitOccurrence,
                ..
            }
        ),
        "{err}"
    );
    // The writer is still usable with a conforming batch.
    w.write(&visits("B1", "rA", 2)).unwrap();
    assert_eq!(w.finish().unwrap().rows, 2);
    assert!(matches!(
        lake.writer(Table::Note, "../evil"),
        Err(LakeError::BatchId { .. })
    ));
}

#[test]
fn row_groups_are_bounded_so_memory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let mut w = lake.writer(Table::Measurement, "BIG").unwrap();
    let n = lake::ROW_GROUP_ROWS * 2 + 1000;
    let chunk = 20_000;
    let mut written = 0;
    while written < n {
        let k = chunk.min(n - written);
        w.write(&measurements("BIG", &["rA", "rB", "rC"], written, k))
            .unwrap();
        written += k;
    }
    let part = w.finish().unwrap();
    assert_eq!(part.rows, n as u64);
    let r = SerializedFileReader::new(File::open(&part.path).unwrap()).unwrap();
    let groups = r.metadata().num_row_groups();
    assert!(groups >= 3, "{groups} row groups");
    for g in r.metadata().row_groups() {
        assert!(g.num_rows() as usize <= lake::ROW_GROUP_ROWS);
    }
    assert_eq!(lake.count_rows(Table::Measurement).unwrap(), n as u64);
    // Scans stream in bounded record batches.
    let mut total = 0;
    for b in lake.scan(Table::Measurement).unwrap() {
        let b = b.unwrap();
        assert!(b.num_rows() <= lake::SCAN_BATCH_ROWS);
        total += b.num_rows();
    }
    assert_eq!(total, n);
}

#[test]
fn remove_batch_rolls_back_one_ingest_in_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    for (batch, n) in [("B1", 4), ("B1-x", 5), ("B2", 6)] {
        let mut w = lake.writer(Table::Measurement, batch).unwrap();
        w.write(&measurements(batch, &["rA"], 0, n)).unwrap();
        w.finish().unwrap();
        let mut w = lake.writer(Table::VisitOccurrence, batch).unwrap();
        w.write(&visits(batch, "rA", n)).unwrap();
        w.finish().unwrap();
    }
    assert_eq!(lake.count_rows(Table::Measurement).unwrap(), 15);
    assert_eq!(lake.remove_batch("B1").unwrap(), 2);
    // "B1-x" shares the prefix but is another batch: untouched.
    assert_eq!(lake.count_rows(Table::Measurement).unwrap(), 11);
    assert_eq!(lake.count_rows(Table::VisitOccurrence).unwrap(), 11);
    assert_eq!(
        lake.batches().unwrap(),
        vec!["B1-x".to_string(), "B2".to_string()]
    );
    assert_eq!(lake.remove_batch("B1").unwrap(), 0, "idempotent");
}

#[test]
fn concurrent_writers_of_one_batch_get_distinct_parts() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let paths: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|i| {
                let lake = lake.clone();
                s.spawn(move || {
                    let mut w = lake.writer(Table::Measurement, "B1").unwrap();
                    w.write(&measurements("B1", &["rA"], i * 10, 10)).unwrap();
                    w.finish().unwrap().path
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut uniq = paths.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 4);
    assert_eq!(lake.count_rows(Table::Measurement).unwrap(), 40);
}

/// R-OPT-6: after a deletion request the person's rows are physically gone from the lake.
#[test]
fn compact_removes_deleted_registrations_r_opt_6() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    // Part 0: mixed; part 1: only the deleted person; part 2: never had them.
    let mut w = lake.writer(Table::Measurement, "B1").unwrap();
    w.write(&measurements("B1", &["rKEEP", "rDEL"], 0, 10))
        .unwrap();
    w.finish().unwrap();
    let mut w = lake.writer(Table::Measurement, "B1").unwrap();
    w.write(&measurements("B1", &["rDEL"], 10, 4)).unwrap();
    w.finish().unwrap();
    let mut w = lake.writer(Table::Measurement, "B2").unwrap();
    w.write(&measurements("B2", &["rOTHER"], 14, 3)).unwrap();
    let untouched = w.finish().unwrap().path;
    let before = std::fs::read(&untouched).unwrap();

    // What an interrupted earlier compaction left behind is cleaned up.
    let stale = lake
        .table_dir(Table::Measurement)
        .join(".compact-part-B1-000000.parquet.tmp");
    std::fs::write(&stale, b"half").unwrap();

    let keep = |id: &str| id != "rDEL";
    assert_eq!(lake.compact(Table::Measurement, &keep).unwrap(), 9);
    assert!(!stale.exists());
    let vals = scan_values(&lake);
    assert_eq!(vals.len(), 8);
    assert!(vals.iter().all(|(id, _)| id != "rDEL"));
    let kept: BTreeMap<String, usize> = vals.iter().fold(BTreeMap::new(), |mut m, (id, _)| {
        *m.entry(id.clone()).or_default() += 1;
        m
    });
    assert_eq!(kept.get("rKEEP"), Some(&5));
    assert_eq!(kept.get("rOTHER"), Some(&3));
    // The all-deleted part is gone, the untouched one byte-identical, no temporaries left.
    assert_eq!(lake.parts(Table::Measurement).unwrap().len(), 2);
    assert_eq!(std::fs::read(&untouched).unwrap(), before);
    assert!(
        files_in(&lake.table_dir(Table::Measurement))
            .iter()
            .all(|n| !n.starts_with('.'))
    );
    // No byte of the deleted registration id remains in any file of the lake (the kept id
    // is found literally in the footer statistics, so the scan can see ids).
    let mut saw_kept = false;
    for p in lake.parts(Table::Measurement).unwrap() {
        let bytes = std::fs::read(&p).unwrap();
        assert!(!bytes.windows(4).any(|w| w == b"rDEL"), "{}", p.display());
        saw_kept |= bytes.windows(5).any(|w| w == b"rKEEP");
    }
    assert!(saw_kept);
    assert_eq!(lake.compact(Table::Measurement, &keep).unwrap(), 0);

    // compact_all visits every table.
    let mut w = lake.writer(Table::VisitOccurrence, "B3").unwrap();
    w.write(&visits("B3", "rDEL", 2)).unwrap();
    w.finish().unwrap();
    assert_eq!(
        lake.compact_all(&keep).unwrap(),
        vec![(Table::VisitOccurrence, 2)]
    );
    assert_eq!(lake.count_rows(Table::VisitOccurrence).unwrap(), 0);
}

#[test]
fn corrupt_part_is_a_typed_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::open(dir.path()).unwrap();
    let p = lake
        .table_dir(Table::Measurement)
        .join("part-B9-000000.parquet");
    std::fs::write(&p, b"not parquet at all").unwrap();
    assert!(matches!(
        lake.count_rows(Table::Measurement),
        Err(LakeError::Parquet { .. })
    ));
    let first = lake.scan(Table::Measurement).unwrap().next().unwrap();
    assert!(matches!(first, Err(LakeError::Parquet { .. })));
}
