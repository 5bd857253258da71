//! kiban-link
