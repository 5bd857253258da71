//! Reader lanes: the files of a run read and parsed on blocking threads while the ingest
//! task gates and stores what they already read.
//!
//! Files are dealt round-robin to up to one reader per core (parsing is most of the work
//! for FHIR and much of it for SS-MIX2); the ingest task takes them back in the same order,
//! so results do not depend on the number of readers. Items arrive over bounded channels
//! (memory stays bounded), each file's closed by its outcome.

use std::sync::Arc;

use kiban_ingest::{IngestError, Item, Limits, SourceFile};
use tokio::sync::mpsc::{Receiver, channel};
use tokio::task::JoinHandle;

/// Reader threads of one ingest at most (each holds its own read-ahead and caches).
const MAX_READERS: usize = 4;

/// Items buffered across all lanes at most.
const READ_AHEAD: usize = 256;

/// What a reader thread sends: the items of one file, then the file's outcome.
// Items are nearly every message: boxing them to shrink the rare `End` would cost an
// allocation per unit.
#[allow(clippy::large_enum_variant)]
enum Read {
    Item(Item),
    End(Result<kiban_ingest::FileSummary, IngestError>),
}

/// How a file's items ended other than with the file read.
pub(super) enum LaneEnd {
    /// The reader failed on the file (an I/O error, no reader for it).
    Failed(IngestError),
    /// The reader thread is gone (it panicked): an internal fault.
    Stopped,
}

/// The running readers of one ingest.
pub(super) struct Lanes {
    rx: Vec<Receiver<Read>>,
    threads: Vec<JoinHandle<()>>,
    next: usize,
}

impl Lanes {
    /// Starts the readers of `scheduled` (indices into `files`, ascending). The caller then
    /// takes each scheduled file's items with [`Lanes::next_file`], in the same order.
    pub(super) fn start(
        files: &Arc<Vec<SourceFile>>,
        scheduled: &[usize],
        handler_code: &str,
        limits: Limits,
    ) -> Lanes {
        let lanes = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_READERS)
            .min(scheduled.len())
            .max(1);
        let mut rx = Vec::with_capacity(lanes);
        let mut threads = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let (read_tx, read_rx) = channel::<Read>(READ_AHEAD / lanes);
            rx.push(read_rx);
            let files = files.clone();
            let mine: Vec<usize> = scheduled
                .iter()
                .skip(lane)
                .step_by(lanes)
                .copied()
                .collect();
            let handler_code = handler_code.to_string();
            threads.push(tokio::task::spawn_blocking(move || {
                // One reader per thread for the whole run: it caches what files of a folder
                // share (a Bulk export's Patient file is read once per folder and thread).
                let mut reader = kiban_ingest::Reader::with_limits(limits);
                for i in mine {
                    let Some(file) = files.get(i) else { return };
                    // The receiver only goes away when the ingest fails; then nothing more
                    // is needed.
                    let mut gone = false;
                    let outcome = reader.read_file(file, &handler_code, &mut |item| {
                        if !gone && read_tx.blocking_send(Read::Item(item)).is_err() {
                            gone = true;
                        }
                    });
                    if gone || read_tx.blocking_send(Read::End(outcome)).is_err() {
                        return;
                    }
                }
            }));
        }
        Lanes {
            rx,
            threads,
            next: 0,
        }
    }

    /// The items of the next scheduled file.
    pub(super) fn next_file(&mut self) -> FileItems<'_> {
        let lane = self.next % self.rx.len();
        self.next += 1;
        FileItems {
            rx: &mut self.rx[lane],
        }
    }

    /// Stops the readers (those still reading see their receiver gone) and waits for them.
    /// An error means a reader thread panicked.
    pub(super) async fn finish(self) -> Result<(), tokio::task::JoinError> {
        drop(self.rx);
        for t in self.threads {
            t.await?;
        }
        Ok(())
    }
}

/// One file's items as its reader sends them.
pub(super) struct FileItems<'a> {
    rx: &'a mut Receiver<Read>,
}

impl FileItems<'_> {
    /// The file's next item; `Ok(None)` once the file has been read whole.
    pub(super) async fn next(&mut self) -> Result<Option<Item>, LaneEnd> {
        match self.rx.recv().await {
            Some(Read::Item(item)) => Ok(Some(item)),
            Some(Read::End(Ok(_summary))) => Ok(None),
            Some(Read::End(Err(e))) => Err(LaneEnd::Failed(e)),
            None => Err(LaneEnd::Stopped),
        }
    }
}
