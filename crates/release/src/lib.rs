//! kiban-release
