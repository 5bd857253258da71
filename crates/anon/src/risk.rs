//! Re-identification risk of a released table (R-ANON-7).
