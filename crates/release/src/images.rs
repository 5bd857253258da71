//! De-identified DICOM objects in a package (issue 15 item 6; the basic policy's example (a),
//! images for AI training, R-ANON-6(a)).
//!
//! The caller (the pipeline) keeps the original objects sealed and gives them back through an
//! [`ImageSource`]; this module never sees where they are kept. For every `image_study` row of
//! a released person that names an original, the object is de-identified by the PS3.15 Annex E
//! Basic Profile (`kiban_dicom::deidentify_bytes`) with:
//! * the person's own date offset, the one used for the tables (the modified-dates option), so
//!   a study's `StudyDate` equals its released `image_study.date` (a day-precision row);
//! * UIDs remapped under a key of the release *and the person* ([`person_uid_key`]): the same
//!   study keeps one UID across files and equals the released `image_study.study_uid`, two
//!   releases give different UIDs, and no UID ties two persons together;
//! * the release pseudonym as Patient ID and Patient's Name; private attributes removed.
//!
//! The result is read back and checked by the independent `annex_e_violations` before it is
//! written: a violation is an error, never an output. An object whose pixels may show
//! identity (burned-in annotation declared or likely) is withheld and counted: kiban does not
//! clean pixel data. Files are named by remapped UIDs only:
//! `images/<person_id>/<study_uid>/<sop_instance_uid>.dcm`.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Where the package writer gets a registration's original objects.
pub trait ImageSource {
    /// The original object `file_ref` of `registration_id`; `None` when it is no longer
    /// available (the registration was deleted and its key shredded). The error text names
    /// no personal data.
    fn open(
        &mut self,
        registration_id: &str,
        file_ref: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
}

/// The folder of the package holding the images.
pub const IMAGES_DIR: &str = "images";

/// What the manifest says about the images of a package.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagesEntry {
    pub folder: String,
    /// Objects written (each listed in the manifest's `files` with its SHA-256).
    pub objects: u64,
    /// Distinct studies among them.
    pub studies: u64,
    /// Objects withheld because their pixels may show identity (burned-in annotation).
    pub withheld_burned_in: u64,
    /// Rows of released persons whose original is no longer available.
    pub unavailable: u64,
    /// The de-identification applied, as the standard names it.
    pub profile: String,
}

/// The UID key of one person in one release: UIDs of that person's objects are remapped
/// under it (and the released `image_study.study_uid` is computed with it).
pub fn person_uid_key(release_key: &[u8; 32], pseudonym: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    // A key derived from the secret release key (never released) and the person: 256 bits.
    let mut h = Sha256::new();
    h.update(b"kiban-release dicom uid key\0");
    h.update(release_key);
    h.update([0u8]);
    h.update(pseudonym.as_bytes());
    h.finalize().to_vec()
}

/// The released Study Instance UID of a source study UID of a person.
pub fn released_study_uid(release_key: &[u8; 32], pseudonym: &str, source_uid: &str) -> String {
    kiban_dicom::remap_uid(&person_uid_key(release_key, pseudonym), source_uid)
}
