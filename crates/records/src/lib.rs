//! kiban-records
