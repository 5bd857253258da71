//! kiban-anon
