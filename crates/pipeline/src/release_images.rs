//! Original DICOM objects, kept for releases of images (issue 15 item 6; the basic policy's
//! example (a), images for AI training, R-ANON-6(a)).
//!
//! An original DICOM file's header names the patient (name, ID, birth date), so it is never
//! kept in clear: ingest seals it under the *registration's* vault data key
//! ([`kiban_store::Vault::seal_for_registration`], in the chunk's transaction) and writes the
//! ciphertext to `lake/sealed/<registration_id>/<ref>`; the `image_study` row's `file_ref`
//! names `<ref>` (`dicom-` + 32 hex digits, random: nothing of the source). A deletion
//! shreds the registration's key — the object no longer opens, wherever a copy is — and
//! removes the folder ([`remove_originals_of`]).
//!
//! At release the [`SealedOriginals`] source opens the originals of released persons for
//! the package writer, which de-identifies them (PS3.15 Annex E, the person's date shift,
//! UIDs keyed per release and person), checks each with `annex_e_violations` and writes it
//! under `images/` (see `kiban_release::package`).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use kiban_store::perms;
use kiban_store::vault::ObjectOpener;

use crate::PipelineError;

/// The folder under the lake root holding sealed originals, one folder per registration.
pub const SEALED_DIR: &str = "sealed";

/// A fresh reference for an original object: `dicom-` and 32 random hex digits.
pub fn new_original_ref() -> String {
    format!("dicom-{}", crate::ingest::new_id())
}

/// A reference kiban made ([`new_original_ref`]): nothing else is ever joined to a path.
pub fn is_original_ref(r: &str) -> bool {
    r.strip_prefix("dicom-")
        .is_some_and(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn registration_ok(reg: &str) -> bool {
    !reg.is_empty()
        && reg.len() <= 128
        && reg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Where the sealed original `r` of `registration_id` is kept.
pub fn sealed_path(lake_root: &Path, registration_id: &str, r: &str) -> Option<PathBuf> {
    (registration_ok(registration_id) && is_original_ref(r))
        .then(|| lake_root.join(SEALED_DIR).join(registration_id).join(r))
}

/// Writes a sealed original (temporary file, synced, renamed; owner-only).
pub(crate) fn write_sealed(
    lake_root: &Path,
    registration_id: &str,
    r: &str,
    sealed: &[u8],
) -> Result<(), PipelineError> {
    let path = sealed_path(lake_root, registration_id, r)
        .ok_or_else(|| PipelineError::Internal("sealed original: invalid reference".into()))?;
    let dir = path
        .parent()
        .ok_or_else(|| PipelineError::Internal("sealed original: no folder".into()))?;
    for d in [lake_root.join(SEALED_DIR), dir.to_path_buf()] {
        if !d.exists() {
            perms::create_dir_private(&d).map_err(|e| PipelineError::io(&d, e))?;
        }
    }
    let tmp = dir.join(format!(".{r}.tmp"));
    let mut f = perms::create_private_file(&tmp).map_err(|e| PipelineError::io(&tmp, e))?;
    f.write_all(sealed)
        .map_err(|e| PipelineError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PipelineError::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| PipelineError::io(&path, e))?;
    Ok(())
}

/// Removes the sealed originals of `registrations` (their keys are shredded by the same
/// deletion; this removes the ciphertext too). Returns how many objects were removed.
pub fn remove_originals_of(lake_root: &Path, registrations: &[&str]) -> Result<u64, PipelineError> {
    let mut n = 0;
    for reg in registrations {
        if !registration_ok(reg) {
            continue;
        }
        let dir = lake_root.join(SEALED_DIR).join(reg);
        if !dir.is_dir() {
            continue;
        }
        for e in std::fs::read_dir(&dir).map_err(|e| PipelineError::io(&dir, e))? {
            let e = e.map_err(|e| PipelineError::io(&dir, e))?;
            if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                std::fs::remove_file(e.path()).map_err(|err| PipelineError::io(&e.path(), err))?;
                n += 1;
            }
        }
        std::fs::remove_dir(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    }
    Ok(n)
}

/// The release's source of original objects: the sealed files, opened with the keys of the
/// registrations that have any, loaded once by [`crate::Workspace::sealed_originals`].
pub struct SealedOriginals {
    root: PathBuf,
    opener: ObjectOpener,
}

impl kiban_release::images::ImageSource for SealedOriginals {
    fn open(
        &mut self,
        registration_id: &str,
        file_ref: &str,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, String> {
        let Some(path) = sealed_path(&self.root, registration_id, file_ref) else {
            return Ok(None);
        };
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("sealed original {file_ref}: {}", e.kind())),
        };
        self.opener
            .open(registration_id, file_ref, &sealed)
            .map_err(|e| e.to_string())
    }
}

impl crate::Workspace {
    /// The sealed originals of `registrations` (the released ones with an image), ready to
    /// open in the package writer's synchronous loop.
    pub(crate) async fn sealed_originals(
        &self,
        registrations: &[&str],
    ) -> Result<SealedOriginals, PipelineError> {
        let opener = self.vault.object_opener(registrations).await?;
        Ok(SealedOriginals {
            root: self.lake.root().to_path_buf(),
            opener,
        })
    }
}

/// Registration → the refs of its kept originals, from the lake's `image_study` rows.
pub(crate) fn originals_in_lake(
    lake: &kiban_store::Lake,
) -> Result<HashMap<String, Vec<String>>, PipelineError> {
    use arrow::array::{Array, StringArray};
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for batch in lake.scan(kiban_model::Table::ImageStudy)? {
        let batch = batch?;
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .cloned()
                .ok_or_else(|| PipelineError::Internal(format!("image_study.{name}")))
        };
        let regs = col("registration_id")?;
        let refs = col("file_ref")?;
        for i in 0..batch.num_rows() {
            if !refs.is_null(i) && is_original_ref(refs.value(i)) {
                out.entry(regs.value(i).to_string())
                    .or_default()
                    .push(refs.value(i).to_string());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of a sealed original taken before the deletion (a backup, a copied lake) no
    /// longer opens once the registration's key is shredded.
    #[tokio::test]
    async fn a_sealed_original_does_not_open_after_its_registration_is_shredded() {
        let dir = tempfile::tempdir().unwrap();
        let ws = crate::Workspace::init(&dir.path().join("ws"))
            .await
            .unwrap();
        let (reg, r) = ("reg-1", new_original_ref());
        let plain = b"DICM original naming Yamada^Taro".to_vec();
        let mut tx = ws.db.pool().begin().await.unwrap();
        let sealed = ws
            .vault
            .seal_for_registration(&mut tx, reg, &r, &plain)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"Yamad"), "sealed in clear");
        write_sealed(ws.lake.root(), reg, &r, &sealed).unwrap();
        let backup = std::fs::read(sealed_path(ws.lake.root(), reg, &r).unwrap()).unwrap();
        let opener = ws.vault.object_opener(&[reg]).await.unwrap();
        assert_eq!(
            opener.open(reg, &r, &backup).unwrap().as_deref(),
            Some(&plain)
        );
        // Bound to its registration and reference: moved elsewhere, it does not open.
        assert!(opener.open(reg, "dicom-00", &backup).is_err());

        assert!(ws.vault.shred(reg).await.unwrap());
        assert_eq!(remove_originals_of(ws.lake.root(), &[reg]).unwrap(), 1);
        assert!(sealed_path(ws.lake.root(), reg, &r).is_some_and(|p| !p.exists()));
        let opener = ws.vault.object_opener(&[reg]).await.unwrap();
        assert!(opener.open(reg, &r, &backup).unwrap().is_none());
    }

    #[test]
    fn only_kiban_references_make_paths() {
        let root = Path::new("/lake");
        assert!(sealed_path(root, "r1", &new_original_ref()).is_some());
        for bad in ["../x", "dicom-../../etc", "dicom-", "file.dcm", "dicom-zz"] {
            assert!(sealed_path(root, "r1", bad).is_none(), "{bad}");
        }
        assert!(sealed_path(root, "../r1", &new_original_ref()).is_none());
    }
}
