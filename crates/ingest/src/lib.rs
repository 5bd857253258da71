//! kiban-ingest
