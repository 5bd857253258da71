//! Progress reporting without printing: the binary plugs in progress bars.

/// Receives progress of long work. Implementations must be cheap; they are called per file
/// or per batch, not per row.
pub trait Progress: Send + Sync {
    /// A new stage begins (`total` units when known).
    fn stage(&self, name: &str, total: Option<u64>);
    /// `n` more units of the current stage are done.
    fn advance(&self, n: u64);
    /// The current stage is done.
    fn finish_stage(&self) {}
}

/// Progress that goes nowhere (tests, scripts).
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _name: &str, _total: Option<u64>) {}
    fn advance(&self, _n: u64) {}
}
