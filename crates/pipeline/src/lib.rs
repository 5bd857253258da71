//! kiban-pipeline
