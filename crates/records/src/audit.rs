//! The tamper-evident audit log (design principle 8).
//!
//! Every state-changing action appends one [`AuditEvent`] as one JSON line to append-only
//! segment files `DIR/segment-000001.jsonl`, `segment-000002.jsonl`, … (a new segment starts
//! when the current one would exceed [`AuditOptions::segment_max_bytes`]). Each line carries
//! `prev`, the hash of the previous event (64 zeros for the first), and
//! `hash = sha256(prev bytes ‖ canonical JSON of the event without "hash")`, so changing,
//! removing or reordering any event breaks the chain from that point on.
//!
//! Removing *trailing* events would leave a valid (shorter) chain, so `DIR/HEAD` records the
//! seq and hash of the last event, rewritten atomically (temp file + rename + fsync) after
//! every append; [`verify`] compares the chain's end with it.
//!
//! **Crash repair.** Before an append writes its line it writes `DIR/INTENT`, the seq and hash
//! of the one event it is about to append (atomically, fsynced). A crash between the line and
//! HEAD leaves HEAD one event behind with INTENT naming exactly that last event: that, and
//! only that, is repaired on open (HEAD moved on, and an `audit.repair` event appended so the
//! repair is on record). A line beyond HEAD that INTENT does not name — an event appended by
//! hand, however well hashed — is [`BreakKind::UnclaimedTail`]: open refuses it and [`verify`]
//! reports it. Sound because an append is the only writer of INTENT and writes it before the
//! line, under the log's exclusive `LOCK`: a crash can leave at most that one event past HEAD.
//!
//! What this does **not** protect against by itself: someone who rewrites the whole chain
//! *and* HEAD (and INTENT) — the chain is keyless. The signed checkpoints of
//! [`crate::checkpoint`], kept in the control plane and exported off-site, are the remedy.
//!
//! Concurrency: appends take an exclusive lock on `DIR/LOCK` and re-read HEAD, so several
//! processes may append to the same log; [`verify`] holds it shared while it reads, so it
//! never sees an append half done. `detail` must never hold personal data: the log
//! is read by inspectors and operators.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Default segment size before rotation.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 8 * 1024 * 1024;

const HEAD_FILE: &str = "HEAD";
const HEAD_TMP: &str = "HEAD.tmp";
const INTENT_FILE: &str = "INTENT";
const INTENT_TMP: &str = "INTENT.tmp";
const LOCK_FILE: &str = "LOCK";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The log on disk is broken; appending to it would extend a broken chain.
    #[error("audit log is broken: {0}")]
    Broken(Box<Break>),
    #[error("audit event could not be encoded: {0}")]
    Encode(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The outcome of the audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Refused,
    Failed,
}

/// What the caller tells the log; seq, time and hashes are added by [`AuditLog::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Who acted: an operator name, a service account, `"kiban"` for automatic jobs.
    pub actor: String,
    /// A dotted verb, e.g. `"ingest"`, `"optout.import"`, `"release"`.
    pub action: String,
    /// What was acted on: a file name, batch ID, release ID (never a patient ID).
    pub object: String,
    pub counts: BTreeMap<String, u64>,
    pub result: Outcome,
    /// Free text for operators. Never personal data.
    pub detail: Option<String>,
}

impl AuditEvent {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        AuditEvent {
            actor: actor.into(),
            action: action.into(),
            object: object.into(),
            counts: BTreeMap::new(),
            result: Outcome::Ok,
            detail: None,
        }
    }

    pub fn count(mut self, name: impl Into<String>, n: u64) -> Self {
        self.counts.insert(name.into(), n);
        self
    }

    pub fn result(mut self, result: Outcome) -> Self {
        self.result = result;
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// One line of a segment, exactly as written (field order is the canonical order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEvent {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub counts: BTreeMap<String, u64>,
    pub result: Outcome,
    pub detail: Option<String>,
    pub prev: String,
    pub hash: String,
}

/// The hashed part of an event: everything but `hash`, in canonical order.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    actor: &'a str,
    action: &'a str,
    object: &'a str,
    counts: &'a BTreeMap<String, u64>,
    result: Outcome,
    detail: &'a Option<String>,
    prev: &'a str,
}

impl StoredEvent {
    /// `sha256(prev bytes ‖ canonical body)`; `None` when `prev` is not 64 hex digits.
    pub fn compute_hash(&self) -> Option<String> {
        let mut prev = [0u8; 32];
        hex::decode_to_slice(&self.prev, &mut prev).ok()?;
        let body = serde_json::to_vec(&Body {
            seq: self.seq,
            time: &self.time,
            actor: &self.actor,
            action: &self.action,
            object: &self.object,
            counts: &self.counts,
            result: self.result,
            detail: &self.detail,
            prev: &self.prev,
        })
        .ok()?;
        let mut h = Sha256::new();
        h.update(prev);
        h.update(&body);
        Some(hex::encode(h.finalize()))
    }

    fn to_line(&self) -> Result<String, AuditError> {
        serde_json::to_string(self).map_err(|e| AuditError::Encode(e.to_string()))
    }
}

/// The end of the chain: the last event's seq and hash (seq 0 and [`GENESIS`] when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

impl AuditHead {
    fn empty() -> Self {
        AuditHead {
            seq: 0,
            hash: GENESIS.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AuditOptions {
    pub segment_max_bytes: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
        }
    }
}

/// Where the chain's tail is on disk.
#[derive(Debug, Clone)]
struct Tail {
    head: AuditHead,
    segment: u32,
    segment_len: u64,
    /// The seq whose HEAD a crash repair moved on to (see the module documentation).
    repaired: Option<u64>,
}

/// An open audit log. Appends are serialized through `DIR/LOCK` across processes.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    options: AuditOptions,
    /// `None` after a failed append: reload from disk before the next one.
    tail: Option<Tail>,
}

pub fn segment_name(n: u32) -> String {
    format!("segment-{n:06}.jsonl")
}

fn parse_segment_name(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".jsonl")?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment numbers present in `dir`, ascending.
fn list_segments(dir: &Path) -> Result<Vec<u32>, AuditError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

enum HeadFile {
    Missing,
    Bad,
    Ok(AuditHead),
}

fn read_head(dir: &Path) -> Result<HeadFile, AuditError> {
    read_head_file(dir, HEAD_FILE)
}

/// The append in progress (or the last one, when it finished): see the module documentation.
fn read_intent(dir: &Path) -> Result<Option<AuditHead>, AuditError> {
    Ok(match read_head_file(dir, INTENT_FILE)? {
        HeadFile::Ok(h) => Some(h),
        HeadFile::Missing | HeadFile::Bad => None,
    })
}

fn read_head_file(dir: &Path, name: &str) -> Result<HeadFile, AuditError> {
    let path = dir.join(name);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HeadFile::Missing),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let Ok(head) = serde_json::from_slice::<AuditHead>(&bytes) else {
        return Ok(HeadFile::Bad);
    };
    // Only the exact bytes we write are accepted, so no edit can hide in whitespace.
    match head_bytes(&head) {
        Ok(canon) if canon == bytes => Ok(HeadFile::Ok(head)),
        _ => Ok(HeadFile::Bad),
    }
}

fn head_bytes(head: &AuditHead) -> Result<Vec<u8>, AuditError> {
    let mut v = serde_json::to_vec(head).map_err(|e| AuditError::Encode(e.to_string()))?;
    v.push(b'\n');
    Ok(v)
}

fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    // Persist renames and new files; directories can be opened read-only for fsync on Unix.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn write_head(dir: &Path, head: &AuditHead) -> Result<(), AuditError> {
    write_head_file(dir, head, HEAD_TMP, HEAD_FILE)
}

fn write_head_file(
    dir: &Path,
    head: &AuditHead,
    tmp_name: &str,
    name: &str,
) -> Result<(), AuditError> {
    let tmp = dir.join(tmp_name);
    let bytes = head_bytes(head)?;
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    let path = dir.join(name);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)
}

/// Parses and fully checks one complete line (without its `\n`) against the expected seq and
/// prev hash.
fn check_line(line: &[u8], expected_seq: u64, prev: &str) -> Result<StoredEvent, BreakKind> {
    let ev: StoredEvent = serde_json::from_slice(line).map_err(|_| BreakKind::Unparsable)?;
    match ev.to_line() {
        Ok(canon) if canon.as_bytes() == line => {}
        _ => return Err(BreakKind::NotCanonical),
    }
    if ev.seq != expected_seq {
        return Err(BreakKind::SequenceGap {
            expected: expected_seq,
            found: ev.seq,
        });
    }
    if ev.prev != prev {
        return Err(BreakKind::BrokenChain);
    }
    if ev.compute_hash().as_deref() != Some(ev.hash.as_str()) {
        return Err(BreakKind::HashMismatch);
    }
    Ok(ev)
}

impl AuditLog {
    /// Opens (creating if needed) the log in `dir` with default options.
    pub fn open(dir: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(dir, AuditOptions::default())
    }

    /// Opens the log. An event whose write was cut off by a crash *before* HEAD recorded it
    /// was never acknowledged, so its partial line is removed; any other inconsistency is an
    /// error ([`AuditError::Broken`]) and nothing is appended until an operator looks.
    pub fn open_with(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut log = AuditLog {
            dir: dir.to_path_buf(),
            options,
            tail: None,
        };
        let lock = log.lock()?;
        let mut tail = log.load_tail()?;
        let repaired = tail.repaired.take();
        log.tail = Some(tail);
        drop(lock);
        if let Some(seq) = repaired {
            // On record: the event a crash left beyond HEAD was taken into the chain.
            log.append(AuditEvent::new(
                "kiban",
                "audit.repair",
                format!("seq:{seq}"),
            ))?;
        }
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last appended event's seq and hash as known to this handle.
    pub fn head(&self) -> Option<&AuditHead> {
        self.tail.as_ref().map(|t| &t.head)
    }

    fn lock(&self) -> Result<File, AuditError> {
        let path = self.dir.join(LOCK_FILE);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.lock().map_err(io_err(&path))?;
        Ok(f)
    }

    /// Reads the chain's end from disk (the last segment only), repairing an unacknowledged
    /// partial line or a HEAD one event behind after a crash.
    fn load_tail(&self) -> Result<Tail, AuditError> {
        let segments = list_segments(&self.dir)?;
        let head = read_head(&self.dir)?;
        let broken = |segment: u32, line: u64, seq: u64, kind: BreakKind| {
            AuditError::Broken(Box::new(Break {
                segment: segment_name(segment),
                line,
                seq,
                kind,
                events_verified: 0,
            }))
        };
        // Find the last segment holding at least one byte.
        let mut last: Option<(u32, Vec<u8>)> = None;
        for &n in segments.iter().rev() {
            let path = self.dir.join(segment_name(n));
            let bytes = fs::read(&path).map_err(io_err(&path))?;
            if !bytes.is_empty() {
                last = Some((n, bytes));
                break;
            }
        }
        let append_segment = segments.last().copied().unwrap_or(1);
        let Some((seg, mut bytes)) = last else {
            return match head {
                HeadFile::Missing => Ok(Tail {
                    head: AuditHead::empty(),
                    segment: append_segment,
                    segment_len: 0,
                    repaired: None,
                }),
                HeadFile::Ok(h) if h.seq == 0 => Ok(Tail {
                    head: h,
                    segment: append_segment,
                    segment_len: 0,
                    repaired: None,
                }),
                HeadFile::Ok(h) => Err(broken(append_segment, 1, h.seq, BreakKind::HeadMismatch)),
                HeadFile::Bad => Err(broken(append_segment, 1, 1, BreakKind::HeadUnparsable)),
            };
        };
        let seg_path = self.dir.join(segment_name(seg));
        // Complete lines end with '\n'; a remainder is a cut-off write.
        let complete_len = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|p| p + 1)
            .unwrap_or(0);
        let partial = complete_len < bytes.len();
        let lines: Vec<&[u8]> = bytes[..complete_len]
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        let last_line = lines.last().copied();
        let last_ev = match last_line {
            Some(l) => {
                let ev: StoredEvent = serde_json::from_slice(l)
                    .map_err(|_| broken(seg, lines.len() as u64, 0, BreakKind::Unparsable))?;
                if ev.compute_hash().as_deref() != Some(ev.hash.as_str()) {
                    return Err(broken(
                        seg,
                        lines.len() as u64,
                        ev.seq,
                        BreakKind::HashMismatch,
                    ));
                }
                Some(ev)
            }
            None if seg > 1 => {
                // Only a partial line in a fresh segment: the chain's end is in the
                // previous one.
                let prev_path = self.dir.join(segment_name(seg - 1));
                let prev_bytes = fs::read(&prev_path).map_err(io_err(&prev_path))?;
                let l = prev_bytes
                    .split(|&b| b == b'\n')
                    .rfind(|l| !l.is_empty())
                    .ok_or_else(|| broken(seg - 1, 1, 0, BreakKind::Unparsable))?;
                let ev: StoredEvent = serde_json::from_slice(l)
                    .map_err(|_| broken(seg - 1, 0, 0, BreakKind::Unparsable))?;
                Some(ev)
            }
            None => None,
        };
        let chain_end = last_ev
            .as_ref()
            .map(|e| AuditHead {
                seq: e.seq,
                hash: e.hash.clone(),
            })
            .unwrap_or_else(AuditHead::empty);
        let n_lines = lines.len() as u64;
        let head_ok = match &head {
            HeadFile::Ok(h) => *h == chain_end,
            _ => false,
        };
        // HEAD one behind: the last append crashed after its line but before HEAD — and only
        // when INTENT, written before that line, names exactly this event.
        let one_behind = match (&head, &last_ev) {
            (HeadFile::Ok(h), Some(e)) => h.seq + 1 == e.seq && h.hash == e.prev,
            (HeadFile::Missing, Some(e)) => e.seq == 1 && e.prev == GENESIS,
            _ => false,
        };
        let intended = read_intent(&self.dir)?.is_some_and(|i| i == chain_end);
        let head_behind = one_behind && intended;
        let mut repaired = None;
        if partial {
            if !head_ok {
                return Err(broken(
                    seg,
                    n_lines + 1,
                    chain_end.seq + 1,
                    BreakKind::Truncated,
                ));
            }
            let f = OpenOptions::new()
                .write(true)
                .open(&seg_path)
                .map_err(io_err(&seg_path))?;
            f.set_len(complete_len as u64).map_err(io_err(&seg_path))?;
            f.sync_all().map_err(io_err(&seg_path))?;
            bytes.truncate(complete_len);
        } else if !head_ok {
            if head_behind {
                write_head(&self.dir, &chain_end)?;
                repaired = Some(chain_end.seq);
            } else {
                let kind = match head {
                    _ if one_behind => BreakKind::UnclaimedTail,
                    HeadFile::Bad | HeadFile::Missing => BreakKind::HeadUnparsable,
                    HeadFile::Ok(_) => BreakKind::HeadMismatch,
                };
                return Err(broken(seg, n_lines, chain_end.seq, kind));
            }
        }
        Ok(Tail {
            repaired,
            head: chain_end,
            segment: append_segment.max(seg),
            segment_len: if append_segment > seg {
                0
            } else {
                bytes.len() as u64
            },
        })
    }

    /// Appends one event durably (segment fsync, then HEAD rewritten atomically) and returns
    /// the new head.
    pub fn append(&mut self, event: AuditEvent) -> Result<AuditHead, AuditError> {
        let _lock = self.lock()?;
        // Another process may have appended since we last looked.
        let fresh = match (&self.tail, read_head(&self.dir)?) {
            (Some(t), HeadFile::Ok(h)) => t.head == h,
            (Some(t), HeadFile::Missing) => t.head.seq == 0,
            _ => false,
        };
        if !fresh {
            self.tail = None;
            let mut tail = self.load_tail()?;
            let repaired = tail.repaired.take();
            self.tail = Some(tail);
            if let Some(seq) = repaired {
                // Another process crashed mid-append: its event is on record, and so is
                // the repair.
                self.append_locked(AuditEvent::new(
                    "kiban",
                    "audit.repair",
                    format!("seq:{seq}"),
                ))?;
            }
        }
        self.append_locked(event)
    }

    /// [`AuditLog::append`] with `LOCK` held and the tail fresh.
    fn append_locked(&mut self, event: AuditEvent) -> Result<AuditHead, AuditError> {
        let Some(mut tail) = self.tail.take() else {
            return Err(AuditError::Encode("audit tail unavailable".into()));
        };
        let mut ev = StoredEvent {
            seq: tail.head.seq + 1,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            actor: event.actor,
            action: event.action,
            object: event.object,
            counts: event.counts,
            result: event.result,
            detail: event.detail,
            prev: tail.head.hash.clone(),
            hash: String::new(),
        };
        ev.hash = ev
            .compute_hash()
            .ok_or_else(|| AuditError::Encode("previous hash is not hex".into()))?;
        let mut line = ev.to_line()?;
        line.push('\n');
        let len = line.len() as u64;
        let mut new_segment = false;
        if tail.segment_len > 0 && tail.segment_len + len > self.options.segment_max_bytes {
            tail.segment += 1;
            tail.segment_len = 0;
            new_segment = true;
        }
        // Before the line: what a crash between the line and HEAD may leave beyond HEAD.
        write_head_file(
            &self.dir,
            &AuditHead {
                seq: ev.seq,
                hash: ev.hash.clone(),
            },
            INTENT_TMP,
            INTENT_FILE,
        )?;
        let path = self.dir.join(segment_name(tail.segment));
        {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            f.write_all(line.as_bytes()).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
        if new_segment {
            sync_dir(&self.dir)?;
        }
        let head = AuditHead {
            seq: ev.seq,
            hash: ev.hash,
        };
        write_head(&self.dir, &head)?;
        tail.segment_len += len;
        tail.head = head.clone();
        self.tail = Some(tail);
        Ok(head)
    }
}

/// Why the log is broken at some event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakKind {
    /// The event's content does not hash to its `hash`.
    HashMismatch,
    /// `prev` is not the previous event's hash.
    BrokenChain,
    /// Events missing or out of order.
    SequenceGap { expected: u64, found: u64 },
    /// The last line is cut off.
    Truncated,
    /// Not a JSON audit event.
    Unparsable,
    /// Parses, but is not byte for byte what kiban writes.
    NotCanonical,
    /// A segment file is missing from the numbering.
    MissingSegment,
    /// HEAD names another end of the chain (trailing events removed or added).
    HeadMismatch,
    /// HEAD is missing or altered while the log holds events.
    HeadUnparsable,
    /// An event beyond HEAD that no append in progress wrote (INTENT does not name it): what a
    /// crash cannot produce, e.g. an event appended by hand. Never repaired.
    UnclaimedTail,
}

impl std::fmt::Display for BreakKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakKind::HashMismatch => f.write_str("hash mismatch (event altered)"),
            BreakKind::BrokenChain => f.write_str("broken chain (prev is not the previous hash)"),
            BreakKind::SequenceGap { expected, found } => {
                write!(
                    f,
                    "sequence gap or reorder (expected seq {expected}, found {found})"
                )
            }
            BreakKind::Truncated => f.write_str("truncated event"),
            BreakKind::Unparsable => f.write_str("unparsable line"),
            BreakKind::NotCanonical => f.write_str("line altered (not in canonical form)"),
            BreakKind::MissingSegment => f.write_str("segment file missing"),
            BreakKind::HeadMismatch => {
                f.write_str("HEAD does not match the last event (events removed or added)")
            }
            BreakKind::HeadUnparsable => f.write_str("HEAD missing or altered"),
            BreakKind::UnclaimedTail => f.write_str(
                "event beyond HEAD that no append wrote (appended outside kiban, not a crash)",
            ),
        }
    }
}

/// The first broken event: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// Segment file name, e.g. `segment-000002.jsonl`.
    pub segment: String,
    /// 1-based line number in that segment.
    pub line: u64,
    /// The seq the event at that position should have.
    pub seq: u64,
    pub kind: BreakKind,
    /// Events verified intact before the break.
    pub events_verified: u64,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "first broken event: seq {} at {} line {}: {}",
            self.seq, self.segment, self.line, self.kind
        )
    }
}

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub segments: usize,
    pub head: AuditHead,
    /// The last event was written by an append that a crash cut before HEAD (INTENT names
    /// it): intact, and the next writer repairs HEAD (see the module documentation).
    pub repair_pending: bool,
    /// The hash of the chain at each seq asked for ([`verify_each`]) that the chain reaches.
    pub hashes: BTreeMap<u64, String>,
}

/// Re-checks the whole log in `dir`: every line canonical, seqs contiguous from 1, every
/// `prev` the previous hash, every hash recomputed, HEAD equal to the chain's end.
/// `Err(AuditError::Broken)` names the first broken event; other errors are I/O.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    verify_each(dir, &std::collections::BTreeSet::new(), &mut |_| {})
}

/// [`verify`], also giving the chain's hash at each seq of `at` (checkpoints are checked
/// against them) and showing `visit` every event once it is verified, in order (the
/// cross-check with the control plane reads them).
pub fn verify_each(
    dir: &Path,
    at: &std::collections::BTreeSet<u64>,
    visit: &mut dyn FnMut(&StoredEvent),
) -> Result<VerifyReport, AuditError> {
    let mut hashes = BTreeMap::new();
    // Appends hold `LOCK` exclusively; holding it shared keeps an append from running half
    // way through this read (a line written, HEAD not yet: an intact log reported broken).
    // Opened for reading only and never created, so a read-only copy verifies too.
    let lock_path = dir.join(LOCK_FILE);
    let _lock = match File::open(&lock_path) {
        Ok(f) => {
            f.lock_shared().map_err(io_err(&lock_path))?;
            Some(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&lock_path)(e)),
    };
    let segments = list_segments(dir)?;
    let head = read_head(dir)?;
    let head_seq = match &head {
        HeadFile::Ok(h) => Some(h.seq),
        _ => None,
    };
    let mut expected = 1u64;
    let mut prev = GENESIS.to_string();
    // Where the event after HEAD's seq sits, if the chain is longer than HEAD says.
    let mut beyond_head: Option<(String, u64)> = None;
    // Whether HEAD names an event of the chain (its seq with that event's hash).
    let mut head_in_chain = matches!(&head, HeadFile::Ok(h) if h.seq == 0 && h.hash == GENESIS);
    let mut last_pos = (segment_name(1), 0u64);
    let fail = |segment: String, line: u64, seq: u64, kind: BreakKind| {
        AuditError::Broken(Box::new(Break {
            segment,
            line,
            seq,
            kind,
            events_verified: seq.saturating_sub(1),
        }))
    };
    for (i, &n) in segments.iter().enumerate() {
        let name = segment_name(n);
        if n as usize != i + 1 {
            return Err(fail(
                segment_name(i as u32 + 1),
                0,
                expected,
                BreakKind::MissingSegment,
            ));
        }
        let path = dir.join(&name);
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_err(&path))?;
        let mut line_no = 0u64;
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            line_no += 1;
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                return Err(fail(name, line_no, expected, BreakKind::Truncated));
            };
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let ev = check_line(line, expected, &prev)
                .map_err(|kind| fail(name.clone(), line_no, expected, kind))?;
            if head_seq.is_some_and(|h| h + 1 == ev.seq) {
                beyond_head = Some((name.clone(), line_no));
            }
            if let HeadFile::Ok(h) = &head
                && h.seq == ev.seq
            {
                head_in_chain = h.hash == ev.hash;
            }
            if at.contains(&ev.seq) {
                hashes.insert(ev.seq, ev.hash.clone());
            }
            visit(&ev);
            expected += 1;
            prev = ev.hash;
            last_pos = (name.clone(), line_no);
        }
    }
    let end = AuditHead {
        seq: expected - 1,
        hash: prev,
    };
    // One event beyond HEAD, named by INTENT: a crash between the line and HEAD.
    let intent = read_intent(dir)?;
    let crashed = |behind: bool| behind && intent.as_ref() == Some(&end);
    let mut repair_pending = false;
    match head {
        HeadFile::Missing if end.seq == 0 => {}
        HeadFile::Missing if crashed(end.seq == 1) => repair_pending = true,
        HeadFile::Ok(h) if crashed(h.seq + 1 == end.seq) && head_in_chain => {
            repair_pending = true;
        }
        HeadFile::Missing | HeadFile::Bad => {
            return Err(fail(
                last_pos.0,
                last_pos.1,
                end.seq,
                BreakKind::HeadUnparsable,
            ));
        }
        HeadFile::Ok(h) if h == end => {}
        HeadFile::Ok(h) => {
            let (segment, line, seq) = if h.seq > end.seq {
                // Events HEAD knows about are gone: the first missing one is the break.
                (last_pos.0, last_pos.1 + 1, end.seq + 1)
            } else if h.seq < end.seq {
                let (s, l) = beyond_head.unwrap_or(last_pos);
                (s, l, h.seq + 1)
            } else {
                (last_pos.0, last_pos.1, end.seq)
            };
            let kind = if h.seq < end.seq && head_in_chain {
                // Events past HEAD that no crash explains: appended outside kiban.
                BreakKind::UnclaimedTail
            } else {
                BreakKind::HeadMismatch
            };
            return Err(fail(segment, line, seq, kind));
        }
    }
    Ok(VerifyReport {
        events: end.seq,
        segments: segments.len(),
        head: end,
        repair_pending,
        hashes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> AuditOptions {
        AuditOptions {
            segment_max_bytes: 600,
        }
    }

    fn write_events(dir: &Path, n: u64) -> AuditHead {
        let mut log = AuditLog::open_with(dir, small()).unwrap();
        let mut head = AuditHead::empty();
        for i in 0..n {
            head = log
                .append(
                    AuditEvent::new("tester", "ingest", format!("batch-{i}"))
                        .count("rows", i * 10)
                        .detail("ok"),
                )
                .unwrap();
        }
        head
    }

    fn broken(dir: &Path) -> Break {
        match verify(dir) {
            Err(AuditError::Broken(b)) => *b,
            other => panic!("expected a break, got {other:?}"),
        }
    }

    #[test]
    fn good_log_verifies_and_rotates() {
        let d = tempfile::tempdir().unwrap();
        let head = write_events(d.path(), 6);
        let r = verify(d.path()).unwrap();
        assert_eq!(r.events, 6);
        assert_eq!(r.head, head);
        assert!(r.segments >= 2, "small segments must rotate");
        // Reopening continues the chain.
        let mut log = AuditLog::open_with(d.path(), small()).unwrap();
        let h = log
            .append(AuditEvent::new("t", "release", "r1").result(Outcome::Refused))
            .unwrap();
        assert_eq!(h.seq, 7);
        assert_eq!(verify(d.path()).unwrap().events, 7);
    }

    #[test]
    fn empty_log_verifies() {
        let d = tempfile::tempdir().unwrap();
        AuditLog::open(d.path()).unwrap();
        assert_eq!(verify(d.path()).unwrap().events, 0);
    }

    #[test]
    fn two_handles_share_the_chain() {
        let d = tempfile::tempdir().unwrap();
        let mut a = AuditLog::open(d.path()).unwrap();
        let mut b = AuditLog::open(d.path()).unwrap();
        a.append(AuditEvent::new("a", "x", "o")).unwrap();
        b.append(AuditEvent::new("b", "x", "o")).unwrap();
        a.append(AuditEvent::new("a", "x", "o")).unwrap();
        assert_eq!(verify(d.path()).unwrap().events, 3);
    }

    fn all_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = list_segments(dir)
            .unwrap()
            .into_iter()
            .map(|n| dir.join(segment_name(n)))
            .collect();
        v.push(dir.join(HEAD_FILE));
        v
    }

    #[test]
    fn flipping_any_byte_of_any_file_is_detected() {
        let d = tempfile::tempdir().unwrap();
        write_events(d.path(), 4);
        verify(d.path()).unwrap();
        let mut checked = 0;
        for file in all_files(d.path()) {
            let orig = fs::read(&file).unwrap();
            for pos in 0..orig.len() {
                for mask in [0x01u8, 0x20, 0x80] {
                    let mut m = orig.clone();
                    m[pos] ^= mask;
                    fs::write(&file, &m).unwrap();
                    assert!(
                        verify(d.path()).is_err(),
                        "flip {mask:#x} at {} byte {pos} not detected",
                        file.display()
                    );
                    checked += 1;
                }
            }
            fs::write(&file, &orig).unwrap();
        }
        assert!(checked > 1000);
        verify(d.path()).unwrap();
    }

    fn seg_lines(dir: &Path, n: u32) -> Vec<String> {
        fs::read_to_string(dir.join(segment_name(n)))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write_lines(dir: &Path, n: u32, lines: &[String]) {
        let mut s = lines.join("\n");
        s.push('\n');
        fs::write(dir.join(segment_name(n)), s).unwrap();
    }

    #[test]
    fn deleting_a_line_names_the_first_broken_event() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        for i in 0..5 {
            log.append(AuditEvent::new("t", "a", format!("o{i}")))
                .unwrap();
        }
        let mut lines = seg_lines(d.path(), 1);
        lines.remove(2);
        write_lines(d.path(), 1, &lines);
        let b = broken(d.path());
        assert_eq!((b.line, b.seq), (3, 3));
        assert_eq!(
            b.kind,
            BreakKind::SequenceGap {
                expected: 3,
                found: 4
            }
        );
        assert_eq!(b.segment, "segment-000001.jsonl");
    }

    #[test]
    fn swapping_two_lines_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        for i in 0..5 {
            log.append(AuditEvent::new("t", "a", format!("o{i}")))
                .unwrap();
        }
        let mut lines = seg_lines(d.path(), 1);
        lines.swap(1, 3);
        write_lines(d.path(), 1, &lines);
        let b = broken(d.path());
        assert_eq!((b.line, b.seq), (2, 2));
        assert!(matches!(b.kind, BreakKind::SequenceGap { .. }));
        assert_eq!(b.events_verified, 1);
    }

    #[test]
    fn removing_the_last_event_is_detected_via_head() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        for i in 0..5 {
            log.append(AuditEvent::new("t", "a", format!("o{i}")))
                .unwrap();
        }
        let mut lines = seg_lines(d.path(), 1);
        lines.pop();
        write_lines(d.path(), 1, &lines);
        let b = broken(d.path());
        assert_eq!(b.kind, BreakKind::HeadMismatch);
        assert_eq!((b.line, b.seq), (5, 5));
        // And a writer refuses to extend it.
        assert!(matches!(
            AuditLog::open(d.path()),
            Err(AuditError::Broken(_))
        ));
    }

    #[test]
    fn truncating_the_last_event_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        for i in 0..3 {
            log.append(AuditEvent::new("t", "a", format!("o{i}")))
                .unwrap();
        }
        let p = d.path().join(segment_name(1));
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let b = broken(d.path());
        assert_eq!(b.kind, BreakKind::Truncated);
        assert_eq!((b.line, b.seq), (3, 3));
        // The event was acknowledged (HEAD names it), so open must not silently drop it.
        assert!(AuditLog::open(d.path()).is_err());
    }

    #[test]
    fn editing_head_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        for i in 0..3 {
            log.append(AuditEvent::new("t", "a", format!("o{i}")))
                .unwrap();
        }
        let h = AuditHead {
            seq: 2,
            hash: GENESIS.into(),
        };
        fs::write(d.path().join(HEAD_FILE), head_bytes(&h).unwrap()).unwrap();
        let b = broken(d.path());
        assert_eq!(b.kind, BreakKind::HeadMismatch);
        assert_eq!(b.seq, 3);
        fs::remove_file(d.path().join(HEAD_FILE)).unwrap();
        assert_eq!(broken(d.path()).kind, BreakKind::HeadUnparsable);
    }

    #[test]
    fn crash_before_head_update_is_repaired_on_open() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        let h1 = log.append(AuditEvent::new("t", "a", "o1")).unwrap();
        log.append(AuditEvent::new("t", "a", "o2")).unwrap();
        // Simulate: line 2 written (INTENT names it, as the append wrote it first), HEAD
        // still at 1.
        write_head(d.path(), &h1).unwrap();
        let r = verify(d.path()).unwrap();
        assert!(
            r.repair_pending,
            "a crash's state is intact, repair pending"
        );
        assert_eq!(r.events, 2);
        let log = AuditLog::open(d.path()).unwrap();
        // The repair is on record: event 3 says which event it took into the chain.
        assert_eq!(log.head().unwrap().seq, 3);
        let r = verify(d.path()).unwrap();
        assert_eq!((r.events, r.repair_pending), (3, false));
        let last = seg_lines(d.path(), 1).pop().unwrap();
        assert!(
            last.contains("\"action\":\"audit.repair\",\"object\":\"seq:2\""),
            "{last}"
        );
        // Simulate: a partial fourth line cut off before HEAD recorded it.
        let p = d.path().join(segment_name(1));
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"seq\":4,\"ti").unwrap();
        drop(f);
        assert_eq!(broken(d.path()).kind, BreakKind::Truncated);
        let mut log = AuditLog::open(d.path()).unwrap();
        assert_eq!(log.append(AuditEvent::new("t", "a", "o4")).unwrap().seq, 4);
        assert_eq!(verify(d.path()).unwrap().events, 4);
    }

    /// A well-hashed event appended by hand, HEAD untouched: what a crash can leave looks
    /// the same on the segment, but no append announced it in INTENT. Open must not "repair"
    /// HEAD over it (that would bless the forgery into the chain), and verify names it.
    #[test]
    fn attack_forged_event_beyond_head_is_never_repaired() {
        let d = tempfile::tempdir().unwrap();
        let mut log = AuditLog::open(d.path()).unwrap();
        let h2 = {
            log.append(AuditEvent::new("t", "a", "o1")).unwrap();
            log.append(AuditEvent::new("t", "a", "o2")).unwrap()
        };
        drop(log);
        // The adversary computes the next event exactly as kiban would.
        let mut ev = StoredEvent {
            seq: h2.seq + 1,
            time: "2030-01-01T00:00:00.000Z".into(),
            actor: "auditor".into(),
            action: "release.erase".into(),
            object: "release:r-cover".into(),
            counts: BTreeMap::new(),
            result: Outcome::Ok,
            detail: None,
            prev: h2.hash.clone(),
            hash: String::new(),
        };
        ev.hash = ev.compute_hash().unwrap();
        let mut line = ev.to_line().unwrap();
        line.push('\n');
        let p = d.path().join(segment_name(1));
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        let b = broken(d.path());
        assert_eq!(
            (b.kind.clone(), b.seq, b.line),
            (BreakKind::UnclaimedTail, 3, 3)
        );
        match AuditLog::open(d.path()) {
            Err(AuditError::Broken(b)) => assert_eq!(b.kind, BreakKind::UnclaimedTail),
            other => panic!("open blessed a forged tail: {other:?}"),
        }
        // Still refused on the next try, and HEAD was not moved.
        assert!(AuditLog::open(d.path()).is_err());
        assert_eq!(broken(d.path()).kind, BreakKind::UnclaimedTail);
        // An INTENT left by an earlier append (naming event 2) does not cover it either.
        assert_eq!(read_intent(d.path()).unwrap(), Some(h2));
    }

    /// Two forged events beyond HEAD, even with INTENT naming the last: a crash leaves at most
    /// one.
    #[test]
    fn attack_two_events_beyond_head_are_not_a_crash() {
        let d = tempfile::tempdir().unwrap();
        let h1 = write_events(d.path(), 1);
        write_events_more(d.path(), 2);
        let end = verify(d.path()).unwrap().head;
        write_head(d.path(), &h1).unwrap();
        write_head_file(d.path(), &end, INTENT_TMP, INTENT_FILE).unwrap();
        assert_eq!(broken(d.path()).kind, BreakKind::UnclaimedTail);
        assert!(AuditLog::open(d.path()).is_err());
    }

    fn write_events_more(dir: &Path, n: u64) {
        let mut log = AuditLog::open_with(dir, small()).unwrap();
        for i in 0..n {
            log.append(AuditEvent::new("tester", "more", format!("m-{i}")))
                .unwrap();
        }
    }

    #[test]
    fn verify_each_gives_hashes_at_the_seqs_asked_and_every_event() {
        let d = tempfile::tempdir().unwrap();
        let head = write_events(d.path(), 5);
        let mut seen = Vec::new();
        let at = [2u64, 5, 9].into_iter().collect();
        let r = verify_each(d.path(), &at, &mut |e| seen.push(e.seq)).unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4, 5]);
        assert_eq!(r.hashes.len(), 2);
        assert_eq!(r.hashes.get(&5), Some(&head.hash));
        assert!(!r.hashes.contains_key(&9));
    }

    #[test]
    fn deleting_a_middle_segment_is_detected() {
        let d = tempfile::tempdir().unwrap();
        write_events(d.path(), 8);
        let segs = list_segments(d.path()).unwrap();
        assert!(segs.len() >= 3);
        fs::remove_file(d.path().join(segment_name(2))).unwrap();
        let b = broken(d.path());
        assert_eq!(b.kind, BreakKind::MissingSegment);
        assert_eq!(b.segment, segment_name(2));
    }

    /// `kiban audit verify` runs beside commands that append (`files show`, `records list`
    /// hold the workspace lock shared and are audited): it must never see an append half
    /// done and report an intact log as broken.
    #[test]
    fn verify_beside_appends_never_sees_half_an_append() {
        let d = tempfile::tempdir().unwrap();
        write_events(d.path(), 1);
        let dir = d.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            let mut log = AuditLog::open_with(&dir, small()).unwrap();
            for i in 0..300 {
                log.append(AuditEvent::new("t", "files.show", format!("o{i}")))
                    .unwrap();
            }
        });
        let mut checks = 0;
        while !writer.is_finished() {
            if let Err(e) = verify(d.path()) {
                panic!("verify beside an append after {checks} checks: {e}");
            }
            checks += 1;
        }
        writer.join().unwrap();
        assert_eq!(verify(d.path()).unwrap().events, 301);
    }
}
